// Protobuf `bytes` fields that carry keys, and parsing of untrusted protobuf bytes: shared
// by the content formats (content.cc) and device linking (device_link.cc).
#ifndef COFFRE_CLIENT_SRC_PROTOBUF_BYTES_H_
#define COFFRE_CLIENT_SRC_PROTOBUF_BYTES_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <span>
#include <string>

#include "coffre/crypto/secret_bytes.h"

namespace coffre::client {

inline void SetBytes(std::string* field, std::span<const std::uint8_t> bytes) {
  field->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Wipes a protobuf bytes field that held a key before its message frees it. A key (32
// bytes) is longer than libstdc++'s in-place buffer, so it lives in one heap block that
// this reaches; protobuf made no other copy of it.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string* field) : field_(field) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit() {
    if (field_ != nullptr) {
      crypto::Wipe({reinterpret_cast<std::uint8_t*>(field_->data()), field_->size()});
    }
  }

 private:
  std::string* field_;
};

// Protobuf parsing of untrusted bytes; our code throws nothing, so the rare exception of
// the library (allocation failure) becomes a parse failure. Callers bound the size first.
inline bool ParseBounded(std::span<const std::uint8_t> bytes, google::protobuf::Message& message) {
  try {
    return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  } catch (...) {
    return false;
  }
}

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_SRC_PROTOBUF_BYTES_H_
