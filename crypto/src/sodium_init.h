// Private: libsodium must be initialised once before any use. Every public entry point of
// the crypto module that touches libsodium calls EnsureSodium() first.
#ifndef COFFRE_CRYPTO_SRC_SODIUM_INIT_H_
#define COFFRE_CRYPTO_SRC_SODIUM_INIT_H_

namespace coffre::crypto::internal {

// Initialises libsodium (thread-safe, idempotent). Aborts if the library cannot start,
// because no cryptography can be done safely without its random source.
void EnsureSodium();

}  // namespace coffre::crypto::internal

#endif  // COFFRE_CRYPTO_SRC_SODIUM_INIT_H_
