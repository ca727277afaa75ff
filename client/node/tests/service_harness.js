'use strict'
// The SDK's gRPC service without gRPC: a Service for a fuse-native
// operations object, and its unary handlers called with requests and
// replies that went through the protocol's encoding, as on the wire.

const { Bound } = require('../lib/bound')
const { Dispatcher } = require('../lib/dispatch')
const { InvalidationHub } = require('../lib/invalidations')
const { Service } = require('../lib/server')
const { load } = require('../lib/protocol')

// The Service for `ops` (instance 5).
function serviceFor (ops) {
  const bound = new Bound(ops, { log: () => {} })
  return new Service(new Dispatcher(bound, '5'), new InvalidationHub(), { name: 'test' })
}

// Calls unary handler `name` as gRPC does: the request serialized and
// deserialized on the way in, the reply on the way out.
function call (service, name, request) {
  const method = load().FileSystem.service[name]
  const decoded = method.requestDeserialize(method.requestSerialize(request))
  return new Promise((resolve, reject) => {
    service.handlers()[name]({ request: decoded }, (err, reply) => {
      if (err) reject(new Error(err.details || String(err)))
      else resolve(method.responseDeserialize(method.responseSerialize(reply)))
    })
  })
}

module.exports = { serviceFor, call }
