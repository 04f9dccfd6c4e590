// Small helpers shared by the relay service files: hashing, hex, byte conversions, time.
// Nothing here knows the protocol or the store.
#ifndef COFFRE_SERVER_SRC_RELAY_UTIL_H_
#define COFFRE_SERVER_SRC_RELAY_UTIL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coffre::server {

inline constexpr std::size_t kSha256Size = 32;
using Sha256Digest = std::array<std::uint8_t, kSha256Size>;

// SHA-256 (FIPS 180-4) through OpenSSL. Used where the protocol fixes SHA-256: enrolment
// code and session token hashes, the relay identity. Never fails (OpenSSL's digest of an
// in-memory buffer only fails on allocation, which aborts).
Sha256Digest Sha256(std::span<const std::uint8_t> data);

// Lower-case hex of `bytes`.
std::string ToHex(std::span<const std::uint8_t> bytes);
// Decodes exactly `expected_size` bytes from hex (either case); nullopt on any other length
// or a non-hex digit.
std::optional<std::vector<std::uint8_t>> FromHex(std::string_view hex, std::size_t expected_size);

// Views between protobuf `bytes` fields (std::string) and byte spans, without copies.
inline std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
inline std::string_view AsText(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::vector<std::uint8_t> ToVector(std::string_view text) {
  const auto bytes = AsBytes(text);
  return {bytes.begin(), bytes.end()};
}

// Milliseconds since the Unix epoch from the system clock.
std::int64_t SystemNowMs();

// A steady clock in milliseconds, for rate limits (never jumps with the wall clock).
std::int64_t SteadyNowMs();

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_RELAY_UTIL_H_
