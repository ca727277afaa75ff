"""TLS for serve(): on a TCP address, with a certificate and key, and
mutual TLS with a CA for client certificates.

The files are read when serving starts (a missing file or a private key
others may read is refused at once) and looked at again later: a renewed
certificate is served from the next connection on, without a restart.
gRPC's C++ server (_native.py) takes the files' paths and watches them as
the C++ SDK does (client/tls_credentials.h); grpcio's server takes the
credentials made here, which look at the files for every new connection.
"""

import collections
import os
import stat
import threading

import grpc

# The files of a TLS server; client_ca None: no client certificates asked.
TlsFiles = collections.namedtuple("TlsFiles", "cert key client_ca")


def _read(what, path, private=False):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError("%s %s: %s" % (what, path, e.strerror))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("%s %s is not a regular file" % (what, path))
        if private and st.st_mode & 0o077:
            raise ValueError(
                "%s %s is accessible to other users (mode %04o): make it "
                "readable by its owner only (chmod 600)"
                % (what, path, st.st_mode & 0o7777))
        return f.read(1 << 20), (st.st_ino, st.st_mtime_ns, st.st_size)


class _Reloader:
    """Reads the files, and again when any of them changed."""

    def __init__(self, cert, key, client_ca):
        self._paths = (cert, key, client_ca)
        self._lock = threading.Lock()
        self._seen = None
        self.initial = self._load()

    def _load(self):
        cert, key, ca = self._paths
        cert_pem, s1 = _read("certificate", cert)
        key_pem, s2 = _read("private key", key, private=True)
        ca_pem, s3 = _read("client CA", ca) if ca else (None, None)
        self._seen = (s1, s2, s3)
        return grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=ca_pem)

    def _signature(self):
        out = []
        for p in self._paths:
            if p is None:
                out.append(None)
                continue
            st = os.stat(p)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def fetch(self):
        """gRPC asks before each handshake: a new configuration, or None
        to keep the current one."""
        with self._lock:
            try:
                if self._signature() == self._seen:
                    return None
                return self._load()
            except (OSError, ValueError):
                # A file being replaced: keep serving the last good one.
                return None


def tls_files(address, tls_cert=None, tls_key=None, tls_client_ca=None):
    """None for plain serving, else the TlsFiles, each read once now.
    Raises ValueError with a message for the user."""
    if not (tls_cert or tls_key or tls_client_ca):
        return None
    if address.startswith("unix:"):
        raise ValueError("TLS is for TCP addresses; a Unix socket's clients "
                         "are checked by the kernel")
    if not (tls_cert and tls_key):
        raise ValueError("TLS needs both tls_cert and tls_key")
    files = TlsFiles(tls_cert, tls_key, tls_client_ca or None)
    _Reloader(*files)  # reads them all: a mistake is reported now
    return files


def grpcio_credentials(files):
    """grpcio's server credentials for `files` (TlsFiles)."""
    reloader = _Reloader(*files)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial, reloader.fetch,
        require_client_authentication=files.client_ca is not None)
