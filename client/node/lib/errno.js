'use strict'
// Errno values and how an operation's answer becomes the protocol's errno.
//
// fuse-native's convention, kept here: an operation fails by calling back
// with a negative errno (`cb(Fuse.ENOENT)`, Fuse.ENOENT === -2); 0, null
// and undefined mean success. This SDK also takes what Node code has at
// hand: an Error from Node's fs (err.errno is negative, err.code
// 'ENOENT'), any Error or object with such an errno or code, and a
// positive errno number; anything else that is truthy becomes EIO.

const os = require('os')

// Linux values that Node's os.constants.errno leaves out (asm-generic
// errno.h), so that every name fuse-native exports exists here too.
const LINUX_EXTRA = {
  ENOTBLK: 15,
  EDEADLOCK: 35,
  ECHRNG: 44,
  EL2NSYNC: 45,
  EL3HLT: 46,
  EL3RST: 47,
  ELNRNG: 48,
  EUNATCH: 49,
  ENOCSI: 50,
  EL2HLT: 51,
  EBADE: 52,
  EBADR: 53,
  EXFULL: 54,
  ENOANO: 55,
  EBADRQC: 56,
  EBADSLT: 57,
  EBFONT: 59,
  ENONET: 64,
  ENOPKG: 65,
  EREMOTE: 66,
  EADV: 68,
  ESRMNT: 69,
  ECOMM: 70,
  EDOTDOT: 73,
  ENOTUNIQ: 76,
  EBADFD: 77,
  EREMCHG: 78,
  ELIBACC: 79,
  ELIBBAD: 80,
  ELIBSCN: 81,
  ELIBMAX: 82,
  ELIBEXEC: 83,
  ERESTART: 85,
  ESTRPIPE: 86,
  EUSERS: 87,
  ESOCKTNOSUPPORT: 94,
  EPFNOSUPPORT: 96,
  ESHUTDOWN: 108,
  ETOOMANYREFS: 109,
  EHOSTDOWN: 112,
  EUCLEAN: 117,
  ENOTNAM: 118,
  ENAVAIL: 119,
  EISNAM: 120,
  EREMOTEIO: 121,
  ENOMEDIUM: 123,
  EMEDIUMTYPE: 124
}

// Positive values by name.
const ERRNO = Object.freeze({ ...LINUX_EXTRA, ...os.constants.errno })

const EIO = ERRNO.EIO

// The positive errno an answer names, 0 for success. `value` is what an
// operation passed as its callback's first argument (or threw, or rejected
// with).
function errnoOf (value) {
  if (value === 0 || value === null || value === undefined || value === false) return 0
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value === 0) return value ? EIO : 0
    return Math.abs(value)
  }
  if (typeof value === 'bigint') return errnoOf(Number(value))
  if (typeof value === 'object') {
    if (typeof value.errno === 'number' && Number.isInteger(value.errno) && value.errno !== 0) {
      return Math.abs(value.errno)
    }
    if (typeof value.code === 'string' && ERRNO[value.code] !== undefined) return ERRNO[value.code]
    return EIO
  }
  return EIO
}

module.exports = { ERRNO, errnoOf }
