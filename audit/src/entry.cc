#include "coffre/audit/entry.h"

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <utility>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/kdf.h"
#include "coffre/crypto/sealed_box.h"
#include "codec.h"
#include "text.h"

namespace coffre::audit {
namespace {

using internal::OptionalSize;
using internal::ReadOptional;
using internal::Reader;
using internal::WriteOptional;
using internal::Writer;

constexpr std::string_view kActorLabel = "coffre/audit-actor/v1";
constexpr std::string_view kDetailsLabel = "coffre/audit-details/v2";
constexpr std::string_view kMonthKeyLabel = "coffre/audit-month-key/v1";
constexpr std::string_view kDetailsHashLabel = "coffre/audit-details-hash/v1";
constexpr std::size_t kMaxUserIdSize = 64;
constexpr std::size_t kKeyIdSize = 8;

static_assert(kMonthKeySize == crypto::kAeadKeySize);
static_assert(kSealedDetailsOverhead == kKeyIdSize + crypto::kAeadOverhead);

// One context for every failure to open sealed details or a sealed month key: the caller
// must not learn whether the length, the key id, the key or a byte was wrong.
constexpr const char* kDetailsOpenFailed = "audit details: sealed details failed authentication";
constexpr const char* kMonthKeyOpenFailed = "audit month key: sealed key failed authentication";

constexpr std::string_view kEventNames[] = {
    "",  // 0 is not an event type
    "enrolment",
    "device_added",
    "device_revoked",
    "login",
    "team_created",
    "member_added",
    "member_removed",
    "role_changed",
    "key_rotated",
    "auditor_key_set",
    "team_renamed",
    "item_version_uploaded",
    "item_fetched",
    "blob_fetched",
    "audit_exported",
    "document_opened",
    "document_exported",
    "legal_hold_placed",
};
static_assert(std::size(kEventNames) == kMaxEventType + 1);
constexpr std::string_view kResultNames[] = {"", "success", "refused", "failed"};

bool IsKnownType(std::uint16_t type) { return type >= 1 && type <= kMaxEventType; }
bool IsKnownResult(std::uint8_t result) { return result >= 1 && result <= 3; }

bool IsAddressText(std::string_view text) {
  if (text.size() > kMaxDetailsAddressSize) return false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '.' || c == ':')) return false;
  }
  return true;
}

bool IsFreeText(std::string_view text) {
  return text.size() <= kMaxDetailsTextSize && internal::IsValidUtf8(text) &&
         !internal::HasControlCharacter(text, false);
}

Status ValidateEntry(const Entry& entry) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (!IsKnownType(static_cast<std::uint16_t>(entry.type))) {
    return Fail(kBad, "audit entry: unknown event type");
  }
  if (!IsKnownResult(static_cast<std::uint8_t>(entry.result))) {
    return Fail(kBad, "audit entry: unknown result");
  }
  if (entry.relay_time_ms > internal::kMaxTimeMs) return Fail(kBad, "audit entry: relay time out of range");
  if (entry.device_id > kMaxDeviceId) return Fail(kBad, "audit entry: device id out of range");
  COFFRE_RETURN_IF_ERROR(ValidateNodeName(entry.node));
  COFFRE_RETURN_IF_ERROR(ValidateJurisdiction(entry.jurisdiction));
  // Only a device can say it opened or exported a document, so those entries carry its
  // signed statement, and the statement and the entry say the same thing.
  if (IsClientEventType(entry.type) != entry.client_event.has_value()) {
    return Fail(kBad, "audit entry: client events, and only they, carry a signed statement");
  }
  if (const auto& event = entry.client_event) {
    if (event->type != entry.type || event->device_id != entry.device_id ||
        entry.team_id != event->team_id || entry.item_id != event->item_id ||
        entry.object_version != event->version) {
      return Fail(kBad, "audit entry: differs from the client event it carries");
    }
  }
  return Ok();
}

Status ValidateDetails(const Details& details) {
  if (!internal::IsIdText(details.actor_user_id, kMaxDetailsUserIdSize) ||
      !internal::IsIdText(details.subject_user_id, kMaxDetailsUserIdSize)) {
    return Fail(ErrorCode::kInvalidArgument, "audit details: user id outside [a-z0-9._-]{0,64}");
  }
  if (!IsAddressText(details.ip_address)) {
    return Fail(ErrorCode::kInvalidArgument, "audit details: address outside [0-9a-f.:]{0,45}");
  }
  if (!IsFreeText(details.user_agent) || !IsFreeText(details.reason)) {
    return Fail(ErrorCode::kInvalidArgument,
                "audit details: text fields are at most 512 bytes of UTF-8 without controls");
  }
  return Ok();
}

}  // namespace

std::string_view EventTypeName(EventType type) {
  const auto value = static_cast<std::uint16_t>(type);
  return IsKnownType(value) ? kEventNames[value] : std::string_view();
}

std::optional<EventType> EventTypeFromName(std::string_view name) {
  for (std::uint16_t value = 1; value <= kMaxEventType; ++value) {
    if (kEventNames[value] == name) return static_cast<EventType>(value);
  }
  return std::nullopt;
}

std::string_view EventResultName(EventResult result) {
  const auto value = static_cast<std::uint8_t>(result);
  return IsKnownResult(value) ? kResultNames[value] : std::string_view();
}

std::optional<EventResult> EventResultFromName(std::string_view name) {
  for (std::uint8_t value = 1; value <= 3; ++value) {
    if (kResultNames[value] == name) return static_cast<EventResult>(value);
  }
  return std::nullopt;
}

Status ValidateNodeName(std::string_view node) {
  if (node.empty() || !internal::IsIdText(node, kMaxNodeNameSize)) {
    return Fail(ErrorCode::kInvalidArgument, "audit entry: node name outside [a-z0-9._-]{1,64}");
  }
  return Ok();
}

Status ValidateJurisdiction(std::string_view jurisdiction) {
  if (jurisdiction.size() != 2 || jurisdiction[0] < 'A' || jurisdiction[0] > 'Z' ||
      jurisdiction[1] < 'A' || jurisdiction[1] > 'Z') {
    return Fail(ErrorCode::kInvalidArgument, "audit entry: jurisdiction must be two capitals");
  }
  return Ok();
}

Result<std::vector<std::uint8_t>> EncodeEntry(const Entry& entry) {
  COFFRE_RETURN_IF_ERROR(ValidateEntry(entry));
  const std::size_t size = 1 + 2 + 1 + 8 + OptionalSize(entry.actor) + 4 +
                           OptionalSize(entry.team_id) + OptionalSize(entry.item_id) + 8 + 1 +
                           entry.node.size() + 2 + OptionalSize(entry.details_hash) +
                           (entry.client_event ? kClientEventSize : 0);
  std::vector<std::uint8_t> bytes(size);
  Writer out(bytes);
  out.U8(entry.client_event ? kClientEntryFormatVersion : kEntryFormatVersion);
  out.U16(static_cast<std::uint16_t>(entry.type));
  out.U8(static_cast<std::uint8_t>(entry.result));
  out.U64(entry.relay_time_ms);
  WriteOptional(out, entry.actor);
  out.U32(entry.device_id);
  WriteOptional(out, entry.team_id);
  WriteOptional(out, entry.item_id);
  out.U64(entry.object_version);
  out.U8(static_cast<std::uint8_t>(entry.node.size()));
  out.Raw(entry.node);
  out.Raw(entry.jurisdiction);
  WriteOptional(out, entry.details_hash);
  if (entry.client_event) out.Raw(EncodeClientEvent(*entry.client_event));
  if (out.size() != bytes.size()) std::abort();  // the size computed above is wrong: our bug
  return bytes;
}

Result<Entry> DecodeEntry(std::span<const std::uint8_t> bytes) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (bytes.size() > kMaxEntrySize) return Fail(kBad, "audit entry: longer than any entry");
  Reader in(bytes);
  std::uint8_t version;
  if (!in.U8(version)) return Fail(kBad, "audit entry: empty");
  if (version != kEntryFormatVersion && version != kClientEntryFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "audit entry: unknown format version");
  }
  Entry entry;
  std::uint16_t type;
  std::uint8_t result;
  std::uint8_t node_size;
  if (!in.U16(type) || !in.U8(result) || !in.U64(entry.relay_time_ms) ||
      !ReadOptional(in, entry.actor) || !in.U32(entry.device_id) ||
      !ReadOptional(in, entry.team_id) || !ReadOptional(in, entry.item_id) ||
      !in.U64(entry.object_version) || !in.U8(node_size) || !in.Text(node_size, entry.node) ||
      !in.Text(2, entry.jurisdiction) || !ReadOptional(in, entry.details_hash)) {
    return Fail(kBad, "audit entry: truncated or with a length outside its allowed values");
  }
  if (version == kClientEntryFormatVersion) {
    std::span<const std::uint8_t> event;
    if (!in.Bytes(kClientEventSize, event)) return Fail(kBad, "audit entry: truncated client event");
    COFFRE_ASSIGN_OR_RETURN(entry.client_event, DecodeClientEvent(event));
  }
  if (!in.done()) return Fail(kBad, "audit entry: trailing bytes");
  if (!IsKnownType(type)) return Fail(kBad, "audit entry: unknown event type");
  if (!IsKnownResult(result)) return Fail(kBad, "audit entry: unknown result");
  entry.type = static_cast<EventType>(type);
  entry.result = static_cast<EventResult>(result);
  COFFRE_RETURN_IF_ERROR(ValidateEntry(entry));
  return entry;
}

Result<Pseudonym> PseudonymizeActor(const crypto::SecretBytes& organisation_key,
                                    std::string_view user_id) {
  if (user_id.empty() || !internal::IsIdText(user_id, kMaxUserIdSize)) {
    return Fail(ErrorCode::kInvalidArgument, "audit actor: user id outside [a-z0-9._-]{1,64}");
  }
  const std::span<const std::uint8_t> context(reinterpret_cast<const std::uint8_t*>(user_id.data()),
                                              user_id.size());
  COFFRE_ASSIGN_OR_RETURN(
      const crypto::SecretBytes derived,
      crypto::DeriveSubkey(organisation_key.span(), kActorLabel, context, kPseudonymSize));
  Pseudonym pseudonym;
  std::memcpy(pseudonym.data(), derived.data(), kPseudonymSize);
  return pseudonym;
}

Result<crypto::SecretBytes> EncodeDetails(const Details& details) {
  COFFRE_RETURN_IF_ERROR(ValidateDetails(details));
  crypto::SecretBytes bytes(1 + 1 + details.actor_user_id.size() + 1 +
                            details.subject_user_id.size() + 1 + details.ip_address.size() + 2 +
                            details.user_agent.size() + 2 + details.reason.size());
  Writer out(bytes.span());
  out.U8(kDetailsFormatVersion);
  out.U8(static_cast<std::uint8_t>(details.actor_user_id.size()));
  out.Raw(details.actor_user_id);
  out.U8(static_cast<std::uint8_t>(details.subject_user_id.size()));
  out.Raw(details.subject_user_id);
  out.U8(static_cast<std::uint8_t>(details.ip_address.size()));
  out.Raw(details.ip_address);
  out.U16(static_cast<std::uint16_t>(details.user_agent.size()));
  out.Raw(details.user_agent);
  out.U16(static_cast<std::uint16_t>(details.reason.size()));
  out.Raw(details.reason);
  if (out.size() != bytes.size()) std::abort();  // the size computed above is wrong: our bug
  return bytes;
}

Result<Details> DecodeDetails(std::span<const std::uint8_t> bytes) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  Reader in(bytes);
  std::uint8_t version;
  if (!in.U8(version)) return Fail(kBad, "audit details: empty");
  if (version != kDetailsFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "audit details: unknown format version");
  }
  Details details;
  std::uint8_t actor_size;
  std::uint8_t subject_size;
  std::uint8_t address_size;
  std::uint16_t agent_size;
  std::uint16_t reason_size;
  if (!in.U8(actor_size) || !in.Text(actor_size, details.actor_user_id) || !in.U8(subject_size) ||
      !in.Text(subject_size, details.subject_user_id) || !in.U8(address_size) ||
      !in.Text(address_size, details.ip_address) || !in.U16(agent_size) ||
      !in.Text(agent_size, details.user_agent) || !in.U16(reason_size) ||
      !in.Text(reason_size, details.reason)) {
    return Fail(kBad, "audit details: truncated");
  }
  if (!in.done()) return Fail(kBad, "audit details: trailing bytes");
  COFFRE_RETURN_IF_ERROR(ValidateDetails(details));
  return details;
}

std::vector<std::uint8_t> SealMonthKey(const crypto::X25519PublicKey& auditor,
                                       const MonthKey& key) {
  return crypto::SealToPublicKey(auditor, kMonthKeyLabel, key.key_.bytes());
}

Result<MonthKey> OpenMonthKey(const crypto::X25519KeyPair& auditor,
                              std::span<const std::uint8_t> sealed) {
  auto opened = crypto::OpenSealedBox(auditor, kMonthKeyLabel, sealed);
  if (!opened || opened->size() != kMonthKeySize) {
    return Fail(ErrorCode::kAuthenticationFailed, kMonthKeyOpenFailed);
  }
  auto key = crypto::AeadKey::FromBytes(std::move(*opened));
  if (!key) return Fail(ErrorCode::kAuthenticationFailed, kMonthKeyOpenFailed);
  return MonthKey(std::move(*key));
}

Result<std::vector<std::uint8_t>> SealDetailsUnder(const MonthKey& key, std::uint64_t key_id,
                                                   const Details& details) {
  if (key_id == 0 || key_id > kMaxMonthKeyId) {
    return Fail(ErrorCode::kInvalidArgument, "audit details: month key id out of range");
  }
  COFFRE_ASSIGN_OR_RETURN(const crypto::SecretBytes encoded, EncodeDetails(details));
  std::array<std::uint8_t, kKeyIdSize> id{};
  Writer(id).U64(key_id);
  // The key id is bound as associated data: details moved under another id do not open,
  // even if a relay ever reused a key under two ids.
  const std::vector<std::uint8_t> boxed =
      crypto::AeadSeal(key.key_, kDetailsLabel, encoded.span(), id);
  std::vector<std::uint8_t> sealed;
  sealed.reserve(kKeyIdSize + boxed.size());
  sealed.insert(sealed.end(), id.begin(), id.end());
  sealed.insert(sealed.end(), boxed.begin(), boxed.end());
  return sealed;
}

Result<std::uint64_t> SealedDetailsKeyId(std::span<const std::uint8_t> sealed) {
  if (sealed.size() < kMinSealedDetailsSize || sealed.size() > kMaxSealedDetailsSize) {
    return Fail(ErrorCode::kInvalidArgument, "audit details: sealed details of an impossible size");
  }
  std::uint64_t key_id = 0;
  Reader in(sealed);
  if (!in.U64(key_id) || key_id == 0 || key_id > kMaxMonthKeyId) {
    return Fail(ErrorCode::kInvalidArgument, "audit details: month key id out of range");
  }
  return key_id;
}

Result<Details> OpenDetailsUnder(const MonthKey& key, std::span<const std::uint8_t> sealed) {
  if (!SealedDetailsKeyId(sealed)) {
    return Fail(ErrorCode::kAuthenticationFailed, kDetailsOpenFailed);
  }
  const auto id = sealed.first(kKeyIdSize);
  auto encoded = crypto::AeadOpen(key.key_, kDetailsLabel, sealed.subspan(kKeyIdSize), id);
  if (!encoded) return Fail(ErrorCode::kAuthenticationFailed, kDetailsOpenFailed);
  return DecodeDetails(encoded->span());
}

Hash DetailsHash(std::span<const std::uint8_t> sealed) {
  std::vector<std::uint8_t> input;
  input.reserve(2 + kDetailsHashLabel.size() + sealed.size());
  input.push_back(static_cast<std::uint8_t>(kDetailsHashLabel.size() >> 8));
  input.push_back(static_cast<std::uint8_t>(kDetailsHashLabel.size() & 0xFF));
  input.insert(input.end(), kDetailsHashLabel.begin(), kDetailsHashLabel.end());
  input.insert(input.end(), sealed.begin(), sealed.end());
  return crypto::Blake2b256(input);
}

}  // namespace coffre::audit
