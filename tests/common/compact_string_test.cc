#include "common/compact_string.h"

#include <string>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace fusehost {
namespace {

TEST(CompactStringTest, KeepsEveryLengthAroundTheInlineLimit) {
  for (size_t n : {0, 1, 14, 15, 16, 17, 100, 4096}) {
    std::string s(n, 'a');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
    CompactString c(s);
    EXPECT_EQ(c.view(), s) << n;
    EXPECT_EQ(c.size(), n);
    EXPECT_EQ(c.empty(), n == 0);
    EXPECT_EQ(c.str(), s);
  }
}

TEST(CompactStringTest, HoldsNulBytes) {
  std::string s("a\0b", 3);
  EXPECT_EQ(CompactString(s).view(), s);
  std::string long_s(20, '\0');
  EXPECT_EQ(CompactString(long_s).view(), long_s);
}

TEST(CompactStringTest, CopiesAndMovesOwnTheirCharacters) {
  for (std::string s : {"short", "a name longer than fifteen"}) {
    CompactString a(s);
    CompactString b(a);
    EXPECT_EQ(b, a);
    CompactString c(std::move(a));
    EXPECT_EQ(c.view(), s);
    EXPECT_TRUE(a.empty());  // NOLINT: moved-from is empty, by design
    CompactString d("x");
    d = c;
    EXPECT_EQ(d.view(), s);
    d = CompactString("another long string, on the heap");
    EXPECT_EQ(d.view(), "another long string, on the heap");
    d = d;  // NOLINT: self-assignment keeps the value
    EXPECT_EQ(d.view(), "another long string, on the heap");
    d = std::move(c);
    EXPECT_EQ(d.view(), s);
  }
}

TEST(CompactStringTest, OrdersAndHashesAsItsCharacters) {
  EXPECT_LT(CompactString("a"), CompactString("b"));
  EXPECT_LT(CompactString("abcdefghijklmnop"), CompactString("abd"));
  EXPECT_EQ(CompactString("abc"), absl::string_view("abc"));
  EXPECT_NE(CompactString("abc"), absl::string_view("abcd"));

  absl::btree_map<CompactString, int, CompactStringLess> m;
  m["/a/very/long/path/name"] = 1;
  m["b"] = 2;
  std::string key = "/a/very/long/path/name";
  ASSERT_NE(m.find(absl::string_view(key)), m.end());
  EXPECT_EQ(m.find(absl::string_view(key))->second, 1);
  EXPECT_EQ(m.begin()->first, absl::string_view("/a/very/long/path/name"));

  absl::flat_hash_set<CompactString> set;
  set.insert(CompactString("name"));
  EXPECT_TRUE(set.contains(CompactString("name")));
  EXPECT_FALSE(set.contains(CompactString("other")));
}

}  // namespace
}  // namespace fusehost
