"""Node.js filesystems (examples/node/, on the fusehost package in
client/node) as backends of the integration suite.

Each runs as its own `node` process that mounts itself with fusehost's
`fuse.mount()` against the session's daemon ($FUSE_HOSTD_CONTROL_SOCKET),
as a fuse-native program would; it is up once the mount is there. They are
Backend objects of a MountFactory, so its teardown unmounts and stops them,
also after a failure. The npm dependencies must be installed
(scripts/setup.sh runs `npm ci` in client/node and examples/node).
"""

import os
import shutil

import pytest

import fhlib
from conftest import REPO, Backend, Mount, MountFactory
from fhlib import TOOL_ENV, is_mounted

EXAMPLES = os.path.join(REPO, "examples", "node")


def node_binary():
    node = shutil.which("node", path=TOOL_ENV.get("PATH")) or \
        shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (run scripts/setup.sh)",
                    pytrace=False)
    for d in (os.path.join(REPO, "client", "node", "node_modules", "@grpc"),
              os.path.join(EXAMPLES, "node_modules", "fusehost")):
        if not os.path.exists(d):
            pytest.fail("%s is missing: run `npm ci` in client/node and "
                        "examples/node (scripts/setup.sh does)" % d,
                        pytrace=False)
    return node


class NodeProcess(Backend):
    """A Node filesystem process that mounts itself at `mountpoint`."""

    def __init__(self, bins, workdir, name, args, daemon, mountpoint):
        super().__init__(bins, "node", workdir, name)
        self.args = list(args)
        self.mountpoint = mountpoint
        self.env = dict(TOOL_ENV)
        self.env["FUSE_HOSTD_CONTROL_SOCKET"] = daemon.sock

    def command(self):
        return [node_binary()] + self.args

    def start(self, timeout=30):
        self.proc = fhlib.spawn_logged(self.command(), self.log, cwd="/",
                                       env=self.env)
        if fhlib.wait_ready(self.proc, lambda: is_mounted(self.mountpoint),
                            timeout):
            return self
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (
                self.args, self.proc.returncode, fhlib.tail(self.log)))
        raise AssertionError("%s did not mount within %ss:\n%s" % (
            self.args, timeout, fhlib.tail(self.log)))


class NodeMountFactory(MountFactory):
    """MountFactory whose mount() runs a Node example that mounts itself;
    kind "memory" or "loopback" (the semantics the checks of test_ops
    expect of a backend of that kind)."""

    def mount(self, kind="memory", options="allow_other", backend=None,
              daemon=None, root=None, env=None):
        """`env`: more environment for the process."""
        daemon = daemon or self.daemon
        mp = self.mountpoint()
        if kind == "loopback":
            root = root or self.mkdir("backing%d" % self._n)
            args = [os.path.join(EXAMPLES, "loopback.js"), root, mp]
        else:
            args = [os.path.join(EXAMPLES, kind + ".js"), mp]
        if options:
            args += ["-o", options]
        self._n += 1
        p = NodeProcess(self.bins, self.dir, "node%s%d" % (kind, self._n),
                        args, daemon, mp)
        p.root = root
        p.env.update(env or {})
        self.backends.append(p)
        p.start()
        m = Mount(daemon, p, mp, options)
        self.mounts.append(m)
        return m
