// Argon2id passphrase key derivation (RFC 9106) through libargon2.
//
// A PassphraseKdfRecord holds everything needed to derive the same key again (algorithm
// version, m, t, p, salt) and serialises to a small versioned byte string that is stored
// beside what the key protects. The passphrase itself is never stored.
#ifndef COFFRE_CRYPTO_PASSPHRASE_KDF_H_
#define COFFRE_CRYPTO_PASSPHRASE_KDF_H_

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

struct Argon2Params {
  std::uint32_t memory_kib;   // m, in KiB
  std::uint32_t iterations;   // t
  std::uint32_t parallelism;  // p (lanes and threads)
};

// OWASP's minimum for Argon2id: m = 19 MiB, t = 2, p = 1. Nothing weaker is accepted, not
// even from a stored record (an attacker who can write the record must not be able to
// make the next unlock cheap).
inline constexpr Argon2Params kMinimumArgon2Params{19 * 1024, 2, 1};
// Chosen from bench/ (see docs/PERFORMANCE.md and threat-model/decisions): about a quarter
// of a second on the reference 2-core machine.
inline constexpr Argon2Params kDefaultArgon2Params{256 * 1024, 2, 2};
// Upper bounds accepted when parsing a record, so a forged record cannot make us allocate
// unbounded memory or loop for hours.
inline constexpr std::uint32_t kMaxArgon2MemoryKib = 4 * 1024 * 1024;  // 4 GiB
inline constexpr std::uint32_t kMaxArgon2Iterations = 64;
inline constexpr std::uint32_t kMaxArgon2Parallelism = 16;

inline constexpr std::size_t kPassphraseSaltSize = 16;

struct PassphraseKdfRecord {
  Argon2Params params;
  std::array<std::uint8_t, kPassphraseSaltSize> salt;

  // A record with a fresh random salt. Fails if `params` is below kMinimumArgon2Params or
  // above the maxima.
  static Result<PassphraseKdfRecord> Create(Argon2Params params = kDefaultArgon2Params);

  // Layout (docs/protocol.md, "Passphrase KDF record"): "CFK1" magic, u32 big-endian m, t,
  // p, then the 16-byte salt: 32 bytes in all.
  std::vector<std::uint8_t> Serialize() const;
  // Validates magic, length and parameter bounds before returning a record.
  static Result<PassphraseKdfRecord> Parse(std::span<const std::uint8_t> bytes);
};

inline constexpr std::size_t kPassphraseKdfRecordSize = 32;

// Derives `output_size` bytes (16..64) from `passphrase` with Argon2id v1.3 under the
// record's salt and parameters. Fails with kInvalidArgument on bad sizes or parameters
// and kResourceExhausted when the memory cannot be allocated.
Result<SecretBytes> DeriveKeyFromPassphrase(std::span<const std::uint8_t> passphrase,
                                            const PassphraseKdfRecord& record,
                                            std::size_t output_size = 32);

namespace internal {
// Full Argon2id with the optional secret and associated data inputs of RFC 9106 §3.1.
// Exposed for the RFC 9106 §5.3 known-answer test; product code uses the function above.
Result<SecretBytes> Argon2idFull(std::span<const std::uint8_t> password,
                                 std::span<const std::uint8_t> salt,
                                 std::span<const std::uint8_t> secret,
                                 std::span<const std::uint8_t> associated_data,
                                 const Argon2Params& params, std::size_t output_size);
}  // namespace internal

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_PASSPHRASE_KDF_H_
