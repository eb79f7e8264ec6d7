"""Runs the tests against the package in this checkout (python/unroll) and the library built in
.build/release, unless UNROLL_LIBRARY or an installed package says otherwise."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))


def unroll_binary():
    return os.environ.get("UNROLL_BIN") or str(ROOT / ".build" / "release" / "unroll")
