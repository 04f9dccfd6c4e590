// The relay service's class, shared by its two halves: relay_service.cc (WebSocket
// requests, pushes, connection state) and relay_http.cc (blob bytes over HTTP). Private to
// the server; the rest of the relay sees only relay_service.h.
#ifndef COFFRE_SERVER_SRC_RELAY_SERVICE_INTERNAL_H_
#define COFFRE_SERVER_SRC_RELAY_SERVICE_INTERNAL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coffre/crypto/x25519.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/storage/relay_store.h"
#include "coffre/wire/v1/wire.pb.h"
#include "metrics.h"
#include "relay_blobs.h"
#include "relay_limits.h"
#include "relay_links.h"
#include "relay_service.h"

namespace coffre::server::internal {

namespace wire = coffre::wire::v1;
using storage::Bytes;

// (user id, device id).
using DeviceKey = std::pair<std::string, std::uint32_t>;

// Who a connection is authenticated as, until when.
struct Principal {
  std::string user_id;
  std::uint32_t device_id = 0;
  std::int64_t expires_ms = 0;
};

// The service's view of one WebSocket connection.
struct ConnectionState {
  explicit ConnectionState(std::shared_ptr<Connection> c) : connection(std::move(c)) {}

  const std::shared_ptr<Connection> connection;

  // Touched only by this connection's own calls, which the transport makes one at a time.
  std::optional<std::array<std::uint8_t, protocol::kNonceSize>> challenge_nonce;
  std::int64_t challenge_expires_ms = 0;

  // Read by other connections' calls (revocation, pushes): guarded by `mutex`. Lock order:
  // the service's registry_mutex_ before this one.
  std::mutex mutex;
  std::optional<Principal> principal;

  // Envelope delivery in mailbox order (see RelayService::Deliver): guarded by push_mutex.
  std::mutex push_mutex;
  std::uint64_t last_pushed = 0;  // highest sequence this connection has been sent
};

// One request being handled: the handlers fill `response` (a result or an error) and queue
// what must happen only after the response is on its way (pushes, closes).
struct Call {
  ConnectionState& state;
  std::optional<Principal> principal;
  std::int64_t now_ms = 0;
  wire::Response response;
  std::vector<std::function<void()>> after;
};

// What a request does with a team's data; which roles may do it is in AccessAllowed.
enum class TeamAccess {
  kRead,      // chain, manifests, blob status: every member, auditors included
  kWrite,     // items and blob uploads: admins, members, guests
  kDownload,  // blob bytes: admins, members, guests (auditors hold no content key)
};
bool AccessAllowed(wire::Role role, TeamAccess access);

// A team's verified chain, rebuilt from the store on first use.
struct TeamEntry {
  std::mutex chain_mutex;  // serialises appends to this team within this process
  std::optional<protocol::TeamChain> chain;
  // The chain's auditor key, parsed once per chain (every audited fetch needs it).
  std::optional<crypto::X25519PublicKey> auditor_key;

  // Sets the chain and what is derived from it; chain_mutex held.
  void SetChain(protocol::TeamChain verified) {
    auditor_key.reset();
    if (const auto& key = verified.auditor_key()) {
      if (auto parsed = crypto::X25519PublicKey::FromBytes(*key)) auditor_key = *parsed;
    }
    chain = std::move(verified);
  }
  // Serialises CreateBlob's quota check and blob creation in this team, within this process.
  std::mutex blob_mutex;
};

class RelayService final : public Service {
 public:
  RelayService(RelayServiceOptions options, std::unique_ptr<storage::RelayStore> store,
               BlobFiles blob_files);
  ~RelayService() override = default;

  void OnOpen(const std::shared_ptr<Connection>& connection) override;
  void OnFrame(const std::shared_ptr<Connection>& connection,
               std::span<const std::uint8_t> frame) override;
  void OnClose(const std::shared_ptr<Connection>& connection) override;
  HttpReply OnHttp(const HttpRequestInfo& request, std::span<const std::uint8_t> body) override;
  std::string MetricsText() override;
  void OnDrain() override;

 private:
  // --- relay_service.cc: frames -----------------------------------------------------------
  void HandleFrame(Call& call, std::span<const std::uint8_t> frame, std::string& method);
  void Dispatch(Call& call, const wire::Request& request);

  void HandleRegister(Call& call, const wire::Register& request);
  void HandleChallenge(Call& call);
  void HandleAuthenticate(Call& call, const wire::Authenticate& request);
  void HandleResume(Call& call, const wire::ResumeSession& request);
  void HandleAddDevice(Call& call, const wire::AddDevice& request);
  void HandleRevokeDevice(Call& call, const wire::RevokeDevice& request);
  void HandleListDevices(Call& call, const wire::ListDevices& request);
  void HandleOpenLink(Call& call, const wire::OpenLink& request);
  void HandlePostLinkMessage(Call& call, const wire::PostLinkMessage& request);
  void HandleFetchLinkMessage(Call& call, const wire::FetchLinkMessage& request);
  // Maps a LinkRegistry refusal to the wire; false when `outcome` is kOk.
  bool SetLinkError(Call& call, LinkRegistry::Outcome outcome);
  void HandleUploadPreKeys(Call& call, const wire::UploadPreKeys& request);
  void HandleFetchPreKeyBundle(Call& call, const wire::FetchPreKeyBundle& request);
  void HandleSendEnvelopes(Call& call, const wire::SendEnvelopes& request);
  void HandleFetchMailbox(Call& call, const wire::FetchMailbox& request);
  void HandleAckEnvelopes(Call& call, const wire::AckEnvelopes& request);
  void HandleAppendChainStatement(Call& call, const wire::AppendChainStatement& request);
  void HandleFetchChain(Call& call, const wire::FetchChain& request);
  void HandleListTeams(Call& call);
  void HandlePutItemVersion(Call& call, const wire::PutItemVersion& request);
  void HandleGetItem(Call& call, const wire::GetItem& request);
  void HandleListItems(Call& call, const wire::ListItems& request);
  void HandleCreateBlob(Call& call, const wire::CreateBlob& request);
  void HandleBlobStatus(Call& call, const wire::BlobStatus& request);
  void HandleGetAuditCheckpoint(Call& call, const wire::GetAuditCheckpoint& request);
  void HandleGetAuditEntries(Call& call, const wire::GetAuditEntries& request);
  // Adds to `page` the sealed month keys its entries' details need.
  void AddMonthKeys(Call& call, wire::AuditEntries& page);
  void HandleGetAuditProof(Call& call, const wire::GetAuditProof& request);
  void HandleRecordClientEvent(Call& call, const wire::RecordClientEvent& request);
  void HandlePlaceLegalHold(Call& call, const wire::PlaceLegalHold& request);
  // Whether `user_id` holds the auditor role in the chain of some team.
  Result<bool> IsAuditorOfSomeTeam(const std::string& user_id);

  // --- audit recording (relay_service.cc) ---
  // Records `event` durably (nothing when the relay keeps no log). False when the log
  // could not write it: the caller must then not serve what it was about to.
  bool Record(AuditEvent event, std::string_view peer_address);
  // Record, with the entry's index (nullopt when it could not be recorded).
  std::optional<std::uint64_t> RecordAt(AuditEvent event, std::string_view peer_address);
  // Record, and on failure an UNAVAILABLE error on `call`.
  bool RecordOrRefuse(Call& call, AuditEvent event);
  // The X25519 auditor key of a team's chain, if it has one (into `storage`).
  const crypto::X25519PublicKey* TeamAuditorKey(const Bytes& team_id,
                                                std::optional<crypto::X25519PublicKey>& storage);

  // Failed authentication from `address`: one token of its auth bucket.
  void CountAuthFailure(std::string_view address);
  // RATE_LIMITED into `call` if `address` has no auth attempt left; true if so.
  bool AuthRateLimited(Call& call, std::string_view address);

  // Connection registry.
  std::shared_ptr<ConnectionState> StateOf(const std::shared_ptr<Connection>& connection);
  void Authenticate(ConnectionState& state, Principal principal);
  void Deauthenticate(ConnectionState& state);
  std::vector<std::shared_ptr<ConnectionState>> OnlineStates(std::string_view user_id,
                                                             std::optional<std::uint32_t> device);
  // Closes every connection of the device (it was revoked).
  void CloseDevice(const std::string& user_id, std::uint32_t device_id);

  // Pushes.
  void SendPush(ConnectionState& state, const wire::Push& push);
  // Sends the connection's device the envelopes after its last pushed sequence: `fresh`
  // (just stored, in order) when they follow on directly, otherwise read from the store, at
  // most a bounded amount per call (the last batch then says `more`). With `fresh` null:
  // the flush that follows authentication.
  // Nothing is sent unless the connection is still authenticated as `device`.
  void Deliver(ConnectionState& state, const DeviceKey& device,
               const std::vector<storage::EnvelopeRecord>* fresh);
  void PushEnvelopes(const DeviceKey& device, const std::vector<storage::EnvelopeRecord>& fresh);
  void PushChainAdvanced(const std::set<std::string>& users, const wire::ChainAdvanced& advanced);

  // Device keys for signature checks. Strict: unknown or revoked devices fail. Historical:
  // revoked devices still answer, for re-verifying statements this relay accepted before.
  protocol::DeviceKeyLookup StrictLookup();
  protocol::DeviceKeyLookup HistoricalLookup();

  // Teams.
  std::shared_ptr<TeamEntry> TeamEntryFor(const Bytes& team_id);
  Status LoadChainLocked(const Bytes& team_id, TeamEntry& entry);
  // The user's role in the team per the store's member table; nullopt if not a member (or
  // no such team). Errors are the store's.
  Result<std::optional<wire::Role>> RoleOf(const Bytes& team_id, std::string_view user_id);
  // FORBIDDEN into `call` unless the principal's user may do `access` in the team; returns
  // false when refused (or on a store error, then INTERNAL).
  bool RequireAccess(Call& call, const Bytes& team_id, TeamAccess access);
  // Marks the blob complete when its final file is in place but the store missed it (a crash
  // between the rename and the store update). Updates `blob`.
  Status RecoverBlob(storage::BlobRecord& blob);

  // Errors.
  void SetError(Call& call, wire::ErrorCode code, const char* message);
  void SetStoreError(Call& call, const Error& error);
  void SetProtocolError(Call& call, const Error& error);

  std::int64_t Now() const;

  // --- relay_http.cc: blobs over HTTP ------------------------------------------------------
  HttpReply HandleBlobPut(const BlobTarget& target, std::span<const std::uint8_t> body);
  HttpReply HandleBlobGet(const BlobTarget& target, const HttpRequestInfo& request, bool head);
  HttpReply HttpError(unsigned status, wire::ErrorCode code, std::string_view message,
                      std::optional<std::uint64_t> received = std::nullopt);
  std::mutex& BlobLock(const Bytes& team_id, const Bytes& blob_id);

  // --- state --------------------------------------------------------------------------------
  const RelayServiceOptions options_;
  const std::unique_ptr<storage::RelayStore> store_;
  BlobFiles blob_files_;

  std::atomic<bool> draining_{false};

  std::mutex registry_mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<ConnectionState>> connections_;
  std::map<DeviceKey, std::set<std::uint64_t>, std::less<>> online_;

  std::mutex teams_mutex_;
  std::map<std::string, std::shared_ptr<TeamEntry>, std::less<>> teams_;  // by team id bytes

  // Uploads of one blob are serialised by one of these, chosen by hashing the ids.
  static constexpr std::size_t kBlobLockStripes = 64;
  std::array<std::mutex, kBlobLockStripes> blob_locks_;

  // Open device links, in memory only (relay_links.h). A link costs at most two sealed
  // messages of protocol::kMaxLinkMessage; the cap bounds the whole registry.
  static constexpr std::size_t kMaxOpenLinks = 256;
  LinkRegistry links_{kMaxOpenLinks, protocol::kLinkLifetimeMs};

  RateLimiter request_limiter_;  // per device, or per connection before authentication
  RateLimiter auth_limiter_;     // failed authentications per peer address
  RateLimiter upload_limiter_;   // blob bytes per device

  // Metrics (label values are bounded sets chosen here: methods, wire code names).
  MetricsRegistry metrics_;
  HistogramFamily& request_latency_;
  CounterFamily& errors_;
  Counter& envelopes_in_;
  Counter& envelopes_out_;
  Counter& envelope_bytes_in_;
  Counter& envelope_bytes_out_;
  Counter& blob_bytes_in_;
  Counter& blob_bytes_out_;
  Counter& auth_failures_;
  Counter& chain_statements_;
  Counter& item_versions_;
  Gauge& authenticated_connections_;
};

// The rate-limit key of a device, shared by WebSocket requests and HTTP blob requests.
std::string DeviceLimitKey(std::string_view user_id, std::uint32_t device_id);

// The wire name of `code` without its prefix ("MALFORMED"): metric labels and HTTP bodies.
std::string_view WireCodeName(wire::ErrorCode code);

}  // namespace coffre::server::internal

#endif  // COFFRE_SERVER_SRC_RELAY_SERVICE_INTERNAL_H_
