#!/usr/bin/env bash
# Fetch Debian kernels (vmlinuz, debug vmlinux, a few modules) into the user
# cache, through a private apt configuration (the system's sources are not touched).
# Usage: vm-images/fetch-kernels.sh [NAME...]   (names from the kernels.list beside it)
#   or, from an installed oomdrgn (no checkout): python -m oomdrgn.testing.harness fetch [NAME...]
# Needs only what sits beside it (kernels.list) and a Debian host's apt-get and dpkg-deb.
# The flavour is Debian's (linux-image-<flavour> names the current ABI):
# cloud-ARCH unless the kernels.list row names another before its apt line.
# Kernels of another architecture (arm64) come through the same configuration
# with APT::Architecture=arm64, with that architecture's busybox-static beside
# them (the guest's userland cannot come from the host).
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
# The live guest's disks: NVMe and ext4 (ext4's checksums need crc32c), built
# into the cloud kernels (nothing copied), modules of the other flavours
# (amd64, rt-amd64).
WANT_MODULES="$WANT_MODULES nvme ext4 crc32c_generic"
# arm64 guests (-M virt) have one serial port, the kernel console: the harness's
# shell runs on a virtio console (hvc0), which the 6.1 arm64 kernel builds as
# modules (virtio_console, virtio_pci and their dependencies).
WANT_MODULES_arm64="virtio_pci virtio_console"

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
# binutils, so that kmod need not be installed). objcopy gets a real file: it
# writes a temporary file beside its output and renames it over the output, and
# as root that replaces /dev/stdout itself with a regular file.
ko_depends() {
  local tmp
  tmp=$(mktemp)
  "$objcopy" -O binary --only-section=.modinfo "$1" "$tmp"
  tr '\0' '\n' < "$tmp" | sed -n 's/^depends=//p' | tr ',' ' '
  rm -f "$tmp"
}

# copy_modules XDIR DSTDIR: WANT_MODULES that exist in XDIR, plus what they depend
# on, as `modinfo -F depends` names them (built-in ones have no .ko: skipped).
copy_modules() {
  local x=$1 dst=$2 f b n
  declare -A file=() seen=()
  while IFS= read -r f; do
    b=$(basename "$f"); n=${b%%.ko*}; file[${n//-/_}]=$f
  done < <(find "$x" -name '*.ko*' -type f -not -path '*/debug/*')
  local extra="WANT_MODULES_$arch"
  local queue=($WANT_MODULES ${!extra:-}) out dep
  while [ ${#queue[@]} -gt 0 ]; do
    n=${queue[0]}; queue=("${queue[@]:1}")
    [ -n "${seen[$n]:-}" ] && continue
    seen[$n]=1
    [ -n "${file[$n]:-}" ] || continue
    out=$(decompress_ko "${file[$n]}" "$dst")
    for dep in $(ko_depends "$out"); do queue+=("${dep//-/_}"); done
  done
}

# boot_image VMLINUZ OUT: what QEMU's -kernel loads for an arm64 kernel, an
# uncompressed Image. Debian's bookworm and trixie arm64 vmlinuz is one already
# (hard-linked); a gzipped one is unpacked (QEMU 7.2 would only up to 64 MiB),
# and so is an EFI zboot image (PE with a compressed payload, CONFIG_EFI_ZBOOT),
# which QEMU 7.2 cannot boot at all.
boot_image() {
  local in=$1 out=$2
  if gzip -t "$in" 2>/dev/null; then
    gzip -dc "$in" > "$out"
  elif [ "$(head -c 2 "$in")" = MZ ] && [ "$(dd if="$in" bs=1 skip=4 count=4 2>/dev/null)" = zimg ]; then
    # struct linux_efi_zboot_header: payload offset and size at 8 and 12, then
    # the compression type ("gzip", "zstd") at 24.
    local off size comp
    off=$(od -An -tu4 -j8 -N4 "$in" | tr -d ' ')
    size=$(od -An -tu4 -j12 -N4 "$in" | tr -d ' ')
    comp=$(dd if="$in" bs=1 skip=24 count=32 2>/dev/null | tr -d '\0')
    case $comp in
      gzip) tail -c +$((off + 1)) "$in" | head -c "$size" | gzip -dc > "$out";;
      zstd|zstd22) tail -c +$((off + 1)) "$in" | head -c "$size" | zstd -qdc > "$out";;
      *) log "EFI zboot image compressed with ${comp:-?}: not handled"; return 1;;
    esac
  else
    ln "$in" "$out" 2>/dev/null || cp "$in" "$out"
  fi
  # An arm64 Image carries "ARM\x64" at offset 56.
  [ "$(dd if="$out" bs=1 skip=56 count=3 2>/dev/null)" = ARM ] || { log "$out: not an arm64 Image"; return 1; }
}

# fetch_busybox DEBDIR OUT: busybox-static of the suite (already apt-updated for
# the target architecture) as OUT, and its applet list as OUT.applets, from
# running it under qemu-user if the host has it, else from the host's busybox
# (an approximation: bookworm's amd64 and arm64 lists are identical, other
# suites differ by a few applets the guest's /init does not use).
fetch_busybox() {
  local debs=$1 out=$2 x
  (cd "$debs" && rm -f ./busybox-static_*.deb && apt-get "${opts[@]}" -q download busybox-static >&2)
  x=$(mktemp -d)
  # /bin/busybox up to bookworm, /usr/bin/busybox from trixie on.
  dpkg-deb --fsys-tarfile "$debs"/busybox-static_*.deb | tar -x -C "$x" --wildcards \
    './bin/busybox' './usr/bin/busybox' 2>/dev/null || true
  local bin
  bin=$(find "$x" -name busybox -type f | head -1)
  [ -n "$bin" ] || { log "no busybox in busybox-static"; return 1; }
  mv "$bin" "$out" && rm -rf "$x" "$debs"/busybox-static_*.deb
  local qemu_user
  qemu_user=$(command -v "qemu-$qemu_arch-static" || command -v "qemu-$qemu_arch" || true)
  if [ -n "$qemu_user" ]; then
    "$qemu_user" "$out" --list > "$out.applets"
  elif [ -x /bin/busybox ]; then
    log "no qemu-$qemu_arch-static: taking the applet list from the host's /bin/busybox"
    /bin/busybox --list > "$out.applets"
  else
    log "cannot list the applets of $out: install qemu-user-static or busybox-static"; return 1
  fi
  grep -qx sh "$out.applets" || { log "$out.applets: no sh applet?"; return 1; }
}

fetch_one() {
  local name=$1 arch=$2 suite=$3 flavour=$4 line=$5
  local kdir="$cache/kernels/$name"
  # Directories fetched before flavours existed have no "flavour" file: cloud.
  if [ -f "$kdir/ok" ] && [ "$(cat "$kdir/ok")" = "$CACHE_VERSION" ] &&
     [ "$(cat "$kdir/flavour" 2>/dev/null || echo "cloud-$arch")" = "$flavour" ]; then
    log "$name: cached ($(cat "$kdir/release"))"; return
  fi
  # The host's binutils read only its own architecture's ELF files.
  local qemu_arch objcopy=objcopy
  case $arch in
    amd64) qemu_arch=x86_64;;
    arm64) qemu_arch=aarch64; objcopy=aarch64-linux-gnu-objcopy;;
    *) log "$name: architecture $arch not supported"; return 1;;
  esac
  command -v "$objcopy" >/dev/null || { log "$name: $objcopy missing (Debian package binutils, or binutils-aarch64-linux-gnu for arm64)"; return 1; }
  # The amd64 lists keep their old place; another architecture has its own
  # (apt fetches the Packages files of APT::Architecture only).
  local adir="$cache/apt/$suite"
  [ "$arch" = amd64 ] || adir="$cache/apt/$suite-$arch"
  mkdir -p "$adir/lists/partial" "$adir/archives/partial" "$adir/debs"
  echo "$line" > "$adir/sources.list"
  local opts=(-o Dir::Etc::SourceList="$adir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o Dir::State::Lists="$adir/lists" -o Dir::Cache="$adir" -o Dir::Cache::archives="$adir/archives"
              -o Dir::State::status=/dev/null -o APT::Architecture="$arch" -o APT::Architectures="$arch" -o Debug::NoLocking=1
              -o Acquire::Languages=none -o APT::Sandbox::User=root)
  log "$name: apt update ($suite)"
  apt-get "${opts[@]}" -q update >&2
  # The metapackage names the current ABI: linux-image-FLAVOUR -> linux-image-<abi>-FLAVOUR
  # (cloud-arm64: linux-image-6.12.117+deb13-cloud-arm64; arm64-16k: ...+deb13-arm64-16k).
  local img
  img=$(apt-cache "${opts[@]}" depends "linux-image-$flavour" 2>/dev/null \
        | awk -v re="^linux-image-[0-9].*-$flavour\$" '/Depends:/ && $2 ~ re {print $2; exit}')
  [ -n "$img" ] || { log "$name: no linux-image-*-$flavour in $suite"; return 1; }
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
  if [ "$arch" = arm64 ]; then
    boot_image "$kdir.tmp/vmlinuz" "$kdir.tmp/Image"
  fi
  if [ "$arch" != amd64 ]; then
    log "$name: busybox-static ($arch, $suite)"
    fetch_busybox "$adir/debs" "$kdir.tmp/busybox"
  fi
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
    "$objcopy" --remove-section='.rela.debug_*' "$vmlinux" "$kdir.tmp/vmlinux"
    rm -rf "$kdir.tmp/x" "$adir/debs"/*.deb
  fi
  echo "$abi" > "$kdir.tmp/release"
  echo "$suite" > "$kdir.tmp/suite"
  echo "$arch" > "$kdir.tmp/arch"
  echo "$flavour" > "$kdir.tmp/flavour"
  echo "$CACHE_VERSION" > "$kdir.tmp/ok"
  # Swap the directories with the shortest window possible for concurrent readers.
  rm -rf "$kdir.old"
  [ -d "$kdir" ] && mv "$kdir" "$kdir.old"
  mv "$kdir.tmp" "$kdir" && rm -rf "$kdir.old"
  log "$name: ready in $kdir ($(ls "$kdir/modules" | tr '\n' ' '))"
}

while read -r name arch suite line; do
  case $name in ''|'#'*) continue;; esac
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
  # An optional flavour column before the apt line ("deb ..."): cloud-ARCH by default.
  flavour=cloud-$arch
  case $line in
    deb\ *) ;;
    *) flavour=${line%%[[:space:]]*}
       line=${line#"$flavour"}; line=${line#"${line%%[![:space:]]*}"};;
  esac
  fetch_one "$name" "$arch" "$suite" "$flavour" "$line"
done < "$here/kernels.list"
