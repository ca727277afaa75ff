"""Conversions between mfusepy's Python values and the wire messages.

These run once per directory entry and per getattr, so they set message
fields directly (the fastest way with the C++ protobuf runtime, measured:
about 5 us per entry, against 10 for building messages from keywords).
"""

import math
import os

_NS = 1000000000
_S_IFMT = 0o170000


def _float_seconds(value):
    """(sec, nsec) of a time in float (or int) seconds."""
    if type(value) is int:
        return value, 0
    sec = math.floor(value)
    nsec = int((value - sec) * 1e9)
    return sec, (nsec if nsec < _NS else _NS - 1)


def _int_nanoseconds(value):
    return divmod(value if type(value) is int else int(value), _NS)


_INT_FIELDS = (("st_mode", "mode"), ("st_nlink", "nlink"), ("st_uid", "uid"),
               ("st_gid", "gid"), ("st_size", "size"),
               ("st_blocks", "blocks"), ("st_blksize", "blksize"),
               ("st_rdev", "rdev"))
_TIME_FIELDS = (("st_atime", "atime"), ("st_mtime", "mtime"),
                ("st_ctime", "ctime"))


def make_attr_filler(use_ns, use_ino):
    """Returns fill(stat_dict, attr_message) for getattr-style dicts.

    Times are int nanoseconds with use_ns, float seconds otherwise; st_ino is
    passed on only with use_ino (like libfuse, which otherwise numbers inodes
    itself; the daemon then does). Zero values are skipped: proto3 would not
    send them anyway.
    """
    split = _int_nanoseconds if use_ns else _float_seconds

    def fill(st, attr):
        if type(st) is _StatResult:
            fill_stat_result(st, attr, use_ino)
            return
        get = st.get
        for key, field in _INT_FIELDS:
            v = get(key)
            if v:
                setattr(attr, field, v)
        if use_ino:
            v = get("st_ino")
            if v:
                attr.ino = v
        for key, field in _TIME_FIELDS:
            v = get(key)
            if v:
                t = getattr(attr, field)
                t.sec, t.nsec = split(v)

    return fill


_StatResult = os.stat_result


def fill_stat_result(st, attr, use_ino):
    """Attr from an os.stat_result (a fusehost extension: getattr and
    readdir may return these instead of dicts, which saves building one)."""
    attr.mode = st.st_mode
    attr.nlink = st.st_nlink
    if st.st_uid:
        attr.uid = st.st_uid
    if st.st_gid:
        attr.gid = st.st_gid
    if st.st_size:
        attr.size = st.st_size
    if st.st_blocks:
        attr.blocks = st.st_blocks
    attr.blksize = st.st_blksize
    if st.st_rdev:
        attr.rdev = st.st_rdev
    if use_ino:
        attr.ino = st.st_ino
    t = attr.atime
    t.sec, t.nsec = divmod(st.st_atime_ns, _NS)
    t = attr.mtime
    t.sec, t.nsec = divmod(st.st_mtime_ns, _NS)
    t = attr.ctime
    t.sec, t.nsec = divmod(st.st_ctime_ns, _NS)


def make_entries_filler(fill_attr, encoding, errors, full_attrs):
    """Returns add(items, reply, resumable, limit) -> count for readdir.

    items: what readdir returns. Names are str (or bytes); tuples are
    (name, attrs, offset) with attrs a dict, an os.stat_result, an int
    st_mode or None. A dict
    with more than st_mode counts as complete attributes (sent as
    DirEntry.attr, cached by the daemon) when `full_attrs`; otherwise only
    its file type is sent. A fusehost extension: a fourth item, the file's
    extended attribute names (str or bytes, as os.listxattr gives them; None:
    not known), goes out with complete attributes, and the daemon then
    answers getxattr of other names and listxattr itself (`ls -l` asks every
    file for its ACL). "." and ".." are dropped (the daemon adds its
    own). With `resumable`, offsets are kept and a page ends after about
    `limit` items (at an entry with an offset); otherwise offsets are sent
    as 0 (a whole listing, as mfusepy's readdir does). Returns the number of
    items taken and whether the iterable ran out.
    """

    def add(items, reply, resumable, limit):
        entries = reply.entries
        taken = 0
        last_offset = 0
        for item in items:
            # A page may end only after an entry with a cookie to resume at.
            if resumable and taken >= limit and last_offset:
                return taken, False
            taken += 1
            if type(item) is str:
                if item == "." or item == "..":
                    continue
                entries.add().name = item.encode(encoding, errors)
                continue
            xattr_names = None
            if isinstance(item, (bytes, str)):
                name, attrs, offset = item, None, 0
            elif len(item) == 3:
                name, attrs, offset = item
            else:
                name, attrs, offset, xattr_names = item
            if type(name) is str:
                if name == "." or name == "..":
                    continue
                name = name.encode(encoding, errors)
            elif name == b"." or name == b"..":
                continue
            e = entries.add()
            e.name = name
            if resumable and offset:
                e.offset = last_offset = offset
            if attrs is None:
                continue
            if type(attrs) is int:
                e.type = attrs & _S_IFMT
                continue
            if type(attrs) is _StatResult or (full_attrs and len(attrs) > 1):
                attr = e.attr
                fill_attr(attrs, attr)
                if xattr_names is not None:
                    attr.xattr_names_known = True
                    if xattr_names:
                        attr.xattr_names.extend(
                            n.encode(encoding, errors) if type(n) is str
                            else bytes(n) for n in xattr_names)
                continue
            mode = attrs.get("st_mode")
            if mode:
                e.type = mode & _S_IFMT
        return taken, True

    return add


STATFS_FIELDS = (
    ("f_bsize", "bsize"), ("f_frsize", "frsize"), ("f_blocks", "blocks"),
    ("f_bfree", "bfree"), ("f_bavail", "bavail"), ("f_files", "files"),
    ("f_ffree", "ffree"), ("f_favail", "favail"), ("f_namemax", "namemax"),
)


def fill_statfs(st, reply):
    for key, field in STATFS_FIELDS:
        v = st.get(key)
        if v:
            setattr(reply, field, v)


def stat_result_to_dict(st, use_ns=True):
    """A getattr dict from an os.stat_result, as mfusepy's loopback builds
    it: times in int nanoseconds (use_ns) or float seconds."""
    if use_ns:
        a, m, c = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
    else:
        a, m, c = st.st_atime, st.st_mtime, st.st_ctime
    return {"st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink,
            "st_uid": st.st_uid, "st_gid": st.st_gid, "st_rdev": st.st_rdev,
            "st_size": st.st_size, "st_blocks": st.st_blocks,
            "st_blksize": st.st_blksize, "st_atime": a, "st_mtime": m,
            "st_ctime": c}


_U32 = (1 << 32) - 1


def xattr_prefixes(prefixes, encoding, errors):
    """InitReply.unsupported_xattr_prefixes of
    Operations.unsupported_xattr_prefixes: a sequence of non-empty str (or
    bytes), encoded as xattr names are."""
    if isinstance(prefixes, (str, bytes)):
        raise TypeError("unsupported_xattr_prefixes must be a sequence of "
                        "names, not one name: %r" % (prefixes,))
    out = []
    for p in prefixes or ():
        b = p.encode(encoding, errors) if isinstance(p, str) else p
        if not isinstance(b, bytes) or not b or b"\0" in b or len(b) > 255:
            raise ValueError("unsupported_xattr_prefixes: %r is not a "
                             "prefix of extended attribute names" % (p,))
        out.append(b)
    if len(out) > 16:
        raise ValueError("unsupported_xattr_prefixes: at most 16, not %d"
                         % len(out))
    return out


def ttl_ms(seconds):
    """InitReply.default_ttl_ms of Operations.default_ttl: seconds (int or
    float) as milliseconds, rounded up so that a short lifetime never
    becomes 0 (which means the daemon's default); None or 0: 0."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not seconds >= 0:
        raise ValueError("default_ttl must be a number of seconds >= 0 or "
                         "None, not %r" % (seconds,))
    if seconds * 1000 >= _U32:
        return _U32
    return math.ceil(seconds * 1000)


class FileInfo:
    """Stands in for libfuse's struct fuse_file_info (mfusepy's raw_fi).

    open/create/opendir get one to fill: fh, and optionally direct_io,
    keep_cache, nonseekable. Other operations on open files get one with
    fh (and flags or lock_owner where the request carries them).
    """

    __slots__ = ("flags", "fh", "direct_io", "keep_cache", "nonseekable",
                 "lock_owner", "fh_old", "writepage", "flush")

    def __init__(self, fh=0, flags=0, lock_owner=0):
        self.flags = flags
        self.fh = fh
        self.direct_io = False
        self.keep_cache = False
        self.nonseekable = False
        self.lock_owner = lock_owner
        self.fh_old = fh
        self.writepage = 0
        self.flush = 0

    def __repr__(self):
        return "FileInfo(fh=%d, flags=%#o)" % (self.fh, self.flags)


class Flock:
    """Stands in for struct flock in lock(): l_type (F_RDLCK, F_WRLCK,
    F_UNLCK), l_whence (always SEEK_SET), l_start, l_len (0: to the end),
    l_pid."""

    __slots__ = ("l_type", "l_whence", "l_start", "l_len", "l_pid")

    def __init__(self, l_type, l_start, l_len, l_pid):
        self.l_type = l_type
        self.l_whence = 0
        self.l_start = l_start
        self.l_len = l_len
        self.l_pid = l_pid

    def __repr__(self):
        return "Flock(type=%d, start=%d, len=%d, pid=%d)" % (
            self.l_type, self.l_start, self.l_len, self.l_pid)


class Settings:
    """A plain object with attributes: init_with_config's stand-ins for
    fuse_conn_info and fuse_config. Writes to it are accepted and ignored."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self):
        return "Settings(%s)" % ", ".join(
            "%s=%r" % kv for kv in sorted(self.__dict__.items()))
