#!/usr/bin/env bash
# Installs fuse-hostd: binaries, systemd units, mount helper, default
# configuration. Run as root from a built tree (it runs `bazel build` first
# unless --no-build).
#
#   packaging/install.sh [--prefix=/usr/local] [--destdir=DIR] [--no-build]
#                        [--bazel-bin=DIR] [--unitdir=DIR]
#   packaging/install.sh --uninstall [--prefix=...] [--destdir=...] [--unitdir=...]
#
# Puts:
#   PREFIX/sbin/fuse-hostd, PREFIX/bin/fuse-hostctl
#   /sbin/mount.fuse.hostd            (mount(8) looks for helpers in /sbin)
#   UNITDIR/fuse-hostd.service, fuse-hostd.socket
#                                     (default /etc/systemd/system; the Debian
#                                     package uses /lib/systemd/system)
#   /etc/fuse-hostd/fuse-hostd.conf   (only if missing: never overwrites)
#   /etc/fuse-hostd/config.proto      (the configuration's schema)
# all under DESTDIR if given (for packaging and tests), the binaries taken
# from --bazel-bin (default: the tree's bazel-bin). Then, on a system running
# systemd, reloads it and says how to enable the service.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/usr/local
DESTDIR=
BUILD=1
UNINSTALL=0
BIN=$REPO/bazel-bin
UNITDIR=/etc/systemd/system
for arg in "$@"; do
  case "$arg" in
    --prefix=*) PREFIX=${arg#--prefix=} ;;
    --destdir=*) DESTDIR=${arg#--destdir=} ;;
    --no-build) BUILD=0 ;;
    --bazel-bin=*) BIN=${arg#--bazel-bin=} ;;
    --unitdir=*) UNITDIR=${arg#--unitdir=} ;;
    --uninstall) UNINSTALL=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ "$PREFIX" != /* || "$UNITDIR" != /* ]]; then
  echo "install.sh: --prefix and --unitdir must be absolute" >&2
  exit 2
fi
if [[ -z "$DESTDIR" && $(id -u) -ne 0 ]]; then
  echo "install.sh: must run as root (or give --destdir)" >&2
  exit 1
fi

SBINDIR=$PREFIX/sbin
BINDIR=$PREFIX/bin
CONFDIR=/etc/fuse-hostd
HELPERDIR=/sbin

if (( UNINSTALL )); then
  rm -f "$DESTDIR$SBINDIR/fuse-hostd" "$DESTDIR$BINDIR/fuse-hostctl" \
        "$DESTDIR$HELPERDIR/mount.fuse.hostd" \
        "$DESTDIR$UNITDIR/fuse-hostd.service" \
        "$DESTDIR$UNITDIR/fuse-hostd.socket" "$DESTDIR$CONFDIR/config.proto"
  echo "install.sh: removed fuse-hostd (kept $CONFDIR/fuse-hostd.conf)"
  exit 0
fi

if (( BUILD )); then
  (cd "$REPO" && bazel build --color=no --curses=no \
     //daemon:fuse-hostd //cli:fuse-hostctl //cli:mount.fuse.hostd)
fi
for b in daemon/fuse-hostd cli/fuse-hostctl cli/mount.fuse.hostd; do
  if [[ ! -x "$BIN/$b" ]]; then
    echo "install.sh: $BIN/$b is missing (build first)" >&2
    exit 1
  fi
done

install -d -m 0755 "$DESTDIR$SBINDIR" "$DESTDIR$BINDIR" "$DESTDIR$HELPERDIR" \
  "$DESTDIR$UNITDIR" "$DESTDIR$CONFDIR"
install -m 0755 "$BIN/daemon/fuse-hostd" "$DESTDIR$SBINDIR/fuse-hostd"
install -m 0755 "$BIN/cli/fuse-hostctl" "$DESTDIR$BINDIR/fuse-hostctl"
install -m 0755 "$BIN/cli/mount.fuse.hostd" "$DESTDIR$HELPERDIR/mount.fuse.hostd"
sed "s|@SBINDIR@|$SBINDIR|g" "$REPO/packaging/fuse-hostd.service.in" \
  > "$DESTDIR$UNITDIR/fuse-hostd.service"
chmod 0644 "$DESTDIR$UNITDIR/fuse-hostd.service"
install -m 0644 "$REPO/packaging/fuse-hostd.socket" \
  "$DESTDIR$UNITDIR/fuse-hostd.socket"
install -m 0644 "$REPO/proto/config.proto" "$DESTDIR$CONFDIR/config.proto"
if [[ -e "$DESTDIR$CONFDIR/fuse-hostd.conf" ]]; then
  echo "install.sh: keeping existing $CONFDIR/fuse-hostd.conf"
else
  install -m 0644 "$REPO/packaging/fuse-hostd.conf" \
    "$DESTDIR$CONFDIR/fuse-hostd.conf"
fi
echo "install.sh: installed into ${DESTDIR:-/} (prefix $PREFIX)"

if [[ -z "$DESTDIR" && -d /run/systemd/system ]]; then
  systemctl daemon-reload
  echo "install.sh: enable and start with:"
  echo "  systemctl enable --now fuse-hostd.socket fuse-hostd.service"
fi
