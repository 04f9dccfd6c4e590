#include "coffre/crypto/x25519.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "coffre/crypto/random.h"
#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(kX25519KeySize == crypto_scalarmult_curve25519_BYTES);
static_assert(kX25519KeySize == crypto_scalarmult_curve25519_SCALARBYTES);

// The u-coordinate of the base point, RFC 7748 §4.1 (u = 9, little-endian).
constexpr std::array<std::uint8_t, kX25519KeySize> kBasePoint = {9};

// Any fixed scalar detects low-order points: after clamping (RFC 7748 §5) it is 8·k with
// 0 < k < L, so multiplying a point by it gives the neutral element (all-zero output)
// exactly when the point's order divides 8, whether the point is on the curve or on its
// twist. The value itself does not matter and is not secret.
constexpr std::array<std::uint8_t, kX25519KeySize> kProbeScalar = {
    0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a,
    0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a};

}  // namespace

namespace internal {

Result<SecretBytes> X25519(std::span<const std::uint8_t, kX25519KeySize> scalar,
                           std::span<const std::uint8_t, kX25519KeySize> u_coordinate) {
  EnsureSodium();
  SecretBytes out(kX25519KeySize);
  // libsodium 1.0.18 returns -1 both for a u on its list of low-order points and for an
  // all-zero result: the check RFC 7748 §6.1 asks for.
  if (crypto_scalarmult_curve25519(out.data(), scalar.data(), u_coordinate.data()) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "x25519: peer public key has low order");
  }
  return out;
}

}  // namespace internal

Result<X25519PublicKey> X25519PublicKey::FromBytes(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != kX25519KeySize) {
    return Fail(ErrorCode::kInvalidArgument, "x25519: public key must be 32 bytes");
  }
  if (!internal::X25519(kProbeScalar, bytes.first<kX25519KeySize>())) {
    return Fail(ErrorCode::kInvalidArgument, "x25519: public key has low order");
  }
  std::array<std::uint8_t, kX25519KeySize> copy;
  std::memcpy(copy.data(), bytes.data(), copy.size());
  return X25519PublicKey(copy);
}

X25519KeyPair X25519KeyPair::Generate() {
  Result<X25519KeyPair> pair = FromSecret(RandomSecret(kX25519KeySize));
  if (!pair) std::abort();  // cannot fail for a 32-byte secret
  return std::move(pair).value();
}

Result<X25519KeyPair> X25519KeyPair::FromSecret(SecretBytes secret) {
  if (secret.size() != kX25519KeySize) {
    return Fail(ErrorCode::kInvalidArgument, "x25519: private key must be 32 bytes");
  }
  // The public key is X25519(secret, 9) (RFC 7748 §6.1), through the same function as the
  // shared secret so the §6.1 known-answer test covers both.
  COFFRE_ASSIGN_OR_RETURN(
      SecretBytes public_bytes,
      internal::X25519(std::span<const std::uint8_t>(secret.span()).first<kX25519KeySize>(),
                       kBasePoint));
  std::array<std::uint8_t, kX25519KeySize> public_key;
  std::memcpy(public_key.data(), public_bytes.data(), public_key.size());
  return X25519KeyPair(std::move(secret), X25519PublicKey(public_key));
}

Result<SecretBytes> X25519SharedSecret(const X25519KeyPair& own, const X25519PublicKey& peer) {
  const std::span<const std::uint8_t> secret = own.secret().span();
  if (secret.size() != kX25519KeySize) std::abort();  // moved-from key pair
  return internal::X25519(secret.first<kX25519KeySize>(), peer.bytes());
}

}  // namespace coffre::crypto
