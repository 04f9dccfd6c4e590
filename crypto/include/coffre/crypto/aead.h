// Authenticated encryption: XChaCha20-Poly1305-IETF (draft-irtf-cfrg-xchacha-03 §2,
// itself RFC 8439 §2.8 with HChaCha20 key derivation), through libsodium.
//
// Why XChaCha: its 192-bit nonce is large enough to draw at random for every message
// (draft-irtf-cfrg-xchacha-03 §3.1), so nonces are generated inside AeadSeal and callers
// never manage counters.
//
// Labels. Every call carries a label naming the purpose ("coffre.document.body.v1"): it is
// bound into the associated data as
//     u16 big-endian byte length of label || label || associated_data
// so a ciphertext made for one purpose never opens for another, and no (label, AD) pair
// can be confused with another one (the length prefix fixes where the label ends).
// A label is a constant written in our code, never input: an empty label or one longer
// than 65535 bytes is a programming error and aborts the process.
#ifndef COFFRE_CRYPTO_AEAD_H_
#define COFFRE_CRYPTO_AEAD_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

inline constexpr std::size_t kAeadKeySize = 32;
inline constexpr std::size_t kAeadNonceSize = 24;
inline constexpr std::size_t kAeadTagSize = 16;
// Bytes AeadSeal adds to the plaintext: the nonce in front, the tag behind.
inline constexpr std::size_t kAeadOverhead = kAeadNonceSize + kAeadTagSize;

// A 256-bit XChaCha20-Poly1305 key. Move-only; the key bytes live in SecretBytes and are
// wiped when the key is destroyed. An AeadKey that exists always holds kAeadKeySize bytes
// (a moved-from key holds none and must not be used).
class AeadKey {
 public:
  // A fresh key from the operating system's random source. Never fails.
  static AeadKey Generate();
  // Takes ownership of `bytes`. Fails with kInvalidArgument unless it is exactly
  // kAeadKeySize bytes long (the bytes are then wiped with `bytes`).
  static Result<AeadKey> FromBytes(SecretBytes bytes);

  AeadKey(AeadKey&&) noexcept = default;
  AeadKey& operator=(AeadKey&&) noexcept = default;
  AeadKey(const AeadKey&) = delete;
  AeadKey& operator=(const AeadKey&) = delete;

  // A view of the key bytes, valid as long as this key lives. For wrapping (AeadSeal under
  // a key-encryption key) and storage into SecretBytes; never log or copy it elsewhere.
  std::span<const std::uint8_t> bytes() const { return key_.span(); }

 private:
  explicit AeadKey(SecretBytes key) : key_(std::move(key)) {}

  SecretBytes key_;
};

// Encrypts `plaintext` under `key` with a fresh random 24-byte nonce, binding `label` and
// `associated_data` (see the file comment). Returns nonce || ciphertext || tag, i.e.
// plaintext.size() + kAeadOverhead bytes, owned by the caller. Never fails; aborts on an
// empty or over-long label or a moved-from key.
std::vector<std::uint8_t> AeadSeal(const AeadKey& key, std::string_view label,
                                   std::span<const std::uint8_t> plaintext,
                                   std::span<const std::uint8_t> associated_data);

// Reverses AeadSeal. On success returns the plaintext, owned by the caller in SecretBytes.
// Every failure (input shorter than kAeadOverhead, modified nonce, ciphertext or tag, wrong
// key, label or associated data) returns kAuthenticationFailed with the same context, so
// the caller cannot tell which check failed. Aborts on an empty or over-long label.
Result<SecretBytes> AeadOpen(const AeadKey& key, std::string_view label,
                             std::span<const std::uint8_t> sealed,
                             std::span<const std::uint8_t> associated_data);

namespace internal {

// The raw AEAD_XChaCha20_Poly1305 construction with an explicit nonce and associated data
// passed through unchanged. Exposed for the draft-irtf-cfrg-xchacha-03 §A.3.1 known-answer
// test; AeadSeal and AeadOpen call these after choosing the nonce and encoding the label.
// Product code must never choose a nonce itself.
//
// Returns ciphertext || tag (plaintext.size() + kAeadTagSize bytes).
std::vector<std::uint8_t> XChaCha20Poly1305Seal(const AeadKey& key,
                                                std::span<const std::uint8_t, kAeadNonceSize> nonce,
                                                std::span<const std::uint8_t> plaintext,
                                                std::span<const std::uint8_t> associated_data);
// Takes ciphertext || tag. Returns the plaintext, or kAuthenticationFailed for every
// failure (too short, bad tag).
Result<SecretBytes> XChaCha20Poly1305Open(const AeadKey& key,
                                          std::span<const std::uint8_t, kAeadNonceSize> nonce,
                                          std::span<const std::uint8_t> ciphertext_and_tag,
                                          std::span<const std::uint8_t> associated_data);

}  // namespace internal

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_AEAD_H_
