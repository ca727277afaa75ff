#include "daemon/authz/fuse_conf.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fusehost {

FuseConf ParseFuseConf(absl::string_view text) {
  FuseConf conf;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line == "user_allow_other") {
      conf.user_allow_other = true;
    } else if (absl::ConsumePrefix(&line, "mount_max")) {
      line = absl::StripLeadingAsciiWhitespace(line);
      int value;
      if (absl::ConsumePrefix(&line, "=") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &value)) {
        conf.mount_max = value;
      }
    }
  }
  return conf;
}

FuseConf ReadFuseConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return FuseConf();
  std::stringstream text;
  text << in.rdbuf();
  return ParseFuseConf(text.str());
}

}  // namespace fusehost
