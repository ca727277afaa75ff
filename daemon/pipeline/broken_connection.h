// What the backend channel needs to know when a connection to its backend
// breaks (the backend died or restarted): whether it has, and which ops of a
// message in flight may be sent again on the next connection.

#ifndef FUSE_HOSTD_DAEMON_PIPELINE_BROKEN_CONNECTION_H_
#define FUSE_HOSTD_DAEMON_PIPELINE_BROKEN_CONNECTION_H_

#include "common/unique_fd.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

// True once the other end of a connection is gone (the backend died or
// closed it); `peer` is a descriptor of the daemon's end. Asked before each
// message, so that one sent after the backend died is not taken for lost in
// flight. False for an invalid descriptor.
bool PeerHungUp(const UniqueFd& peer);

// Ops that sending again is harmless for: those that change nothing
// (getattr, readlink, read, opendir, readdir, statfs, getxattr, listxattr,
// access, lseek, release(dir), an open without O_CREAT or O_TRUNC), and
// those that set a value given in full (chmod, chown, utimens), which
// write-behind sends long after answering them.
bool Repeatable(const v1::Op& op);

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PIPELINE_BROKEN_CONNECTION_H_
