// The whole filesystem (statfs), permission checks (access) and extended
// attributes.

#include <cerrno>
#include <utility>

#include "common/stat_convert.h"
#include "daemon/fuse/request_handlers.h"

namespace fusehost {

void RequestHandlers::Statfs(Request req, uint64_t node) {
  std::string path = HandlePath(node);
  v1::Op op = NewOp(*req);
  op.mutable_statfs()->set_path(path.empty() ? "/" : path);
  Send(std::move(op), [req](const v1::OpResult& res) {
    if (Failed(req, res)) return;
    struct statvfs st;
    StatvfsFromProto(res.statfs(), &st);
    req->ReplyStatfs(st);
  });
}

void RequestHandlers::Access(Request req, uint64_t node, int mask) {
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_access()->set_path(*path);
  op.mutable_access()->set_mask(mask);
  SendSimple(req, std::move(op));
}

void RequestHandlers::Setxattr(Request req, uint64_t node, std::string name,
                               absl::string_view value, int flags) {
  if (Unsupported(req, name)) return;
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  v1::SetxattrRequest* r = op.mutable_setxattr();
  r->set_path(*path);
  r->set_name(std::move(name));
  r->set_value(value.data(), value.size());
  r->set_flags(flags);
  SendChangingFile(req, std::move(op), node);
}

bool RequestHandlers::NoXattrs(const Request& req) {
  if (!options_.no_xattrs) return false;
  // The kernel remembers it and asks no more (libfuse's answer for a
  // filesystem without the callback).
  req->ReplyError(ENOSYS);
  return true;
}

bool RequestHandlers::Unsupported(const Request& req, absl::string_view name) {
  if (NoXattrs(req)) return true;
  if (!options_.unsupported_xattrs.Excludes(name)) return false;
  req->ReplyError(EOPNOTSUPP);
  return true;
}

void RequestHandlers::ReplyXattr(const Request& req, size_t size,
                                 const v1::OpResult& res,
                                 const XattrExclusions* drop) {
  if (Failed(req, res)) return;
  std::string filtered;
  if (drop != nullptr && !drop->empty()) {
    filtered = res.xattr().data();
    drop->Filter(&filtered);
  }
  // Size 0 asks for the length only; a value that does not fit the
  // caller's buffer is ERANGE.
  const std::string& data =
      drop != nullptr && !drop->empty() ? filtered : res.xattr().data();
  if (size == 0) {
    req->ReplyXattrSize(data.size());
  } else if (data.size() > size) {
    req->ReplyError(ERANGE);
  } else {
    req->ReplyData(data);
  }
}

void RequestHandlers::Getxattr(Request req, uint64_t node, std::string name,
                               size_t size) {
  if (Unsupported(req, name)) return;
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_getxattr()->set_path(*path);
  op.mutable_getxattr()->set_name(std::move(name));
  op.mutable_getxattr()->set_size(size);
  Send(std::move(op),
       [req, size](const v1::OpResult& res) { ReplyXattr(req, size, res); });
}

void RequestHandlers::Listxattr(Request req, uint64_t node, size_t size) {
  if (NoXattrs(req)) return;
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_listxattr()->set_path(*path);
  op.mutable_listxattr()->set_size(size);
  Send(std::move(op), [this, req, size](const v1::OpResult& res) {
    ReplyXattr(req, size, res, &options_.unsupported_xattrs);
  });
}

void RequestHandlers::Removexattr(Request req, uint64_t node,
                                  std::string name) {
  if (Unsupported(req, name)) return;
  std::optional<std::string> path = NamedPath(req, node);
  if (!path) return;
  v1::Op op = NewOp(*req);
  op.mutable_removexattr()->set_path(*path);
  op.mutable_removexattr()->set_name(std::move(name));
  SendChangingFile(req, std::move(op), node);
}

}  // namespace fusehost
