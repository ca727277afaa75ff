#!/usr/bin/env bash
# Demo: builds fuse-hostd, starts the daemon and the in-memory example
# backend in the background, and mounts the backend at /mnt/fuse-hostd-memory.
#
#   scripts/demo.sh          (or: scripts/demo.sh start)  set it all up
#   scripts/demo.sh status   show what runs and what is mounted
#   scripts/demo.sh stop     unmount and stop both processes
#
# Runs as root. State and logs live in /run/fuse-hostd/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
RUN_DIR=/run/fuse-hostd
CONTROL_SOCK=$RUN_DIR/control.sock
BACKEND_SOCK=$RUN_DIR/memory.sock
MOUNTPOINT=/mnt/fuse-hostd-memory
DAEMON_PIDFILE=$RUN_DIR/fuse-hostd.pid
BACKEND_PIDFILE=$RUN_DIR/memory_fs.pid
DAEMON_LOG=$RUN_DIR/fuse-hostd.log
BACKEND_LOG=$RUN_DIR/memory_fs.log
BIN_DIR=$RUN_DIR/bin   # copies of the binaries, so a rebuild can't touch them

log() { echo "demo.sh: $*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

pid_alive() {
  local f=$1
  [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

is_mounted() {
  findmnt -rn -M "$MOUNTPOINT" >/dev/null 2>&1
}

hostctl() {
  timeout 30 "$BIN_DIR/fuse-hostctl" --control_socket="$CONTROL_SOCK" "$@"
}

wait_for() {  # wait_for SECONDS CMD...: polls CMD until it succeeds
  local secs=$1
  shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

stop_pid() {  # stop_pid PIDFILE NAME
  local f=$1 name=$2
  if pid_alive "$f"; then
    local pid
    pid=$(cat "$f")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 10 bash -c "! kill -0 $pid"; then
      log "$name did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

do_stop() {
  if is_mounted; then
    if pid_alive "$DAEMON_PIDFILE" && hostctl unmount "$MOUNTPOINT"; then
      log "unmounted $MOUNTPOINT"
    elif pid_alive "$DAEMON_PIDFILE" && hostctl unmount --lazy "$MOUNTPOINT"; then
      log "unmounted $MOUNTPOINT (lazily: files were still open)"
    else
      umount -l "$MOUNTPOINT" && log "detached $MOUNTPOINT (umount -l)"
    fi
  fi
  stop_pid "$BACKEND_PIDFILE" memory_fs
  stop_pid "$DAEMON_PIDFILE" fuse-hostd
  if is_mounted; then
    umount -l "$MOUNTPOINT" || true
  fi
  log "stopped"
}

do_status() {
  if pid_alive "$DAEMON_PIDFILE"; then
    echo "fuse-hostd: running, pid $(cat "$DAEMON_PIDFILE"), control socket $CONTROL_SOCK"
  else
    echo "fuse-hostd: not running"
  fi
  if pid_alive "$BACKEND_PIDFILE"; then
    echo "memory_fs:  running, pid $(cat "$BACKEND_PIDFILE"), unix:$BACKEND_SOCK"
  else
    echo "memory_fs:  not running"
  fi
  if pid_alive "$DAEMON_PIDFILE"; then
    echo "mounts (fuse-hostctl list):"
    hostctl list | sed 's/^/  /' || true
  fi
}

do_start() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (fuse-hostd owns /dev/fuse)"
  "$REPO/scripts/setup.sh"

  log "building (bazel build //...)"
  bazel build --color=no --curses=no //...
  local bazel_bin
  bazel_bin=$(bazel info --color=no bazel-bin 2>/dev/null || echo "$REPO/bazel-bin")

  mkdir -p "$RUN_DIR"
  chmod 0755 "$RUN_DIR"
  if pid_alive "$DAEMON_PIDFILE" || pid_alive "$BACKEND_PIDFILE" || is_mounted; then
    log "a demo is already running; stopping it first"
    do_stop
  fi

  # Copies of the binaries stay put if the tree is rebuilt (or bazel-bin
  # moves) while the demo runs. They link only system libraries; if a build
  # ever makes them depend on Bazel's _solib_* dirs, run them in place.
  rm -rf "$BIN_DIR"
  mkdir -p "$BIN_DIR"
  local b
  for b in daemon/fuse-hostd cli/fuse-hostctl examples/memory/memory_fs; do
    [[ -x "$bazel_bin/$b" ]] || die "missing $bazel_bin/$b after the build"
    if ldd "$bazel_bin/$b" | grep -q '_solib_'; then
      ln -s "$bazel_bin/$b" "$BIN_DIR/"
    else
      cp "$bazel_bin/$b" "$BIN_DIR/"
    fi
  done

  rm -f "$CONTROL_SOCK" "$BACKEND_SOCK"
  log "starting fuse-hostd (log: $DAEMON_LOG)"
  nohup setsid "$BIN_DIR/fuse-hostd" --control_socket="$CONTROL_SOCK" \
    </dev/null >>"$DAEMON_LOG" 2>&1 &
  echo $! >"$DAEMON_PIDFILE"
  if ! wait_for 20 hostctl list; then
    tail -n 20 "$DAEMON_LOG" >&2 || true
    do_stop
    die "fuse-hostd did not come up"
  fi

  log "starting memory_fs (log: $BACKEND_LOG)"
  nohup setsid "$BIN_DIR/memory_fs" --listen="unix:$BACKEND_SOCK" \
    </dev/null >>"$BACKEND_LOG" 2>&1 &
  echo $! >"$BACKEND_PIDFILE"
  if ! wait_for 20 test -S "$BACKEND_SOCK"; then
    tail -n 20 "$BACKEND_LOG" >&2 || true
    do_stop
    die "memory_fs did not come up"
  fi

  mkdir -p "$MOUNTPOINT"
  log "mounting unix:$BACKEND_SOCK at $MOUNTPOINT"
  if ! hostctl mount "unix:$BACKEND_SOCK" "$MOUNTPOINT" -o allow_other,fsname=memory_fs; then
    tail -n 20 "$DAEMON_LOG" >&2 || true
    do_stop
    die "mount failed"
  fi

  cat <<EOF

fuse-hostd demo is running.
  mountpoint:   $MOUNTPOINT   (in-memory filesystem; try: echo hi > $MOUNTPOINT/hello; ls -l $MOUNTPOINT)
  fuse-hostd:   pid $(cat "$DAEMON_PIDFILE"), control socket $CONTROL_SOCK, log $DAEMON_LOG
  memory_fs:    pid $(cat "$BACKEND_PIDFILE"), unix:$BACKEND_SOCK, log $BACKEND_LOG
  list mounts:  $BIN_DIR/fuse-hostctl --control_socket=$CONTROL_SOCK list

To stop (unmounts, then stops both processes):
  $REPO/scripts/demo.sh stop
or by hand:
  $BIN_DIR/fuse-hostctl --control_socket=$CONTROL_SOCK unmount $MOUNTPOINT
  kill $(cat "$BACKEND_PIDFILE") $(cat "$DAEMON_PIDFILE")
EOF
}

case "${1:-start}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  restart) do_stop; do_start ;;
  *) die "usage: scripts/demo.sh [start|stop|status|restart]" ;;
esac
