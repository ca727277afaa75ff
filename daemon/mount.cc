#include "daemon/mount.h"

#include <sys/stat.h>

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/mounting/kernel_mount.h"
#include "common/paths.h"
#include "daemon/mounting/read_ahead.h"

namespace fusehost {

absl::StatusOr<std::unique_ptr<Mount>> Mount::Create(MountSpec spec) {
  std::unique_ptr<Mount> m(new Mount(std::move(spec)));
  absl::StatusOr<MountOptions> options = ParseMountOptions(m->spec_.options_text);
  if (!options.ok()) return options.status();
  m->options_ = *std::move(options);

  BackendChannel::Options channel_options;
  channel_options.target = m->spec_.dial_target.empty() ? m->spec_.backend
                                                        : m->spec_.dial_target;
  channel_options.mount_id = m->spec_.mount_id;
  channel_options.call_timeout = m->options_.call_timeout;
  channel_options.stats = &m->stats_;
  m->channel_ = std::make_unique<BackendChannel>(channel_options);

  v1::InitRequest init;
  init.set_mount_id(m->spec_.mount_id);
  init.set_mountpoint(m->spec_.mountpoint);
  init.set_protocol_version(1);
  for (const std::string& o : m->options_.backend_options) init.add_options(o);
  absl::StatusOr<v1::InitReply> reply = m->channel_->Init(init);
  if (!reply.ok()) return reply.status();
  if (reply->posix_errno() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend ", m->spec_.backend, " refused the mount: ",
                     std::strerror(reply->posix_errno())));
  }
  m->backend_name_ = reply->name();

  KernelMountRequest request;
  request.mountpoint = m->spec_.mountpoint;
  request.mountpoint_fd = m->spec_.mountpoint_fd;
  request.source =
      m->options_.fsname.empty() ? m->spec_.backend : m->options_.fsname;
  request.owner_uid = m->spec_.owner_uid;
  request.owner_gid = m->spec_.owner_gid;
  request.options = &m->options_;
  absl::StatusOr<KernelMount> km = MountFuse(request);
  if (!km.ok()) {
    m->channel_->Destroy();
    return km.status();
  }
  m->device_ = km->device;

  m->nodes_ = std::make_unique<NodeTable>();
  m->policy_ = MakeCachePolicy(m->options_, *reply);
  m->batcher_ = std::make_unique<Batcher>(Batcher::Options(), m->channel_.get(),
                                          m->channel_.get());
  OpTransport* transport = m->batcher_.get();
  Mount* self = m.get();
  if (m->options_.cache_entries > 0) {
    MetadataCache::Options cache_options;
    cache_options.max_entries = m->options_.cache_entries;
    m->cache_ = std::make_unique<MetadataCache>(cache_options);
    CachingTransport::Options caching;
    caching.policy = m->policy_;
    caching.cache = m->cache_.get();
    caching.next = m->batcher_.get();
    caching.stats = &m->stats_;
    // Other names of a hard-linked file changed: the kernel caches their
    // attributes per name.
    caching.links_changed = [self](const std::vector<std::string>& paths) {
      if (self->adapter_ == nullptr) return;
      for (const std::string& p : paths) self->adapter_->InvalidatePath(p);
    };
    m->caching_ = std::make_unique<CachingTransport>(std::move(caching));
    transport = m->caching_.get();
  }

  KernelAdapter::Options adapter_options;
  adapter_options.mount_id = m->spec_.mount_id;
  adapter_options.nodes = m->nodes_.get();
  adapter_options.transport = transport;
  adapter_options.mount_options = &m->options_;
  adapter_options.cache = m->cache_.get();
  adapter_options.stats = &m->stats_;
  adapter_options.policy = m->policy_;
  adapter_options.posix_locks = reply->posix_locks();
  adapter_options.flock_locks = reply->flock_locks();
  if (m->options_.read_ahead_kb != 0) {
    adapter_options.after_init = [self] {
      absl::Status st =
          SetReadAhead(self->device_, self->options_.read_ahead_kb);
      if (!st.ok()) {
        fprintf(stderr, "fuse-hostd: %s: read-ahead left as it is: %s\n",
                self->spec_.mountpoint.c_str(),
                std::string(st.message()).c_str());
      }
    };
  }
  adapter_options.fuse_fd = km->fuse_fd;
  adapter_options.on_session_end = [self] {
    if (self->spec_.on_session_end) self->spec_.on_session_end(self->spec_.mount_id);
  };
  absl::StatusOr<std::unique_ptr<KernelAdapter>> adapter =
      KernelAdapter::Start(std::move(adapter_options));
  if (!adapter.ok()) {
    UnmountFuse(m->spec_.mountpoint, /*lazy=*/true, m->device_).IgnoreError();
    m->channel_->Destroy();
    return adapter.status();
  }
  m->adapter_ = *std::move(adapter);

  InvalidationListener::Options listener;
  listener.stub = m->channel_->stub();
  listener.mount_id = m->spec_.mount_id;
  listener.on_open = [self] {
    if (self->cache_ != nullptr) self->cache_->Clear();
    self->adapter_->InvalidateSubtree("/");
  };
  listener.on_notice = [self](const v1::Invalidation& notice) {
    self->ApplyInvalidation(notice);
  };
  m->listener_ = std::make_unique<InvalidationListener>(std::move(listener));
  m->listener_->Start();
  return m;
}

CachePolicy MakeCachePolicy(const MountOptions& options,
                            const v1::InitReply& reply) {
  // The backend's default, else one second: long enough for `ls -l` and
  // `find` to be answered from memory, short enough for a backend that
  // changes behind the daemon's back and pushes no invalidations.
  absl::Duration backend = reply.default_ttl_ms() != 0
                               ? absl::Milliseconds(reply.default_ttl_ms())
                               : absl::Seconds(1);
  CachePolicy policy;
  policy.attr_ttl = options.attr_timeout.value_or(backend);
  policy.listing_ttl = policy.attr_ttl;
  // Absence is only remembered when someone asked for it: the backend by
  // naming a lifetime, or the mount option.
  policy.negative_ttl = options.negative_timeout.value_or(
      reply.default_ttl_ms() != 0 ? backend : absl::ZeroDuration());
  return policy;
}

void Mount::ApplyInvalidation(const v1::Invalidation& notice) {
  const std::string& path = notice.path();
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) {
    fprintf(stderr, "fuse-hostd: %s: ignored an invalidation with a bad path\n",
            spec_.mountpoint.c_str());
    return;
  }
  const std::string parent = ParentPath(path);
  if (cache_ != nullptr) {
    if (notice.kind() == v1::Invalidation::CHANGED) {
      cache_->DropAttr(path);
      cache_->DropListing(path);
      cache_->DropXattrs(path);  // xattr changes are reported as CHANGED too
    } else {
      cache_->DropSubtree(path);
    }
    cache_->DropAttr(parent);
    cache_->DropListing(parent);
  }
  if (notice.kind() == v1::Invalidation::SUBTREE) {
    adapter_->InvalidateSubtree(path);
  } else {
    adapter_->InvalidatePath(path);
  }
  // The parent's listing and times changed too.
  uint64_t parent_node = nodes_->Find(parent);
  if (parent_node != 0) adapter_->InvalidateInode(parent_node, /*data=*/true);
}

MountStats::Snapshot Mount::Snap() const {
  MountStats::Snapshot s = stats_.Snap();
  if (cache_ != nullptr) {
    s.cache_entries = cache_->size();
    s.cache_limit = cache_->max_entries();
  }
  return s;
}

absl::Status Mount::Unmount(bool lazy) {
  absl::Status st = UnmountFuse(spec_.mountpoint, lazy, device_);
  if (st.ok()) detached_.store(true);
  return st;
}

void Mount::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (listener_ != nullptr) listener_->Stop();
  if (adapter_ != nullptr) {
    if (!adapter_->session_ended()) {
      if (!detached_.load() && IsFuseMountpoint(spec_.mountpoint)) {
        UnmountFuse(spec_.mountpoint, /*lazy=*/true, device_).IgnoreError();
        detached_.store(true);
      }
      // Files may still be open on the detached mount; they get ENOTCONN.
      AbortFuseConnection(device_);
    }
    adapter_->Stop();
  }
  if (channel_ != nullptr) channel_->Destroy();
}

Mount::~Mount() { Shutdown(); }

}  // namespace fusehost
