// Key derivation and hashing with BLAKE2b (RFC 7693), through libsodium's crypto_generichash.
//
// DeriveSubkey is keyed BLAKE2b (RFC 7693 §2.5: the key is a MAC/PRF key) with the parent
// key as the key, over
//     kKdfDomain || u16 big-endian byte length of label || label || context
// and with the output length as BLAKE2b's own digest-length parameter (RFC 7693 §2.5,
// parameter block), so the same inputs with another length give an unrelated output.
// Keyed BLAKE2b is a PRF; distinct labels (or contexts) give independent keys, and the
// length prefix fixes where the label ends so no (label, context) pair encodes like another.
//
// A label is a constant written in our code, never input: an empty label or one longer
// than 65535 bytes is a programming error and aborts the process.
#ifndef COFFRE_CRYPTO_KDF_H_
#define COFFRE_CRYPTO_KDF_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

// Parent key and output sizes accepted by DeriveSubkey: below 16 bytes a key is too short
// to be a key; 64 bytes is BLAKE2b's limit for both (RFC 7693 §2.1).
inline constexpr std::size_t kKdfMinKeySize = 16;
inline constexpr std::size_t kKdfMaxKeySize = 64;
inline constexpr std::size_t kKdfMinOutputSize = 16;
inline constexpr std::size_t kKdfMaxOutputSize = 64;

// First bytes of every DeriveSubkey input (see the file comment). Part of the key
// schedule: changing it changes every derived key.
inline constexpr std::string_view kKdfDomain = "coffre/kdf/v1";

// Derives `output_size` bytes from `parent_key` for the purpose named by `label`, bound to
// `context` (identifiers, public keys, transcript hashes: anything the key must depend
// on). Deterministic: the same inputs always give the same key. Returns the subkey owned by
// the caller; fails with kInvalidArgument if parent_key is not 16..64 bytes or output_size
// is not 16..64. Aborts on an empty or over-long label.
Result<SecretBytes> DeriveSubkey(std::span<const std::uint8_t> parent_key, std::string_view label,
                                 std::span<const std::uint8_t> context = {},
                                 std::size_t output_size = 32);

// Unkeyed BLAKE2b with a 32-byte digest, for public data (content addressing, transcript
// hashes). Not a MAC and not for passwords. Never fails.
std::array<std::uint8_t, 32> Blake2b256(std::span<const std::uint8_t> data);

namespace internal {
// Raw BLAKE2b (RFC 7693 §3.3) with an optional key (0..64 bytes) and an output of 1..64
// bytes; no domain, no label. Exposed for the RFC 7693 Appendix A known-answer test;
// DeriveSubkey goes through it. Fails with kInvalidArgument on other sizes.
Result<SecretBytes> Blake2b(std::span<const std::uint8_t> key,
                            std::span<const std::uint8_t> message, std::size_t output_size);
}  // namespace internal

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_KDF_H_
