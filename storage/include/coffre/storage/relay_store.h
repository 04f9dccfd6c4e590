// The relay's embedded store: what coffre-relay keeps between restarts.
//
// Everything here is metadata and ciphertext; the relay never holds a content key. Every
// write returns only once it is durable (committed with synchronous = FULL), so the relay
// can acknowledge to a client right after a write returns. Implementations must be safe to
// call from many threads at once; concurrent writes are grouped into one commit (group
// commit) so that N writers pay about one fsync, not N.
//
// Identifiers: user ids are logins (1..64 bytes of [a-z0-9._-]); team, item and blob ids
// are 16 random bytes chosen by clients; hashes are 32 bytes. Callers validate formats
// before calling (protocol/); the store still refuses sizes it cannot hold: every method
// fails with kInvalidArgument for an identifier, hash or key of the wrong size, and for a
// 64-bit count, version or sequence above INT64_MAX (SQLite stores signed integers).
#ifndef COFFRE_STORAGE_RELAY_STORE_H_
#define COFFRE_STORAGE_RELAY_STORE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::storage {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

struct EnrolmentGrant {
  std::string org_id;
  bool admin = false;
};

struct DeviceRecord {
  std::string user_id;
  std::uint32_t device_id = 0;
  Bytes certificate;         // serialized wire DeviceCertificate, as received
  Bytes signing_key;         // Ed25519 public key from the certificate, 32 bytes
  bool revoked = false;
  std::int64_t created_ms = 0;
  // libsignal identity public key from the certificate, 33 bytes (or empty if unknown).
  // Kept beside the certificate because storage/ cannot parse wire messages; it is what
  // TakePreKeyBundle returns as the bundle's identity key. Last, so that existing
  // initialisers keep their meaning.
  Bytes signal_identity_key;
};

struct UserRecord {
  std::string user_id;
  std::string org_id;
  bool admin = false;
  Bytes identity_key;        // Ed25519 public key, 32 bytes
  std::int64_t created_ms = 0;
};

struct SessionRecord {
  std::string user_id;
  std::uint32_t device_id = 0;
  std::int64_t expires_ms = 0;
};

struct SignedPreKeyRecord {
  std::uint32_t id = 0;
  Bytes public_key;          // 33 bytes
  Bytes signature;           // 64 bytes
  std::int64_t timestamp_ms = 0;
};

struct OneTimePreKeyRecord {
  std::uint32_t id = 0;
  Bytes public_key;          // 33 bytes
};

struct PreKeyBundleRecord {
  std::uint32_t registration_id = 0;
  Bytes signal_identity_key;  // the device's DeviceRecord::signal_identity_key
  SignedPreKeyRecord signed_pre_key;
  std::optional<OneTimePreKeyRecord> one_time_pre_key;  // handed out once, then deleted
  std::uint32_t one_time_pre_keys_left = 0;             // after this fetch
};

struct NewEnvelope {
  std::string recipient_user_id;
  std::uint32_t recipient_device_id = 0;
  std::string sender_user_id;
  std::uint32_t sender_device_id = 0;
  Bytes client_id;           // 16 bytes; (sender device, client_id) is unique
  std::uint32_t type = 0;
  Bytes ciphertext;
  std::int64_t received_ms = 0;
};

struct EnvelopeRecord {
  std::uint64_t sequence = 0;  // increasing per recipient device, never reused
  std::string sender_user_id;
  std::uint32_t sender_device_id = 0;
  Bytes client_id;
  std::uint32_t type = 0;
  Bytes ciphertext;
  std::int64_t received_ms = 0;
};

// What a device's mailbox holds: its unacknowledged envelopes.
struct MailboxUsageRecord {
  std::uint64_t count = 0;
  std::uint64_t bytes = 0;  // sum of their ciphertext sizes
};

// One device, as named in a batch request.
struct DeviceAddress {
  std::string user_id;
  std::uint32_t device_id = 0;
};

struct ChainHead {
  std::uint64_t sequence = 0;  // of the last statement
  Bytes hash;                  // of the last statement
};

struct TeamMember {
  std::string user_id;
  std::uint32_t role = 0;  // wire Role value
};

struct ItemRecord {
  Bytes team_id;
  Bytes item_id;
  std::uint64_t version = 0;
  Bytes manifest;            // serialized wire ItemManifest, as received
  Bytes blob_id;             // empty when the item has no blob
  std::int64_t created_ms = 0;
};

struct BlobRecord {
  Bytes team_id;
  Bytes blob_id;
  std::uint64_t size = 0;      // declared total size
  std::uint64_t received = 0;  // contiguous bytes stored so far
  bool complete = false;
  std::string uploader_user_id;
  std::uint32_t uploader_device_id = 0;
};

// Blobs of a team, or blobs created by one device (all teams).
struct BlobUsageRecord {
  std::uint64_t blobs = 0;
  std::uint64_t size_bytes = 0;      // sum of declared sizes (what a quota reserves)
  std::uint64_t received_bytes = 0;  // sum of bytes received so far
};

struct RelayCounts {
  std::uint64_t users = 0;
  std::uint64_t devices = 0;  // not revoked
  std::uint64_t teams = 0;
  std::uint64_t queued_envelopes = 0;
  std::uint64_t blob_bytes = 0;  // sum of received bytes of all blobs
};

// How long the store remembers the client id of an envelope after receiving it, once the
// envelope is acknowledged: a retry that arrives later than this could be delivered again.
inline constexpr std::int64_t kEnvelopeIdRetentionMs = 30LL * 24 * 60 * 60 * 1000;

class RelayStore {
 public:
  virtual ~RelayStore() = default;

  // --- Enrolment and accounts ---------------------------------------------------------
  // Stores a one-time enrolment code by its hash (SHA-256 of the code; the code itself is
  // never stored). kAlreadyExists if that hash is already known.
  virtual Status CreateEnrolment(ByteView code_hash, std::string_view org_id, bool admin,
                                 std::int64_t expires_ms) = 0;
  // In one transaction: consumes the enrolment (unused and not expired at now_ms, else
  // kNotFound), creates the user (kAlreadyExists if the user id is taken; the code then
  // stays unused) and its first device. Returns what the enrolment granted. The user's
  // org_id and admin flag are taken from the enrolment; those in `user` are ignored.
  // kInvalidArgument if first_device.user_id is not user.user_id.
  virtual Result<EnrolmentGrant> RegisterUser(ByteView code_hash, std::int64_t now_ms,
                                              const UserRecord& user,
                                              const DeviceRecord& first_device) = 0;
  virtual Result<std::optional<UserRecord>> GetUser(std::string_view user_id) = 0;
  // kAlreadyExists if the (user, device id) pair exists, revoked or not (ids never reused);
  // kNotFound if the user does not exist.
  virtual Status AddDevice(const DeviceRecord& device) = 0;
  // Marks the device revoked and deletes its session tokens, prekeys and queued envelopes.
  // kNotFound if there is no such device. Revoking a revoked device succeeds.
  virtual Status RevokeDevice(std::string_view user_id, std::uint32_t device_id) = 0;
  virtual Result<std::optional<DeviceRecord>> GetDevice(std::string_view user_id,
                                                        std::uint32_t device_id) = 0;
  // Every device of the user, revoked ones included, by device id.
  virtual Result<std::vector<DeviceRecord>> ListDevices(std::string_view user_id) = 0;

  // --- Session tokens (only their SHA-256 is stored) -----------------------------------
  // kNotFound if the device is unknown or revoked (a session stored after a revocation
  // would otherwise outlive it); kAlreadyExists if the hash is already stored.
  virtual Status StoreSession(ByteView token_hash, const SessionRecord& session) = 0;
  // The session if the hash is known and not expired at now_ms; expired ones are deleted.
  virtual Result<std::optional<SessionRecord>> LookupSession(ByteView token_hash,
                                                             std::int64_t now_ms) = 0;

  // --- Prekeys ---------------------------------------------------------------------------
  // Sets the registration id, replaces the signed prekey when given, and adds one-time
  // prekeys (an id already present is replaced). kNotFound if the device is unknown or
  // revoked.
  virtual Status StorePreKeys(std::string_view user_id, std::uint32_t device_id,
                              std::uint32_t registration_id,
                              const std::optional<SignedPreKeyRecord>& signed_pre_key,
                              std::span<const OneTimePreKeyRecord> one_time_pre_keys) = 0;
  // The device's bundle, taking (and deleting, in the same transaction) the one-time prekey
  // with the lowest id, so that no one-time prekey is ever handed out twice. kNotFound when
  // the device is unknown, revoked, or has no signed prekey yet.
  virtual Result<PreKeyBundleRecord> TakePreKeyBundle(std::string_view user_id,
                                                        std::uint32_t device_id) = 0;
  // How many one-time prekeys the device has stored (0 for an unknown or revoked device).
  virtual Result<std::uint64_t> OneTimePreKeyCount(std::string_view user_id,
                                                   std::uint32_t device_id) = 0;

  // --- Mailboxes -------------------------------------------------------------------------
  // Stores the envelopes durably, all or none, and returns their sequence numbers in input
  // order. An envelope whose (sender device, client_id) was stored before is not stored
  // again: its first sequence number is returned (it may have been acknowledged since).
  // That memory of client ids lasts kEnvelopeIdRetentionMs after an envelope was received
  // and at least until it is acknowledged. kNotFound, and nothing stored, if a recipient
  // device is unknown or revoked (so no envelope can be queued behind a revocation).
  virtual Result<std::vector<std::uint64_t>> EnqueueEnvelopes(
      std::span<const NewEnvelope> envelopes) = 0;
  // Unacknowledged envelopes of the device with sequence > after_sequence, in order, at most
  // `limit`.
  virtual Result<std::vector<EnvelopeRecord>> FetchEnvelopes(std::string_view user_id,
                                                             std::uint32_t device_id,
                                                             std::uint64_t after_sequence,
                                                             std::uint32_t limit) = 0;
  // Deletes the listed envelopes of this device (others' envelopes are never touched);
  // returns how many existed. Their client ids are still remembered (see above).
  virtual Result<std::uint64_t> AckEnvelopes(std::string_view user_id, std::uint32_t device_id,
                                             std::span<const std::uint64_t> sequences) = 0;
  // Count and ciphertext bytes of the device's unacknowledged envelopes (zero for an
  // unknown or revoked device: revocation deletes its mailbox). The cost grows with the
  // number of envelopes queued for the device.
  virtual Result<MailboxUsageRecord> MailboxUsage(std::string_view user_id,
                                                  std::uint32_t device_id) = 0;
  // For each device of `devices`, in the same order: nullopt if it is unknown or revoked,
  // else its MailboxUsage. All read in one read transaction (one snapshot) on one read
  // connection, so a sender's checks of many recipients cost one read, not one per
  // recipient. A device listed twice is answered twice.
  virtual Result<std::vector<std::optional<MailboxUsageRecord>>> ActiveMailboxUsage(
      std::span<const DeviceAddress> devices) = 0;

  // --- Team chains -----------------------------------------------------------------------
  virtual Result<std::optional<ChainHead>> GetChainHead(ByteView team_id) = 0;
  // Appends a statement that the caller has verified, if and only if the chain's head is
  // still `expected_head` (nullopt: the chain must not exist yet), and replaces the team's
  // member list with `members_after` in the same transaction. kConflict when the head
  // moved (a fork attempt or a race). `statement` is the serialized wire ChainStatement.
  // kInvalidArgument if new_head.sequence is not expected_head->sequence + 1, or if a user
  // appears twice in `members_after`.
  virtual Status AppendChainStatement(ByteView team_id,
                                      const std::optional<ChainHead>& expected_head,
                                      const ChainHead& new_head, ByteView statement,
                                      std::span<const TeamMember> members_after) = 0;
  // Serialized statements from `from_sequence` on, in order.
  virtual Result<std::vector<Bytes>> FetchChain(ByteView team_id, std::uint64_t from_sequence) = 0;
  virtual Result<std::vector<TeamMember>> TeamMembers(ByteView team_id) = 0;
  // Team ids (with their heads) where the user is a member.
  virtual Result<std::vector<std::pair<Bytes, ChainHead>>> TeamsOfUser(
      std::string_view user_id) = 0;

  // --- Items -----------------------------------------------------------------------------
  // Stores `item.version` if the item's current version is `parent_version` (0: the item
  // must not exist). On a lost race returns kConflict and sets *current_version (0: the
  // item does not exist); on success sets it to item.version. `current_version` may be
  // null. kInvalidArgument unless item.version > parent_version.
  virtual Status PutItemVersion(const ItemRecord& item, std::uint64_t parent_version,
                                std::uint64_t* current_version) = 0;
  // version 0 = current.
  virtual Result<std::optional<ItemRecord>> GetItem(ByteView team_id, ByteView item_id,
                                                    std::uint64_t version) = 0;
  // The current version of the team's items whose id is after `after_item_id` (empty: from
  // the first), in item id order (bytewise), at most `limit`. To page, pass the last id
  // received. kInvalidArgument if `after_item_id` is neither empty nor 16 bytes.
  virtual Result<std::vector<ItemRecord>> ListItems(ByteView team_id, ByteView after_item_id,
                                                    std::uint32_t limit) = 0;

  // --- Blobs (metadata; the bytes are files managed by the relay) -------------------------
  // kAlreadyExists if the blob id exists in the team; kInvalidArgument as for
  // UpdateBlobProgress.
  virtual Status CreateBlob(const BlobRecord& blob) = 0;
  virtual Result<std::optional<BlobRecord>> GetBlob(ByteView team_id, ByteView blob_id) = 0;
  // kNotFound if the blob does not exist; kInvalidArgument if received > size or if
  // `complete` is set with received != size.
  virtual Status UpdateBlobProgress(ByteView team_id, ByteView blob_id, std::uint64_t received,
                                    bool complete) = 0;
  // Sums over the team's blobs, complete or not.
  virtual Result<BlobUsageRecord> TeamBlobUsage(ByteView team_id) = 0;
  // Sums over the blobs the device created, in every team. Reads every blob row (the store
  // has no index on the uploader): meant for the rare blob creation, not for hot paths.
  virtual Result<BlobUsageRecord> DeviceBlobUsage(std::string_view user_id,
                                                  std::uint32_t device_id) = 0;

  // --- Operations ------------------------------------------------------------------------
  virtual Result<RelayCounts> Counts() = 0;
};

// Opens (creating if missing) the SQLCipher relay store at `path` with the operator's raw
// 32-byte key. kWrongPassphrase ("wrong passphrase or not a Coffre store") on a wrong key.
Result<std::unique_ptr<RelayStore>> OpenSqlCipherRelayStore(const std::filesystem::path& path,
                                                            const crypto::SecretBytes& key);

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_RELAY_STORE_H_
