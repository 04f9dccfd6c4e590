#include "cli/errors.h"

namespace coffre::cli {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kWrongPassphrase:
      return kExitWrongPassphrase;
    case ErrorCode::kIo:
      return kExitRelayUnreachable;
    default:
      return kExitFailed;
  }
}

std::string SanitizeForTerminal(std::string_view text, bool keep_newlines) {
  std::string clean;
  clean.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    // C1 controls (U+0080..U+009F, UTF-8 C2 80..C2 9F) include CSI, which some terminals
    // obey like ESC [.
    if (byte == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      clean.push_back('?');
      ++i;
      continue;
    }
    if (c == '\n' && keep_newlines) {
      clean.push_back(c);
    } else if (c == '\t') {
      clean.push_back(keep_newlines ? '\t' : ' ');
    } else if (byte < 0x20 || byte == 0x7f) {
      clean.push_back('?');
    } else {
      clean.push_back(c);
    }
  }
  return clean;
}

std::string ErrorLine(std::string_view what, std::string_view reason, std::string_view argument) {
  std::string line = "coffre: ";
  line += SanitizeForTerminal(what);
  line += ": ";
  line += SanitizeForTerminal(reason);
  if (!argument.empty()) {
    line += ": ";
    line += SanitizeForTerminal(argument);
  }
  return line;
}

}  // namespace coffre::cli
