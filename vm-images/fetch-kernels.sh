#!/usr/bin/env bash
# Fetch Debian cloud kernels (vmlinuz, debug vmlinux, a few modules) into the user
# cache, through a private apt configuration (the system's sources are not touched).
# Usage: vm-images/fetch-kernels.sh [NAME...]   (names from vm-images/kernels.list)
# Idempotent: a kernel whose "ok" stamp holds the current CACHE_VERSION is skipped.
# An older cache directory is refreshed: the image/modules packages are downloaded
# again, and the -dbg package too unless the cached vmlinuz is byte-identical to
# the archive's (then the cached debug vmlinux is kept, hard-linked).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${OOMDRGN_CACHE:-$HOME/.cache/oomdrgn}
mkdir -p "$cache/kernels"
want=("$@")

# 1: vmlinuz, vmlinux, qemu_fw_cfg, pvpanic*.  2: + zram and its dependencies.
CACHE_VERSION=2
# Modules the guest loads (dependencies are added from `modinfo -F depends`):
# lzo-rle is zram's default compressor on 5.10/6.1, where it goes through the
# crypto API (crypto/lzo-rle.ko); 6.12+ link their zram backends into zram.ko.
WANT_MODULES="qemu_fw_cfg pvpanic pvpanic_mmio pvpanic_pci zram lzo_rle"

log() { printf '[fetch-kernels] %s\n' "$*" >&2; }

# decompress_ko SRC DSTDIR: copy a module, decompressed; print the new path.
decompress_ko() {
  local m=$1 out
  case $m in
    *.ko.xz) out=$2/$(basename "${m%.xz}"); xz -dc "$m" > "$out";;
    *.ko.zst) out=$2/$(basename "${m%.zst}"); zstd -qdc "$m" > "$out";;
    *.ko.gz) out=$2/$(basename "${m%.gz}"); gzip -dc "$m" > "$out";;
    *) out=$2/$(basename "$m"); cp "$m" "$out";;
  esac
  echo "$out"
}

# ko_depends KO: what `modinfo -F depends` prints, space-separated (read with
# binutils, so that kmod need not be installed).
ko_depends() {
  objcopy -O binary --only-section=.modinfo "$1" /dev/stdout | tr '\0' '\n' \
    | sed -n 's/^depends=//p' | tr ',' ' '
}

# copy_modules XDIR DSTDIR: WANT_MODULES that exist in XDIR, plus what they depend
# on, as `modinfo -F depends` names them (built-in ones have no .ko: skipped).
copy_modules() {
  local x=$1 dst=$2 f b n
  declare -A file=() seen=()
  while IFS= read -r f; do
    b=$(basename "$f"); n=${b%%.ko*}; file[${n//-/_}]=$f
  done < <(find "$x" -name '*.ko*' -type f -not -path '*/debug/*')
  local queue=($WANT_MODULES) out dep
  while [ ${#queue[@]} -gt 0 ]; do
    n=${queue[0]}; queue=("${queue[@]:1}")
    [ -n "${seen[$n]:-}" ] && continue
    seen[$n]=1
    [ -n "${file[$n]:-}" ] || continue
    out=$(decompress_ko "${file[$n]}" "$dst")
    for dep in $(ko_depends "$out"); do queue+=("${dep//-/_}"); done
  done
}

fetch_one() {
  local name=$1 suite=$2 line=$3
  local kdir="$cache/kernels/$name"
  if [ -f "$kdir/ok" ] && [ "$(cat "$kdir/ok")" = "$CACHE_VERSION" ]; then
    log "$name: cached ($(cat "$kdir/release"))"; return
  fi
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
  local pkgs=("$img")
  local dep
  for dep in $(apt-cache "${opts[@]}" depends "$img" 2>/dev/null | awk '/Depends: linux-/ {print $2}' | tr -d '<>' | sort -u); do
    case $dep in linux-base|linux-image-*|*-dbg|linux-sysctl-defaults) ;; *) pkgs+=("$dep");; esac
  done
  log "$name: kernel $abi, packages: ${pkgs[*]}"
  (cd "$adir/debs" && rm -f ./*.deb && apt-get "${opts[@]}" -q download "${pkgs[@]}" >&2)
  rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/x" "$kdir.tmp/modules"
  local deb
  for deb in "$adir"/debs/*.deb; do
    log "$name: extracting $(basename "$deb")"
    # Modules come from the signed image/modules packages, not the unsigned copies
    # in -dbg (loading those taints the kernel: 'E' in every OOM header).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir.tmp/x" --wildcards --no-anchored \
      --exclude='*/debug/*' 'vmlinuz-*' 'vmlinuz' '*.ko' '*.ko.*' 'config-*' 'config' 2>/dev/null || true
  done
  local vmlinuz vmlinux
  vmlinuz=$(find "$kdir.tmp/x" -name 'vmlinuz*' -type f | head -1)
  [ -n "$vmlinuz" ] || { log "$name: no vmlinuz in ${pkgs[*]}"; return 1; }
  mv "$vmlinuz" "$kdir.tmp/vmlinuz"
  copy_modules "$kdir.tmp/x" "$kdir.tmp/modules"
  # sid keeps it as /usr/lib/modules/<abi>/config (in linux-base-*).
  find "$kdir.tmp/x" \( -name 'config-*' -o -name config \) -type f -exec cp {} "$kdir.tmp/config" \; -quit
  rm -rf "$kdir.tmp/x" "$adir/debs"/*.deb
  if [ -f "$kdir/vmlinux" ] && cmp -s "$kdir/vmlinuz" "$kdir.tmp/vmlinuz"; then
    log "$name: same vmlinuz as cached: keeping the cached debug vmlinux"
    ln "$kdir/vmlinux" "$kdir.tmp/vmlinux" 2>/dev/null || cp "$kdir/vmlinux" "$kdir.tmp/vmlinux"
  else
    log "$name: downloading $img-dbg"
    (cd "$adir/debs" && apt-get "${opts[@]}" -q download "$img-dbg" >&2)
    mkdir -p "$kdir.tmp/x"
    dpkg-deb --fsys-tarfile "$adir/debs/$img-dbg"_*.deb | tar -x -C "$kdir.tmp/x" --wildcards \
      --no-anchored 'vmlinux-*' 'vmlinux' 2>/dev/null || true
    vmlinux=$(find "$kdir.tmp/x" \( -name 'vmlinux-*' -o -name vmlinux \) -type f -size +10M | head -1)
    [ -n "$vmlinux" ] || { log "$name: debug vmlinux missing from $img-dbg"; return 1; }
    log "$name: stripping .rela.debug_* from the debug vmlinux"
    objcopy --remove-section='.rela.debug_*' "$vmlinux" "$kdir.tmp/vmlinux"
    rm -rf "$kdir.tmp/x" "$adir/debs"/*.deb
  fi
  echo "$abi" > "$kdir.tmp/release"
  echo "$suite" > "$kdir.tmp/suite"
  echo "$CACHE_VERSION" > "$kdir.tmp/ok"
  # Swap the directories with the shortest window possible for concurrent readers.
  rm -rf "$kdir.old"
  [ -d "$kdir" ] && mv "$kdir" "$kdir.old"
  mv "$kdir.tmp" "$kdir" && rm -rf "$kdir.old"
  log "$name: ready in $kdir ($(ls "$kdir/modules" | tr '\n' ' '))"
}

while read -r name suite line; do
  case $name in ''|'#'*) continue;; esac
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  fetch_one "$name" "$suite" "$line"
done < "$here/kernels.list"
