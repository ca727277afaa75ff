'use strict'
// Whether an operation provably does nothing, so that the daemon may be
// told to skip it (the Python SDK's _does_nothing.py, for JavaScript).
//
// A filesystem's flush is called on every close(2), a round trip each
// through fuse-hostd where fuse-native pays a function call. Filesystems
// that write nothing back at close define it as `flush (path, fd, cb) {
// cb(0) }`. When the function's whole source is nothing but calling its
// last parameter with 0, null, undefined or nothing, opens answer
// `noflush` and the kernel sends no FLUSH at all.
//
// The check reads the function's source and is strict: a comment, another
// statement, an async function, a bound or native function, default or
// destructured parameters, anything else is taken to do something.

const NAME = '[A-Za-z_$][\\w$]*'
const NOTHING = '(?:0|null|undefined)?'
const CALL = (cb) => `${cb}\\s*\\(\\s*${NOTHING}\\s*\\)`
// function [name] (params) / name (params) (a method) / (params) =>
const SIGNATURE = new RegExp(
  `^(?:function\\s*(?:${NAME})?\\s*|${NAME}\\s*)?\\(\\s*((?:${NAME}\\s*,\\s*)*(${NAME}))\\s*\\)\\s*(=>)?\\s*([\\s\\S]*)$`)

function onlyCallsBack (fn) {
  if (typeof fn !== 'function') return false
  const source = Function.prototype.toString.call(fn).trim()
  const parts = SIGNATURE.exec(source)
  if (!parts || /^(?:async|get|set|static)\b/.test(source)) return false
  const [, , cb, arrow, body] = parts
  const braced = new RegExp(`^\\{\\s*(?:return\\s+)?${CALL(cb)}\\s*;?\\s*\\}$`)
  if (braced.test(body)) return true
  // An arrow's expression body: (path, fd, cb) => cb(0)
  return Boolean(arrow) && new RegExp(`^${CALL(cb)}$`).test(body)
}

module.exports = { onlyCallsBack }
