// The daemon-side metadata cache of one mount: attributes, negative lookups
// (ENOENT), symlink targets and whole directory listings, keyed by backend
// path, each with its own expiry.
//
// Why keyed by path: the protocol is path-based and so are invalidations
// from backends; a rename moves a whole key range, which an ordered map makes
// cheap.
//
// Bounded: at most `max_entries` paths and about `max_bytes` of memory
// (keys, listings, symlink targets and extended attributes are counted, so
// a backend's huge answers cannot grow the daemon). When either is reached,
// a CLOCK sweep (a cheap LRU approximation: every hit sets a reference bit,
// the sweep evicts entries whose bit is clear and clears the others) frees a
// tenth. A listing bigger than an eighth of `max_bytes` is not kept at all,
// nor more than kMaxXattrAnswers extended attribute answers per path.
//
// Races with the backend: a read that was sent before some mutation must not
// cache its (possibly stale) answer after that mutation dropped the entry.
// Every change bumps `epoch()`; Put* take the epoch seen when the read was
// sent and store nothing if it moved since.
//
// Thread-safe: one mutex; no method calls out while holding it.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_H_

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/compact_string.h"
#include "daemon/pipeline/listing.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// Attributes in 80 bytes, instead of a protobuf message with three
// separately allocated timestamps. The device number, which only device
// files have, is kept apart (MetadataCache's Extra).
struct CompactAttr {
  uint64_t ino = 0, size = 0, blocks = 0;
  int64_t atime_sec = 0, mtime_sec = 0, ctime_sec = 0;
  uint32_t mode = 0, nlink = 0, uid = 0, gid = 0, blksize = 0;
  uint32_t atime_nsec = 0, mtime_nsec = 0, ctime_nsec = 0;

  static CompactAttr FromProto(const v1::Attr& attr);
  void ToProto(v1::Attr* out) const;
};


class MetadataCache {
 public:
  struct Options {
    size_t max_entries = 100000;
    size_t max_bytes = size_t{64} << 20;
  };
  // A byte bound that lets `max_entries` entries of an ordinary tree fit
  // (what each is counted for, its path and its name in its directory's
  // listing, is about 300 bytes), and 64 MiB at least.
  static size_t MaxBytesFor(size_t max_entries);

  enum class AttrLookup { kMiss, kHit, kNegative };

  explicit MetadataCache(Options options);
  MetadataCache(const MetadataCache&) = delete;
  MetadataCache& operator=(const MetadataCache&) = delete;

  // Current change epoch (see above).
  uint64_t epoch() const;

  // kHit fills *attr (with ttl_ms = the time left); kNegative means the path
  // is known not to exist.
  AttrLookup GetAttr(absl::string_view path, v1::Attr* attr);
  // The attributes last cached for `path`, fresh or not (with ttl_ms 0 once
  // past their lifetime): a hint of what the file was, never an answer.
  bool GetLastAttr(absl::string_view path, v1::Attr* attr);
  void PutAttr(absl::string_view path, const v1::Attr& attr,
               absl::Duration ttl, uint64_t epoch);
  void PutNegative(absl::string_view path, absl::Duration ttl, uint64_t epoch);

  // A fresh symlink target, or nullopt.
  std::optional<std::string> GetSymlink(absl::string_view path);
  void PutSymlink(absl::string_view path, const std::string& target,
                  absl::Duration ttl, uint64_t epoch);

  // A copy of a fresh listing, or nullopt.
  std::optional<Listing> GetListing(absl::string_view path);
  // A fresh listing itself, shared read-only (null if none): holders cost
  // nothing more, and later changes through the daemon copy it first.
  std::shared_ptr<const Listing> ShareListing(absl::string_view path);
  // The listing last cached for `path`, fresh or not: a hint of what the
  // directory held, never an answer.
  std::shared_ptr<const Listing> ShareLastListing(absl::string_view path);
  void PutListing(absl::string_view path, Listing listing, absl::Duration ttl,
                  uint64_t epoch);
  // Whether directory `dir` has a fresh listing, and if so whether `name`
  // is in it.
  // For a caller that goes through a directory (as find and ls -l do once
  // the names' lifetimes are over): the paths of up to `max` names of
  // `dir`'s listing whose attributes are not cached, from the one after
  // `name` on (and round to the start), `name` not included; with `step`
  // above 1, of every step-th name after `name` only (not round to the
  // start: a caller that moves by a stride moves on). A listing past its
  // own lifetime still serves: it only says what may be asked next. Empty
  // without a listing.
  std::vector<std::string> UncachedPathsIn(absl::string_view dir,
                                           absl::string_view name, size_t max,
                                           size_t step = 1);
  // How many places after `from` name `to` comes in `dir`'s listing (1:
  // the next name), if within `max`; 0 otherwise (no listing, either name
  // not in it, `to` not after `from`). A listing past its lifetime serves,
  // as above.
  size_t ListingDistance(absl::string_view dir, absl::string_view from,
                         absl::string_view to, size_t max);
  bool ListingKnows(absl::string_view dir, absl::string_view name,
                    bool* present);
  // Whether directory `dir` has a fresh listing with no name in it: as far
  // as the daemon knows, it is empty (a listing is kept only whole, and
  // changes through the daemon edit it).
  bool ListingEmpty(absl::string_view dir);

  // A directory's default ACL, which the layers above reason about (a new
  // directory inherits it; creates beneath it take it).
  static constexpr char kDefaultAclXattr[] = "system.posix_acl_default";

  // Extended attributes of `path`: kHit fills *value; kNegative means the
  // attribute does not exist (ENODATA). `name` "" stands for the listxattr
  // result (no attribute has an empty name).
  // For kNegative, *negative_errno (if given) gets the errno to answer:
  // ENODATA, or EOPNOTSUPP where the backend does not support the name.
  AttrLookup GetXattr(absl::string_view path, absl::string_view name,
                      std::string* value, int* negative_errno = nullptr);
  // `value` null records absence, answered with `negative_errno`. Values
  // above kMaxCachedXattr bytes are not kept.
  void PutXattr(absl::string_view path, absl::string_view name,
                const std::string* value, absl::Duration ttl, uint64_t epoch,
                int negative_errno = ENODATA);
  static constexpr size_t kMaxCachedXattr = 4096;
  static constexpr size_t kMaxXattrAnswers = 32;
  // Extended attribute `name` is not supported by the filesystem at all
  // (the backend answered EOPNOTSUPP): a namespace it lacks, such as
  // security.selinux on tmpfs without a security module. GetXattr then
  // answers EOPNOTSUPP for every path until `ttl` passes, and `ls -l`,
  // which asks every file, stops asking after the first.
  void PutUnsupportedXattr(absl::string_view name, absl::Duration ttl);
  // A setxattr of `name` worked: it is supported after all.
  void XattrSupported(absl::string_view name);
  // Forgets the extended attributes of `path`.
  void DropXattrs(absl::string_view path);

  // What a mutation through the daemon knows. All of these bump the epoch.
  // Stores attributes a mutation returned (no epoch check: it is the newest
  // truth), replacing a negative entry.
  void UpdateAttr(absl::string_view path, const v1::Attr& attr,
                  absl::Duration ttl);
  // Forgets the attributes (and negative state) of `path`.
  void DropAttr(absl::string_view path);
  // A file written where the daemon does not see it (passthrough): the size,
  // blocks and mtime of `path`'s cached attributes become `backing`'s, and
  // ctime too unless it is older, in place and at once, so that nothing
  // dropped meanwhile comes back. False, and nothing changed, if `path`'s
  // attributes are not cached.
  bool UpdateWritten(absl::string_view path, const struct stat& backing);
  // Forgets the listing of directory `path`.
  void DropListing(absl::string_view path);
  // A name appeared in or left directory `dir` (through the daemon): edits a
  // cached listing, if there is one.
  void ListingAdd(absl::string_view dir, absl::string_view name,
                  ListingEntry entry);
  void ListingRemove(absl::string_view dir, absl::string_view name);
  // A directory just made is empty: its listing is known without asking.
  void PutNewDirectory(absl::string_view path, absl::Duration ttl);
  // Forgets everything about `path` and below it.
  void DropSubtree(absl::string_view path);
  // `path` no longer exists: forgets it and below, and remembers it as
  // absent for `ttl` (if positive).
  void MarkRemoved(absl::string_view path, absl::Duration negative_ttl);
  // A rename: entries at and below `from` move to `to` (replacing what was
  // there); with `exchange` the two subtrees swap.
  void Rename(absl::string_view from, absl::string_view to, bool exchange);
  // Paths other than `except` whose cached attributes have inode number
  // `ino` and a link count above one (hard links of one file), in order:
  // never directories, none for ino 0. From an index of such paths, so its
  // cost does not grow with the cache.
  std::vector<std::string> PathsWithIno(uint64_t ino, absl::string_view except);
  // Backend's inode number of cached `path`, with its link count (also for
  // a hard-linked name whose attributes were dropped).
  bool GetIno(absl::string_view path, uint64_t* ino, uint32_t* nlink);
  void Clear();

  size_t size() const;
  size_t max_entries() const { return options_.max_entries; }
  // Memory the entries hold, as counted against max_bytes.
  size_t bytes() const;
  size_t max_bytes() const { return options_.max_bytes; }
  // Bytes a listing is counted for.
  static size_t ListingBytes(const Listing& listing);

 private:
  // What only some paths have: a symlink target, a directory's listing,
  // answers about extended attributes beyond "there are none". Kept apart
  // so that the entry of a plain file stays small.
  struct Extra {
    uint64_t rdev = 0;  // of a device file's cached attributes
    int64_t symlink_expiry = 0;  // 0: no target cached
    std::string symlink;
    int64_t listing_expiry = 0;  // 0: no listing cached
    std::shared_ptr<Listing> listing;  // copied before a change if shared
    size_t listing_bytes = 0;  // what the listing is counted for
    // Answers per name ("" for the listxattr answer), absent ones with
    // their errno. Valid until the entry's xattr_expiry.
    struct XattrAnswer {
      int negative_errno = 0;  // 0: `value` is the attribute's value
      std::string value;
    };
    absl::flat_hash_map<std::string, XattrAnswer> xattrs;

    bool empty() const {
      return rdev == 0 && symlink_expiry == 0 && listing_expiry == 0 &&
             xattrs.empty();
    }
  };

  // One path. Every file of a listed tree has one, so it is kept to what
  // a plain file needs: its attributes and whether it has extended
  // attributes.
  struct Entry {
    enum State : uint8_t { kNone, kAttr, kNegative };
    CompactAttr attr;
    int64_t attr_expiry = 0;  // absl::ToUnixNanos
    // Most files have no extended attributes but are asked for a few
    // (security.capability on every write, ACLs on `ls -l`): answers are
    // valid until xattr_expiry (0: none cached). With no_xattrs the backend
    // listed the file's names and there were none, so every name but
    // trusted.* is absent, at no allocation.
    int64_t xattr_expiry = 0;
    std::unique_ptr<Extra> extra;  // null: none of it
    // What this entry is counted for in bytes_ (see Recharge).
    uint32_t charged = 0;
    State state = kNone;
    bool referenced = false;
    bool no_xattrs = false;
    // In hard_links_ under its key and attr.ino (see Link).
    bool linked = false;

    int64_t symlink_expiry() const {
      return extra ? extra->symlink_expiry : 0;
    }
    int64_t listing_expiry() const {
      return extra ? extra->listing_expiry : 0;
    }
    // The extra part, made if missing.
    Extra& MakeExtra() {
      if (!extra) extra = std::make_unique<Extra>();
      return *extra;
    }
    // Frees the extra part once nothing is left in it.
    void TrimExtra() {
      if (extra && extra->empty()) extra.reset();
    }
    // Forgets the extended attribute answers.
    void ClearXattrs() {
      xattr_expiry = 0;
      no_xattrs = false;
      if (extra) {
        extra->xattrs.clear();
        TrimExtra();
      }
    }
    bool empty() const {
      return state == kNone && xattr_expiry == 0 && extra == nullptr;
    }
    // The attributes, as stored and as answered.
    void SetAttr(const v1::Attr& a);
    // The attributes are forgotten (kNone), or the path is known absent
    // (kNegative: then nothing else about it holds either). Frees what
    // only they needed, so that an entry left with nothing is erased.
    void ForgetAttr(State now);
    void AttrToProto(v1::Attr* a) const;
  };
  // Keyed by CompactString: a path takes 16 bytes where std::string takes
  // 32, in an entry every file of a listed tree has.
  using Map = absl::btree_map<CompactString, Entry, CompactStringLess>;

  // Whether `path` has attributes or an absence cached, still valid.
  bool AttrCachedLocked(absl::string_view path, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry for `path`, created if needed (may evict others).
  Entry& EntryFor(absl::string_view path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseIfEmpty(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts `e` (at key `path`) anew after a change, and evicts if the cache
  // is now over its byte bound: `e` may be gone when this returns.
  void Recharge(absl::string_view path, Entry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Erases [first, last), uncounting what it held.
  Map::iterator EraseRange(Map::iterator first, Map::iterator last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // [first, last) of `path` and its descendants.
  std::pair<Map::iterator, Map::iterator> SubtreeRange(absl::string_view path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keep hard_links_ true: Unlink before anything changes an entry's state
  // or attributes (or erases it), Link after (Link adds it only if it is a
  // file with cached attributes, an inode number and several links).
  // DropSubtree's work, under the lock.
  void DropSubtreeLocked(absl::string_view path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unlink(absl::string_view path, Entry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Link(absl::string_view path, Entry& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `edit` on the cached listing of `dir` (unshared first) and counts
  // the entry anew; nothing if there is none. Bumps the epoch either way.
  void EditListing(absl::string_view dir, absl::FunctionRef<void(Extra&)> edit)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records the name list an Attr may carry (Attr.xattr_names) as the
  // listxattr answer, valid as long as the attributes.
  static void NoteXattrNames(Entry& e, const v1::Attr& attr);

  const Options options_;
  mutable absl::Mutex mu_;
  Map entries_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::string clock_hand_ ABSL_GUARDED_BY(mu_);
  // The paths of Entry::linked entries, by inode number: what
  // PathsWithIno answers, without a scan of every entry. Only files with
  // several names are in it, so it is small beside entries_.
  absl::flat_hash_map<uint64_t, std::vector<CompactString>> hard_links_
      ABSL_GUARDED_BY(mu_);
  // PutUnsupportedXattr: name -> expiry (absl::ToUnixNanos). A handful.
  absl::flat_hash_map<std::string, int64_t> unsupported_xattrs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_METADATA_CACHE_H_
