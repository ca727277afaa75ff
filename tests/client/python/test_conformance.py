"""Runs the SDK conformance cases (tests/conformance/cases, the same files
the C++ SDK's runner reads) against the Python SDK.

Batch cases: `Scripted` implements the case's scripted filesystem as an
Operations subclass, served as FUSE() and serve() serve it (make_backend),
and the case's Batch goes to the servicer's Execute, so ops run
concurrently on the SDK's helper threads as they do when served (only the
socket is left out). Invalidation cases: notices go through
Operations.notify_* (with except_mount when the case says), and each stream
is a subscription of the filesystem's hub, as a Servicer.Invalidations call
holds it.

What the fields of a case mean is in tests/conformance/README.md; this
module must implement exactly that, as tests/client/conformance_test.cc
does.

Needs `bazel build //...` (the fusehost package, the generated protocol
modules); FUSE_HOSTD_BIN_DIR overrides <repo>/bazel-bin. Runs as any user:
nothing is mounted.
"""

import ctypes
import errno
import glob
import os
import stat
import sys
import threading

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
BIN = os.environ.get("FUSE_HOSTD_BIN_DIR", os.path.join(REPO, "bazel-bin"))
CASE_DIR = os.path.join(REPO, "tests", "conformance", "cases")


def _import_generated():
    paths = [os.path.join(BIN, "client", "python"), BIN,
             os.path.join(BIN, "tests", "conformance")]
    for name in ("client/python/fusehost/filesystem_pb2.py",
                 "proto/filesystem_pb2.py",
                 "tests/conformance/conformance_pb2.py"):
        if not os.path.isfile(os.path.join(BIN, name)):
            pytest.fail("%s is not built (run `bazel build //...`)" % name,
                        pytrace=False)
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


_import_generated()
import conformance_pb2  # noqa: E402
import fusehost  # noqa: E402
from fusehost import _invalidations, _server  # noqa: E402
from fusehost._proto import pb  # noqa: E402
from google.protobuf import text_format  # noqa: E402

_F_GETLK = 5
_F_UNLCK = 2
_RENAME_NOREPLACE = 1
_OMIT, _SET = pb.TimeSet.OMIT, pb.TimeSet.SET


def _load_cases():
    """(batch cases, invalidation cases, files) of every case file."""
    batch_cases, invalidation_cases = [], []
    files = sorted(glob.glob(os.path.join(CASE_DIR, "*.textproto")))
    for name in files:
        with open(name, encoding="utf-8") as f:
            case_file = text_format.Parse(f.read(),
                                          conformance_pb2.CaseFile())
        batch_cases.extend(case_file.batch_case)
        invalidation_cases.extend(case_file.invalidation_case)
    return batch_cases, invalidation_cases, files


BATCH_CASES, INVALIDATION_CASES, CASE_FILES = _load_cases()


def _sdk(message, cls):
    """A message of the conformance module as the SDK's own class (the two
    generated modules of proto/filesystem.proto have distinct classes)."""
    return cls.FromString(message.SerializeToString())


def _ns(t):
    return t.sec * 1000000000 + t.nsec


def _stat_dict(attr):
    """The runner's own conversion of an Attr to a getattr dict (times in
    int nanoseconds: the filesystem sets use_ns)."""
    return {"st_ino": attr.ino, "st_mode": attr.mode, "st_nlink": attr.nlink,
            "st_uid": attr.uid, "st_gid": attr.gid, "st_rdev": attr.rdev,
            "st_size": attr.size, "st_blocks": attr.blocks,
            "st_blksize": attr.blksize, "st_atime": _ns(attr.atime),
            "st_mtime": _ns(attr.mtime), "st_ctime": _ns(attr.ctime)}


def _set_ns(timespec, ns):
    timespec.sec, timespec.nsec = divmod(ns, 1000000000)


def _key(path):
    """A path as the case names it (operations get str paths)."""
    return path.encode("utf-8", "surrogateescape")


class Scripted(fusehost.Operations):
    """The scripted filesystem of README.md. Thread-safe: the SDK runs a
    batch's ops concurrently."""

    use_ns = True

    def __init__(self, spec):
        self.spec = spec
        self.getattr_is_cheap = spec.getattr_is_cheap
        self._lock = threading.Lock()
        self._order = [node.path for node in spec.node]
        self._nodes = {}
        for node in spec.node:
            copy = conformance_pb2.Node()
            copy.CopyFrom(node)
            self._nodes[node.path] = copy

    # --- the scripted state ------------------------------------------------

    def _fail(self, op, *paths):
        """Raises the scripted errno of `op` naming one of `paths`."""
        keys = {_key(p) for p in paths if p is not None}
        for failure in self.spec.failure:
            if failure.op in ("", op) and failure.path in keys:
                raise fusehost.FuseOSError(failure.posix_errno)

    def _existing(self, path):
        """The node at `path`; ENOENT when it is absent or not listed. Call
        with the lock held."""
        node = self._nodes.get(_key(path))
        if node is None or node.absent:
            raise fusehost.FuseOSError(errno.ENOENT)
        return node

    def _make(self, op, path):
        self._fail(op, path)
        with self._lock:
            node = self._nodes.get(_key(path))
            if node is None:
                raise fusehost.FuseOSError(errno.ENOENT)
            if not node.absent:
                raise fusehost.FuseOSError(errno.EEXIST)
            node.absent = False

    def _remove(self, op, path):
        self._fail(op, path)
        with self._lock:
            self._existing(path).absent = True

    def _handle(self, op, path):
        self._fail(op, path)
        with self._lock:
            return self._existing(path).fh

    # --- operations ---------------------------------------------------------

    def getattr(self, path, fh=None):
        self._fail("getattr", path)
        with self._lock:
            return _stat_dict(self._existing(path).attr)

    def readlink(self, path):
        self._fail("readlink", path)
        with self._lock:
            return self._existing(path).target

    def mknod(self, path, mode, dev):
        self._make("mknod", path)

    def mkdir(self, path, mode):
        self._make("mkdir", path)

    def symlink(self, target, source):
        # mfusepy's order: the new name first, then the link's contents.
        self._fail("symlink", source)
        self._make("symlink", target)

    def link(self, target, source):
        # mfusepy's order: the new name first, then the existing file.
        self._fail("link", source)
        with self._lock:
            self._existing(source)
        self._make("link", target)

    def unlink(self, path):
        self._remove("unlink", path)

    def rmdir(self, path):
        self._remove("rmdir", path)

    def rename(self, old, new, flags):
        self._fail("rename", old, new)
        if flags not in (0, _RENAME_NOREPLACE):
            raise fusehost.FuseOSError(errno.EINVAL)
        with self._lock:
            old_node = self._existing(old)
            if old == new:
                return
            new_node = self._nodes.get(_key(new))
            if new_node is None:
                raise fusehost.FuseOSError(errno.ENOENT)
            if flags == _RENAME_NOREPLACE and not new_node.absent:
                raise fusehost.FuseOSError(errno.EEXIST)
            new_node.CopyFrom(old_node)
            new_node.path = _key(new)
            old_node.absent = True

    def chmod(self, path, mode):
        self._fail("chmod", path)
        with self._lock:
            attr = self._existing(path).attr
            attr.mode = stat.S_IFMT(attr.mode) | (mode & 0o7777)

    def chown(self, path, uid, gid):
        self._fail("chown", path)
        with self._lock:
            attr = self._existing(path).attr
            if uid != -1:
                attr.uid = uid
            if gid != -1:
                attr.gid = gid

    def truncate(self, path, length, fh=None):
        self._fail("truncate", path)
        with self._lock:
            node = self._existing(path)
            node.data = node.data[:length].ljust(length, b"\0")
            node.attr.size = length

    def utimens(self, path, times=None):
        self._fail("utimens", path)
        # None is both times set to now, which would differ between runs:
        # cases leave NOW out.
        assert times is not None, "cases must not use TimeSet.NOW"
        with self._lock:
            attr = self._existing(path).attr
            _set_ns(attr.atime, times[0])
            _set_ns(attr.mtime, times[1])

    def open(self, path, flags):
        return self._handle("open", path)

    def opendir(self, path):
        return self._handle("opendir", path)

    def create(self, path, mode, flags):
        self._make("create", path)
        return self._handle("create", path)

    def read(self, path, size, offset, fh):
        self._fail("read", path)
        with self._lock:
            data = self._existing(path).data
        if self.spec.read_ignores_size:
            return data[offset:]
        return data[offset:offset + size]

    def write(self, path, data, offset, fh):
        self._fail("write", path)
        with self._lock:
            node = self._existing(path)
            contents = node.data.ljust(offset, b"\0")
            node.data = contents[:offset] + data + \
                contents[offset + len(data):]
            node.attr.size = len(node.data)
        return len(data) + self.spec.overclaim

    def statfs(self, path):
        self._fail("statfs", path)
        s = self.spec.statfs
        return {"f_bsize": s.bsize, "f_frsize": s.frsize,
                "f_blocks": s.blocks, "f_bfree": s.bfree,
                "f_bavail": s.bavail, "f_files": s.files,
                "f_ffree": s.ffree, "f_favail": s.favail,
                "f_namemax": s.namemax}

    def flush(self, path, fh):
        self._fail("flush", path)
        return 0

    def release(self, path, fh):
        self._fail("release", path)
        return 0

    def fsync(self, path, datasync, fh):
        self._fail("fsync", path)
        return 0

    def releasedir(self, path, fh):
        self._fail("releasedir", path)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self._fail("fsyncdir", path)
        return 0

    def access(self, path, amode):
        self._fail("access", path)
        return 0

    def setxattr(self, path, name, value, options, position=0):
        self._fail("setxattr", path)
        with self._lock:
            node = self._existing(path)
            for xattr in node.xattr:
                if xattr.name == _key(name):
                    xattr.value = value
                    return 0
            node.xattr.add(name=_key(name), value=value)
        return 0

    def getxattr(self, path, name, position=0):
        self._fail("getxattr", path)
        with self._lock:
            for xattr in self._existing(path).xattr:
                if xattr.name == _key(name):
                    return xattr.value
        raise fusehost.FuseOSError(errno.ENODATA)

    def listxattr(self, path):
        self._fail("listxattr", path)
        with self._lock:
            return [xattr.name for xattr in self._existing(path).xattr]

    def removexattr(self, path, name):
        self._fail("removexattr", path)
        with self._lock:
            xattrs = self._existing(path).xattr
            for i, xattr in enumerate(xattrs):
                if xattr.name == _key(name):
                    del xattrs[i]
                    return 0
        raise fusehost.FuseOSError(errno.ENODATA)

    def _entries(self, path, offset):
        """(name, attrs, cookie[, xattr names]) of `path`'s children after
        cookie `offset`."""
        self._fail("readdir", path)
        dir_key = _key(path)
        entries = []
        with self._lock:
            self._existing(path)
            position = 0
            for child in self._order:
                node = self._nodes[child]
                if node.absent or child == b"/":
                    continue
                slash = child.rfind(b"/")
                if (child[:slash] or b"/") != dir_key:
                    continue
                position += 1
                if position <= offset:
                    continue
                entry = (child[slash + 1:], _stat_dict(node.attr),
                         position if self.spec.resumable_readdir else 0)
                if self.spec.readdir_lists_xattrs:
                    entry += ([x.name for x in node.xattr],)
                entries.append(entry)
        return entries

    def readdir(self, path, fh):
        return self._entries(path, 0)

    def readdir_with_offset(self, path, offset, fh):
        return self._entries(path, offset)

    def lock(self, path, fh, cmd, lock):
        self._fail("lock", path)
        if cmd == _F_GETLK:
            lock.l_type = _F_UNLCK
        return 0

    def flock(self, path, fh, op):
        self._fail("flock", path)
        return 0

    def fallocate(self, path, mode, offset, size, fh):
        self._fail("fallocate", path)
        return 0

    def copy_file_range(self, path_in, fh_in, offset_in, path_out, fh_out,
                        offset_out, length, flags):
        self._fail("copy_file_range", path_in, path_out)
        return length + self.spec.overclaim

    def lseek(self, path, offset, whence, fh):
        self._fail("lseek", path)
        return offset

    def ioctl(self, path, cmd, arg, fh, flags, data):
        self._fail("ioctl", path)
        # The size and direction come from the command number, as a
        # filesystem serving a real command knows them; the buffer holds
        # them (the Python SDK cannot pass back more than asked).
        size = (cmd >> 16) & 0x3fff
        if (cmd >> 30) & 2:
            passed = ctypes.string_at(data, size)
            ctypes.memmove(data, bytes((c + 1) % 256 for c in passed), size)
        return (arg or 0) % 256


def _scripted_class(spec):
    """Scripted, less the operations the case leaves out: those become the
    Operations defaults, which the SDK treats as missing methods."""
    left_out = set(spec.unimplemented)
    assert "getattr" not in left_out, "getattr cannot be left out"
    if "readdir" in left_out or not spec.resumable_readdir:
        left_out.add("readdir_with_offset")
    missing = {name: getattr(fusehost.Operations, name) for name in left_out}
    return type("Scripted", (Scripted,), missing)


def _check_runnable(spec):
    # The limits README.md sets on cases: every node has times (the C++ SDK
    # always sends them and this one leaves out zero ones, a difference the
    # daemon cannot see but an exact comparison would).
    for node in spec.node:
        for t in (node.attr.atime, node.attr.mtime, node.attr.ctime):
            assert t.sec or t.nsec, \
                "%r: every node needs atime, mtime and ctime" % node.path


@pytest.mark.parametrize("case", BATCH_CASES, ids=lambda c: c.name)
def test_batch_case(case):
    _check_runnable(case.fs)
    ops = _scripted_class(case.fs)(case.fs)
    # instance=None (the case's 0): the SDK picks one, as when serving.
    servicer = _server.make_backend(
        ops, options=_server.backend_options({"use_ino": True}),
        instance=case.instance or None)
    try:
        reply = servicer.Execute(_sdk(case.batch, pb.Batch), None)
    finally:
        servicer.shutdown()
    if case.instance:
        assert reply.instance == case.expected.instance, case.description
    else:
        assert reply.instance != 0, "the reply carries no instance"
    actual = {}
    for result in reply.results:
        assert result.id not in actual, "two results for op %d" % result.id
        actual[result.id] = result
    assert len(reply.results) == len(case.batch.ops)
    problems = []
    for expected in case.expected.results:
        got = actual.pop(expected.id, None)
        if got is None:
            problems.append("no result for op %d" % expected.id)
        elif got != _sdk(expected, pb.OpResult):
            problems.append("op %d\nexpected:\n%sactual:\n%s" % (
                expected.id, text_format.MessageToString(expected),
                text_format.MessageToString(got)))
    for got in actual.values():
        problems.append("unexpected result:\n%s" %
                        text_format.MessageToString(got))
    assert not problems, "%s\n%s" % (case.description, "\n".join(problems))


_NOTIFY = {pb.Invalidation.CHANGED: fusehost.Operations.notify_changed,
           pb.Invalidation.REMOVED: fusehost.Operations.notify_removed,
           pb.Invalidation.SUBTREE: fusehost.Operations.notify_subtree_changed}


def _expand(runs):
    """[(kind, path)] with each run written out."""
    out = []
    for run in runs:
        out.extend([(run.kind, run.path)] * max(run.repeat, 1))
    return out


@pytest.mark.parametrize("case", INVALIDATION_CASES, ids=lambda c: c.name)
def test_invalidation_case(case):
    ops = Scripted(conformance_pb2.ScriptedFileSystem())
    # The stream sends each notice's path as the dispatcher encodes it.
    servicer = _server.make_backend(ops, options=_server.backend_options({}))
    servicer.shutdown()
    wire_path = servicer.dispatcher.wire_path
    hub = _invalidations.hub_of(ops)
    streams = []
    for i, step in enumerate(case.step):
        where = "%s, step %d" % (case.description, i)
        kind = step.WhichOneof("step")
        if kind == "subscribe":
            mount_id = step.subscribe.mount_id
            if step.subscribe.HasField("max_queued"):
                streams.append(hub.subscribe(step.subscribe.max_queued,
                                             mount_id))
            else:
                streams.append(hub.subscribe(mount_id=mount_id))
        elif kind == "notify":
            except_mount = step.notify.except_mount \
                if step.notify.HasField("except_mount") else None
            for notice_kind, path in _expand([step.notify]):
                _NOTIFY[notice_kind](ops, path, except_mount=except_mount)
        elif kind == "take":
            taken = streams[step.take.stream].take(0)
            if step.take.closed:
                assert taken is None, where
                continue
            assert taken is not None, where
            sent = [(kind, wire_path(path)) for kind, path in taken]
            assert sent == _expand(step.take.expect), where
        elif kind == "close":
            streams[step.close].close()
        else:
            pytest.fail("%s: empty step" % where)


def test_every_case_file_has_cases():
    assert CASE_FILES, "no case files in %s" % CASE_DIR
    assert BATCH_CASES and INVALIDATION_CASES
