// BackendChannel's answers: results matched to their ops, ops of a message
// that got no answer failed with the errno that fits, or sent again on a new
// connection when that is safe, and handles of a restarted backend reopened.

#include <cerrno>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "daemon/pipeline/backend_channel.h"
#include "daemon/pipeline/backend_channel_call.h"
#include "daemon/pipeline/broken_connection.h"

namespace fusehost {
namespace {

// The errno of an op whose message got no answer: one that changes
// something and was sent may have been applied, and must not look as if it
// never reached the backend.
int UnansweredErrno(const v1::Op& op, const grpc::Status& status, bool sent) {
  if (status.ok()) return EIO;
  if (sent && status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      !Repeatable(op)) {
    return EIO;
  }
  return ErrnoForStatus(status);
}

}  // namespace

int ErrnoForStatus(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ETIMEDOUT;
    case grpc::StatusCode::UNAVAILABLE:
      return ENOTCONN;
    case grpc::StatusCode::CANCELLED:
      return ECANCELED;
    default:
      // Not ENOSYS for UNIMPLEMENTED: the kernel would remember it and never
      // send that operation again on this mount.
      return EIO;
  }
}

void BackendChannel::Fail(Call* call, int posix_errno) {
  grpc::Status status(posix_errno == ECANCELED ? grpc::StatusCode::CANCELLED
                                               : grpc::StatusCode::UNAVAILABLE,
                      "no connection to the backend");
  Finish(call, status);
}

bool BackendChannel::RetryOnNewConnection(Call* call,
                                          const grpc::Status& status) {
  // A connection breaks when its backend restarts or the network drops it.
  // Ops of a message in flight that change nothing wait for a new
  // connection instead: a short stall rather than ENOTCONN. A few times,
  // since a backend that is still going away may take a connection and
  // drop it. The others fail with EIO: they may have been applied. (A plain
  // TCP channel is remade by gRPC itself: the ops go again on it, waiting
  // for it to be ready.)
  constexpr int kMaxRetries = 4;
  if (call->retries >= kMaxRetries ||
      status.error_code() != grpc::StatusCode::UNAVAILABLE ||
      (!RemakesConnections() && !call->started_connected)) {
    return false;
  }
  const int n = call->request.ops_size();
  std::vector<bool> again(n);
  bool any = false;
  for (int i = 0; i < n; ++i) {
    const v1::Op& op = call->request.ops(i);
    // An op that names an earlier op's handle cannot go without it.
    again[i] =
        op.fh_from_op() == 0 &&
        (Repeatable(op) || (op.has_flush() && call->tokens[i].count == 1 &&
                            handles_.ReadOnly(call->tokens[i].fh[0])));
    any = any || again[i];
  }
  if (!any) return false;
  auto owned = std::make_unique<Call>();
  Call* next = owned.get();
  next->request.set_mount_id(call->request.mount_id());
  next->request.set_in_order(call->request.in_order());
  next->retries = call->retries + 1;
  next->reopened = std::move(call->reopened);
  std::vector<int> lost;
  for (int i = 0; i < n; ++i) {
    if (!again[i]) {
      lost.push_back(i);
      continue;
    }
    next->request.add_ops()->Swap(call->request.mutable_ops(i));
    next->done.push_back(std::move(call->done[i]));
    next->check.push_back(std::move(call->check[i]));
    next->tokens.push_back(call->tokens[i]);
    next->reroutes.push_back(call->reroutes[i]);
  }
  if (options_.stats != nullptr && !lost.empty()) {
    options_.stats->RecordBackendMessage(static_cast<int>(lost.size()), true);
  }
  for (int i : lost) {
    v1::OpResult failed = ErrorResult(call->request.ops(i).id(), EIO);
    if (call->check[i]) call->check[i](&failed);
    call->done[i](failed);
  }
  next->sent = std::move(call->sent);
  bool stopping;
  std::shared_ptr<Connection> remade_by_grpc;
  {
    absl::MutexLock lock(&mu_);
    if (RemakesConnections() && call->conn != nullptr && call->conn == conn_) {
      retired_.push_back(std::move(conn_));
      conn_.reset();
    }
    auto it = in_flight_.find(call);
    std::unique_ptr<Call> old = std::move(it->second);
    in_flight_.erase(it);
    in_flight_.emplace(next, std::move(owned));
    stopping = stopping_;
    if (!stopping && RemakesConnections()) {
      waiting_.emplace_back(next, CallDeadline(*next));
      want_dial_ = true;
    } else if (!stopping) {
      remade_by_grpc = conn_;
    }
    if (cancelling_ > 0) {
      // CancelAll() may still hold a pointer to the old call.
      finished_while_cancelling_.push_back(std::move(old));
    }
  }
  if (stopping) {
    Fail(next, ECANCELED);
  } else if (remade_by_grpc != nullptr) {
    next->context.set_wait_for_ready(true);
    Start(next, std::move(remade_by_grpc));
  }
  return true;
}

void BackendChannel::Finish(Call* call, const grpc::Status& status) {
  if (RetryOnNewConnection(call, status)) return;
  const int n = call->request.ops_size();
  if (options_.stats != nullptr) {
    options_.stats->RecordBackendMessage(n, !status.ok(),
                                         call->session != nullptr);
  }
  // Match results to ops by id; the backend may answer in any order, and
  // anything missing, duplicated or unknown is its bug: EIO for those ops.
  absl::flat_hash_map<uint64_t, int> position;
  position.reserve(n);
  for (int i = 0; i < n; ++i) position[call->request.ops(i).id()] = i;
  std::vector<bool> answered(n, false);
  // Ops the backend refused for carrying an earlier instance's handle: it
  // restarted since; they go again once their handles are reopened.
  std::vector<RoutedOp> stale;
  if (status.ok()) {
    const uint64_t instance = call->response->instance();
    if (handles_.SawInstance(instance) && options_.on_new_instance) {
      options_.on_new_instance(instance);
    }
    for (v1::OpResult& r : *call->response->mutable_results()) {
      auto it = position.find(r.id());
      if (it == position.end() || answered[it->second]) continue;
      const int i = it->second;
      answered[i] = true;
      v1::Op* op = call->request.mutable_ops(i);
      if (call->reopened) {
        call->reopened(r, instance);
        continue;
      }
      if (r.posix_errno() == EBADF && op->handle_instance() != 0 &&
          instance != 0 && op->handle_instance() != instance &&
          call->tokens[i].count > 0) {
        if (EndsHandle(*op)) {
          // Released with the instance that held it.
          v1::OpResult released = ErrorResult(r.id(), 0);
          released.mutable_empty();
          call->done[i](released);
          continue;
        }
        RoutedOp again{PendingOp{}, call->reroutes[i]};
        again.pending.op.Swap(op);
        SetHandles(&again.pending.op, call->tokens[i]);
        again.pending.op.clear_handle_instance();
        again.pending.done = std::move(call->done[i]);
        again.pending.check = std::move(call->check[i]);
        stale.push_back(std::move(again));
        continue;
      }
      if (call->check[i]) call->check[i](&r);
      handles_.IssueTokens(*op, instance, &r);
      handles_.NoteResult(*op, call->tokens[i], &r);
      call->done[i](r);
    }
  }
  const bool sent = call->conn != nullptr;
  for (int i = 0; i < n; ++i) {
    if (answered[i]) continue;
    const v1::Op& op = call->request.ops(i);
    v1::OpResult failed =
        ErrorResult(op.id(), UnansweredErrno(op, status, sent));
    if (call->reopened) {
      call->reopened(failed, 0);
      continue;
    }
    if (call->check[i]) call->check[i](&failed);
    call->done[i](failed);
  }
  if (!stale.empty()) Route(std::move(stale), nullptr);
  if (call->sent) call->sent();
  absl::MutexLock lock(&mu_);
  // A connection the daemon made is not remade by gRPC: once it fails, the
  // next message gets a new one.
  if (RemakesConnections() && call->conn != nullptr && call->conn == conn_ &&
      status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    retired_.push_back(std::move(conn_));
    conn_.reset();
  }
  auto it = in_flight_.find(call);
  std::unique_ptr<Call> owned = std::move(it->second);
  in_flight_.erase(it);
  if (cancelling_ > 0) {
    // CancelAll() may still hold a pointer to this call.
    finished_while_cancelling_.push_back(std::move(owned));
  } else {
    // Destroyed here, under the lock, so that WaitIdle() cannot return while
    // any part of the call is still alive.
    owned.reset();
  }
}

}  // namespace fusehost
