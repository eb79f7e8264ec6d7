#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole test suite (release build,
# because the numerical tests train small models).
set -euo pipefail
cd "$(dirname "$0")/.."
UNROLL_NEED_NUMPY=1 scripts/bootstrap.sh
swift build -c release --build-tests
swift test -c release --skip-build "$@"
