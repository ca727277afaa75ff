// Which names of a directory a caller that looks them up one after the other
// will ask for next: the stride it moves by through the directory's listing
// (CachingTransport fetches those names' attributes ahead of it).
//
// A walk is a run of lookups in one directory. Its first miss of the cache
// fetches nothing ahead (a lone lookup says nothing about the next). At each
// later miss the names fetched ahead are those at the caller's own stride:
// the places in the listing between the name it asked before (answered from
// the cache or not) and this one. `ls -l` once the names' lifetimes are over
// moves by one name; `cat` of every 19th file of a directory by 19, and
// fetching every name ahead of it would make the backend answer 18 names for
// each one asked. A caller that goes in another order (a stride that changes
// within the directory, or backwards) gets every name ahead, as before its
// stride was looked at.
//
// Thread-safe. One walk at a time: callers walking several directories at
// once interleave, and each miss in another directory starts a new walk.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_LOOKUP_WALK_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_LOOKUP_WALK_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fusehost {

class LookupWalk {
 public:
  // How many places after `from` name `to` comes in directory `dir`'s
  // listing (1: the next one); 0 when that is not known (no listing, a name
  // not in it, `to` not after `from`, or too far): MetadataCache::
  // ListingDistance.
  using Distance = std::function<size_t(
      absl::string_view dir, absl::string_view from, absl::string_view to)>;

  struct Ahead {
    bool fetch = false;  // false: a lone miss, fetch nothing ahead
    size_t step = 1;     // fetch every step-th name after the asked one
  };

  // `path` was answered from the cache.
  void Hit(absl::string_view path);
  // `path` missed the cache: what to fetch ahead of the caller.
  Ahead Miss(absl::string_view path, const Distance& distance);

 private:
  absl::Mutex mu_;
  std::string dir_ ABSL_GUARDED_BY(mu_);   // the walk's directory
  std::string last_ ABSL_GUARDED_BY(mu_);  // the name asked last in it
  // The stride of the walk's last fetch ahead; 0 before the first.
  size_t step_ ABSL_GUARDED_BY(mu_) = 0;
  // The stride changed within the directory: every name from then on.
  bool every_name_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_LOOKUP_WALK_H_
