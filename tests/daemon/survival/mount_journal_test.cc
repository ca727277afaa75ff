// MountJournal: records appended to the memfd are there for whoever holds
// another descriptor of it, while the writer lives and after it is gone; a
// torn record ends the journal; a rewrite is published before it replaces
// the journal, and only if the publishing worked.

#include "daemon/survival/mount_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/mount_state.pb.h"
#include "tests/daemon/survival/descriptor_probes.h"

namespace fusehost {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr size_t kHeader = 8;  // [u32 size][u32 check]

state::Record MountRecord(uint64_t mount_id) {
  state::Record r;
  r.mutable_mount()->set_mount_id(mount_id);
  r.mutable_mount()->set_mountpoint(absl::StrCat("/mnt/", mount_id));
  return r;
}

state::Record NodeRecord(uint64_t id, const std::string& name) {
  state::Record r;
  r.mutable_node()->set_id(id);
  r.mutable_node()->set_parent(1);
  r.mutable_node()->set_name(name);
  r.mutable_node()->set_lookups(1);
  return r;
}

// The records as text, to compare whole journals with readable failures.
std::vector<std::string> Texts(const std::vector<state::Record>& records) {
  std::vector<std::string> out;
  for (const state::Record& r : records) out.push_back(r.ShortDebugString());
  return out;
}

std::vector<std::string> ReadTexts(int fd) {
  absl::StatusOr<std::vector<state::Record>> read = MountJournal::Read(fd);
  EXPECT_TRUE(read.ok()) << read.status();
  return read.ok() ? Texts(*read) : std::vector<std::string>{};
}

std::string Text(const state::Record& r) { return r.ShortDebugString(); }

// Where record `index` of `records`, written one after another, starts.
size_t OffsetOf(const std::vector<state::Record>& records, size_t index) {
  size_t at = 0;
  for (size_t i = 0; i < index; ++i) at += kHeader + records[i].ByteSizeLong();
  return at;
}

// The journal's framing check (FNV-1a, never 0), to write a record that
// checks but does not parse.
uint32_t FramingCheck(const std::string& payload) {
  uint32_t h = 2166136261u;
  for (char c : payload) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

bool PutU32At(int fd, uint32_t v, size_t at) {
  return pwrite(fd, &v, sizeof(v), static_cast<off_t>(at)) == sizeof(v);
}

// Writes a record's framing and payload at `at`, payload and check first,
// then its size, as a writer does.
bool PutRecordAt(int fd, uint32_t size, uint32_t check,
                 const std::string& payload, size_t at) {
  return pwrite(fd, payload.data(), payload.size(),
                static_cast<off_t>(at + kHeader)) ==
             static_cast<ssize_t>(payload.size()) &&
         PutU32At(fd, check, at + 4) && PutU32At(fd, size, at);
}

UniqueFd Dup(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

ino_t InodeOf(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

std::unique_ptr<MountJournal> NewJournal(
    const std::vector<state::Record>& first) {
  absl::StatusOr<std::unique_ptr<MountJournal>> j = MountJournal::Create(first);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *std::move(j) : nullptr;
}

// A journal with its mount, and the records written so far.
class MountJournalTest : public ::testing::Test {
 protected:
  MountJournalTest() : written_({MountRecord(7)}) {
    journal_ = NewJournal(written_);
  }

  void Append(const state::Record& r) {
    journal_->Append(r);
    written_.push_back(r);
  }
  void AppendNodes(int count) {
    for (int i = 0; i < count; ++i) {
      Append(NodeRecord(100 + written_.size(), absl::StrCat("n", i)));
    }
  }

  std::vector<state::Record> written_;
  std::unique_ptr<MountJournal> journal_;
};

TEST_F(MountJournalTest, AnotherDescriptorReadsTheRecordsInOrder) {
  ASSERT_NE(journal_, nullptr);
  UniqueFd dup = Dup(journal_->fd());
  ASSERT_TRUE(dup.valid());
  // A descriptor of its own (another open file), as /proc gives it.
  UniqueFd reopened(open(absl::StrCat("/proc/self/fd/", journal_->fd()).c_str(),
                         O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(reopened.valid());

  EXPECT_THAT(ReadTexts(dup.get()), ElementsAre(Text(MountRecord(7))));
  AppendNodes(3);
  state::Record init;
  init.set_kernel_init(std::string("\0\1\2", 3));
  Append(init);
  AppendNodes(2);
  EXPECT_THAT(ReadTexts(dup.get()), ElementsAreArray(Texts(written_)));
  EXPECT_THAT(ReadTexts(reopened.get()), ElementsAreArray(Texts(written_)));
  EXPECT_EQ(journal_->size(), OffsetOf(written_, written_.size()));
  EXPECT_FALSE(journal_->broken());
}

TEST_F(MountJournalTest, TheRecordsOutliveTheJournalObject) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(4);
  UniqueFd kept = Dup(journal_->fd());
  ASSERT_TRUE(kept.valid());
  journal_.reset();  // the daemon is gone; the keeper's copy is not
  EXPECT_THAT(ReadTexts(kept.get()), ElementsAreArray(Texts(written_)));
}

TEST_F(MountJournalTest, ATornLastRecordEndsTheJournalBeforeIt) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(3);
  UniqueFd fd = Dup(journal_->fd());
  const size_t last = OffsetOf(written_, written_.size() - 1);
  // The check bytes of the last record, damaged through another descriptor.
  ASSERT_TRUE(PutU32At(fd.get(), 0xdeadbeef, last + 4));
  std::vector<state::Record> before(written_.begin(), written_.end() - 1);
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(before)));
}

TEST_F(MountJournalTest, ADamagedRecordHidesEverythingAfterIt) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(4);
  UniqueFd fd = Dup(journal_->fd());
  // One payload byte of record 2 changed: its check no longer holds.
  const size_t at = OffsetOf(written_, 2) + kHeader;
  char byte = 0;
  ASSERT_EQ(pread(fd.get(), &byte, 1, at), 1);
  byte ^= 0x40;
  ASSERT_EQ(pwrite(fd.get(), &byte, 1, at), 1);
  std::vector<state::Record> before(written_.begin(), written_.begin() + 2);
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(before)));
}

TEST_F(MountJournalTest, AnUnfinishedRecordAfterTheLastEndsTheJournal) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(2);
  UniqueFd fd = Dup(journal_->fd());
  const size_t end = journal_->size();
  // Torn by a crash: a size, part of a payload, no check.
  ASSERT_TRUE(PutRecordAt(fd.get(), 40, 0, "not a record, not checked", end));
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(written_)));

  // A size no record has, and the largest one, unchecked.
  ASSERT_TRUE(PutU32At(fd.get(), uint32_t{1} << 31, end));
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(written_)));
  ASSERT_TRUE(PutU32At(fd.get(), 16 << 20, end));
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(written_)));

  // Checked, but no record: a varint cut short.
  const std::string payload("\xff\xff\xff\xff\xff", 5);
  ASSERT_TRUE(PutRecordAt(fd.get(), payload.size(), FramingCheck(payload),
                          payload, end));
  EXPECT_THAT(ReadTexts(fd.get()), ElementsAreArray(Texts(written_)));
}

TEST(MountJournalReadTest, AJournalThatDoesNotStartWithItsMountIsAnError) {
  std::unique_ptr<MountJournal> j = NewJournal({NodeRecord(2, "a")});
  ASSERT_NE(j, nullptr);
  j->Append(MountRecord(7));
  EXPECT_TRUE(absl::IsDataLoss(MountJournal::Read(j->fd()).status()));

  std::unique_ptr<MountJournal> empty = NewJournal({});
  ASSERT_NE(empty, nullptr);
  EXPECT_TRUE(absl::IsDataLoss(MountJournal::Read(empty->fd()).status()));
}

TEST(MountJournalReadTest, AFileThatIsNoJournalIsAnError) {
  UniqueFd tiny = MemfdWith("abc");
  EXPECT_TRUE(absl::IsDataLoss(MountJournal::Read(tiny.get()).status()));
  UniqueFd zeros = MemfdWith(std::string(64, '\0'));
  EXPECT_TRUE(absl::IsDataLoss(MountJournal::Read(zeros.get()).status()));
  EXPECT_FALSE(MountJournal::Read(-1).ok());
}

TEST_F(MountJournalTest, RewritePublishesTheNewJournalBeforeSwitchingToIt) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(5);
  UniqueFd old_fd = Dup(journal_->fd());
  const std::vector<state::Record> compacted = {MountRecord(7),
                                                NodeRecord(3, "kept")};
  int published = -1;
  std::vector<std::string> seen_when_published;
  ASSERT_TRUE(journal_
                  ->Rewrite(compacted,
                            [&](int fd) {
                              published = fd;
                              seen_when_published = ReadTexts(fd);
                              return absl::OkStatus();
                            })
                  .ok());
  EXPECT_THAT(seen_when_published, ElementsAreArray(Texts(compacted)));
  EXPECT_EQ(journal_->fd(), published);
  EXPECT_NE(InodeOf(published), InodeOf(old_fd.get()));
  EXPECT_EQ(journal_->size(), OffsetOf(compacted, compacted.size()));

  // Later records go to the new memfd only.
  journal_->Append(NodeRecord(9, "after"));
  std::vector<state::Record> now = compacted;
  now.push_back(NodeRecord(9, "after"));
  EXPECT_THAT(ReadTexts(journal_->fd()), ElementsAreArray(Texts(now)));
  EXPECT_THAT(ReadTexts(old_fd.get()), ElementsAreArray(Texts(written_)));
}

TEST_F(MountJournalTest, APublishingErrorKeepsTheOldJournal) {
  ASSERT_NE(journal_, nullptr);
  AppendNodes(2);
  const int old_fd = journal_->fd();
  const size_t old_size = journal_->size();
  absl::Status st = journal_->Rewrite({MountRecord(7)}, [](int) {
    return absl::UnavailableError("keeper gone");
  });
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(journal_->fd(), old_fd);
  EXPECT_EQ(journal_->size(), old_size);
  Append(NodeRecord(9, "after"));
  EXPECT_THAT(ReadTexts(old_fd), ElementsAreArray(Texts(written_)));
}

TEST(MountJournalCompactionTest, WantedPastTheThresholdAndAgainAfterTwiceIt) {
  // Records of about 1 MiB: a few reach the threshold.
  const std::string big(size_t{1} << 20, 'x');
  const size_t per_record = kHeader + NodeRecord(2, big).ByteSizeLong();
  std::unique_ptr<MountJournal> j = NewJournal({MountRecord(7)});
  ASSERT_NE(j, nullptr);
  while (j->size() + per_record < MountJournal::kCompactAt) {
    j->Append(NodeRecord(2, big));
    ASSERT_FALSE(j->wants_compaction()) << j->size();
  }
  j->Append(NodeRecord(2, big));
  EXPECT_TRUE(j->wants_compaction());

  // A small rewrite: the threshold is kCompactAt again.
  ASSERT_TRUE(
      j->Rewrite({MountRecord(7)}, [](int) { return absl::OkStatus(); }).ok());
  EXPECT_FALSE(j->wants_compaction());

  // A rewrite of 9 big records: compacted again at twice that, not before.
  std::vector<state::Record> large = {MountRecord(7)};
  for (int i = 0; i < 9; ++i) large.push_back(NodeRecord(2 + i, big));
  ASSERT_TRUE(j->Rewrite(large, [](int) { return absl::OkStatus(); }).ok());
  const size_t rewritten = j->size();
  ASSERT_GT(2 * rewritten, MountJournal::kCompactAt);
  while (j->size() + per_record < 2 * rewritten) {
    j->Append(NodeRecord(2, big));
    ASSERT_FALSE(j->wants_compaction()) << j->size();
  }
  j->Append(NodeRecord(2, big));
  EXPECT_TRUE(j->wants_compaction());
}

TEST(MountJournalCompactionTest,
     ARecordTooLargeBreaksTheJournalUntilRewritten) {
  std::unique_ptr<MountJournal> j = NewJournal({MountRecord(7)});
  ASSERT_NE(j, nullptr);
  j->Append(NodeRecord(2, std::string((size_t{16} << 20) + 1, 'x')));
  EXPECT_TRUE(j->broken());
  // Nothing is recorded any more: a later record would follow a gap.
  j->Append(NodeRecord(3, "small"));
  EXPECT_THAT(ReadTexts(j->fd()), ElementsAre(Text(MountRecord(7))));

  ASSERT_TRUE(
      j->Rewrite({MountRecord(7)}, [](int) { return absl::OkStatus(); }).ok());
  EXPECT_FALSE(j->broken());
  j->Append(NodeRecord(3, "small"));
  EXPECT_THAT(ReadTexts(j->fd()),
              ElementsAre(Text(MountRecord(7)), Text(NodeRecord(3, "small"))));
}

TEST(MountJournalCreateTest, AStateLargerThanARecordIsRefused) {
  absl::StatusOr<std::unique_ptr<MountJournal>> j = MountJournal::Create(
      {MountRecord(7),
       NodeRecord(2, std::string((size_t{16} << 20) + 1, 'x'))});
  EXPECT_TRUE(absl::IsResourceExhausted(j.status())) << j.status();
}

}  // namespace
}  // namespace fusehost
