#include "coffre/crypto/random.h"

#include <sodium.h>

#include <cstdlib>

#include "sodium_init.h"

namespace coffre::crypto {

namespace internal {
void EnsureSodium() {
  static const bool initialised = sodium_init() >= 0;
  if (!initialised) std::abort();
}
}  // namespace internal

void RandomFill(std::span<std::uint8_t> out) {
  internal::EnsureSodium();
  if (!out.empty()) randombytes_buf(out.data(), out.size());
}

SecretBytes RandomSecret(std::size_t size) {
  SecretBytes secret(size);
  RandomFill(secret.span());
  return secret;
}

std::vector<std::uint8_t> RandomBytes(std::size_t size) {
  std::vector<std::uint8_t> bytes(size);
  RandomFill(bytes);
  return bytes;
}

std::uint32_t RandomUniform(std::uint32_t upper_bound) {
  internal::EnsureSodium();
  if (upper_bound == 0) std::abort();
  return randombytes_uniform(upper_bound);
}

}  // namespace coffre::crypto
