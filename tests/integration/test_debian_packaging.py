"""The Debian packaging (debian/) against the tree it packages: the layout
debian/rules gets from packaging/install.sh holds every file the .install
lists name, and the SDK archives debian/rules merges into libfusehost.a,
with the pkg-config file made from debian/fusehost.pc.in, link a backend
outside Bazel. (packaging/debian-boot-test.sh builds and installs the real
packages in a booted container; it takes minutes and the network.)"""

import glob
import os
import re
import shutil

from fhlib import run_cmd

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEBIAN = os.path.join(REPO, "debian")


def control_packages():
    """Binary package names in debian/control."""
    with open(os.path.join(DEBIAN, "control")) as f:
        return re.findall(r"^Package:\s*(\S+)$", f.read(), re.M)


def rules_variable(name):
    """Words of a `NAME := ...` variable of debian/rules (with continuations)."""
    with open(os.path.join(DEBIAN, "rules")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^%s\s*:=(.*)$" % re.escape(name), text, re.M)
    assert m, name
    return m.group(1).split()


def test_every_packaged_file_is_installed(bins, tmp_path):
    assert sorted(control_packages()) == [
        "fuse-hostd", "libfusehost-dev", "python3-fusehost"]
    for pkg in control_packages():
        assert os.path.isfile(os.path.join(DEBIAN, pkg + ".install")), pkg
    dest = str(tmp_path / "dest")
    # The same call as debian/rules' override_dh_auto_install.
    run_cmd([os.path.join(REPO, "packaging", "install.sh"), "--no-build",
             "--destdir=" + dest, "--prefix=/usr",
             "--unitdir=/lib/systemd/system", "--bazel-bin=" + bins.dir],
            timeout=60).check()
    with open(os.path.join(DEBIAN, "fuse-hostd.install")) as f:
        listed = [line.strip() for line in f if line.strip()]
    assert "lib/systemd/system/fuse-hostd.service" in listed
    for entry in listed:
        assert glob.glob(os.path.join(dest, entry)), entry
    unit = open(os.path.join(dest, "lib/systemd/system/fuse-hostd.service"))\
        .read()
    assert "ExecStart=/usr/sbin/fuse-hostd --config=" in unit
    with open(os.path.join(DEBIAN, "fuse-hostd.manpages")) as f:
        for page in f.read().split():
            assert os.path.isfile(os.path.join(REPO, page)), page


def test_sdk_archive_and_pkg_config_link_a_backend(bins, tmp_path):
    prefix = tmp_path / "usr"
    libdir = prefix / "lib"
    include = prefix / "include" / "fusehost" / "client"
    os.makedirs(libdir / "pkgconfig")
    os.makedirs(include)
    shutil.copy(os.path.join(REPO, "client", "filesystem.h"), include)
    # Merge the archives as debian/rules does.
    archives = rules_variable("SDK_ARCHIVES")
    assert archives
    script = ["create %s" % (libdir / "libfusehost.a")]
    for a in archives:
        path = os.path.join(bins.dir, a)
        assert os.path.isfile(path), "%s missing (bazel build //...)" % path
        script.append("addlib " + path)
    script += ["save", "end", ""]
    run_cmd(["ar", "-M"], input="\n".join(script)).check()
    with open(os.path.join(DEBIAN, "fusehost.pc.in")) as f:
        pc = (f.read().replace("@PREFIX@", str(prefix))
              .replace("@LIBDIR@", str(libdir)).replace("@VERSION@", "0"))
    (libdir / "pkgconfig" / "fusehost.pc").write_text(pc)
    env = dict(os.environ, PKG_CONFIG_PATH=str(libdir / "pkgconfig"))
    flags = run_cmd(["pkg-config", "--cflags", "--libs", "fusehost"],
                    env=env)
    flags.check()
    program = str(tmp_path / "note_fs")
    run_cmd(["g++", "-O0", "-o", program,
             os.path.join(REPO, "packaging", "boot-test", "note_fs.cc")]
            + flags.stdout.split(), timeout=300).check()
    # It runs (and, given no address, says how to use it).
    res = run_cmd([program])
    assert res.returncode == 2 and "usage: note_fs" in res.stderr, res
