#!/usr/bin/env bash
# Installs what building and testing Unroll needs, if it is missing:
# OpenBLAS, zlib and pkg-config from Debian's packages, NumPy (the test oracle) and, for the Python
# package's tests, scikit-learn and pytest from PyPI.
set -euo pipefail

missing=()
pkg-config --exists openblas 2>/dev/null || missing+=(libopenblas-dev)
pkg-config --exists zlib 2>/dev/null || missing+=(zlib1g-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
if ((${#missing[@]})); then
    echo "bootstrap: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pkg-config "${missing[@]}" >/dev/null
fi

if [ "${UNROLL_NEED_NUMPY:-0}" = 1 ] && ! python3 -c 'import numpy' 2>/dev/null; then
    echo "bootstrap: installing numpy" >&2
    python3 -m pip install --quiet numpy 2>/dev/null || python3 -m pip install --quiet --break-system-packages numpy
fi
# The Python package's tests: scikit-learn (its estimator checks are a reference) and pytest.
if [ "${UNROLL_NEED_PYTHON_TESTS:-0}" = 1 ] && ! python3 -c 'import sklearn, pytest' 2>/dev/null; then
    echo "bootstrap: installing scikit-learn and pytest" >&2
    python3 -m pip install --quiet scikit-learn pytest 2>/dev/null || python3 -m pip install --quiet --break-system-packages scikit-learn pytest
fi
command -v swift >/dev/null || { echo "bootstrap: the Swift toolchain (swift) is not on PATH" >&2; exit 1; }
