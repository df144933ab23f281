#!/usr/bin/env bash
# Idempotent set-up on Debian 12 as root: apt packages, the venv (.venv) with
# oomdrgn installed editable, and the Debian kernels (four amd64 and two arm64
# cloud kernels, one arm64 kernel with 16 KiB pages) in the user cache.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
log() { printf '[setup] %s\n' "$*" >&2; }

pkgs=(qemu-system-x86 qemu-utils busybox-static gcc libc6-dev gdb binutils xz-utils zstd lz4
      debootstrap e2fsprogs
      python3 python3-venv python3-pip ca-certificates
      # arm64 guests (tests/arm64): the emulator, static workloads, nm/objcopy and
      # gdb for aarch64, qemu-user to list the arm64 busybox's applets
      qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
      gdb-multiarch qemu-user-static
      # the HTML page's browser tests (tests/browser, tests/vm/test_html.py): headless
      # chromium driven through chromium-driver (selenium is in the test extra)
      chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to install: ${missing[*]}"; exit 1; }
  log "installing: ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  log "apt packages present"
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.oomdrgn-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing oomdrgn and test dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip >&2
  .venv/bin/pip install -q -e '.[test]' >&2
  touch "$stamp"
else
  log ".venv up to date"
fi

vm-images/fetch-kernels.sh "$@"
