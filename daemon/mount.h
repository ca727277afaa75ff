// One mounted filesystem: the layers of the daemon wired together for one
// mount, created together and torn down in the safe order:
//
//   KernelSession (daemon/fuse)        kernel requests in, replies out
//     -> CachingTransport (pipeline)   daemon cache; owns coherence
//     -> ChangesByDaemon (passthrough) changes made beneath the root
//     -> WriteBehind                   changes answered early
//     -> Batcher                       concurrent ops -> one message
//     -> ReplyValidator                the backend's words checked
//     -> BackendChannel                gRPC, deadlines, reconnection
//   InvalidationListener -> ReplyValidator -> CachingTransport (notices)
//
// mount.cc makes the channel and the kernel mount, mount_pipeline.cc the
// layers between them, mount_session.cc the session and the listener.
//
// Thread use: Create/Unmount/Shutdown from the MountManager (which serializes
// them); state queries from any thread.

#ifndef FUSE_HOSTD_DAEMON_MOUNT_H_
#define FUSE_HOSTD_DAEMON_MOUNT_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/memory_budget.h"
#include "daemon/authz/backend_dialer.h"
#include "daemon/fuse/kernel_session.h"
#include "daemon/fuse/node_table.h"
#include "daemon/mounting/kernel_mount.h"
#include "daemon/mounting/mount_options.h"
#include "daemon/passthrough/changes_by_daemon.h"
#include "daemon/passthrough/descriptor_inbox.h"
#include "daemon/passthrough/root_directory.h"
#include "daemon/pipeline/backend_channel.h"
#include "daemon/pipeline/backend_greeter.h"
#include "daemon/pipeline/batcher.h"
#include "daemon/pipeline/caching_transport.h"
#include "daemon/pipeline/invalidation_listener.h"
#include "daemon/pipeline/metadata_cache.h"
#include "daemon/pipeline/reply_validator.h"
#include "daemon/pipeline/write_behind.h"
#include "daemon/stats/mount_stats.h"
#include "daemon/survival/descriptor_store.h"
#include "daemon/survival/mount_state.h"
#include "daemon/tls/peer_identity.h"
#include "proto/mount_state.pb.h"

namespace fusehost {

struct MountSpec {
  uint64_t mount_id = 0;
  std::string backend;     // gRPC target
  // Unix-socket backends: makes and checks every connection (see
  // authz/backend_dialer.h). Null: gRPC dials `backend` (TCP).
  std::shared_ptr<BackendDialer> dialer;
  // TCP backends with TLS: whose rights the certificate files are read
  // with, at mount time and for each new connection.
  UserIdentity tls_reader;
  // The daemon's budget for open directories' listings, which this mount's
  // own (kListingBytesPerMount) draws on. May be null: no bound.
  MemoryBudget* listing_budget = nullptr;
  std::string mountpoint;  // absolute, canonical
  // If >= 0 (during Create only): mount on this O_PATH descriptor's
  // directory rather than on the path (see KernelMountRequest).
  int mountpoint_fd = -1;
  std::string options_text;
  // Where the mount's descriptor socket for passthrough goes (a directory
  // the daemon owns, searchable by backends); empty: no passthrough.
  std::string passthrough_dir;
  uid_t owner_uid = 0;
  gid_t owner_gid = 0;
  // Called (on the session's loop thread) when the kernel session ends for
  // any reason, including an unmount done outside the daemon.
  std::function<void(uint64_t mount_id)> on_session_end;
  // Holds the mount's connection and state while the daemon restarts
  // (daemon/survival); null: the mount ends with the daemon. Must outlive
  // the mount.
  DescriptorStore* store = nullptr;
};

// A mount a previous daemon served, as the descriptor store held it: the
// /dev/fuse connection and the journal of its state
// (survival/mount_state.h).
struct KeptMount {
  UniqueFd fuse_fd;
  std::vector<state::Record> journal;
};

// The spec a journal's mount was made with, for a Mount::Resume. The
// dialer, budget and callbacks are the caller's to add.
MountSpec SpecOfSaved(const state::SavedMount& saved);

// What the listings of one mount's open directories may hold, all of one
// user's mounts together (root's excepted), and all mounts' together
// (MountManager): one user's backends cannot take what the others' need.
// Listings the daemon's cache holds are shared by open directories and not
// counted here.
inline constexpr size_t kListingBytesPerMount = 64 << 20;
inline constexpr size_t kListingBytesPerUser = 64 << 20;
inline constexpr size_t kListingBytesTotal = 256 << 20;

// Cache lifetimes from the mount options and what the backend asked for.
CachePolicy MakeCachePolicy(const MountOptions& options,
                            const v1::InitReply& reply);

class Mount {
 public:
  // Parses options, greets the backend, mounts, and starts serving.
  static absl::StatusOr<std::unique_ptr<Mount>> Create(MountSpec spec);

  // Serves a mount a previous daemon served: its node table and handles
  // are replayed from `kept`'s journal, the backend is greeted again, and
  // the kernel connection is taken up where the dead daemon left it.
  static absl::StatusOr<std::unique_ptr<Mount>> Resume(MountSpec spec,
                                                       KeptMount kept);

  ~Mount();  // Shutdown()s.

  // umount2 (lazy or not). On success the session ends once no file is open.
  absl::Status Unmount(bool lazy);

  // Detaches the mount if still attached, aborts the connection, stops the
  // session and says goodbye to the backend. Safe to call more than once.
  void Shutdown();

  // A hand-over to a new daemon: stops reading kernel requests and waits
  // (until `deadline`) for those read to be answered. The mount stays as
  // it is for the next daemon; only the process's exit may follow. False
  // if requests were still unanswered, or nothing keeps the mount.
  bool Quiesce(absl::Time deadline);

  const MountSpec& spec() const { return spec_; }
  // What the mount is, as the kernel knows it.
  const MountIdentity& identity() const { return identity_; }
  // Where it is now (its owner may have renamed a directory above it);
  // spec().mountpoint when it is no longer attached.
  std::string CurrentMountpoint() const;
  const std::string& backend_name() const { return backend_name_; }
  // The longest Shutdown may wait for the backend (queued changes sent).
  absl::Duration ShutdownWait() const { return options_.call_timeout; }
  // "insecure" (plain TCP), the TLS backend's pinned identity
  // (peer_identity.h), or "" (Unix socket).
  std::string BackendIdentity() const;
  bool session_ended() const { return session_ && session_->session_ended(); }
  bool detached() const { return detached_.load(); }
  const MountStats& stats() const { return stats_; }
  // stats() with the metadata cache's size.
  MountStats::Snapshot Snap() const;

 private:
  // The backend is reached over TCP: gRPC dials it itself (a dialer
  // reaches Unix sockets), and every round trip crosses a network.
  bool OverTcp() const { return spec_.dialer == nullptr; }
  explicit Mount(MountSpec spec) : spec_(std::move(spec)) {}

  // Create and Resume: `kept` is null for a new mount.
  static absl::StatusOr<std::unique_ptr<Mount>> Make(MountSpec spec,
                                                     KeptMount* kept);
  // Makes the op pipeline's layers for what the backend answered to Init
  // (mount_pipeline.cc).
  void BuildPipeline(const v1::InitReply& reply);
  // Starts the kernel session on the pipeline and the listener of the
  // backend's notices (mount_session.cc). On failure the kernel mount is
  // detached and the channel destroyed.
  absl::Status StartSession(const v1::InitReply& reply, const KernelMount& km,
                            const JournalHead& head);
  // What a later daemon needs to make this mount again.
  state::SavedMount Saved() const;
  // Starts recording the mount's state in the descriptor store (before
  // serving).
  void KeepState(int fuse_fd, const std::string& kernel_init);

  // The socket a local backend may send descriptors on, when the options
  // and the backend's kind allow passthrough; null otherwise.
  std::unique_ptr<DescriptorInbox> OpenInbox();
  // Takes the root directory a backend run sent with `reply`
  // (InitReply.root_directory), or drops the one held.
  void AdoptRootDirectory(const v1::InitReply& reply);
  // The tag the backend's root directory is sent with: open tags count up
  // from 1 and never reach it.
  static constexpr uint64_t kRootTag = uint64_t{1} << 63;

  MountSpec spec_;
  MountOptions options_;
  std::string backend_name_;
  MountIdentity identity_;
  CachePolicy policy_;
  // Declared in dependency order: each layer is destroyed before the ones
  // it sends to.
  std::unique_ptr<BackendChannel> channel_;
  std::unique_ptr<ReplyValidator> validator_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<MetadataCache> cache_;  // null with cache_entries=0
  std::unique_ptr<WriteBehind> write_behind_;  // null without write_behind
  // null without a root directory or a cache
  std::unique_ptr<ChangesByDaemon> changes_by_daemon_;
  std::unique_ptr<CachingTransport> caching_;
  // The backend lists directories by path (InitReply.lists_by_path), as
  // its latest run answered.
  std::atomic<bool> lists_by_path_{false};
  std::unique_ptr<NodeTable> nodes_;
  std::unique_ptr<MemoryBudget> listing_budget_;
  std::unique_ptr<DescriptorInbox> inbox_;  // null without passthrough
  std::unique_ptr<RootDirectory> root_;     // null without daemon opens
  std::unique_ptr<KernelSession> session_;
  // With a descriptor store: the mount's state outside the daemon.
  // Declared after the tables it records.
  std::unique_ptr<MountState> state_;
  // Held where the session's threads use state_ while the mount may be
  // shutting down, and where Shutdown drops it.
  absl::Mutex state_mu_;
  // How many daemons served the mount before this one.
  uint64_t generation_ = 0;
  // Resuming: the backing ids the previous daemon left registered, until
  // the session and the new journal take them.
  BackingIds inherited_backing_;
  std::unique_ptr<InvalidationListener> listener_;
  // Set before the kernel session starts, so before any reply that could
  // report a new run of the backend.
  std::unique_ptr<BackendGreeter> greeter_;
  MountStats stats_;
  // TLS backends only.
  std::shared_ptr<PeerIdentity> peer_identity_;
  std::atomic<bool> detached_{false};
  bool shut_down_ = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNT_H_
