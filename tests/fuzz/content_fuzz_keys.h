// The fixed, public keys and ids shared by the fuzz targets of the client content formats
// (coffre/client/content.h) and by seed_corpus_tool.cc, which seals the seeds under them so
// that seeds reach the authenticated paths and the checks after them.
#ifndef COFFRE_TESTS_FUZZ_CONTENT_FUZZ_KEYS_H_
#define COFFRE_TESTS_FUZZ_CONTENT_FUZZ_KEYS_H_

#include <cstddef>
#include <cstdint>

#include "coffre/client/content.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::fuzz {

// `size` bytes: first, first + 1, ...
inline crypto::SecretBytes CountingSecret(std::uint8_t first, std::size_t size) {
  crypto::SecretBytes bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes.data()[i] = static_cast<std::uint8_t>(first + i);
  return bytes;
}

// The key posts are sealed under (post_open_fuzz), and another one that opens nothing.
inline const crypto::SecretBytes& ChannelKey() {
  static const crypto::SecretBytes key = CountingSecret(0x40, client::kTeamKeySize);
  return key;
}
inline const crypto::SecretBytes& OtherKey() {
  static const crypto::SecretBytes key = CountingSecret(0x41, client::kTeamKeySize);
  return key;
}
// Item metadata and document-wrap keys (item_metadata_fuzz).
inline const crypto::SecretBytes& MetadataKey() {
  static const crypto::SecretBytes key = CountingSecret(0x60, client::kTeamKeySize);
  return key;
}
inline const crypto::SecretBytes& WrapKey() {
  static const crypto::SecretBytes key = CountingSecret(0x80, client::kTeamKeySize);
  return key;
}
// The document key every document seed wraps.
inline const crypto::SecretBytes& DocumentKey() {
  static const crypto::SecretBytes key = CountingSecret(0x20, crypto::kDocumentKeySize);
  return key;
}
// Key history (key_history_fuzz): the newer PTK, and the older one every seed seals.
inline const crypto::SecretBytes& NewTeamKey() {
  static const crypto::SecretBytes key = CountingSecret(0xA0, client::kTeamKeySize);
  return key;
}
inline const crypto::SecretBytes& OldTeamKey() {
  static const crypto::SecretBytes key = CountingSecret(0xC0, client::kTeamKeySize);
  return key;
}
// The team every key history seed belongs to.
inline protocol::TeamId FuzzTeamId() {
  protocol::TeamId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(0xE0 + i);
  return id;
}

}  // namespace coffre::fuzz

#endif  // COFFRE_TESTS_FUZZ_CONTENT_FUZZ_KEYS_H_
