'use strict'
// Conversions between fuse-native's values and the protocol's messages.
//
// A stat object is what fuse-native's getattr takes: { mode, uid, gid, size,
// nlink, ino, rdev, blksize, blocks, atime, mtime, ctime } with times as
// Dates or milliseconds since the epoch; a missing time is "now" and a
// missing nlink is 1, as in fuse-native. Also taken, for nanosecond times:
// atimeNs, mtimeNs, ctimeNs as BigInts, which is what Node's
// fs.stat(path, { bigint: true }) gives, so a loopback may hand its
// BigIntStats on unchanged.

const { encode } = require('./names')

const NS_PER_MS = 1000000n
const NS_PER_S = 1000000000n
const U32 = 0xffffffff
const S_IFMT = 0o170000

// A Timespec from nanoseconds (BigInt).
function timespecOfNs (ns) {
  let sec = ns / NS_PER_S
  let nsec = ns % NS_PER_S
  if (nsec < 0n) {
    nsec += NS_PER_S
    sec -= 1n
  }
  return { sec: sec.toString(), nsec: Number(nsec) }
}

// Nanoseconds (BigInt) of a time as fuse-native takes it: a Date or a number
// of milliseconds; `nowNs` when missing or invalid.
function nsOfTime (value, nowNs) {
  if (typeof value === 'bigint') return value * NS_PER_MS
  let ms
  if (typeof value === 'number') ms = value
  else if (value instanceof Date) ms = value.getTime()
  else return nowNs
  if (!Number.isFinite(ms)) return nowNs
  const whole = Math.floor(ms)
  return BigInt(whole) * NS_PER_MS + BigInt(Math.round((ms - whole) * 1e6))
}

function timeNs (stat, name, nowNs) {
  const ns = stat[name + 'Ns']
  if (typeof ns === 'bigint') return ns
  return nsOfTime(stat[name], nowNs)
}

function nowNs () {
  return process.hrtime.bigint() - hrtimeOrigin + epochOriginNs
}
// Wall-clock nanoseconds without calling Date.now() per file: the offset of
// the monotonic clock from the epoch, taken once.
const hrtimeOrigin = process.hrtime.bigint()
const epochOriginNs = BigInt(Date.now()) * NS_PER_MS

// A number field of a stat object as an unsigned integer the message can
// take (a decimal string when it needs more than 53 bits).
function unsigned (value) {
  if (typeof value === 'bigint') {
    if (value <= 0n) return 0
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()
  }
  if (typeof value !== 'number' || !(value > 0)) return 0
  return Number.isSafeInteger(value) ? value : Math.floor(value)
}

function u32 (value) {
  const v = unsigned(value)
  return typeof v === 'number' && v <= U32 ? v : 0
}

// The options that change every attribute the SDK sends (see index.js):
// useIno passes st_ino on (otherwise the daemon numbers inodes, as libfuse
// does without use_ino); uid, gid and umask override every file's, as
// libfuse's options of those names do.
class AttrPolicy {
  constructor (opts = {}) {
    this.useIno = Boolean(opts.useIno)
    this.uid = opts.uid !== undefined && opts.uid !== null && opts.uid !== false ? Number(opts.uid) : null
    this.gid = opts.gid !== undefined && opts.gid !== null && opts.gid !== false ? Number(opts.gid) : null
    this.umask = opts.umask !== undefined && opts.umask !== null && opts.umask !== false
      ? (typeof opts.umask === 'string' ? parseInt(opts.umask, 8) : Number(opts.umask)) & 0o7777
      : null
  }

  // The Attr message of a stat object; throws TypeError when `stat` is no
  // object (the operation then fails with EIO).
  attr (stat) {
    if (stat === null || typeof stat !== 'object') {
      throw new TypeError('a stat object was expected, got ' + stat)
    }
    const now = nowNs()
    let mode = u32(stat.mode)
    if (this.umask !== null) mode = (mode & S_IFMT) | (mode & ~this.umask & 0o7777)
    const nlink = stat.nlink === undefined ? 1 : u32(stat.nlink)
    const attr = {
      mode,
      nlink,
      uid: this.uid !== null ? this.uid : u32(stat.uid),
      gid: this.gid !== null ? this.gid : u32(stat.gid),
      rdev: unsigned(stat.rdev),
      size: unsigned(stat.size),
      blocks: unsigned(stat.blocks),
      blksize: u32(stat.blksize),
      atime: timespecOfNs(timeNs(stat, 'atime', now)),
      mtime: timespecOfNs(timeNs(stat, 'mtime', now)),
      ctime: timespecOfNs(timeNs(stat, 'ctime', now))
    }
    if (this.useIno) attr.ino = unsigned(stat.ino)
    // A fusehost extension: the file's extended attribute names, as
    // listxattr gives them; the daemon then answers getxattr of other
    // names (ls -l asks every file for its ACL) and listxattr itself.
    if (Array.isArray(stat.xattrNames)) {
      attr.xattr_names_known = true
      attr.xattr_names = stat.xattrNames.map(encode)
    }
    return attr
  }
}

// Whether a stat object that readdir gave is a file's complete attributes
// (sent to the daemon, which then caches them as getattr's answer) or only
// says the file's type: fs.Stats objects and objects with a mode and a
// modification time count as complete.
function isCompleteStat (stat) {
  if (stat === null || typeof stat !== 'object') return false
  if (typeof stat.isFile === 'function') return true
  return stat.mode !== undefined && (stat.mtime !== undefined || stat.mtimeNs !== undefined)
}

function typeOf (stat) {
  if (stat === null || typeof stat !== 'object') return 0
  return u32(stat.mode) & S_IFMT
}

const STATFS_FIELDS = ['bsize', 'frsize', 'blocks', 'bfree', 'bavail', 'files', 'ffree', 'favail', 'namemax']

// A StatfsReply of fuse-native's statfs object (fsid and flag have no place
// in the protocol: the kernel sets both).
function statfsReply (st) {
  const reply = {}
  if (st && typeof st === 'object') {
    for (const field of STATFS_FIELDS) {
      const v = unsigned(st[field])
      if (v) reply[field] = v
    }
  }
  return reply
}

// A Timespec message as nanoseconds (BigInt).
function nsOfTimespec (t) {
  if (!t) return 0n
  return BigInt(t.sec || 0) * NS_PER_S + BigInt(Math.min(t.nsec || 0, 999999999))
}

// Milliseconds (a number) of nanoseconds, for fuse-native's utimens.
function msOfNs (ns) {
  return Number(ns / NS_PER_MS) + Number(ns % NS_PER_MS) / 1e6
}

module.exports = {
  AttrPolicy,
  isCompleteStat,
  typeOf,
  statfsReply,
  timespecOfNs,
  nsOfTimespec,
  msOfNs,
  nowNs,
  S_IFMT
}
