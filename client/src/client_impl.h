// The state behind a Client and the operations its methods share. Private to the client
// library; the files client_*.cc each implement one area (profile, peers, teams, messages,
// sync) on this one structure.
#ifndef COFFRE_CLIENT_SRC_CLIENT_IMPL_H_
#define COFFRE_CLIENT_SRC_CLIENT_IMPL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/client/client.h"
#include "coffre/client/relay_address.h"
#include "coffre/client/relay_connection.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/storage/database.h"
#include "coffre/storage/signal_store.h"
#include "coffre/client/content.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/client/device_link.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::client {

namespace wire = coffre::wire::v1;

// File names inside a profile folder.
inline constexpr const char* kProfileDatabase = "profile.db";

// One-time prekeys uploaded at registration, and the level under which more are uploaded.
inline constexpr std::uint32_t kPreKeyBatch = 100;
inline constexpr std::uint32_t kPreKeyLowWater = 20;

// Envelope types of application messages (the relay carries them opaquely): a libsignal
// message whose plaintext is a content::v1::PeerMessage. The value is the libsignal type.
inline constexpr std::uint32_t kEnvelopeWhisper = 2;
inline constexpr std::uint32_t kEnvelopePreKey = 3;

// Item kinds (ItemManifestBody.kind).
inline constexpr std::string_view kKindChannel = "channel";
inline constexpr std::string_view kKindPost = "post";
inline constexpr std::string_view kKindDocument = "document";
// The previous team key generation sealed under the next one (content::v1::KeyHistory).
inline constexpr std::string_view kKindKeyHistory = "key-history";

// A verified device of another user (or of our own user), as the profile knows it.
struct PeerDevice {
  std::uint32_t device_id = 0;
  crypto::VerifyKey signing_key;
  std::vector<std::uint8_t> signal_identity;  // 33 bytes
  bool revoked = false;
  std::uint64_t created_ms = 0;  // from the certificate; 0 if not recorded
};

struct Peer {
  std::string user_id;
  std::array<std::uint8_t, 32> identity_key{};
  bool key_changed = false;  // the relay now shows another identity key than the pinned one
  std::vector<PeerDevice> devices;
};

// A team as the profile stores it.
struct TeamRecord {
  protocol::TeamId team_id{};
  std::string name;
};

// The team, its last verified chain and the current key generation, for a new item.
struct WriteContext {
  TeamRecord team;
  protocol::TeamChain chain;
  std::uint64_t generation = 0;
  crypto::SecretBytes key;
};

struct Client::Impl {
  std::filesystem::path dir;
  std::unique_ptr<storage::Database> db;
  std::unique_ptr<storage::SqlCipherSignalStores> signal_stores;
  std::unique_ptr<crypto::SignalDevice> signal;

  std::string user_id;
  std::uint32_t device_id = 0;
  std::string display_name;
  std::optional<crypto::SigningKey> user_key;
  std::optional<crypto::SigningKey> device_key;
  RelayAddress relay;
  CertificateFingerprint relay_fingerprint{};

  std::unique_ptr<RelayConnection> connection;

  // --- profile (client_profile.cc) ---
  static Result<std::unique_ptr<Impl>> CreateProfile(const std::filesystem::path& dir,
                                                     const crypto::SecretBytes& passphrase);
  static Result<std::unique_ptr<Impl>> OpenProfile(const std::filesystem::path& dir,
                                                   const crypto::SecretBytes& passphrase);
  Status AttachSignal();  // signal stores and device over db
  Status SaveIdentity(const wire::DeviceCertificate& certificate);
  Status LoadIdentity();

  // --- relay (client_profile.cc) ---
  // The authenticated connection, opened on first use.
  Result<RelayConnection*> Relay();
  // Calls the relay, reconnecting once if a kept connection turns out closed; a relay
  // error comes back as the Response's error.
  Result<wire::Response> RawCall(const wire::Request& request);
  // RawCall, with a relay error turned into an Error with a stable sentence per code.
  Result<wire::Response> Call(const wire::Request& request);
  Status UploadPreKeys(std::uint32_t count, bool new_signed_pre_key);

  // --- peers (client_peers.cc) ---
  // Fetches the user's identity key and device certificates from the relay, verifies them
  // and pins the identity key on first sight. A changed identity key is recorded
  // (key_changed) and kept out of use until confirmed.
  Result<Peer> FetchPeer(std::string_view user_id);
  // The peer as last stored, without asking the relay; kNotFound if never seen.
  Result<Peer> StoredPeer(std::string_view user_id);
  // A key lookup for chain and manifest verification over stored and fetched peers.
  protocol::DeviceKeyLookup KeyLookup();
  // Encrypts `plaintext` (a serialized content::v1::PeerMessage) to every active device of
  // `peer` (and, when `include_own_devices`, to our other devices) and queues the
  // envelopes in the outbox, all in one transaction with the ratchet states.
  Status QueuePeerMessage(const Peer& peer, std::span<const std::uint8_t> plaintext);
  Result<bool> EnsureSession(std::string_view user_id, const PeerDevice& device);
  // QueuePeerMessage's two halves, for a caller that sends to several peers in one
  // transaction of its own. EnsureSessions sets up a session with every active device of
  // `peer` (fetching prekey bundles: network); kUntrustedIdentity when the peer's identity
  // key changed. EncryptToDevices encrypts to those devices and queues the envelopes; it
  // must run inside the caller's transaction, after EnsureSessions.
  Status EnsureSessions(const Peer& peer);
  Status EncryptToDevices(const Peer& peer, std::span<const std::uint8_t> plaintext);

  // --- teams (client_teams.cc) ---
  Result<TeamRecord> TeamByName(std::string_view name);
  // Fetches the team's chain from the relay from what is stored on, verifies it as an
  // extension of the remembered head, and stores it. Returns the verified chain.
  Result<protocol::TeamChain> RefreshChain(const TeamRecord& team);
  Result<protocol::TeamChain> StoredChain(std::span<const std::uint8_t> team_id);
  // Signs `body` as the next statement, checks it against our own rules, sends it and
  // stores it. `before_send`, when given, runs after the local check and before the
  // statement leaves, with the chain as it will be once the statement lands; its failure
  // stops the append.
  using BeforeSend = std::function<Status(const protocol::TeamChain& next)>;
  Status AppendStatement(const TeamRecord& team, protocol::TeamChain& chain,
                         wire::ChainStatementBody body, const BeforeSend& before_send = {});
  Status RotateKeyLocked(const TeamRecord& team, protocol::TeamChain& chain);
  Result<crypto::SecretBytes> TeamKey(std::span<const std::uint8_t> team_id,
                                      std::uint64_t generation);
  Result<TeamView> BuildTeamView(const TeamRecord& team, const protocol::TeamChain& chain);
  // The context of every new item: the author is a member (not an auditor) holding the
  // current key; the freshest verified chain online, the last one verified offline.
  Result<WriteContext> PrepareWrite(std::string_view team_name);
  // Whether `user` is or was a member of the team, from the verified chain stored: items of
  // a member removed since stay readable, items of anyone the chain never admitted do not.
  Result<bool> WasMember(const TeamRecord& team, const std::string& user);
  // Checks a delivered team key (sender is an admin, key matches the chain's commitment
  // for its generation) and stores it; learns the team if it is new to this profile.
  Status AcceptTeamKey(const std::string& sender, const TeamKeyDelivery& delivery);
  // Learns a team this user audits (no key): the sender must be an admin, and this user the
  // team's auditor, in the verified chain.
  Status AcceptTeamIntroduction(const std::string& sender, const TeamIntroduction& introduction);
  // The team as this profile names it, stored under `name` (made unique) when it is new.
  Result<TeamRecord> LearnTeam(const protocol::TeamId& team_id, const std::string& name);

  // --- device links (client_link.cc) ---
  // The new device's side: posts its request on `connection` (not authenticated) and
  // waits for the handover.
  Result<LinkHandover> RequestLink(RelayConnection& connection, const LinkKeys& keys,
                                   const wire::DeviceCertificateBody& body,
                                   const std::function<bool()>& keep_going);
  // Checks the handover's certificate against this device's keys and stores the identity
  // and the pinned peers it carries.
  Status AdoptHandover(const LinkHandover& handover);
  // Learns each handed-over team: its chain from the relay must contain the head the
  // existing device verified, and each key must match the chain's commitment.
  Status AdoptLinkedTeams(const std::vector<LinkedTeam>& teams);

  // --- audit log (client_audit.cc) ---
  // Fetches the relay's latest checkpoint (a fresh one when `fresh`), verifies it under the
  // pinned log key and as an extension of the stored one (consistency proof), and stores it.
  // A checkpoint that does not verify or extend is kept as evidence, warned about in
  // `report` (and put in `alarm`), and fails with kAuthenticationFailed. kNotFound when the
  // relay keeps no log.
  Result<audit::Checkpoint> WitnessAuditLog(SyncReport* report, bool fresh,
                                            std::string* alarm = nullptr);
  // A checkpoint another member put in a post (gossip): verified under the pinned log key
  // and checked, through the relay's consistency proof, against this device's stored one.
  // A fork is an alarm in `report` and evidence in the profile; anything this device
  // cannot check yet (no pinned log, relay unreachable) is left alone.
  void CompareGossip(const std::string& note, const std::string& sender, SyncReport* report);

  // --- client audit events (client_events.cc) ---
  // Signs the next event of this device (number and link to the one before) and stores it
  // for sending; durable when this returns. Nothing is sent here.
  Status RecordClientEvent(audit::EventType type, const protocol::TeamId& team_id,
                           std::span<const std::uint8_t> item_id, std::uint64_t version);
  // Sends the stored events the relay has not recorded yet, oldest first, and keeps the
  // log index each got. Stops at the first that cannot go now (kept for the next sync); a
  // refusal for good is a warning in `report` and is not sent again.
  Status SendClientEvents(SyncReport* report);

  // --- sync (client_sync.cc) ---
  // Appends a request to the outbox (its replay must be harmless).
  Status QueueRequest(const wire::Request& request);
  Status SendOutbox(SyncReport* report);
  Status FetchMailbox(SyncReport* report);
  Status ApplyEnvelope(const wire::Envelope& envelope, SyncReport* report);
  // Applies what decrypted envelopes left in the inbox (team keys, direct messages).
  Status ApplyInbox(SyncReport* report);
  Status SyncTeams(SyncReport* report);
  Status SyncTeamItems(const TeamRecord& team, const protocol::TeamChain& chain,
                       SyncReport* report);
  Status ApplyItem(const TeamRecord& team, const protocol::TeamChain& chain,
                   const wire::ItemManifest& manifest, SyncReport* report);

  // --- document uploads (client_transfer.cc) ---
  // Sends every staged document blob (table `uploads`), oldest first, each resumed at the
  // bytes the relay already holds (BlobStatus.received), in pieces of at most
  // protocol::kMaxBlobChunk. A finished upload loses its staged file and its row. A refusal
  // that retrying cannot change (not a member any more, over a quota, staged file lost)
  // drops the upload together with its queued manifest and its document row: a warning in
  // `report`, or, for the upload of blob `focus`, that refusal as the result. Stops at the
  // first transport failure or busy relay and keeps the row, so the next call resumes.
  // SendOutbox runs it before any queued request: a manifest never leaves before its blob
  // is complete. `progress` gets the bytes the relay holds of the `focus` upload.
  Status SendUploads(SyncReport* report, const std::array<std::uint8_t, 16>* focus = nullptr,
                     const ProgressFn& progress = {});
};

// Removes the local traces of a document version that will not reach the relay: its
// document row and its seen_items row, so that a later sync applies whatever version the
// relay holds under that number.
Status ForgetDocumentVersion(Client::Impl& impl, std::span<const std::uint8_t> team_id,
                             std::span<const std::uint8_t> document_id, std::uint64_t version);

// A relay refusal that retrying cannot change (the outbox and uploads drop it with a
// warning rather than blocking every later write).
bool IsPermanentRefusal(wire::ErrorCode code);
// Adds a warning to `report` when there is one.
void Warn(SyncReport* report, std::string warning);

// A 16-byte id from bytes; kCorrupt when the size is wrong.
Result<std::array<std::uint8_t, 16>> IdFrom(std::span<const std::uint8_t> bytes);
std::array<std::uint8_t, 16> NewId();
inline std::span<const std::uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string AsString(std::span<const std::uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Hex of bytes, lowercase.
std::string Hex(std::span<const std::uint8_t> bytes);
// Parses lowercase or uppercase hex of exactly `size` bytes.
Result<std::vector<std::uint8_t>> ParseHex(std::string_view text, std::size_t size);
std::uint64_t NowMs();

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_SRC_CLIENT_IMPL_H_
