#!/usr/bin/env bash
# Runs the README's test command (scripts/test.sh) in a fresh, minimal Debian
# bookworm tree, several times in a row, and prints one line per run.
#
# What it shows: that scripts/setup.sh installs everything the suite needs on
# a system that starts with nothing but Debian's essential packages (no man,
# no sudo, no compilers), and whether any test fails now and then. The tree is
# made with `debootstrap --variant=minbase`, the repository is cloned into it
# at one commit, and every run is `chroot TREE ./scripts/test.sh` with
# /proc, /sys and /dev (so /dev/fuse) of this machine bound into it.
#
#   scripts/fresh-tree-test.sh [--runs N] [--tree DIR] [--commit REV]
#
#   --runs N      how many runs in a row (default 5)
#   --tree DIR    where the tree goes (default /var/tmp/fuse-hostd-tree); an
#                 existing DIR is removed first, so every call starts fresh
#   --commit REV  what to test (default HEAD of this repository)
#
# Needs root and a network path to deb.debian.org (as the setup script does).
# Logs: TREE/logs/runN.log. Exits non-zero if any run failed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=5
TREE=/var/tmp/fuse-hostd-tree
COMMIT=HEAD

while (( $# > 0 )); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --tree) TREE=$2; shift 2 ;;
    --commit) COMMIT=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--tree DIR] [--commit REV]" >&2; exit 2 ;;
  esac
done

if (( EUID != 0 )); then
  echo "$0: must run as root (debootstrap, chroot and the suite need it)" >&2
  exit 2
fi
if [[ ! $RUNS =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: --runs must be a positive number, not '$RUNS'" >&2
  exit 2
fi
SHA=$(git -C "$REPO" rev-parse --verify "$COMMIT^{commit}")

# The binds into the tree. /dev and /sys are bound recursively and made slaves,
# so that unmounting them from the tree never unmounts anything of this
# machine's.
unmount_tree() {
  local m p
  # Whatever still runs in the tree (an interrupted run's daemons, Bazel's
  # server) goes first: it holds the tree's mounts and files.
  for p in /proc/[0-9]*; do
    if [[ $(readlink "$p/root" 2>/dev/null) == "$TREE" ]]; then
      kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
  done
  # Mounts an interrupted run left in the tree's /tmp (the suite's own).
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v t="$TREE/tmp/" 'index($5, t) == 1 {print $5}' \
             /proc/self/mountinfo)
  for m in dev sys proc; do
    if mountpoint -q "$TREE/$m"; then
      umount -R -l "$TREE/$m" || true
    fi
  done
}
trap unmount_tree EXIT

if ! command -v debootstrap >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

if [[ -e $TREE ]]; then
  unmount_tree
  # Leftover mounts under the tree (a FUSE mount of an interrupted run) would
  # make rm fail or reach into them: refuse rather than guess.
  if grep -q " $TREE/" /proc/self/mountinfo; then
    echo "$0: something is still mounted under $TREE; unmount it first" >&2
    exit 1
  fi
  rm -rf --one-file-system "$TREE"
fi

echo "making a minimal bookworm tree in $TREE"
debootstrap --variant=minbase bookworm "$TREE" http://deb.debian.org/debian \
  > "$TREE.debootstrap.log" 2>&1 || {
  echo "$0: debootstrap failed; see $TREE.debootstrap.log" >&2
  exit 1
}
cp /etc/resolv.conf "$TREE/etc/resolv.conf"
# The tree trusts what this machine's administrator added to its trust store
# (a network whose HTTPS goes through a proxy with its own CA, for npm's
# registry): the certificates in /usr/local/share/ca-certificates, for the
# tree's own ca-certificates package if one gets installed, and as one bundle
# for Node.js, which reads only its built-in roots and NODE_EXTRA_CA_CERTS.
EXTRA_CA=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$TREE/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$TREE/usr/local/share/ca-certificates/"
  cat /usr/local/share/ca-certificates/*.crt > "$TREE/etc/machine-local-ca.pem"
  EXTRA_CA=(NODE_EXTRA_CA_CERTS=/etc/machine-local-ca.pem)
fi
mkdir -p "$TREE/logs"
git clone -q --no-hardlinks "$REPO" "$TREE/root/fuse-hostd"
git -C "$TREE/root/fuse-hostd" checkout -q "$SHA"

mount -t proc proc "$TREE/proc"
mount --rbind /sys "$TREE/sys"
mount --make-rslave "$TREE/sys"
mount --rbind /dev "$TREE/dev"
mount --make-rslave "$TREE/dev"

failed_runs=0
for (( run = 1; run <= RUNS; run++ )); do
  start=$(date +%s)
  rc=0
  chroot "$TREE" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 "${EXTRA_CA[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c 'cd /root/fuse-hostd && ./scripts/test.sh' \
    > "$TREE/logs/run$run.log" 2>&1 || rc=$?
  (( rc == 0 )) || failed_runs=$((failed_runs + 1))
  echo "run $run at ${SHA:0:7}: exit $rc, $(( ($(date +%s) - start) / 60 )) min:" \
    "$(tail -n 1 "$TREE/logs/run$run.log")"
done

# The suite leaves Bazel's server running in the tree; it holds the tree's
# files open.
chroot "$TREE" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /root/fuse-hostd && bazel shutdown' >/dev/null 2>&1 || true

echo "$RUNS runs, $failed_runs failed (logs in $TREE/logs)"
(( failed_runs == 0 ))
