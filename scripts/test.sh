#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole test suite (release build,
# because the numerical tests train small models) and the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
UNROLL_NEED_NUMPY=1 UNROLL_NEED_PYTHON_TESTS=1 scripts/bootstrap.sh
swift build -c release --build-tests
swift test -c release --skip-build "$@"
# The Python package, over the library just built (python/tests/conftest.py finds it).
python3 -m pytest python/tests -q
# Data-parallel training over Open MPI (installs it; builds the MPI variant into .build-mpi).
scripts/check-mpi.sh
# The libFuzzer harness builds, and every reader survives a short, seeded run (longer runs:
# scripts/fuzz.sh --seconds 600).
scripts/fuzz.sh --runs 20000 --seed 1
