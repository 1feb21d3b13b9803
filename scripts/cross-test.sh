#!/usr/bin/env bash
# Cross-build ccserve for an ARM target and run the whole test suite (Rust integration tests and
# lua-tests/) under qemu-user on this x86_64 Linux machine.
#
#   scripts/cross-test.sh aarch64-unknown-linux-gnu        # Pi 3/4/5, 64-bit OS (default)
#   scripts/cross-test.sh armv7-unknown-linux-gnueabihf    # Pi 2/3/Zero 2, 32-bit OS
#   scripts/cross-test.sh aarch64-unknown-linux-musl       # static; needs zig (pip ziglang)
#   scripts/cross-test.sh TARGET --release                 # extra args go to `cargo test`
#
# Installs what is missing (Debian/Ubuntu: gcc cross compilers, qemu-user-static; rustup target).
# The test binaries start the ccserve binary as a child process, and that child is an ARM binary
# too, so the kernel must be able to exec it: the script registers qemu with binfmt_misc (needs
# root, or a binfmt that is already registered, e.g. by the distribution's qemu-user-static /
# binfmt-support). QEMU_LD_PREFIX tells qemu where the target's glibc lives.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-aarch64-unknown-linux-gnu}"
shift || true

case "$target" in
  aarch64-unknown-linux-gnu)
    qarch=aarch64; gnu=aarch64-linux-gnu; pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
  armv7-unknown-linux-gnueabihf)
    qarch=arm; gnu=arm-linux-gnueabihf; pkgs="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" ;;
  aarch64-unknown-linux-musl)
    qarch=aarch64; gnu=""; pkgs="" ;;
  *)
    echo "cross-test.sh: unsupported target '$target'" >&2
    echo "  supported: aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-linux-musl" >&2
    exit 2 ;;
esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Packages: cross C compiler + sysroot (the vendored Lua is C), qemu-user.
need=""
for p in $pkgs qemu-user-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
  echo "== apt-get install$need"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi

# 2. Rust standard library for the target.
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# 3. musl: a musl cross C compiler and linker from zig (PyPI ziglang, via cargo-zigbuild).
cargo_cmd=(cargo test)
if [[ "$target" == *musl* ]]; then
  python3 -c "import ziglang" 2>/dev/null || python3 -m pip install -q ziglang
  command -v cargo-zigbuild >/dev/null || cargo install --locked -q cargo-zigbuild
  cargo_cmd=(cargo-zigbuild test)
fi

# 4. binfmt_misc, so the ARM ccserve child the tests spawn can be exec'd directly.
bm=/proc/sys/fs/binfmt_misc
if [ ! -e "$bm/register" ]; then
  as_root mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null || true
fi
if [ ! -e "$bm/qemu-$qarch" ]; then
  if command -v update-binfmts >/dev/null && [ -e "/usr/share/binfmts/qemu-$qarch" ]; then
    as_root update-binfmts --enable "qemu-$qarch" || true
  fi
  if [ ! -e "$bm/qemu-$qarch" ] && [ -e "/usr/lib/binfmt.d/qemu-$qarch.conf" ]; then
    as_root sh -c "cat /usr/lib/binfmt.d/qemu-$qarch.conf > $bm/register" || true
  fi
fi
if [ ! -e "$bm/qemu-$qarch" ] || ! grep -qx enabled "$bm/qemu-$qarch"; then
  echo "cross-test.sh: cannot register qemu-$qarch with binfmt_misc ($bm);" >&2
  echo "  the tests spawn the ARM ccserve binary and need it. Run as root, or register it" >&2
  echo "  (e.g. 'update-binfmts --enable qemu-$qarch' or 'systemctl restart systemd-binfmt')." >&2
  exit 1
fi
[ -n "$gnu" ] && export QEMU_LD_PREFIX="/usr/$gnu"

# 5. Build and run everything under qemu (.cargo/config.toml sets linker, CC/AR and runner).
# The streaming tests move 1 GiB through loopback natively; under qemu every copy is emulated,
# so they move 128 MiB here (the memory bounds they check are the same).
export CCSERVE_STREAM_TEST_MIB="${CCSERVE_STREAM_TEST_MIB:-128}"
# In-process memory checks are skipped under qemu, whose translation buffers grow the RSS.
export CCSERVE_TEST_EMULATED=1
echo "== ${cargo_cmd[*]} --target $target $*"
start=$(date +%s)
"${cargo_cmd[@]}" --target "$target" "$@"
echo "== cross-test $target passed in $(( $(date +%s) - start ))s"
