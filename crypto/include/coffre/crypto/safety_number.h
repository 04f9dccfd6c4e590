// Safety numbers: the library's fingerprints of two identity keys, which two people
// compare (by reading the digits or scanning a code) to detect a substituted key.
//
// Both sides compute the same 60 digits from (their name, their identity key, the other's
// name, the other's identity key): each half is 30 digits from 5200 iterations of SHA-512
// over a version, the identity key and the name, and the two halves are put in a fixed
// order. The scannable form is the library's version-1 encoding of the two hashes.
#ifndef COFFRE_CRYPTO_SAFETY_NUMBER_H_
#define COFFRE_CRYPTO_SAFETY_NUMBER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"

namespace coffre::crypto {

// Iterations of the fingerprint hash; must be the same on every client (Signal uses 5200).
inline constexpr int kSafetyNumberIterations = 5200;
inline constexpr std::size_t kSafetyNumberDigits = 60;

struct SafetyNumber {
  std::string digits;                   // 60 decimal digits, identical on both sides
  std::vector<std::uint8_t> scannable;  // for a QR code; differs per side, compare with
                                        // ScannableFingerprintMatches

  // The digits in 12 groups of 5 separated by spaces, as people read them aloud.
  std::string Grouped() const;
};

// Computes the safety number seen by `local_name` holding `local_identity` when talking to
// `remote_name` holding `remote_identity`. Names are user ids (1..256 bytes, no NUL); keys
// are 33-byte public identity keys. kInvalidArgument on bad names or keys.
Result<SafetyNumber> ComputeSafetyNumber(std::string_view local_name,
                                         std::span<const std::uint8_t> local_identity,
                                         std::string_view remote_name,
                                         std::span<const std::uint8_t> remote_identity);

// Whether `scanned` (the other side's SafetyNumber::scannable) matches `ours`: true when
// both were computed over the same two identity keys, seen from opposite sides. false on a
// mismatch; kUnsupported for another scannable version; kInvalidArgument when either
// input does not parse.
Result<bool> ScannableFingerprintMatches(std::span<const std::uint8_t> ours,
                                         std::span<const std::uint8_t> scanned);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SAFETY_NUMBER_H_
