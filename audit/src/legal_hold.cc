#include "coffre/audit/legal_hold.h"

#include <cstdlib>

#include "codec.h"
#include "coffre/audit/entry.h"
#include "text.h"

namespace coffre::audit {
namespace {

constexpr std::string_view kSignatureLabel = "coffre/audit-legal-hold/v1";
constexpr std::size_t kMaxOriginSize = 255;
constexpr std::int64_t kMaxMonth = (9999 - 1970) * 12 + 11;  // 9999-12
constexpr std::size_t kSignatureFixedSize =
    4 + crypto::kEd25519PublicKeySize + crypto::kEd25519SignatureSize;

Status ValidateBody(const LegalHold& hold) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (hold.origin.empty() || hold.origin.size() > kMaxOriginSize || !internal::IsValidUtf8(hold.origin) ||
      internal::HasControlCharacter(hold.origin, false)) {
    return Fail(kBad, "legal hold: origin outside its form");
  }
  if (hold.months.empty() || hold.months.size() > kMaxHeldMonths) {
    return Fail(kBad, "legal hold: names 1 to 120 months");
  }
  for (std::size_t i = 0; i < hold.months.size(); ++i) {
    if (hold.months[i] < 0 || hold.months[i] > kMaxMonth || (i > 0 && hold.months[i] <= hold.months[i - 1])) {
      return Fail(kBad, "legal hold: months out of range or not strictly increasing");
    }
  }
  if (hold.issued_ms > internal::kMaxTimeMs) return Fail(kBad, "legal hold: time out of range");
  if (hold.reason.empty() || hold.reason.size() > kMaxLegalHoldReasonSize ||
      !internal::IsValidUtf8(hold.reason) || internal::HasControlCharacter(hold.reason, false)) {
    return Fail(kBad, "legal hold: the reason is 1 to 512 bytes of UTF-8 without controls");
  }
  return Ok();
}

Status ValidateSignatures(const LegalHold& hold) {
  if (hold.signatures.size() > 2) return Fail(ErrorCode::kInvalidArgument, "legal hold: more than two signatures");
  for (const LegalHoldSignature& signature : hold.signatures) {
    if (signature.user_id.empty() || !internal::IsIdText(signature.user_id, kMaxDetailsUserIdSize) ||
        signature.device_id == 0 || signature.device_id > kMaxDeviceId) {
      return Fail(ErrorCode::kInvalidArgument, "legal hold: signer outside its form");
    }
  }
  if (hold.signatures.size() == 2 && hold.signatures[0].user_id == hold.signatures[1].user_id) {
    return Fail(ErrorCode::kInvalidArgument, "legal hold: two signatures by one user");
  }
  return Ok();
}

std::size_t BodySize(const LegalHold& hold) {
  return 1 + 1 + hold.origin.size() + 1 + 4 * hold.months.size() + 8 + 2 + hold.reason.size();
}

void WriteBody(internal::Writer& out, const LegalHold& hold) {
  out.U8(kLegalHoldFormatVersion);
  out.U8(static_cast<std::uint8_t>(hold.origin.size()));
  out.Raw(hold.origin);
  out.U8(static_cast<std::uint8_t>(hold.months.size()));
  for (const std::int64_t month : hold.months) out.U32(static_cast<std::uint32_t>(month));
  out.U64(hold.issued_ms);
  out.U16(static_cast<std::uint16_t>(hold.reason.size()));
  out.Raw(hold.reason);
}

Result<std::vector<std::uint8_t>> Body(const LegalHold& hold) {
  COFFRE_RETURN_IF_ERROR(ValidateBody(hold));
  std::vector<std::uint8_t> body(BodySize(hold));
  internal::Writer out(body);
  WriteBody(out, hold);
  return body;
}

}  // namespace

Status SignLegalHold(LegalHold& hold, std::string_view user_id, std::uint32_t device_id,
                     const crypto::SigningKey& device_key) {
  COFFRE_ASSIGN_OR_RETURN(const auto body, Body(hold));
  if (hold.signatures.size() >= 2) return Fail(ErrorCode::kInvalidArgument, "legal hold: already signed twice");
  LegalHoldSignature signature;
  signature.user_id = std::string(user_id);
  signature.device_id = device_id;
  signature.device_key = device_key.verify_key().bytes();
  signature.signature = device_key.Sign(kSignatureLabel, body);
  LegalHold signed_hold = hold;
  signed_hold.signatures.push_back(std::move(signature));
  COFFRE_RETURN_IF_ERROR(ValidateSignatures(signed_hold));
  hold = std::move(signed_hold);
  return Ok();
}

Status VerifyLegalHoldSignatures(const LegalHold& hold) {
  COFFRE_ASSIGN_OR_RETURN(const auto body, Body(hold));
  for (const LegalHoldSignature& signature : hold.signatures) {
    auto key = crypto::VerifyKey::FromBytes(signature.device_key);
    if (!key) return Fail(ErrorCode::kAuthenticationFailed, "legal hold: a signature does not verify");
    COFFRE_RETURN_IF_ERROR(key->Verify(kSignatureLabel, body, signature.signature));
  }
  return Ok();
}

Result<std::vector<std::uint8_t>> EncodeLegalHold(const LegalHold& hold) {
  COFFRE_RETURN_IF_ERROR(ValidateBody(hold));
  COFFRE_RETURN_IF_ERROR(ValidateSignatures(hold));
  std::size_t size = BodySize(hold) + 1;
  for (const auto& signature : hold.signatures) size += 1 + signature.user_id.size() + kSignatureFixedSize;
  std::vector<std::uint8_t> bytes(size);
  internal::Writer out(bytes);
  WriteBody(out, hold);
  out.U8(static_cast<std::uint8_t>(hold.signatures.size()));
  for (const auto& signature : hold.signatures) {
    out.U8(static_cast<std::uint8_t>(signature.user_id.size()));
    out.Raw(signature.user_id);
    out.U32(signature.device_id);
    out.Raw(signature.device_key);
    out.Raw(signature.signature);
  }
  if (out.size() != bytes.size()) std::abort();  // the size computed above is wrong: our bug
  return bytes;
}

Result<LegalHold> DecodeLegalHold(std::span<const std::uint8_t> bytes) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (bytes.size() > kMaxLegalHoldSize) return Fail(kBad, "legal hold: longer than any hold");
  internal::Reader in(bytes);
  std::uint8_t version = 0;
  if (!in.U8(version)) return Fail(kBad, "legal hold: empty");
  if (version != kLegalHoldFormatVersion) return Fail(ErrorCode::kUnsupported, "legal hold: unknown format version");
  LegalHold hold;
  std::uint8_t origin_size = 0;
  std::uint8_t month_count = 0;
  if (!in.U8(origin_size) || !in.Text(origin_size, hold.origin) || !in.U8(month_count)) {
    return Fail(kBad, "legal hold: truncated");
  }
  for (std::uint8_t i = 0; i < month_count; ++i) {
    std::uint32_t month = 0;
    if (!in.U32(month)) return Fail(kBad, "legal hold: truncated");
    hold.months.push_back(month);
  }
  std::uint16_t reason_size = 0;
  std::uint8_t signature_count = 0;
  if (!in.U64(hold.issued_ms) || !in.U16(reason_size) || !in.Text(reason_size, hold.reason) ||
      !in.U8(signature_count)) {
    return Fail(kBad, "legal hold: truncated");
  }
  if (signature_count > 2) return Fail(kBad, "legal hold: more than two signatures");
  for (std::uint8_t i = 0; i < signature_count; ++i) {
    LegalHoldSignature signature;
    std::uint8_t user_size = 0;
    if (!in.U8(user_size) || !in.Text(user_size, signature.user_id) || !in.U32(signature.device_id) ||
        !in.Array(signature.device_key) || !in.Array(signature.signature)) {
      return Fail(kBad, "legal hold: truncated signature");
    }
    hold.signatures.push_back(std::move(signature));
  }
  if (!in.done()) return Fail(kBad, "legal hold: trailing bytes");
  COFFRE_RETURN_IF_ERROR(ValidateBody(hold));
  COFFRE_RETURN_IF_ERROR(ValidateSignatures(hold));
  return hold;
}

std::string FormatMonth(std::int64_t month) {
  const std::int64_t year = 1970 + month / 12;
  const std::int64_t number = month % 12 + 1;
  std::string text = std::to_string(year);
  text += number < 10 ? "-0" : "-";
  text += std::to_string(number);
  return text;
}

Result<std::int64_t> ParseMonth(std::string_view text) {
  const auto digits = [&](std::size_t from, std::size_t count) -> int {
    int value = 0;
    for (std::size_t i = from; i < from + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return -1;
      value = value * 10 + (text[i] - '0');
    }
    return value;
  };
  if (text.size() != 7 || text[4] != '-') return Fail(ErrorCode::kInvalidArgument, "a month is written YYYY-MM");
  const int year = digits(0, 4);
  const int number = digits(5, 2);
  if (year < 1970 || number < 1 || number > 12) {
    return Fail(ErrorCode::kInvalidArgument, "a month is written YYYY-MM, from 1970-01");
  }
  return static_cast<std::int64_t>(year - 1970) * 12 + number - 1;
}

}  // namespace coffre::audit
