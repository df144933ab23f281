#!/usr/bin/env bash
# Fetch Debian cloud kernels (vmlinuz, debug vmlinux, a few modules) into the user
# cache, through a private apt configuration (the system's sources are not touched).
# Usage: vm-images/fetch-kernels.sh [NAME...]   (names from vm-images/kernels.list)
# Idempotent: a kernel whose directory holds a complete "ok" stamp is skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${OOMDRGN_CACHE:-$HOME/.cache/oomdrgn}
mkdir -p "$cache/kernels"
want=("$@")

log() { printf '[fetch-kernels] %s\n' "$*" >&2; }

fetch_one() {
  local name=$1 suite=$2 line=$3
  local kdir="$cache/kernels/$name"
  if [ -f "$kdir/ok" ]; then log "$name: cached ($(cat "$kdir/release"))"; return; fi
  local adir="$cache/apt/$suite"
  mkdir -p "$adir/lists/partial" "$adir/archives/partial" "$adir/debs"
  echo "$line" > "$adir/sources.list"
  local opts=(-o Dir::Etc::SourceList="$adir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o Dir::State::Lists="$adir/lists" -o Dir::Cache="$adir" -o Dir::Cache::archives="$adir/archives"
              -o Dir::State::status=/dev/null -o APT::Architecture=amd64 -o Debug::NoLocking=1
              -o Acquire::Languages=none -o APT::Sandbox::User=root)
  log "$name: apt update ($suite)"
  apt-get "${opts[@]}" -q update >&2
  # The metapackage names the current ABI: linux-image-cloud-amd64 -> linux-image-<abi>-cloud-amd64.
  local img
  img=$(apt-cache "${opts[@]}" depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9].*-cloud-amd64$/ {print $2; exit}')
  [ -n "$img" ] || { log "$name: no linux-image-*-cloud-amd64 in $suite"; return 1; }
  local abi=${img#linux-image-}
  # sid splits the kernel into linux-binary-*/linux-modules-*/...: take the image
  # package and every linux-* package it depends on directly.
  local pkgs=("$img" "$img-dbg")
  local dep
  for dep in $(apt-cache "${opts[@]}" depends "$img" 2>/dev/null | awk '/Depends: linux-/ {print $2}' | tr -d '<>' | sort -u); do
    case $dep in linux-base|linux-image-*|*-dbg|linux-sysctl-defaults) ;; *) pkgs+=("$dep");; esac
  done
  log "$name: kernel $abi, packages: ${pkgs[*]}"
  (cd "$adir/debs" && rm -f ./*.deb && apt-get "${opts[@]}" -q download "${pkgs[@]}" >&2)
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/x"
  local deb
  for deb in "$adir"/debs/*.deb; do
    log "$name: extracting $(basename "$deb")"
    # Modules come from the signed image/modules packages, not the unsigned copies
    # in -dbg (loading those taints the kernel: 'E' in every OOM header).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir.tmp/x" --wildcards --no-anchored \
      --exclude='*/debug/*.ko*' \
      'vmlinuz-*' 'vmlinuz' 'vmlinux-*' 'vmlinux' 'qemu_fw_cfg.ko*' 'pvpanic*.ko*' 'config-*' 'config' 2>/dev/null || true
  done
  local vmlinuz vmlinux
  vmlinuz=$(find "$kdir.tmp/x" -name 'vmlinuz*' -type f | head -1)
  vmlinux=$(find "$kdir.tmp/x" \( -name 'vmlinux-*' -o -name vmlinux \) -type f -size +10M | head -1)
  [ -n "$vmlinuz" ] && [ -n "$vmlinux" ] || { log "$name: vmlinuz or debug vmlinux missing"; return 1; }
  mv "$vmlinuz" "$kdir.tmp/vmlinuz"
  log "$name: stripping .rela.debug_* from the debug vmlinux"
  objcopy --remove-section='.rela.debug_*' "$vmlinux" "$kdir.tmp/vmlinux"
  mkdir -p "$kdir.tmp/modules"
  local m
  for m in $(find "$kdir.tmp/x" -name '*.ko*' -type f); do
    case $m in
      *.ko.xz) xz -dc "$m" > "$kdir.tmp/modules/$(basename "${m%.xz}")";;
      *.ko.zst) zstd -qdc "$m" > "$kdir.tmp/modules/$(basename "${m%.zst}")";;
      *.ko.gz) gzip -dc "$m" > "$kdir.tmp/modules/$(basename "${m%.gz}")";;
      *) cp "$m" "$kdir.tmp/modules/";;
    esac
  done
  # sid keeps it as /usr/lib/modules/<abi>/config (in linux-base-*).
  find "$kdir.tmp/x" \( -name 'config-*' -o -name config \) -type f -exec cp {} "$kdir.tmp/config" \; -quit
  rm -rf "$kdir.tmp/x" "$adir/debs"/*.deb
  echo "$abi" > "$kdir.tmp/release"
  echo "$suite" > "$kdir.tmp/suite"
  touch "$kdir.tmp/ok"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
  log "$name: ready in $kdir ($(ls "$kdir/modules" | tr '\n' ' '))"
}

while read -r name suite line; do
  case $name in ''|'#'*) continue;; esac
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  fetch_one "$name" "$suite" "$line"
done < "$here/kernels.list"
