// Shared fixtures for the protocol tests: a device directory standing in for the relay's
// device table (or a client's verified certificates), and builders of valid objects that
// each test then breaks in one way.
#ifndef COFFRE_TESTS_PROTOCOL_TEST_UTIL_H_
#define COFFRE_TESTS_PROTOCOL_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::protocol::testing {

// `size` bytes of `fill`, as protobuf bytes fields hold them.
inline std::string Filled(std::size_t size, std::uint8_t fill = 0xA5) {
  return std::string(size, static_cast<char>(fill));
}

inline std::string KeyBytes(const crypto::VerifyKey& key) {
  return std::string(key.bytes().begin(), key.bytes().end());
}

// A libsignal-style public key: 0x05 followed by 32 bytes.
inline std::string SignalKey(std::uint8_t fill = 0x11) {
  std::string key(33, static_cast<char>(fill));
  key[0] = 0x05;
  return key;
}

inline std::string X25519Key() {
  const auto pair = crypto::X25519KeyPair::Generate();
  return std::string(pair.public_key().bytes().begin(), pair.public_key().bytes().end());
}

inline std::vector<std::uint8_t> Serialize(const google::protobuf::Message& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

// Who each failing Result failed with, for readable assertion messages.
template <typename T>
std::string Describe(const Result<T>& result) {
  if (result.has_value()) return "ok";
  return std::string(result.error().context());
}

// Devices and their signing keys, with revocation: answers DeviceKeyLookup like the relay's
// device table would.
class DeviceDirectory {
 public:
  // Creates (or replaces) device (user_id, device_id) with a fresh key; returns the key.
  const crypto::SigningKey& Add(const std::string& user_id, std::uint32_t device_id) {
    auto [it, inserted] =
        keys_.insert_or_assign({user_id, device_id}, crypto::SigningKey::Generate());
    (void)inserted;
    return it->second;
  }
  const crypto::SigningKey& Key(const std::string& user_id, std::uint32_t device_id) const {
    return keys_.at({user_id, device_id});
  }
  void Revoke(const std::string& user_id, std::uint32_t device_id) {
    revoked_.insert({user_id, device_id});
  }
  DeviceKeyLookup Lookup() const {
    return [this](std::string_view user_id, std::uint32_t device_id) -> Result<crypto::VerifyKey> {
      const std::pair<std::string, std::uint32_t> id{std::string(user_id), device_id};
      auto it = keys_.find(id);
      if (it == keys_.end()) return coffre::Fail(ErrorCode::kNotFound, "test: no such device");
      if (revoked_.contains(id)) return coffre::Fail(ErrorCode::kNotFound, "test: revoked");
      return it->second.verify_key();
    };
  }

 private:
  std::map<std::pair<std::string, std::uint32_t>, crypto::SigningKey> keys_;
  std::set<std::pair<std::string, std::uint32_t>> revoked_;
};

}  // namespace coffre::protocol::testing

#endif  // COFFRE_TESTS_PROTOCOL_TEST_UTIL_H_
