#!/usr/bin/python3
"""Runs a list of filesystem operations and prints their results as JSON.

The integration tests run this as a separate process (often as another user,
through setpriv), so that every syscall on a FUSE mount happens in a process
the test can time out and kill, with the real credentials of that user.

Protocol (stdin/stdout, one JSON document per line):
  stdin line 1:  {"cwd": "/abs/dir" | null, "umask": 18 | null, "ops": [OP, ...]}
  OP:            ["name", arg, ...]
  stdout:        zero or more lines "SYNC <tag>" (from the "sync" op), then a
                 final line with a JSON list, one result per op:
                   {"ok": VALUE}  or  {"err": "ENOENT", "errno": 2}
  After printing "SYNC <tag>" the runner reads one line from stdin before
  going on, so a test can hold a lock or an open file while it does other
  things, then let the runner continue.

Paths are strings; bytes that are not UTF-8 travel as lone surrogates
(os.fsdecode / surrogateescape) and JSON escapes them. Bytes values travel as
{"hex": "..."} both ways.

Only the standard library is used: this runs under /usr/bin/python3 as any
user.
"""

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import stat
import sys
import time

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_uint]
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                            ctypes.POINTER(_Timespec), ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                            ctypes.c_int64]


def _check(ret):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return None


def _p(path):
    """Path argument -> bytes (keeps non-UTF-8 names exact)."""
    return os.fsencode(path)


def _dec_bytes(v):
    if isinstance(v, dict) and "hex" in v:
        return bytes.fromhex(v["hex"])
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    raise TypeError("expected data, got %r" % (v,))


def _enc(v):
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, (list, tuple)):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {k: _enc(x) for k, x in v.items()}
    return v


def _stat_dict(st):
    return {
        "mode": st.st_mode,
        "type": stat.S_IFMT(st.st_mode),
        "perm": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size,
        "nlink": st.st_nlink,
        "ino": st.st_ino,
        "dev": st.st_dev,
        "rdev": st.st_rdev,
        "blocks": st.st_blocks,
        "atime_ns": st.st_atime_ns,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _flags(names):
    if isinstance(names, int):
        return names
    f = 0
    for n in names:
        f |= getattr(os, n)
    return f


def _ts(v):
    if v == "NOW":
        return _Timespec(0, UTIME_NOW)
    if v == "OMIT":
        return _Timespec(0, UTIME_OMIT)
    return _Timespec(int(v[0]), int(v[1]))


def _pattern(size, seed):
    """Deterministic pseudo-random bytes, generated in 1 MiB chunks."""
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 15)  # 1 MiB
    done = 0
    i = 0
    while done < size:
        n = min(len(block), size - done)
        # Rotate per chunk so chunks differ.
        r = i % 251
        chunk = (block[r:] + block[:r])[:n]
        yield chunk
        done += n
        i += 1


class Runner:
    def __init__(self):
        self.fds = {}

    def fd(self, h):
        return self.fds[h]

    # --- files and descriptors -------------------------------------------
    def op_open(self, path, flags, mode=0o644, handle=None):
        """Opens path; later ops name the descriptor by `handle` (default:
        the path itself)."""
        fd = os.open(_p(path), _flags(flags), mode)
        h = handle if handle is not None else path
        if h in self.fds:
            os.close(self.fds[h])
        self.fds[h] = fd
        return True

    def op_close(self, h):
        fd = self.fds.pop(h)
        os.close(fd)
        return True

    def op_read(self, h, n):
        return os.read(self.fd(h), n)

    def op_pread(self, h, n, off):
        return os.pread(self.fd(h), n, off)

    def op_write(self, h, data):
        return os.write(self.fd(h), _dec_bytes(data))

    def op_pwrite(self, h, data, off):
        return os.pwrite(self.fd(h), _dec_bytes(data), off)

    def op_lseek(self, h, off, whence):
        w = getattr(os, whence) if isinstance(whence, str) else whence
        return os.lseek(self.fd(h), off, w)

    def op_fsync(self, h):
        os.fsync(self.fd(h))
        return True

    def op_fdatasync(self, h):
        os.fdatasync(self.fd(h))
        return True

    def op_ftruncate(self, h, size):
        os.ftruncate(self.fd(h), size)
        return True

    def op_fstat(self, h):
        return _stat_dict(os.fstat(self.fd(h)))

    def op_fchmod(self, h, mode):
        os.fchmod(self.fd(h), mode)
        return True

    def op_fchown(self, h, uid, gid):
        os.fchown(self.fd(h), uid, gid)
        return True

    def op_posix_fallocate(self, h, off, length):
        os.posix_fallocate(self.fd(h), off, length)
        return True

    def op_fallocate(self, h, mode, off, length):
        _check(_libc.fallocate(self.fd(h), mode, off, length))
        return True

    def op_copy_file_range(self, src, dst, count, off_src=None, off_dst=None):
        return os.copy_file_range(self.fd(src), self.fd(dst), count, off_src,
                                  off_dst)

    def op_flock(self, h, how):
        op = 0
        for n in how:
            op |= getattr(fcntl, n)
        fcntl.flock(self.fd(h), op)
        return True

    def op_lockf(self, h, how, length=0, start=0):
        op = 0
        for n in how:
            op |= getattr(fcntl, n)
        fcntl.lockf(self.fd(h), op, length, start, 0)
        return True

    def op_fdopendir_list(self, h):
        return sorted(os.listdir(self.fd(h)))

    def op_mmap_write(self, h, off, data):
        """Writes through a shared mapping of [0, off+len) and msyncs."""
        import mmap
        d = _dec_bytes(data)
        with mmap.mmap(self.fd(h), off + len(d), mmap.MAP_SHARED,
                       mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[off:off + len(d)] = d
            m.flush()
        return True

    def op_mmap_read(self, h, off, n):
        import mmap
        with mmap.mmap(self.fd(h), off + n, mmap.MAP_SHARED,
                       mmap.PROT_READ) as m:
            return bytes(m[off:off + n])

    # --- whole-file conveniences -----------------------------------------
    def op_write_file(self, path, data, mode=0o644):
        fd = os.open(_p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            d = _dec_bytes(data)
            n = 0
            while n < len(d):
                n += os.write(fd, d[n:])
        finally:
            os.close(fd)
        return True

    def op_append_file(self, path, data):
        fd = os.open(_p(path), os.O_WRONLY | os.O_APPEND)
        try:
            return os.write(fd, _dec_bytes(data))
        finally:
            os.close(fd)

    def op_read_file(self, path):
        with open(_p(path), "rb") as f:
            return f.read()

    def op_write_pattern(self, path, size, seed, chunk=1 << 20):
        h = hashlib.sha256()
        fd = os.open(_p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for c in _pattern(size, seed):
                h.update(c)
                view = memoryview(c)
                while len(view):
                    n = os.write(fd, view[:chunk])
                    view = view[n:]
        finally:
            os.close(fd)
        return h.hexdigest()

    def op_sha256(self, path):
        h = hashlib.sha256()
        n = 0
        with open(_p(path), "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                n += len(b)
                h.update(b)
        return [h.hexdigest(), n]

    def op_mkdir_chain(self, depth, name, mode=0o755):
        """mkdir name/name/... `depth` levels deep, with relative steps (the
        full path may exceed what one syscall takes); returns the depth
        reached."""
        start = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(depth):
                os.mkdir(_p(name), mode)
                os.chdir(_p(name))
            return depth
        finally:
            os.fchdir(start)
            os.close(start)

    def op_write_files(self, prefix, count, size):
        """Creates prefix0..prefixN-1, each `size` bytes naming itself."""
        for i in range(count):
            name = "%s%d" % (prefix, i)
            data = (name.encode() * (size // len(name) + 1))[:size]
            fd = os.open(_p(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return count

    def op_check_files(self, prefix, count, size):
        """Reads back what write_files wrote; returns the names that differ."""
        bad = []
        for i in range(count):
            name = "%s%d" % (prefix, i)
            data = (name.encode() * (size // len(name) + 1))[:size]
            try:
                with open(_p(name), "rb") as f:
                    if f.read() != data:
                        bad.append(name)
            except OSError as e:
                bad.append("%s:%s" % (name, errno.errorcode.get(e.errno)))
        return bad

    def op_create_many(self, dirpath, count, prefix="f"):
        for i in range(count):
            fd = os.open(os.path.join(_p(dirpath), b"%s%05d" % (
                prefix.encode(), i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                0o644)
            os.close(fd)
        return count

    # --- path operations ---------------------------------------------------
    def op_stat(self, path):
        return _stat_dict(os.stat(_p(path)))

    def op_lstat(self, path):
        return _stat_dict(os.lstat(_p(path)))

    def op_exists(self, path):
        return os.path.lexists(_p(path))

    def op_access(self, path, mode):
        m = 0
        for c in mode:
            m |= {"r": os.R_OK, "w": os.W_OK, "x": os.X_OK, "f": os.F_OK}[c]
        return os.access(_p(path), m)

    def op_truncate(self, path, size):
        os.truncate(_p(path), size)
        return True

    def op_mkdir(self, path, mode=0o755):
        os.mkdir(_p(path), mode)
        return True

    def op_rmdir(self, path):
        os.rmdir(_p(path))
        return True

    def op_unlink(self, path):
        os.unlink(_p(path))
        return True

    def op_rename(self, src, dst):
        os.rename(_p(src), _p(dst))
        return True

    def op_renameat2(self, src, dst, flags):
        f = 0
        for n in flags:
            f |= {"NOREPLACE": RENAME_NOREPLACE,
                  "EXCHANGE": RENAME_EXCHANGE}[n]
        _check(_libc.renameat2(AT_FDCWD, _p(src), AT_FDCWD, _p(dst), f))
        return True

    def op_symlink(self, target, path):
        os.symlink(_p(target), _p(path))
        return True

    def op_readlink(self, path):
        return os.fsdecode(os.readlink(_p(path)))

    def op_link(self, src, dst):
        os.link(_p(src), _p(dst))
        return True

    def op_mkfifo(self, path, mode=0o644):
        os.mkfifo(_p(path), mode)
        return True

    def op_mknod(self, path, kind, mode, major=0, minor=0):
        t = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "reg": stat.S_IFREG,
             "fifo": stat.S_IFIFO, "sock": stat.S_IFSOCK}[kind]
        os.mknod(_p(path), t | mode, os.makedev(major, minor))
        return True

    def op_chmod(self, path, mode):
        os.chmod(_p(path), mode)
        return True

    def op_chown(self, path, uid, gid):
        os.chown(_p(path), uid, gid)
        return True

    def op_lchown(self, path, uid, gid):
        os.lchown(_p(path), uid, gid)
        return True

    def op_utimensat(self, path, atime, mtime, nofollow=False):
        times = (_Timespec * 2)(_ts(atime), _ts(mtime))
        _check(_libc.utimensat(AT_FDCWD, _p(path), times,
                               AT_SYMLINK_NOFOLLOW if nofollow else 0))
        return True

    def op_setxattr(self, path, name, value, flags=()):
        f = 0
        for n in flags:
            f |= getattr(os, n)
        os.setxattr(_p(path), name, _dec_bytes(value), f)
        return True

    def op_getxattr(self, path, name):
        return os.getxattr(_p(path), name)

    def op_listxattr(self, path):
        return sorted(os.listxattr(_p(path)))

    def op_removexattr(self, path, name):
        os.removexattr(_p(path), name)
        return True

    def op_statvfs(self, path):
        s = os.statvfs(_p(path))
        return {"bsize": s.f_bsize, "frsize": s.f_frsize,
                "blocks": s.f_blocks, "bfree": s.f_bfree,
                "bavail": s.f_bavail, "files": s.f_files,
                "ffree": s.f_ffree, "namemax": s.f_namemax,
                "flag": s.f_flag}

    def op_listdir(self, path):
        return sorted(os.fsdecode(n) for n in os.listdir(_p(path)))

    def op_chdir(self, path):
        os.chdir(_p(path))
        return True

    # --- control -------------------------------------------------------------
    def op_sync(self, tag):
        sys.stdout.write("SYNC %s\n" % tag)
        sys.stdout.flush()
        sys.stdin.readline()
        return True

    def op_sleep(self, secs):
        time.sleep(secs)
        return True

    def op_time(self):
        return time.monotonic()

    def op_ids(self):
        return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                "egid": os.getegid(), "groups": sorted(os.getgroups())}


def main():
    req = json.loads(sys.stdin.readline())
    if req.get("umask") is not None:
        os.umask(req["umask"])
    runner = Runner()
    results = []
    if req.get("cwd"):
        try:
            os.chdir(_p(req["cwd"]))
        except OSError as e:
            # Nothing can run: every op reports the chdir's error.
            name = errno.errorcode.get(e.errno, str(e.errno))
            sys.stdout.write(json.dumps([{"err": name, "errno": e.errno}] *
                                        len(req["ops"])) + "\n")
            return
    for op in req["ops"]:
        name, args = op[0], op[1:]
        fn = getattr(runner, "op_" + name, None)
        if fn is None:
            results.append({"err": "BADOP:" + name, "errno": -1})
            continue
        try:
            results.append({"ok": _enc(fn(*args))})
        except OSError as e:
            code = e.errno if e.errno is not None else -1
            results.append({"err": errno.errorcode.get(code, str(code)),
                            "errno": code})
        except (KeyError, TypeError, ValueError) as e:
            results.append({"err": "BADARG:%s: %s" % (type(e).__name__, e),
                            "errno": -1})
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
