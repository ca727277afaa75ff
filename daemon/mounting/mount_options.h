// Parsing of `-o` mount option strings into what the daemon acts on.
//
// Options the daemon understands become fields; anything else is kept, in
// order, for the backend (InitRequest.options). Malformed values are errors
// with a message naming the option.
//
// Thread-safe: pure functions and plain data.

#ifndef FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_OPTIONS_H_
#define FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_OPTIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fusehost {

struct MountOptions {
  bool read_only = false;
  bool allow_other = false;
  // The kernel checks permissions from file modes (on unless
  // no_default_permissions).
  bool default_permissions = true;
  // mount(2) flags. nosuid and nodev are on unless suid / dev are given.
  bool nosuid = true;
  bool nodev = true;
  bool noexec = false;
  bool noatime = false;
  // Source shown in /proc/mounts; empty means "use the backend address".
  std::string fsname;
  // Filesystem type becomes "fuse.<subtype>".
  std::string subtype = "hostd";
  // How long the daemon and the kernel may trust attributes (and listings,
  // symlink targets), a name, and a negative lookup. Unset: what the backend
  // asks for (InitReply.default_ttl_ms, per-reply ttl_ms), else 1 s for
  // attributes and names and no negative caching.
  std::optional<absl::Duration> attr_timeout;
  std::optional<absl::Duration> entry_timeout;
  std::optional<absl::Duration> negative_timeout;
  // Paths the daemon's metadata cache may hold (0: no daemon-side cache).
  // The default holds a tree of a million files.
  static constexpr size_t kDefaultCacheEntries = 1000000;
  size_t cache_entries = kDefaultCacheEntries;
  // Deadline of each backend call.
  absl::Duration call_timeout = absl::Seconds(30);
  // TCP backends: a connection that has not answered a ping within this
  // long of its last sign of life, plus as long again, is dead, and the
  // next call makes a new one (a backend host that went away without
  // closing its connections). Zero: no pings.
  absl::Duration keepalive = absl::Seconds(10);
  // Largest write the kernel sends in one request (0: libfuse's default).
  unsigned max_write = 0;
  // The kernel's read-ahead window in KiB, which bounds the size of read
  // requests (0: the kernel's default, 128). See read_ahead.h. Four 1 MiB
  // requests in flight: with one, the backend and the daemon took turns
  // idling (a sequential read without passthrough 7-15% slower locally,
  // 1.3x slower through a link of 1 ms, 2.4x through one of 10 ms); more
  // gained nothing more.
  unsigned read_ahead_kb = 4096;
  // TCP backends: TLS unless `insecure` (plain TCP, asked for by name).
  // tls_ca: PEM file of the CA(s) the backend's certificate must chain to;
  // tls_server_name: the name it must carry (default: the address's host);
  // tls_cert/tls_key: the daemon's client certificate for mutual TLS. The
  // files are read as the user who asks for the mount (tls/tls_files.h).
  bool insecure = false;
  std::string tls_ca;
  std::string tls_server_name;
  std::string tls_cert;
  std::string tls_key;
  bool uses_tls() const { return !tls_ca.empty(); }
  // Kernel passthrough of file data (daemon/passthrough): on where the
  // kernel supports it and the backend hands over descriptors ("auto", the
  // default), or never ("off").
  bool passthrough = true;
  // Read-only opens answered by the daemon itself beneath a loopback
  // backend's root directory (InitReply.root_directory), where the backend
  // offers one and passthrough is on (mount option daemon_opens=auto|off).
  bool daemon_opens = true;
  // chmod, chown and utimens, unlink and rmdir, and create, made by the
  // daemon itself beneath that directory, where the backend says they are
  // nothing but the system call (InitReply.root_changes_attributes,
  // root_removes_names, root_creates_files; mount option
  // daemon_changes=auto|off).
  bool daemon_changes = true;
  // Subdirectories of a listing whose own listings are fetched ahead
  // (pipeline/listing_prefetcher.h); 0: none. Unset: 64 for a backend
  // reached over TCP, where each round trip costs, or one that lists by path
  // (a listing fetched ahead is then one message), none for another local
  // one.
  std::optional<size_t> prefetch_listings;
  // Small files per fetch of contents ahead of their opens
  // (fuse/contents_ahead.h); 0: none. Unset: 256 for a backend reached over
  // TCP, none for a local one.
  std::optional<size_t> prefetch_contents;
  // Write-behind (pipeline/write_behind.h): chmod, chown, utimens, unlink
  // and rmdir (of a directory known empty) answered from the daemon's
  // cache and sent to the backend after.
  // Needs default_permissions and the cache.
  bool write_behind = false;
  // FUSE over io_uring (fuse/uring_queues.h): a queue per CPU served on
  // that CPU, where the kernel offers it; /dev/fuse otherwise.
  bool uring = false;
  // The kernel's writeback cache: writes gather in the page cache and reach
  // the backend in large writes (at close, fsync, or when the kernel writes
  // them back), and the kernel keeps files' sizes and times itself. The
  // kernel offers it only without passthrough, which it turns off. Unset:
  // on for a backend reached over TCP (which has no passthrough, and where
  // each write's round trip costs), off for a local one.
  std::optional<bool> writeback_cache;
  // Messages on the backend's Session stream when it serves one
  // (pipeline/backend_session.h); false (the default, which measured as
  // fast with half the thread switches): an Execute call per message.
  bool session = false;
  // Options for the backend, as given.
  std::vector<std::string> backend_options;
};

// Parses "ro,allow_other,fsname=x,...". Empty items are ignored. Checks
// that the TLS options go together (a CA for any of them, cert with key,
// none with insecure).
absl::StatusOr<MountOptions> ParseMountOptions(absl::string_view text);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_MOUNTING_MOUNT_OPTIONS_H_
