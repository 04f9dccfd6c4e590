// X25519 key agreement (RFC 7748 §5 and §6.1), through libsodium.
//
// The shared secret is the raw X25519 output: it is uniformly distributed over a subset
// of 32-byte strings only, so it must go through DeriveSubkey (kdf.h) with a label and
// both public keys in the context before it is used as a key (RFC 7748 §6.1, last
// paragraphs).
#ifndef COFFRE_CRYPTO_X25519_H_
#define COFFRE_CRYPTO_X25519_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

inline constexpr std::size_t kX25519KeySize = 32;

// A peer's X25519 public key (a u-coordinate, RFC 7748 §5). Copyable. An X25519PublicKey
// that exists is never of low order: FromBytes refuses the keys for which every shared
// secret would be all-zero (RFC 7748 §6.1, "check for the all-zero value"), so a bad peer
// key is caught when it is parsed rather than at first use.
class X25519PublicKey {
 public:
  // Fails with kInvalidArgument unless `bytes` is kX25519KeySize bytes and not a
  // low-order point (0, 1, the order-8 points, p-1, p, p+1 and their variants with the
  // unused top bit set).
  static Result<X25519PublicKey> FromBytes(std::span<const std::uint8_t> bytes);

  const std::array<std::uint8_t, kX25519KeySize>& bytes() const { return bytes_; }

 private:
  explicit X25519PublicKey(const std::array<std::uint8_t, kX25519KeySize>& bytes) : bytes_(bytes) {}
  friend class X25519KeyPair;

  std::array<std::uint8_t, kX25519KeySize> bytes_;
};

// Our own X25519 key pair. Move-only; the private scalar lives in SecretBytes and is
// wiped when the pair is destroyed. A moved-from pair must not be used.
class X25519KeyPair {
 public:
  // A fresh pair from the operating system's random source. Never fails.
  static X25519KeyPair Generate();
  // The pair whose private key is `secret` (32 bytes, clamped by X25519 itself as in
  // RFC 7748 §5, so any 32 bytes are accepted). Takes ownership of `secret`. Fails with
  // kInvalidArgument on any other size.
  static Result<X25519KeyPair> FromSecret(SecretBytes secret);

  X25519KeyPair(X25519KeyPair&&) noexcept = default;
  X25519KeyPair& operator=(X25519KeyPair&&) noexcept = default;
  X25519KeyPair(const X25519KeyPair&) = delete;
  X25519KeyPair& operator=(const X25519KeyPair&) = delete;

  const X25519PublicKey& public_key() const { return public_key_; }
  // The 32-byte private key, for storage. Valid as long as this pair lives.
  const SecretBytes& secret() const { return secret_; }

 private:
  X25519KeyPair(SecretBytes secret, const X25519PublicKey& public_key)
      : secret_(std::move(secret)), public_key_(public_key) {}

  SecretBytes secret_;
  X25519PublicKey public_key_;
};

// X25519(own private key, peer public key): 32 raw bytes owned by the caller, to be fed to
// DeriveSubkey (see the file comment). Fails with kInvalidArgument if the result is all
// zero (a low-order peer key that got past FromBytes; RFC 7748 §6.1). Aborts on a
// moved-from key pair.
Result<SecretBytes> X25519SharedSecret(const X25519KeyPair& own, const X25519PublicKey& peer);

namespace internal {
// The raw X25519 function of RFC 7748 §5 on a scalar and a u-coordinate, both 32 bytes.
// Exposed for the RFC 7748 §5.2 known-answer tests; the functions above go through it.
// Fails with kInvalidArgument when the output would be all zero (low-order u).
Result<SecretBytes> X25519(std::span<const std::uint8_t, kX25519KeySize> scalar,
                           std::span<const std::uint8_t, kX25519KeySize> u_coordinate);
}  // namespace internal

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_X25519_H_
