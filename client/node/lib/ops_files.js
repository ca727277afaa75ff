'use strict'
// Translations of the operations on open files and directories: each takes
// the protocol's request, calls the filesystem's operation with
// fuse-native's arguments, and answers the OpResult's reply (see
// ops_metadata.js for the shape of a translation).
//
// Ops here: open, create, read, write, flush, release, fsync, opendir,
// readdir, releasedir, fsyncdir; and the fusehost extensions lock, flock,
// fallocate, copyFileRange and lseek, which fuse-native lacks (a filesystem
// that leaves them out gets the kernel's own behaviour: local locks, no
// fallocate, copies through read and write, the whole file as data).
//
// Replies never claim more than was asked or sent: reads longer than asked
// are cut, write and copy_file_range counts capped at the request's length.

const { ERRNO } = require('./errno')
const { encode } = require('./names')
const { isCompleteStat, typeOf } = require('./convert')
const { status, ENOSYS, OK } = require('./ops_metadata')

const F_GETLK = 5
const F_UNLCK = 2

// fuse-native gives handles as numbers; the protocol's are uint64.
function handleOf (fd) {
  if (typeof fd === 'bigint') return fd >= 0n ? fd.toString() : 0
  if (typeof fd === 'number' && Number.isSafeInteger(fd) && fd > 0) return fd
  return 0
}

const O_ACCMODE = 3
const O_RDONLY = 0

function openReply (b, fd) {
  const reply = { fh: handleOf(fd) }
  if (b.options.directIo) reply.direct_io = true
  if (b.options.kernelCache) reply.keep_cache = true
  // With no flush or one that only calls back (does_nothing.js), and with
  // the kernel keeping POSIX locks, a close needs no FLUSH: the kernel then
  // sends none (a round trip per close saved).
  if (b.flushDoesNothing && !b.has('lock')) reply.noflush = true
  return reply
}

async function open (b, req) {
  if (!b.has('open')) return { reply: { open: await withContents(b, req, openReply(b, 0)) } }
  const { errno, values } = await b.call('open', [b.path(req.path), req.flags || 0])
  if (errno) return { errno }
  return { reply: { open: await withContents(b, req, openReply(b, values[0])) } }
}

// The daemon's cache says the file opened read-only is at most
// req.contents_up_to bytes: one read of that much and a byte more, right
// after the open, and the data goes with the open's reply when all of the
// file came back, so the kernel's first read costs no round trip. Nothing
// is sent if the read fails or the file grew: the kernel's reads will tell.
async function withContents (b, req, reply) {
  const want = req.contents_up_to || 0
  if (!want || reply.direct_io || ((req.flags || 0) & O_ACCMODE) !== O_RDONLY) return reply
  const r = await read(b, { path: req.path, fh: reply.fh, offset: 0, size: want + 1 })
  if (r.reply) {  // read answers { errno } or { reply: { read } }
    const data = r.reply.read.data || Buffer.alloc(0)
    if (data.length <= want) reply.contents = data
  }
  return reply
}

async function create (b, req) {
  // Without create the kernel makes the file with mknod and opens it.
  if (!b.has('create')) return ENOSYS
  const path = b.path(req.path)
  const { errno, values } = await b.call('create', [path, req.mode || 0])
  if (errno) return { errno }
  const fd = values[0]
  const reply = { open: openReply(b, fd) }
  const attr = await b.attrOf(path, handleOf(fd))
  if (attr) reply.attr = attr
  return { reply: { create: reply } }
}

async function read (b, req) {
  if (!b.has('read')) return ENOSYS
  const size = req.size || 0
  // Zeroed, so that a filesystem that claims more than it wrote sends
  // zeros, never memory of this process.
  const buf = Buffer.alloc(size)
  const { errno, values } = await b.call('read', [b.path(req.path), b.fh(req.fh), buf, size, Number(req.offset || 0)], true)
  if (errno) return { errno }
  const n = Math.min(values[0], size)
  return { reply: { read: n > 0 ? { data: buf.subarray(0, n) } : {} } }
}

async function write (b, req) {
  if (!b.has('write')) return ENOSYS
  const data = req.data || Buffer.alloc(0)
  const path = b.path(req.path)
  const fh = b.fh(req.fh)
  const { errno, values } = await b.call('write', [path, fh, data, data.length, Number(req.offset || 0)], true)
  if (errno) return { errno }
  // Claiming more than was sent would make the kernel believe in data
  // that never existed.
  const reply = { size: Math.min(values[0], data.length) }
  if (b.cheapGetattr) {
    const attr = await b.attrOf(path, fh)
    if (attr) reply.attr = attr
  }
  return { reply: { write: reply } }
}

async function flush (b, req) {
  if (!b.has('flush')) return ENOSYS // the kernel stops sending flush
  return status(await b.call('flush', [b.path(req.path), b.fh(req.fh)]))
}

async function release (b, req) {
  if (!b.has('release')) return OK
  return status(await b.call('release', [b.path(req.path), b.fh(req.fh)]))
}

async function fsync (b, req) {
  if (!b.has('fsync')) return ENOSYS // the kernel stops sending fsync
  return status(await b.call('fsync', [b.path(req.path), req.datasync ? 1 : 0, b.fh(req.fh)]))
}

async function opendir (b, req) {
  if (!b.has('opendir')) return { reply: { opendir: { fh: 0 } } }
  const { errno, values } = await b.call('opendir', [b.path(req.path), req.flags || 0])
  if (errno) return { errno }
  return { reply: { opendir: { fh: handleOf(values[0]) } } }
}

// A listing entry's name as bytes, or null for "." and "..", which the
// daemon supplies itself.
function entryName (name) {
  const bytes = encode(name)
  if (bytes.length === 1 && bytes[0] === 0x2e) return null
  if (bytes.length === 2 && bytes[0] === 0x2e && bytes[1] === 0x2e) return null
  return bytes
}

// DirEntry messages of fuse-native's (names, stats): stats count only when
// there is one per name, as in fuse-native; complete ones go out as
// attributes (the daemon caches them), others give the file type only.
function entriesOf (b, names, stats, cookies) {
  const entries = []
  if (!Array.isArray(names)) return entries
  const withStats = Array.isArray(stats) && stats.length === names.length
  for (let i = 0; i < names.length; i++) {
    const name = entryName(names[i])
    if (name === null) continue
    const e = { name }
    if (cookies) {
      const cookie = handleOf(cookies[i])
      if (cookie) e.offset = cookie
    }
    if (withStats) {
      const st = stats[i]
      if (isCompleteStat(st)) e.attr = b.attr(st)
      else {
        const type = typeOf(st)
        if (type) e.type = type
      }
    }
    entries.push(e)
  }
  return entries
}

async function readdir (b, req) {
  const path = b.path(req.path)
  if (b.has('readdirFrom')) {
    // The fusehost extension for listings resumed by cookie:
    // readdirFrom(path, fd, offset, cb) -> cb(0, names, stats, cookies,
    // eof = true).
    const { errno, values } = await b.call('readdirFrom', [path, b.fh(req.fh), Number(req.offset || 0)])
    if (errno) return { errno }
    const [names, stats, cookies, eof] = values
    return { reply: { readdir: { entries: entriesOf(b, names, stats, cookies || []), eof: eof !== false } } }
  }
  if (!b.has('readdir')) return ENOSYS
  // The whole listing went out with the first reply.
  if (Number(req.offset || 0) !== 0) return { reply: { readdir: { eof: true } } }
  const { errno, values } = await b.call('readdir', [path])
  if (errno) return { errno }
  let [names, stats] = values
  if (names && !Array.isArray(names) && typeof names === 'object') {
    // The async form may answer { names, stats }.
    stats = names.stats
    names = names.names
  }
  return { reply: { readdir: { entries: entriesOf(b, names, stats, null), eof: true } } }
}

async function releasedir (b, req) {
  if (!b.has('releasedir')) return OK
  return status(await b.call('releasedir', [b.path(req.path), b.fh(req.fh)]))
}

async function fsyncdir (b, req) {
  if (!b.has('fsyncdir')) return ENOSYS
  return status(await b.call('fsyncdir', [b.path(req.path), req.datasync ? 1 : 0, b.fh(req.fh)]))
}

// lock(path, fd, cmd, lock, cb): lock is { type, whence, start, len, pid }
// as struct flock; for F_GETLK the filesystem sets it to the conflicting
// lock (type F_UNLCK: none), or calls back with one.
async function lock (b, req) {
  if (!b.has('lock')) return ENOSYS
  const lk = req.lock || {}
  const arg = { type: lk.type || 0, whence: 0, start: Number(lk.start || 0), len: Number(lk.len || 0), pid: lk.pid || 0 }
  const cmd = req.cmd || 0
  const { errno, values } = await b.call('lock', [b.path(req.path), b.fh(req.fh), cmd, arg])
  if (errno) return { errno }
  if (cmd !== F_GETLK) return OK
  const out = values[0] && typeof values[0] === 'object' ? values[0] : arg
  const reply = {
    type: Number.isInteger(out.type) ? out.type : F_UNLCK,
    start: Math.max(Number(out.start) || 0, 0),
    len: Math.max(Number(out.len) || 0, 0),
    pid: Math.max(Number(out.pid) || 0, 0)
  }
  return { reply: { lock: { lock: reply } } }
}

async function flock (b, req) {
  if (!b.has('flock')) return ENOSYS
  return status(await b.call('flock', [b.path(req.path), b.fh(req.fh), req.operation || 0]))
}

async function fallocate (b, req) {
  if (!b.has('fallocate')) return ENOSYS
  return status(await b.call('fallocate', [b.path(req.path), b.fh(req.fh), req.mode || 0, Number(req.offset || 0), Number(req.length || 0)]))
}

// copyFileRange(pathIn, fdIn, offsetIn, pathOut, fdOut, offsetOut, length,
// flags, cb) -> cb(bytesCopied), as read and write answer.
async function copyFileRange (b, req) {
  if (!b.has('copyFileRange')) return ENOSYS // the kernel copies through read and write
  const length = Number(req.length || 0)
  const { errno, values } = await b.call('copyFileRange', [
    b.path(req.path_in), b.fh(req.fh_in), Number(req.offset_in || 0),
    b.path(req.path_out), b.fh(req.fh_out), Number(req.offset_out || 0),
    length, req.flags || 0], true)
  if (errno) return { errno }
  return { reply: { copy_file_range: { size: Math.min(values[0], length) } } }
}

// lseek(path, fd, offset, whence, cb) -> cb(0, offset), for SEEK_DATA and
// SEEK_HOLE.
async function lseek (b, req) {
  if (!b.has('lseek')) return ENOSYS
  const { errno, values } = await b.call('lseek', [b.path(req.path), b.fh(req.fh), Number(req.offset || 0), req.whence || 0])
  if (errno) return { errno }
  const at = Number(values[0])
  if (!Number.isSafeInteger(at) || at < 0) return { errno: ERRNO.EINVAL }
  return { reply: { lseek: { offset: at } } }
}

// ioctl(path, fd, cmd, arg, flags, data, cb) -> cb(result): `data` holds
// what the command passes in, and room for what it passes back (filled in
// place, as read fills its buffer); a negative result is an errno. Without
// it the answer is ENOTTY, as ioctl(2) answers a command nobody knows.
async function ioctl (b, req) {
  if (!b.has('ioctl')) return { errno: ERRNO.ENOTTY }
  const inData = req.in_data ? Buffer.from(req.in_data) : Buffer.alloc(0)
  const outSize = Number(req.out_size || 0)
  const data = Buffer.alloc(Math.max(inData.length, outSize))
  inData.copy(data)
  const { errno, values } = await b.call('ioctl', [
    b.path(req.path), b.optFh(req), Number(req.cmd || 0), Number(req.arg || 0),
    req.flags || 0, data], true)
  if (errno) return { errno }
  const result = Math.min(values[0], 0x7fffffff)
  return { reply: { ioctl: { result, out_data: data.subarray(0, outSize) } } }
}

const TRANSLATIONS = {
  open,
  create,
  read,
  write,
  flush,
  release,
  fsync,
  opendir,
  readdir,
  releasedir,
  fsyncdir,
  lock,
  flock,
  fallocate,
  copy_file_range: copyFileRange,
  lseek,
  ioctl
}

module.exports = { TRANSLATIONS, handleOf }
