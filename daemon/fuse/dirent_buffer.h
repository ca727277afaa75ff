// A readdir or readdirplus reply being filled, in the kernel's format.
//
// The kernel gives a byte budget; each entry is appended only if it fits.
// For readdirplus an entry carries a KernelEntry, which hands the kernel a
// lookup reference: callers check Fits() first and take the reference only
// for an entry that will be appended.
//
// Thread use: one buffer per request, one thread at a time.

#ifndef FUSE_HOSTD_DAEMON_FUSE_DIRENT_BUFFER_H_
#define FUSE_HOSTD_DAEMON_FUSE_DIRENT_BUFFER_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <string>

#include "daemon/fuse/kernel_request.h"

namespace fusehost {

class DirentBuffer {
 public:
  // `plus`: readdirplus entries (with attributes), else plain ones.
  DirentBuffer(size_t size, bool plus);

  // Whether an entry named `name` still fits.
  bool Fits(const std::string& name) const;
  // Appends an entry; `next` is the offset the kernel continues from after
  // it. For plain entries only entry.attr's st_ino and file type are used.
  // Returns false (and appends nothing) when it does not fit.
  bool Add(const std::string& name, const KernelEntry& entry, off_t next);

  bool empty() const { return used_ == 0; }
  // The reply bytes.
  std::string Take();

 private:
  size_t EntrySize(const std::string& name) const;

  const bool plus_;
  std::string buf_;
  size_t used_ = 0;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_FUSE_DIRENT_BUFFER_H_
