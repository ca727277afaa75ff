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
