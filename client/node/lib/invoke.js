'use strict'
// Calling one of the filesystem's operations and waiting for its answer,
// in either of the two forms an operation may take:
//
// * fuse-native's callback form: the operation gets its arguments and a
//   callback, and calls back with an errno (0 for success, a negative
//   errno such as Fuse.ENOENT for failure) and its values:
//   `getattr(path, cb)` -> `cb(0, stat)`. read and write call back with
//   one number instead, the byte count or a negative errno.
// * the async form: an `async` function (or any function that does not
//   declare the callback and returns a promise) gets the arguments only;
//   the promise's value is the operation's value (the byte count for read
//   and write) and a rejection its failure, an Error with an errno or code
//   as Node's fs throws them, or an errno number.
//
// Either way an answer comes at most once: a second callback is ignored,
// and an operation that has not answered within its timeout (fuse-native's
// `timeout` option, 15 s by default) fails with ETIMEDOUT, its late answer
// ignored. An exception thrown by the operation fails it with the errno the
// exception carries, or EIO (logged with its stack).

const { ERRNO, errnoOf } = require('./errno')

const DEFAULT_TIMEOUT_MS = 15 * 1000

// How long each operation may take, from fuse-native's `timeout` option: a
// number of milliseconds for every operation, false or 0 for no limit, or
// an object { default, read: ms, ... } with per-operation values (false:
// none for that one).
function timeoutFor (option, name) {
  if (option === false || option === 0) return 0
  if (option === undefined || option === null || option === true) return DEFAULT_TIMEOUT_MS
  if (typeof option === 'object') {
    const own = option[name]
    if (own === false || own === 0) return 0
    if (typeof own === 'number' && own > 0) return own
    return typeof option.default === 'number' && option.default > 0 ? option.default : DEFAULT_TIMEOUT_MS
  }
  return typeof option === 'number' && option > 0 ? option : DEFAULT_TIMEOUT_MS
}

function isAsyncFunction (fn) {
  return fn.constructor && fn.constructor.name === 'AsyncFunction'
}

function isThenable (value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof value.then === 'function'
}

// What invoke() resolves to: `errno` (positive, 0 for success) and the
// values the operation answered with.
function answer (errno, values) {
  return { errno, values }
}

// The answer of an async-form operation's promise value. `counts`: the
// value is a byte count or a negative errno (read, write).
function fromValue (value, counts) {
  if (counts) return fromCount(value)
  return answer(0, [value])
}

function fromCount (n) {
  if (typeof n === 'bigint') n = Number(n)
  if (n === undefined || n === null) return answer(0, [0])
  if (typeof n !== 'number' || !Number.isFinite(n)) return answer(ERRNO.EIO, [])
  if (n < 0) return answer(errnoOf(n), [])
  return answer(0, [Math.floor(n)])
}

// Calls `ops[name](...args, cb)` and resolves to { errno, values }, never
// rejecting. `log(text)` reports exceptions.
function invoke (ops, name, args, { timeoutMs = 0, counts = false, log = defaultLog } = {}) {
  const fn = ops[name]
  return new Promise((resolve) => {
    let done = false
    let timer = null
    const finish = (result) => {
      if (done) return
      done = true
      if (timer !== null) clearTimeout(timer)
      resolve(result)
    }
    const cb = counts
      ? (n) => finish(fromCount(n))
      : (err, ...values) => finish(answer(errnoOf(err), values))
    const declaresCallback = fn.length > args.length
    if (timeoutMs > 0) timer = setTimeout(() => finish(answer(ERRNO.ETIMEDOUT, [])), timeoutMs)
    let returned
    try {
      // Functions that may call back get the callback (also those that
      // declare none: they may take it as `...rest`); async ones that do
      // not declare it answer with their promise.
      returned = isAsyncFunction(fn) && !declaresCallback
        ? fn.apply(ops, args)
        : fn.apply(ops, [...args, cb])
    } catch (e) {
      finish(answer(failureOf(e, name, log), []))
      return
    }
    if (isThenable(returned)) {
      returned.then(
        (value) => { if (!declaresCallback) finish(fromValue(value, counts)) },
        (e) => finish(answer(failureOf(e, name, log), [])))
    } else if (!declaresCallback && returned !== undefined) {
      // A plain function that answered by returning its value.
      finish(fromValue(returned, counts))
    }
  })
}

// The errno of something an operation threw or rejected with; EIO, logged,
// for what carries none (a programming error in the filesystem).
function failureOf (e, name, log) {
  const errno = errnoOf(e)
  const carriesErrno = typeof e === 'number' || typeof e === 'bigint' ||
    (e && typeof e === 'object' && (typeof e.errno === 'number' || ERRNO[e.code] !== undefined))
  if (!carriesErrno) {
    log(`operation ${name} threw ${e && e.stack ? e.stack : String(e)}; answering EIO`)
  }
  return errno || ERRNO.EIO
}

function defaultLog (text) {
  process.stderr.write('fusehost: ' + text + '\n')
}

module.exports = { invoke, timeoutFor, DEFAULT_TIMEOUT_MS }
