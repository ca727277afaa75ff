#include "daemon/survival/systemd_fd_store.h"

#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log_line.h"
#include "daemon/survival/keeper_protocol.h"

namespace fusehost {
namespace {

bool FileOf(int fd, dev_t* dev, ino_t* ino) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return true;
}

}  // namespace

std::vector<NamedFd> TakeSystemdDescriptors() {
  char** names = nullptr;
  int n = sd_listen_fds_with_names(/*unset_environment=*/1, &names);
  std::vector<NamedFd> out;
  for (int i = 0; i < n; ++i) {
    NamedFd f;
    f.fd = SD_LISTEN_FDS_START + i;
    if (names != nullptr && names[i] != nullptr) f.name = names[i];
    out.push_back(std::move(f));
  }
  if (names != nullptr) {
    for (int i = 0; names[i] != nullptr; ++i) free(names[i]);
    free(names);
  }
  return out;
}

bool SystemdFdStore::ParseName(const std::string& name, std::string* key,
                               size_t* index, uint64_t* seq) {
  size_t last = name.rfind('.');
  if (last == std::string::npos || last == 0) return false;
  size_t middle = name.rfind('.', last - 1);
  if (middle == std::string::npos) return false;
  *key = name.substr(0, middle);
  return IsKeeperKey(*key) &&
         absl::SimpleAtoi(name.substr(middle + 1, last - middle - 1), index) &&
         *index < kMaxKeeperFds &&
         absl::SimpleAtoi(name.substr(last + 1), seq);
}

SystemdFdStore::SystemdFdStore(std::vector<NamedFd>* passed) {
  absl::MutexLock lock(&mu_);
  // Per key and index, the descriptor with the highest SEQ.
  struct Best {
    uint64_t seq = 0;
    NamedFd fd;
  };
  std::map<std::string, std::map<size_t, Best>> best;
  std::vector<NamedFd> others;
  std::vector<NamedFd> stale;
  for (NamedFd& f : *passed) {
    std::string key;
    size_t index;
    uint64_t seq;
    if (!ParseName(f.name, &key, &index, &seq)) {
      others.push_back(f);
      continue;
    }
    seq_ = std::max(seq_, seq);
    Best& b = best[key][index];
    if (b.fd.fd < 0 || seq > b.seq) {
      if (b.fd.fd >= 0) stale.push_back(b.fd);
      b = Best{seq, f};
    } else {
      stale.push_back(f);
    }
  }
  *passed = std::move(others);
  for (NamedFd& f : stale) {
    // A put whose old descriptor was not removed yet when the daemon died.
    Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", f.name), -1).IgnoreError();
    close(f.fd);
  }
  for (auto& [key, by_index] : best) {
    Entry entry;
    entry.key = key;
    std::vector<Stored>& stored = stored_[key];
    for (auto& [index, b] : by_index) {
      // Indexes are 0.. without gaps; a gap means a torn put: the entry
      // keeps what came before it.
      if (index != entry.fds.size()) {
        close(b.fd.fd);
        continue;
      }
      Stored s;
      s.name = b.fd.name;
      FileOf(b.fd.fd, &s.dev, &s.ino);
      stored.push_back(s);
      entry.fds.emplace_back(b.fd.fd);
    }
    passed_.push_back(std::move(entry));
  }
}

SystemdFdStore::~SystemdFdStore() = default;

absl::Status SystemdFdStore::Notify(const std::string& state, int fd) {
  int r = sd_pid_notify_with_fds(0, /*unset_environment=*/0, state.c_str(),
                                 fd >= 0 ? &fd : nullptr, fd >= 0 ? 1 : 0);
  if (r > 0) return absl::OkStatus();
  if (r == 0) {
    return absl::FailedPreconditionError(
        "not run by systemd (no NOTIFY_SOCKET): no descriptor store");
  }
  return absl::InternalError(
      absl::StrCat("sd_pid_notify_with_fds: ", std::strerror(-r)));
}

absl::Status SystemdFdStore::RemoveNamed(const std::string& name) {
  return Notify(absl::StrCat("FDSTOREREMOVE=1\nFDNAME=", name), -1);
}

absl::Status SystemdFdStore::Put(const std::string& key,
                                 const std::vector<int>& fds) {
  if (!IsKeeperKey(key) || fds.empty() || fds.size() > kMaxKeeperFds) {
    return absl::InvalidArgumentError(absl::StrCat("cannot store ", key));
  }
  absl::MutexLock lock(&mu_);
  const uint64_t seq = ++seq_;
  std::vector<Stored>& stored = stored_[key];
  std::vector<Stored> now;
  std::vector<std::string> replaced;
  for (size_t i = 0; i < fds.size(); ++i) {
    Stored s;
    if (!FileOf(fds[i], &s.dev, &s.ino)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fstat: ", std::strerror(errno)));
    }
    if (i < stored.size() && stored[i].dev == s.dev &&
        stored[i].ino == s.ino) {
      now.push_back(stored[i]);  // the same file: systemd has it
      continue;
    }
    s.name = absl::StrCat(key, ".", i, ".", seq);
    absl::Status sent =
        Notify(absl::StrCat("FDSTORE=1\nFDNAME=", s.name), fds[i]);
    if (!sent.ok()) return sent;
    if (i < stored.size()) replaced.push_back(stored[i].name);
    now.push_back(s);
  }
  for (size_t i = fds.size(); i < stored.size(); ++i) {
    replaced.push_back(stored[i].name);
  }
  for (const std::string& name : replaced) {
    RemoveNamed(name).IgnoreError();
  }
  stored = std::move(now);
  return absl::OkStatus();
}

absl::Status SystemdFdStore::Remove(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = stored_.find(key);
  if (it == stored_.end()) return absl::OkStatus();
  absl::Status first = absl::OkStatus();
  for (const Stored& s : it->second) {
    absl::Status st = RemoveNamed(s.name);
    if (first.ok()) first = st;
  }
  stored_.erase(it);
  return first;
}

absl::StatusOr<std::vector<DescriptorStore::Entry>>
SystemdFdStore::TakeAll() {
  absl::MutexLock lock(&mu_);
  return std::move(passed_);
}

}  // namespace fusehost
