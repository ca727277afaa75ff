"""Certificates for TLS tests, made with the openssl command: a CA, and
certificates it signs for servers (with a DNS name and 127.0.0.1) and
clients, including one whose validity ended in the past (`openssl ca`
with -startdate/-enddate)."""

import os
import subprocess

_CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
organizationName = optional
"""


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       capture_output=True, text=True)
    assert r.returncode == 0, "openssl %s failed:\n%s" % (args, r.stderr)
    return r.stdout


def _new_key(path):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-out", path)
    os.chmod(path, 0o600)


class Ca:
    """A CA in directory `d`: `pem` is its certificate."""

    def __init__(self, d, name="fuse-hostd test CA"):
        os.makedirs(os.path.join(d, "issued"), exist_ok=True)
        self.dir = d
        self.key = os.path.join(d, "ca.key")
        self.pem = os.path.join(d, "ca.pem")
        _new_key(self.key)
        _openssl("req", "-x509", "-new", "-key", self.key, "-out", self.pem,
                 "-days", "30", "-subj", "/CN=" + name)
        with open(os.path.join(d, "index.txt"), "w"):
            pass
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        self.config = os.path.join(d, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(_CA_CONFIG.format(dir=d))
        os.chmod(self.pem, 0o644)

    def issue(self, name, subject_cn, dns=None, client=False,
              start=None, end=None):
        """Certificate NAME.pem and key NAME.key (mode 600) in the CA's
        directory, signed by it; a server's carries DNS:`dns` and
        IP:127.0.0.1. `start`/`end` (YYYYMMDDHHMMSSZ) set the validity,
        else 30 days from now. Returns (cert, key)."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        pem = os.path.join(self.dir, name + ".pem")
        _new_key(key)
        ext = ("extendedKeyUsage=clientAuth" if client else
               "subjectAltName=DNS:%s,IP:127.0.0.1" % dns)
        _openssl("req", "-new", "-key", key, "-out", csr, "-subj",
                 "/O=fuse-hostd tests/CN=" + subject_cn, "-addext", ext)
        dates = (["-startdate", start, "-enddate", end] if start else
                 ["-days", "30"])
        _openssl("ca", "-batch", "-config", self.config, "-cert", self.pem,
                 "-keyfile", self.key, "-in", csr, "-out", pem, "-notext",
                 *dates)
        os.chmod(pem, 0o644)
        return pem, key


def fingerprint(pem):
    """SHA-256 fingerprint of a certificate, lowercase hex without colons."""
    out = _openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256")
    return out.strip().split("=", 1)[1].replace(":", "").lower()
