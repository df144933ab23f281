#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), then unit, synthetic, CLI and
# real-kernel (QEMU) tests. Real-kernel tests never skip: no QEMU, no pass.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -rfEs --durations=25 tests examples "$@"
