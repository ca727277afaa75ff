// The user a request's caller (v1::Caller) is, as RootDirectory acts as it.

#ifndef FUSE_HOSTD_DAEMON_PASSTHROUGH_CALLER_IDENTITY_H_
#define FUSE_HOSTD_DAEMON_PASSTHROUGH_CALLER_IDENTITY_H_

#include "daemon/authz/as_user.h"
#include "proto/filesystem.pb.h"

namespace fusehost {

inline UserIdentity UserIdentityOf(const v1::Caller& caller) {
  UserIdentity who;
  who.uid = caller.uid();
  who.gid = caller.gid();
  who.groups.assign(caller.groups().begin(), caller.groups().end());
  return who;
}

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_PASSTHROUGH_CALLER_IDENTITY_H_
