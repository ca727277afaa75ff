"""A backend that lies, for the trust-boundary tests: a small gRPC server of
the FileSystem service whose answers are wrong in the ways its flags ask.

It serves a root directory holding `file` (a 4-byte regular file) and
`dir` (an empty directory), and answers for any `/fileN` as for `file`
and any `/dirN` as for `dir` (each listed as --huge-listing says, if set);
everything else is ENOENT. Misbehaviours:

  --rename-on-init SRC DST   on Init, rename SRC to DST, and with
                             --symlink-at-src TARGET put a symlink to TARGET
                             where SRC was (done as whoever runs this)
  --hang                     never answer Execute
  --hang-path PREFIX         never answer ops on paths that start with
                             PREFIX (others work)
  --hang-reads               never answer reads
  --repeat-page              readdir of "/" answers the same page with
                             eof=false forever
  --endless-listing          readdir pages of new names that never end
  --huge-reply BYTES         readdir of "/" answers one page of this many
                             bytes of 200-byte names, with resume cookies
                             (so the daemon cannot cache it whole)
  --huge-listing BYTES       the same as a whole listing (cacheable)
  --ttl-ms MS                InitReply.default_ttl_ms
  --flood-notices N          send N invalidation notices as fast as it can
  --bad-attrs                attributes with no file type, names with "/"
  --errno N                  reads and flushes of /file* fail with errno N,
                             whatever it is
  --instance ID              the instance id it reports (see the protocol)

Run: PYTHONPATH=<bazel-bin>/client/python python3 hostile_backend.py
       --listen unix:/path.sock [flags]
"""

import argparse
import os
import stat
import sys
import threading
import time
from concurrent import futures

import grpc

from fusehost import filesystem_pb2 as pb
from fusehost import filesystem_pb2_grpc as pb_grpc


def attr(mode, size=0, ino=1):
    a = pb.Attr()
    a.ino = ino
    a.mode = mode
    a.nlink = 2 if stat.S_ISDIR(mode) else 1
    a.uid = os.getuid()
    a.gid = os.getgid()
    a.size = size
    return a


TREE = {
    b"/": attr(stat.S_IFDIR | 0o755, ino=1),
    b"/file": attr(stat.S_IFREG | 0o644, size=4, ino=2),
    b"/dir": attr(stat.S_IFDIR | 0o755, ino=3),
}


class Hostile(pb_grpc.FileSystemServicer):
    def __init__(self, args):
        self.args = args
        self.page = 0
        self.stop = threading.Event()

    def Init(self, request, context):
        a = self.args
        if a.rename_on_init:
            src, dst = a.rename_on_init
            os.rename(src, dst)
            if a.symlink_at_src:
                os.symlink(a.symlink_at_src, src)
        reply = pb.InitReply(name="hostile", default_ttl_ms=a.ttl_ms)
        if a.instance:
            reply.instance = a.instance
        return reply

    def Destroy(self, request, context):
        return pb.DestroyReply()

    def Invalidations(self, request, context):
        context.send_initial_metadata(())
        for i in range(self.args.flood_notices):
            if not context.is_active():
                return
            yield pb.Invalidation(kind=pb.Invalidation.CHANGED,
                                  path=b"/file%d" % (i % 1000))
        while context.is_active() and not self.stop.is_set():
            time.sleep(0.2)

    def Execute(self, batch, context):
        if self.args.hang:
            self.stop.wait()
        out = pb.BatchResult()
        for op in batch.ops:
            out.results.append(self.one(op, context))
        if self.args.instance:
            out.instance = self.args.instance
        return out

    def one(self, op, context):
        r = pb.OpResult(id=op.id)
        kind = op.WhichOneof("op")
        body = getattr(op, kind)
        path = getattr(body, "path", None)
        if (self.args.hang_path and path is not None and
                path.startswith(self.args.hang_path.encode())):
            self.stop.wait()
        if kind == "read" and self.args.hang_reads:
            self.stop.wait()
        if (self.args.errno and kind in ("read", "flush") and
                path.startswith(b"/file")):
            r.posix_errno = self.args.errno
            return r
        if kind == "getattr" and path.startswith(b"/file"):
            r.getattr.attr.CopyFrom(TREE[b"/file"])
        elif kind == "getattr" and path.startswith(b"/dir"):
            r.getattr.attr.CopyFrom(TREE[b"/dir"])
        elif kind == "getattr":
            if path not in TREE:
                r.posix_errno = 2
            else:
                r.getattr.attr.CopyFrom(TREE[path])
                if self.args.bad_attrs:
                    r.getattr.attr.mode = 0o644
        elif kind in ("opendir", "open"):
            getattr(r, kind).fh = 7
        elif kind == "readdir":
            self.readdir(body, r.readdir)
        elif kind == "read":
            r.read.data = b"data"[body.offset:body.offset + body.size]
        elif kind in ("release", "releasedir", "flush", "access"):
            r.empty.SetInParent()
        else:
            r.posix_errno = 38  # ENOSYS
        return r

    def readdir(self, req, reply):
        a = self.args
        if a.repeat_page:
            for n in (b"a", b"b"):
                reply.entries.add(name=n, offset=1 + len(n),
                                  type=stat.S_IFREG)
            reply.eof = False
            return
        if a.endless_listing:
            self.page += 1
            for i in range(100):
                reply.entries.add(name=b"n%d_%d" % (self.page, i),
                                  offset=self.page * 1000 + i + 1,
                                  type=stat.S_IFREG)
            reply.eof = False
            return
        if a.huge_reply or a.huge_listing:
            n = 0
            size = 0
            while size < (a.huge_reply or a.huge_listing):
                name = b"%0200d" % n
                e = reply.entries.add(name=name, type=stat.S_IFREG)
                if a.huge_reply:
                    e.offset = n + 1
                size += len(name)
                n += 1
            reply.eof = True
            return
        for name, at in ((b"file", TREE[b"/file"]), (b"dir", TREE[b"/dir"])):
            e = reply.entries.add(name=name)
            e.attr.CopyFrom(at)
            if a.bad_attrs:
                e.attr.mode = 0
                reply.entries.add(name=b"x/y", type=stat.S_IFREG)
        reply.eof = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--rename-on-init", nargs=2)
    ap.add_argument("--symlink-at-src")
    ap.add_argument("--hang", action="store_true")
    ap.add_argument("--hang-path")
    ap.add_argument("--hang-reads", action="store_true")
    ap.add_argument("--repeat-page", action="store_true")
    ap.add_argument("--endless-listing", action="store_true")
    ap.add_argument("--huge-reply", type=int, default=0)
    ap.add_argument("--huge-listing", type=int, default=0)
    ap.add_argument("--ttl-ms", type=int, default=0)
    ap.add_argument("--flood-notices", type=int, default=0)
    ap.add_argument("--bad-attrs", action="store_true")
    ap.add_argument("--errno", type=int, default=0)
    ap.add_argument("--instance", type=int, default=0)
    args = ap.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_send_message_length", 256 << 20),
                                  ("grpc.max_receive_message_length", 64 << 20)])
    hostile = Hostile(args)
    pb_grpc.add_FileSystemServicer_to_server(hostile, server)
    if args.listen.startswith("unix:"):
        try:
            os.unlink(args.listen[5:])
        except FileNotFoundError:
            pass
    server.add_insecure_port(args.listen)
    server.start()
    if args.listen.startswith("unix:"):
        os.chmod(args.listen[5:], 0o600)
    print("hostile backend serving on %s" % args.listen, flush=True)
    try:
        server.wait_for_termination()
    finally:
        hostile.stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
