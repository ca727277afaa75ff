#include "daemon/mount.h"
#include "common/log_line.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "daemon/mounting/kernel_mount.h"
#include "daemon/tls/tls_channel_credentials.h"
#include "daemon/tls/tls_files.h"

namespace fusehost {
namespace {

// Deadline of reading one certificate file as the user.
constexpr absl::Duration kTlsReadTimeout = absl::Seconds(10);

// How the channel reaches a TCP backend: TLS with the files of the
// options, or plain TCP when asked for by name. Unix-socket backends take
// neither option (the daemon checks who serves them another way).
absl::Status ConfigureTransport(const MountSpec& spec,
                                const MountOptions& options,
                                BackendChannel::Options* channel,
                                std::shared_ptr<PeerIdentity>* identity) {
  if (spec.dialer != nullptr) {
    if (options.uses_tls() || options.insecure) {
      return absl::InvalidArgumentError(absl::StrCat(
          "backend ", spec.backend, " is a Unix socket: options tls_* and "
          "insecure are for TCP backends"));
    }
    return absl::OkStatus();
  }
  if (options.insecure) return absl::OkStatus();
  if (!options.uses_tls()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backend ", spec.backend, " is reached over TCP: give tls_ca=FILE "
        "(and tls_server_name=, tls_cert=, tls_key= as needed) for TLS, or "
        "the option insecure for plain TCP, which anyone on the network can "
        "read and impersonate"));
  }
  TlsFilePaths paths{options.tls_ca, options.tls_cert, options.tls_key};
  UserIdentity reader = spec.tls_reader;
  // Read now, so that a missing, unreadable or exposed file is the
  // mounting user's error message; read again for every new channel.
  absl::StatusOr<TlsMaterial> material =
      ReadTlsMaterial(reader, paths, kTlsReadTimeout);
  if (!material.ok()) return material.status();
  absl::Status usable = CheckTlsMaterial(*material);
  if (!usable.ok()) return usable;
  *identity = std::make_shared<PeerIdentity>(spec.backend);
  channel->server_name = options.tls_server_name;
  channel->credentials =
      [reader, paths, pin = *identity]()
      -> absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> {
    absl::StatusOr<TlsMaterial> fresh =
        ReadTlsMaterial(reader, paths, kTlsReadTimeout);
    if (!fresh.ok()) return fresh.status();
    absl::Status ok = CheckTlsMaterial(*fresh);
    if (!ok.ok()) return ok;
    return MakeTlsChannelCredentials(*fresh, pin);
  };
  return absl::OkStatus();
}

}  // namespace

std::string Mount::BackendIdentity() const {
  if (peer_identity_ != nullptr) {
    std::string pinned = peer_identity_->Describe();
    return pinned.empty() ? "tls (not connected yet)" : pinned;
  }
  return OverTcp() ? "insecure" : "";
}

absl::StatusOr<std::unique_ptr<Mount>> Mount::Create(MountSpec spec) {
  return Make(std::move(spec), nullptr);
}

absl::StatusOr<std::unique_ptr<Mount>> Mount::Resume(MountSpec spec,
                                                     KeptMount kept) {
  return Make(std::move(spec), &kept);
}

absl::StatusOr<std::unique_ptr<Mount>> Mount::Make(MountSpec spec,
                                                   KeptMount* kept) {
  std::unique_ptr<Mount> m(new Mount(std::move(spec)));
  absl::StatusOr<MountOptions> options = ParseMountOptions(m->spec_.options_text);
  if (!options.ok()) return options.status();
  m->options_ = *std::move(options);

  BackendChannel::Options channel_options;
  channel_options.target = m->spec_.backend;
  if (std::shared_ptr<BackendDialer> dialer = m->spec_.dialer) {
    channel_options.dial = [dialer] { return dialer->Dial(); };
  }
  absl::Status transport = ConfigureTransport(
      m->spec_, m->options_, &channel_options, &m->peer_identity_);
  if (!transport.ok()) return transport;
  channel_options.mount_id = m->spec_.mount_id;
  channel_options.call_timeout = m->options_.call_timeout;
  channel_options.session = m->options_.session;
  channel_options.keepalive = m->options_.keepalive;
  channel_options.stats = &m->stats_;
  Mount* self = m.get();
  channel_options.on_new_instance = [self](uint64_t instance) {
    // The directory came from the run that is gone: until the new run sends
    // its own, the backend opens every file.
    if (self->root_ != nullptr) self->root_->Drop();
    if (self->greeter_ != nullptr) self->greeter_->NewInstance(instance);
  };
  m->channel_ = std::make_unique<BackendChannel>(channel_options);

  // A resumed mount's tables hold what the kernel holds before anything
  // else happens: the backend's handles are checked against its instance
  // when it answers Init.
  m->nodes_ = std::make_unique<NodeTable>();
  JournalHead head;
  if (kept != nullptr) {
    absl::StatusOr<JournalHead> read = HeadOf(kept->journal);
    if (!read.ok()) return read.status();
    head = *std::move(read);
    if (head.kernel_init.empty()) {
      return absl::DataLossError(
          "the previous daemon died before the kernel's INIT: the "
          "connection cannot be taken up");
    }
    ReplayJournal(kept->journal, m->nodes_.get(), m->channel_->handles(),
                  &m->inherited_backing_);
    kept->journal.clear();
    m->generation_ = head.mount.generation() + 1;
  }

  v1::InitRequest init;
  init.set_mount_id(m->spec_.mount_id);
  init.set_mountpoint(m->spec_.mountpoint);
  init.set_protocol_version(1);
  // FUSE_CAP_POSIX_ACL: every kernel this daemon runs on offers it (4.9+).
  init.set_posix_acl_capable(true);
  for (const std::string& o : m->options_.backend_options) init.add_options(o);
  std::unique_ptr<DescriptorInbox> inbox = m->OpenInbox();
  if (inbox != nullptr) {
    init.set_passthrough_socket(inbox->socket_path());
    if (m->options_.daemon_opens) init.set_root_directory_tag(kRootTag);
  }
  absl::StatusOr<v1::InitReply> reply = m->channel_->Init(init);
  if (!reply.ok()) return reply.status();
  if (inbox != nullptr && !reply->passthrough()) inbox.reset();
  m->inbox_ = std::move(inbox);
  if (m->inbox_ != nullptr && init.root_directory_tag() != 0) {
    m->root_ = std::make_unique<RootDirectory>();
    m->AdoptRootDirectory(*reply);
  }
  if (reply->posix_errno() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend ", m->spec_.backend, " refused the mount: ",
                     std::strerror(reply->posix_errno())));
  }
  m->backend_name_ = reply->name();
  // A restarted backend is told of the mount too.
  BackendGreeter::Options greeter;
  greeter.channel = m->channel_.get();
  greeter.request = init;
  if (m->inbox_ == nullptr) greeter.request.clear_passthrough_socket();
  greeter.first_reply = *reply;
  greeter.log_name = m->spec_.mountpoint;
  m->lists_by_path_.store(reply->lists_by_path());
  greeter.on_greeted = [self](const v1::InitReply& r) {
    if (self->root_ != nullptr) self->AdoptRootDirectory(r);
    self->lists_by_path_.store(r.lists_by_path());
    // Another build of the backend may run messages in order or not.
    if (self->write_behind_ != nullptr) {
      self->write_behind_->SetInOrder(r.runs_batches_in_order());
    }
  };
  m->greeter_ = std::make_unique<BackendGreeter>(std::move(greeter));

  KernelMountRequest request;
  request.mountpoint = m->spec_.mountpoint;
  request.mountpoint_fd = m->spec_.mountpoint_fd;
  request.source =
      m->options_.fsname.empty() ? m->spec_.backend : m->options_.fsname;
  request.owner_uid = m->spec_.owner_uid;
  request.owner_gid = m->spec_.owner_gid;
  request.options = &m->options_;
  absl::StatusOr<KernelMount> km;
  if (kept == nullptr) {
    km = MountFuse(request);
    if (!km.ok()) {
      m->channel_->Destroy();
      return km.status();
    }
  } else {
    km = KernelMount{kept->fuse_fd.release(),
                     MountIdentity{head.mount.kernel_mount_id(),
                                   static_cast<dev_t>(head.mount.device())}};
  }
  m->identity_ = km->identity;

  m->BuildPipeline(*reply);
  absl::Status serving = m->StartSession(*reply, *km, head);
  if (!serving.ok()) return serving;
  return m;
}

MountSpec SpecOfSaved(const state::SavedMount& saved) {
  MountSpec spec;
  spec.mount_id = saved.mount_id();
  spec.backend = saved.backend();
  spec.tls_reader = UserIdentity{saved.tls_reader().uid(),
                                 saved.tls_reader().gid(),
                                 {saved.tls_reader().groups().begin(),
                                  saved.tls_reader().groups().end()}};
  spec.mountpoint = saved.mountpoint();
  spec.options_text = saved.options_text();
  spec.passthrough_dir = saved.passthrough_dir();
  spec.owner_uid = saved.owner_uid();
  spec.owner_gid = saved.owner_gid();
  return spec;
}

state::SavedMount Mount::Saved() const {
  state::SavedMount s;
  s.set_mount_id(spec_.mount_id);
  s.set_backend(spec_.backend);
  s.set_mountpoint(spec_.mountpoint);
  s.set_options_text(spec_.options_text);
  s.set_owner_uid(spec_.owner_uid);
  s.set_owner_gid(spec_.owner_gid);
  s.set_passthrough_dir(spec_.passthrough_dir);
  auto user = [](const UserIdentity& u, state::User* out) {
    out->set_uid(u.uid);
    out->set_gid(u.gid);
    for (gid_t g : u.groups) out->add_groups(g);
  };
  if (const std::shared_ptr<BackendDialer>& dialer = spec_.dialer) {
    const BackendDialer::Options& dial = dialer->options();
    s.set_dialed(true);
    s.set_socket_path(dial.socket_path);
    if (dial.connect_as) user(*dial.connect_as, s.mutable_connect_as());
    if (std::optional<uid_t> uid = dialer->backend_uid()) {
      s.set_backend_uid(*uid);
    }
  }
  user(spec_.tls_reader, s.mutable_tls_reader());
  s.set_kernel_mount_id(identity_.mount_id);
  s.set_device(identity_.device);
  s.set_generation(generation_);
  return s;
}

void Mount::KeepState(int fuse_fd, const std::string& kernel_init) {
  MountState::Options o;
  o.store = spec_.store;
  o.fuse_fd = fuse_fd;
  o.nodes = nodes_.get();
  o.handles = channel_->handles();
  o.mount = Saved();
  o.kernel_init = kernel_init;
  o.backing = inherited_backing_;
  absl::StatusOr<std::unique_ptr<MountState>> started =
      MountState::Start(std::move(o));
  if (!started.ok()) {
    Log("%s: the mount will not survive a restart of the daemon: %s",
        spec_.mountpoint.c_str(), std::string(started.status().message()).c_str());
    // A resumed mount's older journal must not be resumed again.
    spec_.store->Remove(KeptMountKey(spec_.mount_id)).IgnoreError();
    return;
  }
  state_ = *std::move(started);
}

std::unique_ptr<DescriptorInbox> Mount::OpenInbox() {
  // Only a backend on this machine (a Unix socket, whose peer the dialer
  // checks) can share its files.
  std::shared_ptr<BackendDialer> dialer = spec_.dialer;
  if (!options_.passthrough || dialer == nullptr ||
      spec_.passthrough_dir.empty()) {
    return nullptr;
  }
  if (mkdir(spec_.passthrough_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    Log("%s: passthrough off: cannot create %s: %s", spec_.mountpoint.c_str(),
        spec_.passthrough_dir.c_str(), std::strerror(errno));
    return nullptr;
  }
  DescriptorInbox::Options inbox;
  inbox.socket_path =
      absl::StrCat(spec_.passthrough_dir, "/m", spec_.mount_id, ".sock");
  // The process serving the mount over gRPC, and no other.
  inbox.is_backend = [dialer](const PeerCredentials& peer) {
    return dialer->backend_pid() == peer.pid &&
           dialer->backend_uid() == peer.uid;
  };
  inbox.log_name = spec_.mountpoint;
  absl::StatusOr<std::unique_ptr<DescriptorInbox>> created =
      DescriptorInbox::Create(std::move(inbox));
  if (!created.ok()) {
    Log("%s: passthrough off: %s", spec_.mountpoint.c_str(),
        std::string(created.status().message()).c_str());
    return nullptr;
  }
  return *std::move(created);
}

void Mount::AdoptRootDirectory(const v1::InitReply& reply) {
  if (!reply.root_directory() || reply.posix_errno() != 0) {
    root_->Drop();
    return;
  }
  PeerCredentials sender;
  UniqueFd dir = inbox_->Take(kRootTag, &sender);
  std::optional<UserIdentity> owner;
  if (!reply.root_opens_as_caller()) {
    owner = UserIdentity{sender.uid, sender.gid, sender.groups};
  }
  const bool changes_attributes =
      reply.root_changes_attributes() && options_.daemon_changes;
  const bool removes_names =
      reply.root_removes_names() && options_.daemon_changes;
  const bool creates_files =
      reply.root_creates_files() && options_.daemon_changes;
  absl::Status st = dir.valid() ? root_->Adopt(std::move(dir), std::move(owner),
                                               changes_attributes,
                                               removes_names, creates_files)
                                : absl::NotFoundError("no descriptor arrived");
  if (!st.ok()) {
    Log("%s: the backend's root directory is not used (%s): it opens every "
        "file itself",
        spec_.mountpoint.c_str(), std::string(st.message()).c_str());
  }
}

MountStats::Snapshot Mount::Snap() const {
  MountStats::Snapshot s = stats_.Snap();
  if (nodes_ != nullptr) s.kernel_nodes = nodes_->size();
  if (cache_ != nullptr) {
    s.cache_entries = cache_->size();
    s.cache_limit = cache_->max_entries();
    s.cache_bytes = cache_->bytes();
    s.cache_bytes_limit = cache_->max_bytes();
  }
  if (session_ != nullptr) {
    s.passthrough_opens = session_->passthrough_opens();
    s.passthrough_refused = session_->passthrough_refused();
    s.backing_files = session_->backing_ids();
    s.contents_fetched_ahead = session_->contents_fetched_ahead();
    s.opens_answered_ahead = session_->opens_answered_ahead();
    s.uring_requests = session_->uring_requests();
  }
  if (root_ != nullptr) {
    s.daemon_opens = root_->opened();
    s.daemon_changes = root_->changed();
    s.daemon_lookups = root_->looked_up();
  }
  if (caching_ != nullptr) s.listings_prefetched = caching_->listings_prefetched();
  if (write_behind_ != nullptr) {
    s.written_behind = write_behind_->deferred();
    s.write_behind_failed = write_behind_->failed();
    s.write_behind_queued = write_behind_->queued();
  }
  return s;
}

absl::Status Mount::Unmount(bool lazy) {
  absl::Status st = UnmountFuse(identity_, lazy);
  if (st.ok()) detached_.store(true);
  return st;
}

std::string Mount::CurrentMountpoint() const {
  std::string now = fusehost::CurrentMountpoint(identity_);
  return now.empty() ? spec_.mountpoint : now;
}

void Mount::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // The mount ends: the store must not keep its connection alive.
  {
    absl::MutexLock lock(&state_mu_);
    if (state_ != nullptr) {
      state_->Release();
      state_.reset();
    }
  }
  if (listener_ != nullptr) listener_->Stop();
  // Notices it still held for changes under way would reach the caches
  // while they are taken down.
  if (changes_by_daemon_ != nullptr) changes_by_daemon_->StopFiltering();
  // Changes answered early live only in this daemon: they go to the backend
  // before anything is stopped (stopping the session cancels whatever is
  // still queued below it). Bounded by the mount's timeout=.
  if (write_behind_ != nullptr &&
      !write_behind_->Drain(absl::Now() + options_.call_timeout)) {
    Log("%s: write-behind: %zu operations were not sent before the end",
        spec_.mountpoint.c_str(), write_behind_->queued());
  }
  if (greeter_ != nullptr) greeter_->Stop();
  if (session_ != nullptr) {
    if (!session_->session_ended()) {
      // By identity, wherever the owner moved the mount.
      if (!detached_.load()) {
        UnmountFuse(identity_, /*lazy=*/true).IgnoreError();
        detached_.store(true);
      }
      // Files may still be open on the detached mount; they get ENOTCONN.
      // This also ends the session should the unmount have failed.
      AbortFuseConnection(identity_.device);
    }
    session_->Stop();
  }
  if (channel_ != nullptr) {
    // Releases answered at once may still be on their way: no reply may
    // reach the layers destroyed before the channel (the greeter, the root
    // directory) through on_new_instance.
    channel_->CancelAll();
    channel_->WaitIdle();
    channel_->Destroy();
  }
}

bool Mount::Quiesce(absl::Time deadline) {
  if (session_ == nullptr) return true;
  const bool answered = session_->Quiesce(deadline);
  // Queued changes live only in this daemon: they go before it does.
  const bool sent =
      write_behind_ == nullptr || write_behind_->Drain(deadline);
  return answered && sent && state_ != nullptr;
}

Mount::~Mount() { Shutdown(); }

}  // namespace fusehost
