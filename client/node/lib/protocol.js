'use strict'
// The protocol's messages and services, loaded at run time from the .proto
// files (proto/filesystem.proto: what a backend serves; proto/control.proto:
// the daemon's control socket), so nothing generated is checked in and no
// build step runs.
//
// How messages look in JavaScript (@grpc/proto-loader's options below):
// field names as in the .proto (snake_case); 64-bit integers as decimal
// strings (a JavaScript number cannot hold every uint64); bytes as Buffers;
// unset fields absent (so a missing number means 0 and a missing message
// "not set"), and the member of a oneof that is set named by the oneof's
// name (`op.op === 'getattr'`, `result` likewise).

const fs = require('fs')
const path = require('path')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')

const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: false,
  oneofs: true
}

// Where the .proto files are: $FUSEHOST_PROTO_DIR, a proto/ folder shipped
// inside the package, or the repository's proto/ two levels up.
function protoDir () {
  const candidates = [
    process.env.FUSEHOST_PROTO_DIR,
    path.join(__dirname, '..', 'proto'),
    path.join(__dirname, '..', '..', '..', 'proto')
  ]
  for (const dir of candidates) {
    if (dir && fs.existsSync(path.join(dir, 'filesystem.proto'))) return dir
  }
  throw new Error('fusehost: proto/filesystem.proto not found (set FUSEHOST_PROTO_DIR)')
}

let loaded = null

function load () {
  if (loaded) return loaded
  const dir = protoDir()
  // includeDirs is the folder above proto/ so that imports such as
  // "proto/filesystem.proto" (the conformance schema's) resolve too.
  const definition = protoLoader.loadSync(
    [path.join(dir, 'filesystem.proto'), path.join(dir, 'control.proto')],
    { ...LOADER_OPTIONS, includeDirs: [dir, path.dirname(dir)] })
  const pkg = grpc.loadPackageDefinition(definition).fusehost.v1
  const limits = definition['fusehost.v1.Limit'].type.value
  const limit = (name) => limits.find((v) => v.name === name).number
  loaded = {
    dir,
    FileSystem: pkg.FileSystem,
    Control: pkg.Control,
    MAX_ERRNO: limit('LIMIT_MAX_ERRNO'),
    MAX_QUEUED_INVALIDATIONS: limit('LIMIT_MAX_QUEUED_INVALIDATIONS'),
    // Invalidation.Kind, TimeSet.Kind
    CHANGED: 0,
    REMOVED: 1,
    SUBTREE: 2,
    OMIT: 0,
    NOW: 1,
    SET: 2
  }
  return loaded
}

module.exports = { load, protoDir, LOADER_OPTIONS }
