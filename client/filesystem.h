// The C++ SDK for fuse-hostd backends.
//
// A filesystem author subclasses `fusehost::FileSystem`, overrides the path
// operations the filesystem supports, and calls `fusehost::Serve()`:
//
//   class HelloFs : public fusehost::FileSystem {
//     int Getattr(const Context&, const std::string& path,
//                 const FileInfo*, struct stat* st) override { ... }
//     ...
//   };
//   int main() { HelloFs fs; return fusehost::Serve(fs, {.listen = "unix:/tmp/hello.sock"}); }
//
// and then `fuse-hostctl mount unix:/tmp/hello.sock /mnt/hello`.
//
// Conventions (the same as libfuse's high-level API, minus its negative
// return values):
// * Every operation returns 0 on success or a positive errno (ENOENT, ...).
//   Operations that produce a count (Read, Write, CopyFileRange, Lseek) return
//   it through an out parameter.
// * Paths are absolute ("/dir/file"), raw bytes in a std::string. An empty
//   path means the file is open but no longer has a name (unlinked); then
//   `fi->fh` identifies it.
// * `Context` says who is calling. The daemon already checked permissions
//   against the attributes you returned (default_permissions), unless the
//   mount was made with no_default_permissions.
// * Methods are called concurrently from several threads, also for the same
//   path: protect your own state.
// * Handles (`fi->fh` set in Open, Create, Opendir) belong to one backend
//   instance: each Serve() call picks a random instance number and tells the
//   daemon, which says with every op which instance issued its handle. If
//   the backend restarted while files were open, the kernel still holds the
//   old process's handles; the SDK answers those ops EBADF before any method
//   here is called, so you need do nothing about it. Within one process,
//   prefer handles you never reuse (a counter into a table) to raw
//   descriptor numbers, and answer EBADF for a handle you do not know.
// * Defaults: an operation you do not override answers ENOSYS, except where
//   libfuse has a harmless default (Flush, Release, Releasedir, Fsync,
//   Fsyncdir, Opendir, Open and Access succeed; Statfs reports an empty
//   filesystem; Init accepts the mount).
//
// Thread safety: `Serve` blocks; the FileSystem must outlive it. Notify*
// (below) may be called from any thread.

#ifndef FUSE_HOSTD_CLIENT_FILESYSTEM_H_
#define FUSE_HOSTD_CLIENT_FILESYSTEM_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fusehost {

class BackendService;
class InvalidationHub;

// Who issued the request.
struct Context {
  // The mount (MountInfo::mount_id from Init) the request belongs to, so that
  // a backend serving several mounts can tell them apart.
  uint64_t mount_id = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  mode_t umask = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// Per-open state, as libfuse's struct fuse_file_info. The backend sets the
// outputs in Open/Create/Opendir; the daemon passes `fh` back on later calls.
struct FileInfo {
  int flags = 0;              // open(2) flags
  uint64_t fh = 0;            // backend's handle (output of Open/Create/Opendir)
  bool direct_io = false;     // output: bypass the kernel page cache
  bool keep_cache = false;    // output: keep cached pages from earlier opens
  bool nonseekable = false;   // output: stream-like file
  bool noflush = false;       // output: close needs no Flush call
  // Output of Open: the whole file, for small files opened read-only
  // (has_contents). fuse-hostd answers the kernel's first read from it.
  bool has_contents = false;
  std::string contents;
  // Input of Open: non-zero when fuse-hostd asks for the file whole with
  // this read-only open (it knows the file is at most this many bytes):
  // send it as `contents` if it still is, and the kernel's first read costs
  // no round trip.
  uint64_t contents_up_to = 0;
  uint64_t lock_owner = 0;    // input for Flush/Lock/Flock
  // Output of Open/Create, for filesystems whose files are local files and
  // that said InitResult::passthrough: the descriptor of the file just
  // opened, a regular file opened with the same access mode as `flags`.
  // The kernel then reads, writes and maps it itself ("passthrough"):
  // Read/Write are not called for this open (unless fuse-hostd could not
  // use the descriptor). The filesystem keeps owning the descriptor (the
  // SDK sends fuse-hostd a copy) and closes it in Release as usual.
  int passthrough_fd = -1;
  // Input of Open/Create: fuse-hostd can take passthrough_fd for this open
  // (the mount has passthrough). When it cannot, the file's data goes
  // through Read and Write, and sending a small file's contents with the
  // open saves a round trip.
  bool passthrough_offered = false;
};

// One directory entry produced by Readdir.
struct DirEntry {
  std::string name;
  // Full attributes if the filesystem has them cheaply (has_attr = true);
  // otherwise only the file type bits of st.st_mode (or 0) are used.
  struct stat st = {};
  bool has_attr = false;
  // With has_attr: the entry's extended attribute names, if the filesystem
  // lists them cheaply (xattr_names_known = true; an empty list means it has
  // none). fuse-hostd then answers getxattr of other names and listxattr
  // without asking, for as long as it caches the attributes.
  bool xattr_names_known = false;
  std::vector<std::string> xattr_names;
  // Resume cookie for huge directories; 0 when returning a whole listing.
  uint64_t offset = 0;
};

// Options the backend reports when a mount starts.
struct InitResult {
  int posix_errno = 0;        // non-zero refuses the mount
  bool posix_locks = false;   // the filesystem implements Lock
  bool flock_locks = false;   // the filesystem implements Flock
  bool ioctl = false;         // the filesystem implements Ioctl (else the
                              // daemon answers ENOTTY without asking)
  // The filesystem keeps POSIX ACLs in the system.posix_acl_access and
  // system.posix_acl_default attributes and wants the kernel to enforce
  // them: the kernel then checks permissions itself (as with
  // default_permissions) with the ACLs it fetched, and applies the umask
  // to new files' modes; inheriting default ACLs is the filesystem's job.
  bool posix_acl = false;
  // Extended attribute names the filesystem does not keep, by prefix (e.g.
  // "security.selinux"): fuse-hostd answers them EOPNOTSUPP without asking
  // and leaves them out of listxattr, so that programs such as ls -l learn
  // at the first file that the mount has no such attribute. At most 16.
  std::vector<std::string> unsupported_xattr_prefixes;
  // The filesystem keeps no extended attributes (it overrides none of
  // Getxattr, Listxattr, Setxattr and Removexattr): fuse-hostd answers them
  // ENOSYS without asking, and the kernel then stops sending them (before
  // every write and for every file ls -l lists).
  bool no_xattrs = false;
  // How long fuse-hostd and the kernel may cache attributes, listings,
  // symlink targets and negative lookups (0: fuse-hostd's default of 1 s
  // and no negative caching). A filesystem that only changes through the
  // mount, or that reports outside changes with the Notify* calls, can allow
  // a long time.
  uint32_t default_ttl_ms = 0;
  // The filesystem may set FileInfo::passthrough_fd in Open/Create.
  bool passthrough = false;
  // With passthrough, for a filesystem whose files are the files beneath one
  // directory, path for path (a loopback), and whose Open of a file for
  // reading does nothing but open it: a descriptor of that directory (it
  // stays the filesystem's; O_PATH will do). fuse-hostd then answers
  // read-only opens of regular files itself, opening them beneath it as the
  // filesystem's user, or as the caller with `root_opens_as_caller` (a
  // filesystem that acts as its callers); Open is called only when an
  // operation needs the filesystem's handle (a lock, lseek, ioctl).
  int root_directory_fd = -1;
  bool root_opens_as_caller = false;
  // With root_directory_fd: Chmod, Chown and Utimens are nothing but those
  // system calls on the file beneath it (as the user above), with no effect
  // the filesystem needs to see. fuse-hostd then makes them itself and calls
  // them only for a change it cannot make (any error); their answer stands.
  // Getattr of a path is then the file's own lstat there, too: fuse-hostd
  // answers lookups its cache cannot itself (a missing name's ENOENT too),
  // and calls Getattr for the root and for what it cannot answer.
  bool root_changes_attributes = false;
  // With root_directory_fd: Unlink and Rmdir are nothing but unlinkat(2) of
  // the name beneath it, likewise; fuse-hostd then removes names itself.
  bool root_removes_names = false;
  // With root_directory_fd: Create is nothing but open(2) with O_CREAT of
  // the name beneath it, likewise (the mode as given: the caller's umask is
  // already applied), and any later call on the file may as well use a
  // handle Open makes by path. fuse-hostd then creates new files itself and
  // calls Open only if an operation ever needs the filesystem's handle.
  bool root_creates_files = false;
  // Readdir works without Opendir: called with fi.fh == 0 it lists `path`
  // as Opendir followed by Readdir would (the same permission checks and
  // errors), and Opendir and Releasedir do nothing fuse-hostd must wait
  // for. fuse-hostd then lists a directory it has not cached with one
  // Readdir instead of three calls.
  bool lists_by_path = false;
};

struct MountInfo {
  uint64_t mount_id = 0;
  std::string mountpoint;
  std::vector<std::string> options;  // options the daemon passed on
};

// Times for Utimens. `omit` leaves one unchanged; `now` sets it to now.
struct TimeSpec {
  bool omit = false;
  bool now = false;
  struct timespec time = {};
};

// The base of every backend: override the operations you support.
//
// Set-user-ID and set-group-ID bits are the backend's to clear. fuse-hostd
// mounts without the kernel's killpriv handling (FUSE_HANDLE_KILLPRIV), so
// the kernel only asks, with a Chmod in the writer's name that drops the
// bits, before writes and truncates it knows to come from someone without
// CAP_FSETID; it sends none before an O_TRUNC open or when its cached mode
// lacks the bits, and nothing else clears them for you. So:
// * allow that Chmod (only dropping S_ISUID, or S_ISGID with S_IXGRP) to a
//   caller who may write the file but does not own it, and
// * on every successful Write, Truncate, Fallocate, CopyFileRange (of the
//   output) and Open with O_TRUNC by a caller whose uid is not 0 (the SDK
//   cannot tell CAP_FSETID; treat root as privileged), clear them:
//     if (ctx.uid != 0) mode &= ~(S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
// A backend that performs writes as the caller on a local filesystem (as
// examples/loopback does) gets the second from the host kernel.
class FileSystem {
 public:
  FileSystem();
  virtual ~FileSystem();

  FileSystem(const FileSystem&) = delete;
  FileSystem& operator=(const FileSystem&) = delete;

  // --- Invalidations: changes the daemon did not make ---
  //
  // The daemon caches attributes, listings, symlink targets and absent
  // names (for the TTLs in replies), and so does the kernel. A filesystem
  // whose files also change another way (another client of the backing
  // store, a directory changed on the host) calls these so that the daemon
  // drops what it cached about `path` and tells the kernel, instead of
  // serving stale results until a TTL runs out. `path` is absolute, as in
  // operations ("/" for the root). Changes made by this filesystem's own
  // operations need no notice to the mount that made them; with several
  // mounts, the others need one (Notify*Except below).
  //
  // NotifyChanged: the file at `path` changed (contents or attributes) or
  //   appeared. A name that appeared or vanished also changed its parent
  //   directory (listing, mtime): notify the parent too.
  // NotifyRemoved: the name `path` no longer exists (unlinked, renamed away).
  // NotifySubtreeChanged: anything at or below `path` may have changed, e.g.
  //   a directory was renamed or replaced, or the filesystem lost track.
  //
  // Thread use: any thread, at any time, also from inside an operation and
  // while no server runs. The calls only queue (they never wait for the
  // network) and are delivered in call order. A notice goes to every
  // Invalidations stream open at that moment, one per mount the daemon made
  // with this backend. With no stream open it is dropped, which loses
  // nothing: the daemon drops all it cached whenever it (re)opens the
  // stream. A stream more than 10,000 notices behind has its queue replaced
  // by one NotifySubtreeChanged("/").
  void NotifyChanged(const std::string& path);
  void NotifyRemoved(const std::string& path);
  void NotifySubtreeChanged(const std::string& path);

  // The same, for every mount but `mount_id` (MountInfo::mount_id,
  // Context::mount_id). For a backend serving several mounts that learns
  // of a change one mount's operation made (e.g. by watching its store):
  // that mount's daemon knows already, as it knows all its own operations
  // did, but the other mounts cache what the change made stale.
  void NotifyChangedExcept(uint64_t mount_id, const std::string& path);
  void NotifyRemovedExcept(uint64_t mount_id, const std::string& path);
  void NotifySubtreeChangedExcept(uint64_t mount_id, const std::string& path);

  // --- Operations ---

  // Human-readable name shown by `fuse-hostctl list`.
  virtual std::string Name() const { return "fusehost-cpp"; }

  // Whether Getattr is cheap (an fstat, a look-up in memory). Then replies
  // carry attributes the kernel will ask for next, got with Getattr: of the
  // file after a write, of the directory after a name was added or removed
  // in it. Each spares a round trip later.
  virtual bool GetattrIsCheap() const { return false; }

  virtual InitResult Init(const MountInfo& mount);
  virtual void Destroy(uint64_t mount_id);

  // `fi` is non-null when called through an open file (fstat).
  virtual int Getattr(const Context& ctx, const std::string& path,
                      const FileInfo* fi, struct stat* st);
  virtual int Readlink(const Context& ctx, const std::string& path,
                       std::string* target);
  virtual int Mknod(const Context& ctx, const std::string& path, mode_t mode,
                    dev_t rdev);
  virtual int Mkdir(const Context& ctx, const std::string& path, mode_t mode);
  virtual int Unlink(const Context& ctx, const std::string& path);
  virtual int Rmdir(const Context& ctx, const std::string& path);
  virtual int Symlink(const Context& ctx, const std::string& target,
                      const std::string& path);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  virtual int Rename(const Context& ctx, const std::string& from,
                     const std::string& to, unsigned int flags);
  virtual int Link(const Context& ctx, const std::string& from,
                   const std::string& to);
  virtual int Chmod(const Context& ctx, const std::string& path, mode_t mode,
                    const FileInfo* fi);
  // uid/gid of (uid_t)-1 / (gid_t)-1 mean "leave unchanged".
  virtual int Chown(const Context& ctx, const std::string& path, uid_t uid,
                    gid_t gid, const FileInfo* fi);
  virtual int Truncate(const Context& ctx, const std::string& path,
                       off_t size, const FileInfo* fi);
  virtual int Utimens(const Context& ctx, const std::string& path,
                      const TimeSpec& atime, const TimeSpec& mtime,
                      const FileInfo* fi);
  virtual int Open(const Context& ctx, const std::string& path, FileInfo* fi);
  // Appends at most `size` bytes read at `offset` to `*data`.
  virtual int Read(const Context& ctx, const std::string& path,
                   std::string* data, size_t size, off_t offset,
                   const FileInfo& fi);
  virtual int Write(const Context& ctx, const std::string& path,
                    const std::string& data, off_t offset, const FileInfo& fi,
                    size_t* written);
  virtual int Statfs(const Context& ctx, const std::string& path,
                     struct statvfs* st);
  virtual int Flush(const Context& ctx, const std::string& path,
                    const FileInfo& fi);
  // The last close of an open file. Its result reaches nobody (the kernel
  // has answered the close already); it may run after later operations have
  // started, and on a pool thread after the SDK replied for the operations
  // sent with it (InitReply.releases_after_reply).
  virtual int Release(const Context& ctx, const std::string& path,
                      const FileInfo& fi);
  virtual int Fsync(const Context& ctx, const std::string& path, bool datasync,
                    const FileInfo& fi);
  virtual int Setxattr(const Context& ctx, const std::string& path,
                       const std::string& name, const std::string& value,
                       int flags);
  virtual int Getxattr(const Context& ctx, const std::string& path,
                       const std::string& name, std::string* value);
  // Names, each followed by a NUL byte, appended to `*list`.
  virtual int Listxattr(const Context& ctx, const std::string& path,
                        std::string* list);
  virtual int Removexattr(const Context& ctx, const std::string& path,
                          const std::string& name);
  virtual int Opendir(const Context& ctx, const std::string& path,
                      FileInfo* fi);
  // Appends entries to `*entries`. Either the whole listing (offsets 0) or a
  // page after `offset` with non-zero offsets; set *eof on the last page.
  virtual int Readdir(const Context& ctx, const std::string& path,
                      off_t offset, const FileInfo& fi,
                      std::vector<DirEntry>* entries, bool* eof);
  virtual int Releasedir(const Context& ctx, const std::string& path,
                         const FileInfo& fi);
  virtual int Fsyncdir(const Context& ctx, const std::string& path,
                       bool datasync, const FileInfo& fi);
  virtual int Access(const Context& ctx, const std::string& path, int mask);
  virtual int Create(const Context& ctx, const std::string& path, mode_t mode,
                     FileInfo* fi);
  // cmd: F_GETLK, F_SETLK or F_SETLKW. For F_GETLK, update *lock.
  virtual int Lock(const Context& ctx, const std::string& path,
                   const FileInfo& fi, int cmd, struct flock* lock);
  // op: LOCK_SH, LOCK_EX or LOCK_UN, possibly | LOCK_NB.
  virtual int Flock(const Context& ctx, const std::string& path,
                    const FileInfo& fi, int op);
  virtual int Fallocate(const Context& ctx, const std::string& path, int mode,
                        off_t offset, off_t length, const FileInfo& fi);
  virtual int CopyFileRange(const Context& ctx, const std::string& path_in,
                            const FileInfo& fi_in, off_t offset_in,
                            const std::string& path_out,
                            const FileInfo& fi_out, off_t offset_out,
                            size_t length, int flags, size_t* copied);
  // whence: SEEK_DATA or SEEK_HOLE.
  virtual int Lseek(const Context& ctx, const std::string& path, off_t offset,
                    int whence, const FileInfo& fi, off_t* result);
  // ioctl(2) of an open file or directory, for a command whose number says
  // what it passes (IoctlRequest in proto/filesystem.proto): `in` is what
  // it passes in (_IOC_WRITE commands), `*out` what it passes back
  // (_IOC_READ commands; at most `out_size` bytes, more is cut), `*result`
  // ioctl(2)'s return value (0 or more). `arg` is the caller's argument, a
  // number only (often an address in the caller's memory). `fi` is null
  // for a directory whose listing the daemon had cached and so never asked
  // to open. flags: FUSE_IOCTL_* (16, FUSE_IOCTL_DIR, on a directory).
  // Unknown commands answer ENOTTY, as the default does.
  virtual int Ioctl(const Context& ctx, const std::string& path,
                    uint32_t cmd, uint64_t arg, const FileInfo* fi,
                    uint32_t flags, const std::string& in, size_t out_size,
                    std::string* out, int* result);

 private:
  // Serves the Invalidations streams from the hub.
  friend class BackendService;

  // Where Notify* put notices: one queue per open stream.
  const std::unique_ptr<InvalidationHub> invalidations_;
};

struct ServeOptions {
  // gRPC listen address: "unix:/path/to.sock" or "host:port".
  std::string listen;
  // Threads running operations; 0 picks a default from the CPU count.
  int threads = 0;
  // Remove a stale Unix socket file at `listen` before binding.
  bool replace_stale_socket = true;
  // Permissions of a Unix socket. Whoever can connect can send operations
  // in any caller's name, so the default lets only this process's user (and
  // root, i.e. fuse-hostd) in.
  mode_t socket_mode = 0600;
  // TLS on a TCP address: PEM files of the certificate (chain) and its
  // private key, which must be readable by its owner only. They are read
  // again when they change, so a renewed certificate needs no restart.
  std::string tls_cert_file;
  std::string tls_key_file;
  // With TLS: the CA that signs the certificates clients must present
  // (mutual TLS; fuse-hostd's mount options tls_cert=, tls_key=). Empty:
  // clients are not asked for one.
  std::string tls_client_ca_file;
};

// Serves `fs` until SIGINT or SIGTERM. Returns 0 on a clean stop,
// or prints one line to stderr and returns 1 when it cannot listen.
//
// Serve blocks SIGINT and SIGTERM in the calling thread (threads it starts
// inherit that mask) and waits for them with sigwait(2); the previous mask is
// restored before it returns. Threads the program started earlier must block
// these signals too, or the kernel may deliver them there and kill the
// process: call Serve before starting threads of your own.
int Serve(FileSystem& fs, const ServeOptions& options);

}  // namespace fusehost

#endif  // FUSE_HOSTD_CLIENT_FILESYSTEM_H_
