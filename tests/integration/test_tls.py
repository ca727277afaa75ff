"""TLS and mutual TLS between fuse-hostd and TCP backends, end to end with
the C++ loopback_fs and the Python SDK's loopback example, certificates made
here with the openssl command (tls_certs.py): what gets through, what is
refused (wrong CA, wrong name, expired certificate, missing client
certificate, a private key others may read, another identity after a
reconnection, plain TCP without `insecure`), and what users other than root
may do."""

import os
import shutil
import signal
import subprocess
import time

import pytest

import conftest
import fhlib
from daemon_stats import kernel_requests
import pyfhlib
import tls_certs
from fhcontrol import Ctl, refused, start_daemon, track_mount, user_bins, \
    user_dir  # noqa: F401

pytestmark = pytest.mark.usefixtures("needs_daemon")

NAME = "backend.test"


@pytest.fixture(scope="module")
def pki(session_tmp):
    """One CA with server certificates (the backend's, a renewal of it, an
    impostor's with another subject, an expired one), a client certificate
    for the daemon, and a second CA that signed nothing of the backend's."""
    d = os.path.join(session_tmp, "pki")
    shutil.rmtree(d, ignore_errors=True)
    ca = tls_certs.Ca(os.path.join(d, "ca"))
    p = type("Pki", (), {})()
    p.ca = ca.pem
    p.server = ca.issue("server", NAME, dns=NAME)
    p.renewed = ca.issue("renewed", NAME, dns=NAME)
    p.impostor = ca.issue("impostor", "impostor", dns=NAME)
    p.expired = ca.issue("expired", NAME, dns=NAME,
                         start="20200101000000Z", end="20200201000000Z")
    p.client = ca.issue("client", "fuse-hostd", client=True)
    p.other_ca = tls_certs.Ca(os.path.join(d, "other"), "another CA").pem
    return p


class TcpBackend(conftest.Backend):
    """A backend serving on 127.0.0.1:port; `make_command(port)` gives its
    command line (restartable with another one)."""

    def __init__(self, mounts, name, make_command, env=None, port=None):
        super().__init__(mounts.bins, "tcp", mounts.dir, name)
        self.port = port or fhlib.free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.make_command = make_command
        self.env = env
        mounts.backends.append(self)

    def command(self):
        return self.make_command(self.port)

    def start(self, timeout=20):
        self.proc = fhlib.spawn_logged(self.command(), self.log, cwd="/",
                                       env=self.env)
        if fhlib.wait_ready(self.proc,
                            lambda: fhlib.tcp_connectable(self.port), timeout):
            return self
        raise AssertionError("%s did not listen on %s:\n%s" % (
            self.name, self.addr, fhlib.tail(self.log)))

    def restart(self, make_command):
        fhlib.stop_process(self.proc, timeout=10)
        self.make_command = make_command
        return self.start()


def cpp_loopback(bins, root, cert, key, client_ca=None):
    def command(port):
        args = [bins.loopback, "--listen=127.0.0.1:%d" % port,
                "--root=" + root, "--watch=false",
                "--tls_cert=" + cert, "--tls_key=" + key]
        if client_ca:
            args.append("--tls_client_ca=" + client_ca)
        return args
    return command


def py_loopback(root, cert, key, client_ca=None):
    def command(port):
        args = [pyfhlib.SYS_PYTHON,
                os.path.join(pyfhlib.EXAMPLES, "loopback.py"), root,
                "--listen", "127.0.0.1:%d" % port,
                "--tls-cert", cert, "--tls-key", key]
        if client_ca:
            args += ["--tls-client-ca", client_ca]
        return args
    return command


def relay_to(mounts, backend):
    """bench/delay_relay.py in front of `backend` (1 ms each way): stopping
    and starting it drops the daemon's connection like a network would."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "bench", "delay_relay.py")
    relay = TcpBackend(mounts, "relay", lambda port: [
        pyfhlib.SYS_PYTHON, script, "--target", backend.addr,
        "--delay-ms", "1", "--listen", "127.0.0.1:%d" % port])
    return relay.start()


def sdk_env(sdk):
    """The environment of a loopback: "cpp", "python", or "python-grpcio"
    (the Python SDK on grpcio's server instead of gRPC's C++ server, which
    it falls back to when its extension cannot be loaded)."""
    if sdk == "cpp":
        return None
    return pyfhlib.python_env(extra={"FUSEHOST_NATIVE_SERVER": "0"}
                              if sdk == "python-grpcio" else None)


def sdk_loopback_behind_relay(mounts, sdk, name, root, cert, key):
    """The C++ or Python loopback of `root`, serving TLS with (cert, key),
    started behind relay_to()'s relay: (backend, relay)."""
    make = (cpp_loopback(mounts.bins, root, cert, key) if sdk == "cpp"
            else py_loopback(root, cert, key))
    b = TcpBackend(mounts, name, make, env=sdk_env(sdk))
    b.start()
    return b, relay_to(mounts, b)


def tls_options(pki, ca=None, name=NAME, client=None):
    opts = ["tls_ca=" + (ca or pki.ca)]
    if name:
        opts.append("tls_server_name=" + name)
    if client:
        opts += ["tls_cert=" + client[0], "tls_key=" + client[1]]
    return ",".join(opts)


def mount_tcp(mounts, daemon, backend, options):
    mp = mounts.mountpoint()
    r = daemon.mount(backend.addr, mp, options)
    if r.returncode == 0:
        mounts.mounts.append(conftest.Mount(daemon, backend, mp, options))
    return mp, r


def identity_in_list(daemon, mp):
    """The backend identity line `fuse-hostctl list` shows under `mp`."""
    lines = daemon.list().check().stdout.splitlines()
    for i, line in enumerate(lines):
        if line.split() and line.split()[0] == mp:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            prefix = "  backend identity: "
            return nxt[len(prefix):] if nxt.startswith(prefix) else None
    raise AssertionError("%s not listed:\n%s" % (mp, "\n".join(lines)))


def round_trip(mounts, mp, root):
    """Writes through the mount, finds the bytes in the backing directory
    and reads them back."""
    ops = mounts.ops(cwd=mp)
    r = ops.ok([("write_file", "hello", b"over TLS"), ("read_file", "hello"),
                ("mkdir", "d"), ("listdir", ".")])
    assert r[1] == b"over TLS"
    with open(os.path.join(root, "hello"), "rb") as f:
        assert f.read() == b"over TLS"
    assert r[3] == ["d", "hello"], r[3]


# --- end to end ----------------------------------------------------------------------

@pytest.mark.parametrize("sdk", ["cpp", "python", "python-grpcio"])
@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual_tls"])
def test_tls_end_to_end(mounts, pki, sdk, mutual):
    root = mounts.mkdir("backing")
    client_ca = pki.ca if mutual else None
    make = (cpp_loopback(mounts.bins, root, *pki.server, client_ca)
            if sdk == "cpp" else py_loopback(root, *pki.server, client_ca))
    b = TcpBackend(mounts, "tls-" + sdk, make, env=sdk_env(sdk))
    b.start()
    d = mounts.daemon
    if mutual:
        # Without a client certificate the backend ends the handshake.
        mp, r = mount_tcp(mounts, d, b, tls_options(pki))
        refused(r, "unreachable")
        assert not fhlib.is_mounted(mp)
    mp, r = mount_tcp(mounts, d, b,
                      tls_options(pki, client=pki.client if mutual else None))
    assert r.returncode == 0, (r, fhlib.tail(d.log))
    round_trip(mounts, mp, root)
    # list shows who the backend is: its certificate's subject and the
    # fingerprint of the certificate it presented.
    ident = identity_in_list(d, mp)
    assert ident == "subject=O=fuse-hostd tests,CN=%s; sha256=%s" % (
        NAME, tls_certs.fingerprint(pki.server[0])), ident


def test_server_name_defaults_to_the_address(mounts, pki):
    """Without tls_server_name= the address's host is checked: the
    certificate names 127.0.0.1 too."""
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server))
    b.start()
    mp, r = mount_tcp(mounts, mounts.daemon, b, tls_options(pki, name=None))
    assert r.returncode == 0, r
    round_trip(mounts, mp, root)


# --- refusals ------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name", "expired"])
def test_backend_certificate_refused(mounts, pki, case):
    root = mounts.mkdir("backing")
    cert = pki.expired if case == "expired" else pki.server
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *cert))
    b.start()
    options = {
        "wrong_ca": tls_options(pki, ca=pki.other_ca),
        "wrong_name": tls_options(pki, name="elsewhere.test"),
        "expired": tls_options(pki),
    }[case]
    d = start_daemon(mounts)
    mp, r = mount_tcp(mounts, d, b, options)
    why = {"wrong_ca": "certificate verify failed",
           "wrong_name": "Hostname Verification",
           "expired": "certificate verify failed"}[case]
    refused(r, "unreachable", why, daemon=d)
    assert not fhlib.is_mounted(mp)
    # The same backend with the right settings is fine (nothing else was
    # wrong), except the expired certificate, which nothing accepts.
    if case != "expired":
        mp, r = mount_tcp(mounts, d, b, tls_options(pki))
        assert r.returncode == 0, r


def test_private_keys_must_be_private(mounts, pki, tmp_path):
    """A key others may read is refused, by the daemon (the client key)
    and by both SDKs (the server key), with a message that says how to fix
    it."""
    exposed = str(tmp_path / "client.key")
    shutil.copyfile(pki.client[1], exposed)
    os.chmod(exposed, 0o640)
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server,
                                               client_ca=pki.ca))
    b.start()
    d = start_daemon(mounts)
    mp, r = mount_tcp(mounts, d, b, tls_options(
        pki, client=(pki.client[0], exposed)))
    refused(r, "private key " + exposed, "accessible to other users",
            "mode 0640", "chmod 600", daemon=d)
    server_key = str(tmp_path / "server.key")
    shutil.copyfile(pki.server[1], server_key)
    os.chmod(server_key, 0o644)
    for name, make, env in (
            ("cpp", cpp_loopback(mounts.bins, root, pki.server[0], server_key),
             None),
            ("python", py_loopback(root, pki.server[0], server_key),
             pyfhlib.python_env())):
        res = subprocess.run(make(fhlib.free_port()), env=env,
                             capture_output=True, text=True, timeout=30)
        assert res.returncode != 0, (name, res)
        assert "accessible to other users (mode 0644)" in res.stderr, \
            (name, res.stderr)


def test_another_identity_after_reconnect(mounts, pki):
    """The identity is fixed at mount time: a backend that comes back with
    another certificate of the same CA and name but another subject gets
    ENOTCONN for callers and an audit line; a renewal of the original
    certificate (same subject, new key) is taken."""
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server))
    b.start()
    d = mounts.daemon
    mp, r = mount_tcp(mounts, d, b, tls_options(pki) + ",attr_timeout=0,"
                      "entry_timeout=0,cache_entries=0")
    assert r.returncode == 0, r
    ops = mounts.ops(cwd=mp)
    ops.ok([("write_file", "f", b"1")])
    log_start = fhlib.file_size(d.log)
    b.restart(cpp_loopback(mounts.bins, root, *pki.impostor))

    def refused_impostor():
        r = ops.one(("read_file", "f"))
        text = fhlib.tail(d.log, log_start)
        return (fhlib.is_err(r, "ENOTCONN") and
                "presented certificate subject=O=fuse-hostd tests,CN=impostor" in text)
    assert fhlib.wait_until(refused_impostor, 15), fhlib.tail(d.log, log_start)
    assert "connection refused" in fhlib.tail(d.log, log_start)
    assert fhlib.is_err(ops.one(("write_file", "g", b"2")), "ENOTCONN")
    # Nothing reached the impostor's tree (it is the same directory here).
    assert not os.path.exists(os.path.join(root, "g"))
    assert ("sha256=%s" % tls_certs.fingerprint(pki.server[0])
            in identity_in_list(d, mp))

    b.restart(cpp_loopback(mounts.bins, root, *pki.renewed))
    assert fhlib.wait_until(
        lambda: ops.one(("read_file", "f")) == b"1", 15), \
        fhlib.tail(d.log, log_start)
    ident = identity_in_list(d, mp)
    assert ident == "subject=O=fuse-hostd tests,CN=%s; sha256=%s" % (
        NAME, tls_certs.fingerprint(pki.renewed[0])), ident


def plain_tcp_loopback(mounts):
    """The C++ loopback of a new directory on plain TCP, and a daemon:
    (the directory, the backend, the daemon)."""
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "plain", lambda port: [
        mounts.bins.loopback, "--listen=127.0.0.1:%d" % port,
        "--root=" + root, "--watch=false"])
    b.start()
    return root, b, start_daemon(mounts)


def test_plain_tcp_only_when_asked(mounts):
    root, b, d = plain_tcp_loopback(mounts)
    mp, r = mount_tcp(mounts, d, b, "")
    refused(r, "reached over TCP", "tls_ca=", "insecure", daemon=d)
    mp, r = mount_tcp(mounts, d, b, "insecure")
    assert r.returncode == 0, r
    round_trip(mounts, mp, root)
    assert identity_in_list(d, mp) == "insecure"


def test_writes_over_tcp_gather_in_the_kernel_unless_turned_off(mounts):
    """A backend reached over TCP gets the kernel's writeback cache by
    default (writeback_cache): 300 appends of 100 bytes reach it in a few
    writes; with no_writeback_cache each is a write of its own."""
    root, b, d = plain_tcp_loopback(mounts)
    expected = b"".join(b"%-99d\n" % i for i in range(300))
    for options, most, least in (("insecure", 5, 0),
                                 ("insecure,no_writeback_cache", None, 300)):
        mp, r = mount_tcp(mounts, d, b, options)
        assert r.returncode == 0, r
        name = "log-%d" % least
        fd = os.open(os.path.join(mp, name), os.O_WRONLY | os.O_CREAT |
                     os.O_APPEND, 0o644)
        try:
            for i in range(300):
                os.write(fd, expected[i * 100:(i + 1) * 100])
        finally:
            os.close(fd)
        with open(os.path.join(root, name), "rb") as f:
            assert f.read() == expected
        m = conftest.Mount(d, b, mp, options)
        writes = kernel_requests(m, "write")
        if most is not None:
            assert writes <= most, (options, writes)
        assert writes >= least, (options, writes)


# --- users other than root ---------------------------------------------------------

def test_users_tls_files_read_as_themselves(mounts, users, user_bins, pki):
    """A user's TLS mount works with files of theirs; the daemon reads the
    files as the user, so root's key is out of reach; plain TCP needs the
    configuration's allow_insecure_tcp_backends."""
    a = users.a
    home = user_dir(mounts, a, "home_a")
    mine = os.path.join(home, "tls")
    os.makedirs(mine)
    for src in (pki.ca,) + pki.client:
        shutil.copy(src, mine)
    for dirpath, _, files in os.walk(mine):
        os.chown(dirpath, a.uid, a.gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), a.uid, a.gid)
    ca = os.path.join(mine, "ca.pem")
    client = (os.path.join(mine, "client.pem"), os.path.join(mine, "client.key"))
    root_dir = user_dir(mounts, a, "backing_a")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root_dir,
                                               *pki.server, client_ca=pki.ca))
    b.start()
    d = start_daemon(mounts, "users { allow_tcp_backends: true }")
    ctl = Ctl(d, user_bins)
    mnt = user_dir(mounts, a, "home_a/mnt")

    # Root's copy of the client key (0600, root's) is not the user's to use.
    refused(ctl(a, "mount", b.addr, mnt, "-o", tls_options(
        pki, ca=ca, client=(client[0], pki.client[1]))),
        pki.client[1], "Permission denied", daemon=d, user=a)
    # Nor is a CA file they cannot read (in a directory of root's, 0700).
    hidden = mounts.mkdir("root_only", 0o700)
    root_ca = shutil.copy(pki.ca, hidden)
    os.chmod(root_ca, 0o644)
    refused(ctl(a, "mount", b.addr, mnt, "-o", tls_options(
        pki, ca=root_ca, client=client)), root_ca, "Permission denied",
        daemon=d, user=a)
    # Their own files work.
    ctl(a, "mount", b.addr, mnt, "-o",
        tls_options(pki, ca=ca, client=client)).check()
    track_mount(mounts, d, mnt)
    r = mounts.ops(a, mnt).ok([("write_file", "f", b"mine"),
                               ("read_file", "f")])
    assert r[1] == b"mine"
    assert "CN=%s;" % NAME in identity_in_list(d, mnt)
    ctl(a, "unmount", mnt).check()

    # Plain TCP: refused for users unless the configuration allows it.
    refused(ctl(a, "mount", b.addr, mnt, "-o", "insecure"),
            "plain TCP", "not allowed", daemon=d, user=a)
    d2 = start_daemon(mounts, "users { allow_tcp_backends: true "
                      "allow_insecure_tcp_backends: true }")
    plain = TcpBackend(mounts, "plain", lambda port: [
        mounts.bins.loopback, "--listen=127.0.0.1:%d" % port,
        "--root=" + root_dir, "--watch=false"])
    plain.start()
    Ctl(d2, user_bins)(a, "mount", plain.addr, mnt, "-o", "insecure").check()
    track_mount(mounts, d2, mnt)
    assert mounts.ops(a, mnt).ok([("read_file", "f")])[0] == b"mine"


def test_static_mount_with_tls(mounts, pki):
    """The configuration's static mounts take the same options."""
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server,
                                               client_ca=pki.ca))
    b.start()
    mp = mounts.mountpoint()
    d = start_daemon(mounts, 'mount { backend: "%s" mountpoint: "%s" '
                     'options: "%s" }' % (b.addr, mp, tls_options(
                         pki, client=pki.client)))
    assert fhlib.wait_until(lambda: fhlib.is_mounted(mp), 10), \
        fhlib.tail(d.log)
    track_mount(mounts, d, mp)
    round_trip(mounts, mp, root)


def test_network_drop_and_return(mounts, pki):
    """TLS through a TCP relay (bench/delay_relay.py, 1 ms each way) that
    goes away and comes back: while it is gone, operations that need the
    backend fail fast with ENOTCONN; once it is back, the mount works again
    without remounting (a new handshake, the same identity)."""
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server,
                                               client_ca=pki.ca))
    b.start()
    relay = relay_to(mounts, b)
    d = mounts.daemon
    mp, r = mount_tcp(mounts, d, relay, tls_options(pki, client=pki.client) +
                      ",cache_entries=0,attr_timeout=0,entry_timeout=0")
    assert r.returncode == 0, (r, fhlib.tail(d.log))
    ops = mounts.ops(cwd=mp)
    ops.ok([("write_file", "f", b"before")])
    fhlib.stop_process(relay.proc, timeout=10)
    assert fhlib.is_err(ops.one(("read_file", "f")), "ENOTCONN")
    assert fhlib.is_err(ops.one(("write_file", "g", b"x")), "ENOTCONN")
    relay.start()
    assert fhlib.wait_until(
        lambda: ops.one(("read_file", "f")) == b"before", 15), \
        fhlib.tail(d.log, mounts.daemon_log_start)
    ops.ok([("write_file", "g", b"after")])
    assert "CN=%s;" % NAME in identity_in_list(d, mp)


@pytest.mark.parametrize("sdk", ["cpp", "python"])
def test_silent_backend_host_is_given_up_and_reconnected(mounts, pki, sdk):
    """The relay turns every connection it carries into a black hole (a
    backend host that went away without closing anything; connections made
    after it work). With keepalive=1 the daemon's pings go unanswered, it
    gives the connection up within about two seconds and sends the
    operation again on a new one: a lookup that was waiting succeeds,
    where without pings it would wait for the whole call deadline (60 s
    here) and fail. Both SDKs answer the pings of an idle connection
    without calling it abuse (gRPC's default server policy)."""
    root = mounts.mkdir("backing")
    _, relay = sdk_loopback_behind_relay(mounts, sdk, "silent-" + sdk, root,
                                         *pki.server)
    d = mounts.daemon
    mp, r = mount_tcp(mounts, d, relay, tls_options(pki) +
                      ",keepalive=1,timeout=60")
    assert r.returncode == 0, (r, fhlib.tail(d.log))
    ops = mounts.ops(cwd=mp)
    ops.ok([("write_file", "f", b"before")])
    # Idle for several ping periods: pings answered, nothing given up.
    time.sleep(4)
    assert ops.one(("read_file", "f")) == b"before"
    relay.proc.send_signal(signal.SIGUSR2)
    with open(os.path.join(root, "new"), "wb") as f:
        f.write(b"made behind the mount's back")
    start = time.monotonic()
    got = ops.one(("read_file", "new"))
    took = time.monotonic() - start
    assert got == b"made behind the mount's back", \
        (got, fhlib.tail(d.log, mounts.daemon_log_start))
    assert took < 15, took
    ops.ok([("write_file", "g", b"after")])
    with open(os.path.join(root, "g"), "rb") as f:
        assert f.read() == b"after"


@pytest.mark.parametrize("sdk", ["cpp", "python", "python-grpcio"])
def test_backend_takes_renewed_certificate_without_restart(mounts, pki, sdk,
                                                           tmp_path):
    """Both SDKs (the Python one on either server) serve a certificate
    whose files were replaced from the next connection on, without a
    restart."""
    cert, key = str(tmp_path / "server.pem"), str(tmp_path / "server.key")
    shutil.copyfile(pki.server[0], cert)
    shutil.copyfile(pki.server[1], key)
    os.chmod(key, 0o600)
    root = mounts.mkdir("backing")
    b, relay = sdk_loopback_behind_relay(mounts, sdk, "tls-" + sdk, root, cert,
                                         key)
    d = mounts.daemon
    mp, r = mount_tcp(mounts, d, relay, tls_options(pki) +
                      ",cache_entries=0,attr_timeout=0,entry_timeout=0")
    assert r.returncode == 0, r
    ops = mounts.ops(cwd=mp)
    ops.ok([("write_file", "f", b"1")])
    old = tls_certs.fingerprint(pki.server[0])
    assert identity_in_list(d, mp).endswith("sha256=" + old)
    # Replaced the way tools do it: new files renamed over the old ones.
    for src, dst in ((pki.renewed[0], cert), (pki.renewed[1], key)):
        shutil.copyfile(src, dst + ".new")
        os.chmod(dst + ".new", 0o600)
        os.rename(dst + ".new", dst)
    new = tls_certs.fingerprint(pki.renewed[0])

    def reconnected_to_renewed():
        # Each round is a new connection (the C++ SDK looks at its files
        # every 2 s, so the first ones may still get the old certificate).
        fhlib.stop_process(relay.proc, timeout=10)
        relay.start()
        ops.one(("read_file", "f"))
        return identity_in_list(d, mp).endswith("sha256=" + new)
    assert fhlib.wait_until(reconnected_to_renewed, 20, interval=0.5), \
        identity_in_list(d, mp)
    assert b.proc.poll() is None  # the same process throughout
    assert ops.one(("read_file", "f")) == b"1"


def test_daemon_rereads_its_files_on_reconnect(mounts, pki, tmp_path):
    """The daemon reads its certificate files again for each new
    connection: a backend restarted to accept only clients of a new CA
    takes the mount back once the daemon's client certificate and key
    files hold one of that CA's."""
    other = tls_certs.Ca(str(tmp_path / "clients2"), "second client CA")
    new_client = other.issue("client", "fuse-hostd", client=True)
    cert, key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    shutil.copyfile(pki.client[0], cert)
    shutil.copyfile(pki.client[1], key)
    os.chmod(key, 0o600)
    root = mounts.mkdir("backing")
    b = TcpBackend(mounts, "tls", cpp_loopback(mounts.bins, root, *pki.server,
                                               client_ca=pki.ca))
    b.start()
    d = mounts.daemon
    mp, r = mount_tcp(mounts, d, b, tls_options(pki, client=(cert, key)) +
                      ",cache_entries=0,attr_timeout=0,entry_timeout=0")
    assert r.returncode == 0, r
    ops = mounts.ops(cwd=mp)
    ops.ok([("write_file", "f", b"1")])
    b.restart(cpp_loopback(mounts.bins, root, *pki.server,
                           client_ca=other.pem))
    # The old client certificate is no longer accepted.
    assert fhlib.wait_until(
        lambda: fhlib.is_err(ops.one(("read_file", "f")), "ENOTCONN"), 15)
    shutil.copyfile(new_client[0], cert)
    shutil.copyfile(new_client[1], key)
    assert fhlib.wait_until(
        lambda: ops.one(("read_file", "f")) == b"1", 15), \
        fhlib.tail(d.log, mounts.daemon_log_start)
