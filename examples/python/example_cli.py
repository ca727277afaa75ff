"""The command line the Python examples share (not part of fusehost):

  EXAMPLE.py [ARGS] MOUNTPOINT [-o OPTIONS] [--debug]   mount with FUSE()
  EXAMPLE.py [ARGS] --listen ADDRESS                    serve() for
                                                        fuse-hostctl mount
"""

import argparse
import logging

import fusehost as fuse

# The FUSE() options that serve() takes too (the others are mount options,
# which `fuse-hostctl mount -o` gives instead).
_SERVE_OPTIONS = ("use_ino", "nothreads", "direct_io", "kernel_cache")


def parser(doc):
    """An argument parser with the shared options; add the example's own
    positional arguments before calling parse()."""
    p = argparse.ArgumentParser(description=doc.strip().split("\n")[0])
    p.add_argument("-o", dest="options", default="",
                   help="mount options, e.g. allow_other,ro")
    p.add_argument("--listen", help="only serve, on unix:/PATH or "
                   "HOST:PORT, for `fuse-hostctl mount`")
    p.add_argument("--debug", action="store_true",
                   help="log every operation")
    p.add_argument("--tls-cert", help="with --listen HOST:PORT: serve TLS "
                   "with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM, "
                   "mode 600)")
    p.add_argument("--tls-client-ca", help="mutual TLS: clients must present "
                   "a certificate signed by this CA (PEM)")
    return p


def parse(p):
    p.add_argument("mount", nargs="?", help="where to mount it")
    args = p.parse_args()
    if not args.listen and not args.mount:
        p.error("a mountpoint (or --listen ADDRESS) is required")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    return args


def run(args, fs, **options):
    """Serves `fs` (--listen) or mounts it in the foreground with FUSE()
    until it is unmounted; `options` are FUSE()'s, -o adds to them."""
    if args.listen:
        fuse.serve(fs, args.listen, tls_cert=args.tls_cert,
                   tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                   **{k: v for k, v in options.items()
                      if k in _SERVE_OPTIONS})
        return
    options.update(fuse.parse_options(args.options))
    fuse.FUSE(fs, args.mount, foreground=True, debug=args.debug, **options)
