#!/usr/bin/python3
"""Faults under load: while a find loop, a cat loop and a writer (write,
fsync every few writes, verify at the end) run on a fuse-hostd loopback
mount, faults are injected N times each:

  daemon-kill     the daemon is killed (SIGKILL); its keeper
                  (fuse-hostd --supervise) starts a new one, which takes
                  the mount up
  daemon-upgrade  the keeper is sent SIGUSR2: the daemon hands over, and the
                  keeper starts the binary from its path (a new one, after
                  a package upgrade)
  backend-kill    the backend is killed (SIGKILL) and started again on the
                  same socket
  backend-stop    the backend is stopped (SIGSTOP) for longer than the
                  mount's timeout, then continued: calls meanwhile fail
                  (ENOTCONN), as the mount's timeout says they must
  connection-cut  the backend is reached over TCP through a relay
                  (delay_relay.py, no delay), which resets every
                  connection: the daemon connects again

Prints, per fault, the failed system calls of each workload, the longest
single system call (the stall a program saw), and the bytes the cat loop
read and verified; then the writer's verification of its whole file.

Run as root after `bazel build //...`:

  /usr/bin/python3 bench/faults.py --faults 5 --sdk cpp --sdk python

The daemon always runs under its keeper here.

What the writer does on a failure is what a careful program does: a write
that failed (EIO: it was in flight when the backend died) is written again;
an fsync that failed (EIO: writes acknowledged before the restart may have
died with the backend) makes it write again everything since its last good
fsync. The file it verifies at the end must then be exactly what it meant
to write.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import fhlib  # noqa: E402

PY = "/usr/bin/python3"
FAULTS = ("daemon-kill", "daemon-upgrade", "backend-kill", "backend-stop",
          "connection-cut")
EXAMPLES = os.path.join(REPO, "examples", "python")
FILES = 64
FILE_BYTES = 256 * 1024
CHUNK = 64 * 1024


# --- workloads (each its own process, so that the process that restarts the
# backend holds no file of the mount open: see tests/integration/spawner.py)

class Recorder:
    """One line per system call that failed or took over 50 ms, and the
    bytes verified, as JSON lines."""

    def __init__(self, path):
        self.out = open(path, "w", buffering=1)

    def call(self, what, fn, *args):
        t0 = time.time()
        try:
            return fn(*args)
        except OSError as e:
            self.out.write(json.dumps({"t": t0, "dur": time.time() - t0,
                                       "op": what, "errno": e.errno}) + "\n")
            raise
        finally:
            dur = time.time() - t0
            if dur > 0.05:
                self.out.write(json.dumps({"t": t0, "dur": dur,
                                           "op": what}) + "\n")

    def verified(self, n):
        self.out.write(json.dumps({"t": time.time(), "verified": n}) + "\n")


def work_find(mnt, rec, stop):
    while not os.path.exists(stop):
        try:
            listing = rec.call("getdents",
                               lambda: list(os.scandir(mnt + "/tree")))
            for e in listing:
                rec.call("stat", os.stat, e.path)
        except OSError:
            pass


def work_cat(mnt, rec, stop, sums):
    names = sorted(sums)
    while not os.path.exists(stop):
        for n in names:
            try:
                fd = rec.call("open", os.open, mnt + "/tree/" + n, os.O_RDONLY)
            except OSError:
                continue
            try:
                h = hashlib.sha256()
                while True:
                    b = rec.call("read", os.read, fd, CHUNK)
                    if not b:
                        break
                    h.update(b)
                if h.hexdigest() == sums[n]:
                    rec.verified(FILE_BYTES)
                else:
                    rec.out.write(json.dumps({"t": time.time(), "op": "cat",
                                              "mismatch": n}) + "\n")
            except OSError:
                pass
            finally:
                try:
                    rec.call("close", os.close, fd)
                except OSError:
                    pass  # a FLUSH in flight when the backend died


def write_again(fd, want, synced):
    """Writes again what a failed fsync left unproven: all of `want` from
    `synced` on."""
    for o in range(synced, len(want), CHUNK):
        try:
            os.pwrite(fd, want[o:o + CHUNK], o)
        except OSError:
            pass


def work_write(mnt, rec, stop, result):
    fd = rec.call("open", os.open, mnt + "/written",
                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    want = bytearray()
    synced = 0  # bytes of `want` a good fsync covered
    rng = random.Random(1)
    while not os.path.exists(stop):
        chunk = rng.randbytes(CHUNK)
        off = len(want)
        want += chunk
        while True:
            try:
                rec.call("write", os.pwrite, fd, chunk, off)
                break
            except OSError:
                time.sleep(0.05)  # in flight when the backend died: again
        if len(want) % (4 * CHUNK) == 0:
            while True:
                try:
                    rec.call("fsync", os.fsync, fd)
                    synced = len(want)
                    break
                except OSError:
                    # Not proven durable: everything since the last good
                    # fsync is written again.
                    write_again(fd, want, synced)
                    time.sleep(0.05)
    while True:
        try:
            os.fsync(fd)
            break
        except OSError:
            write_again(fd, want, synced)
    os.close(fd)
    with open(mnt + "/written", "rb") as f:
        got = f.read()
    with open(result, "w") as f:
        json.dump({"bytes": len(want), "ok": got == bytes(want)}, f)


def worker_main(args):
    rec = Recorder(args.record)
    if args.worker == "find":
        work_find(args.mnt, rec, args.stop)
    elif args.worker == "cat":
        with open(args.sums) as f:
            work_cat(args.mnt, rec, args.stop, json.load(f))
    else:
        work_write(args.mnt, rec, args.stop, args.result)


# --- the run ---------------------------------------------------------------

def backend_cmd(sdk, bins, root, listen):
    """`listen`: unix:PATH, or 127.0.0.1:PORT (plain TCP)."""
    if sdk == "cpp":
        return [fhlib.binary_path(bins, "loopback_fs"),
                "--listen=" + listen, "--root=" + root], None
    env = dict(os.environ, PYTHONPATH=os.path.join(bins, "client", "python"))
    return [PY, os.path.join(EXAMPLES, "loopback.py"), root,
            "--listen", listen], env


def listening(listen):
    if listen.startswith("unix:"):
        return fhlib.socket_connectable(listen[len("unix:"):])
    return fhlib.tcp_connectable(int(listen.rsplit(":", 1)[1]))


def start_backend(sdk, bins, root, listen, log):
    cmd, env = backend_cmd(sdk, bins, root, listen)
    p = fhlib.spawn_logged(cmd, log, cwd="/", env=env)
    if not fhlib.wait_ready(p, lambda: listening(listen), 60):
        raise SystemExit("backend did not start:\n" + fhlib.tail(log))
    return p


def start_relay(target_port, log):
    """delay_relay.py to 127.0.0.1:`target_port`; returns it and its port."""
    p = subprocess.Popen(
        [PY, os.path.join(BENCH_DIR, "delay_relay.py"), "--target",
         "127.0.0.1:%d" % target_port, "--delay-ms", "0"],
        stdout=subprocess.PIPE, stderr=open(log, "a"), text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit("relay did not start:\n" + fhlib.tail(log))
    return p, int(line.split()[-1])


def daemon_pid(keeper):
    """The keeper's child, or 0."""
    return fhlib.child_pid(keeper.pid)


def replace_daemon(keeper, sig):
    """SIGKILL to the daemon or SIGUSR2 to the keeper; returns once the
    keeper runs a new daemon."""
    old = daemon_pid(keeper)
    os.kill(old if sig == signal.SIGKILL else keeper.pid, sig)
    if not fhlib.wait_until(lambda: daemon_pid(keeper) not in (0, old), 30,
                            interval=0.01):
        raise SystemExit("the keeper started no new daemon")


def inject(fault, keeper, backend, relay, start_again, args):
    """Injects one fault; returns the backend (a new process after
    backend-kill)."""
    if fault == "daemon-kill":
        replace_daemon(keeper, signal.SIGKILL)
    elif fault == "daemon-upgrade":
        replace_daemon(keeper, signal.SIGUSR2)
    elif fault == "backend-kill":
        backend.kill()
        backend.wait()
        backend = start_again()
    elif fault == "backend-stop":
        backend.send_signal(signal.SIGSTOP)
        time.sleep(args.timeout + 1)
        backend.send_signal(signal.SIGCONT)
    elif fault == "connection-cut":
        relay.send_signal(signal.SIGUSR1)
    return backend


def run_sdk(sdk, fault, args, work):
    bins = args.bin_dir
    root, mnt = os.path.join(work, "root"), os.path.join(work, "mnt")
    os.makedirs(root + "/tree")
    os.makedirs(mnt)
    sums = {}
    for i in range(FILES):
        data = os.urandom(FILE_BYTES)
        with open("%s/tree/f%03d" % (root, i), "wb") as f:
            f.write(data)
        sums["f%03d" % i] = hashlib.sha256(data).hexdigest()
    with open(work + "/sums.json", "w") as f:
        json.dump(sums, f)
    ctl = work + "/control.sock"
    relay = None
    if fault == "connection-cut":
        listen = "127.0.0.1:%d" % fhlib.free_port()
    else:
        listen = "unix:" + work + "/backend.sock"
    daemon = fhlib.spawn_logged([fhlib.binary_path(bins, "fuse-hostd"),
                                 "--supervise", "--control_socket=" + ctl],
                                work + "/daemon.log")
    backend = workers = None
    try:
        fhlib.wait_ready(daemon, lambda: os.path.exists(ctl), 15)
        backend = start_backend(sdk, bins, root, listen, work + "/backend.log")
        address, options = listen, "allow_other,timeout=%d" % args.timeout
        if fault == "connection-cut":
            relay, port = start_relay(int(listen.rsplit(":", 1)[1]),
                                      work + "/relay.log")
            address, options = "127.0.0.1:%d" % port, options + ",insecure"
        subprocess.run([fhlib.binary_path(bins, "fuse-hostctl"),
                        "--control_socket=" + ctl, "mount", "-o", options,
                        address, mnt], check=True)
        stop = work + "/stop"
        workers = {}
        for w in ("find", "cat", "write"):
            cmd = [PY, os.path.abspath(__file__), "--worker", w, "--mnt", mnt,
                   "--stop", stop, "--record", "%s/%s.jsonl" % (work, w),
                   "--sums", work + "/sums.json",
                   "--result", work + "/written.json"]
            workers[w] = subprocess.Popen(cmd)
        faults = []
        time.sleep(args.interval)
        def start_again():
            return start_backend(sdk, bins, root, listen, work + "/backend.log")
        for _ in range(args.faults):
            t0 = time.time()
            backend = inject(fault, daemon, backend, relay, start_again, args)
            faults.append((t0, time.time() - t0))
            time.sleep(args.interval)
        open(stop, "w").close()
        for p in workers.values():
            p.wait(timeout=max(120, args.timeout * 4))
        return report(sdk, fault, work, faults)
    finally:
        if workers:
            for p in workers.values():
                if p.poll() is None:
                    p.kill()
        subprocess.run([fhlib.binary_path(bins, "fuse-hostctl"),
                        "--control_socket=" + ctl, "unmount", mnt],
                       capture_output=True)
        if backend is not None:
            fhlib.stop_process(backend)
        if relay is not None:
            fhlib.stop_process(relay)
        fhlib.stop_process(daemon)
        if fhlib.is_mounted(mnt):
            fhlib.force_unmount(mnt)


def report(sdk, fault, work, faults):
    events = []
    for w in ("find", "cat", "write"):
        with open("%s/%s.jsonl" % (work, w)) as f:
            events += [dict(json.loads(l), w=w) for l in f]
    with open(work + "/written.json") as f:
        written = json.load(f)
    edges = [t for t, _ in faults] + [float("inf")]
    print("\n%s loopback, %s: %d faults" % (sdk, fault, len(faults)))
    print("fault  took(s)  failed find/cat/write  longest stall(s)  "
          "cat bytes verified")
    total_failed = {"find": 0, "cat": 0, "write": 0}
    for i, (t0, away) in enumerate(faults):
        ev = [e for e in events if t0 <= e["t"] < edges[i + 1]]
        failed = {w: sum(1 for e in ev if e["w"] == w and "errno" in e)
                  for w in ("find", "cat", "write")}
        for w in failed:
            total_failed[w] += failed[w]
        stall = max([e["dur"] for e in ev if "dur" in e] or [0])
        verified = sum(e.get("verified", 0) for e in ev)
        errnos = sorted({"%s:%s" % (e["op"], os.strerror(e["errno"]))
                         for e in ev if "errno" in e})
        print("%5d  %7.2f  %6d/%d/%d %18.2f  %18d  %s" % (
            i + 1, away, failed["find"], failed["cat"], failed["write"],
            stall, verified, ", ".join(errnos)))
    mismatches = sum(1 for e in events if "mismatch" in e)
    print("cat: %d files read back different from what they hold" % mismatches)
    print("writer: %d bytes written, read back %s" % (
        written["bytes"], "identical" if written["ok"] else "DIFFERENT"))
    return total_failed, mismatches, written["ok"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdk", action="append", choices=("cpp", "python"))
    ap.add_argument("--fault", action="append", choices=FAULTS,
                    help="which faults (default: all)")
    ap.add_argument("--faults", type=int, default=5,
                    help="how many of each")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="seconds of load before and between faults")
    ap.add_argument("--timeout", type=int, default=30,
                    help="the mount's timeout= in seconds")
    ap.add_argument("--bin-dir", default=os.environ.get(
        "FUSE_HOSTD_BIN_DIR", os.path.join(REPO, "bazel-bin")))
    ap.add_argument("--worker", choices=("find", "cat", "write"),
                    help=argparse.SUPPRESS)
    for a in ("--mnt", "--stop", "--record", "--sums", "--result"):
        ap.add_argument(a, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)
    ok = True
    for fault in args.fault or FAULTS:
        for sdk in args.sdk or ["cpp", "python"]:
            work = tempfile.mkdtemp(prefix="faults-")
            os.chmod(work, 0o755)
            this_ok = False
            try:
                failed, mismatches, written_ok = run_sdk(sdk, fault, args, work)
                this_ok = mismatches == 0 and written_ok
                if fault.startswith("daemon-"):
                    # Not one failed call.
                    this_ok = this_ok and sum(failed.values()) == 0
                elif fault in ("backend-kill", "connection-cut"):
                    # No failed read; a write or fsync in flight may fail
                    # with EIO (it may not have been applied), and is
                    # written again.
                    this_ok = (this_ok and failed["find"] == 0
                               and failed["cat"] == 0)
            finally:
                ok = ok and this_ok
                if this_ok:
                    shutil.rmtree(work, ignore_errors=True)
                else:
                    # The daemon's, the backend's and the workloads' logs
                    # say what happened.
                    shutil.rmtree(work + "/root", ignore_errors=True)
                    print("logs kept in " + work)
    print("\n" + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
