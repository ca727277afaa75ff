// Mount's op pipeline: the layers between the kernel session and the
// backend channel, chosen from the mount's options and what the backend
// said it does (InitReply). From the top:
//
//   CachingTransport ─► ChangesByDaemon ─► WriteBehind ─► Batcher
//     ─► ReplyValidator ─► BackendChannel
//
// ChangesByDaemon only where the backend handed over its root directory,
// WriteBehind only with write_behind; without a cache (cache_entries=0)
// neither, and CachingTransport passes everything on.

#include "daemon/mount.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace fusehost {
namespace {

// How long a release waits for another message to ride in: the next file's
// open or create follows a close within microseconds.
constexpr absl::Duration kHoldReleases = absl::Milliseconds(2);
// How long a change answered early (write_behind) waits for others to share
// its message: `rm -rf` makes one every few dozen microseconds. Longer over
// TCP, where each message also costs the link (TLS, framing, a relay): an
// untar through a link adding 1 ms went in about 500 messages of 20-25 ops
// with 2 ms, in 215 mostly full ones with 10 ms.
constexpr absl::Duration kWriteBehindLinger = absl::Milliseconds(2);
constexpr absl::Duration kWriteBehindLingerOverTcp = absl::Milliseconds(10);

}  // namespace

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

void Mount::BuildPipeline(const v1::InitReply& reply) {
  policy_ = MakeCachePolicy(options_, reply);
  ReplyValidator::Options validator;
  validator.sink = channel_.get();
  validator.transport = channel_.get();
  validator.stats = &stats_;
  validator.log_name = spec_.mountpoint;
  validator_ = std::make_unique<ReplyValidator>(std::move(validator));
  Batcher::Options batching;
  // A release nobody waits for rides with the next message (cat, untar:
  // one message per file instead of two) where the backend does it after
  // replying to the rest, unless the backend keeps flock locks, which a
  // release unlocks for other callers.
  if (reply.releases_after_reply() && !reply.flock_locks()) {
    batching.hold_releases = kHoldReleases;
  }
  // Ops that belong together (a listing's attributes) go in messages of
  // the size the backend asks for, within bounds.
  if (reply.ops_together() > 0) {
    batching.max_ops_together =
        static_cast<int>(std::min<uint32_t>(reply.ops_together(), 1024));
  }
  batcher_ = std::make_unique<Batcher>(batching, validator_.get(),
                                          validator_.get());
  if (options_.cache_entries > 0) {
    MetadataCache::Options cache_options;
    cache_options.max_entries = options_.cache_entries;
    cache_options.max_bytes =
        MetadataCache::MaxBytesFor(options_.cache_entries);
    cache_ = std::make_unique<MetadataCache>(cache_options);
  }
  OpTransport* below_cache = batcher_.get();
  if (options_.write_behind && cache_ != nullptr) {
    WriteBehind::Options wb;
    wb.next = batcher_.get();
    wb.cache = cache_.get();
    wb.log_name = spec_.mountpoint;
    wb.in_order = reply.runs_batches_in_order();
    wb.takes_handles_from_earlier_ops = [channel = channel_.get()] {
      return channel->TakesHandlesFromEarlierOps();
    };
    // Creates are answered early with handle tokens of the daemon's own;
    // where the backend keeps POSIX ACLs, only in directories known to
    // have no default ACL.
    wb.handles = channel_->handles();
    wb.posix_acl = reply.posix_acl();
    wb.acl_ttl = policy_.attr_ttl;
    // Its data is queued in the daemon, not in the kernel, and a flush
    // would only release POSIX locks, which only such a backend keeps.
    wb.noflush = !reply.posix_locks();
    // Changes answered early go a few dozen to a message rather than a
    // few: each waits at most this long for the next ones.
    wb.linger = OverTcp() ? kWriteBehindLingerOverTcp : kWriteBehindLinger;
    // What an early answer made the caches believe is forgotten.
    wb.on_failure = [this](const std::vector<std::string>& paths) {
      for (const std::string& path : paths) {
        v1::Invalidation notice;
        notice.set_kind(v1::Invalidation::CHANGED);
        notice.set_path(path);
        caching_->ApplyNotice(notice);
      }
    };
    write_behind_ = std::make_unique<WriteBehind>(std::move(wb));
    below_cache = write_behind_.get();
  }
  // Above write-behind, so that a change it still holds for a path sends
  // the next one after it.
  if (root_ != nullptr && cache_ != nullptr &&
      options_.daemon_changes) {
    ChangesByDaemon::Options here;
    here.root = root_.get();
    here.cache = cache_.get();
    here.next = below_cache;
    here.handles = channel_->handles();
    here.inbox = inbox_.get();
    here.backend_posix_locks = reply.posix_locks();
    // Asked by notices only, which start after the session.
    here.written_through = [this](const std::string& path) {
      return session_ != nullptr && session_->WritesThrough(path);
    };
    if (write_behind_ != nullptr) {
      here.queued_at = [wb = write_behind_.get()](const std::string& p) {
        return wb->Touches(p);
      };
    }
    changes_by_daemon_ = std::make_unique<ChangesByDaemon>(std::move(here));
    below_cache = changes_by_daemon_.get();
  }
  CachingTransport::Options caching;
  caching.policy = policy_;
  caching.cache = cache_.get();
  caching.next = below_cache;
  caching.stats = &stats_;
  // Ahead of the walker where a listing's round trip costs: over TCP, and
  // where a listing fetched ahead is one readdir rather than three messages.
  // Over TCP a whole level of a few hundred directories is asked for at
  // once: each one left out costs the walker a round trip of its own.
  caching.prefetch_listings = options_.prefetch_listings.value_or(
      OverTcp() ? 256 : reply.lists_by_path() ? 64 : 0);
  // Far away, a level's listings are asked for together: each wave of them
  // costs a round trip.
  if (OverTcp()) caching.prefetch_in_flight = 64;
  caching.lists_by_path = &lists_by_path_;
  caching.no_xattrs = reply.no_xattrs();
  caching_ = std::make_unique<CachingTransport>(std::move(caching));
}

}  // namespace fusehost
