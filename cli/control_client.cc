#include "cli/control_client.h"

#include <limits.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {

ControlClient::ControlClient(Options options)
    : options_(std::move(options)),
      channel_(grpc::CreateChannel("unix:" + options_.socket_path,
                                   grpc::InsecureChannelCredentials())),
      stub_(v1::Control::NewStub(channel_)) {}

absl::Status ControlClient::CheckSocket() const {
  struct stat st;
  if (stat(options_.socket_path.c_str(), &st) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "fuse-hostd is not running (no control socket at ",
        options_.socket_path, ": ", strerror(errno), ")"));
  }
  return absl::OkStatus();
}

void ControlClient::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
}

grpc::Status ControlClient::Mount(const std::string& backend,
                                  const std::string& mountpoint,
                                  const std::string& options,
                                  uint64_t* mount_id) {
  v1::MountRequest request;
  request.set_backend(backend);
  request.set_mountpoint(AbsolutePath(mountpoint));
  request.set_options(options);
  v1::MountReply reply;
  grpc::ClientContext context;
  Prepare(&context);
  grpc::Status s = stub_->Mount(&context, request, &reply);
  if (s.ok() && mount_id != nullptr) *mount_id = reply.mount_id();
  return s;
}

grpc::Status ControlClient::Unmount(const std::string& mountpoint, bool lazy) {
  v1::UnmountRequest request;
  request.set_mountpoint(AbsolutePath(mountpoint));
  request.set_lazy(lazy);
  v1::UnmountReply reply;
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->Unmount(&context, request, &reply);
}

grpc::Status ControlClient::List(v1::ListReply* reply) {
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->List(&context, v1::ListRequest(), reply);
}

grpc::Status ControlClient::Stats(const std::string& mountpoint,
                                  v1::StatsReply* reply) {
  v1::StatsRequest request;
  if (!mountpoint.empty()) request.set_mountpoint(AbsolutePath(mountpoint));
  grpc::ClientContext context;
  Prepare(&context);
  return stub_->Stats(&context, request, reply);
}

grpc::Status ControlClient::Health(
    const std::string& service, grpc::health::v1::HealthCheckResponse* reply) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::ClientContext context;
  Prepare(&context);
  return stub->Check(&context, request, reply);
}

std::string ControlClient::Describe(const grpc::Status& status) const {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      status.error_message().find("unreachable") == std::string::npos) {
    return absl::StrCat("cannot reach fuse-hostd at ", options_.socket_path,
                        " (is it running?)");
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return "fuse-hostd did not answer in time";
  }
  return status.error_message();
}

std::string AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

std::string UserName(uint32_t uid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found) {
    return found->pw_name;
  }
  return std::to_string(uid);
}

}  // namespace fusehost
