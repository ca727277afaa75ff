#include "daemon/control/daemon_config.h"

#include "gtest/gtest.h"
#include "tests/daemon/testing/test_dirs.h"

namespace fusehost {
namespace {

absl::Status ErrorOf(const std::string& text) {
  return ParseDaemonSettings(text, "test.conf").status();
}

TEST(DaemonConfigTest, EmptyIsAllDefaults) {
  absl::StatusOr<DaemonSettings> s = ParseDaemonSettings("", "test.conf");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->control_socket, "/run/fuse-hostd/control.sock");
  EXPECT_EQ(s->control_socket_mode, 0666u);
  EXPECT_TRUE(s->metrics_address.empty());
  EXPECT_EQ(s->users.allow_other, UserPolicy::AllowOther::kFromFuseConf);
  EXPECT_EQ(s->users.max_mounts_per_user, 32u);
  EXPECT_EQ(s->users.max_mounts, -1);
  EXPECT_FALSE(s->users.allow_tcp_backends);
  EXPECT_FALSE(s->users.allow_insecure_tcp_backends);
  EXPECT_TRUE(s->users.require_mountpoint_owner);
  EXPECT_EQ(s->users.fuse_conf_path, "/etc/fuse.conf");
  EXPECT_TRUE(s->static_mounts.empty());
}

TEST(DaemonConfigTest, EverySetting) {
  absl::StatusOr<DaemonSettings> s = ParseDaemonSettings(
      "# comment\n"
      "control_socket: \"/run/x/c.sock\"\n"
      "control_socket_mode: 0660\n"
      "control_socket_group: \"0\"\n"
      "runtime_dir: \"/run/x\"\n"
      "metrics_address: \"127.0.0.1:9464\"\n"
      "default_mount_options: \"attr_timeout=5\"\n"
      "fuse_conf: \"/etc/other-fuse.conf\"\n"
      "users { allow_other: ALWAYS max_mounts_per_user: 3 max_mounts: 9\n"
      "        allow_tcp_backends: true require_mountpoint_owner: false\n"
      "        allow_insecure_tcp_backends: true }\n"
      "mount { backend: \"unix:/run/a.sock\" mountpoint: \"/srv/a\"\n"
      "        options: \"ro\" owner: \"nobody\" }\n"
      "mount { backend: \"host:1234\" mountpoint: \"/srv/b\" }\n",
      "test.conf");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->control_socket, "/run/x/c.sock");
  EXPECT_EQ(s->control_socket_mode, 0660u);  // text format reads octal
  EXPECT_EQ(s->runtime_dir, "/run/x");
  EXPECT_EQ(s->metrics_address, "127.0.0.1:9464");
  EXPECT_EQ(s->default_mount_options, "attr_timeout=5");
  EXPECT_EQ(s->users.fuse_conf_path, "/etc/other-fuse.conf");
  EXPECT_EQ(s->users.allow_other, UserPolicy::AllowOther::kAlways);
  EXPECT_EQ(s->users.max_mounts_per_user, 3u);
  EXPECT_EQ(s->users.max_mounts, 9);
  EXPECT_TRUE(s->users.allow_tcp_backends);
  EXPECT_TRUE(s->users.allow_insecure_tcp_backends);
  EXPECT_FALSE(s->users.require_mountpoint_owner);
  ASSERT_EQ(s->static_mounts.size(), 2u);
  EXPECT_EQ(s->static_mounts[0].owner_uid, kNobody);
  EXPECT_EQ(s->static_mounts[0].options, "ro");
  EXPECT_EQ(s->static_mounts[0].where, "test.conf:12");
  EXPECT_EQ(s->static_mounts[1].owner_uid, 0u);
}

TEST(DaemonConfigTest, SyntaxErrorsNameLineAndColumn) {
  absl::Status st = ErrorOf("control_socket: \"/a\"\nusers { max_mounts: }\n");
  ASSERT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_EQ(st.message().substr(0, 15), "test.conf:2:21:") << st;
}

TEST(DaemonConfigTest, UnknownFieldsAreErrors) {
  absl::Status st = ErrorOf("\n  colour: \"blue\"\n");
  ASSERT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("test.conf:2:"), std::string::npos) << st;
  EXPECT_NE(st.message().find("colour"), std::string::npos) << st;
}

TEST(DaemonConfigTest, BadValuesNameTheirField) {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  } cases[] = {
      {"control_socket: \"relative.sock\"", "test.conf:1:1: control_socket",
       "absolute"},
      {"\ncontrol_socket_mode: 01777", "test.conf:2:1: control_socket_mode",
       "permission bits"},
      {"control_socket_group: \"no-such-group-xyz\"", "test.conf:1:1",
       "no group"},
      {"metrics_address: \"localhost\"", "test.conf:1:1: metrics_address",
       "HOST:PORT"},
      {"metrics_address: \"127.0.0.1:99999\"", "test.conf:1:1", "port"},
      {"default_mount_options: \"timeout=x\"", "test.conf:1:1", "timeout"},
      {"mount { backend: \"unix:/a\" mountpoint: \"/m\" }\n"
       "mount { backend: \"unix:/b\"\n  mountpoint: \"rel\" }",
       "test.conf:3:3: mountpoint", "absolute"},
      {"mount { mountpoint: \"/m\" }", "test.conf:1:1: mount", "backend"},
      {"mount { backend: \"unix:/a\" mountpoint: \"/m\" options: "
       "\"max_write=1\" }",
       "test.conf:1:45: options", "max_write"},
      {"mount { backend: \"unix:/a\" mountpoint: \"/m\" owner: \"nobody-xyz\" }",
       "test.conf:1:45: owner", "no user"},
      {"mount { backend: \"unix:/a\" mountpoint: \"/m\" }\n"
       "mount { backend: \"unix:/b\" mountpoint: \"/m\" }",
       "test.conf:2:28: mountpoint", "twice"},
  };
  for (const Case& c : cases) {
    absl::Status st = ErrorOf(c.text);
    ASSERT_TRUE(absl::IsInvalidArgument(st)) << c.text;
    EXPECT_EQ(st.message().rfind(c.where, 0), 0u) << st << " for " << c.text;
    EXPECT_NE(st.message().find(c.what), std::string::npos) << st;
  }
}

TEST(DaemonConfigTest, Files) {
  absl::StatusOr<DaemonSettings> s =
      LoadDaemonSettings("/nonexistent/fuse-hostd.conf", /*missing_ok=*/true);
  EXPECT_TRUE(s.ok());
  s = LoadDaemonSettings("/nonexistent/fuse-hostd.conf", /*missing_ok=*/false);
  EXPECT_TRUE(absl::IsNotFound(s.status()));
  ScratchDir dir;
  std::string path = dir.Sub("bad.conf");
  FILE* f = fopen(path.c_str(), "w");
  fputs("users {\n  allow_other: SOMETIMES\n}\n", f);
  fclose(f);
  s = LoadDaemonSettings(path, false);
  ASSERT_TRUE(absl::IsInvalidArgument(s.status()));
  // The parser reports a bad enum value where it stopped reading.
  EXPECT_EQ(s.status().message().rfind(path + ":3:1: ", 0), 0u) << s.status();
  EXPECT_NE(s.status().message().find("SOMETIMES"), std::string::npos);
}

}  // namespace
}  // namespace fusehost
