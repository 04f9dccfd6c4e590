// Big-endian integer encoding for the byte strings this module signs and hashes.
#ifndef COFFRE_PROTOCOL_SRC_ENCODING_H_
#define COFFRE_PROTOCOL_SRC_ENCODING_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace coffre::protocol::internal {

inline void AppendU16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

inline void AppendU32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

inline void AppendBytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

inline void AppendBytes(std::vector<std::uint8_t>& out, std::string_view bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

inline std::span<const std::uint8_t> AsBytes(std::string_view bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

}  // namespace coffre::protocol::internal

#endif  // COFFRE_PROTOCOL_SRC_ENCODING_H_
