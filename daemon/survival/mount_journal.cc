#include "daemon/survival/mount_journal.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log_line.h"

namespace fusehost {
namespace {

constexpr size_t kHeader = 8;
// No record is anywhere near this; a larger size is a torn or foreign file.
constexpr uint32_t kMaxRecord = 16 << 20;

// FNV-1a: cheap, and enough to tell a whole record from a torn one.
uint32_t Check(const char* data, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 16777619u;
  }
  return h == 0 ? 1 : h;
}

void PutU32(char* at, uint32_t v) { std::memcpy(at, &v, 4); }
uint32_t GetU32(const char* at) {
  uint32_t v;
  std::memcpy(&v, at, 4);
  return v;
}

}  // namespace

absl::StatusOr<MountJournal::Region> MountJournal::NewRegion(
    const std::vector<state::Record>& records) {
  Region r;
  r.fd.reset(memfd_create("fuse-hostd-mount-state", MFD_CLOEXEC));
  if (!r.fd.valid()) {
    return absl::InternalError(
        absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  if (ftruncate(r.fd.get(), kCapacity) != 0) {
    return absl::InternalError(
        absl::StrCat("ftruncate: ", std::strerror(errno)));
  }
  void* base = mmap(nullptr, kCapacity, PROT_READ | PROT_WRITE, MAP_SHARED,
                    r.fd.get(), 0);
  if (base == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap: ", std::strerror(errno)));
  }
  r.base = static_cast<char*>(base);
  for (const state::Record& record : records) {
    if (!Put(&r, record)) {
      Unmap(&r);
      return absl::ResourceExhaustedError("mount state larger than its journal");
    }
  }
  return r;
}

void MountJournal::Unmap(Region* region) {
  if (region->base != nullptr) munmap(region->base, kCapacity);
  region->base = nullptr;
}

bool MountJournal::Put(Region* region, const state::Record& record) {
  const size_t size = record.ByteSizeLong();
  // Room for this record and the zero size that ends the journal.
  if (size > kMaxRecord || region->used + kHeader + size + 4 > kCapacity) {
    return false;
  }
  char* at = region->base + region->used;
  record.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(at + kHeader));
  PutU32(at + 4, Check(at + kHeader, size));
  // The size last: until it is there, the journal ends before this record.
  PutU32(at, static_cast<uint32_t>(size));
  region->used += kHeader + size;
  return true;
}

absl::StatusOr<std::unique_ptr<MountJournal>> MountJournal::Create(
    const std::vector<state::Record>& first) {
  absl::StatusOr<Region> region = NewRegion(first);
  if (!region.ok()) return region.status();
  std::unique_ptr<MountJournal> j(new MountJournal());
  absl::MutexLock lock(&j->mu_);
  j->region_ = *std::move(region);
  return j;
}

absl::StatusOr<std::vector<state::Record>> MountJournal::Read(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("fstat: ", std::strerror(errno)));
  }
  const size_t length = static_cast<size_t>(st.st_size);
  if (length < kHeader) return absl::DataLossError("empty mount journal");
  void* map = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap: ", std::strerror(errno)));
  }
  const char* base = static_cast<const char*>(map);
  std::vector<state::Record> records;
  size_t at = 0;
  while (at + kHeader <= length) {
    const uint32_t size = GetU32(base + at);
    if (size == 0 || size > kMaxRecord || at + kHeader + size > length) break;
    if (GetU32(base + at + 4) != Check(base + at + kHeader, size)) break;
    state::Record record;
    if (!record.ParseFromArray(base + at + kHeader, static_cast<int>(size))) {
      break;
    }
    records.push_back(std::move(record));
    at += kHeader + size;
  }
  munmap(map, length);
  if (records.empty() || !records.front().has_mount()) {
    return absl::DataLossError("mount journal without its mount");
  }
  return records;
}

MountJournal::~MountJournal() {
  absl::MutexLock lock(&mu_);
  Unmap(&region_);
}

int MountJournal::fd() const {
  absl::MutexLock lock(&mu_);
  return region_.fd.get();
}

bool MountJournal::Append(const state::Record& record) {
  absl::MutexLock lock(&mu_);
  if (broken_) return false;
  if (!Put(&region_, record)) {
    broken_ = true;
    Log("mount state journal full (%zu bytes): this mount will not survive "
        "a restart of the daemon",
        region_.used);
    return false;
  }
  return true;
}

absl::Status MountJournal::Rewrite(
    const std::vector<state::Record>& records,
    const std::function<absl::Status(int fd)>& publish) {
  absl::StatusOr<Region> fresh = NewRegion(records);
  if (!fresh.ok()) return fresh.status();
  absl::MutexLock lock(&mu_);
  absl::Status published = publish(fresh->fd.get());
  if (!published.ok()) {
    Unmap(&*fresh);
    return published;
  }
  Unmap(&region_);
  region_ = *std::move(fresh);
  compact_at_ = std::max(kCompactAt, 2 * region_.used);
  broken_ = false;
  return absl::OkStatus();
}

bool MountJournal::wants_compaction() const {
  absl::MutexLock lock(&mu_);
  return region_.used >= compact_at_;
}

size_t MountJournal::size() const {
  absl::MutexLock lock(&mu_);
  return region_.used;
}

bool MountJournal::broken() const {
  absl::MutexLock lock(&mu_);
  return broken_;
}

}  // namespace fusehost
