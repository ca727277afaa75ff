#!/usr/bin/env bash
# Builds the Debian packages, installs them in a freshly booted Debian
# bookworm container and checks them there under a real systemd: socket and
# service started by the maintainer scripts, READY (Type=notify), hardening,
# a C++ backend built against libfusehost-dev with pkg-config, a Python
# backend, mount(8), restart, socket activation, watchdog, upgrade, removal.
# The checks themselves are packaging/boot-test/checks.sh.
#
#   packaging/debian-boot-test.sh [--debs=DIR] [--cache=DIR] [--keep]
#
#   --debs=DIR   test the .deb files in DIR instead of building them (a
#                build keeps its packages in CACHE/debs for that)
#   --cache=DIR  where the pristine bookworm tree and downloaded packages are
#                kept between runs (default /var/cache/fuse-hostd-boot-test)
#   --keep       keep the container's tree afterwards (its path is printed)
#
# Run as root; needs the network (debootstrap, the packages' dependencies)
# and time: on 2 cores about 15 minutes, 13 of them the package build (3 with
# --debs); the first run also debootstraps the tree. Ends with
# "N passed, N failed" and exits 0 only if every check passed; exits 2 when
# this machine cannot boot a container (and says why).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=/var/cache/fuse-hostd-boot-test
DEBS=
KEEP=0
MIRROR=${MIRROR:-http://deb.debian.org/debian}
for arg in "$@"; do
  case "$arg" in
    --debs=*) DEBS=$(realpath "${arg#--debs=}") ;;
    --cache=*) CACHE=${arg#--cache=} ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "debian-boot-test.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { echo "debian-boot-test: $*"; }
# die MESSAGE [STATUS]
die() { echo "debian-boot-test: $1" >&2; exit "${2:-1}"; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, systemd-nspawn)"

# --- host tools ------------------------------------------------------------------
TOOLS=(dpkg-dev debhelper dh-python lintian debootstrap systemd-container)
missing=()
for pkg in "${TOOLS[@]}"; do
  if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done
if (( ${#missing[@]} > 0 )); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

mkdir -p "$CACHE"
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
NSPAWN_PID=
LEADER=
cleanup() {
  if [[ -n "$LEADER" ]] && kill -0 "$LEADER" 2>/dev/null; then
    nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 || true
  fi
  if [[ -n "$NSPAWN_PID" ]]; then
    local i
    for ((i = 0; i < 300; i++)); do
      kill -0 "$NSPAWN_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
      kill "$NSPAWN_PID" 2>/dev/null || true
      wait "$NSPAWN_PID" 2>/dev/null || true
    fi
  fi
  if (( KEEP )); then
    log "kept $RUN"
  else
    rm -rf "$RUN"
  fi
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------------
if [[ -z "$DEBS" ]]; then
  log "installing the build dependencies (debian/control)"
  DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q "$REPO" >"$RUN/build-dep.log" 2>&1 \
    || { cat "$RUN/build-dep.log" >&2; die "apt-get build-dep failed"; }
  version=$(dpkg-parsechangelog -l "$REPO/debian/changelog" -S Version)
  SRC="$RUN/build/fuse-hostd-$version"
  mkdir -p "$SRC"
  # A copy of the tree as it is (also uncommitted changes), without Bazel's
  # output links and the results of earlier package builds.
  tar -C "$REPO" --exclude=./.git --exclude='./bazel-*' --exclude=./debian/.bazel-root \
      --exclude=./debian/tmp --exclude=./debian/build -cf - . | tar -C "$SRC" -xf -
  log "building the packages (dpkg-buildpackage -us -uc -b; log: $RUN/build.log)"
  start=$SECONDS
  if ! (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$RUN/build.log" 2>&1; then
    tail -n 40 "$RUN/build.log" >&2
    die "dpkg-buildpackage failed"
  fi
  log "built in $((SECONDS - start)) s"
  DEBS="$RUN/build"
  changes=$(ls "$DEBS"/fuse-hostd_*.changes)
  log "lintian $(basename "$changes")"
  if ! lintian --fail-on error,warning --info "$changes"; then
    die "lintian reports errors or warnings"
  fi
  log "lintian: no errors or warnings"
  # Kept for reruns with --debs=$CACHE/debs.
  rm -rf "$CACHE/debs"
  mkdir -p "$CACHE/debs"
  cp "$DEBS"/*.deb "$DEBS"/*.changes "$DEBS"/*.buildinfo "$CACHE/debs/"
  log "packages kept in $CACHE/debs"
fi
for p in fuse-hostd libfusehost-dev python3-fusehost; do
  ls "$DEBS"/${p}_*.deb >/dev/null 2>&1 || die "no ${p}_*.deb in $DEBS"
done

# --- the bookworm tree -------------------------------------------------------------
# A pristine tree, made once and copied for each run. It holds systemd and
# what the checks use (g++ to build a backend); everything the packages
# depend on is left to apt, so that missing dependencies show. Downloaded
# packages are kept in $CACHE/archives.
BASE="$CACHE/bookworm"
if [[ ! -e "$BASE/.complete" ]]; then
  log "debootstrap bookworm into $BASE ($MIRROR)"
  rm -rf "$BASE"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,g++,ca-certificates \
    bookworm "$BASE" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
  echo "deb $MIRROR bookworm main" > "$BASE/etc/apt/sources.list"
  echo fuse-hostd-boot-test > "$BASE/etc/hostname"
  # No getty on the container's console: nothing reads it.
  ln -sf /dev/null "$BASE/etc/systemd/system/console-getty.service"
  touch "$BASE/.complete"
fi
log "copying the tree"
cp -a "$BASE" "$RUN/root"
mkdir -p "$CACHE/archives/partial" "$RUN/debs"
cp "$DEBS"/*.deb "$RUN/debs/"

# --- boot ------------------------------------------------------------------------------
NSPAWN=(systemd-nspawn -q -D "$RUN/root" -b -M fuse-hostd-boot-test
  --bind=/dev/fuse
  --bind-ro="$RUN/debs:/debs" --bind-ro="$REPO/packaging/boot-test:/checks"
  --bind="$CACHE/archives:/var/cache/apt/archives"
  --resolv-conf=copy-host)
if [[ -d /run/systemd/system ]]; then
  # A host run by systemd: the container gets a scope of its own, and
  # /dev/fuse is allowed in its device policy.
  NSPAWN+=(--property="DeviceAllow=/dev/fuse rwm")
else
  # No systemd on the host: no scope to make or register with.
  NSPAWN+=(--register=no --keep-unit)
  log "the host is not run by systemd: booting with --register=no --keep-unit"
fi
[[ -c /dev/fuse ]] || die "/dev/fuse is missing on this machine: nothing to mount with" 2
log "booting: ${NSPAWN[*]}"
"${NSPAWN[@]}" </dev/null >"$RUN/console.log" 2>&1 &
NSPAWN_PID=$!

# The container's init is systemd-nspawn's child running systemd.
for ((i = 0; i < 300; i++)); do
  if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
    cat "$RUN/console.log" >&2
    NSPAWN_PID=
    die "cannot boot a container on this machine: systemd-nspawn exited (output above)" 2
  fi
  for child in $(pgrep -P "$NSPAWN_PID" || true); do
    if [[ $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]]; then
      LEADER=$child
    fi
  done
  [[ -n "$LEADER" ]] && break
  sleep 0.1
done
[[ -n "$LEADER" ]] || die "cannot boot a container on this machine: no systemd in it after 30 s" 2
in_container() { nsenter -t "$LEADER" -a "$@"; }
# Until the container's systemd has its bus up, systemctl cannot connect.
state=
for ((i = 0; i < 120; i++)); do
  state=$(timeout 120 nsenter -t "$LEADER" -a systemctl is-system-running --wait 2>&1 || true)
  [[ "$state" == *"Failed to connect to bus"* ]] || break
  sleep 1
done
case "$state" in
  running) log "container booted: systemctl is-system-running: $state" ;;
  degraded)
    log "container booted: systemctl is-system-running: degraded; failed units:"
    in_container systemctl --failed --no-pager --plain || true
    ;;
  *)
    cat "$RUN/console.log" >&2
    die "cannot boot a container on this machine: systemd in it says '$state'" 2
    ;;
esac

# --- the checks ------------------------------------------------------------------------
log "running packaging/boot-test/checks.sh in the container"
set +e
in_container /bin/bash /checks/checks.sh 2>&1 | tee "$RUN/checks.log"
rc=${PIPESTATUS[0]}
set -e
if (( rc != 0 )); then
  log "the container's journal, last lines:"
  in_container journalctl --no-pager -n 80 || true
  die "checks failed"
fi
log "every check passed"
