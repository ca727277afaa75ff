// A mount's journal (proto/mount_state.proto) in a memfd: records are
// appended as the kernel-visible state changes, the descriptor is held by
// the daemon's keeper (keeper_client.h), and a daemon started after a crash
// reads it back. The memfd outlives the daemon that wrote it: what was
// appended before a crash is there, whatever instruction the crash hit.
//
// Layout: records one after another, each [u32 size][u32 check][payload],
// little endian, `check` a hash of the payload; a record of size 0, or one
// that does not check, ends the journal (a record torn by a crash is
// dropped, and nothing after it was ever answered to the kernel).
//
// Records are copied into a shared mapping: appending costs a copy, no
// system call. The file is sparse and large; a journal that grows past
// its threshold asks to be compacted (wants_compaction), which rewrites it
// as one record per live object into a new memfd.
//
// Thread-safe. Append is meant to be called under the lock of the table
// whose change it records, so that records keep the tables' order.

#ifndef FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_JOURNAL_H_
#define FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_JOURNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"
#include "proto/mount_state.pb.h"

namespace fusehost {

class MountJournal {
 public:
  // How much of a journal may be used: the memfd's (sparse) size.
  static constexpr size_t kCapacity = size_t{1} << 30;
  // A journal is compacted once it holds this much, or twice what its last
  // compaction wrote, whichever is more.
  static constexpr size_t kCompactAt = size_t{16} << 20;

  // A new journal holding `first` records.
  static absl::StatusOr<std::unique_ptr<MountJournal>> Create(
      const std::vector<state::Record>& first);

  // The records of a journal a previous daemon wrote (read through a
  // mapping of `fd`, which is not kept).
  static absl::StatusOr<std::vector<state::Record>> Read(int fd);

  ~MountJournal();
  MountJournal(const MountJournal&) = delete;
  MountJournal& operator=(const MountJournal&) = delete;

  // The memfd, to hand to the keeper.
  int fd() const;

  // Appends `record`. A journal that is full stops recording (and says so
  // once, in the log): false from the append that filled it on.
  bool Append(const state::Record& record);

  // Replaces the journal with `records` in a new memfd, and calls
  // `publish` with it (the keeper takes it) before the old one is dropped;
  // an error from `publish` keeps the old journal.
  absl::Status Rewrite(const std::vector<state::Record>& records,
                       const std::function<absl::Status(int fd)>& publish);

  // Grown past its threshold: time to Rewrite.
  bool wants_compaction() const;
  // Bytes used.
  size_t size() const;
  bool broken() const;

 private:
  MountJournal() = default;
  // A memfd of kCapacity, mapped, with `records` written at its start.
  struct Region {
    UniqueFd fd;
    char* base = nullptr;
    size_t used = 0;
  };
  static absl::StatusOr<Region> NewRegion(
      const std::vector<state::Record>& records);
  static bool Put(Region* region, const state::Record& record);
  static void Unmap(Region* region);

  mutable absl::Mutex mu_;
  Region region_ ABSL_GUARDED_BY(mu_);
  size_t compact_at_ ABSL_GUARDED_BY(mu_) = kCompactAt;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SURVIVAL_MOUNT_JOURNAL_H_
