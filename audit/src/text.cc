#include "text.h"

#include <sodium.h>

#include <cstdlib>

namespace coffre::audit::internal {
namespace {

// The base64 helpers of libsodium need no initialisation, but its documentation asks for
// sodium_init before any use; it is idempotent and thread-safe.
void EnsureSodium() {
  static const bool ready = sodium_init() >= 0;
  if (!ready) std::abort();
}

// The length of the UTF-8 sequence that starts at text[i] if it is well-formed, else 0.
std::size_t Utf8SequenceLength(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  const std::uint8_t first = byte(i);
  if (first < 0x80) return 1;
  std::size_t length;
  std::uint8_t low = 0x80;
  std::uint8_t high = 0xBF;
  if (first >= 0xC2 && first <= 0xDF) {
    length = 2;
  } else if (first >= 0xE0 && first <= 0xEF) {
    length = 3;
    if (first == 0xE0) low = 0xA0;   // overlong
    if (first == 0xED) high = 0x9F;  // surrogates
  } else if (first >= 0xF0 && first <= 0xF4) {
    length = 4;
    if (first == 0xF0) low = 0x90;   // overlong
    if (first == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() - i < length) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

std::uint32_t DecodeCodePoint(std::string_view text, std::size_t i, std::size_t length) {
  const auto byte = [&](std::size_t k) {
    return static_cast<std::uint32_t>(static_cast<std::uint8_t>(text[k]));
  };
  if (length == 1) return byte(i);
  std::uint32_t point = byte(i) & (0xFFu >> (length + 1));
  for (std::size_t k = 1; k < length; ++k) point = (point << 6) | (byte(i + k) & 0x3F);
  return point;
}

// Go's unicode.IsSpace: the ASCII white space, U+0085, U+00A0 and the Unicode category Zs,
// Zl and Zp characters.
bool IsUnicodeSpace(std::uint32_t point) {
  switch (point) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return point >= 0x2000 && point <= 0x200A;
  }
}

}  // namespace

bool IsIdText(std::string_view text, std::size_t max_size) {
  if (text.size() > max_size) return false;
  for (const char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

bool IsValidUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

bool HasControlCharacter(std::string_view text, bool allow_newline) {
  for (const char c : text) {
    const auto byte = static_cast<std::uint8_t>(c);
    if (byte < 0x20 && !(allow_newline && c == '\n')) return true;
  }
  return false;
}

bool HasUnicodeSpace(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return true;  // not UTF-8: callers check that first; refuse anyway
    if (IsUnicodeSpace(DecodeCodePoint(text, i, length))) return true;
    i += length;
  }
  return false;
}

std::string Base64Encode(std::span<const std::uint8_t> bytes) {
  EnsureSodium();
  const std::size_t size = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string text(size, '\0');
  sodium_bin2base64(text.data(), size, bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  text.resize(size - 1);  // the terminating NUL
  return text;
}

std::optional<std::vector<std::uint8_t>> Base64Decode(std::string_view text) {
  EnsureSodium();
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> bytes(text.size() / 4 * 3);
  std::size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(bytes.data(), bytes.size(), text.data(), text.size(), nullptr, &length,
                        &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  bytes.resize(length);
  // One encoding per byte string: whatever libsodium tolerates, only the text we would
  // write ourselves is accepted.
  if (Base64Encode(bytes) != text) return std::nullopt;
  return bytes;
}

}  // namespace coffre::audit::internal
