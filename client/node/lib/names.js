'use strict'
// Names and paths between the protocol's bytes and JavaScript strings.
//
// Linux names are arbitrary bytes; fuse-native's API has strings. UTF-8
// decodes as usual; a byte that is not part of valid UTF-8 becomes a lone
// surrogate U+DC80..U+DCFF (what Python calls surrogateescape), and turns
// back into that byte on the way out, so that every name survives the
// round trip: a filesystem that stores the strings it gets, or gives them
// back (readdir), keeps names such as Latin-1 ones intact. Code that needs
// the bytes (a loopback calling Node's fs) gets them from Fuse.toBuffer().

const utf8 = new TextDecoder('utf-8', { fatal: true })

function isAscii (buf) {
  for (let i = 0; i < buf.length; i++) if (buf[i] >= 0x80) return false
  return true
}

// The length of the valid UTF-8 sequence at `i`, or 0.
function sequenceAt (buf, i) {
  const b = buf[i]
  let n
  let min
  if (b >= 0xc2 && b <= 0xdf) { n = 2; min = 0x80 } else if (b >= 0xe0 && b <= 0xef) { n = 3; min = 0x800 } else if (b >= 0xf0 && b <= 0xf4) { n = 4; min = 0x10000 } else return 0
  if (i + n > buf.length) return 0
  let cp = b & (0xff >> (n + 1))
  for (let k = 1; k < n; k++) {
    const c = buf[i + k]
    if ((c & 0xc0) !== 0x80) return 0
    cp = (cp << 6) | (c & 0x3f)
  }
  // Overlong forms, surrogates and values beyond Unicode are not valid.
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0
  return n
}

// A string of bytes (a Buffer).
function decode (buf) {
  if (isAscii(buf)) return buf.toString('latin1')
  try {
    return utf8.decode(buf)
  } catch (_) {
    // Not all valid: decode piece by piece.
  }
  let out = ''
  let i = 0
  while (i < buf.length) {
    if (buf[i] < 0x80) {
      out += String.fromCharCode(buf[i++])
      continue
    }
    const n = sequenceAt(buf, i)
    if (n) {
      out += buf.toString('utf8', i, i + n)
      i += n
    } else {
      out += String.fromCharCode(0xdc00 + buf[i++])
    }
  }
  return out
}

function hasEscapes (str) {
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i)
    if (c >= 0xdc80 && c <= 0xdcff) return true
  }
  return false
}

// The bytes of a string as decode() made it (any other string: its UTF-8).
function encode (str) {
  if (Buffer.isBuffer(str)) return str
  str = String(str)
  if (!hasEscapes(str)) return Buffer.from(str, 'utf8')
  const parts = []
  let start = 0
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i)
    // A lone low surrogate (not preceded by a high one) is an escaped byte.
    if (c >= 0xdc80 && c <= 0xdcff && !(i > 0 && str.charCodeAt(i - 1) >= 0xd800 && str.charCodeAt(i - 1) <= 0xdbff)) {
      if (i > start) parts.push(Buffer.from(str.slice(start, i), 'utf8'))
      parts.push(Buffer.from([c - 0xdc00]))
      start = i + 1
    }
  }
  if (start < str.length) parts.push(Buffer.from(str.slice(start), 'utf8'))
  return Buffer.concat(parts)
}

module.exports = { decode, encode }
