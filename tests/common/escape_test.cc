// Escaping of user-chosen strings: one log line stays one line.

#include "common/escape.h"

#include <string>

#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(EscapeControl, ControlCharactersCannotBreakALine) {
  EXPECT_EQ(EscapeControl("plain /mnt/ü"), "plain /mnt/ü");
  EXPECT_EQ(EscapeControl("a\nfuse-hostd: audit: uid=0(root) allowed"),
            "a\\x0afuse-hostd: audit: uid=0(root) allowed");
  EXPECT_EQ(EscapeControl("\r\t\x1b[2J\x7f"), "\\x0d\\x09\\x1b[2J\\x7f");
  EXPECT_EQ(EscapeControl(std::string("nul\0x", 5)), "nul\\x00x");
  // A backslash is escaped too, so an escaped byte and a literal "\x0a"
  // typed by the user read differently.
  EXPECT_EQ(EscapeControl("\\x0a"), "\\\\x0a");
}

TEST(EscapeField, SpacesCannotMakeColumns) {
  EXPECT_EQ(EscapeField("/mnt/a b\nx"), "/mnt/a\\x20b\\x0ax");
  EXPECT_EQ(EscapeControl("/mnt/a b"), "/mnt/a b");
}

}  // namespace
}  // namespace fusehost
