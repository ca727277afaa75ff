#include "common/escape.h"

namespace fusehost {
namespace {

std::string Escape(absl::string_view text, bool space) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f || (space && c == ' ')) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

std::string EscapeControl(absl::string_view text) { return Escape(text, false); }

std::string EscapeField(absl::string_view text) { return Escape(text, true); }

}  // namespace fusehost
