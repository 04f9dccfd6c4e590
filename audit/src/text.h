// Private: the text checks and encodings shared by signed notes, checkpoints and entries.
#ifndef COFFRE_AUDIT_SRC_TEXT_H_
#define COFFRE_AUDIT_SRC_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coffre::audit::internal {

// Whether `text` is well-formed UTF-8 (RFC 3629 §4: no overlong forms, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);
// Whether `text` holds a byte below 0x20 other than '\n' (which `allow_newline` permits).
bool HasControlCharacter(std::string_view text, bool allow_newline);
// Whether `text` holds a character that Go's unicode.IsSpace reports (the "Unicode spaces"
// that signed-note key names must not hold). Requires valid UTF-8.
bool HasUnicodeSpace(std::string_view text);

// Whether `text` is at most `max_size` bytes of [a-z0-9._-]: user ids and node names.
bool IsIdText(std::string_view text, std::size_t max_size);

// The largest time or counter the encodings allow: 2^63 - 1, so that every value also
// fits a signed 64-bit integer (SQLite, JSON readers).
inline constexpr std::uint64_t kMaxTimeMs = (std::uint64_t{1} << 63) - 1;

// Standard base64 with padding (RFC 4648 §4).
std::string Base64Encode(std::span<const std::uint8_t> bytes);
// The bytes of `text`, or nullopt unless `text` is the one canonical encoding of them
// (padding present, no other character, unused bits zero).
std::optional<std::vector<std::uint8_t>> Base64Decode(std::string_view text);

}  // namespace coffre::audit::internal

#endif  // COFFRE_AUDIT_SRC_TEXT_H_
