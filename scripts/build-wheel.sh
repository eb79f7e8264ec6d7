#!/usr/bin/env bash
# Builds the Python package's wheel (with libUnrollC built in release mode) into dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip wheel --quiet --no-deps ./python -w dist
ls dist/unroll-*.whl
