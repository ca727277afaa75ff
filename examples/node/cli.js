'use strict'
// The command line the Node examples share (not part of fusehost):
//
//   node EXAMPLE.js [ARGS] MOUNTPOINT [-o OPTIONS] [--debug]   mount it
//   node EXAMPLE.js [ARGS] --listen unix:/PATH                 only serve,
//                                           for `fuse-hostctl mount`
//
// -o takes libfuse's option names (allow_other,ro,fsname=x); they become
// fuse-native's camel-cased options (allowOther, ro, fsname).

function camel (name) {
  return name.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
}

// { positional: [...], options: {...}, listen, debug } of `argv`.
function parse (argv, usage) {
  const out = { positional: [], options: {}, listen: null, debug: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '-o') {
      for (const item of (argv[++i] || '').split(',').filter(Boolean)) {
        const eq = item.indexOf('=')
        if (eq < 0) out.options[camel(item)] = true
        else out.options[camel(item.slice(0, eq))] = item.slice(eq + 1)
      }
    } else if (arg === '--listen') {
      out.listen = argv[++i]
    } else if (arg === '--debug') {
      out.debug = true
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(usage + '\n')
      process.exit(0)
    } else {
      out.positional.push(arg)
    }
  }
  return out
}

// Mounts `ops` at the mountpoint (or serves them with --listen) until the
// mount goes away or the process is told to stop; exits 1 with the reason
// when mounting fails.
function run (Fuse, ops, args, mountpoint, options) {
  const opts = { ...options, ...args.options, debug: args.debug || options.debug }
  if (args.listen) {
    if (typeof Fuse.serve !== 'function') throw new Error('--listen needs fusehost')
    return Fuse.serve(ops, args.listen, opts).then(({ fuse, close }) => {
      for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => close().then(() => process.exit(0)))
      return fuse
    })
  }
  const fuse = new Fuse(mountpoint, ops, opts)
  return new Promise((resolve) => {
    fuse.mount((err) => {
      if (err) {
        process.stderr.write(`${err.message}\n`)
        process.exit(1)
      }
      process.stderr.write(`mounted at ${fuse.mnt}\n`)
      resolve(fuse)
    })
  })
}

module.exports = { parse, run }
