#include "daemon/pipeline/backend_greeter.h"

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/log_line.h"

namespace fusehost {

BackendGreeter::BackendGreeter(Options options)
    : options_(std::move(options)),
      greeted_instance_(options_.first_reply.instance()),
      newest_instance_(options_.first_reply.instance()) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "backend-greeter");  // for top -H
    Run();
  });
}

BackendGreeter::~BackendGreeter() { Stop(); }

void BackendGreeter::NewInstance(uint64_t instance) {
  if (instance == 0) return;  // a backend that predates instances
  absl::MutexLock lock(&mu_);
  newest_instance_ = instance;
}

void BackendGreeter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t BackendGreeter::greeted() const {
  absl::MutexLock lock(&mu_);
  return greeted_;
}

void BackendGreeter::Run() {
  for (;;) {
    uint64_t instance;
    {
      absl::MutexLock lock(&mu_);
      auto due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || newest_instance_ != greeted_instance_;
      };
      mu_.Await(absl::Condition(&due));
      if (stopping_) return;
      instance = newest_instance_;
      // Greeted once, whatever the answer: a run that cannot answer Init
      // is not asked again and again; the next run is.
      greeted_instance_ = instance;
    }
    absl::StatusOr<v1::InitReply> reply =
        options_.channel->Init(options_.request);
    // A backend that reports a new run with every reply must not fill the
    // log: the first lines of each mount are logged, the rest only counted
    // (greeted()).
    const bool log = ++logged_ <= kGreetingsLogged;
    if (log && logged_ == kGreetingsLogged) {
      Log("%s: the backend reported %llu new runs; further ones are not "
          "logged", options_.log_name.c_str(),
          static_cast<unsigned long long>(logged_));
    }
    if (!reply.ok()) {
      if (log) Log("%s: the backend's new run (instance %llu) did not answer Init: %s",
          options_.log_name.c_str(), static_cast<unsigned long long>(instance),
          std::string(reply.status().message()).c_str());
      continue;
    }
    if (reply->posix_errno() != 0 && log) {
      Log("%s: the backend's new run refused the mount (%s); its operations "
          "go on being sent to it",
          options_.log_name.c_str(), std::strerror(reply->posix_errno()));
    }
    if (options_.on_greeted) options_.on_greeted(*reply);
    std::string differ = Differences(*reply);
    if (!differ.empty() && log) {
      Log("%s: the backend's new run answers Init differently (%s); the "
          "mount keeps what it was made with",
          options_.log_name.c_str(), differ.c_str());
    }
    absl::MutexLock lock(&mu_);
    ++greeted_;
  }
}

std::string BackendGreeter::Differences(const v1::InitReply& reply) const {
  const v1::InitReply& first = options_.first_reply;
  std::vector<const char*> differ;
  auto compare = [&differ](bool same, const char* what) {
    if (!same) differ.push_back(what);
  };
  compare(reply.posix_locks() == first.posix_locks(), "posix_locks");
  compare(reply.flock_locks() == first.flock_locks(), "flock_locks");
  compare(reply.posix_acl() == first.posix_acl(), "posix_acl");
  compare(reply.ioctl() == first.ioctl(), "ioctl");
  compare(reply.no_xattrs() == first.no_xattrs(), "no_xattrs");
  compare(std::equal(reply.unsupported_xattr_prefixes().begin(),
                     reply.unsupported_xattr_prefixes().end(),
                     first.unsupported_xattr_prefixes().begin(),
                     first.unsupported_xattr_prefixes().end()),
          "unsupported_xattr_prefixes");
  compare(reply.default_ttl_ms() == first.default_ttl_ms(), "default_ttl_ms");
  compare(reply.passthrough() == first.passthrough(), "passthrough");
  return absl::StrJoin(differ, ", ");
}

}  // namespace fusehost
