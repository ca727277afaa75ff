"""fusehost exports every public name of mfusepy that a filesystem may refer
to, and this file says why each other one is left out.

MFUSEPY_NAMES is every public module-level name of mfusepy.py as of
December 2025 on Linux (the names a filesystem can write `fuse.NAME` for);
OMITTED gives the reason for each one fusehost does not export. The test
fails when a name is added to or dropped from fusehost without this list
being brought along, and checks the meaning of the names whose meaning
matters outside ctypes.

Needs `bazel build //...` (the fusehost package); runs as any user.
"""

import ctypes
import inspect
import logging
import os
import typing

import fusehost  # the package, on the path by conftest.py

MFUSEPY_NAMES = {
    # The API proper.
    "FUSE", "Operations", "FuseOSError", "LoggingMixIn", "log_callback",
    "overrides", "fuse_get_context", "fuse_exit", "ENOTSUP", "ENOATTR",
    # Types filesystems write in annotations or are handed.
    "ReadDirResult", "FieldsEntry", "fuse_file_info", "fuse_conn_info",
    "fuse_config", "fuse_context", "c_flock_t", "c_stat", "c_statvfs",
    "c_timespec", "c_utimbuf",
    # C types.
    "c_dev_t", "c_fsblkcnt_t", "c_fsfilcnt_t", "c_gid_t", "c_mode_t",
    "c_off_t", "c_pid_t", "c_uid_t",
    # Version and helpers.
    "get_fuse_version", "fuse_version_major", "fuse_version_minor",
    "time_of_timespec", "set_st_attrs", "log", "callback_logger",
    # Feature flags and POSIX ACLs (its test_posix_acl.py, newer than the
    # rest of this list).
    "feature_flag_names", "ACL_EXECUTE", "ACL_GROUP_OBJ", "ACL_MASK",
    "ACL_OTHER", "ACL_READ", "ACL_UNDEFINED_ID", "ACL_USER", "ACL_USER_OBJ",
    "ACL_WRITE", "XATTR_NAME_POSIX_ACL_ACCESS", "PosixACLEntry",
    "pack_posix_acl", "unpack_posix_acl",
    "FUSE_CAP_ASYNC_READ", "FUSE_CAP_POSIX_LOCKS", "FUSE_CAP_ATOMIC_O_TRUNC",
    "FUSE_CAP_EXPORT_SUPPORT", "FUSE_CAP_DONT_MASK", "FUSE_CAP_SPLICE_WRITE",
    "FUSE_CAP_SPLICE_MOVE", "FUSE_CAP_SPLICE_READ", "FUSE_CAP_FLOCK_LOCKS",
    "FUSE_CAP_IOCTL_DIR", "FUSE_CAP_AUTO_INVAL_DATA", "FUSE_CAP_READDIRPLUS",
    "FUSE_CAP_READDIRPLUS_AUTO", "FUSE_CAP_ASYNC_DIO",
    "FUSE_CAP_WRITEBACK_CACHE", "FUSE_CAP_NO_OPEN_SUPPORT",
    "FUSE_CAP_PARALLEL_DIROPS", "FUSE_CAP_POSIX_ACL",
    "FUSE_CAP_HANDLE_KILLPRIV", "FUSE_CAP_HANDLE_KILLPRIV_V2",
    "FUSE_CAP_CACHE_SYMLINKS", "FUSE_CAP_NO_OPENDIR_SUPPORT",
    "FUSE_CAP_EXPLICIT_INVAL_DATA", "FUSE_CAP_EXPIRE_ONLY",
    "FUSE_CAP_SETXATTR_EXT", "FUSE_CAP_DIRECT_IO_ALLOW_MMAP",
    "FUSE_CAP_PASSTHROUGH", "FUSE_CAP_NO_EXPORT_SUPPORT",
    # libfuse's C interface.
    "fuse_operations", "fuse_main_real", "setxattr_t", "getxattr_t",
    "fuse_fill_dir_t", "fuse_fill_dir_flags", "fuse_readdir_flags",
    "fuse_buf", "fuse_bufvec", "fuse_buf_flags", "fuse_pollhandle_p",
    "FuseConfigPointer", "FuseConnInfoPointer",
    # What mfusepy imports for its own use.
    "contextlib", "ctypes", "errno", "functools", "inspect", "logging", "os",
    "platform", "warnings", "Iterable", "Sequence", "CFUNCTYPE", "POINTER",
    "c_byte", "c_char_p", "c_int", "c_size_t", "c_ssize_t", "c_uint",
    "c_uint64", "c_void_p", "find_library", "SIG_DFL", "SIGINT", "SIGTERM",
    "signal", "S_IFDIR", "TYPE_CHECKING", "Any", "Optional", "Union",
    "get_type_hints",
}

_LIBFUSE_ABI = ("libfuse's C interface (callback table, function pointer "
                "types, buffers): fusehost links no libfuse, and no "
                "operation is handed one")
_IMPORTED = ("a module or name mfusepy imports for its own use, not part of "
             "its API: import it from where it comes from")

OMITTED = {
    "fuse_operations": _LIBFUSE_ABI,
    "fuse_main_real": _LIBFUSE_ABI,
    "setxattr_t": _LIBFUSE_ABI,
    "getxattr_t": _LIBFUSE_ABI,
    "fuse_fill_dir_t": _LIBFUSE_ABI,
    "fuse_fill_dir_flags": _LIBFUSE_ABI,
    "fuse_readdir_flags": _LIBFUSE_ABI,
    "fuse_buf": _LIBFUSE_ABI + " (read_buf/write_buf are never called)",
    "fuse_bufvec": _LIBFUSE_ABI + " (read_buf/write_buf are never called)",
    "fuse_buf_flags": _LIBFUSE_ABI,
    "fuse_pollhandle_p": _LIBFUSE_ABI + " (poll is never called)",
    "FuseConfigPointer": _LIBFUSE_ABI + " (init_with_config gets objects, "
                         "not pointers)",
    "FuseConnInfoPointer": _LIBFUSE_ABI + " (init_with_config gets objects, "
                           "not pointers)",
}
OMITTED.update({name: _IMPORTED for name in (
    "contextlib", "ctypes", "errno", "functools", "inspect", "logging", "os",
    "platform", "warnings", "Iterable", "Sequence", "CFUNCTYPE", "POINTER",
    "c_byte", "c_char_p", "c_int", "c_size_t", "c_ssize_t", "c_uint",
    "c_uint64", "c_void_p", "find_library", "SIG_DFL", "SIGINT", "SIGTERM",
    "signal", "S_IFDIR", "TYPE_CHECKING", "Any", "Optional", "Union",
    "get_type_hints")})

# fusehost's own exports (see README.md, "Writing a backend in Python").
FUSEHOST_ONLY = {
    # The ACL tag and attribute name mfusepy's ACL test does not use.
    "ACL_GROUP", "XATTR_NAME_POSIX_ACL_DEFAULT",
    "Caller", "FileInfo", "Flock", "FuseHostError", "Passthrough",
    "fuse_get_caller",
    "parse_options", "serve", "stat_result_to_dict",
}


def test_every_name_is_exported_or_its_omission_explained():
    assert set(OMITTED) <= MFUSEPY_NAMES
    wanted = MFUSEPY_NAMES - set(OMITTED)
    assert set(fusehost.__all__) == wanted | FUSEHOST_ONLY
    missing = sorted(n for n in wanted if not hasattr(fusehost, n))
    assert not missing
    leaked = sorted(n for n in OMITTED if hasattr(fusehost, n))
    assert not leaked, "exported but listed as omitted: %s" % leaked


def test_annotations_of_mfusepy_examples_evaluate():
    # The annotations mfusepy's examples write, evaluated as they are at
    # class definition time.
    hints = typing.get_type_hints(_Annotated.init_with_config)
    assert hints["conn_info"] == typing.Optional[fusehost.fuse_conn_info]
    hints = typing.get_type_hints(_Annotated.readdir)
    assert hints["return"] == fusehost.ReadDirResult


class _Annotated(fusehost.Operations):
    def init_with_config(self, conn_info: typing.Optional[
            fusehost.fuse_conn_info], config_3: typing.Optional[
            fusehost.fuse_config]) -> None:
        pass

    def readdir(self, path: str, fh: int) -> fusehost.ReadDirResult:
        return []


def test_meanings_outside_ctypes():
    assert (fusehost.fuse_version_major, fusehost.fuse_version_minor) == \
        fusehost.get_fuse_version() == (3, 14)

    class Lib:
        def __init__(self, number):
            self.number = number

        def fuse_version(self):
            return self.number
    assert fusehost.get_fuse_version(Lib(29)) == (2, 9)
    assert fusehost.get_fuse_version(Lib(317)) == (3, 17)

    ts = fusehost.c_timespec(3, 250000000)
    assert fusehost.time_of_timespec(ts) == 3.25
    assert fusehost.time_of_timespec(ts, use_ns=True) == 3250000000

    class Stat:
        st_mode = 0
        st_size = 0
        st_atimespec = fusehost.c_timespec()
        st_mtimespec = fusehost.c_timespec()
    st = Stat()
    fusehost.set_st_attrs(st, {"st_mode": 0o100644, "st_size": 5,
                               "st_atime": 1500000001,
                               "st_mtime": 7.5, "st_nlink": 1},
                          use_ns=True)
    assert (st.st_mode, st.st_size) == (0o100644, 5)
    assert (st.st_atimespec.tv_sec, st.st_atimespec.tv_nsec) == (1, 500000001)
    assert not hasattr(st, "st_nlink")  # no such member: skipped
    fusehost.set_st_attrs(st, {"st_mtime": 7.5})
    assert (st.st_mtimespec.tv_sec, st.st_mtimespec.tv_nsec) == (7, 500000000)

    assert ctypes.sizeof(fusehost.c_off_t) == 8
    assert fusehost.c_uid_t(-1).value == 2**32 - 1  # chown's "unchanged"
    assert fusehost.c_flock_t is fusehost.Flock
    assert fusehost.fuse_file_info is fusehost.FileInfo
    assert fusehost.fuse_context._fields[:4] == ("uid", "gid", "pid", "umask")
    assert fusehost.c_stat is os.stat_result
    assert fusehost.log is logging.getLogger("fuse")
    assert fusehost.callback_logger is logging.getLogger("fuse.log-mixin")
    assert inspect.isclass(fusehost.fuse_config)


# What mfusepy's test_posix_acl.py checks of its feature flags and ACL
# helpers, made of fusehost's.

def test_feature_flags_of_a_connection():
    connection = fusehost.fuse_conn_info()
    acl = fusehost.FUSE_CAP_POSIX_ACL
    assert not connection.is_capable(acl)
    assert not connection.is_wanted(acl)
    # A feature that may not be asked for is not asked for.
    assert not connection.set_feature_flag(acl)
    assert connection.want == 0
    assert not connection._has_extended_features
    connection.capable = acl | fusehost.FUSE_CAP_ASYNC_READ
    assert connection.is_capable(acl)
    assert not connection.is_capable(acl | fusehost.FUSE_CAP_PASSTHROUGH)
    assert connection.is_capable(0) and connection.is_wanted(0)
    assert connection.set_feature_flag(0) and connection.want == 0
    assert connection.set_feature_flag(acl)
    assert connection.is_wanted(acl)
    assert not connection.is_wanted(fusehost.FUSE_CAP_ASYNC_READ)
    assert connection.want == acl
    connection.unset_feature_flag(acl)
    assert not connection.is_wanted(acl) and connection.want == 0


def test_feature_flag_names():
    names = fusehost.feature_flag_names
    assert names(fusehost.FUSE_CAP_POSIX_ACL) == "FUSE_CAP_POSIX_ACL"
    assert names(0) == "0x0"
    assert names(fusehost.FUSE_CAP_POSIX_ACL | fusehost.FUSE_CAP_ASYNC_READ) \
        == "FUSE_CAP_ASYNC_READ | FUSE_CAP_POSIX_ACL"
    assert names(1 << 40) == "0x10000000000"
    # libfuse's numbering, not ours.
    assert (fusehost.FUSE_CAP_ASYNC_READ, fusehost.FUSE_CAP_POSIX_ACL,
            fusehost.FUSE_CAP_EXPIRE_ONLY) == (1, 1 << 19, 1 << 26)


def test_posix_acls_pack_as_the_kernel_stores_them():
    f = fusehost
    entries = [
        f.PosixACLEntry(f.ACL_USER_OBJ, f.ACL_READ | f.ACL_WRITE),
        f.PosixACLEntry(f.ACL_USER, f.ACL_READ | f.ACL_EXECUTE, 1000),
        f.PosixACLEntry(f.ACL_GROUP_OBJ, 0),
        f.PosixACLEntry(f.ACL_MASK, f.ACL_READ | f.ACL_EXECUTE),
        f.PosixACLEntry(f.ACL_OTHER, 0),
    ]
    packed = f.pack_posix_acl(entries)
    # acl(5)'s layout: version 2, then tag, permissions, id per entry, all
    # little-endian.
    assert packed == bytes.fromhex(
        "02000000" "0100 0600 ffffffff" "0200 0500 e8030000"
        "0400 0000 ffffffff" "1000 0500 ffffffff" "2000 0000 ffffffff"
        .replace(" ", ""))
    assert f.unpack_posix_acl(packed) == entries
    assert f.pack_posix_acl([(f.ACL_OTHER, f.ACL_READ, -1)]) == \
        f.pack_posix_acl([(f.ACL_OTHER, f.ACL_READ, f.ACL_UNDEFINED_ID)])


def test_malformed_acl_values_are_refused():
    import pytest
    with pytest.raises(ValueError, match="version"):
        fusehost.unpack_posix_acl(b"\x03\0\0\0")
    with pytest.raises(ValueError, match="truncated"):
        fusehost.unpack_posix_acl(b"\x02\0\0")
    whole = fusehost.pack_posix_acl([(fusehost.ACL_OTHER, 0, -1)])
    with pytest.raises(ValueError, match="truncated"):
        fusehost.unpack_posix_acl(whole[:-1])


def test_packed_acls_are_understood_by_the_kernel(tmp_path):
    """The packed form against the kernel (the test directory's ext4 or
    tmpfs keeps ACLs), not only against itself."""
    f = fusehost
    path = tmp_path / "file"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    entries = [
        f.PosixACLEntry(f.ACL_USER_OBJ, f.ACL_READ | f.ACL_WRITE),
        f.PosixACLEntry(f.ACL_USER, f.ACL_READ, os.getuid() + 1),
        f.PosixACLEntry(f.ACL_GROUP_OBJ, 0),
        f.PosixACLEntry(f.ACL_MASK, f.ACL_READ),
        f.PosixACLEntry(f.ACL_OTHER, 0),
    ]
    os.setxattr(path, f.XATTR_NAME_POSIX_ACL_ACCESS, f.pack_posix_acl(entries))
    assert f.unpack_posix_acl(
        os.getxattr(path, f.XATTR_NAME_POSIX_ACL_ACCESS)) == entries
    # The kernel took owner, mask and other from the ACL for the mode.
    assert os.stat(path).st_mode & 0o777 == 0o640
