#include "daemon/control/control_service.h"
#include "common/log_line.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

void Audit(const PeerCredentials& caller, const std::string& what,
           const absl::Status& outcome, const std::string& detail = "") {
  Log("audit: %s: %s: %s%s",
          DescribePeer(caller).c_str(), what.c_str(),
          outcome.ok() ? "allowed" : "refused: ",
          outcome.ok() ? detail.c_str()
                       : std::string(outcome.message()).c_str());
}

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

}  // namespace

class ControlService::InFlight {
 public:
  InFlight(ControlService* service, uid_t uid) : service_(service), uid_(uid) {}
  ~InFlight() {
    absl::MutexLock lock(&service_->mu_);
    if (--service_->in_flight_[uid_] == 0) service_->in_flight_.erase(uid_);
  }

 private:
  ControlService* const service_;
  const uid_t uid_;
};

absl::StatusOr<std::unique_ptr<ControlService::InFlight>> ControlService::Admit(
    const grpc::ServerContext& context, PeerCredentials* caller) {
  absl::StatusOr<PeerCredentials> who = options_.caller_of(context);
  if (!who.ok()) return who.status();
  *caller = *who;
  absl::MutexLock lock(&mu_);
  size_t& n = in_flight_[caller->uid];
  const size_t limit = options_.max_requests_in_flight_per_uid;
  if (limit != 0 && !caller->is_root() && n >= limit) {
    if (n == 0) in_flight_.erase(caller->uid);
    return absl::ResourceExhaustedError(absl::StrCat(
        "you already have ", limit,
        " requests in progress; try again when one is done"));
  }
  ++n;
  return std::make_unique<InFlight>(this, caller->uid);
}

grpc::Status ControlService::Mount(grpc::ServerContext* context,
                                   const v1::MountRequest* request,
                                   v1::MountReply* reply) {
  PeerCredentials who;
  absl::StatusOr<std::unique_ptr<InFlight>> admitted = Admit(*context, &who);
  if (!admitted.ok()) {
    if (absl::IsResourceExhausted(admitted.status())) {
      Audit(who, "request", admitted.status());
    }
    return ToGrpc(admitted.status());
  }
  const PeerCredentials* caller = &who;
  std::string what = absl::StrCat("mount ", request->backend(), " at ",
                                  request->mountpoint());
  absl::StatusOr<uint64_t> id = [&]() -> absl::StatusOr<uint64_t> {
    if (request->backend().empty()) {
      return absl::InvalidArgumentError("no backend address given");
    }
    absl::StatusOr<MountGrant> grant = options_.authorizer->AuthorizeMount(
        *caller, request->backend(), request->mountpoint(),
        request->options());
    if (!grant.ok()) return grant.status();
    return options_.manager->Mount(request->backend(), *std::move(grant));
  }();
  Audit(*caller, what, id.status(),
        id.ok() ? absl::StrCat(" (mount ", *id, ")") : "");
  if (!id.ok()) return ToGrpc(id.status());
  reply->set_mount_id(*id);
  return grpc::Status::OK;
}

grpc::Status ControlService::Unmount(grpc::ServerContext* context,
                                     const v1::UnmountRequest* request,
                                     v1::UnmountReply*) {
  PeerCredentials who;
  absl::StatusOr<std::unique_ptr<InFlight>> admitted = Admit(*context, &who);
  if (!admitted.ok()) {
    if (absl::IsResourceExhausted(admitted.status())) {
      Audit(who, "request", admitted.status());
    }
    return ToGrpc(admitted.status());
  }
  const PeerCredentials* caller = &who;
  std::string what = absl::StrCat("unmount ", request->mountpoint(),
                                  request->lazy() ? " (lazy)" : "");
  absl::Status st = [&]() -> absl::Status {
    absl::StatusOr<std::string> path =
        options_.authorizer->ResolveAsCaller(*caller, request->mountpoint());
    if (!path.ok()) return path.status();
    std::optional<uid_t> owner;
    if (!caller->is_root()) owner = caller->uid;
    return options_.manager->Unmount(*path, request->lazy(), owner);
  }();
  Audit(*caller, what, st);
  return ToGrpc(st);
}

grpc::Status ControlService::List(grpc::ServerContext* context,
                                  const v1::ListRequest*,
                                  v1::ListReply* reply) {
  PeerCredentials who;
  absl::StatusOr<std::unique_ptr<InFlight>> admitted = Admit(*context, &who);
  if (!admitted.ok()) {
    if (absl::IsResourceExhausted(admitted.status())) {
      Audit(who, "request", admitted.status());
    }
    return ToGrpc(admitted.status());
  }
  const PeerCredentials* caller = &who;
  for (const MountStatus& s : options_.manager->List()) {
    if (!Authorizer::MayManage(*caller, s.owner_uid)) continue;
    v1::MountInfo* info = reply->add_mounts();
    info->set_mount_id(s.mount_id);
    info->set_mountpoint(s.mountpoint);
    info->set_backend(s.backend);
    info->set_options(s.options);
    info->set_backend_name(s.backend_name);
    info->set_owner_uid(s.owner_uid);
    info->set_owner_gid(s.owner_gid);
    info->set_state(s.state);
    info->set_backend_identity(s.backend_identity);
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::Stats(grpc::ServerContext* context,
                                   const v1::StatsRequest* request,
                                   v1::StatsReply* reply) {
  PeerCredentials who;
  absl::StatusOr<std::unique_ptr<InFlight>> admitted = Admit(*context, &who);
  if (!admitted.ok()) {
    if (absl::IsResourceExhausted(admitted.status())) {
      Audit(who, "request", admitted.status());
    }
    return ToGrpc(admitted.status());
  }
  const PeerCredentials* caller = &who;
  std::string wanted;
  if (!request->mountpoint().empty()) {
    absl::StatusOr<std::string> path =
        options_.authorizer->ResolveAsCaller(*caller, request->mountpoint());
    if (!path.ok()) {
      Audit(*caller, absl::StrCat("stats ", request->mountpoint()),
            path.status());
      return ToGrpc(path.status());
    }
    wanted = *path;
  }
  bool found = false;
  for (const MountStatsEntry& e : options_.manager->Stats()) {
    if (!wanted.empty() && e.status.mountpoint != wanted) continue;
    found = true;
    if (!Authorizer::MayManage(*caller, e.status.owner_uid)) {
      if (wanted.empty()) continue;
      absl::Status refused = absl::PermissionDeniedError(absl::StrCat(
          wanted, " is not your mount (it belongs to uid ",
          e.status.owner_uid, ")"));
      Audit(*caller, absl::StrCat("stats ", wanted), refused);
      return ToGrpc(refused);
    }
    v1::MountStatsInfo* out = reply->add_mounts();
    out->set_mount_id(e.status.mount_id);
    out->set_mountpoint(e.status.mountpoint);
    out->set_backend(e.status.backend);
    out->set_owner_uid(e.status.owner_uid);
    out->set_kernel_requests(e.stats.kernel_requests);
    for (const MountStats::OpStats& op : e.stats.ops) {
      v1::OpStats* o = out->add_ops();
      o->set_op(op.name);
      o->set_count(op.count);
      o->set_errors(op.errors);
      o->set_p50_us(Micros(op.p50));
      o->set_p90_us(Micros(op.p90));
      o->set_p99_us(Micros(op.p99));
    }
    for (const MountStats::CacheStats& c : e.stats.caches) {
      v1::CacheStats* o = out->add_caches();
      o->set_cache(c.name);
      o->set_hits(c.hits);
      o->set_misses(c.misses);
    }
    out->set_backend_messages(e.stats.backend_messages);
    out->set_backend_ops(e.stats.backend_ops);
    out->set_backend_session_messages(e.stats.backend_session_messages);
    out->set_backend_errors(e.stats.backend_errors);
    out->set_backend_invalid(e.stats.backend_invalid);
    out->set_cache_entries(e.stats.cache_entries);
    out->set_cache_limit(e.stats.cache_limit);
    out->set_cache_bytes(e.stats.cache_bytes);
    out->set_cache_bytes_limit(e.stats.cache_bytes_limit);
    out->set_passthrough_opens(e.stats.passthrough_opens);
    out->set_passthrough_refused(e.stats.passthrough_refused);
    out->set_backing_files(e.stats.backing_files);
    out->set_daemon_opens(e.stats.daemon_opens);
    out->set_daemon_changes(e.stats.daemon_changes);
    out->set_daemon_lookups(e.stats.daemon_lookups);
    out->set_kernel_nodes(e.stats.kernel_nodes);
    out->set_listings_prefetched(e.stats.listings_prefetched);
    out->set_contents_fetched_ahead(e.stats.contents_fetched_ahead);
    out->set_opens_answered_ahead(e.stats.opens_answered_ahead);
    out->set_uring_requests(e.stats.uring_requests);
    out->set_written_behind(e.stats.written_behind);
    out->set_write_behind_failed(e.stats.write_behind_failed);
    out->set_write_behind_queued(e.stats.write_behind_queued);
  }
  if (!wanted.empty() && !found) {
    return ToGrpc(absl::NotFoundError(
        absl::StrCat(request->mountpoint(), " is not mounted by fuse-hostd")));
  }
  return grpc::Status::OK;
}

}  // namespace fusehost
