#!/usr/bin/env bash
# The demo: installs what is missing, builds the CLI and runs `unroll demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product unroll
.build/release/unroll demo "$@"
