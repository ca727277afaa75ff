// ioctl through the request handlers: what is forwarded (command, argument,
// flags, the data in, the size of the caller's buffer, the handle of a file
// or of a directory) and what is refused before reaching the backend.

#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "tests/daemon/fuse/handler_harness.h"

namespace fusehost {
namespace {

using Kind = FakeRequest::Kind;
constexpr uint64_t kRoot = NodeTable::kRootId;
constexpr uint32_t kIoctlDir = 1 << 4;  // FUSE_IOCTL_DIR

class IoctlHandlerTest : public HandlerTest {
 protected:
  IoctlHandlerTest() { SetBackendIoctl(true); }
  KernelIoctl Command(absl::string_view in, size_t out_size) {
    KernelIoctl io;
    io.cmd = 0xc0044d01;  // _IOWR('M', 1, uint32_t)
    io.arg = 0x7ffd1000;
    io.in = in;
    io.out_size = out_size;
    return io;
  }
};

TEST_F(IoctlHandlerTest, TerminalCommandsAreAnsweredWithoutTheBackend) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kIoctl);
  KernelIoctl io;
  io.cmd = 0x5401;  // TCGETS, as isatty() sends it
  io.out_size = 60;
  handlers_->Ioctl(req, node, /*fh=*/17, io);
  EXPECT_EQ(req->err, ENOTTY);
  EXPECT_EQ(sent(), 1u) << "only the lookup reached the backend";
}

TEST_F(IoctlHandlerTest, AFileCommandCarriesItsDataAndAnswersWithTheReply) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kIoctl);
  const std::string in("\x7b\0\0\0", 4);
  handlers_->Ioctl(req, node, /*fh=*/17, Command(in, 4));
  ASSERT_EQ(sent(), 2u);
  const v1::IoctlRequest& r = pipeline_.op(1).ioctl();
  EXPECT_EQ(r.path(), "/f");
  EXPECT_TRUE(r.has_fh());
  EXPECT_EQ(r.fh(), 17u);
  EXPECT_EQ(r.cmd(), 0xc0044d01u);
  EXPECT_EQ(r.arg(), 0x7ffd1000u);
  EXPECT_EQ(r.in_data(), in);
  EXPECT_EQ(r.out_size(), 4u);
  EXPECT_EQ(pipeline_.op(1).caller().uid(), 1000u);

  v1::OpResult result;
  result.mutable_ioctl()->set_result(3);
  result.mutable_ioctl()->set_out_data(std::string("\x7c\0\0\0", 4));
  pipeline_.Answer(1, result);
  EXPECT_EQ(req->kind, Kind::kIoctl);
  EXPECT_EQ(req->offset, 3);
  EXPECT_EQ(req->data, std::string("\x7c\0\0\0", 4));
  // The command may have changed the file: the kernel asks again.
  ASSERT_FALSE(notify_.nodes.empty());
  EXPECT_EQ(notify_.nodes.back().first, node);
}

TEST_F(IoctlHandlerTest, WithoutTheBackendsIoctlEveryCommandIsEnotty) {
  SetBackendIoctl(false);
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, Command("", 0));
  EXPECT_EQ(req->err, ENOTTY);
  EXPECT_EQ(sent(), 1u);  // the lookup only
}

TEST_F(IoctlHandlerTest, ErrorsOfTheBackendReachTheCaller) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  auto req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, Command("", 0));
  pipeline_.Answer(1, Errno(ENOTTY));
  EXPECT_EQ(req->kind, Kind::kError);
  EXPECT_EQ(req->err, ENOTTY);
}

TEST_F(IoctlHandlerTest, UnrestrictedOrOversizedCommandsAreNotForwarded) {
  uint64_t node = Known(kRoot, "f", FileAttr(5));
  KernelIoctl unrestricted = Command("", 0);
  unrestricted.unrestricted = true;
  auto req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, unrestricted);
  EXPECT_EQ(req->err, ENOTTY);

  const std::string big(v1::LIMIT_MAX_IOCTL_SIZE + 1, 'x');
  req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, Command(big, 0));
  EXPECT_EQ(req->err, EINVAL);
  req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, Command("", v1::LIMIT_MAX_IOCTL_SIZE + 1));
  EXPECT_EQ(req->err, EINVAL);
  EXPECT_EQ(sent(), 1u);  // the lookup only

  // The largest the protocol allows goes through.
  const std::string most(v1::LIMIT_MAX_IOCTL_SIZE, 'x');
  req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, node, 17, Command(most, v1::LIMIT_MAX_IOCTL_SIZE));
  ASSERT_EQ(sent(), 2u);
  EXPECT_EQ(pipeline_.op(1).ioctl().in_data().size(), most.size());
  pipeline_.Answer(1, Errno(ENOTTY));
}

TEST_F(IoctlHandlerTest, ADirectoryCommandCarriesTheBackendsDirectoryHandle) {
  uint64_t dir = Known(kRoot, "d", FileAttr(6, S_IFDIR | 0755, 2));
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, dir, 0);
  ASSERT_EQ(sent(), 2u);
  v1::OpResult opened;
  opened.mutable_opendir()->set_fh(99);
  pipeline_.Answer(1, opened);
  ASSERT_EQ(open->kind, Kind::kOpen);

  KernelIoctl io = Command("", 0);
  io.directory = true;
  io.flags = kIoctlDir;
  auto req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, dir, open->open.fh, io);
  ASSERT_EQ(sent(), 3u);
  const v1::IoctlRequest& r = pipeline_.op(2).ioctl();
  EXPECT_EQ(r.path(), "/d");
  EXPECT_TRUE(r.has_fh());
  EXPECT_EQ(r.fh(), 99u);  // the backend's, not the daemon's own handle
  EXPECT_EQ(r.flags(), kIoctlDir);
  v1::OpResult result;
  result.mutable_ioctl();
  pipeline_.Answer(2, result);
  EXPECT_EQ(req->kind, Kind::kIoctl);
  EXPECT_EQ(req->offset, 0);

  auto release = Req(KernelOp::kReleasedir);
  handlers_->Releasedir(release, open->open.fh);
}

TEST_F(IoctlHandlerTest, ADirectoryListedFromTheCacheHasNoBackendHandle) {
  pipeline_.cached_path = "/";
  auto open = Req(KernelOp::kOpendir);
  handlers_->Opendir(open, kRoot, 0);
  ASSERT_EQ(open->kind, Kind::kOpen);
  EXPECT_EQ(sent(), 0u);

  KernelIoctl io = Command("", 0);
  io.directory = true;
  auto req = Req(KernelOp::kIoctl);
  handlers_->Ioctl(req, kRoot, open->open.fh, io);
  ASSERT_EQ(sent(), 1u);
  EXPECT_EQ(pipeline_.op(0).ioctl().path(), "/");
  EXPECT_FALSE(pipeline_.op(0).ioctl().has_fh());
  pipeline_.Answer(0, Errno(ENOTTY));
  EXPECT_EQ(req->err, ENOTTY);

  auto release = Req(KernelOp::kReleasedir);
  handlers_->Releasedir(release, open->open.fh);
}

}  // namespace
}  // namespace fusehost
