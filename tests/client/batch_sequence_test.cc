// The Python SDK server's reading of Batch.sequence from a serialized Batch
// and its appending of BatchResult.sequence (client/python/native), against
// protobuf's own serializer and parser, and on malformed and truncated
// input.

#include "client/python/native/batch_sequence.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "proto/filesystem.pb.h"

namespace fusehost {
namespace {

bool Scan(const std::string& bytes, uint64_t* sequence) {
  return BatchSequence(reinterpret_cast<const uint8_t*>(bytes.data()),
                       bytes.size(), sequence);
}

std::string Bytes(std::initializer_list<uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

v1::Batch FullBatch(uint64_t sequence) {
  v1::Batch batch;
  batch.set_mount_id(7);
  batch.set_in_order(true);
  batch.set_sequence(sequence);
  v1::Op* op = batch.add_ops();
  op->set_id(1);
  op->mutable_getattr()->set_path("/a/b");
  op = batch.add_ops();
  op->set_id(2);
  op->mutable_write()->set_data(std::string(300, 'x'));
  return batch;
}

TEST(BatchSequenceTest, ReadsWhatProtobufWrote) {
  for (uint64_t sequence :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
        uint64_t{1} << 35, std::numeric_limits<uint64_t>::max()}) {
    uint64_t got = 12345;
    ASSERT_TRUE(Scan(FullBatch(sequence).SerializeAsString(), &got));
    EXPECT_EQ(got, sequence);
  }
}

TEST(BatchSequenceTest, AnEmptyBatchHasSequenceZero) {
  uint64_t got = 12345;
  ASSERT_TRUE(Scan("", &got));
  EXPECT_EQ(got, 0u);
}

TEST(BatchSequenceTest, TheLastSequenceWinsAsProtobufs) {
  v1::Batch a;
  a.set_sequence(5);
  v1::Batch b;
  b.set_mount_id(1);
  b.set_sequence(9);
  const std::string bytes = a.SerializeAsString() + b.SerializeAsString();
  v1::Batch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  uint64_t got = 0;
  ASSERT_TRUE(Scan(bytes, &got));
  EXPECT_EQ(got, parsed.sequence());
  EXPECT_EQ(got, 9u);
}

TEST(BatchSequenceTest, SkipsUnknownFieldsOfEveryWireType) {
  // Tags are (field << 3) | wire type. Field 9 fixed64 (0x49), field 10
  // fixed32 (0x55), field 11 bytes (0x5a), field 12 varint (0x60), field 4
  // as bytes (0x22: not the sequence), then the sequence (0x20), 300.
  const std::string bytes =
      Bytes({0x49, 1,    2,    3, 4,    5,    6,    7,    8,    0x55,
             1,    2,    3,    4, 0x5a, 3,    0x20, 0x99, 0x99, 0x60,
             0xff, 0x01, 0x22, 1, 0x20, 0x20, 0xac, 0x02});
  v1::Batch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  uint64_t got = 0;
  ASSERT_TRUE(Scan(bytes, &got));
  EXPECT_EQ(got, 300u);
  EXPECT_EQ(got, parsed.sequence());
}

TEST(BatchSequenceTest, EveryTruncationOfAFullBatchIsRefusedOrReadInBounds) {
  const std::string whole = FullBatch(uint64_t{1} << 40).SerializeAsString();
  for (size_t n = 0; n < whole.size(); ++n) {
    // A copy of exactly n bytes, so that a read past it is caught by
    // AddressSanitizer (bazel test --config=sanitize).
    const std::string cut = whole.substr(0, n);
    uint64_t got = 0;
    v1::Batch parsed;
    const bool ok = Scan(cut, &got);
    // Whatever protobuf refuses is refused here too; a cut at a field's
    // end is a shorter Batch.
    EXPECT_EQ(ok, parsed.ParseFromString(cut)) << n;
    if (ok) {
      EXPECT_EQ(got, parsed.sequence()) << n;
    }
  }
}

TEST(BatchSequenceTest, RefusesMalformedInput) {
  // Tags as above; 0x5b and 0x5c start and end a group of field 11, 0x5e
  // and 0x5f are wire types 6 and 7.
  uint64_t got = 77;
  // A varint that never ends within the input.
  EXPECT_FALSE(Scan(Bytes({0x20, 0x80, 0x80}), &got));
  // A tag that never ends.
  EXPECT_FALSE(Scan(Bytes({0x80}), &got));
  // A varint of more than ten bytes.
  EXPECT_FALSE(Scan(Bytes({0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                           0x80, 0x80, 0x01}),
                    &got));
  // A length past the end, and one that would overflow a size_t.
  EXPECT_FALSE(Scan(Bytes({0x5a, 5, 1, 2}), &got));
  EXPECT_FALSE(Scan(
      Bytes({0x5a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}),
      &got));
  // Fixed-size fields cut short.
  EXPECT_FALSE(Scan(Bytes({0x49, 1, 2, 3, 4, 5, 6, 7}), &got));
  EXPECT_FALSE(Scan(Bytes({0x55, 1, 2, 3}), &got));
  // Field number 0, and one past 2^29 - 1.
  EXPECT_FALSE(Scan(Bytes({0x00, 0x01}), &got));
  EXPECT_FALSE(Scan(Bytes({0x80, 0x80, 0x80, 0x80, 0x10, 0x01}), &got));
  // Groups and the wire types that do not exist.
  EXPECT_FALSE(Scan(Bytes({0x5b, 0x5c}), &got));
  EXPECT_FALSE(Scan(Bytes({0x5c}), &got));
  EXPECT_FALSE(Scan(Bytes({0x5e, 0}), &got));
  EXPECT_FALSE(Scan(Bytes({0x5f, 0}), &got));
  // A good sequence before the damage is not taken.
  EXPECT_FALSE(Scan(Bytes({0x20, 0x05, 0x5a, 9}), &got));
  EXPECT_EQ(got, 77u);
}

TEST(BatchSequenceTest, TheAppendedSequenceIsWhatProtobufReads) {
  v1::BatchResult result;
  result.set_instance(42);
  v1::OpResult* r = result.add_results();
  r->set_id(3);
  r->set_posix_errno(2);
  const std::string serialized = result.SerializeAsString();
  for (uint64_t sequence :
       {uint64_t{0}, uint64_t{1}, uint64_t{128}, uint64_t{1} << 63,
        std::numeric_limits<uint64_t>::max()}) {
    uint8_t field[kSequenceFieldMax];
    const size_t n = SequenceField(sequence, field);
    ASSERT_LE(n, kSequenceFieldMax);
    v1::BatchResult parsed;
    ASSERT_TRUE(parsed.ParseFromString(
        serialized + std::string(reinterpret_cast<char*>(field), n)));
    EXPECT_EQ(parsed.sequence(), sequence);
    EXPECT_EQ(parsed.instance(), 42u);
    ASSERT_EQ(parsed.results_size(), 1);
    EXPECT_EQ(parsed.results(0).id(), 3u);
    // Alone, as the answer to a batch whose call failed.
    v1::BatchResult alone;
    ASSERT_TRUE(
        alone.ParseFromString(std::string(reinterpret_cast<char*>(field), n)));
    EXPECT_EQ(alone.sequence(), sequence);
    EXPECT_EQ(alone.results_size(), 0);
  }
}

TEST(BatchSequenceTest, AppendingOverridesAnEarlierSequence) {
  v1::BatchResult result;
  result.set_sequence(1000);
  uint8_t field[kSequenceFieldMax];
  const size_t n = SequenceField(7, field);
  v1::BatchResult parsed;
  ASSERT_TRUE(
      parsed.ParseFromString(result.SerializeAsString() +
                             std::string(reinterpret_cast<char*>(field), n)));
  EXPECT_EQ(parsed.sequence(), 7u);
}

}  // namespace
}  // namespace fusehost
