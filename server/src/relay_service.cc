// The relay service, WebSocket half: every request method, the connection registry and the
// pushes. Blob bytes over HTTP are in relay_http.cc.
//
// Ordering rules this file keeps:
//  - a write is acknowledged only after the store returns (the store returns once the
//    write is durable), and pushes go out only after the response;
//  - envelopes are pushed to a connection in mailbox order, each at most once (the
//    push_mutex and last_pushed of ConnectionState), whether they come from the flush after
//    authentication or a live push; what a FetchMailbox returned is not pushed again.
// Lock order: ConnectionState::push_mutex, then registry_mutex_, then ConnectionState::mutex.
// No lock is held across a call into another connection's state except in that order.
#include <algorithm>
#include <chrono>
#include <utility>

#include "coffre/audit/legal_hold.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/validation.h"
#include "log.h"
#include "relay_service_internal.h"
#include "relay_util.h"

namespace coffre::server {
namespace internal {
namespace {

using protocol::kMaxFrameSize;

// Room left in a frame for the response envelope around a list (ids, flags, tags).
constexpr std::size_t kFrameBudget = kMaxFrameSize - 16 * 1024;
// Envelopes pushed to a connection by one delivery (the flush after authentication, or a
// live push that has to read the store): bounded well below the transport's write queue
// (TransportLimits::max_queued_bytes) so a large mailbox never gets a reader disconnected;
// the last batch then says `more` and the client fetches the rest.
constexpr std::size_t kDeliveryBudgetBytes = 2 * 1024 * 1024;
// Envelopes read from the store per page while delivering: at most 256 KiB each.
constexpr std::uint32_t kDeliveryPage = 32;
// Item manifests read from the store per page of ListItems: at most 66 KiB each.
constexpr std::uint32_t kItemPage = 32;
// What GoingAway and UNAVAILABLE ask clients to wait before reconnecting.
constexpr std::uint64_t kDrainRetryAfterMs = 2000;
// Teams whose verified chain stays in memory; past this the cache starts again empty.
constexpr std::size_t kMaxCachedTeams = 10'000;

std::vector<std::uint8_t> SerializeFrame(const wire::Frame& frame) {
  std::vector<std::uint8_t> bytes(frame.ByteSizeLong());
  frame.SerializeWithCachedSizesToArray(bytes.data());
  return bytes;
}

std::string MethodName(const wire::Request& request) {
  const google::protobuf::FieldDescriptor* field =
      wire::Request::descriptor()->FindFieldByNumber(static_cast<int>(request.method_case()));
  return field != nullptr ? field->name() : "none";
}

Bytes ToBytes(std::string_view text) { return ToVector(text); }

std::string ToText(const Bytes& bytes) { return std::string(AsText(bytes)); }

std::string ConnectionLimitKey(std::uint64_t connection_id) {
  return "c/" + std::to_string(connection_id);
}

void ToWire(const storage::EnvelopeRecord& record, wire::Envelope& out) {
  out.set_sequence(record.sequence);
  out.set_sender_user_id(record.sender_user_id);
  out.set_sender_device_id(record.sender_device_id);
  out.set_client_id(ToText(record.client_id));
  out.set_type(record.type);
  out.set_ciphertext(ToText(record.ciphertext));
  out.set_received_ms(static_cast<std::uint64_t>(std::max<std::int64_t>(0, record.received_ms)));
}

// Bytes one envelope adds to a batch: its encoding plus the field tag and length.
std::size_t EnvelopeCost(const storage::EnvelopeRecord& record) {
  return record.ciphertext.size() + record.client_id.size() + record.sender_user_id.size() + 64;
}

bool ParseBytes(const Bytes& bytes, google::protobuf::Message& message) {
  return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

std::optional<wire::Role> ToRole(std::uint32_t value) {
  if (!wire::Role_IsValid(static_cast<int>(value)) || value == wire::ROLE_UNSPECIFIED) {
    return std::nullopt;
  }
  return static_cast<wire::Role>(value);
}

}  // namespace

std::string DeviceLimitKey(std::string_view user_id, std::uint32_t device_id) {
  // User ids never hold '/', so keys of different devices never collide.
  std::string key = "d/";
  key.append(user_id);
  key.push_back('/');
  key.append(std::to_string(device_id));
  return key;
}

std::string_view WireCodeName(wire::ErrorCode code) {
  const std::string& name = wire::ErrorCode_Name(code);
  constexpr std::string_view kPrefix = "ERROR_CODE_";
  std::string_view view = name;
  if (view.starts_with(kPrefix)) view.remove_prefix(kPrefix.size());
  return view.empty() ? std::string_view("UNKNOWN") : view;
}

bool AccessAllowed(wire::Role role, TeamAccess access) {
  switch (access) {
    case TeamAccess::kRead:
      return role == wire::ROLE_ADMIN || role == wire::ROLE_MEMBER || role == wire::ROLE_GUEST ||
             role == wire::ROLE_AUDITOR;
    case TeamAccess::kWrite:
    case TeamAccess::kDownload:
      return role == wire::ROLE_ADMIN || role == wire::ROLE_MEMBER || role == wire::ROLE_GUEST;
  }
  return false;
}

// --- Construction, metrics -------------------------------------------------------------------

RelayService::RelayService(RelayServiceOptions options, std::unique_ptr<storage::RelayStore> store,
                           BlobFiles blob_files)
    : options_(std::move(options)),
      store_(std::move(store)),
      blob_files_(std::move(blob_files)),
      request_limiter_(options_.rate_limits.requests_per_second_per_device,
                       options_.rate_limits.requests_burst_per_device),
      auth_limiter_(options_.rate_limits.auth_attempts_per_minute_per_address / 60.0,
                    options_.rate_limits.auth_burst_per_address),
      upload_limiter_(options_.rate_limits.upload_bytes_per_second_per_device,
                      options_.rate_limits.upload_bytes_per_second_per_device),
      request_latency_(metrics_.AddHistogramFamily(
          "coffre_relay_request_duration_seconds",
          "Time to handle one request, by method (WebSocket methods and http_put/http_get).",
          {"method"}, LatencyBucketsSeconds())),
      errors_(metrics_.AddCounterFamily("coffre_relay_errors_total",
                                        "Requests answered with an error, by wire error code.",
                                        {"code"})),
      envelopes_in_(metrics_.AddCounter("coffre_relay_envelopes_in_total",
                                        "Envelopes accepted into mailboxes.")),
      envelopes_out_(metrics_.AddCounter("coffre_relay_envelopes_out_total",
                                         "Envelopes sent to devices (pushes and fetches).")),
      envelope_bytes_in_(metrics_.AddCounter("coffre_relay_envelope_bytes_in_total",
                                             "Ciphertext bytes of envelopes accepted.")),
      envelope_bytes_out_(metrics_.AddCounter("coffre_relay_envelope_bytes_out_total",
                                              "Ciphertext bytes of envelopes sent to devices.")),
      blob_bytes_in_(metrics_.AddCounter("coffre_relay_blob_bytes_in_total", "Blob bytes stored.")),
      blob_bytes_out_(
          metrics_.AddCounter("coffre_relay_blob_bytes_out_total", "Blob bytes served.")),
      auth_failures_(metrics_.AddCounter("coffre_relay_auth_failures_total",
                                         "Failed registrations, authentications and resumes.")),
      chain_statements_(metrics_.AddCounter("coffre_relay_chain_statements_total",
                                            "Team chain statements appended.")),
      item_versions_(
          metrics_.AddCounter("coffre_relay_item_versions_total", "Item versions stored.")),
      authenticated_connections_(
          metrics_.AddGauge("coffre_relay_authenticated_connections",
                            "WebSocket connections authenticated as a device.")) {}

std::string RelayService::MetricsText() { return metrics_.Render(); }

std::int64_t RelayService::Now() const { return options_.clock ? options_.clock() : SystemNowMs(); }

// --- Errors -----------------------------------------------------------------------------------

void RelayService::SetError(Call& call, wire::ErrorCode code, const char* message) {
  wire::Error* error = call.response.mutable_error();
  error->set_code(code);
  error->set_message(message);
}

void RelayService::SetStoreError(Call& call, const Error& error) {
  // The context is a static sentence of the store's, never user data.
  Log(LogLevel::kError, "store_error",
      {{"connection", call.state.connection->id()},
       {"code", ErrorCodeName(error.code())},
       {"context", error.context()}});
  SetError(call, wire::ERROR_CODE_INTERNAL, "internal error");
}

void RelayService::SetProtocolError(Call& call, const Error& error) {
  *call.response.mutable_error() = protocol::ToWireError(error);
}

void RelayService::CountAuthFailure(std::string_view address) {
  auth_failures_.Increment();
  (void)auth_limiter_.Take(address);
}

bool RelayService::AuthRateLimited(Call& call, std::string_view address) {
  const std::uint64_t wait = auth_limiter_.WaitFor(address);
  if (wait == 0) return false;
  SetError(call, wire::ERROR_CODE_RATE_LIMITED, "too many failed authentications");
  call.response.mutable_error()->set_retry_after_ms(wait);
  return true;
}

// --- Connection registry ------------------------------------------------------------------------

void RelayService::OnOpen(const std::shared_ptr<Connection>& connection) {
  auto state = std::make_shared<ConnectionState>(connection);
  {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    connections_[connection->id()] = state;
  }
  if (draining_.load(std::memory_order_acquire)) {
    wire::Push push;
    push.mutable_going_away()->set_retry_after_ms(kDrainRetryAfterMs);
    SendPush(*state, push);
  }
}

void RelayService::OnClose(const std::shared_ptr<Connection>& connection) {
  std::lock_guard<std::mutex> lock(registry_mutex_);
  auto it = connections_.find(connection->id());
  if (it == connections_.end()) return;
  std::shared_ptr<ConnectionState> state = it->second;
  connections_.erase(it);
  std::lock_guard<std::mutex> state_lock(state->mutex);
  if (state->principal) {
    auto online = online_.find(DeviceKey{state->principal->user_id, state->principal->device_id});
    if (online != online_.end()) {
      online->second.erase(connection->id());
      if (online->second.empty()) online_.erase(online);
    }
    state->principal.reset();
    authenticated_connections_.Sub(1);
  }
}

std::shared_ptr<ConnectionState> RelayService::StateOf(
    const std::shared_ptr<Connection>& connection) {
  std::lock_guard<std::mutex> lock(registry_mutex_);
  auto it = connections_.find(connection->id());
  if (it != connections_.end()) return it->second;
  // A frame without OnOpen does not happen with our transport; a state that is not
  // registered still works, it only gets no pushes.
  return std::make_shared<ConnectionState>(connection);
}

void RelayService::Authenticate(ConnectionState& state, Principal principal) {
  std::lock_guard<std::mutex> push_lock(state.push_mutex);
  std::lock_guard<std::mutex> lock(registry_mutex_);
  std::lock_guard<std::mutex> state_lock(state.mutex);
  const std::uint64_t id = state.connection->id();
  if (state.principal) {
    auto online = online_.find(DeviceKey{state.principal->user_id, state.principal->device_id});
    if (online != online_.end()) {
      online->second.erase(id);
      if (online->second.empty()) online_.erase(online);
    }
  } else {
    authenticated_connections_.Add(1);
  }
  // Another device (or the same one again): delivery starts over from its mailbox.
  state.last_pushed = 0;
  // Registered only if the connection is still open (OnClose has not run).
  if (connections_.contains(id)) {
    online_[DeviceKey{principal.user_id, principal.device_id}].insert(id);
  }
  state.principal = std::move(principal);
}

void RelayService::Deauthenticate(ConnectionState& state) {
  std::lock_guard<std::mutex> lock(registry_mutex_);
  std::lock_guard<std::mutex> state_lock(state.mutex);
  if (!state.principal) return;
  auto online = online_.find(DeviceKey{state.principal->user_id, state.principal->device_id});
  if (online != online_.end()) {
    online->second.erase(state.connection->id());
    if (online->second.empty()) online_.erase(online);
  }
  state.principal.reset();
  authenticated_connections_.Sub(1);
}

std::vector<std::shared_ptr<ConnectionState>> RelayService::OnlineStates(
    std::string_view user_id, std::optional<std::uint32_t> device) {
  std::vector<std::shared_ptr<ConnectionState>> states;
  std::lock_guard<std::mutex> lock(registry_mutex_);
  auto it = online_.lower_bound(DeviceKey{std::string(user_id), device.value_or(0)});
  for (; it != online_.end() && it->first.first == user_id; ++it) {
    if (device && it->first.second != *device) break;
    for (const std::uint64_t id : it->second) {
      auto state = connections_.find(id);
      if (state != connections_.end()) states.push_back(state->second);
    }
  }
  return states;
}

void RelayService::CloseDevice(const std::string& user_id, std::uint32_t device_id) {
  for (const auto& state : OnlineStates(user_id, device_id)) {
    Deauthenticate(*state);
    state->connection->Close(1008, "device revoked");
  }
}

// --- Pushes -------------------------------------------------------------------------------------

void RelayService::SendPush(ConnectionState& state, const wire::Push& push) {
  wire::Frame frame;
  frame.set_version(protocol::kProtocolVersion);
  *frame.mutable_push() = push;
  state.connection->SendFrame(SerializeFrame(frame));
}

void RelayService::Deliver(ConnectionState& state, const DeviceKey& device,
                           const std::vector<storage::EnvelopeRecord>* fresh) {
  std::lock_guard<std::mutex> push_lock(state.push_mutex);
  std::optional<Principal> principal;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    principal = state.principal;
  }
  // The connection may have closed, or authenticated as another device, since it was found.
  if (!principal || principal->user_id != device.first || principal->device_id != device.second) {
    return;
  }

  std::vector<storage::EnvelopeRecord> to_send;
  bool more = false;
  bool from_store = true;
  if (fresh != nullptr) {
    std::vector<const storage::EnvelopeRecord*> newer;
    for (const auto& record : *fresh) {
      if (record.sequence > state.last_pushed) newer.push_back(&record);
    }
    if (newer.empty()) return;
    bool follows = newer.front()->sequence == state.last_pushed + 1;
    for (std::size_t i = 1; follows && i < newer.size(); ++i) {
      follows = newer[i]->sequence == newer[i - 1]->sequence + 1;
    }
    // Envelopes that follow on directly from what this connection has are sent as they
    // are; otherwise some are missing in between (not yet pushed, or stored by a racing
    // send) and the store, which holds them all in order, is read instead.
    if (follows) {
      for (const auto* record : newer) to_send.push_back(*record);
      from_store = false;
    }
  }
  if (from_store) {
    std::uint64_t after = state.last_pushed;
    std::size_t bytes = 0;
    while (!more) {
      auto page =
          store_->FetchEnvelopes(principal->user_id, principal->device_id, after, kDeliveryPage);
      if (!page) {
        Log(LogLevel::kError, "deliver_failed",
            {{"connection", state.connection->id()}, {"context", page.error().context()}});
        return;
      }
      for (auto& record : *page) {
        const std::size_t cost = EnvelopeCost(record);
        if (!to_send.empty() && bytes + cost > kDeliveryBudgetBytes) {
          more = true;
          break;
        }
        bytes += cost;
        after = record.sequence;
        to_send.push_back(std::move(record));
      }
      if (page->size() < kDeliveryPage) break;
    }
  }
  if (to_send.empty()) return;

  // Batches that each fit in a frame; the last one carries `more`.
  std::size_t index = 0;
  while (index < to_send.size()) {
    wire::Frame frame;
    frame.set_version(protocol::kProtocolVersion);
    wire::EnvelopeBatch* batch = frame.mutable_push()->mutable_envelopes();
    std::size_t size = 0;
    std::uint64_t bytes = 0;
    while (index < to_send.size()) {
      const std::size_t cost = EnvelopeCost(to_send[index]);
      if (batch->envelopes_size() > 0 &&
          (size + cost > kFrameBudget ||
           static_cast<std::size_t>(batch->envelopes_size()) >= protocol::kMaxFetchLimit)) {
        break;
      }
      ToWire(to_send[index], *batch->add_envelopes());
      size += cost;
      bytes += to_send[index].ciphertext.size();
      ++index;
    }
    if (index == to_send.size()) batch->set_more(more);
    const std::uint64_t last = batch->envelopes(batch->envelopes_size() - 1).sequence();
    const auto count = static_cast<std::uint64_t>(batch->envelopes_size());
    if (!state.connection->SendFrame(SerializeFrame(frame))) return;
    state.last_pushed = last;
    envelopes_out_.Increment(count);
    envelope_bytes_out_.Increment(bytes);
  }
}

void RelayService::PushEnvelopes(const DeviceKey& device,
                                 const std::vector<storage::EnvelopeRecord>& fresh) {
  for (const auto& state : OnlineStates(device.first, device.second)) {
    Deliver(*state, device, &fresh);
  }
}

void RelayService::PushChainAdvanced(const std::set<std::string>& users,
                                     const wire::ChainAdvanced& advanced) {
  wire::Push push;
  *push.mutable_chain_advanced() = advanced;
  for (const std::string& user : users) {
    for (const auto& state : OnlineStates(user, std::nullopt)) SendPush(*state, push);
  }
}

void RelayService::OnDrain() {
  draining_.store(true, std::memory_order_release);
  std::vector<std::shared_ptr<ConnectionState>> states;
  {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    for (const auto& [id, state] : connections_) states.push_back(state);
  }
  wire::Push push;
  push.mutable_going_away()->set_retry_after_ms(kDrainRetryAfterMs);
  for (const auto& state : states) SendPush(*state, push);
  Log(LogLevel::kInfo, "service_drain", {{"connections", states.size()}});
}

// --- Device keys, teams -----------------------------------------------------------------------

protocol::DeviceKeyLookup RelayService::StrictLookup() {
  return [this](std::string_view user_id, std::uint32_t device_id) -> Result<crypto::VerifyKey> {
    auto device = store_->GetDevice(user_id, device_id);
    if (!device) return device.error();
    if (!device->has_value() || (*device)->revoked) {
      return Fail(ErrorCode::kNotFound, "device unknown or revoked");
    }
    return crypto::VerifyKey::FromBytes((*device)->signing_key);
  };
}

protocol::DeviceKeyLookup RelayService::HistoricalLookup() {
  return [this](std::string_view user_id, std::uint32_t device_id) -> Result<crypto::VerifyKey> {
    auto device = store_->GetDevice(user_id, device_id);
    if (!device) return device.error();
    if (!device->has_value()) return Fail(ErrorCode::kNotFound, "device unknown");
    return crypto::VerifyKey::FromBytes((*device)->signing_key);
  };
}

std::shared_ptr<TeamEntry> RelayService::TeamEntryFor(const Bytes& team_id) {
  std::lock_guard<std::mutex> lock(teams_mutex_);
  const std::string_view key = AsText(team_id);
  auto it = teams_.find(key);
  if (it != teams_.end()) return it->second;
  if (teams_.size() >= kMaxCachedTeams) teams_.clear();
  return teams_.emplace(std::string(key), std::make_shared<TeamEntry>()).first->second;
}

Status RelayService::LoadChainLocked(const Bytes& team_id, TeamEntry& entry) {
  auto raw = store_->FetchChain(team_id, 0);
  if (!raw) return raw.error();
  if (raw->empty()) {
    entry.chain.reset();
    return Ok();
  }
  std::vector<wire::ChainStatement> statements(raw->size());
  for (std::size_t i = 0; i < raw->size(); ++i) {
    if (!ParseBytes((*raw)[i], statements[i])) {
      return Fail(ErrorCode::kCorrupt, "stored chain statement does not parse");
    }
  }
  // Statements in the store were verified when they were appended; a signer revoked since
  // must not make the history unverifiable, hence the historical lookup.
  auto chain = protocol::TeamChain::Verify(std::span<const wire::ChainStatement>(statements),
                                           HistoricalLookup());
  if (!chain) {
    Log(LogLevel::kError, "stored_chain_invalid", {{"context", chain.error().context()}});
    return Fail(ErrorCode::kCorrupt, "stored chain does not verify");
  }
  entry.SetChain(std::move(*chain));
  return Ok();
}

Result<std::optional<wire::Role>> RelayService::RoleOf(const Bytes& team_id,
                                                       std::string_view user_id) {
  auto members = store_->TeamMembers(team_id);
  if (!members) return members.error();
  for (const storage::TeamMember& member : *members) {
    if (member.user_id == user_id) return ToRole(member.role);
  }
  return std::optional<wire::Role>();
}

bool RelayService::RequireAccess(Call& call, const Bytes& team_id, TeamAccess access) {
  auto role = RoleOf(team_id, call.principal->user_id);
  if (!role) {
    SetStoreError(call, role.error());
    return false;
  }
  // A team that does not exist answers like one the user is not in: ids are not probed.
  if (!role->has_value() || !AccessAllowed(**role, access)) {
    SetError(call, wire::ERROR_CODE_FORBIDDEN, "not allowed in this team");
    return false;
  }
  return true;
}

Status RelayService::RecoverBlob(storage::BlobRecord& blob) {
  if (blob.complete) return Ok();
  const auto final_size = blob_files_.FinalSize(blob.team_id, blob.blob_id);
  if (!final_size || *final_size != blob.size) return Ok();
  COFFRE_RETURN_IF_ERROR(store_->UpdateBlobProgress(blob.team_id, blob.blob_id, blob.size, true));
  blob.received = blob.size;
  blob.complete = true;
  return Ok();
}

// --- Frames -------------------------------------------------------------------------------------

void RelayService::OnFrame(const std::shared_ptr<Connection>& connection,
                           std::span<const std::uint8_t> frame) {
  const auto start = std::chrono::steady_clock::now();
  std::shared_ptr<ConnectionState> state = StateOf(connection);
  Call call{*state, std::nullopt, Now(), {}, {}};
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    call.principal = state->principal;
  }
  std::string method = "invalid";
  HandleFrame(call, frame, method);

  wire::Frame reply;
  reply.set_version(protocol::kProtocolVersion);
  *reply.mutable_response() = std::move(call.response);
  const bool failed = reply.response().has_error();
  const wire::ErrorCode code =
      failed ? reply.response().error().code() : wire::ERROR_CODE_UNSPECIFIED;
  connection->SendFrame(SerializeFrame(reply));
  for (auto& action : call.after) action();

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  request_latency_.WithLabels({method}).Observe(seconds);
  if (failed) {
    const std::string_view name = WireCodeName(code);
    errors_.WithLabels({name}).Increment();
    // Client-caused errors are common and cheap to provoke: debug level, so that no client
    // can flood the operator's logs. The relay's own failures were logged where they arose.
    Log(LogLevel::kDebug, "request_error",
        {{"connection", connection->id()}, {"method", method}, {"code", name}});
  }
}

void RelayService::HandleFrame(Call& call, std::span<const std::uint8_t> frame,
                               std::string& method) {
  if (draining_.load(std::memory_order_acquire)) {
    call.response.set_id(protocol::PeekRequestId(frame).value_or(0));
    SetError(call, wire::ERROR_CODE_UNAVAILABLE, "relay is draining");
    call.response.mutable_error()->set_retry_after_ms(kDrainRetryAfterMs);
    return;
  }
  // Before parsing: a flood of frames, well-formed or not, costs the sender its own budget.
  const std::string limit_key =
      call.principal ? DeviceLimitKey(call.principal->user_id, call.principal->device_id)
                     : ConnectionLimitKey(call.state.connection->id());
  if (const std::uint64_t wait = request_limiter_.Take(limit_key); wait != 0) {
    call.response.set_id(protocol::PeekRequestId(frame).value_or(0));
    SetError(call, wire::ERROR_CODE_RATE_LIMITED, "too many requests");
    call.response.mutable_error()->set_retry_after_ms(wait);
    return;
  }
  auto parsed = protocol::ParseRequestFrame(frame);
  if (!parsed) {
    call.response.set_id(protocol::PeekRequestId(frame).value_or(0));
    SetProtocolError(call, parsed.error());
    return;
  }
  const wire::Request& request = parsed->request();
  call.response.set_id(request.id());
  method = MethodName(request);

  switch (request.method_case()) {
    case wire::Request::kRegister:
    case wire::Request::kChallenge:
    case wire::Request::kAuthenticate:
    case wire::Request::kResume:
    case wire::Request::kPostLinkMessage:   // the new device of a link has no session yet;
    case wire::Request::kFetchLinkMessage:  // the handlers check who may use which side
      break;
    default:
      if (!call.principal) {
        SetError(call, wire::ERROR_CODE_UNAUTHENTICATED, "authenticate first");
        return;
      }
      if (call.principal->expires_ms <= call.now_ms) {
        Deauthenticate(call.state);
        SetError(call, wire::ERROR_CODE_UNAUTHENTICATED, "session expired");
        return;
      }
  }
  Dispatch(call, request);
}

void RelayService::Dispatch(Call& call, const wire::Request& request) {
  switch (request.method_case()) {
    case wire::Request::kRegister:
      return HandleRegister(call, request.register_());
    case wire::Request::kChallenge:
      return HandleChallenge(call);
    case wire::Request::kAuthenticate:
      return HandleAuthenticate(call, request.authenticate());
    case wire::Request::kResume:
      return HandleResume(call, request.resume());
    case wire::Request::kAddDevice:
      return HandleAddDevice(call, request.add_device());
    case wire::Request::kRevokeDevice:
      return HandleRevokeDevice(call, request.revoke_device());
    case wire::Request::kListDevices:
      return HandleListDevices(call, request.list_devices());
    case wire::Request::kOpenLink:
      return HandleOpenLink(call, request.open_link());
    case wire::Request::kPostLinkMessage:
      return HandlePostLinkMessage(call, request.post_link_message());
    case wire::Request::kFetchLinkMessage:
      return HandleFetchLinkMessage(call, request.fetch_link_message());
    case wire::Request::kUploadPreKeys:
      return HandleUploadPreKeys(call, request.upload_pre_keys());
    case wire::Request::kFetchPreKeyBundle:
      return HandleFetchPreKeyBundle(call, request.fetch_pre_key_bundle());
    case wire::Request::kSendEnvelopes:
      return HandleSendEnvelopes(call, request.send_envelopes());
    case wire::Request::kFetchMailbox:
      return HandleFetchMailbox(call, request.fetch_mailbox());
    case wire::Request::kAckEnvelopes:
      return HandleAckEnvelopes(call, request.ack_envelopes());
    case wire::Request::kAppendChainStatement:
      return HandleAppendChainStatement(call, request.append_chain_statement());
    case wire::Request::kFetchChain:
      return HandleFetchChain(call, request.fetch_chain());
    case wire::Request::kListTeams:
      return HandleListTeams(call);
    case wire::Request::kPutItemVersion:
      return HandlePutItemVersion(call, request.put_item_version());
    case wire::Request::kGetItem:
      return HandleGetItem(call, request.get_item());
    case wire::Request::kListItems:
      return HandleListItems(call, request.list_items());
    case wire::Request::kCreateBlob:
      return HandleCreateBlob(call, request.create_blob());
    case wire::Request::kBlobStatus:
      return HandleBlobStatus(call, request.blob_status());
    case wire::Request::kGetAuditCheckpoint:
      return HandleGetAuditCheckpoint(call, request.get_audit_checkpoint());
    case wire::Request::kGetAuditEntries:
      return HandleGetAuditEntries(call, request.get_audit_entries());
    case wire::Request::kGetAuditProof:
      return HandleGetAuditProof(call, request.get_audit_proof());
    case wire::Request::kRecordClientEvent:
      return HandleRecordClientEvent(call, request.record_client_event());
    case wire::Request::kPlaceLegalHold:
      return HandlePlaceLegalHold(call, request.place_legal_hold());
    case wire::Request::METHOD_NOT_SET:
      break;
  }
  // ParseRequestFrame refuses a request without a method; kept for completeness.
  SetError(call, wire::ERROR_CODE_MALFORMED, "request carries no method");
}

// --- Accounts and authentication ----------------------------------------------------------------

void RelayService::HandleRegister(Call& call, const wire::Register& request) {
  const std::string& address = call.state.connection->peer_address();
  if (AuthRateLimited(call, address)) return;
  auto identity = crypto::VerifyKey::FromBytes(AsBytes(request.user_identity_key()));
  if (!identity) return SetError(call, wire::ERROR_CODE_MALFORMED, "invalid user identity key");
  auto device = protocol::VerifyDeviceCertificate(request.first_device(), *identity);
  if (!device) {
    CountAuthFailure(address);
    return SetProtocolError(call, device.error());
  }
  if (device->user_id != request.user_id()) {
    return SetProtocolError(call,
                            protocol::Fail(protocol::Failure::kCertificateUserMismatch).error);
  }
  // Codes are issued in upper case (RunAdminEnrol); people may type them in lower case.
  std::string code = request.enrolment_code();
  std::transform(code.begin(), code.end(), code.begin(),
                 [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
  const Sha256Digest code_hash = Sha256(AsBytes(code));
  crypto::Wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(code.data()), code.size()));

  storage::UserRecord user;
  user.user_id = request.user_id();
  user.identity_key = ToBytes(request.user_identity_key());
  user.created_ms = call.now_ms;
  storage::DeviceRecord record;
  record.user_id = request.user_id();
  record.device_id = device->device_id;
  record.certificate = ToBytes(request.first_device().SerializeAsString());
  record.signing_key.assign(device->signing_key.bytes().begin(), device->signing_key.bytes().end());
  record.signal_identity_key.assign(device->signal_identity_key.begin(),
                                    device->signal_identity_key.end());
  record.created_ms = call.now_ms;

  auto grant = store_->RegisterUser(code_hash, call.now_ms, user, record);
  if (!grant) {
    switch (grant.error().code()) {
      case ErrorCode::kNotFound: {
        CountAuthFailure(address);
        AuditEvent refused;
        refused.type = audit::EventType::kEnrolment;
        refused.result = audit::EventResult::kRefused;
        refused.details.subject_user_id = request.user_id();
        refused.details.reason = "enrolment code unknown, used or expired";
        (void)Record(refused, address);
        return SetError(call, wire::ERROR_CODE_ENROLMENT_INVALID,
                        "enrolment code is unknown, used or expired");
      }
      case ErrorCode::kAlreadyExists:
        return SetError(call, wire::ERROR_CODE_ALREADY_EXISTS, "user id is taken");
      default:
        return SetStoreError(call, grant.error());
    }
  }
  AuditEvent enrolled;
  enrolled.type = audit::EventType::kEnrolment;
  enrolled.user_id = request.user_id();
  enrolled.device_id = device->device_id;
  (void)Record(enrolled, address);
  wire::Registered* registered = call.response.mutable_registered();
  registered->set_user_id(request.user_id());
  registered->set_org_id(grant->org_id);
  registered->set_admin(grant->admin);
  Log(LogLevel::kInfo, "user_registered", {{"connection", call.state.connection->id()}});
}

void RelayService::HandleChallenge(Call& call) {
  std::array<std::uint8_t, protocol::kNonceSize> nonce{};
  crypto::RandomFill(nonce);
  // One pending challenge per connection: a new request replaces the old one.
  call.state.challenge_nonce = nonce;
  call.state.challenge_expires_ms =
      call.now_ms +
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.auth.challenge_lifetime)
          .count();
  wire::Challenge* challenge = call.response.mutable_challenge();
  challenge->set_nonce(std::string(AsText(nonce)));
  challenge->set_relay_identity(std::string(AsText(options_.relay_identity)));
}

namespace {

// A failed login as the audit log keeps it: the device named, and why.
AuditEvent FailedLogin(const wire::Authenticate& request, const char* reason) {
  AuditEvent event;
  event.type = audit::EventType::kLogin;
  event.result = audit::EventResult::kFailed;
  if (protocol::ValidateUserId(request.user_id())) event.user_id = request.user_id();
  event.device_id = request.device_id();
  event.details.reason = reason;
  return event;
}

}  // namespace

void RelayService::HandleAuthenticate(Call& call, const wire::Authenticate& request) {
  const std::string& address = call.state.connection->peer_address();
  if (AuthRateLimited(call, address)) return;
  // Valid once: taken whatever the outcome, so a failed attempt cannot be retried with it.
  const auto pending = std::exchange(call.state.challenge_nonce, std::nullopt);
  if (!pending || call.now_ms > call.state.challenge_expires_ms ||
      !crypto::ConstantTimeEquals(*pending, AsBytes(request.nonce()))) {
    CountAuthFailure(address);
    (void)Record(FailedLogin(request, "challenge unknown, used or expired"), address);
    return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED,
                    "challenge is unknown, used or expired");
  }
  auto device = store_->GetDevice(request.user_id(), request.device_id());
  if (!device) return SetStoreError(call, device.error());
  if (!device->has_value() || (*device)->revoked) {
    CountAuthFailure(address);
    (void)Record(FailedLogin(request, "device unknown or revoked"), address);
    return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED, "device is unknown or revoked");
  }
  auto key = crypto::VerifyKey::FromBytes((*device)->signing_key);
  if (!key) return SetStoreError(call, key.error());
  if (!protocol::VerifyAuthChallenge(*key, request.user_id(), request.device_id(), *pending,
                                     options_.relay_identity, AsBytes(request.signature()))) {
    CountAuthFailure(address);
    (void)Record(FailedLogin(request, "signature does not verify"), address);
    return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED, "signature does not verify");
  }

  crypto::SecretBytes token = crypto::RandomSecret(protocol::kTokenSize);
  const Sha256Digest token_hash = Sha256(token.span());
  const std::int64_t expires_ms =
      call.now_ms +
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.auth.session_token_lifetime)
          .count();
  storage::SessionRecord session{request.user_id(), request.device_id(), expires_ms};
  if (auto stored = store_->StoreSession(token_hash, session); !stored) {
    if (stored.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED, "device is unknown or revoked");
    }
    return SetStoreError(call, stored.error());
  }
  wire::SessionToken* reply = call.response.mutable_session();
  reply->set_token(std::string(AsText(token.span())));
  reply->set_expires_ms(static_cast<std::uint64_t>(expires_ms));

  AuditEvent login;
  login.type = audit::EventType::kLogin;
  login.user_id = request.user_id();
  login.device_id = request.device_id();
  (void)Record(login, address);
  Authenticate(call.state, Principal{request.user_id(), request.device_id(), expires_ms});
  ConnectionState* state = &call.state;
  call.after.push_back([this, state, device = DeviceKey{request.user_id(), request.device_id()}] {
    Deliver(*state, device, nullptr);
  });
  Log(LogLevel::kInfo, "authenticated", {{"connection", call.state.connection->id()}});
}

void RelayService::HandleResume(Call& call, const wire::ResumeSession& request) {
  const std::string& address = call.state.connection->peer_address();
  if (AuthRateLimited(call, address)) return;
  const Sha256Digest token_hash = Sha256(AsBytes(request.token()));
  auto session = store_->LookupSession(token_hash, call.now_ms);
  if (!session) return SetStoreError(call, session.error());
  if (!session->has_value()) {
    CountAuthFailure(address);
    return SetError(call, wire::ERROR_CODE_UNAUTHENTICATED, "session token is unknown or expired");
  }
  const storage::SessionRecord& record = **session;
  wire::SessionToken* reply = call.response.mutable_session();
  reply->set_token(request.token());
  reply->set_expires_ms(static_cast<std::uint64_t>(record.expires_ms));
  Authenticate(call.state, Principal{record.user_id, record.device_id, record.expires_ms});
  ConnectionState* state = &call.state;
  call.after.push_back([this, state, device = DeviceKey{record.user_id, record.device_id}] {
    Deliver(*state, device, nullptr);
  });
  Log(LogLevel::kInfo, "session_resumed", {{"connection", call.state.connection->id()}});
}

// --- Devices ------------------------------------------------------------------------------------

void RelayService::HandleAddDevice(Call& call, const wire::AddDevice& request) {
  const Principal& principal = *call.principal;
  auto user = store_->GetUser(principal.user_id);
  if (!user) return SetStoreError(call, user.error());
  if (!user->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such user");
  auto identity = crypto::VerifyKey::FromBytes((*user)->identity_key);
  if (!identity) return SetStoreError(call, identity.error());
  auto device = protocol::VerifyDeviceCertificate(request.certificate(), *identity);
  if (!device) return SetProtocolError(call, device.error());
  if (device->user_id != principal.user_id) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "certificate names another user");
  }
  auto devices = store_->ListDevices(principal.user_id);
  if (!devices) return SetStoreError(call, devices.error());
  const auto active = static_cast<std::size_t>(
      std::count_if(devices->begin(), devices->end(), [](const auto& d) { return !d.revoked; }));
  // Every device, revoked ones included, must fit in one DeviceList.
  if (active >= options_.quotas.max_devices_per_user ||
      devices->size() >= protocol::kMaxDevicesPerUser) {
    return SetError(call, wire::ERROR_CODE_QUOTA_EXCEEDED, "too many devices for this user");
  }
  storage::DeviceRecord record;
  record.user_id = principal.user_id;
  record.device_id = device->device_id;
  record.certificate = ToBytes(request.certificate().SerializeAsString());
  record.signing_key.assign(device->signing_key.bytes().begin(), device->signing_key.bytes().end());
  record.signal_identity_key.assign(device->signal_identity_key.begin(),
                                    device->signal_identity_key.end());
  record.created_ms = call.now_ms;
  if (auto added = store_->AddDevice(record); !added) {
    if (added.error().code() == ErrorCode::kAlreadyExists) {
      return SetError(call, wire::ERROR_CODE_ALREADY_EXISTS, "device id is already used");
    }
    return SetStoreError(call, added.error());
  }
  AuditEvent event;
  event.type = audit::EventType::kDeviceAdded;
  event.user_id = principal.user_id;
  event.device_id = principal.device_id;
  event.version = device->device_id;  // the device added
  (void)Record(event, call.state.connection->peer_address());
  call.response.mutable_ok();
}

void RelayService::HandleRevokeDevice(Call& call, const wire::RevokeDevice& request) {
  const Principal& principal = *call.principal;
  auto user = store_->GetUser(principal.user_id);
  if (!user) return SetStoreError(call, user.error());
  if (!user->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such user");
  auto identity = crypto::VerifyKey::FromBytes((*user)->identity_key);
  if (!identity) return SetStoreError(call, identity.error());
  if (auto verified = protocol::VerifyRevocation(*identity, principal.user_id, request.device_id(),
                                                 AsBytes(request.signature()));
      !verified) {
    return SetProtocolError(call, verified.error());
  }
  if (auto revoked = store_->RevokeDevice(principal.user_id, request.device_id()); !revoked) {
    if (revoked.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such device");
    }
    return SetStoreError(call, revoked.error());
  }
  AuditEvent event;
  event.type = audit::EventType::kDeviceRevoked;
  event.user_id = principal.user_id;
  event.device_id = principal.device_id;
  event.version = request.device_id();  // the device revoked
  (void)Record(event, call.state.connection->peer_address());
  call.response.mutable_ok();
  // After the response, so that a device revoking itself still hears the answer.
  call.after.push_back([this, user_id = principal.user_id, device_id = request.device_id()] {
    CloseDevice(user_id, device_id);
  });
  Log(LogLevel::kInfo, "device_revoked", {{"connection", call.state.connection->id()}});
}

void RelayService::HandleListDevices(Call& call, const wire::ListDevices& request) {
  auto user = store_->GetUser(request.user_id());
  if (!user) return SetStoreError(call, user.error());
  if (!user->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such user");
  auto devices = store_->ListDevices(request.user_id());
  if (!devices) return SetStoreError(call, devices.error());
  // Active devices first, so that a list cut at its limit never hides one that is in use.
  std::stable_partition(devices->begin(), devices->end(), [](const auto& d) { return !d.revoked; });
  wire::DeviceList* list = call.response.mutable_devices();
  list->set_user_id(request.user_id());
  list->set_user_identity_key(ToText((*user)->identity_key));
  for (const storage::DeviceRecord& device : *devices) {
    if (static_cast<std::size_t>(list->devices_size()) >= protocol::kMaxDevicesPerUser) break;
    wire::DeviceEntry entry;
    if (!ParseBytes(device.certificate, *entry.mutable_certificate())) {
      Log(LogLevel::kError, "stored_certificate_invalid");
      continue;
    }
    entry.set_revoked(device.revoked);
    *list->add_devices() = std::move(entry);
  }
}

// --- Device links -------------------------------------------------------------------------------

namespace {

// Who is calling, when the session is valid: link sides that belong to the owner need it.
std::optional<LinkOwner> LinkCaller(const Call& call) {
  if (!call.principal || call.principal->expires_ms <= call.now_ms) return std::nullopt;
  return LinkOwner{call.principal->user_id, call.principal->device_id};
}

}  // namespace

bool RelayService::SetLinkError(Call& call, LinkRegistry::Outcome outcome) {
  switch (outcome) {
    case LinkRegistry::Outcome::kOk:
      return false;
    case LinkRegistry::Outcome::kNotFound:
      // Unknown link ids are what a guesser sees: they cost the address like a failed login.
      CountAuthFailure(call.state.connection->peer_address());
      SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such link, or it expired");
      return true;
    case LinkRegistry::Outcome::kForbidden:
      SetError(call, wire::ERROR_CODE_FORBIDDEN, "only the device that opened the link may do this");
      return true;
    case LinkRegistry::Outcome::kAlreadyPosted:
      SetError(call, wire::ERROR_CODE_CONFLICT, "this side of the link was already written");
      return true;
    case LinkRegistry::Outcome::kFull:
      SetError(call, wire::ERROR_CODE_UNAVAILABLE, "too many open links; retry later");
      call.response.mutable_error()->set_retry_after_ms(protocol::kLinkLifetimeMs / 10);
      return true;
  }
  return false;
}

void RelayService::HandleOpenLink(Call& call, const wire::OpenLink& request) {
  std::uint64_t expires_ms = 0;
  const auto outcome = links_.Open(request.link_id(), *LinkCaller(call),
                                   static_cast<std::uint64_t>(call.now_ms), &expires_ms);
  if (SetLinkError(call, outcome)) return;
  call.response.mutable_link_opened()->set_expires_ms(expires_ms);
  Log(LogLevel::kInfo, "device_link_opened", {{"connection", call.state.connection->id()}});
}

void RelayService::HandlePostLinkMessage(Call& call, const wire::PostLinkMessage& request) {
  const std::string& address = call.state.connection->peer_address();
  if (AuthRateLimited(call, address)) return;
  const auto outcome = links_.Post(request.link_id(), request.side(), request.sealed(),
                                   LinkCaller(call), static_cast<std::uint64_t>(call.now_ms));
  if (SetLinkError(call, outcome)) return;
  call.response.mutable_ok();
}

void RelayService::HandleFetchLinkMessage(Call& call, const wire::FetchLinkMessage& request) {
  const std::string& address = call.state.connection->peer_address();
  if (AuthRateLimited(call, address)) return;
  std::string sealed;
  std::uint64_t expires_ms = 0;
  const auto outcome = links_.Fetch(request.link_id(), request.side(), LinkCaller(call),
                                    static_cast<std::uint64_t>(call.now_ms), &sealed, &expires_ms);
  if (SetLinkError(call, outcome)) return;
  wire::LinkMessage* reply = call.response.mutable_link_message();
  reply->set_sealed(std::move(sealed));
  reply->set_expires_ms(expires_ms);
}

// --- Prekeys ------------------------------------------------------------------------------------

void RelayService::HandleUploadPreKeys(Call& call, const wire::UploadPreKeys& request) {
  const Principal& principal = *call.principal;
  if (static_cast<std::size_t>(request.one_time_pre_keys_size()) >
      options_.quotas.max_one_time_prekeys) {
    return SetError(call, wire::ERROR_CODE_TOO_LARGE, "too many one-time prekeys in one upload");
  }
  if (request.one_time_pre_keys_size() > 0) {
    // Every uploaded key counts as new (one that replaces a stored id counts twice). Uploads
    // racing from one device (over several connections) may each pass: the store can then
    // hold one upload more per racing upload.
    auto stored = store_->OneTimePreKeyCount(principal.user_id, principal.device_id);
    if (!stored) return SetStoreError(call, stored.error());
    const auto uploaded = static_cast<std::uint64_t>(request.one_time_pre_keys_size());
    if (*stored + uploaded > options_.quotas.max_stored_one_time_prekeys) {
      return SetError(call, wire::ERROR_CODE_QUOTA_EXCEEDED,
                      "device holds too many one-time prekeys");
    }
  }
  std::optional<storage::SignedPreKeyRecord> signed_pre_key;
  if (request.has_signed_pre_key()) {
    const wire::SignedPreKey& key = request.signed_pre_key();
    signed_pre_key = storage::SignedPreKeyRecord{
        key.id(), ToBytes(key.public_key()), ToBytes(key.signature()),
        static_cast<std::int64_t>(std::min<std::uint64_t>(key.timestamp_ms(), INT64_MAX))};
  }
  std::vector<storage::OneTimePreKeyRecord> one_time;
  one_time.reserve(static_cast<std::size_t>(request.one_time_pre_keys_size()));
  for (const wire::OneTimePreKey& key : request.one_time_pre_keys()) {
    one_time.push_back({key.id(), ToBytes(key.public_key())});
  }
  if (auto stored = store_->StorePreKeys(principal.user_id, principal.device_id,
                                         request.registration_id(), signed_pre_key, one_time);
      !stored) {
    if (stored.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_UNAUTHENTICATED, "device is unknown or revoked");
    }
    return SetStoreError(call, stored.error());
  }
  call.response.mutable_ok();
}

void RelayService::HandleFetchPreKeyBundle(Call& call, const wire::FetchPreKeyBundle& request) {
  auto bundle = store_->TakePreKeyBundle(request.user_id(), request.device_id());
  if (!bundle) {
    if (bundle.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no prekey bundle for this device");
    }
    return SetStoreError(call, bundle.error());
  }
  if (bundle->signal_identity_key.size() != protocol::kSignalKeySize) {
    return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no prekey bundle for this device");
  }
  wire::PreKeyBundleReply* reply = call.response.mutable_pre_key_bundle();
  reply->set_user_id(request.user_id());
  reply->set_device_id(request.device_id());
  reply->set_registration_id(bundle->registration_id);
  reply->set_signal_identity_key(ToText(bundle->signal_identity_key));
  wire::SignedPreKey* signed_key = reply->mutable_signed_pre_key();
  signed_key->set_id(bundle->signed_pre_key.id);
  signed_key->set_public_key(ToText(bundle->signed_pre_key.public_key));
  signed_key->set_signature(ToText(bundle->signed_pre_key.signature));
  signed_key->set_timestamp_ms(
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, bundle->signed_pre_key.timestamp_ms)));
  if (bundle->one_time_pre_key) {
    reply->mutable_one_time_pre_key()->set_id(bundle->one_time_pre_key->id);
    reply->mutable_one_time_pre_key()->set_public_key(ToText(bundle->one_time_pre_key->public_key));
  }
  if (bundle->one_time_pre_keys_left < kPreKeysLowThreshold) {
    call.after.push_back([this, user_id = request.user_id(), device_id = request.device_id(),
                          left = bundle->one_time_pre_keys_left] {
      wire::Push push;
      push.mutable_pre_keys_low()->set_remaining(left);
      for (const auto& state : OnlineStates(user_id, device_id)) SendPush(*state, push);
    });
  }
}

// --- Mailboxes ----------------------------------------------------------------------------------

void RelayService::HandleSendEnvelopes(Call& call, const wire::SendEnvelopes& request) {
  const Principal& principal = *call.principal;
  // Per recipient device: how many envelopes and bytes this send adds.
  std::map<DeviceKey, storage::MailboxUsageRecord, std::less<>> adding;
  for (const wire::OutgoingEnvelope& envelope : request.envelopes()) {
    storage::MailboxUsageRecord& usage =
        adding[DeviceKey{envelope.recipient_user_id(), envelope.recipient_device_id()}];
    usage.count += 1;
    usage.bytes += envelope.ciphertext().size();
  }
  // Every recipient is checked in one read of the store: active, and room in its mailbox.
  // The check and the enqueue are two steps, so sends racing to one device may each pass
  // it: a mailbox can exceed its quota by what those racing sends add, at most one request
  // (kMaxEnvelopesPerSend envelopes, one frame) each. The quota bounds abuse; it is not an
  // exact figure. Whether a recipient is active is checked again inside the enqueue.
  std::vector<storage::DeviceAddress> recipients;
  recipients.reserve(adding.size());
  for (const auto& [device, usage] : adding) recipients.push_back({device.first, device.second});
  auto stored = store_->ActiveMailboxUsage(recipients);
  if (!stored) return SetStoreError(call, stored.error());
  if (stored->size() != recipients.size()) {
    return SetStoreError(call, Error(ErrorCode::kInternal, "store returned a wrong count"));
  }
  std::size_t index = 0;
  for (const auto& [device, usage] : adding) {
    const std::optional<storage::MailboxUsageRecord>& current = (*stored)[index++];
    if (!current) {
      return SetError(call, wire::ERROR_CODE_NOT_FOUND, "recipient device is unknown or revoked");
    }
    if (current->count + usage.count > options_.quotas.max_mailbox_messages ||
        current->bytes + usage.bytes > options_.quotas.max_mailbox_bytes) {
      return SetError(call, wire::ERROR_CODE_QUOTA_EXCEEDED, "recipient mailbox is full");
    }
  }

  std::vector<storage::NewEnvelope> envelopes;
  envelopes.reserve(static_cast<std::size_t>(request.envelopes_size()));
  std::uint64_t bytes = 0;
  for (const wire::OutgoingEnvelope& envelope : request.envelopes()) {
    envelopes.push_back(
        storage::NewEnvelope{envelope.recipient_user_id(), envelope.recipient_device_id(),
                             principal.user_id, principal.device_id, ToBytes(envelope.client_id()),
                             envelope.type(), ToBytes(envelope.ciphertext()), call.now_ms});
    bytes += envelope.ciphertext().size();
  }
  auto sequences = store_->EnqueueEnvelopes(envelopes);
  if (!sequences) {
    if (sequences.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_NOT_FOUND, "recipient device is unknown or revoked");
    }
    return SetStoreError(call, sequences.error());
  }
  if (sequences->size() != envelopes.size()) {
    return SetStoreError(call, Error(ErrorCode::kInternal, "store returned a wrong count"));
  }
  envelopes_in_.Increment(envelopes.size());
  envelope_bytes_in_.Increment(bytes);
  for (const std::uint64_t sequence : *sequences)
    call.response.mutable_send_result()->add_sequence(sequence);

  // Durable now: push to the recipients that are online.
  std::map<DeviceKey, std::vector<storage::EnvelopeRecord>, std::less<>> fresh;
  for (std::size_t i = 0; i < envelopes.size(); ++i) {
    storage::NewEnvelope& envelope = envelopes[i];
    fresh[DeviceKey{envelope.recipient_user_id, envelope.recipient_device_id}].push_back(
        storage::EnvelopeRecord{(*sequences)[i], envelope.sender_user_id, envelope.sender_device_id,
                                std::move(envelope.client_id), envelope.type,
                                std::move(envelope.ciphertext), envelope.received_ms});
  }
  for (auto& [device, records] : fresh) {
    std::sort(records.begin(), records.end(),
              [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
    // One client id sent twice in one request is stored once, under one sequence.
    records.erase(
        std::unique(records.begin(), records.end(),
                    [](const auto& a, const auto& b) { return a.sequence == b.sequence; }),
        records.end());
  }
  call.after.push_back([this, fresh = std::move(fresh)] {
    for (const auto& [device, records] : fresh) PushEnvelopes(device, records);
  });
}

void RelayService::HandleFetchMailbox(Call& call, const wire::FetchMailbox& request) {
  const Principal& principal = *call.principal;
  wire::EnvelopeBatch* batch = call.response.mutable_envelopes();
  std::size_t size = 0;
  std::uint64_t bytes = 0;
  bool more = false;
  // Small pages: one frame holds only a few large envelopes, so reading the whole limit at
  // once could pull up to 500 x 256 KiB into memory for nothing.
  std::uint64_t after = request.after_sequence();
  bool done = false;
  while (!done) {
    auto page =
        store_->FetchEnvelopes(principal.user_id, principal.device_id, after, kDeliveryPage);
    if (!page) return SetStoreError(call, page.error());
    for (const storage::EnvelopeRecord& record : *page) {
      const std::size_t cost = EnvelopeCost(record);
      if (static_cast<std::uint32_t>(batch->envelopes_size()) >= request.limit() ||
          (batch->envelopes_size() > 0 && size + cost > kFrameBudget)) {
        more = true;
        done = true;
        break;
      }
      ToWire(record, *batch->add_envelopes());
      size += cost;
      bytes += record.ciphertext.size();
      after = record.sequence;
    }
    if (page->size() < kDeliveryPage) done = true;
  }
  batch->set_more(more);
  if (batch->envelopes_size() == 0) return;
  envelopes_out_.Increment(static_cast<std::uint64_t>(batch->envelopes_size()));
  envelope_bytes_out_.Increment(bytes);
  // What the device fetched need not be pushed to this connection again.
  std::lock_guard<std::mutex> push_lock(call.state.push_mutex);
  call.state.last_pushed = std::max(call.state.last_pushed, after);
}

void RelayService::HandleAckEnvelopes(Call& call, const wire::AckEnvelopes& request) {
  const Principal& principal = *call.principal;
  const std::vector<std::uint64_t> sequences(request.sequences().begin(),
                                             request.sequences().end());
  auto acked = store_->AckEnvelopes(principal.user_id, principal.device_id, sequences);
  if (!acked) return SetStoreError(call, acked.error());
  call.response.mutable_ok();
}

// --- Team chains --------------------------------------------------------------------------------

void RelayService::HandleAppendChainStatement(Call& call,
                                              const wire::AppendChainStatement& request) {
  const wire::ChainStatement& statement = request.statement();
  auto body = protocol::ParseChainStatementBody(statement);
  if (!body) return SetProtocolError(call, body.error());
  const Bytes team_id = ToBytes(body->team_id());
  std::shared_ptr<TeamEntry> entry = TeamEntryFor(team_id);

  std::set<std::string> notify;
  wire::ChainAdvanced advanced;
  {
    std::lock_guard<std::mutex> lock(entry->chain_mutex);
    // The cached chain is used only while it ends at the store's head: another relay
    // process on the same store may have appended since.
    auto stored_head = store_->GetChainHead(team_id);
    if (!stored_head) return SetStoreError(call, stored_head.error());
    const bool fresh =
        entry->chain.has_value() == stored_head->has_value() &&
        (!entry->chain || ((*stored_head)->sequence == entry->chain->head().sequence &&
                           AsText((*stored_head)->hash) == AsText(entry->chain->head().hash)));
    if (!fresh) {
      if (auto loaded = LoadChainLocked(team_id, *entry); !loaded) {
        return SetStoreError(call, loaded.error());
      }
    }
    std::optional<protocol::TeamChain> next;
    if (!entry->chain) {
      auto genesis = protocol::TeamChain::FromGenesis(statement, StrictLookup());
      if (!genesis) return SetProtocolError(call, genesis.error());
      next = std::move(*genesis);
    } else {
      next = *entry->chain;
      if (auto applied = next->Apply(statement, StrictLookup()); !applied) {
        SetProtocolError(call, applied.error());
        if (call.response.error().code() == wire::ERROR_CODE_CONFLICT) {
          call.response.mutable_error()->set_current_head(
              std::string(AsText(entry->chain->head().hash)));
        }
        return;
      }
      for (const auto& [user, role] : entry->chain->members()) notify.insert(user);
    }

    std::optional<storage::ChainHead> expected;
    if (entry->chain) {
      const protocol::ChainHead head = entry->chain->head();
      expected = storage::ChainHead{head.sequence, Bytes(head.hash.begin(), head.hash.end())};
    }
    const protocol::ChainHead new_head = next->head();
    std::vector<storage::TeamMember> members;
    for (const auto& [user, role] : next->members()) {
      members.push_back({user, static_cast<std::uint32_t>(role)});
      notify.insert(user);
    }
    auto appended = store_->AppendChainStatement(
        team_id, expected,
        storage::ChainHead{new_head.sequence, Bytes(new_head.hash.begin(), new_head.hash.end())},
        ToBytes(statement.SerializeAsString()), members);
    if (!appended) {
      if (appended.error().code() != ErrorCode::kConflict) {
        return SetStoreError(call, appended.error());
      }
      // Another relay process (or a restore) moved the head: start again from the store.
      entry->chain.reset();
      (void)LoadChainLocked(team_id, *entry);
      SetError(call, wire::ERROR_CODE_CONFLICT, "chain head moved; fetch the chain");
      if (entry->chain) {
        call.response.mutable_error()->set_current_head(
            std::string(AsText(entry->chain->head().hash)));
      }
      return;
    }
    entry->SetChain(std::move(*next));
    advanced.set_team_id(body->team_id());
    advanced.set_sequence(new_head.sequence);
    advanced.set_head(std::string(AsText(new_head.hash)));
  }
  chain_statements_.Increment();
  {
    AuditEvent event;
    event.user_id = call.principal->user_id;
    event.device_id = call.principal->device_id;
    event.team_id = team_id;
    event.version = advanced.sequence();
    switch (body->change_case()) {
      case wire::ChainStatementBody::kCreate: event.type = audit::EventType::kTeamCreated; break;
      case wire::ChainStatementBody::kAddMember:
        event.type = audit::EventType::kMemberAdded;
        event.details.subject_user_id = body->add_member().user_id();
        break;
      case wire::ChainStatementBody::kRemoveMember:
        event.type = audit::EventType::kMemberRemoved;
        event.details.subject_user_id = body->remove_member().user_id();
        break;
      case wire::ChainStatementBody::kChangeRole:
        event.type = audit::EventType::kRoleChanged;
        event.details.subject_user_id = body->change_role().user_id();
        break;
      case wire::ChainStatementBody::kRotateKey: event.type = audit::EventType::kKeyRotated; break;
      case wire::ChainStatementBody::kSetAuditorKey: event.type = audit::EventType::kAuditorKeySet; break;
      case wire::ChainStatementBody::kRename:
      case wire::ChainStatementBody::CHANGE_NOT_SET: event.type = audit::EventType::kTeamRenamed; break;
    }
    std::optional<crypto::X25519PublicKey> auditor;
    event.team_auditor = TeamAuditorKey(team_id, auditor);
    (void)Record(event, call.state.connection->peer_address());
  }
  wire::ChainAppended* reply = call.response.mutable_chain_appended();
  reply->set_sequence(advanced.sequence());
  reply->set_head(advanced.head());
  // Old and new members alike: a removed member learns that the chain moved on.
  call.after.push_back([this, notify = std::move(notify), advanced = std::move(advanced)] {
    PushChainAdvanced(notify, advanced);
  });
}

void RelayService::HandleFetchChain(Call& call, const wire::FetchChain& request) {
  const Bytes team_id = ToBytes(request.team_id());
  if (!RequireAccess(call, team_id, TeamAccess::kRead)) return;
  auto raw = store_->FetchChain(team_id, request.from_sequence());
  if (!raw) return SetStoreError(call, raw.error());
  wire::Chain* chain = call.response.mutable_chain();
  chain->set_team_id(request.team_id());

  // Signers' certificates, gathered per user as statements are added.
  struct SignerUser {
    std::optional<storage::UserRecord> user;
    std::vector<storage::DeviceRecord> devices;
    wire::DeviceList* list = nullptr;
    std::set<std::uint32_t> included;
  };
  std::map<std::string, SignerUser, std::less<>> signers;
  std::size_t size = 0;
  bool more = false;
  for (const Bytes& bytes : *raw) {
    if (static_cast<std::size_t>(chain->statements_size()) >= protocol::kMaxChainFetch) {
      more = true;
      break;
    }
    wire::ChainStatement statement;
    if (!ParseBytes(bytes, statement)) {
      return SetStoreError(call,
                           Error(ErrorCode::kCorrupt, "stored chain statement does not parse"));
    }
    auto body = protocol::ParseChainStatementBody(statement);
    if (!body) {
      return SetStoreError(call, Error(ErrorCode::kCorrupt, "stored chain statement is invalid"));
    }
    std::size_t cost = bytes.size() + 8;
    SignerUser& signer = signers[body->signer_user_id()];
    if (!signer.user) {
      auto user = store_->GetUser(body->signer_user_id());
      if (!user) return SetStoreError(call, user.error());
      auto devices = store_->ListDevices(body->signer_user_id());
      if (!devices) return SetStoreError(call, devices.error());
      if (!user->has_value()) {
        return SetStoreError(call, Error(ErrorCode::kCorrupt, "chain signer has no account"));
      }
      signer.user = std::move(**user);
      signer.devices = std::move(*devices);
      cost += signer.user->user_id.size() + signer.user->identity_key.size() + 16;
    }
    const storage::DeviceRecord* device = nullptr;
    if (!signer.included.contains(body->signer_device_id())) {
      for (const auto& candidate : signer.devices) {
        if (candidate.device_id == body->signer_device_id()) device = &candidate;
      }
      if (device != nullptr) cost += device->certificate.size() + 16;
    }
    if (chain->statements_size() > 0 && size + cost > kFrameBudget) {
      more = true;
      break;
    }
    size += cost;
    *chain->add_statements() = std::move(statement);
    if (signer.list == nullptr) {
      signer.list = chain->add_signers();
      signer.list->set_user_id(signer.user->user_id);
      signer.list->set_user_identity_key(ToText(signer.user->identity_key));
    }
    if (device != nullptr) {
      wire::DeviceEntry* entry = signer.list->add_devices();
      if (!ParseBytes(device->certificate, *entry->mutable_certificate())) {
        return SetStoreError(call, Error(ErrorCode::kCorrupt, "stored certificate is invalid"));
      }
      entry->set_revoked(device->revoked);
      signer.included.insert(device->device_id);
    }
  }
  chain->set_more(more);
}

void RelayService::HandleListTeams(Call& call) {
  auto teams = store_->TeamsOfUser(call.principal->user_id);
  if (!teams) return SetStoreError(call, teams.error());
  wire::TeamList* list = call.response.mutable_teams();
  for (const auto& [team_id, head] : *teams) {
    if (static_cast<std::size_t>(list->teams_size()) >= protocol::kMaxTeamsPerList) break;
    wire::ChainAdvanced* team = list->add_teams();
    team->set_team_id(ToText(team_id));
    team->set_sequence(head.sequence);
    team->set_head(ToText(head.hash));
  }
}

// --- Items --------------------------------------------------------------------------------------

void RelayService::HandlePutItemVersion(Call& call, const wire::PutItemVersion& request) {
  const Principal& principal = *call.principal;
  auto verified = protocol::VerifyItemManifest(request.manifest(), StrictLookup());
  if (!verified) return SetProtocolError(call, verified.error());
  const wire::ItemManifestBody& body = verified->body;
  if (body.author_user_id() != principal.user_id ||
      body.author_device_id() != principal.device_id) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "manifest author is not this device");
  }
  const Bytes team_id = ToBytes(body.team_id());
  if (!RequireAccess(call, team_id, TeamAccess::kWrite)) return;
  if (!body.blob_id().empty()) {
    auto blob = store_->GetBlob(team_id, AsBytes(body.blob_id()));
    if (!blob) return SetStoreError(call, blob.error());
    if (!blob->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such blob");
    if (auto recovered = RecoverBlob(**blob); !recovered) {
      return SetStoreError(call, recovered.error());
    }
    if (!(*blob)->complete || (*blob)->size != body.blob_size()) {
      return SetError(call, wire::ERROR_CODE_SIZE_MISMATCH,
                      "blob is not complete or its size differs from the manifest");
    }
  }
  storage::ItemRecord item;
  item.team_id = team_id;
  item.item_id = ToBytes(body.item_id());
  item.version = body.version();
  item.manifest = ToBytes(request.manifest().SerializeAsString());
  item.blob_id = ToBytes(body.blob_id());
  item.created_ms = call.now_ms;
  std::uint64_t current = 0;
  if (auto put = store_->PutItemVersion(item, body.parent_version(), &current); !put) {
    if (put.error().code() == ErrorCode::kConflict) {
      SetError(call, wire::ERROR_CODE_CONFLICT, "item version is not the current one");
      call.response.mutable_error()->set_current_version(current);
      return;
    }
    if (put.error().code() == ErrorCode::kInvalidArgument) {
      return SetError(call, wire::ERROR_CODE_MALFORMED, "item version is not above its parent");
    }
    return SetStoreError(call, put.error());
  }
  item_versions_.Increment();
  {
    AuditEvent event;
    event.type = audit::EventType::kItemVersionUploaded;
    event.user_id = principal.user_id;
    event.device_id = principal.device_id;
    event.team_id = team_id;
    event.item_id = AsBytes(body.item_id());
    event.version = body.version();
    std::optional<crypto::X25519PublicKey> auditor;
    event.team_auditor = TeamAuditorKey(team_id, auditor);
    (void)Record(event, call.state.connection->peer_address());
  }
  call.response.mutable_item_accepted()->set_version(body.version());
}

void RelayService::HandleGetItem(Call& call, const wire::GetItem& request) {
  const Bytes team_id = ToBytes(request.team_id());
  AuditEvent fetch;
  fetch.type = audit::EventType::kItemFetched;
  fetch.user_id = call.principal->user_id;
  fetch.device_id = call.principal->device_id;
  fetch.team_id = team_id;
  fetch.item_id = AsBytes(request.item_id());
  fetch.version = request.version();
  std::optional<crypto::X25519PublicKey> auditor;
  fetch.team_auditor = TeamAuditorKey(team_id, auditor);
  if (!RequireAccess(call, team_id, TeamAccess::kRead)) {
    fetch.result = audit::EventResult::kRefused;
    fetch.details.reason = "not allowed in this team";
    (void)Record(fetch, call.state.connection->peer_address());
    return;
  }
  auto item = store_->GetItem(team_id, AsBytes(request.item_id()), request.version());
  if (!item) return SetStoreError(call, item.error());
  if (!item->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such item");
  std::uint64_t current = (*item)->version;
  if (request.version() != 0) {
    auto latest = store_->GetItem(team_id, AsBytes(request.item_id()), 0);
    if (!latest) return SetStoreError(call, latest.error());
    if (latest->has_value()) current = (*latest)->version;
  }
  wire::ItemReply* reply = call.response.mutable_item();
  if (!ParseBytes((*item)->manifest, *reply->mutable_manifest())) {
    return SetStoreError(call, Error(ErrorCode::kCorrupt, "stored manifest does not parse"));
  }
  reply->set_current_version(current);
  // Recorded before the manifest leaves: no record, no manifest (the error replaces the
  // reply in the response's oneof).
  fetch.version = (*item)->version;
  (void)RecordOrRefuse(call, fetch);
}

void RelayService::HandleListItems(Call& call, const wire::ListItems& request) {
  const Bytes team_id = ToBytes(request.team_id());
  if (!RequireAccess(call, team_id, TeamAccess::kRead)) return;
  const std::uint32_t limit = request.limit() == 0 ? protocol::kMaxItemsPerList : request.limit();
  wire::ItemList* list = call.response.mutable_items();
  std::size_t size = 0;
  bool more = false;
  // Small pages from the store, in item id order, until the limit or the frame is full: a
  // manifest is up to 66 KiB, so reading the whole limit at once could pull 33 MiB for one
  // frame. `more` is set only when an item is known to follow.
  Bytes after = ToBytes(request.after_item_id());
  bool done = false;
  while (!done) {
    auto page = store_->ListItems(team_id, after, kItemPage);
    if (!page) return SetStoreError(call, page.error());
    for (const storage::ItemRecord& item : *page) {
      const std::size_t cost = item.manifest.size() + 32;
      if (static_cast<std::uint32_t>(list->items_size()) >= limit ||
          (list->items_size() > 0 && size + cost > kFrameBudget)) {
        more = true;
        done = true;
        break;
      }
      wire::ItemReply* reply = list->add_items();
      if (!ParseBytes(item.manifest, *reply->mutable_manifest())) {
        return SetStoreError(call, Error(ErrorCode::kCorrupt, "stored manifest does not parse"));
      }
      reply->set_current_version(item.version);
      size += cost;
      after = item.item_id;
    }
    if (page->size() < kItemPage) done = true;
  }
  list->set_more(more);
}

// --- Blobs --------------------------------------------------------------------------------------

void RelayService::HandleCreateBlob(Call& call, const wire::CreateBlob& request) {
  const Principal& principal = *call.principal;
  const Bytes team_id = ToBytes(request.team_id());
  const Bytes blob_id = ToBytes(request.blob_id());
  if (!RequireAccess(call, team_id, TeamAccess::kWrite)) return;
  if (request.size() > options_.quotas.max_blob_bytes) {
    return SetError(call, wire::ERROR_CODE_TOO_LARGE, "blob is larger than this relay accepts");
  }
  // Quotas on declared sizes, summed by the store. Under the team's lock no other CreateBlob
  // of this team in this process runs between the check and the creation, so the team quota
  // holds exactly within one process. Relay processes sharing the store, and one device
  // creating blobs in several teams at once (over several connections: the requests of one
  // connection run one at a time), may each pass the check: a quota can then be exceeded by
  // one blob per racing request.
  std::shared_ptr<TeamEntry> entry = TeamEntryFor(team_id);
  std::lock_guard<std::mutex> lock(entry->blob_mutex);
  const auto exceeds = [&](std::uint64_t used, std::uint64_t quota) {
    return used > quota || request.size() > quota - used;
  };
  auto team = store_->TeamBlobUsage(team_id);
  if (!team) return SetStoreError(call, team.error());
  if (exceeds(team->size_bytes, options_.quotas.max_team_storage_bytes)) {
    return SetError(call, wire::ERROR_CODE_QUOTA_EXCEEDED, "team storage quota exceeded");
  }
  auto device = store_->DeviceBlobUsage(principal.user_id, principal.device_id);
  if (!device) return SetStoreError(call, device.error());
  if (exceeds(device->size_bytes, options_.quotas.max_device_storage_bytes)) {
    return SetError(call, wire::ERROR_CODE_QUOTA_EXCEEDED, "device storage quota exceeded");
  }
  // The file first, so that a blob the store knows always has its .part file.
  if (auto created = blob_files_.CreatePart(team_id, blob_id); !created) {
    return SetStoreError(call, created.error());
  }
  storage::BlobRecord blob;
  blob.team_id = team_id;
  blob.blob_id = blob_id;
  blob.size = request.size();
  blob.uploader_user_id = principal.user_id;
  blob.uploader_device_id = principal.device_id;
  if (auto stored = store_->CreateBlob(blob); !stored) {
    if (stored.error().code() == ErrorCode::kAlreadyExists) {
      return SetError(call, wire::ERROR_CODE_ALREADY_EXISTS, "blob already exists");
    }
    return SetStoreError(call, stored.error());
  }
  wire::BlobInfo* info = call.response.mutable_blob();
  info->set_blob_id(request.blob_id());
  info->set_size(request.size());
  info->set_received(0);
  info->set_complete(false);
}

void RelayService::HandleBlobStatus(Call& call, const wire::BlobStatus& request) {
  const Bytes team_id = ToBytes(request.team_id());
  if (!RequireAccess(call, team_id, TeamAccess::kRead)) return;
  auto blob = store_->GetBlob(team_id, AsBytes(request.blob_id()));
  if (!blob) return SetStoreError(call, blob.error());
  if (!blob->has_value()) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "no such blob");
  if (auto recovered = RecoverBlob(**blob); !recovered) {
    return SetStoreError(call, recovered.error());
  }
  wire::BlobInfo* info = call.response.mutable_blob();
  info->set_blob_id(request.blob_id());
  info->set_size((*blob)->size);
  info->set_received((*blob)->received);
  info->set_complete((*blob)->complete);
}

}  // namespace internal

Result<std::unique_ptr<Service>> NewRelayService(RelayServiceOptions options,
                                                 std::unique_ptr<storage::RelayStore> store) {
  if (store == nullptr) return Fail(ErrorCode::kInvalidArgument, "relay service needs a store");
  COFFRE_ASSIGN_OR_RETURN(BlobFiles blob_files, BlobFiles::Open(options.data_dir));
  return std::unique_ptr<Service>(std::make_unique<internal::RelayService>(
      std::move(options), std::move(store), std::move(blob_files)));
}

}  // namespace coffre::server

namespace coffre::server::internal {

// --- Audit log ----------------------------------------------------------------------------------

namespace {

// The address without its port: what an auditor reads in the details.
std::string HostOf(std::string_view peer_address) {
  if (!peer_address.empty() && peer_address.front() == '[') {
    const auto end = peer_address.find(']');
    return std::string(peer_address.substr(1, end == std::string_view::npos ? 0 : end - 1));
  }
  const auto colon = peer_address.rfind(':');
  if (colon != std::string_view::npos && peer_address.find(':') == colon) {
    return std::string(peer_address.substr(0, colon));
  }
  return std::string(peer_address);
}

}  // namespace

bool RelayService::Record(AuditEvent event, std::string_view peer_address) {
  if (!options_.audit) return true;
  return RecordAt(std::move(event), peer_address).has_value();
}

std::optional<std::uint64_t> RelayService::RecordAt(AuditEvent event, std::string_view peer_address) {
  if (!options_.audit) return std::nullopt;
  if (event.details.ip_address.empty()) event.details.ip_address = HostOf(peer_address);
  if (event.details.ip_address.size() > audit::kMaxDetailsAddressSize) event.details.ip_address.clear();
  auto recorded = options_.audit->Record(event);
  if (!recorded) {
    Log(LogLevel::kError, "audit_record_failed", {{"context", recorded.error().context()}});
    return std::nullopt;
  }
  return *recorded;
}

bool RelayService::RecordOrRefuse(Call& call, AuditEvent event) {
  if (Record(std::move(event), call.state.connection->peer_address())) return true;
  SetError(call, wire::ERROR_CODE_UNAVAILABLE, "the audit log cannot record this; retry later");
  call.response.mutable_error()->set_retry_after_ms(1000);
  return false;
}

const crypto::X25519PublicKey* RelayService::TeamAuditorKey(
    const Bytes& team_id, std::optional<crypto::X25519PublicKey>& storage) {
  std::shared_ptr<TeamEntry> entry = TeamEntryFor(team_id);
  std::lock_guard lock(entry->chain_mutex);
  if (!entry->chain && !LoadChainLocked(team_id, *entry)) return nullptr;
  if (!entry->auditor_key) return nullptr;
  storage = *entry->auditor_key;
  return &*storage;
}

void RelayService::HandleGetAuditCheckpoint(Call& call, const wire::GetAuditCheckpoint& request) {
  if (!options_.audit) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "this relay keeps no audit log");
  auto checkpoint = options_.audit->log().Checkpoint(request.fresh());
  if (!checkpoint) {
    if (checkpoint.error().code() == ErrorCode::kNotFound) {
      return SetError(call, wire::ERROR_CODE_NOT_FOUND, "the audit log has no checkpoint yet");
    }
    return SetStoreError(call, checkpoint.error());
  }
  wire::AuditCheckpoint* reply = call.response.mutable_audit_checkpoint();
  reply->set_note(checkpoint->note);
  reply->set_log_key(options_.audit->VerifierKey());
}

void RelayService::HandleGetAuditProof(Call& call, const wire::GetAuditProof& request) {
  if (!options_.audit) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "this relay keeps no audit log");
  AuditLog& log = options_.audit->log();
  auto proof = request.has_inclusion()
                   ? log.InclusionProof(request.inclusion().index(), request.inclusion().tree_size())
                   : log.ConsistencyProof(request.consistency().first_size(),
                                          request.consistency().second_size());
  if (!proof) {
    return SetError(call, wire::ERROR_CODE_NOT_FOUND, "the audit log has not reached that size");
  }
  wire::AuditProof* reply = call.response.mutable_audit_proof();
  for (const audit::Hash& hash : *proof) reply->add_hashes(std::string(AsText(hash)));
}

void RelayService::HandleRecordClientEvent(Call& call, const wire::RecordClientEvent& request) {
  static_assert(protocol::kAuditClientEventSize == audit::kClientEventSize);
  if (!options_.audit) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "this relay keeps no audit log");
  const Principal& principal = *call.principal;
  auto event = audit::DecodeClientEvent(AsBytes(request.event()));
  if (!event) return SetError(call, wire::ERROR_CODE_MALFORMED, "client event is not a valid encoding");
  // The statement must be this device's own: its id, its registered key, its signature.
  // Whether the user may still read the team does not matter: a removed member's device
  // reporting that it opened its own copy is exactly what an auditor wants to see.
  if (event->device_id != principal.device_id) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "client event names another device");
  }
  auto device = store_->GetDevice(principal.user_id, principal.device_id);
  if (!device) return SetStoreError(call, device.error());
  if (!device->has_value() || (*device)->revoked ||
      !std::equal((*device)->signing_key.begin(), (*device)->signing_key.end(),
                  event->device_key.begin(), event->device_key.end())) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "client event is not under this device's key");
  }
  if (!audit::VerifyClientEventSignature(*event)) {
    return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED, "client event signature does not verify");
  }
  AuditEvent record;
  record.type = event->type;
  record.user_id = principal.user_id;
  record.device_id = principal.device_id;
  record.team_id = event->team_id;
  record.item_id = event->item_id;
  record.version = event->version;
  record.client_event = &*event;
  const Bytes team_id(event->team_id.begin(), event->team_id.end());
  std::optional<crypto::X25519PublicKey> auditor;
  record.team_auditor = TeamAuditorKey(team_id, auditor);
  const auto index = RecordAt(std::move(record), call.state.connection->peer_address());
  if (!index) {
    SetError(call, wire::ERROR_CODE_UNAVAILABLE, "the audit log cannot record this; retry later");
    call.response.mutable_error()->set_retry_after_ms(1000);
    return;
  }
  call.response.mutable_client_event_recorded()->set_index(*index);
}

Result<bool> RelayService::IsAuditorOfSomeTeam(const std::string& user_id) {
  COFFRE_ASSIGN_OR_RETURN(const auto teams, store_->TeamsOfUser(user_id));
  for (const auto& [team_id, head] : teams) {
    COFFRE_ASSIGN_OR_RETURN(const auto role, RoleOf(team_id, user_id));
    if (role && *role == wire::ROLE_AUDITOR) return true;
  }
  return false;
}

void RelayService::HandlePlaceLegalHold(Call& call, const wire::PlaceLegalHold& request) {
  if (!options_.audit) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "this relay keeps no audit log");
  const Principal& principal = *call.principal;
  auto hold = audit::DecodeLegalHold(AsBytes(request.hold()));
  if (!hold) return SetError(call, wire::ERROR_CODE_MALFORMED, "legal hold is not a valid encoding");
  if (hold->origin != options_.audit->origin()) {
    return SetError(call, wire::ERROR_CODE_MALFORMED, "legal hold names another audit log");
  }
  if (hold->signatures.size() != 2) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "a legal hold needs an admin's and an auditor's signature");
  }
  if (hold->signatures[0].user_id != principal.user_id && hold->signatures[1].user_id != principal.user_id) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "only a signer places a legal hold");
  }
  if (!audit::VerifyLegalHoldSignatures(*hold)) {
    return SetError(call, wire::ERROR_CODE_AUTHENTICATION_FAILED, "a legal hold signature does not verify");
  }
  // Each signature under its signer's registered device key, and the two roles covered:
  // an organisation admin and an auditor (of some team), two different people.
  bool admin[2] = {false, false};
  bool auditor[2] = {false, false};
  for (std::size_t i = 0; i < 2; ++i) {
    const audit::LegalHoldSignature& signature = hold->signatures[i];
    auto device = store_->GetDevice(signature.user_id, signature.device_id);
    if (!device) return SetStoreError(call, device.error());
    if (!device->has_value() || (*device)->revoked ||
        !std::equal((*device)->signing_key.begin(), (*device)->signing_key.end(),
                    signature.device_key.begin(), signature.device_key.end())) {
      return SetError(call, wire::ERROR_CODE_FORBIDDEN, "a legal hold signer's device is unknown or revoked");
    }
    auto user = store_->GetUser(signature.user_id);
    if (!user) return SetStoreError(call, user.error());
    admin[i] = user->has_value() && (*user)->admin;
    auto is_auditor = IsAuditorOfSomeTeam(signature.user_id);
    if (!is_auditor) return SetStoreError(call, is_auditor.error());
    auditor[i] = *is_auditor;
  }
  if (!((admin[0] && auditor[1]) || (admin[1] && auditor[0]))) {
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "a legal hold needs an admin's and an auditor's signature");
  }
  if (auto stored = options_.audit->log().AddLegalHold(AsBytes(request.hold()), call.now_ms); !stored) {
    return SetStoreError(call, stored.error());
  }
  AuditEvent placed;
  placed.type = audit::EventType::kLegalHoldPlaced;
  placed.user_id = principal.user_id;
  placed.device_id = principal.device_id;
  placed.version = hold->months.size();
  placed.details.subject_user_id =
      hold->signatures[0].user_id == principal.user_id ? hold->signatures[1].user_id : hold->signatures[0].user_id;
  placed.details.reason = hold->reason;
  const auto index = RecordAt(std::move(placed), call.state.connection->peer_address());
  if (!index) {
    SetError(call, wire::ERROR_CODE_UNAVAILABLE, "the audit log cannot record this; retry later");
    call.response.mutable_error()->set_retry_after_ms(1000);
    return;
  }
  Log(LogLevel::kInfo, "legal_hold_placed", {{"months", hold->months.size()}});
  call.response.mutable_legal_hold_placed()->set_index(*index);
}

void RelayService::HandleGetAuditEntries(Call& call, const wire::GetAuditEntries& request) {
  if (!options_.audit) return SetError(call, wire::ERROR_CODE_NOT_FOUND, "this relay keeps no audit log");
  const Principal& principal = *call.principal;
  // Entries are for auditors: an organisation admin, or an auditor of some team.
  auto user = store_->GetUser(principal.user_id);
  if (!user) return SetStoreError(call, user.error());
  bool allowed = user->has_value() && (*user)->admin;
  if (!allowed) {
    auto auditor = IsAuditorOfSomeTeam(principal.user_id);
    if (!auditor) return SetStoreError(call, auditor.error());
    allowed = *auditor;
  }
  if (!allowed) {
    AuditEvent refused;
    refused.type = audit::EventType::kAuditExported;
    refused.result = audit::EventResult::kRefused;
    refused.user_id = principal.user_id;
    refused.device_id = principal.device_id;
    refused.details.reason = "not an auditor";
    if (!RecordOrRefuse(call, refused)) return;
    return SetError(call, wire::ERROR_CODE_FORBIDDEN, "only auditors read the audit log");
  }
  auto entries = options_.audit->log().Entries(request.from_index(), request.limit());
  if (!entries) return SetStoreError(call, entries.error());
  // Reading the log is itself recorded, before the entries leave.
  AuditEvent exported;
  exported.type = audit::EventType::kAuditExported;
  exported.user_id = principal.user_id;
  exported.device_id = principal.device_id;
  exported.version = request.from_index();
  if (!RecordOrRefuse(call, exported)) return;
  wire::AuditEntries* page = call.response.mutable_audit_entries();
  std::size_t bytes = 0;
  for (auto& stored : *entries) {
    const std::size_t cost = stored.entry.size() + (stored.sealed_details ? stored.sealed_details->size() : 0) + 32;
    if (bytes + cost > protocol::kMaxFrameSize / 2) {
      page->set_more(true);
      break;
    }
    bytes += cost;
    wire::AuditLogEntry* out = page->add_entries();
    out->set_index(stored.index);
    out->set_entry(ToText(stored.entry));
    if (stored.sealed_details) out->set_sealed_details(ToText(*stored.sealed_details));
    out->set_details_erased(stored.erased);
  }
  if (!page->more() && entries->size() == request.limit()) page->set_more(true);
  AddMonthKeys(call, *page);
}

void RelayService::AddMonthKeys(Call& call, wire::AuditEntries& page) {
  // Each month key the page's sealed details need, once: a few per page (one per month and
  // auditor key), so they fit beside the entries' half of the frame.
  std::vector<std::uint64_t> key_ids;
  for (const wire::AuditLogEntry& entry : page.entries()) {
    const auto sealed = AsBytes(entry.sealed_details());
    if (sealed.empty()) continue;
    if (auto key_id = audit::SealedDetailsKeyId(sealed)) key_ids.push_back(*key_id);
  }
  if (key_ids.empty()) return;
  auto keys = options_.audit->log().MonthKeys(key_ids);
  if (!keys) return SetStoreError(call, keys.error());
  for (const storage::AuditMonthKeyRecord& key : *keys) {
    wire::AuditMonthKey* out = page.add_month_keys();
    out->set_key_id(key.key_id);
    out->set_auditor_key(ToText(key.auditor_key));
    out->set_sealed_key(ToText(key.sealed_key));
  }
}

}  // namespace coffre::server::internal
