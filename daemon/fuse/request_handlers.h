// The kernel requests the daemon answers: one method per FUSE operation.
//
// Each method turns a request (nodes, names, handles, as the kernel names
// them) into a path operation for the pipeline below (OpTransport), through
// the NodeTable, and answers the request when the result arrives. Methods
// return at once: no libfuse thread ever waits for the network. Every
// request is answered exactly once (see kernel_request.h), on whatever
// thread its answer arrives.
//
// Results reaching here were validated by the pipeline (reply_validator.h):
// nothing below re-checks what a backend sent.
//
// The methods are grouped by family, one source file each:
//   names_handlers.cc   lookup, forget, getattr, setattr, readlink, mknod,
//                       mkdir, symlink, link, unlink, rmdir, rename
//   file_handlers.cc    open, create, read, write, flush, release, fsync,
//                       fallocate, copy_file_range, lseek, locks
//   ioctl_handler.cc    ioctl of files and directories
//   dir_handlers.cc     opendir, readdir(plus), releasedir, fsyncdir
//   xattr_handlers.cc   statfs, access, the xattr calls
//   handler_support.cc  what they share: paths, ops, entries, replies
//   open_passthrough.cc opens answered with a backend's descriptor
//   open_by_daemon.cc   read-only opens the daemon answers itself, beneath
//                       a loopback backend's root directory
//   open_fetched_ahead.cc  read-only opens answered with contents fetched
//                       ahead (contents_ahead.h)
//
// Thread-safe: called concurrently from libfuse's worker threads.

#ifndef FUSE_HOSTD_DAEMON_FUSE_REQUEST_HANDLERS_H_
#define FUSE_HOSTD_DAEMON_FUSE_REQUEST_HANDLERS_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/memory_budget.h"
#include "daemon/fuse/contents_ahead.h"
#include "daemon/fuse/flushless_handles.h"
#include "daemon/fuse/kernel_invalidator.h"
#include "daemon/fuse/kernel_request.h"
#include "daemon/fuse/node_table.h"
#include "daemon/fuse/open_contents.h"
#include "daemon/fuse/xattr_exclusions.h"
#include "daemon/passthrough/backing_files.h"
#include "daemon/passthrough/descriptor_inbox.h"
#include "daemon/passthrough/root_directory.h"
#include "daemon/pipeline/cache_coherence.h"
#include "daemon/pipeline/handle_map.h"
#include "daemon/pipeline/op_transport.h"

namespace fusehost {

// The attributes a setattr changes.
enum SetattrField : int {
  kSetMode = 1 << 0,
  kSetUid = 1 << 1,
  kSetGid = 1 << 2,
  kSetSize = 1 << 3,
  kSetAtime = 1 << 4,
  kSetMtime = 1 << 5,
  kSetAtimeNow = 1 << 6,  // with kSetAtime: the current time
  kSetMtimeNow = 1 << 7,
};

// An open file as a request names it.
struct KernelFile {
  uint64_t fh = 0;
  int flags = 0;  // open(2) flags
  uint64_t lock_owner = 0;
};

// An ioctl as the kernel sends it (see IoctlRequest in filesystem.proto).
struct KernelIoctl {
  uint32_t cmd = 0;
  uint64_t arg = 0;
  uint32_t flags = 0;  // FUSE_IOCTL_*, passed on
  absl::string_view in;  // what the command passes in
  size_t out_size = 0;   // what it may pass back
  // Set by the kernel only for CUSE devices: never forwarded.
  bool unrestricted = false;
  // The handle is a directory's (opendir's), not a file's.
  bool directory = false;
};

// How long the kernel may cache what it is told.
struct KernelTimeouts {
  // Attributes and names, when a reply carries no lifetime of its own.
  absl::Duration attr = absl::Seconds(1);
  // Absent names; zero: the kernel is not told to remember absence.
  absl::Duration negative = absl::ZeroDuration();
  // The mount option entry_timeout, overriding the attributes' lifetime
  // for names.
  std::optional<absl::Duration> entry;
  // Whether the kernel may keep directory listings in its page cache.
  bool cache_listings = true;
};

class RequestHandlers {
 public:
  struct Options {
    // All must outlive the handlers.
    NodeTable* nodes = nullptr;
    OpTransport* transport = nullptr;
    CacheCoherence* coherence = nullptr;
    KernelInvalidator* invalidator = nullptr;
    KernelTimeouts timeouts;
    // The kernel checks permissions itself (mount option
    // default_permissions).
    bool kernel_checks_permissions = true;
    // With write-behind: runs its argument with the errno an fsync must
    // report once every change queued before has been answered
    // (WriteBehind::Settle). Empty without it.
    std::function<void(std::function<void(int)>)> settle;
    // With write-behind: whether a queued change touches a path
    // (WriteBehind::Touches), so that the backend's file there may not be
    // what the mount shows yet. Empty without it.
    std::function<bool(const std::string&)> queued_at;
    // A layer of the pipeline makes changes of attributes itself where it
    // can (passthrough/changes_by_daemon.h), and keeps write-behind from
    // answering a change of times of a file written through a backing
    // file early where it cannot.
    bool changes_below = false;
    // What the listings open directories hold may take (null: no bound).
    // A page that does not fit fails the readdir with ENOMEM.
    MemoryBudget* listing_budget = nullptr;
    // How long the backend has for the ops of one kernel request, from the
    // request's arrival (the mount option timeout=); zero: no deadline set
    // here (the channel's own applies).
    absl::Duration op_timeout = absl::ZeroDuration();
    // The backend implements ioctl (InitReply.ioctl); otherwise ioctls are
    // answered ENOTTY here, without a round trip.
    bool backend_ioctl = false;
    // The backend keeps POSIX locks (InitReply.posix_locks); otherwise the
    // kernel does.
    bool backend_posix_locks = false;
    // Extended attribute names the backend does not keep
    // (InitReply.unsupported_xattr_prefixes): answered EOPNOTSUPP here.
    XattrExclusions unsupported_xattrs;
    // The backend keeps no extended attributes (InitReply.no_xattrs): every
    // xattr request is answered ENOSYS here.
    bool no_xattrs = false;
    // True once the kernel took its writeback cache at INIT (may be null:
    // it did not). The kernel then reads a page it writes part of through
    // the handle it writes with, and places appends itself: files are
    // opened at the backend for reading as well as writing, and never for
    // appending (WritebackOpenFlags).
    const std::atomic<bool>* writeback_cache = nullptr;
    // The backend lists directories by path (InitReply.lists_by_path, which
    // a restarted backend may answer differently); null: it does not. Then
    // an opendir whose listing is not cached sends a readdir, not an
    // opendir, and the handle holds nothing of the backend's.
    const std::atomic<bool>* lists_by_path = nullptr;
    // Passthrough (both null: none): where the backend's descriptors
    // arrive, and the backing files registered from them.
    DescriptorInbox* inbox = nullptr;
    BackingFiles* backing = nullptr;
    // A loopback backend's root directory (InitReply.root_directory; null:
    // none), and the handle tokens of the backend channel: read-only opens
    // of regular files beneath it are answered here, with tokens the
    // backend has no handle for yet (HandleMap::IssueUnopened).
    RootDirectory* root = nullptr;
    HandleMap* handles = nullptr;
    // Small files fetched ahead of their opens (contents_ahead.h), per
    // fetch; 0: none. Needs `handles`, and is off with passthrough (the
    // kernel reads a local backend's files itself). Fetched contents are
    // served for at most `contents_ahead_max_age`.
    size_t contents_ahead_files = 0;
    absl::Duration contents_ahead_max_age = absl::Seconds(1);
    // The first directory handle this daemon hands out. A resumed mount's
    // kernel still holds the handles of the daemon before (each run starts
    // above the last, see daemon/survival): a handle this run does not
    // know is opened again for the directory it names.
    uint64_t first_dir_handle = 1;
  };

  explicit RequestHandlers(Options options);
  RequestHandlers(const RequestHandlers&) = delete;
  RequestHandlers& operator=(const RequestHandlers&) = delete;

  // From now on every op fails at once with ECANCELED instead of being sent,
  // so that what is in flight drains (the session is stopping).
  void StopSending() { stopping_.store(true); }

  // ---- names and attributes (names_handlers.cc) -----------------------------
  // The node for `name` in `parent`: its attributes as a new lookup
  // reference, or a cached absence.
  void Lookup(Request req, uint64_t parent, std::string name);
  // The kernel dropped lookup references: (node, count) pairs.
  void Forget(Request req,
              const std::vector<std::pair<uint64_t, uint64_t>>& forgets);
  void Getattr(Request req, uint64_t node, std::optional<uint64_t> fh);
  // Several path operations (chmod, chown, truncate, utimens, in libfuse's
  // order) run one after the other; the first failure is the answer.
  // The chmod the kernel sends on its own to clear set-user-ID and
  // set-group-ID bits when someone else writes or truncates a file is not
  // forwarded: the backend clears them with the write itself (the protocol
  // asks it to), and could not honour a chmod from a non-owner.
  void Setattr(Request req, uint64_t node, const struct stat& attr,
               int fields, std::optional<uint64_t> fh);
  void Readlink(Request req, uint64_t node);
  void Mknod(Request req, uint64_t parent, std::string name, mode_t mode,
             dev_t rdev);
  void Mkdir(Request req, uint64_t parent, std::string name, mode_t mode);
  void Symlink(Request req, std::string target, uint64_t parent,
               std::string name);
  void Link(Request req, uint64_t node, uint64_t new_parent,
            std::string new_name);
  void Unlink(Request req, uint64_t parent, std::string name);
  void Rmdir(Request req, uint64_t parent, std::string name);
  void Rename(Request req, uint64_t parent, std::string name,
              uint64_t new_parent, std::string new_name, unsigned int flags);

  // ---- files (file_handlers.cc) ---------------------------------------------
  void Open(Request req, uint64_t node, int flags);
  // Files fetched ahead of their opens, and opens answered with them.
  uint64_t contents_fetched_ahead() const { return contents_ahead_.fetched(); }
  uint64_t opens_answered_ahead() const { return contents_ahead_.served(); }
  void Create(Request req, uint64_t parent, std::string name, mode_t mode,
              int flags);
  void Read(Request req, uint64_t node, const KernelFile& file, size_t size,
            off_t offset);
  void Write(Request req, uint64_t node, const KernelFile& file,
             absl::string_view data, off_t offset);
  void Flush(Request req, uint64_t node, const KernelFile& file);
  // Answered at once; the backend closes its handle in the background.
  void Release(Request req, uint64_t node, const KernelFile& file);
  void Fsync(Request req, uint64_t node, const KernelFile& file,
             bool datasync);
  void Fallocate(Request req, uint64_t node, const KernelFile& file, int mode,
                 off_t offset, off_t length);
  void CopyFileRange(Request req, uint64_t node_in, off_t offset_in,
                     const KernelFile& in, uint64_t node_out,
                     off_t offset_out, const KernelFile& out, size_t length,
                     int flags);
  void Lseek(Request req, uint64_t node, const KernelFile& file, off_t offset,
             int whence);
  void Getlk(Request req, uint64_t node, const KernelFile& file,
             const struct flock& lock);
  void Setlk(Request req, uint64_t node, const KernelFile& file,
             const struct flock& lock, bool sleep);
  void Flock(Request req, uint64_t node, const KernelFile& file,
             int operation);
  // Forwards a restricted ioctl of an open file or directory (`fh` is the
  // kernel's handle: a file's, or a DirHandle); refuses one that is
  // unrestricted or passes more than LIMIT_MAX_IOCTL_SIZE bytes either way.
  void Ioctl(Request req, uint64_t node, uint64_t fh, const KernelIoctl& io);

  // ---- directories (dir_handlers.cc) ----------------------------------------
  // The reply's fh is the daemon's own directory handle.
  void Opendir(Request req, uint64_t node, int flags);
  void Readdir(Request req, uint64_t node, uint64_t fh, size_t size,
               off_t offset, bool plus);
  void Releasedir(Request req, uint64_t fh);
  void Fsyncdir(Request req, uint64_t node, uint64_t fh, bool datasync);

  // ---- filesystem, access, xattrs (xattr_handlers.cc) -----------------------
  void Statfs(Request req, uint64_t node);
  void Access(Request req, uint64_t node, int mask);
  void Setxattr(Request req, uint64_t node, std::string name,
                absl::string_view value, int flags);
  void Getxattr(Request req, uint64_t node, std::string name, size_t size);
  void Listxattr(Request req, uint64_t node, size_t size);
  void Removexattr(Request req, uint64_t node, std::string name);

 private:
  struct DirHandle;
  // Shared: a readdir the kernel abandoned (answered EINTR) may still wait
  // for the backend when the kernel releases the directory, and its answer
  // must find the handle (marked released) rather than freed memory.
  using DirHandlePtr = std::shared_ptr<DirHandle>;
  struct SetattrChain;
  void RunSetattr(Request req, uint64_t node, const struct stat& attr,
                  int fields, std::optional<uint64_t> kernel_fh);
  using Then = std::function<void(const v1::Attr&)>;

  // ---- handler_support.cc ----------------------------------------------------
  // A new op carrying the request's caller and deadline.
  v1::Op NewOp(KernelRequest& req) const;
  void Send(v1::Op op, OpTransport::Done done);
  void SendAll(std::vector<PendingOp> ops);
  // Sends an op whose only result is an errno and answers with it;
  // `on_success` runs first (node table bookkeeping).
  void SendSimple(const Request& req, v1::Op op,
                  std::function<void()> on_success = nullptr);
  // Sends an op that changes the file behind `node` and answers with its
  // errno; on success, the file's other names (hard links) stop showing
  // its old attributes first.
  void SendChangingFile(const Request& req, v1::Op op, uint64_t node);
  // Sends an op that creates `name` in `parent` and answers with its entry.
  // With `stale` (a node whose link count the op changed) the kernel drops
  // that node's and its siblings' attributes first.
  void SendCreating(const Request& req, v1::Op op, uint64_t parent,
                    std::string name, std::string path, uint64_t stale = 0);
  // Answers with the result's errno when it failed; true if so.
  static bool Failed(const Request& req, const v1::OpResult& result);

  // The path of a node for an op that needs a name; answers (and returns
  // nullopt) when there is none.
  std::optional<std::string> NamedPath(const Request& req, uint64_t node);
  // The path of a node for an op that carries a handle: "" is fine.
  std::string HandlePath(uint64_t node);
  std::optional<std::string> ChildPath(const Request& req, uint64_t parent,
                                       const std::string& name);
  // Path and handle of a getattr/setattr target: without a handle from the
  // kernel, a nameless (unlinked) file is reached through any handle still
  // open on it. Answers and returns false when there is neither.
  bool AttrTarget(const Request& req, uint64_t node,
                  std::optional<uint64_t> kernel_fh, std::string* path,
                  std::optional<uint64_t>* fh);

  // Kernel cache lifetimes: the attributes' own (the cache layer fills it),
  // so kernel and daemon caches expire together.
  double AttrTimeout(const v1::Attr& attr) const;
  double EntryTimeout(const v1::Attr& attr) const;
  // Backend attributes as the kernel sees them for `node`.
  static void ToStat(const v1::Attr& attr, uint64_t node, struct stat* st);
  void NoteInode(uint64_t node, const v1::Attr& attr);
  // Hard links: the other names (nodes) of `node`'s file, whose attributes
  // the daemon's cache forgets (with every other name of the file it
  // holds, but `keep`: by default `node`'s own path); the caller drops the
  // kernel's.
  std::vector<uint64_t> StaleSiblings(
      uint64_t node, const std::optional<std::string>& keep = std::nullopt);

  void ReplyAttr(const Request& req, uint64_t node, const v1::Attr& attr);
  // Takes a lookup reference on (parent, name) and fills `e`; false (and an
  // answer) if the parent is gone.
  bool MakeEntry(const Request& req, uint64_t parent, const std::string& name,
                 const v1::Attr& attr, KernelEntry* e);
  void ReplyEntry(const Request& req, uint64_t parent, const std::string& name,
                  const v1::Attr& attr);
  // Calls `then` with the attributes of `path`: `known` when the backend
  // sent them, else by asking it; answers with the error otherwise (EIO
  // for attributes of another type than `created_type`, CreatedFileType
  // in stat_convert.h), and then runs `failed` if given (what the op made
  // that the kernel will never release).
  void WithAttr(const Request& req, const std::string& path,
                std::optional<uint64_t> fh, const v1::Attr* known, Then then,
                uint32_t created_type = 0,
                std::function<void()> failed = nullptr);
  // Drops the kernel's attributes of `nodes`, then runs `reply`.
  void AfterSiblingsDropped(const std::vector<uint64_t>& nodes,
                            const std::function<void()>& reply);
  static KernelOpenReply OpenReplyOf(const v1::OpenReply& r);
  // The file behind `node` changed through the daemon: contents kept from
  // an open of it, through this name or any other (hard links), are stale.
  void ForgetContents(uint64_t node);
  // OpenRequest.contents_up_to of an open of `path` with `flags`: the
  // largest file whose contents the daemon would take with the reply, 0
  // when it would take none or does not know the file's size.
  uint32_t ContentsWanted(int flags, const std::string& path) const;
  // The kernel never releases a handle whose open it did not get.
  void ReleaseOrphan(const std::string& path, uint64_t fh, int flags);
  // Sends an open to the backend (file_handlers.cc), unless contents were
  // fetched ahead for it; `may_wait`: an open whose contents are on their
  // way waits for them. `if_refused` (unless negative): the flags to open
  // with again if the backend answers EACCES.
  void OpenAtBackend(const Request& req, uint64_t node, int flags,
                     const std::string& path, bool may_wait,
                     int if_refused = -1);
  // The flags an open or create of the kernel's goes to the backend with
  // (Options::writeback_cache).
  int WritebackOpenFlags(int flags) const;
  // Before the reply to an open or create the backend made: its flushes
  // are answered here if the backend said they do nothing and the kernel
  // sends them anyway (FlushlessHandles). Undone with flushless_.Remove
  // when the reply does not reach the kernel.
  void NoteFlushless(const KernelOpenReply& open);

  // ---- open_fetched_ahead.cc -------------------------------------------------
  // Answers a plain read-only open with contents fetched ahead for
  // `caller` (the request's), or waits for them if they are on their way
  // and `may_wait` (then OpenAtBackend runs again); false when it did
  // neither.
  bool OpenFetchedAhead(const Request& req, uint64_t node, int flags,
                        const std::string& path, bool may_wait,
                        const v1::Caller& caller);
  static ContentsAhead::Options ContentsAheadOptions(RequestHandlers* self);

  // Answers a getattr of `node` (at `path`, "" if nameless) from the file
  // of the daemon's own passthrough opens of it (BackingFiles::StatOpen);
  // false if there is none or a change queued for `path` has not reached
  // the file yet.
  bool AnswerFromOwnOpen(const Request& req, uint64_t node,
                         const std::string& path);
  // Calls `then` once the handles the daemon opened itself (unopened at
  // the backend) of the file at `path` are open at the backend too: `path`
  // is about to lose its name (unlink, a rename over it), after which the
  // backend could not open them by it. "" calls `then` at once.
  void OpenedAtBackendFirst(const Request& req, const std::string& path,
                            std::function<void()> then);
  // Rename, once the file it replaces is open at the backend.
  void RenameNow(Request req, uint64_t parent, std::string name,
                 uint64_t new_parent, std::string new_name,
                 const std::string& old_path, const std::string& new_path,
                 unsigned int flags);

  // ---- open_passthrough.cc ---------------------------------------------------
  // The tag an open or create offers the backend for its descriptor; 0 when
  // passthrough is not available.
  uint64_t PassthroughTag();
  // Decides how open `open->fh` of `node` is answered: with the descriptor
  // sent for `tag` as its backing file if the backend sent one (`offered`)
  // and it passes the checks, else forwarded (as direct I/O when the
  // node's other opens are passed through). False when it cannot be
  // answered on `node`: see AnswerReplaced.
  bool PlanPassthrough(uint64_t node, uint64_t tag, int flags, bool offered,
                       KernelOpenReply* open);
  // An open of `node` at `path` that cannot share the backing file of the
  // node's passthrough opens (the backend's file was replaced behind the
  // daemon, by a rename over it, say, or the open has no descriptor the
  // kernel may take): the kernel would fail it with EIO on that node. The
  // node loses the name, as if unlinked, and the open is answered ESTALE,
  // which makes the kernel look the name up again and retry on a new node.
  // The backend's handle `fh` is closed.
  void AnswerReplaced(const Request& req, uint64_t node,
                      const std::string& path, uint64_t fh, int flags);
  // After the reply: `refused` (the kernel got no backing id) or `sent`
  // false (it got no reply at all).
  void AfterOpenReply(uint64_t fh, bool sent, bool refused);
  // The daemon does not see passthrough writes: attributes of `node` that
  // it cached may be stale once a writable passthrough open of it exists.
  bool WritesBypassDaemon(uint64_t node) const;
  // If `node` may have been written through its backing file: the
  // daemon's cached size and times of it become the backing file's (or are
  // dropped), and the kernel's attributes of its other names are dropped.
  void AfterPassthroughWrites(uint64_t node);
  // The cached size and times of `path` (node `node`, open for passthrough
  // writing) replaced by its backing file's; true if the daemon holds that
  // file, else they are dropped.
  bool LearnWrittenAround(uint64_t node, const std::string& path);

  // ---- open_by_daemon.cc -----------------------------------------------------
  // Answers a read-only open of `path` itself when it can (see Options.root);
  // false when the backend must be asked.
  bool OpenHere(const Request& req, uint64_t node, int flags,
                const std::string& path);

  // ---- dir_handlers.cc -------------------------------------------------------
  // The open directory the kernel's handle `fh` names; null if this daemon
  // did not open it (a resumed mount's handle of the daemon before).
  DirHandlePtr DirHandleOf(uint64_t fh);
  // Opens `node`'s directory again for a handle `fh` of a previous daemon
  // (as Opendir does, for the request's caller), then runs `then` with it;
  // answers the request with the error if it cannot.
  void ReopenDirHandle(const Request& req, uint64_t node, uint64_t fh,
                       std::function<void(const DirHandlePtr&)> then);
  // DirHandleOf, or ReopenDirHandle when unknown.
  void WithDirHandle(const Request& req, uint64_t node, uint64_t fh,
                     std::function<void(const DirHandlePtr&)> then);
  // The backend's handle of an open directory; none when the backend was
  // not asked to open it (its listing came from the cache).
  std::optional<uint64_t> DirBackendHandle(uint64_t fh);
  bool FillFromCache(DirHandle* h);
  // Opens `node`'s directory (from the cache's listing, or at the backend)
  // and runs `opened` with it, not yet known to the kernel; answers the
  // request with the error if it cannot.
  void OpenDir(const Request& req, uint64_t node, int flags,
               std::function<void(const DirHandlePtr&)> opened);
  // OpenDir's work for a new `handle`; `may_wait`: a listing being fetched
  // ahead may be waited for (once).
  void OpenDirHandle(const Request& req, DirHandlePtr handle, int flags,
                     std::function<void(const DirHandlePtr&)> opened, bool may_wait);
  // OpenDirHandle for a backend that lists by path: the listing is fetched
  // instead of opening the directory at the backend.
  void ListOnOpen(const Request& req, DirHandlePtr handle,
                  std::function<void(const DirHandlePtr&)> opened);
  // Answers the request with the error for a page of `h`'s listing the
  // handle refused (DirHandle::Page, as an int: the type is private to
  // dir_handlers.cc); false for a page it took.
  static bool PageRefused(const Request& req, const DirHandle& h, int page);
  void ReplyOpendir(const Request& req, const DirHandlePtr& handle);
  // The kernel released the handle (or never got it): gives its listing's
  // bytes back, tells the backend, and marks it released for answers still
  // on their way.
  void ReleaseDirHandle(const DirHandlePtr& handle);
  // Readdirplus: fetches attributes of up to a few hundred names from
  // entries[first] on that came without them, then runs `then`. False (and
  // `then` not run) when there is nothing to fetch.
  bool FetchAttrsAhead(const Request& req, uint64_t dir, DirHandlePtr h,
                       size_t first, std::function<void()> then);
  void ContinueReaddir(const Request& req, uint64_t dir, DirHandlePtr h,
                       bool plus, size_t size, off_t offset);

  // ---- xattr_handlers.cc -----------------------------------------------------
  // `drop`: names to leave out of a listxattr answer.
  static void ReplyXattr(const Request& req, size_t size,
                         const v1::OpResult& result,
                         const XattrExclusions* drop = nullptr);
  // Answers, and returns true, for a name the backend does not keep:
  // ENOSYS if it keeps none (NoXattrs), else EOPNOTSUPP.
  bool Unsupported(const Request& req, absl::string_view name);
  // Answers ENOSYS if the backend keeps no extended attributes at all.
  bool NoXattrs(const Request& req);

  // Whether callers of this mount look up what they list (ls -l, find
  // -printf %s), learned as readdirplus's "auto" mode does: directories
  // whose names went to the kernel without attributes are remembered
  // (a few), a LOOKUP of a file in one of them says yes, a release of one
  // with none says no, as does a caller moving on from one it read to the
  // end (NoteListingStarts). Only then are attributes fetched ahead (a plain
  // `ls` or `find` must not cost a getattr per name), and files handed out with
  // their attributes (FilesToHandBare). A bare listing's names count as lapsed
  // at once (NoteEntriesHanded). `typed`: every name went out with its file
  // type. `ended`: the pass handed out the listing's end.
  void NoteBareListing(uint64_t dir, bool typed, bool ended);
  // A name was looked up in `parent`. A directory's does not count where
  // the listing gave its type: find looks directories up to enter them,
  // and looks at no file.
  void NoteLookupIn(uint64_t parent, bool is_dir);
  // `handed_until`: when the first of the entries handed out with
  // attributes lapses (InfiniteFuture if none was).
  void NoteListingReleased(uint64_t dir, absl::Time handed_until);
  // A readdirplus pass over `dir` starts: a caller that moved on from a bare
  // listing it read to the end, and looked none of its files up, lists
  // only. This tells as much as the listing's release, which the kernel
  // sends in the background and may come after the next listing's first
  // pass.
  void NoteListingStarts(uint64_t dir);
  struct BareListing {
    bool typed = true;
    bool looked_up = false;  // since it was handed out
    bool ended = false;      // its end was handed out
  };
  absl::Mutex bare_mu_;
  absl::flat_hash_map<uint64_t, BareListing> bare_listings_
      ABSL_GUARDED_BY(bare_mu_);
  // What the last listing handed out bare showed: its files were looked up
  // (kLooksUp), or not (kListsOnly).
  enum class ListingUse : uint8_t { kUnknown, kLooksUp, kListsOnly };
  std::atomic<ListingUse> listing_use_{ListingUse::kUnknown};
  bool CallersLookUp() const {
    return listing_use_.load() == ListingUse::kLooksUp;
  }
  // How many files (all but directories) a readdirplus pass starting now
  // hands out without attributes: each entry with them costs the kernel an
  // inode (and a FORGET later), which a find never uses, while a
  // directory's spares the LOOKUP that enters it. All of them for callers
  // who list only; otherwise none, but for a few in one pass in
  // kProbeEvery (the first such the mount's second pass), to see what
  // callers do (dir_attrs_ahead.cc).
  size_t FilesToHandBare(uint64_t dir);
  // A pass handed files out bare (a probe is due until one has).
  void NoteFilesHandedBare() { probe_due_.store(false); }
  std::atomic<uint32_t> passes_{0};
  std::atomic<bool> probe_due_{false};

  // When the names a readdirplus handed the kernel with attributes lapse
  // (the shortest entry lifetime among them; InfinitePast for names handed
  // out bare), for the directories listed last. Once they have, an opendir
  // keeps the kernel from listing its own copy: every name in it would be
  // looked up, one request each, where a readdirplus hands them all out
  // again (ReplyOpendir).
  void NoteEntriesHanded(uint64_t dir, absl::Time lapse);
  void NoteEntriesHandedLocked(uint64_t dir, absl::Time lapse)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(bare_mu_);
  bool EntriesLapsed(uint64_t dir);
  absl::flat_hash_map<uint64_t, absl::Time> entries_until_
      ABSL_GUARDED_BY(bare_mu_);

  // Open directories by the handle the kernel holds for them.
  absl::Mutex dirs_mu_;
  absl::flat_hash_map<uint64_t, DirHandlePtr> dirs_ ABSL_GUARDED_BY(dirs_mu_);
  uint64_t next_dir_ ABSL_GUARDED_BY(dirs_mu_);

  const Options options_;
  OpenContents open_contents_;
  ContentsAhead contents_ahead_;
  FlushlessHandles flushless_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_passthrough_tag_{1};
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_REQUEST_HANDLERS_H_
