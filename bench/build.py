"""Getting the binaries the benchmark runs: libfuse's examples compiled with
gcc -O2, fuse-hostd, fuse-hostctl and loopback_fs built with `bazel build -c
opt` in a private output base (or taken from --hostd-bin-dir), and the Python
SDK package with the Python loopback example. All of them are copied into
the work directory first, so that a rebuild or an edit mid-run changes
nothing.

Where each fuse-hostd binary sits in bazel-bin, and the target that builds
it, come from fhlib.BINARY_PACKAGES, the table the integration tests use.
"""

import os
import shutil

from common import REPO, fhlib, log, run

EXAMPLES = '/usr/share/doc/libfuse3-dev/examples'
HOSTD_BINARIES = ['fuse-hostd', 'fuse-hostctl', 'loopback_fs']
# Built with them; taken from --hostd-bin-dir only if there.
OPTIONAL_BINARIES = ['roundtrip']


def build_libfuse_examples(b):
    cflags = run(['pkg-config', 'fuse3', '--cflags', '--libs']
                 ).stdout.decode().split()
    for name in ('passthrough_ll', 'passthrough'):
        log('building libfuse example %s (gcc -O2)' % name)
        # The HAVE_* macros libfuse's own (meson) build defines on
        # Linux: without them passthrough lacks utimens, xattrs, ...
        run(['gcc', '-O2', '-Wall', '-DHAVE_UTIMENSAT', '-DHAVE_SETXATTR',
             '-DHAVE_POSIX_FALLOCATE', '-DHAVE_FALLOCATE',
             '-DHAVE_COPY_FILE_RANGE', '-I', EXAMPLES,
             os.path.join(EXAMPLES, name + '.c'), '-o', b.bin(name)]
            + cflags)


def build_hostd(b, need_python):
    """Builds (or finds) fuse-hostd's binaries and copies them to b.bindir;
    with need_python, the fusehost package and the Python loopback too."""
    args = b.args
    ws = REPO  # where the Python examples are taken from
    if args.hostd_bin_dir:
        d = args.hostd_bin_dir
        # A flat directory or a bazel-bin tree.
        src = {n: os.path.join(d, n) if os.path.exists(os.path.join(d, n))
               else fhlib.binary_path(d, n)
               for n in HOSTD_BINARIES + OPTIONAL_BINARIES}
        pkg = os.path.join(d, 'fusehost')
        if not os.path.isdir(pkg):
            pkg = os.path.join(d, 'client', 'python', 'fusehost')
        b.build_desc = 'prebuilt, from ' + os.path.abspath(d)
    else:
        base = args.bazel_output_base
        if args.hostd_source == 'head':
            # The committed tree, whatever is being edited in the workspace.
            ws = os.path.join(b.work, 'head-src')
            shutil.rmtree(ws, ignore_errors=True)
            os.makedirs(ws)
            archive = run(['git', '-C', REPO, 'archive', 'HEAD']).stdout
            run(['tar', 'x', '-C', ws], input=archive)
            base += '-head'
        targets = [fhlib.bazel_target(n)
                   for n in HOSTD_BINARIES + OPTIONAL_BINARIES]
        if need_python:
            # The importable package: the SDK's modules plus the
            # generated protocol modules (nothing generated is checked in).
            targets.append('//client/python:fusehost')
        log('building fuse-hostd (%s) with bazel -c opt, private output '
            'base %s' % (args.hostd_source, base))
        # A private output base: the team's bazel server, its lock and the
        # workspace's bazel-* symlinks are left alone.
        bazel = ['bazel', '--output_base=' + base]
        r = run(bazel + ['build', '-c', 'opt', '--noshow_progress',
                         '--experimental_convenience_symlinks=ignore']
                + targets, cwd=ws, check=False, stdout=None, stderr=None)
        if r.returncode != 0:
            run(bazel + ['shutdown'], cwd=ws, check=False)
            raise RuntimeError(
                'building fuse-hostd failed (see above). Someone may be '
                'mid-edit: retry, or use --hostd-source=head, or '
                '--hostd-bin-dir=DIR with binaries built earlier')
        out = run(bazel + ['info', '-c', 'opt', 'bazel-bin'],
                  cwd=ws).stdout.decode().strip()
        run(bazel + ['shutdown'], cwd=ws, check=False)
        src = {n: fhlib.binary_path(out, n)
               for n in HOSTD_BINARIES + OPTIONAL_BINARIES}
        pkg = os.path.join(out, 'client', 'python', 'fusehost')
        b.build_desc = 'bazel build -c opt of the %s' % (
            'work tree' if args.hostd_source == 'worktree'
            else 'committed HEAD')
    for n in HOSTD_BINARIES:
        # Copies: a rebuild in the workspace mid-run changes nothing here.
        shutil.copy(src[n], b.bin(n))
    for n in OPTIONAL_BINARIES:
        if os.path.exists(src[n]):
            shutil.copy(src[n], b.bin(n))
    if need_python:
        copy_python(b, pkg, os.path.join(ws, 'examples', 'python'))


def copy_python(b, pkg, examples):
    """Copies the fusehost package and the Python loopback example (with
    the command line module it imports) next to the binaries, for the
    same reason as the binaries: edits mid-run change nothing."""
    if not os.path.isfile(os.path.join(pkg, 'filesystem_pb2.py')):
        raise RuntimeError('no built fusehost package in %s' % pkg)
    b.py_package = os.path.join(b.bindir, 'python')
    b.py_examples = os.path.join(b.bindir, 'python-examples')
    for d in (b.py_package, b.py_examples):
        shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(pkg, os.path.join(b.py_package, 'fusehost'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    os.makedirs(b.py_examples)
    for name in ('loopback.py', 'loopback_attributes.py',
                 'loopback_credentials.py', 'loopback_files.py',
                 'loopback_handles.py', 'loopback_libc.py', 'loopback_names.py',
                 'example_cli.py', 'tree_watch.py', 'own_changes.py'):
        shutil.copy(os.path.join(examples, name), b.py_examples)


def build_binaries(b, need_hostd, need_libfuse, need_python):
    if need_libfuse:
        build_libfuse_examples(b)
    if need_hostd:
        build_hostd(b, need_python)
