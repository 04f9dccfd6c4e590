// Random bytes from the operating system, through libsodium (getrandom on Linux).
#ifndef COFFRE_CRYPTO_RANDOM_H_
#define COFFRE_CRYPTO_RANDOM_H_

#include <cstdint>
#include <span>
#include <vector>

#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

// Fills `out` with cryptographically secure random bytes. Never fails.
void RandomFill(std::span<std::uint8_t> out);
// `size` random bytes meant to stay secret (keys).
SecretBytes RandomSecret(std::size_t size);
// `size` random bytes that may be public (salts, identifiers, nonce prefixes).
std::vector<std::uint8_t> RandomBytes(std::size_t size);
// A uniformly random integer in [0, upper_bound); upper_bound must be > 0.
std::uint32_t RandomUniform(std::uint32_t upper_bound);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_RANDOM_H_
