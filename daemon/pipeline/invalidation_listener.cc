#include "daemon/pipeline/invalidation_listener.h"

#include <pthread.h>

#include <cstdio>

#include "absl/time/time.h"

namespace fusehost {

InvalidationListener::InvalidationListener(Options options)
    : options_(std::move(options)) {}

InvalidationListener::~InvalidationListener() { Stop(); }

void InvalidationListener::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "backend-notices");  // for top -H
    Run();
  });
}

void InvalidationListener::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool InvalidationListener::AwaitFirstAttempt(absl::Duration limit) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&first_attempt_done_), limit);
}

void InvalidationListener::FirstAttemptEnded() {
  absl::MutexLock lock(&mu_);
  first_attempt_done_ = true;
}

void InvalidationListener::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = &context;
    }
    v1::InvalidationsRequest request;
    request.set_mount_id(options_.mount_id);
    std::shared_ptr<BackendChannel::Connection> conn =
        options_.channel->StreamConnection(absl::Seconds(1));
    if (conn == nullptr) {
      FirstAttemptEnded();
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_) return;
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
      continue;
    }
    std::unique_ptr<grpc::ClientReader<v1::Invalidation>> reader =
        conn->stub->Invalidations(&context, request);
    // The server's headers mean the stream is registered there: from now on
    // no change is missed, so what was cached before can be dropped.
    reader->WaitForInitialMetadata();
    options_.on_open();
    FirstAttemptEnded();
    v1::Invalidation notice;
    bool got_any = false;
    while (reader->Read(&notice)) {
      got_any = true;
      options_.on_notice(notice);
    }
    grpc::Status status = reader->Finish();
    FirstAttemptEnded();  // when the stream was refused before it opened
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_) return;
    }
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) return;
    if (got_any) backoff = absl::Milliseconds(100);
    // Sleep, but wake at once for Stop().
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace fusehost
