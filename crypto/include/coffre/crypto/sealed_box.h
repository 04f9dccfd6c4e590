// Anonymous public-key encryption to an X25519 key: libsodium's sealed box
// (crypto_box_seal: an ephemeral X25519 key, XSalsa20-Poly1305, nonce derived from both
// public keys). The sender is not authenticated: anyone who knows the public key can seal;
// use it for messages whose origin is proven some other way (a signature inside, or a
// channel that authenticates the sender).
//
// Labels. crypto_box_seal has no associated data, so the label is bound by sealing
//     u16 big-endian byte length of label || label || plaintext
// and checking that prefix when opening: a box sealed for one purpose never opens for
// another. A label is a constant written in our code, never input: an empty label or one
// longer than 65535 bytes is a programming error and aborts the process.
#ifndef COFFRE_CRYPTO_SEALED_BOX_H_
#define COFFRE_CRYPTO_SEALED_BOX_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/x25519.h"

namespace coffre::crypto {

// Bytes a sealed box adds besides the label prefix: the ephemeral public key (32) and the
// Poly1305 tag (16).
inline constexpr std::size_t kSealedBoxOverhead = 48;

// Seals `plaintext` to `recipient` under `label`. Returns
// kSealedBoxOverhead + 2 + label.size() + plaintext.size() bytes, owned by the caller.
// Never fails (the recipient key was checked for low order when it was parsed); aborts on
// an empty or over-long label.
std::vector<std::uint8_t> SealToPublicKey(const X25519PublicKey& recipient, std::string_view label,
                                          std::span<const std::uint8_t> plaintext);

// Opens a box sealed to `own.public_key()` under `label`. Returns the plaintext, owned by
// the caller. Every failure (too short, modified bytes, another recipient, another label)
// returns kAuthenticationFailed with the same context. Aborts on an empty or over-long
// label or a moved-from key pair.
Result<SecretBytes> OpenSealedBox(const X25519KeyPair& own, std::string_view label,
                                  std::span<const std::uint8_t> sealed);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SEALED_BOX_H_
