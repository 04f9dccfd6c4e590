// Events only a client sees — a document opened from its own copy, a document written to a
// file — reported to the relay's audit log as statements signed by the device (decision
// 0017). Each device numbers its events 1, 2, 3, ... and links each to the hash of the one
// before, so a verifier reading the log sees when one is missing (a gap), when two differ
// under one number (a fork), or when a statement was not signed by the device it names.
//
// Canonical encoding (kClientEventSize bytes, big-endian; docs/protocol.md "Audit log"):
//
//     u8  version (1) | u16 event type | u64 client time (ms, UTC) | u32 device id
//     32  device signing key (Ed25519) | 16 team id | 16 item id | u64 item version
//     u64 sequence (1, 2, ...) | 32 previous event hash (zeros for sequence 1)
//     64  signature by the device key (crypto::SigningKey::Sign, label
//         "coffre/audit-client-event/v1") over everything before it
//
// The relay puts the whole signed statement into the entry it records (entry format 2,
// entry.h), so the tree commits to the device's signature and a bundle carries it.
#ifndef COFFRE_AUDIT_CLIENT_EVENT_H_
#define COFFRE_AUDIT_CLIENT_EVENT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "coffre/audit/merkle.h"
#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {

enum class EventType : std::uint16_t;

inline constexpr std::uint8_t kClientEventFormatVersion = 1;
inline constexpr std::size_t kClientEventKeySize = crypto::kEd25519PublicKeySize;
inline constexpr std::size_t kClientEventSignatureSize = crypto::kEd25519SignatureSize;
inline constexpr std::size_t kClientEventSignedSize =
    1 + 2 + 8 + 4 + kClientEventKeySize + 16 + 16 + 8 + 8 + kHashSize;
inline constexpr std::size_t kClientEventSize = kClientEventSignedSize + kClientEventSignatureSize;

struct ClientEvent {
  EventType type{};                 // kDocumentOpened or kDocumentExported
  std::uint64_t client_time_ms = 0;  // the device's clock: what it says, not what the relay saw
  std::uint32_t device_id = 0;       // 1..kMaxDeviceId
  std::array<std::uint8_t, kClientEventKeySize> device_key{};
  std::array<std::uint8_t, 16> team_id{};
  std::array<std::uint8_t, 16> item_id{};
  std::uint64_t version = 0;   // the document version, >= 1
  std::uint64_t sequence = 0;  // this device's event number, >= 1
  Hash previous{};             // ClientEventHash of event sequence - 1; zeros for the first
  std::array<std::uint8_t, kClientEventSignatureSize> signature{};

  bool operator==(const ClientEvent&) const = default;
};

// Whether a client may report events of this type (document opened or exported).
bool IsClientEventType(EventType type);

// Fills in device_key and signature: `event` signed by `device_key`. Fails with
// kInvalidArgument when a field is outside its form (type, device id, version, sequence,
// time above 2^63 - 1, a non-zero previous hash for sequence 1).
Result<ClientEvent> SignClientEvent(ClientEvent event, const crypto::SigningKey& device_key);
// Ok() when the signature verifies under the event's own device key; kAuthenticationFailed
// otherwise. Who the key belongs to is the caller's question (the relay checks it against
// the device it authenticated; decision 0017).
Status VerifyClientEventSignature(const ClientEvent& event);

std::array<std::uint8_t, kClientEventSize> EncodeClientEvent(const ClientEvent& event);
// Strict inverse of EncodeClientEvent (signature not checked): kUnsupported for another
// version, kInvalidArgument for a wrong size or a field outside its form.
Result<ClientEvent> DecodeClientEvent(std::span<const std::uint8_t> bytes);
// BLAKE2b-256 of the whole encoding under the label "coffre/audit-client-event-hash/v1":
// what the device's next event links to.
Hash ClientEventHash(const ClientEvent& event);

// Follows each device's chain of events in log order and says how each one links.
class ClientEventChains {
 public:
  enum class Link {
    kFirst,   // the first of its device seen here, and numbered 1
    kNext,    // sequence and previous hash follow the device's last event
    kRepeat,  // the very same statement again (a retried report): harmless
    kGap,     // events of this device are missing before this one
    kFork,    // a different statement under a number already seen, or a broken link
  };
  // How `event` links; `missing_from` / `missing_to` name the missing sequence numbers
  // for kGap. The event becomes its device's last one unless it is a repeat or a fork.
  Link Add(const ClientEvent& event, std::uint64_t* missing_from = nullptr,
           std::uint64_t* missing_to = nullptr);

 private:
  struct Last {
    std::uint64_t sequence = 0;
    Hash hash{};
  };
  std::map<std::array<std::uint8_t, kClientEventKeySize>, Last> last_;
};

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_CLIENT_EVENT_H_
