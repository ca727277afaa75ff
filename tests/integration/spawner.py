"""Starts and signals processes for a test that holds files open on a mount.

A process that forks and execs closes its copy of every descriptor, and
closing a descriptor of a FUSE file sends the kernel's FLUSH to the daemon:
while the mount's backend is down, that close waits for the backend (up to
the mount's timeout). A test that keeps files open while it restarts the
backend therefore cannot start the backend itself; it asks this process,
started before the files were opened, which holds none.

Protocol: one JSON request per line on stdin, one JSON answer per line on
stdout:
  {"spawn": [args], "log": path, "env": {...}, "cwd": dir} -> {"pid": n}
  {"run": [args]}                  -> {"code": n, "stdout": text}
Children are not waited for here: the test watches them through /proc
(restart_lib.RemoteProc), and they are reaped once this process ends.
"""

import json
import subprocess
import sys


def main():
    children = {}
    for line in sys.stdin:
        req = json.loads(line)
        if "spawn" in req:
            with open(req["log"], "ab") as logf:
                p = subprocess.Popen(req["spawn"], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=req["cwd"],
                                     env=req["env"])
            children[p.pid] = p
            answer = {"pid": p.pid}
        elif "run" in req:
            r = subprocess.run(req["run"], capture_output=True, text=True)
            answer = {"code": r.returncode, "stdout": r.stdout}
        else:
            answer = {"error": "unknown request"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
