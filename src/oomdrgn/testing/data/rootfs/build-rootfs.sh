#!/usr/bin/env bash
# Build the root filesystem of the live guest: Debian minbase + python3 + drgn,
# as an ext4 image (no loop mounts: mkfs.ext4 -d). oomdrgn itself is NOT in the
# image: the guest's initramfs copies the current src/oomdrgn in at every boot
# (see src/oomdrgn/harness/rootfs.py), so the image only changes with this script,
# the suite or the drgn version.
#
# Usage: vm-images/rootfs/build-rootfs.sh OUT.ext4
#   OOMDRGN_DRGN_VERSION  drgn wheel to install (default: the version the host's python imports)
#   OOMDRGN_ROOTFS_SUITE  Debian suite (default bookworm: python3.11, glibc 2.36)
#   OOMDRGN_ROOTFS_MIRROR Debian mirror (default http://deb.debian.org/debian)
#   OOMDRGN_PYTHON        host python whose pip fetches the drgn wheel (default python3)
#   OOMDRGN_CACHE         cache root (default ~/.cache/oomdrgn): debootstrap's .debs are
#                         kept in $OOMDRGN_CACHE/rootfs/debs for the next rebuild
# Needs root (debootstrap chroots), debootstrap, e2fsprogs >= 1.43 (mkfs.ext4 -d).
# Normally run through `python -m oomdrgn.testing.harness.rootfs`, which names OUT by a
# hash of the inputs and skips the build when that image exists.
set -euo pipefail
out=${1:?usage: build-rootfs.sh OUT.ext4}
out=$(realpath -m "$out")
suite=${OOMDRGN_ROOTFS_SUITE:-bookworm}
mirror=${OOMDRGN_ROOTFS_MIRROR:-http://deb.debian.org/debian}
python=${OOMDRGN_PYTHON:-python3}
cache=${OOMDRGN_CACHE:-$HOME/.cache/oomdrgn}
drgn_version=${OOMDRGN_DRGN_VERSION:-$("$python" -c 'import drgn; print(drgn.__version__)')}

log() { printf '[build-rootfs %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing: apt-get install e2fsprogs"

work=$out.build
root=$work/root
cleanup() {
  # debootstrap may leave proc/sys mounted in the target when it fails.
  for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf "$work" "$out.tmp"
}
trap cleanup EXIT
cleanup
mkdir -p "$work" "$cache/rootfs/debs"
started=$SECONDS

log "debootstrap --variant=minbase $suite from $mirror (python3 included)"
debootstrap --variant=minbase --include=python3 --cache-dir="$cache/rootfs/debs" \
  "$suite" "$root" "$mirror" >&2

pyver=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
site=/usr/local/lib/python$pyver/dist-packages
tag=cp${pyver/./}
log "guest python $pyver: installing drgn==$drgn_version ($tag manylinux wheel) into $site"
"$python" -m pip install -q --no-deps --only-binary=:all: --no-compile \
  --python-version "$pyver" --implementation cp --abi "$tag" \
  --platform manylinux_2_28_x86_64 --target "$root$site" "drgn==$drgn_version" >&2
chroot "$root" python3 -c 'import drgn, _drgn; print("guest drgn", drgn.__version__)' >&2

log "launcher, hostname, cleanup"
# What `pip install oomdrgn` would put there; the package itself arrives at boot.
cat > "$root/usr/local/bin/oomdrgn" <<'EOF'
#!/usr/bin/python3
import sys
from oomdrgn.cli import main
sys.exit(main())
EOF
chmod 755 "$root/usr/local/bin/oomdrgn"
echo oomdrgn-live > "$root/etc/hostname"
mkdir -p "$root/usr/lib/debug"  # mount point of the per-kernel debug disk
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/var/log/*.log

mb=$(du -sm "$root" | cut -f1)
size=$(( mb * 5 / 4 + 96 ))
log "mkfs.ext4 -d: ${mb} MB of files in a ${size} MB image"
rm -f "$out.tmp"
truncate -s "${size}M" "$out.tmp"
mkfs.ext4 -q -F -b 4096 -L oomdrgn-root -d "$root" "$out.tmp"
mv "$out.tmp" "$out"
log "done in $((SECONDS - started)) s: $out ($(du -h "$out" | cut -f1) on disk)"
