#include "coffre/audit/client_event.h"

#include <algorithm>
#include <cstdlib>

#include "codec.h"
#include "text.h"
#include "coffre/audit/entry.h"
#include "coffre/crypto/kdf.h"

namespace coffre::audit {
namespace {

constexpr std::string_view kSignatureLabel = "coffre/audit-client-event/v1";
constexpr std::string_view kHashLabel = "coffre/audit-client-event-hash/v1";

Status ValidateClientEvent(const ClientEvent& event) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (!IsClientEventType(event.type)) return Fail(kBad, "client event: not a client event type");
  if (event.client_time_ms > internal::kMaxTimeMs) return Fail(kBad, "client event: time out of range");
  if (event.device_id == 0 || event.device_id > kMaxDeviceId) {
    return Fail(kBad, "client event: device id out of range");
  }
  if (event.version == 0) return Fail(kBad, "client event: document versions start at 1");
  if (event.sequence == 0 || event.sequence > internal::kMaxTimeMs) {
    return Fail(kBad, "client event: sequence out of range");
  }
  if (event.sequence == 1 && event.previous != Hash{}) {
    return Fail(kBad, "client event: the first event links to nothing");
  }
  return Ok();
}

// Everything the signature covers, written into `out` (kClientEventSignedSize bytes).
void WriteSigned(internal::Writer& out, const ClientEvent& event) {
  out.U8(kClientEventFormatVersion);
  out.U16(static_cast<std::uint16_t>(event.type));
  out.U64(event.client_time_ms);
  out.U32(event.device_id);
  out.Raw(event.device_key);
  out.Raw(event.team_id);
  out.Raw(event.item_id);
  out.U64(event.version);
  out.U64(event.sequence);
  out.Raw(event.previous);
}

}  // namespace

bool IsClientEventType(EventType type) {
  return type == EventType::kDocumentOpened || type == EventType::kDocumentExported;
}

Result<ClientEvent> SignClientEvent(ClientEvent event, const crypto::SigningKey& device_key) {
  event.device_key = device_key.verify_key().bytes();
  COFFRE_RETURN_IF_ERROR(ValidateClientEvent(event));
  std::array<std::uint8_t, kClientEventSignedSize> signed_bytes;
  internal::Writer out(signed_bytes);
  WriteSigned(out, event);
  event.signature = device_key.Sign(kSignatureLabel, signed_bytes);
  return event;
}

Status VerifyClientEventSignature(const ClientEvent& event) {
  auto key = crypto::VerifyKey::FromBytes(event.device_key);
  if (!key) return Fail(ErrorCode::kAuthenticationFailed, "client event: signature does not verify");
  std::array<std::uint8_t, kClientEventSignedSize> signed_bytes;
  internal::Writer out(signed_bytes);
  WriteSigned(out, event);
  return key->Verify(kSignatureLabel, signed_bytes, event.signature);
}

std::array<std::uint8_t, kClientEventSize> EncodeClientEvent(const ClientEvent& event) {
  std::array<std::uint8_t, kClientEventSize> bytes;
  internal::Writer out(bytes);
  WriteSigned(out, event);
  out.Raw(event.signature);
  if (out.size() != bytes.size()) std::abort();  // the layout above is wrong: our bug
  return bytes;
}

Result<ClientEvent> DecodeClientEvent(std::span<const std::uint8_t> bytes) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  if (bytes.empty()) return Fail(kBad, "client event: empty");
  if (bytes[0] != kClientEventFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "client event: unknown format version");
  }
  if (bytes.size() != kClientEventSize) return Fail(kBad, "client event: wrong size");
  internal::Reader in(bytes.subspan(1));
  ClientEvent event;
  std::uint16_t type = 0;
  // The size was checked above, so no read below can run short.
  (void)in.U16(type);
  (void)in.U64(event.client_time_ms);
  (void)in.U32(event.device_id);
  (void)in.Array(event.device_key);
  (void)in.Array(event.team_id);
  (void)in.Array(event.item_id);
  (void)in.U64(event.version);
  (void)in.U64(event.sequence);
  (void)in.Array(event.previous);
  (void)in.Array(event.signature);
  event.type = static_cast<EventType>(type);
  COFFRE_RETURN_IF_ERROR(ValidateClientEvent(event));
  return event;
}

Hash ClientEventHash(const ClientEvent& event) {
  std::array<std::uint8_t, 2 + kHashLabel.size() + kClientEventSize> input;
  internal::Writer out(input);
  out.U16(static_cast<std::uint16_t>(kHashLabel.size()));
  out.Raw(kHashLabel);
  out.Raw(EncodeClientEvent(event));
  return crypto::Blake2b256(input);
}

ClientEventChains::Link ClientEventChains::Add(const ClientEvent& event, std::uint64_t* missing_from,
                                               std::uint64_t* missing_to) {
  const Hash hash = ClientEventHash(event);
  auto [at, first] = last_.try_emplace(event.device_key);
  Last& last = at->second;
  auto gap = [&](std::uint64_t from, std::uint64_t to) {
    if (missing_from != nullptr) *missing_from = from;
    if (missing_to != nullptr) *missing_to = to;
    last = Last{event.sequence, hash};
    return Link::kGap;
  };
  if (first) {
    if (event.sequence == 1) {
      last = Last{1, hash};
      return Link::kFirst;
    }
    return gap(1, event.sequence - 1);
  }
  if (event.sequence == last.sequence && hash == last.hash) return Link::kRepeat;
  if (event.sequence <= last.sequence) return Link::kFork;
  if (event.sequence > last.sequence + 1) return gap(last.sequence + 1, event.sequence - 1);
  if (event.previous != last.hash) return Link::kFork;
  last = Last{event.sequence, hash};
  return Link::kNext;
}

}  // namespace coffre::audit
