#!/usr/bin/env bash
# Runs the README's Python install line and example as a newcomer would: a fresh virtual environment,
# `pip install ./python` (which builds libUnrollC), then the README's first ```python block, from a
# folder outside the checkout. Part of .ci/run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
if ! python3 -m venv "$work/venv" 2>/dev/null; then
    echo "check-python-install: installing python3-venv" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install --quiet "$repo/python"
python3 - "$repo/README.md" "$work/example.py" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"## Python.*?```python\n(.*?)```", text, re.S)
assert block, "README has no ```python block under ## Python"
open(sys.argv[2], "w").write(block.group(1))
PY
cd "$work"
out=$("$work/venv/bin/python" example.py)
echo "check-python-install: $out"
grep -q "atoms recovered" <<<"$out"
[ -f model.safetensors ] && "$repo/.build/release/unroll" info model.safetensors | grep -q "model: dense,"
echo "check-python-install: the README's install line and example ran; unroll info reads the saved model"
