"""The start and end of a mount: Init calls the filesystem's init (or
init_with_config, with stand-ins for libfuse's connection and configuration
structs) and answers with what the backend supports, and with the backend
instance (new_instance()); Destroy calls destroy.

Threads: gRPC may run Init and Destroy of different mounts at once, on any
thread; these functions keep no state, so that is as safe as the
filesystem's init and destroy are (mfusepy calls them once per mount too).
"""

import errno
import logging
import secrets

from . import _features, _mfusepy_names
from ._dispatch import MAX_ERRNO
from ._operations import is_implemented
from ._proto import pb

log = logging.getLogger("fuse")

PROTOCOL_VERSION = 1
# Ops that belong together per message (InitReply.ops_together).
OPS_TOGETHER = 256


def new_instance():
    """A random nonzero backend instance (InitReply.instance in
    proto/filesystem.proto), from the OS's generator: a restarted backend
    must not pick its predecessor's, whatever its pid or start time."""
    while True:
        instance = secrets.randbits(64)
        if instance:
            return instance


def init_reply(dispatcher, request, name, serves_session=False):
    """Calls the filesystem's init for mount `request` and returns the
    InitReply: an errno refusing the mount, or 0 and the backend's
    features; the dispatcher's instance either way. `serves_session`:
    whether the server answers Session streams (only gRPC's C++ server,
    _native.py, does)."""
    err, want = call_init(dispatcher.bound, request)
    b = dispatcher.bound
    passthrough = root = False
    sender = b.descriptors
    if not err and sender is not None and request.passthrough_socket:
        passthrough = sender.connect(request.mount_id,
                                     request.passthrough_socket)
        # Sent before the reply, as descriptors of opens are.
        root = (passthrough and b.passthrough_root is not None and
                sender.send(request.mount_id, request.root_directory_tag,
                            b.passthrough_root))
    return pb.InitReply(
        passthrough=passthrough,
        root_directory=root,
        root_opens_as_caller=root and b.root_as_caller,
        root_changes_attributes=root and b.root_changes_attributes,
        root_removes_names=root and b.root_removes_names,
        root_creates_files=root and b.root_creates_files,
        posix_errno=err, protocol_version=PROTOCOL_VERSION,
        posix_locks=dispatcher.posix_locks,
        flock_locks=dispatcher.flock_locks, ioctl=dispatcher.ioctl,
        # BatchRunner honours Batch.in_order.
        runs_batches_in_order=True,
        # And fills in handles of earlier ops (_batch._run_in_order).
        takes_handles_from_earlier_ops=True,
        # BatchRunner answers releases that come with other ops at once and
        # runs them after, unless nothreads.
        releases_after_reply=not b.options.nothreads,
        serves_session=serves_session,
        # BatchRunner runs a batch's cheap ops on one thread, one after
        # the other (the GIL lets no two run at once): a message costs as
        # much as many ops, so fewer, larger ones (measured: 17 us per
        # getattr in messages of 256 against 21 in messages of 64).
        ops_together=OPS_TOGETHER,
        lists_by_path=b.lists_by_path,
        name=name,
        default_ttl_ms=dispatcher.default_ttl_ms,
        unsupported_xattr_prefixes=b.unsupported_xattr_prefixes,
        # As libfuse without the callbacks: the daemon answers ENOSYS and
        # the kernel stops asking (before each write, for each file ls -l
        # lists).
        no_xattrs=b.no_xattrs,
        instance=dispatcher.instance,
        posix_acl=bool(want & _features.FUSE_CAP_POSIX_ACL))


def call_init(b, request):
    """Calls init / init_with_config of BoundOperations `b`; returns an
    errno refusing the mount (or 0) and the FUSE_CAP_* features the
    filesystem asks for: its `wanted_features`, as init_with_config left
    them."""
    ops = b.ops
    options = b.options
    conn = _mfusepy_names.fuse_conn_info(
        proto_major=7, proto_minor=31, max_write=0, max_readahead=0,
        max_background=0, congestion_threshold=0, time_gran=1,
        capable=(_features.CHOOSABLE
                 if getattr(request, "posix_acl_capable", False) else 0))
    wanted = getattr(ops, "wanted_features", 0) or 0
    conn.want = wanted & conn.capable
    if wanted & ~conn.want:
        log.info("features fuse-hostd does not offer are not used: %s",
                 _features.feature_flag_names(wanted & ~conn.want))
    try:
        if is_implemented(ops, "init_with_config"):
            config = _mfusepy_names.fuse_config(
                set_gid=0, gid=0, set_uid=0, uid=0, set_mode=0, umask=0,
                entry_timeout=1.0, negative_timeout=0.0,
                attr_timeout=1.0, intr=0, intr_signal=0, remember=0,
                hard_remove=1, use_ino=int(options.use_ino),
                readdir_ino=0, direct_io=int(options.direct_io),
                kernel_cache=int(options.kernel_cache),
                auto_cache=0, ac_attr_timeout_set=0, ac_attr_timeout=0.0,
                nullpath_ok=1, mount_options=list(request.options))
            ops.init_with_config(conn, config)
        elif is_implemented(ops, "init"):
            b.call_hook("init")
        return 0, conn.want & conn.capable
    except OSError as e:
        log.exception("init failed; refusing the mount")
        err = e.errno
        return (err if type(err) is int and 0 < err <= MAX_ERRNO
                else errno.EIO), 0
    except Exception:
        log.exception("init failed; refusing the mount")
        return errno.EIO, 0


def call_destroy(b):
    """Calls destroy of BoundOperations `b`, if it has one; logs what it
    raises (the mount is gone either way)."""
    if not is_implemented(b.ops, "destroy"):
        return
    try:
        b.call_hook("destroy")
    except Exception:
        log.exception("destroy raised")
