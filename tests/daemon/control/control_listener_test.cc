#include "daemon/control/control_listener.h"

#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>

#include "daemon/authz/as_user.h"
#include "gtest/gtest.h"
#include "proto/control.grpc.pb.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

// Answers List with one entry carrying the caller's credentials, and the
// peer string in `backend` (to see what gRPC calls an fd channel's peer).
class WhoAmI final : public v1::Control::Service {
 public:
  explicit WhoAmI(ControlListener** listener) : listener_(listener) {}
  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest*,
                    v1::ListReply* reply) override {
    absl::StatusOr<PeerCredentials> caller = (*listener_)->CallerOf(*context);
    if (!caller.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          std::string(caller.status().message()));
    }
    v1::MountInfo* m = reply->add_mounts();
    m->set_owner_uid(caller->uid);
    m->set_owner_gid(caller->gid);
    m->set_backend(context->peer());
    m->set_mount_id(caller->groups.size());
    return grpc::Status::OK;
  }

 private:
  ControlListener** listener_;
};

class ControlListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as others";
    socket_ = dir_.Sub("control.sock");
    UniqueFd fd = ListenUnix(socket_, 0666);
    ASSERT_TRUE(fd.valid());
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    listener_ = std::make_unique<ControlListener>(
        ControlListener::Options{fd.release(), server_.get()});
    raw_listener_ = listener_.get();
    listener_->Start();
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
    if (server_) server_->Shutdown();
  }

  // Calls List over a connection made as `user`; returns the reply.
  grpc::Status CallAs(const UserIdentity& user, v1::ListReply* reply) {
    absl::StatusOr<UniqueFd> fd = ConnectUnixAsUser(user, socket_);
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "connect");
    auto channel = grpc::CreateInsecureChannelFromFd("control", fd->release());
    auto stub = v1::Control::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub->List(&ctx, v1::ListRequest(), reply);
  }

  ScratchDir dir_;
  std::string socket_;
  ControlListener* raw_listener_ = nullptr;
  WhoAmI service_{&raw_listener_};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ControlListener> listener_;
};

TEST_F(ControlListenerTest, EachCallSeesItsConnectionsCredentials) {
  v1::ListReply reply;
  ASSERT_TRUE(CallAs(UserIdentity{kNobody, kNogroup, {kNogroup, 4242}}, &reply)
                  .ok());
  ASSERT_EQ(reply.mounts_size(), 1);
  EXPECT_EQ(reply.mounts(0).owner_uid(), kNobody);
  EXPECT_EQ(reply.mounts(0).owner_gid(), kNogroup);
  EXPECT_EQ(reply.mounts(0).mount_id(), 2u);  // both supplementary groups
  // What gRPC names an fd channel's peer: the mapping relies on it.
  EXPECT_EQ(reply.mounts(0).backend().rfind("fd:", 0), 0u)
      << reply.mounts(0).backend();

  reply.Clear();
  ASSERT_TRUE(CallAs(UserIdentity{0, 0, {}}, &reply).ok());
  EXPECT_EQ(reply.mounts(0).owner_uid(), 0u);
}

TEST_F(ControlListenerTest, ReusedDescriptorNumbersMapToTheNewConnection) {
  // Connections come and go; the daemon-side descriptor numbers are reused.
  for (int i = 0; i < 6; ++i) {
    uid_t uid = i % 2 == 0 ? kNobody : 0;
    v1::ListReply reply;
    ASSERT_TRUE(CallAs(UserIdentity{uid, uid == 0 ? 0 : kNogroup, {}}, &reply)
                    .ok());
    EXPECT_EQ(reply.mounts(0).owner_uid(), uid) << "round " << i;
  }
}

TEST(ControlListenerCallerOf, RejectsCallsNotFromTheListener) {
  ControlListener listener(ControlListener::Options{-1, nullptr});
  grpc::ServerContext context;  // peer() is empty outside a call
  EXPECT_TRUE(absl::IsUnauthenticated(listener.CallerOf(context).status()));
}

}  // namespace
}  // namespace fusehost
