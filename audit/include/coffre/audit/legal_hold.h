// A legal hold (decision 0018): a statement, signed by an organisation admin and by an
// auditor, that keeps the audit details of the months it names beyond the retention
// period. The relay obeys a hold whose two signatures verify under the signers' registered
// device keys and whose signers hold those roles; anyone can check the signatures later.
//
// Canonical encoding (big-endian):
//
//     body:       u8 version (1) | u8 n || origin (the audit log's, 1..255 bytes)
//                 u8 count (1..kMaxHeldMonths) || count x u32 month (months since 1970-01,
//                 strictly increasing) | u64 issued (ms, UTC) | u16 n || reason (1..512 bytes
//                 of UTF-8 without control characters)
//     signature:  u8 n || user id ([a-z0-9._-], 1..64) | u32 device id | 32 device key
//                 | 64 Ed25519 signature (label "coffre/audit-legal-hold/v1") over the body
//     hold:       body | u8 count (0..2) || count x signature
//
// A hold is first signed by one party and handed to the other (a file), who adds the
// second signature and places it.
#ifndef COFFRE_AUDIT_LEGAL_HOLD_H_
#define COFFRE_AUDIT_LEGAL_HOLD_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {

inline constexpr std::uint8_t kLegalHoldFormatVersion = 1;
inline constexpr std::size_t kMaxHeldMonths = 120;
inline constexpr std::size_t kMaxLegalHoldReasonSize = 512;
inline constexpr std::size_t kMaxLegalHoldSize = 2048;

struct LegalHoldSignature {
  std::string user_id;
  std::uint32_t device_id = 0;
  std::array<std::uint8_t, crypto::kEd25519PublicKeySize> device_key{};
  std::array<std::uint8_t, crypto::kEd25519SignatureSize> signature{};

  bool operator==(const LegalHoldSignature&) const = default;
};

struct LegalHold {
  std::string origin;                // the audit log it applies to
  std::vector<std::int64_t> months;  // months since 1970-01, strictly increasing
  std::uint64_t issued_ms = 0;
  std::string reason;                // e.g. the case reference
  std::vector<LegalHoldSignature> signatures;

  bool operator==(const LegalHold&) const = default;
};

// Adds the signature of `user_id`'s device `device_id` under `device_key`. Fails with
// kInvalidArgument when the body is outside its form, the hold already has two signatures,
// or this user already signed it.
Status SignLegalHold(LegalHold& hold, std::string_view user_id, std::uint32_t device_id,
                     const crypto::SigningKey& device_key);
// Ok() when every signature verifies under the key it names (kAuthenticationFailed
// otherwise). Who those keys and users are is the caller's question.
Status VerifyLegalHoldSignatures(const LegalHold& hold);

// Fails with kInvalidArgument when a field is outside its form.
Result<std::vector<std::uint8_t>> EncodeLegalHold(const LegalHold& hold);
// Strict inverse of EncodeLegalHold (signatures not checked): kUnsupported for another
// version, kInvalidArgument for anything EncodeLegalHold would not write.
Result<LegalHold> DecodeLegalHold(std::span<const std::uint8_t> bytes);

// "YYYY-MM" of a month since 1970-01, and back (nullopt-like failure: kInvalidArgument).
std::string FormatMonth(std::int64_t month);
Result<std::int64_t> ParseMonth(std::string_view text);

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_LEGAL_HOLD_H_
