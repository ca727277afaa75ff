#!/usr/bin/env bash
# Installs everything fuse-hostd needs to build and test on Debian bookworm,
# and makes sure /dev/fuse is usable. Run as root. Idempotent: packages
# already installed are skipped, so a second run costs a few dpkg queries.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java
  libfuse3-dev fuse3
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libgtest-dev libgmock-dev
  python3-grpcio python3-protobuf python3-pytest python3-pytest-timeout
  attr acl util-linux passwd tar diffutils coreutils
  kmod procps g++
  # fuse-hostd as a systemd service: sd_notify/sd_listen_fds (libsystemd),
  # and systemd-socket-activate / systemd-analyze for its tests
  libsystemd-dev systemd
  # bench/run.py: the systems it compares against
  sshfs openssh-server openssh-client python3-fusepy pkg-config gcc
  # the Python SDK's sftp example and its test (with openssh-server above)
  python3-paramiko
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
log "ok: packages installed, /dev/fuse usable"
