// The Session stream's sequence numbers (proto/filesystem.proto), read and
// written on serialized messages: the Python SDK's server passes Batch and
// BatchResult as bytes, links no C++ protobuf code, and must still echo
// each Batch.sequence (field 4) in its BatchResult.sequence (field 3).
//
// BatchSequence scans only the Batch's top-level fields, skipping the
// others by their wire type; the bytes come from the network, so every
// length is checked against what is left before it is used. Groups (wire
// types 3 and 4, which no proto3 sender writes) count as malformed.
// AppendSequence adds field 3 after the rest of a serialized BatchResult:
// a parser takes fields in any order, and the last value of a scalar
// field is the one it keeps.

#ifndef FUSE_HOSTD_CLIENT_PYTHON_NATIVE_BATCH_SEQUENCE_H_
#define FUSE_HOSTD_CLIENT_PYTHON_NATIVE_BATCH_SEQUENCE_H_

#include <cstddef>
#include <cstdint>

namespace fusehost {
namespace batch_sequence {

// The longest varint: 64 bits in 7-bit groups.
constexpr size_t kMaxVarint = 10;

// Reads a varint at data[*pos] (before `size`) into *value and moves *pos
// past it. False, *pos unspecified, when it runs past `size` or is longer
// than kMaxVarint bytes. Bits beyond 64 are dropped, as protobuf does.
inline bool ReadVarint(const uint8_t* data, size_t size, size_t* pos,
                       uint64_t* value) {
  uint64_t v = 0;
  for (size_t i = 0; i < kMaxVarint; ++i) {
    if (*pos >= size) return false;
    const uint8_t byte = data[(*pos)++];
    v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

// Writes `value` as a varint at `out` (room for kMaxVarint bytes); returns
// the number of bytes written.
inline size_t WriteVarint(uint64_t value, uint8_t* out) {
  size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<uint8_t>(value) | 0x80;
    value >>= 7;
  }
  out[n++] = static_cast<uint8_t>(value);
  return n;
}

}  // namespace batch_sequence

// Stores in *sequence the Batch.sequence of the serialized Batch
// data[0, size): the last field 4 of wire type varint, 0 when there is
// none. False when the message is malformed (a truncated varint or field,
// field number 0, a group or an unknown wire type).
inline bool BatchSequence(const uint8_t* data, size_t size,
                          uint64_t* sequence) {
  using batch_sequence::ReadVarint;
  constexpr uint64_t kSequenceField = 4;
  uint64_t found = 0;
  size_t pos = 0;
  while (pos < size) {
    uint64_t tag;
    if (!ReadVarint(data, size, &pos, &tag)) return false;
    const uint64_t field = tag >> 3;
    if (field == 0 || field > 0x1fffffff) return false;
    uint64_t value;
    switch (tag & 7) {
      case 0:  // varint
        if (!ReadVarint(data, size, &pos, &value)) return false;
        if (field == kSequenceField) found = value;
        break;
      case 1:  // 64 bits
        if (size - pos < 8) return false;
        pos += 8;
        break;
      case 2:  // length-delimited
        if (!ReadVarint(data, size, &pos, &value)) return false;
        if (value > size - pos) return false;
        pos += static_cast<size_t>(value);
        break;
      case 5:  // 32 bits
        if (size - pos < 4) return false;
        pos += 4;
        break;
      default:  // groups (3, 4), and 6 and 7, which are not wire types
        return false;
    }
  }
  *sequence = found;
  return true;
}

// The bytes to append to a serialized BatchResult to set its sequence
// (field 3, varint): written at `out`, which has room for
// kSequenceFieldMax bytes; returns how many.
constexpr size_t kSequenceFieldMax = 1 + batch_sequence::kMaxVarint;
inline size_t SequenceField(uint64_t sequence, uint8_t* out) {
  out[0] = (3 << 3) | 0;  // 0x18
  return 1 + batch_sequence::WriteVarint(sequence, out + 1);
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_PYTHON_NATIVE_BATCH_SEQUENCE_H_
