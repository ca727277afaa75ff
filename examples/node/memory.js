#!/usr/bin/env node
'use strict'
// An in-memory filesystem written against fuse-native's API, served by
// fuse-hostd: directories, regular files with holes, symlinks, hard links,
// FIFOs, device nodes, extended attributes, owners and nanosecond
// timestamps, open files that survive unlink. Permission checks are the
// kernel's (defaultPermissions); new files belong to the caller, with
// setgid-directory group inheritance.
//
// With require('fuse-native') instead of require('fusehost') the same file
// runs under fuse-native: the operations fuse-native lacks (renameat2,
// utimensNs, fallocate, copyFileRange, lseek) are fusehost extensions that
// fuse-native never calls, and Fuse.context falls back to this process.
//
//   node examples/node/memory.js MOUNTPOINT [-o allow_other,...]
//   node examples/node/memory.js --listen unix:/tmp/memory.sock

const Fuse = require('fusehost')
const cli = require('./cli')
const {
  S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK,
  S_ISUID, S_ISGID, S_IXGRP, O_ACCMODE, O_TRUNC, O_APPEND, caller: callerOf
} = require('./modes')

const BLOCK = 4096
const NAME_MAX = 255
const XATTR_SIZE_MAX = 65536
const CAPACITY = 2 ** 30
const MAX_INODES = 2 ** 20
const RENAME_NOREPLACE = 1
const RENAME_EXCHANGE = 2
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const FALLOC_FL_KEEP_SIZE = 1
const FALLOC_FL_PUNCH_HOLE = 2
const SEEK_DATA = 3
const SEEK_HOLE = 4

// Wall-clock nanoseconds that never go backwards: the monotonic clock
// from an epoch offset taken once.
const CLOCK_OFFSET = BigInt(Date.now()) * 1000000n - process.hrtime.bigint()

function nowNs () {
  return CLOCK_OFFSET + process.hrtime.bigint()
}

function caller () {
  return callerOf(Fuse)
}

// The bytes a name or path stands for (fusehost hands names that are not
// UTF-8 over escaped; under fuse-native a string is its UTF-8).
function bytes (name) {
  return typeof Fuse.toBuffer === 'function' ? Fuse.toBuffer(name) : Buffer.from(name)
}

class Inode {
  constructor (ino, mode, uid, gid, rdev = 0) {
    this.ino = ino
    this.mode = mode
    this.links = 1
    this.uid = uid
    this.gid = gid
    this.rdev = rdev
    this.atime = this.mtime = this.ctime = nowNs()
    // Contents (holes are zeros) in a buffer that grows by doubling, or a
    // symlink's target.
    this.data = Buffer.alloc(0)
    this.size = 0
    this.children = (mode & S_IFMT) === S_IFDIR ? new Map() : null
    this.xattrs = new Map()
  }

  touch (modified = true) {
    this.ctime = nowNs()
    if (modified) this.mtime = this.ctime
  }

  stat () {
    let nlink = this.links
    let size = this.size
    if (this.children) {
      let subdirs = 0
      for (const child of this.children.values()) if (child.children) subdirs++
      nlink = this.links ? 2 + subdirs : 0
      size = BLOCK
    }
    const ms = (ns) => new Date(Number(ns / 1000000n))
    return {
      ino: this.ino,
      mode: this.mode,
      nlink,
      uid: this.uid,
      gid: this.gid,
      rdev: this.rdev,
      size,
      blocks: Math.ceil(size / 512),
      blksize: BLOCK,
      atime: ms(this.atime),
      mtime: ms(this.mtime),
      ctime: ms(this.ctime),
      atimeNs: this.atime,
      mtimeNs: this.mtime,
      ctimeNs: this.ctime,
      // fusehost's extension: with the names known, the daemon answers
      // getxattr of any other name (ls -l asks each file for its ACL and
      // label) and listxattr itself.
      xattrNames: [...this.xattrs.keys()]
    }
  }
}

// Operations answer through these: `sync(fn)` turns a function that returns
// its value or throws a negative errno into fuse-native's cb(err, value);
// `counting(fn)` into cb(count) for read and write.
function sync (fn) {
  return function (...args) {
    const cb = args.pop()
    let value
    try {
      value = fn(...args)
    } catch (e) {
      if (typeof e === 'number') return cb(e)
      throw e
    }
    return cb(0, value)
  }
}

function counting (fn) {
  return function (...args) {
    const cb = args.pop()
    try {
      return cb(fn(...args))
    } catch (e) {
      if (typeof e === 'number') return cb(e)
      throw e
    }
  }
}

function memoryFs () {
  let nextIno = 1
  let nextFd = 1
  let usedBytes = 0
  const handles = new Map() // fd -> { inode, flags }

  function newInode (mode, uid, gid, rdev) {
    if (nextIno > MAX_INODES) throw Fuse.ENOSPC
    return new Inode(nextIno++, mode, uid, gid, rdev)
  }

  const root = newInode(S_IFDIR | 0o755, process.getuid(), process.getgid())

  function resolve (path) {
    if (typeof path !== 'string' || path[0] !== '/') throw Fuse.ENOENT
    let node = root
    for (const name of path.split('/')) {
      if (!name) continue
      if (bytes(name).length > NAME_MAX) throw Fuse.ENAMETOOLONG
      if (!node.children) throw Fuse.ENOTDIR
      node = node.children.get(name)
      if (!node) throw Fuse.ENOENT
    }
    return node
  }

  // [directory inode, last name] of `path`.
  function parentOf (path) {
    if (typeof path !== 'string' || path[0] !== '/') throw Fuse.ENOENT
    const slash = path.lastIndexOf('/')
    const name = path.slice(slash + 1)
    if (!name) throw Fuse.EBUSY // the root has no parent
    if (bytes(name).length > NAME_MAX) throw Fuse.ENAMETOOLONG
    const parent = resolve(path.slice(0, slash) || '/')
    if (!parent.children) throw Fuse.ENOTDIR
    return [parent, name]
  }

  // The open file `fd` (it may have no name any more); a handle not given
  // out, or released, is EBADF, never a fallback to the path.
  function byFd (fd) {
    const entry = handles.get(fd)
    if (!entry) throw Fuse.EBADF
    return entry.inode
  }

  function make (path, mode, rdev = 0, data = null) {
    let parent, name
    try {
      [parent, name] = parentOf(path)
    } catch (e) {
      throw e === Fuse.EBUSY ? Fuse.EEXIST : e
    }
    if (parent.children.has(name)) throw Fuse.EEXIST
    let { uid, gid } = caller()
    if (parent.mode & S_ISGID) {
      // BSD group semantics under a setgid directory, as Linux does.
      gid = parent.gid
      if ((mode & S_IFMT) === S_IFDIR) mode |= S_ISGID
    }
    const inode = newInode(mode, uid, gid, rdev)
    if (data) setSize(inode, data.length) || data.copy(inode.data)
    parent.children.set(name, inode)
    parent.touch()
    return inode
  }

  function grow (delta) {
    if (usedBytes + delta > CAPACITY) throw Fuse.ENOSPC
    usedBytes += delta
  }

  function setSize (inode, size) {
    if (size > inode.size) {
      grow(size - inode.size)
      if (size > inode.data.length) {
        const bigger = Buffer.alloc(Math.max(size, Math.min(inode.data.length * 2, size + (64 << 20))))
        inode.data.copy(bigger, 0, 0, inode.size)
        inode.data = bigger
      } else {
        inode.data.fill(0, inode.size, size)
      }
    } else {
      usedBytes -= inode.size - size
    }
    inode.size = size
  }

  function writeAt (inode, buf, len, offset) {
    if (offset + len > inode.size) setSize(inode, offset + len)
    buf.copy(inode.data, offset, 0, len)
    inode.touch()
  }

  function openHandle (inode, flags) {
    const fd = nextFd++
    handles.set(fd, { inode, flags })
    return fd
  }

  function regular (inode) {
    if (inode.children) throw Fuse.EISDIR
    if ((inode.mode & S_IFMT) !== S_IFREG) throw Fuse.EINVAL
  }

  // What a write, truncate, fallocate or chown by anyone but root does to
  // a file's set-id bits, as Linux does for callers without CAP_FSETID:
  // S_ISUID goes, and S_ISGID of a group-executable file.
  function clearSetIdBits (inode) {
    if (caller().uid === 0) return
    inode.mode &= ~S_ISUID
    if (inode.mode & S_IXGRP) inode.mode &= ~S_ISGID
  }

  function remove (path, directory) {
    const [parent, name] = parentOf(path)
    const inode = parent.children.get(name)
    if (!inode) throw Fuse.ENOENT
    const isDir = Boolean(inode.children)
    if (isDir !== directory) throw directory ? Fuse.ENOTDIR : Fuse.EISDIR
    if (directory && inode.children.size) throw Fuse.ENOTEMPTY
    parent.children.delete(name)
    parent.touch()
    inode.links--
    inode.touch(false)
  }

  // Checks in the order Linux's renameat2 makes them, so that a request
  // with several problems gets the errno a local filesystem gives.
  function rename (src, dest, flags) {
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) || flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      throw Fuse.EINVAL
    }
    const exchange = Boolean(flags & RENAME_EXCHANGE)
    const [oldParent, oldName] = parentOf(src)
    const [newParent, newName] = parentOf(dest)
    const source = oldParent.children.get(oldName)
    if (!source) throw Fuse.ENOENT
    const target = newParent.children.get(newName)
    if (exchange && !target) throw Fuse.ENOENT
    if ((flags & RENAME_NOREPLACE) && target) throw Fuse.EEXIST
    if (dest.startsWith(src + '/')) throw Fuse.EINVAL // below itself
    if (src.startsWith(dest + '/')) throw exchange ? Fuse.EINVAL : Fuse.ENOTEMPTY
    if (source === target) return
    if (exchange) {
      oldParent.children.set(oldName, target)
      newParent.children.set(newName, source)
      target.touch(false)
    } else {
      if (target) {
        if (source.children && !target.children) throw Fuse.ENOTDIR
        if (!source.children && target.children) throw Fuse.EISDIR
        if (target.children && target.children.size) throw Fuse.ENOTEMPTY
      }
      oldParent.children.delete(oldName)
      newParent.children.set(newName, source)
      if (target) {
        target.links--
        target.touch(false)
      }
    }
    source.touch(false)
    oldParent.touch()
    newParent.touch()
  }

  function truncate (inode, size) {
    regular(inode)
    setSize(inode, size)
    clearSetIdBits(inode)
    inode.touch()
  }

  return {
    getattr: sync((path) => resolve(path).stat()),
    fgetattr: sync((path, fd) => byFd(fd).stat()),
    readlink: sync((path) => {
      const inode = resolve(path)
      if ((inode.mode & S_IFMT) !== S_IFLNK) throw Fuse.EINVAL
      const target = inode.data.subarray(0, inode.size)
      return typeof Fuse.fromBuffer === 'function' ? Fuse.fromBuffer(target) : target.toString()
    }),
    mknod: sync((path, mode, dev) => {
      let kind = mode & S_IFMT
      if (kind === 0) kind = S_IFREG // mknod(2): type 0 is a regular file
      else if (kind === S_IFDIR) throw Fuse.EPERM
      else if (![S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].includes(kind)) throw Fuse.EINVAL
      make(path, kind | (mode & 0o7777), kind === S_IFCHR || kind === S_IFBLK ? dev : 0)
    }),
    mkdir: sync((path, mode) => { make(path, S_IFDIR | (mode & 0o7777)) }),
    // fuse-native's order: symlink(target, new name).
    symlink: sync((target, path) => { make(path, S_IFLNK | 0o777, 0, bytes(target)) }),
    unlink: sync((path) => remove(path, false)),
    rmdir: sync((path) => remove(path, true)),
    rename: sync((src, dest) => rename(src, dest, 0)),
    renameat2: sync(rename),
    // fuse-native's order: link(existing name, new name).
    link: sync((src, dest) => {
      const inode = resolve(src)
      if (inode.children) throw Fuse.EPERM
      const [parent, name] = parentOf(dest)
      if (parent.children.has(name)) throw Fuse.EEXIST
      parent.children.set(name, inode)
      parent.touch()
      inode.links++
      inode.touch(false)
    }),
    // The kernel checks ownership before asking (defaultPermissions).
    chmod: sync((path, mode) => {
      const inode = resolve(path)
      inode.mode = (inode.mode & S_IFMT) | (mode & 0o7777)
      inode.touch(false)
    }),
    chown: sync((path, uid, gid) => {
      const inode = resolve(path)
      if (uid !== -1) inode.uid = uid
      if (gid !== -1) inode.gid = gid
      if (!inode.children) clearSetIdBits(inode)
      inode.touch(false)
    }),
    truncate: sync((path, size) => truncate(resolve(path), size)),
    ftruncate: sync((path, fd, size) => truncate(byFd(fd), size)),
    // fuse-native's utimens (milliseconds), and the nanosecond form.
    utimens: sync((path, atime, mtime) => {
      const inode = resolve(path)
      inode.atime = BigInt(Math.round(atime * 1e6))
      inode.mtime = BigInt(Math.round(mtime * 1e6))
      inode.ctime = nowNs()
    }),
    utimensNs: sync((path, atime, mtime) => {
      const inode = resolve(path)
      if (atime !== null) inode.atime = atime
      if (mtime !== null) inode.mtime = mtime
      inode.ctime = nowNs()
    }),
    open: sync((path, flags) => {
      const inode = resolve(path)
      if (inode.children && (flags & O_ACCMODE) !== 0) throw Fuse.EISDIR
      if ((flags & O_TRUNC) && (inode.mode & S_IFMT) === S_IFREG) {
        setSize(inode, 0)
        clearSetIdBits(inode)
        inode.touch()
      }
      return openHandle(inode, flags)
    }),
    create: sync((path, mode) => openHandle(make(path, S_IFREG | (mode & 0o7777)), 0)),
    read: counting((path, fd, buf, len, pos) => {
      const inode = byFd(fd)
      regular(inode)
      if (pos >= inode.size) return 0
      return inode.data.copy(buf, 0, pos, Math.min(inode.size, pos + len))
    }),
    write: counting((path, fd, buf, len, pos) => {
      const { inode, flags } = handles.get(fd) || { inode: byFd(fd) }
      regular(inode)
      writeAt(inode, buf, len, flags & O_APPEND ? inode.size : pos)
      if (len) clearSetIdBits(inode)
      return len
    }),
    release: sync((path, fd) => { handles.delete(fd) }),
    fallocate: sync((path, fd, mode, offset, length) => {
      if (offset < 0 || length <= 0) throw Fuse.EINVAL
      const inode = byFd(fd)
      if (inode.children) throw Fuse.EISDIR
      if ((inode.mode & S_IFMT) !== S_IFREG) throw Fuse.ENODEV
      const end = offset + length
      if (mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
        const stop = Math.min(end, inode.size)
        if (offset < stop) {
          inode.data.fill(0, offset, stop)
          inode.touch()
        }
      } else if (mode & ~FALLOC_FL_KEEP_SIZE) {
        throw Fuse.EOPNOTSUPP
      } else if (!(mode & FALLOC_FL_KEEP_SIZE) && end > inode.size) {
        setSize(inode, end)
        inode.touch()
      }
      // As Linux: any successful fallocate counts as a change of the file.
      clearSetIdBits(inode)
    }),
    copyFileRange: counting((pathIn, fdIn, offsetIn, pathOut, fdOut, offsetOut, length, flags) => {
      if (flags) throw Fuse.EINVAL
      const src = byFd(fdIn)
      const dst = byFd(fdOut)
      regular(src)
      regular(dst)
      const count = Math.max(0, Math.min(length, src.size - offsetIn))
      if (src === dst && count && offsetIn < offsetOut + count && offsetOut < offsetIn + count) {
        throw Fuse.EINVAL // copy_file_range(2) refuses overlaps
      }
      if (count) {
        writeAt(dst, Buffer.from(src.data.subarray(offsetIn, offsetIn + count)), count, offsetOut)
        clearSetIdBits(dst)
      }
      return count
    }),
    // All of a file is data; the only hole is the one at its end.
    lseek: sync((path, fd, offset, whence) => {
      const size = byFd(fd).size
      if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw Fuse.EINVAL
      if (offset < 0 || offset >= size) throw Fuse.ENXIO
      return whence === SEEK_DATA ? offset : size
    }),
    statfs: sync(() => {
      const free = Math.floor((CAPACITY - usedBytes) / BLOCK)
      return {
        bsize: BLOCK,
        frsize: BLOCK,
        blocks: CAPACITY / BLOCK,
        bfree: free,
        bavail: free,
        files: MAX_INODES,
        ffree: MAX_INODES - nextIno,
        favail: MAX_INODES - nextIno,
        namemax: NAME_MAX
      }
    }),
    setxattr: sync((path, name, value, position, flags) => {
      if (!name || bytes(name).length > NAME_MAX) throw Fuse.ERANGE
      // POSIX ACLs would have to change the mode bits with them; refusing
      // them makes cp -a and tar fall back to chmod.
      if (name.startsWith('system.posix_acl_')) throw Fuse.EOPNOTSUPP
      if (value.length > XATTR_SIZE_MAX) throw Fuse.E2BIG
      const inode = resolve(path)
      const exists = inode.xattrs.has(name)
      if ((flags & XATTR_CREATE) && exists) throw Fuse.EEXIST
      if ((flags & XATTR_REPLACE) && !exists) throw Fuse.ENODATA
      // Copied: the buffer is only lent for the call.
      inode.xattrs.set(name, Buffer.from(value))
      inode.touch(false)
    }),
    getxattr: sync((path, name) => resolve(path).xattrs.get(name) || null),
    listxattr: sync((path) => [...resolve(path).xattrs.keys()].sort()),
    removexattr: sync((path, name) => {
      const inode = resolve(path)
      if (!inode.xattrs.delete(name)) throw Fuse.ENODATA
      inode.touch(false)
    }),
    // Whole listings with full attributes: one reply, and the daemon can
    // answer `ls -l` and lookups from it.
    readdir: function (path, cb) {
      let dir
      try {
        dir = resolve(path)
      } catch (e) {
        return cb(e)
      }
      if (!dir.children) return cb(Fuse.ENOTDIR)
      const names = []
      const stats = []
      for (const [name, child] of dir.children) {
        names.push(name)
        stats.push(Object.assign(child.stat(), { xattrNames: [...child.xattrs.keys()] }))
      }
      return cb(0, names, stats)
    }
  }
}

if (require.main === module) {
  const usage = 'usage: node memory.js MOUNTPOINT [-o OPTIONS] [--debug] | --listen unix:/PATH'
  const args = cli.parse(process.argv.slice(2), usage)
  if (!args.listen && args.positional.length !== 1) {
    process.stderr.write(usage + '\n')
    process.exit(2)
  }
  cli.run(Fuse, memoryFs(), args, args.positional[0], {
    useIno: true, defaultPermissions: true, fsname: 'memory', getattrIsCheap: true
  })
}

module.exports = { memoryFs }
