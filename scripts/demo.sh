#!/usr/bin/env bash
# The demo: set-up (idempotent, fetches only the kernels asked for), then a real
# kernel runs out of memory in QEMU and oomdrgn's lines are shown beside its own.
# Usage: scripts/demo.sh [5.10|6.1|6.12|7.x ...]   (default 6.12)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kernels=("$@"); [ ${#kernels[@]} -gt 0 ] || kernels=(6.12)
./scripts/setup.sh "${kernels[@]}"
exec .venv/bin/python scripts/demo.py "${kernels[@]}"
