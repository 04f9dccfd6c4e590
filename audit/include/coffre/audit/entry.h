// Audit log entries: one canonical byte encoding per event, the leaf data of the tree
// (leaf hash = HashLeaf(EncodeEntry(entry)), merkle.h). docs/protocol.md "Audit log" has
// the layout; every integer is big-endian and every variable field has a length prefix
// whose allowed values are listed, so that an entry has exactly one encoding.
//
//     u8  version (1)  | u16 event type | u8 result | u64 relay time (ms, UTC)
//     u8 n || actor pseudonym (n = 0 or 32) | u32 device id (0: none)
//     u8 n || team id (0 or 16) | u8 n || item id (0 or 16) | u64 object version
//     u8 n || node (1..64 of [a-z0-9._-]) | 2 jurisdiction ([A-Z]{2})
//     u8 n || details hash (0: no details, or 32)
//     format 2 only: the client event, kClientEventSize bytes (client_event.h)
//
// Format 1 is an event the relay saw; format 2 is an event a device reported and signed
// (document opened, document exported), whose signed statement the entry carries whole.
//
// Who did what is recorded as pseudonyms and ids; the names, address, user agent and
// reason (Details) are sealed under a month key that only the auditor's X25519 key opens,
// and the entry commits only to the hash of the sealed bytes. Erasing the sealed details
// and destroying the month key at the end of retention thus leaves every entry, leaf and
// proof valid.
#ifndef COFFRE_AUDIT_ENTRY_H_
#define COFFRE_AUDIT_ENTRY_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/audit/client_event.h"
#include "coffre/audit/merkle.h"
#include "coffre/base/result.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/x25519.h"

namespace coffre::audit {

inline constexpr std::uint8_t kEntryFormatVersion = 1;
inline constexpr std::uint8_t kClientEntryFormatVersion = 2;  // an entry with a client event
inline constexpr std::uint8_t kDetailsFormatVersion = 1;

// What happened. The result field says how it ended, so a refused fetch is kBlobFetched
// with kRefused and a failed login is kLogin with kFailed. Values are part of the format.
enum class EventType : std::uint16_t {
  kEnrolment = 1,      // an account created with an enrolment code
  kDeviceAdded = 2,    // a device certificate registered
  kDeviceRevoked = 3,  // a device revoked
  kLogin = 4,          // a device authenticated (or tried to)
  kTeamCreated = 5,    // team chain statements, as the relay applied them:
  kMemberAdded = 6,    //   object = team, object version = statement sequence
  kMemberRemoved = 7,
  kRoleChanged = 8,
  kKeyRotated = 9,
  kAuditorKeySet = 10,
  kTeamRenamed = 11,
  kItemVersionUploaded = 12,  // object = team, item, version
  kItemFetched = 13,          // a manifest served (recorded before it leaves)
  kBlobFetched = 14,          // blob bytes served (recorded before they leave)
  kAuditExported = 15,        // an auditor exported a bundle
  kDocumentOpened = 16,       // signed by a client: a document opened from its own copy
  kDocumentExported = 17,     // signed by a client: a document written to a file
  kLegalHoldPlaced = 18,      // a legal hold signed by an admin and an auditor took effect
};
inline constexpr std::uint16_t kMaxEventType = 18;

enum class EventResult : std::uint8_t {
  kSuccess = 1,
  kRefused = 2,  // the relay said no (rights, quota, unknown object)
  kFailed = 3,   // it went wrong (bad signature, bad credentials, internal error)
};

// The stable names used in exports and filters ("enrolment", "device_added", ...,
// "legal_hold_placed"; "success", "refused", "failed"), and back. The From* functions
// return nullopt for an unknown name.
std::string_view EventTypeName(EventType type);
std::optional<EventType> EventTypeFromName(std::string_view name);
std::string_view EventResultName(EventResult result);
std::optional<EventResult> EventResultFromName(std::string_view name);

inline constexpr std::size_t kPseudonymSize = 32;
inline constexpr std::size_t kObjectIdSize = 16;
inline constexpr std::size_t kMaxNodeNameSize = 64;
inline constexpr std::uint32_t kMaxDeviceId = 0x7FFFFFFF;
// The longest entry encoding (every optional field present, the longest node name).
inline constexpr std::size_t kMaxEntrySize = 1 + 2 + 1 + 8 + 1 + kPseudonymSize + 4 + 1 +
                                             kObjectIdSize + 1 + kObjectIdSize + 8 + 1 +
                                             kMaxNodeNameSize + 2 + 1 + kHashSize +
                                             kClientEventSize;

using Pseudonym = std::array<std::uint8_t, kPseudonymSize>;
using ObjectId = std::array<std::uint8_t, kObjectIdSize>;

struct Entry {
  EventType type = EventType::kLogin;
  EventResult result = EventResult::kSuccess;
  std::uint64_t relay_time_ms = 0;  // milliseconds since 1970-01-01T00:00:00Z
  std::optional<Pseudonym> actor;   // PseudonymizeActor of the user; none when unknown
  std::uint32_t device_id = 0;      // 0: none
  std::optional<ObjectId> team_id;
  std::optional<ObjectId> item_id;
  std::uint64_t object_version = 0;  // item version or chain sequence; 0: none
  std::string node;                  // the relay node that recorded it
  std::string jurisdiction;          // where that node runs, e.g. "FR"
  std::optional<Hash> details_hash;  // DetailsHash of the sealed details; none: no details
  // The device's signed statement, for the client event types and only for them; its
  // type, device, team, item and version are the entry's own.
  std::optional<ClientEvent> client_event;

  bool operator==(const Entry&) const = default;
};

// Ok() when `node` is 1..kMaxNodeNameSize bytes of [a-z0-9._-]; kInvalidArgument otherwise.
Status ValidateNodeName(std::string_view node);
// Ok() when `jurisdiction` is two ASCII capital letters; kInvalidArgument otherwise.
Status ValidateJurisdiction(std::string_view jurisdiction);

// The canonical encoding (format 2 exactly when there is a client event). Fails with
// kInvalidArgument on an unknown type or result, a relay time above 2^63 - 1, a device id
// above kMaxDeviceId, an invalid node or jurisdiction, or a client event that is missing,
// not for a client event type, or that disagrees with the entry's fields.
Result<std::vector<std::uint8_t>> EncodeEntry(const Entry& entry);
// The entry `bytes` encode. Strict: fails with kUnsupported for another format version and
// with kInvalidArgument for anything EncodeEntry would not write (unknown type or result,
// a length prefix outside its allowed values, an invalid field, missing or trailing bytes),
// so that DecodeEntry(b) succeeds exactly when EncodeEntry of its result gives b back.
Result<Entry> DecodeEntry(std::span<const std::uint8_t> bytes);

// The actor pseudonym of `user_id` in an organisation: keyed BLAKE2b (crypto::DeriveSubkey,
// label "coffre/audit-actor/v1") under the organisation's audit key, over the user id.
// Stable for a user within an organisation, unlinkable across organisations, and only
// reversible by whoever holds the key and guesses the user id. Fails with kInvalidArgument
// unless the key is 16..64 bytes and the user id is 1..64 bytes of [a-z0-9._-].
Result<Pseudonym> PseudonymizeActor(const crypto::SecretBytes& organisation_key,
                                    std::string_view user_id);

// --- Sealed details ----------------------------------------------------------------------------

inline constexpr std::size_t kMaxDetailsUserIdSize = 64;
inline constexpr std::size_t kMaxDetailsAddressSize = 45;  // the longest textual IPv6 address
inline constexpr std::size_t kMaxDetailsTextSize = 512;

// What an auditor, and only an auditor, may read about an entry. Empty strings are absent
// fields.
struct Details {
  std::string actor_user_id;    // the user behind the actor pseudonym: [a-z0-9._-], <= 64
  std::string subject_user_id;  // the user acted upon (enrolled, added, removed), same form
  std::string ip_address;       // the peer address as text: [0-9a-f.:], <= 45
  std::string user_agent;       // UTF-8 without control characters, <= 512 bytes
  std::string reason;           // why it was refused or failed; same form

  bool operator==(const Details&) const = default;
};

// The canonical encoding of `details` (docs/protocol.md), in memory that is wiped when
// freed: u8 version (1) || u8 n || actor || u8 n || subject || u8 n || address ||
// u16 n || user agent || u16 n || reason. Fails with kInvalidArgument on a field outside
// its form.
Result<crypto::SecretBytes> EncodeDetails(const Details& details);
// Strict inverse of EncodeDetails: kUnsupported for another version, kInvalidArgument for
// anything EncodeDetails would not write.
Result<Details> DecodeDetails(std::span<const std::uint8_t> bytes);

// --- Month keys (crypto-shredding) -------------------------------------------------------------
//
// Details are sealed with XChaCha20-Poly1305 under a random key per (month, auditor key),
// which the relay keeps in memory and persists only sealed to the auditor key. Retention
// deletes the sealed month key with the details: once it is gone no copy of the sealed
// details (a backup, an old export) opens any more, and one AEAD per entry replaces an X25519
// operation per entry. docs/protocol.md "Sealed details" has the formats.

inline constexpr std::size_t kMonthKeySize = 32;
// Key ids are SQLite rowids: 1 .. 2^63 - 1.
inline constexpr std::uint64_t kMaxMonthKeyId = (std::uint64_t{1} << 63) - 1;
// key id (8) || nonce (24) || ciphertext || tag (16).
inline constexpr std::size_t kSealedDetailsOverhead = 8 + 24 + 16;
// The shortest and longest encodings of Details (every field empty; every field at its
// limit), and so of sealed details.
inline constexpr std::size_t kMinDetailsSize = 1 + 1 + 1 + 1 + 2 + 2;
inline constexpr std::size_t kMaxDetailsSize =
    kMinDetailsSize + 2 * kMaxDetailsUserIdSize + kMaxDetailsAddressSize + 2 * kMaxDetailsTextSize;
inline constexpr std::size_t kMinSealedDetailsSize = kSealedDetailsOverhead + kMinDetailsSize;
inline constexpr std::size_t kMaxSealedDetailsSize = kSealedDetailsOverhead + kMaxDetailsSize;

// The key that seals one month's details for one auditor key: an XChaCha20-Poly1305 key of
// its own type, so that it cannot be passed where another key is expected. Move-only; the
// bytes are wiped when it is destroyed. A moved-from MonthKey must not be used.
class MonthKey {
 public:
  // A fresh key from the operating system's random source. Never fails.
  static MonthKey Generate() { return MonthKey(crypto::AeadKey::Generate()); }

  MonthKey(MonthKey&&) noexcept = default;
  MonthKey& operator=(MonthKey&&) noexcept = default;
  MonthKey(const MonthKey&) = delete;
  MonthKey& operator=(const MonthKey&) = delete;

 private:
  explicit MonthKey(crypto::AeadKey key) : key_(std::move(key)) {}
  friend std::vector<std::uint8_t> SealMonthKey(const crypto::X25519PublicKey&, const MonthKey&);
  friend Result<MonthKey> OpenMonthKey(const crypto::X25519KeyPair&, std::span<const std::uint8_t>);
  friend Result<std::vector<std::uint8_t>> SealDetailsUnder(const MonthKey&, std::uint64_t,
                                                            const Details&);
  friend Result<Details> OpenDetailsUnder(const MonthKey&, std::span<const std::uint8_t>);

  crypto::AeadKey key_;
};

// `key` sealed to the auditor's key (crypto::SealToPublicKey, label
// "coffre/audit-month-key/v1"): the only form in which a month key is stored or sent.
// Never fails.
std::vector<std::uint8_t> SealMonthKey(const crypto::X25519PublicKey& auditor, const MonthKey& key);
// The month key in a box sealed by SealMonthKey to `auditor`. Fails with
// kAuthenticationFailed (one context) when the box does not open under this key and label
// or does not hold exactly kMonthKeySize bytes.
Result<MonthKey> OpenMonthKey(const crypto::X25519KeyPair& auditor,
                              std::span<const std::uint8_t> sealed);

// `details` sealed under the month key `key` whose id is `key_id`:
//     u64be key id || XChaCha20-Poly1305(key, label "coffre/audit-details/v2",
//                                        associated data = u64be key id, EncodeDetails(details))
// with a fresh random nonce (crypto::AeadSeal: nonce || ciphertext || tag). Fails with
// kInvalidArgument on a key id outside 1..kMaxMonthKeyId, and as EncodeDetails does.
Result<std::vector<std::uint8_t>> SealDetailsUnder(const MonthKey& key, std::uint64_t key_id,
                                                   const Details& details);
// The id of the month key that `sealed` details need, read without opening them. Fails
// with kInvalidArgument unless `sealed` is kMinSealedDetailsSize..kMaxSealedDetailsSize
// bytes and names a key id in 1..kMaxMonthKeyId.
Result<std::uint64_t> SealedDetailsKeyId(std::span<const std::uint8_t> sealed);
// The details sealed by SealDetailsUnder under `key`. Fails with kAuthenticationFailed (one
// context) for anything that does not open — a length outside the bounds above, another
// key, another key id, a changed byte — and as DecodeDetails does when what it holds is not
// a valid encoding.
Result<Details> OpenDetailsUnder(const MonthKey& key, std::span<const std::uint8_t> sealed);

// The hash an entry commits to: BLAKE2b-256(u16be(28) || "coffre/audit-details-hash/v1" ||
// sealed). Never fails.
Hash DetailsHash(std::span<const std::uint8_t> sealed);

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_ENTRY_H_
