#include "coffre/crypto/signature.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(kEd25519PublicKeySize == crypto_sign_PUBLICKEYBYTES);
static_assert(kEd25519SignatureSize == crypto_sign_BYTES);
static_assert(kEd25519SeedSize == crypto_sign_SEEDBYTES);

constexpr std::size_t kMaxLabelSize = 0xFFFF;  // the u16 length prefix

// One context for every verification failure (no oracle on which check failed).
constexpr const char* kVerifyFailed = "signature: verification failed";

// kSignatureDomain || u16 big-endian label length || label || message (signature.h). Held
// in SecretBytes because the message may be plaintext that is signed before encryption.
SecretBytes LabelledMessage(std::string_view label, std::span<const std::uint8_t> message) {
  if (label.empty() || label.size() > kMaxLabelSize) std::abort();
  SecretBytes out(kSignatureDomain.size() + 2 + label.size() + message.size());
  std::uint8_t* p = out.data();
  std::memcpy(p, kSignatureDomain.data(), kSignatureDomain.size());
  p += kSignatureDomain.size();
  *p++ = static_cast<std::uint8_t>(label.size() >> 8);
  *p++ = static_cast<std::uint8_t>(label.size() & 0xFF);
  std::memcpy(p, label.data(), label.size());
  p += label.size();
  if (!message.empty()) std::memcpy(p, message.data(), message.size());
  return out;
}

}  // namespace

namespace internal {

std::array<std::uint8_t, kEd25519SignatureSize> Ed25519Sign(const SigningKey& key,
                                                            std::span<const std::uint8_t> message) {
  EnsureSodium();
  if (key.secret_key_.size() != crypto_sign_SECRETKEYBYTES) std::abort();  // moved-from key
  std::array<std::uint8_t, kEd25519SignatureSize> signature;
  if (crypto_sign_detached(signature.data(), nullptr, message.data(),
                           static_cast<unsigned long long>(message.size()),
                           key.secret_key_.data()) != 0) {
    std::abort();  // libsodium documents no failure here
  }
  return signature;
}

Status Ed25519Verify(const VerifyKey& key, std::span<const std::uint8_t> message,
                     std::span<const std::uint8_t> signature) {
  EnsureSodium();
  if (signature.size() != kEd25519SignatureSize) {
    return Fail(ErrorCode::kAuthenticationFailed, kVerifyFailed);
  }
  // libsodium 1.0.18 also refuses a non-canonical S (s >= L, RFC 8032 §5.1.7 step 1) and a
  // small-order R, which closes the malleability and key-substitution tricks.
  if (crypto_sign_verify_detached(signature.data(), message.data(),
                                  static_cast<unsigned long long>(message.size()),
                                  key.bytes().data()) != 0) {
    return Fail(ErrorCode::kAuthenticationFailed, kVerifyFailed);
  }
  return Ok();
}

}  // namespace internal

Result<VerifyKey> VerifyKey::FromBytes(std::span<const std::uint8_t> bytes) {
  internal::EnsureSodium();
  if (bytes.size() != kEd25519PublicKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "signature: public key must be 32 bytes");
  }
  // A real public key is A = s·B with B of prime order L, so it is always canonical, of
  // order L and in the main subgroup; anything else was not made by SigningKey.
  if (crypto_core_ed25519_is_valid_point(bytes.data()) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "signature: public key is not a valid point");
  }
  std::array<std::uint8_t, kEd25519PublicKeySize> copy;
  std::memcpy(copy.data(), bytes.data(), copy.size());
  return VerifyKey(copy);
}

Status VerifyKey::Verify(std::string_view label, std::span<const std::uint8_t> message,
                         std::span<const std::uint8_t> signature) const {
  const SecretBytes encoded = LabelledMessage(label, message);
  return internal::Ed25519Verify(*this, encoded.span(), signature);
}

SigningKey SigningKey::Generate() {
  internal::EnsureSodium();
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  std::array<std::uint8_t, kEd25519PublicKeySize> public_key;
  if (crypto_sign_keypair(public_key.data(), secret_key.data()) != 0) std::abort();
  return SigningKey(std::move(secret_key), VerifyKey(public_key));
}

Result<SigningKey> SigningKey::FromSeed(std::span<const std::uint8_t> seed) {
  internal::EnsureSodium();
  if (seed.size() != kEd25519SeedSize) {
    return Fail(ErrorCode::kInvalidArgument, "signature: seed must be 32 bytes");
  }
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  std::array<std::uint8_t, kEd25519PublicKeySize> public_key;
  if (crypto_sign_seed_keypair(public_key.data(), secret_key.data(), seed.data()) != 0) {
    std::abort();  // libsodium documents no failure here
  }
  return SigningKey(std::move(secret_key), VerifyKey(public_key));
}

SecretBytes SigningKey::Seed() const {
  internal::EnsureSodium();
  if (secret_key_.size() != crypto_sign_SECRETKEYBYTES) std::abort();  // moved-from key
  SecretBytes seed(kEd25519SeedSize);
  crypto_sign_ed25519_sk_to_seed(seed.data(), secret_key_.data());
  return seed;
}

std::array<std::uint8_t, kEd25519SignatureSize> SigningKey::Sign(
    std::string_view label, std::span<const std::uint8_t> message) const {
  const SecretBytes encoded = LabelledMessage(label, message);
  return internal::Ed25519Sign(*this, encoded.span());
}

std::array<std::uint8_t, kEd25519SignatureSize> SignUnlabelled(
    const SigningKey& key, std::span<const std::uint8_t> message) {
  return internal::Ed25519Sign(key, message);
}

Status VerifyUnlabelled(const VerifyKey& key, std::span<const std::uint8_t> message,
                        std::span<const std::uint8_t> signature) {
  return internal::Ed25519Verify(key, message, signature);
}

}  // namespace coffre::crypto
