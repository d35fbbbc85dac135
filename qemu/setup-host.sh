#!/usr/bin/env bash
# Host setup for PyShyper: Debian packages the build and the tests need.
# Idempotent: does nothing when everything is already installed.
# apt sources are derived from the machine's own Debian source entry; no host name is written here.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
qemu_ok() {
  command -v qemu-system-riscv64 >/dev/null 2>&1 || return 1
  local v; v=$(qemu-system-riscv64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)
  [ "${v:-0}" -ge 9 ]
}
# gdb-multiarch: `pyshyper gdb` (source-level debugging of the hypervisor under QEMU's gdb stub).
for p in binutils-riscv64-unknown-elf cpio e2fsprogs xz-utils device-tree-compiler gdb-multiarch; do
  have_pkg "$p" || need+=("$p")
done
# The Makefile creates .venv with the system python3 (>= 3.11), which needs ensurepip (Debian: python3-venv).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# QEMU >= 9 and its OpenSBI come from bookworm-backports, with their own dependencies from there too.
bpo=(qemu-system-riscv/bookworm-backports qemu-system-common/bookworm-backports
     qemu-system-data/bookworm-backports opensbi/bookworm-backports)
qemu_ok || need+=("${bpo[@]}")
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

src=/etc/apt/sources.list.d/debian.sources
uri=""
if [ -f "$src" ]; then
  uri=$(awk '/^URIs:/ {print $2; exit}' "$src")
elif [ -f /etc/apt/sources.list ]; then
  uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
  echo "setup-host: cannot find the Debian archive URI in $src or /etc/apt/sources.list" >&2
  exit 1
fi
bp=/etc/apt/sources.list.d/pyshyper-backports.sources
if [ ! -f "$bp" ]; then
  echo "setup-host: adding bookworm-backports from $uri"
  $SUDO tee "$bp" >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
echo "setup-host: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o Acquire::Retries=3 update -qq
$SUDO apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends "${need[@]}"
qemu_ok || { echo "setup-host: qemu-system-riscv64 >= 9 is still missing" >&2; exit 1; }
