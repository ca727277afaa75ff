#include "daemon/mounting/mountinfo.h"

#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace fusehost {

std::string EscapeMountPath(absl::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      absl::StrAppendFormat(&out, "\\%03o", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out;
}

std::string UnescapeMountPath(absl::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      bool octal = true;
      int value = 0;
      for (size_t j = i + 1; j <= i + 3; ++j) {
        if (field[j] < '0' || field[j] > '7') {
          octal = false;
          break;
        }
        value = value * 8 + (field[j] - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

bool IsFuseType(absl::string_view fs_type) {
  return fs_type == "fuse" || absl::StartsWith(fs_type, "fuse.");
}

std::vector<MountinfoEntry> ParseMountinfo(absl::string_view text) {
  std::vector<MountinfoEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE ...
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() < 10) continue;
    unsigned maj = 0, min = 0;
    if (sscanf(std::string(f[2]).c_str(), "%u:%u", &maj, &min) != 2) continue;
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;
    MountinfoEntry e;
    if (!absl::SimpleAtoi(f[0], &e.mount_id)) continue;
    e.device = makedev(maj, min);
    e.mountpoint = UnescapeMountPath(f[4]);
    e.fs_type = std::string(f[dash + 1]);
    e.source = UnescapeMountPath(f[dash + 2]);
    out.push_back(std::move(e));
  }
  return out;
}

int MountIdOfFd(int fd) {
  std::ifstream in(absl::StrCat("/proc/self/fdinfo/", fd));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    int id;
    if (absl::ConsumePrefix(&rest, "mnt_id:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &id)) {
      return id;
    }
  }
  return -1;
}

std::vector<MountinfoEntry> ReadMountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return ParseMountinfo(text.str());
}

}  // namespace fusehost
