#include "coffre/audit/checkpoint.h"

#include <optional>
#include <vector>

#include "text.h"

namespace coffre::audit {
namespace {

// The tree size line: at most 19 digits (kMaxTreeSize has 19).
constexpr std::size_t kMaxSizeDigits = 19;

// The next line of `text` (without its newline), consumed from it; nullopt when no newline
// is left.
std::optional<std::string_view> TakeLine(std::string_view& text) {
  const std::size_t end = text.find('\n');
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view line = text.substr(0, end);
  text.remove_prefix(end + 1);
  return line;
}

std::optional<std::uint64_t> ParseTreeSize(std::string_view line) {
  if (line.empty() || line.size() > kMaxSizeDigits) return std::nullopt;
  if (line.size() > 1 && line[0] == '0') return std::nullopt;  // one spelling per number
  std::uint64_t value = 0;
  for (const char c : line) {
    if (c < '0' || c > '9') return std::nullopt;
    // 19 digits fit in 64 bits, so this cannot overflow before the bound check.
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > kMaxTreeSize) return std::nullopt;
  return value;
}

}  // namespace

Status ValidateOrigin(std::string_view origin) {
  if (origin.empty() || origin.size() > kMaxOriginSize || !internal::IsValidUtf8(origin) ||
      internal::HasControlCharacter(origin, false)) {
    return Fail(ErrorCode::kInvalidArgument,
                "checkpoint: origin must be 1..256 bytes of UTF-8 without control characters");
  }
  return Ok();
}

Result<std::string> FormatCheckpoint(const Checkpoint& checkpoint) {
  COFFRE_RETURN_IF_ERROR(ValidateOrigin(checkpoint.origin));
  if (checkpoint.size > kMaxTreeSize) {
    return Fail(ErrorCode::kInvalidArgument, "checkpoint: tree size out of range");
  }
  std::string text = checkpoint.origin;
  text += '\n';
  text += std::to_string(checkpoint.size);
  text += '\n';
  text += internal::Base64Encode(checkpoint.root);
  text += '\n';
  return text;
}

Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const crypto::SigningKey& key,
                                   std::string_view key_name) {
  COFFRE_ASSIGN_OR_RETURN(const std::string text, FormatCheckpoint(checkpoint));
  return SignNote(text, key, key_name);
}

Result<Checkpoint> ParseAndVerifyCheckpoint(std::string_view note, const NoteVerifier& verifier,
                                            std::string_view origin) {
  constexpr ErrorCode kMalformed = ErrorCode::kInvalidArgument;
  COFFRE_ASSIGN_OR_RETURN(const std::string text, OpenNote(note, verifier));
  std::string_view rest = text;
  const std::optional<std::string_view> origin_line = TakeLine(rest);
  const std::optional<std::string_view> size_line = TakeLine(rest);
  const std::optional<std::string_view> root_line = TakeLine(rest);
  if (!origin_line || !size_line || !root_line || !rest.empty()) {
    return Fail(kMalformed, "checkpoint: text must be exactly origin, size and root lines");
  }
  COFFRE_RETURN_IF_ERROR(ValidateOrigin(*origin_line));
  if (*origin_line != origin) return Fail(kMalformed, "checkpoint: another log's origin");
  const std::optional<std::uint64_t> size = ParseTreeSize(*size_line);
  if (!size) return Fail(kMalformed, "checkpoint: tree size is not a canonical decimal number");
  const std::optional<std::vector<std::uint8_t>> root = internal::Base64Decode(*root_line);
  if (!root || root->size() != kHashSize) {
    return Fail(kMalformed, "checkpoint: root is not the base64 of 32 bytes");
  }
  Checkpoint checkpoint;
  checkpoint.origin = std::string(*origin_line);
  checkpoint.size = *size;
  COFFRE_ASSIGN_OR_RETURN(checkpoint.root, HashFromBytes(*root));
  return checkpoint;
}

}  // namespace coffre::audit
