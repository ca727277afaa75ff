#!/usr/bin/env bash
# Installs everything fuse-hostd needs to build and test on Debian bookworm,
# and makes sure /dev/fuse is usable. Run as root. Idempotent: packages
# already installed are skipped, so a second run costs a few dpkg queries.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java
  libfuse3-dev fuse3
  # FUSE over io_uring (mount option uring)
  liburing-dev
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libgtest-dev libgmock-dev
  # TLS to TCP backends: libcrypto for certificate facts, and the openssl
  # command that makes the tests' certificates
  libssl-dev openssl
  python3-grpcio python3-protobuf python3-pytest python3-pytest-timeout
  # the Python SDK's C++ server extension (client/python/native)
  python3-dev
  attr acl util-linux passwd tar diffutils coreutils
  kmod procps g++
  # ss: the backend-restart tests see what a stopped backend was sent
  iproute2
  # fuse-hostd as a systemd service: sd_notify/sd_listen_fds (libsystemd),
  # and systemd-socket-activate / systemd-analyze for its tests
  libsystemd-dev systemd
  # bench/run.py: the systems it compares against
  sshfs openssh-server openssh-client python3-fusepy pkg-config gcc
  # the Python SDK's sftp example and its test (with openssh-server above)
  python3-paramiko
  # the Node.js SDK (client/node) and its examples (npm below; the
  # registry is reached over https, checked against the system's CAs where
  # NODE_EXTRA_CA_CERTS names them)
  nodejs perl ca-certificates
)

log() { echo "setup.sh: $*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (installs packages, uses /dev/fuse)" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if (( ${#missing[@]} > 0 )); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
else
  log "all ${#PACKAGES[@]} packages already installed"
fi

# /dev/fuse: the kernel module may need loading; the device node may need
# creating (containers sometimes have the module but not the node).
if ! grep -qw fuse /proc/filesystems; then
  log "loading the fuse kernel module"
  modprobe fuse 2>/dev/null || true
fi
if [[ ! -c /dev/fuse ]]; then
  if grep -qw fuse /proc/filesystems; then
    log "creating /dev/fuse"
    mknod -m 0666 /dev/fuse c 10 229 || true
  fi
fi
if [[ ! -c /dev/fuse ]]; then
  echo "setup.sh: /dev/fuse is missing and could not be created:" \
       "this kernel has no FUSE support (modprobe fuse failed)" >&2
  exit 1
fi
if ! exec 3<>/dev/fuse; then
  echo "setup.sh: /dev/fuse exists but cannot be opened" >&2
  exit 1
fi
exec 3>&-
# The fuse control filesystem lets the daemon abort dead connections.
if [[ -d /sys/fs/fuse/connections ]] && ! mountpoint -q /sys/fs/fuse/connections; then
  mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
fi
# npm: Debian's nodejs comes without it (package npm); a nodejs built
# elsewhere may bring its own, which Debian's would conflict with.
if ! command -v npm >/dev/null; then
  log "installing: npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends npm
fi
# The Node.js SDK's dependencies (@grpc/grpc-js, @grpc/proto-loader) from
# the npm registry, exactly as package-lock.json pins them; examples/node
# links the SDK in. Skipped when node_modules was installed from the same
# lock file (a stamp holds its checksum).
for dir in client/node examples/node; do
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$dir"
  sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ "$(cat "$dir/node_modules/.installed-lock" 2>/dev/null)" != "$sum" ]]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund) || {
      echo "setup.sh: npm ci failed in $dir" >&2
      exit 1
    }
    echo "$sum" > "$dir/node_modules/.installed-lock"
  fi
done
log "ok: packages installed, /dev/fuse usable"
