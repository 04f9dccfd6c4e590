// Labelled Ed25519 signatures (RFC 8032 §5.1, pure Ed25519), through libsodium.
//
// Every signature is made over an encoding of a fixed domain prefix, a label naming the
// purpose ("coffre.device.certificate.v1") and the message:
//     kSignatureDomain || u16 big-endian byte length of label || label || message
// The domain prefix keeps our signatures apart from any other Ed25519 use of the same key;
// the length prefix fixes where the label ends, so no (label, message) pair encodes like
// another one and a signature made for one purpose never verifies for another.
//
// A label is a constant written in our code, never input: an empty label or one longer
// than 65535 bytes is a programming error and aborts the process.
#ifndef COFFRE_CRYPTO_SIGNATURE_H_
#define COFFRE_CRYPTO_SIGNATURE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

inline constexpr std::size_t kEd25519PublicKeySize = 32;
inline constexpr std::size_t kEd25519SignatureSize = 64;
inline constexpr std::size_t kEd25519SeedSize = 32;

// First bytes of every signed encoding (see the file comment). Part of the wire format:
// changing it invalidates every signature ever made.
inline constexpr std::string_view kSignatureDomain = "coffre/signature/v1";

class SigningKey;
class VerifyKey;

namespace internal {
// Raw Ed25519 over `message` exactly as given, with no domain or label. Exposed for the
// RFC 8032 §7.1 known-answer tests; SigningKey::Sign and VerifyKey::Verify call these on
// the labelled encoding. Product code must use the labelled functions.
std::array<std::uint8_t, kEd25519SignatureSize> Ed25519Sign(const SigningKey& key,
                                                            std::span<const std::uint8_t> message);
// Ok() when `signature` is a valid Ed25519 signature of `message` under `key`; otherwise
// kAuthenticationFailed with one context for every failure (wrong size, non-canonical S,
// small-order R, wrong key, wrong message).
Status Ed25519Verify(const VerifyKey& key, std::span<const std::uint8_t> message,
                     std::span<const std::uint8_t> signature);
}  // namespace internal

// An Ed25519 public key. Copyable; a VerifyKey that exists holds a canonical encoding of a
// point in the prime-order subgroup (so small-order and malformed keys are refused when
// parsed, not at each verification).
class VerifyKey {
 public:
  // Fails with kInvalidArgument unless `bytes` is kEd25519PublicKeySize bytes encoding a
  // valid public key (canonical, on the curve, not of small order, in the main subgroup).
  static Result<VerifyKey> FromBytes(std::span<const std::uint8_t> bytes);

  const std::array<std::uint8_t, kEd25519PublicKeySize>& bytes() const { return bytes_; }

  // Ok() when `signature` was made by the matching SigningKey::Sign with the same label and
  // message. Every failure returns kAuthenticationFailed with the same context. Aborts on
  // an empty or over-long label.
  Status Verify(std::string_view label, std::span<const std::uint8_t> message,
                std::span<const std::uint8_t> signature) const;

 private:
  explicit VerifyKey(const std::array<std::uint8_t, kEd25519PublicKeySize>& bytes)
      : bytes_(bytes) {}
  friend class SigningKey;

  std::array<std::uint8_t, kEd25519PublicKeySize> bytes_;
};

// An Ed25519 private key and its public key. Move-only; the secret lives in SecretBytes
// and is wiped when the key is destroyed. A moved-from SigningKey must not be used.
class SigningKey {
 public:
  // A fresh key from the operating system's random source. Never fails.
  static SigningKey Generate();
  // The key whose RFC 8032 §5.1.5 secret is `seed`. Fails with kInvalidArgument unless
  // `seed` is kEd25519SeedSize bytes. The caller keeps and wipes its own copy of the seed.
  static Result<SigningKey> FromSeed(std::span<const std::uint8_t> seed);

  SigningKey(SigningKey&&) noexcept = default;
  SigningKey& operator=(SigningKey&&) noexcept = default;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  // A copy of the 32-byte seed, for storage; FromSeed(Seed()) gives the same key.
  SecretBytes Seed() const;
  const VerifyKey& verify_key() const { return verify_key_; }

  // Signs the labelled encoding of `message` (file comment). Deterministic (RFC 8032
  // §5.1.6): the same key, label and message always give the same signature. Never fails;
  // aborts on an empty or over-long label or a moved-from key.
  std::array<std::uint8_t, kEd25519SignatureSize> Sign(std::string_view label,
                                                       std::span<const std::uint8_t> message) const;

 private:
  SigningKey(SecretBytes secret_key, const VerifyKey& verify_key)
      : secret_key_(std::move(secret_key)), verify_key_(verify_key) {}
  friend std::array<std::uint8_t, kEd25519SignatureSize> internal::Ed25519Sign(
      const SigningKey& key, std::span<const std::uint8_t> message);

  // libsodium's 64-byte form: seed || public key.
  SecretBytes secret_key_;
  VerifyKey verify_key_;
};

// Plain Ed25519 (RFC 8032 §5.1.6) over `message` exactly as given: no domain prefix and no
// label. Only for formats defined outside Coffre that fix the signed bytes themselves, made
// with a key that signs nothing else: C2SP signed notes (audit/checkpoint.h), whose
// verifiers in other ecosystems expect a raw signature of the note text. Every Coffre
// format uses SigningKey::Sign. Deterministic; never fails; aborts on a moved-from key.
std::array<std::uint8_t, kEd25519SignatureSize> SignUnlabelled(
    const SigningKey& key, std::span<const std::uint8_t> message);
// Ok() when `signature` is a plain Ed25519 signature of `message` under `key` (the check of
// internal::Ed25519Verify: canonical S, R not of small order). Every failure returns
// kAuthenticationFailed with the same context as VerifyKey::Verify.
Status VerifyUnlabelled(const VerifyKey& key, std::span<const std::uint8_t> message,
                        std::span<const std::uint8_t> signature);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SIGNATURE_H_
