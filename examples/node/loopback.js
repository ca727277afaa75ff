#!/usr/bin/env node
'use strict'
// A loopback filesystem written against fuse-native's API: mirrors one host
// directory through fuse-hostd.
//
// * Permission checks are the kernel's (defaultPermissions): Node cannot
//   switch a thread's fsuid as the C++ and Python loopbacks do, so this
//   one acts as the process (root, to serve other users) and gives new
//   files, directories, links and nodes to the caller (Fuse.context()),
//   with the group of a setgid directory as the host would;
// * open files are real descriptors, so unlinked open files keep working;
//   handles are numbers from a table, never descriptor numbers, and
//   unknown ones answer EBADF;
// * a write, truncate, fallocate or O_TRUNC open by anyone but root clears
//   the file's set-user-ID bit (and set-group-ID of a group-executable
//   file), which the host does not do for a root process;
// * what Node's fs cannot do (xattrs, FIFOs and devices, renameat2 flags,
//   nanosecond utimensat, fallocate, SEEK_DATA/SEEK_HOLE) goes through
//   host_calls.js.
// Paths are resolved by the host below the root: like any fuse-native
// loopback it follows a symlink that someone with write access to the
// backing directory puts in place of a directory (the C++ loopback_fs
// resolves with openat2 instead).
//
//   node examples/node/loopback.js ROOT MOUNTPOINT [-o allow_other,...]

const fs = require('fs')
const path = require('path')
const Fuse = require('fusehost')
const cli = require('./cli')
const host = require('./host_calls')
const { S_IFMT, S_IFREG, S_ISUID, S_ISGID, S_IXGRP, O_TRUNC, caller: callerOf } = require('./modes')

const COPY_CHUNK = 1 << 20

function caller () {
  return callerOf(Fuse)
}

// fuse-native's failure value of a Node fs error: its (negative) errno.
function failure (err) {
  if (typeof err === 'number') return err
  return typeof err.errno === 'number' ? err.errno : Fuse.EIO
}

// Operations written as async functions returning their value; `done`
// turns one into fuse-native's callback form, cb(0, value) or cb(-errno).
function done (fn) {
  return function (...args) {
    const cb = args.pop()
    fn(...args).then((value) => cb(0, value), (err) => cb(failure(err)))
  }
}

// The same for read and write's cb(count).
function counted (fn) {
  return function (...args) {
    const cb = args.pop()
    fn(...args).then((n) => cb(n), (err) => cb(failure(err)))
  }
}

function loopbackFs (root) {
  const fsp = fs.promises
  const handles = new Map() // handle -> descriptor
  let nextHandle = 1

  // Host paths as Buffers: names that are not UTF-8 stay the bytes they
  // are (fusehost hands them over escaped; Fuse.toBuffer undoes it).
  const rootBytes = Buffer.from(root)
  const bytes = (p) => typeof Fuse.toBuffer === 'function' ? Fuse.toBuffer(p) : Buffer.from(p)
  const full = (p) => p === '/' ? rootBytes : Buffer.concat([rootBytes, bytes(p)])

  function fdOf (handle) {
    const fd = handles.get(handle)
    if (fd === undefined) throw Fuse.EBADF
    return fd
  }

  // New nodes belong to the caller; under a setgid directory, to its group.
  async function giveToCaller (p) {
    const { uid, gid } = caller()
    const parent = await fsp.stat(full(path.posix.dirname(p)))
    await fsp.lchown(full(p), uid, parent.mode & S_ISGID ? parent.gid : gid)
  }

  // What the host does for a writer without CAP_FSETID (anyone but root
  // here), and not for this root process.
  async function clearSetIdBits (fd) {
    if (caller().uid === 0) return
    const mode = fs.fstatSync(fd).mode
    const drop = S_ISUID | (mode & S_IXGRP ? S_ISGID : 0)
    if ((mode & S_IFMT) === S_IFREG && (mode & drop)) fs.fchmodSync(fd, mode & ~drop & 0o7777)
  }

  return {
    getattr: done(async (p) => fsp.lstat(full(p), { bigint: true })),
    fgetattr: done(async (p, fd) => fs.fstatSync(fdOf(fd), { bigint: true })),
    readlink: done((p) => fsp.readlink(full(p), { encoding: 'buffer' })),
    mknod: done(async (p, mode, dev) => {
      if ((mode & S_IFMT) === S_IFREG || (mode & S_IFMT) === 0) {
        await (await fsp.open(full(p), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, mode & 0o7777)).close()
      } else {
        await host.mknod(full(p), mode, dev)
      }
      await giveToCaller(p)
    }),
    mkdir: done(async (p, mode) => {
      await fsp.mkdir(full(p), { mode })
      await giveToCaller(p)
    }),
    // fuse-native's order: symlink(target, new name).
    symlink: done(async (target, p) => {
      await fsp.symlink(bytes(target), full(p))
      await giveToCaller(p)
    }),
    // fuse-native's order: link(existing name, new name).
    link: done((src, dest) => fsp.link(full(src), full(dest))),
    unlink: done((p) => fsp.unlink(full(p))),
    rmdir: done((p) => fsp.rmdir(full(p))),
    rename: done((src, dest) => fsp.rename(full(src), full(dest))),
    renameat2: done((src, dest, flags) => flags ? host.renameat2(full(src), full(dest), flags) : fsp.rename(full(src), full(dest))),
    chmod: done((p, mode) => fsp.chmod(full(p), mode)),
    chown: done((p, uid, gid) => fsp.lchown(full(p), uid, gid)),
    truncate: done(async (p, size) => {
      const fd = fs.openSync(full(p), fs.constants.O_WRONLY)
      try {
        fs.ftruncateSync(fd, size)
        await clearSetIdBits(fd)
      } finally {
        fs.closeSync(fd)
      }
    }),
    ftruncate: done(async (p, handle, size) => {
      const fd = fdOf(handle)
      await new Promise((resolve, reject) => fs.ftruncate(fd, size, (e) => e ? reject(e) : resolve()))
      await clearSetIdBits(fd)
    }),
    utimens: done((p, atime, mtime) => fsp.lutimes(full(p), atime / 1000, mtime / 1000)),
    utimensNs: done((p, atime, mtime) => host.utimensat(full(p), atime, mtime)),
    open: done(async (p, flags) => {
      const fd = await new Promise((resolve, reject) => fs.open(full(p), flags, (e, fd) => e ? reject(e) : resolve(fd)))
      if (flags & O_TRUNC) await clearSetIdBits(fd)
      const handle = nextHandle++
      handles.set(handle, fd)
      return handle
    }),
    create: done(async (p, mode) => {
      const flags = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR
      const fd = await new Promise((resolve, reject) => fs.open(full(p), flags, mode & 0o7777, (e, fd) => e ? reject(e) : resolve(fd)))
      try {
        await giveToCaller(p)
      } catch (e) {
        fs.closeSync(fd)
        throw e
      }
      const handle = nextHandle++
      handles.set(handle, fd)
      return handle
    }),
    read: counted((p, handle, buf, len, pos) => new Promise((resolve, reject) => {
      fs.read(fdOf(handle), buf, 0, len, pos, (e, n) => e ? reject(e) : resolve(n))
    })),
    write: counted(async (p, handle, buf, len, pos) => {
      const fd = fdOf(handle)
      const n = await new Promise((resolve, reject) => fs.write(fd, buf, 0, len, pos, (e, n) => e ? reject(e) : resolve(n)))
      if (n > 0) await clearSetIdBits(fd)
      return n
    }),
    release: done(async (p, handle) => {
      const fd = handles.get(handle)
      handles.delete(handle)
      if (fd !== undefined) fs.closeSync(fd)
    }),
    fsync: done((p, datasync, handle) => new Promise((resolve, reject) => {
      (datasync ? fs.fdatasync : fs.fsync)(fdOf(handle), (e) => e ? reject(e) : resolve())
    })),
    fallocate: done(async (p, handle, mode, offset, length) => {
      const fd = fdOf(handle)
      await host.fallocate(fd, mode, offset, length)
      await clearSetIdBits(fd)
    }),
    copyFileRange: counted(async (pIn, hIn, offIn, pOut, hOut, offOut, length) => {
      const fdIn = fdOf(hIn)
      const fdOut = fdOf(hOut)
      const buf = Buffer.alloc(Math.min(length, COPY_CHUNK))
      let copied = 0
      while (copied < length) {
        const want = Math.min(buf.length, length - copied)
        const n = fs.readSync(fdIn, buf, 0, want, offIn + copied)
        if (n === 0) break
        fs.writeSync(fdOut, buf, 0, n, offOut + copied)
        copied += n
      }
      if (copied) await clearSetIdBits(fdOut)
      return copied
    }),
    lseek: done((p, handle, offset, whence) => host.lseek(fdOf(handle), offset, whence)),
    statfs: done(async (p) => {
      const st = await fsp.statfs(full(p))
      return { bsize: st.bsize, frsize: st.bsize, blocks: st.blocks, bfree: st.bfree, bavail: st.bavail, files: st.files, ffree: st.ffree, favail: st.ffree, namemax: 255 }
    }),
    setxattr: done((p, name, value, position, flags) => host.lsetxattr(full(p), bytes(name), value, flags)),
    getxattr: done(async (p, name) => {
      try {
        return await host.lgetxattr(full(p), bytes(name))
      } catch (e) {
        if (e === Fuse.ENODATA) return null // fuse-native's "no such attribute"
        throw e
      }
    }),
    listxattr: done((p) => host.llistxattr(full(p))),
    removexattr: done((p, name) => host.lremovexattr(full(p), bytes(name))),
    // Whole listings with every entry's attributes and extended attribute
    // names: the daemon answers ls -l, its ACL and label requests included,
    // and lookups from them. The names of a whole listing cost one round
    // trip to host_calls' coprocess; each getxattr the daemon could not
    // answer would cost a round trip through it and the daemon.
    readdir: function (p, cb) {
      const dir = full(p)
      const slash = Buffer.from('/')
      fsp.readdir(dir, { encoding: 'buffer' }).then(async (names) => {
        const paths = names.map((n) => Buffer.concat([dir, slash, n]))
        const [stats, xattrNames] = await Promise.all([
          Promise.all(paths.map((f) => fsp.lstat(f, { bigint: true }).catch(() => null))),
          host.llistxattrMany(paths).catch(() => paths.map(() => null))
        ])
        stats.forEach((s, i) => { if (s !== null && xattrNames[i] !== null) s.xattrNames = xattrNames[i] })
        // A name removed meanwhile is left out.
        cb(0, names.filter((_, i) => stats[i] !== null), stats.filter((s) => s !== null))
      }, (err) => cb(failure(err)))
    }
  }
}

if (require.main === module) {
  const usage = 'usage: node loopback.js ROOT MOUNTPOINT [-o OPTIONS] [--debug] | ROOT --listen unix:/PATH'
  const args = cli.parse(process.argv.slice(2), usage)
  if (args.positional.length !== (args.listen ? 1 : 2)) {
    process.stderr.write(usage + '\n')
    process.exit(2)
  }
  const root = path.resolve(args.positional[0])
  // Modes arrive with the caller's umask applied; this process's must not
  // apply again.
  process.umask(0)
  cli.run(Fuse, loopbackFs(root), args, args.positional[1], {
    useIno: true,
    defaultPermissions: true,
    fsname: root,
    getattrIsCheap: true,
    // The host's security labels are the host's: a label the host gives a
    // backing file means nothing on the mount. The daemon answers them
    // EOPNOTSUPP, so ls -l stops asking every file for one. (The host's
    // ACLs are not handed to the kernel to keep, posixAcl: it would keep
    // them until told otherwise, and this loopback does not watch the
    // backing directory for changes made behind the mount.)
    unsupportedXattrPrefixes: ['security.selinux', 'security.SMACK64', 'security.apparmor']
  })
}

module.exports = { loopbackFs }
