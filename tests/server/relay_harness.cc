#include "server/relay_harness.h"

#include <gtest/gtest.h>

#include <sstream>

#include "coffre/crypto/random.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "coffre/storage/database.h"
#include "coffre/storage/relay_store.h"
#include "relay_factory.h"
#include "relay_service.h"
#include "relay_util.h"

namespace coffre::server::testing {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

RelayConfig TestRelayConfig(const std::filesystem::path& data_dir) {
  RelayConfig config;
  config.data_dir = data_dir;
  config.listen = "127.0.0.1:0";
  TransportLimits& limits = config.limits;
  limits.handshake_timeout = 3000ms;
  limits.http_request_timeout = 3000ms;
  limits.http_write_timeout = 3000ms;
  limits.websocket_idle_timeout = 20'000ms;
  limits.close_timeout = 500ms;
  limits.drain_timeout = 3000ms;
  limits.max_body_bytes = protocol::kMaxBlobChunk;
  limits.max_frame_bytes = protocol::kMaxFrameSize;
  limits.max_connections = 64;
  limits.io_threads = 2;
  limits.worker_threads = 3;
  config.rate_limits.requests_per_second_per_device = 1000;
  config.rate_limits.requests_burst_per_device = 1000;
  config.rate_limits.auth_attempts_per_minute_per_address = 600;
  config.rate_limits.auth_burst_per_address = 100;
  return config;
}

// --- TestRelay ---------------------------------------------------------------------------------

TestRelay::TestRelay(std::filesystem::path data_dir, const std::function<void(RelayConfig&)>& tweak)
    : config_(TestRelayConfig(data_dir)), operator_key_(crypto::RandomSecret(kOperatorKeyBytes)) {
  if (tweak) tweak(config_);
}

TestRelay::TestRelay(const TestRelay& other, const std::function<void(RelayConfig&)>& tweak)
    : config_(TestRelayConfig(other.config_.data_dir)),
      operator_key_(crypto::SecretBytes::CopyOf(other.operator_key_.span())) {
  if (tweak) tweak(config_);
}

TestRelay::~TestRelay() { Stop(); }

bool TestRelay::Start() {
  if (auto made = EnsureDataDirectory(config_.data_dir); !made) {
    ADD_FAILURE() << "data directory: " << made.error().context();
    return false;
  }
  auto identity = LoadOrCreateTlsIdentity(config_.data_dir);
  if (!identity) {
    ADD_FAILURE() << "TLS identity: " << identity.error().context();
    return false;
  }
  identity_ = identity->certificate_sha256;
  auto store = storage::OpenSqlCipherRelayStore(config_.data_dir / kRelayStoreFile, operator_key_);
  if (!store) {
    ADD_FAILURE() << "store: " << store.error().context();
    return false;
  }
  RelayServiceOptions options;
  options.data_dir = config_.data_dir;
  options.relay_identity = identity_;
  options.auth = config_.auth;
  options.quotas = config_.quotas;
  options.rate_limits = config_.rate_limits;
  options.clock = [this] { return SystemNowMs() + clock_offset_ms_.load(); };
  auto audit = AuditRecorder::Open(config_.data_dir, operator_key_, config_.audit, options.clock);
  if (!audit) {
    ADD_FAILURE() << "audit log: " << audit.error().context();
    return false;
  }
  audit_ = std::move(*audit);
  options.audit = audit_;
  auto service = NewRelayService(std::move(options), std::move(*store));
  if (!service) {
    ADD_FAILURE() << "service: " << service.error().context();
    return false;
  }
  service_ = std::move(*service);
  metrics_ = std::make_unique<MetricsRegistry>();
  TransportOptions transport_options;
  // Port 0 the first time; a restart takes the same port again, so that clients that
  // stored the relay's address find it back.
  transport_options.listen = ListenAddress{"127.0.0.1", port_};
  transport_options.certificate_pem = identity->certificate_pem;
  transport_options.private_key_pem = std::move(identity->private_key_pem);
  transport_options.limits = config_.limits;
  auto transport = Transport::New(std::move(transport_options), *service_, *metrics_);
  if (!transport) {
    ADD_FAILURE() << "transport: " << transport.error().context();
    return false;
  }
  transport_ = std::move(*transport);
  port_ = transport_->local_port();
  Transport* running = transport_.get();
  runner_ = std::thread([running] { running->Run(); });
  return true;
}

void TestRelay::BeginDrain() {
  if (transport_) transport_->Drain();
}

void TestRelay::Stop() {
  if (!transport_) return;
  transport_->Drain();
  if (runner_.joinable()) runner_.join();
  transport_.reset();
  service_.reset();
  audit_.reset();
  metrics_.reset();
}

bool TestRelay::EditStore(const std::function<void(storage::Database&)>& edit) {
  return EditDatabase(kRelayStoreFile, edit);
}

bool TestRelay::EditAuditStore(const std::function<void(storage::Database&)>& edit) {
  return EditDatabase(kAuditStoreFile, edit);
}

bool TestRelay::EditDatabase(std::string_view file,
                             const std::function<void(storage::Database&)>& edit) {
  if (transport_) {
    ADD_FAILURE() << "editing a relay database needs the relay stopped";
    return false;
  }
  auto database = storage::Database::OpenWithRawKey(config_.data_dir / file, operator_key_,
                                                    /*create_if_missing=*/false);
  if (!database) {
    ADD_FAILURE() << "store: " << database.error().context();
    return false;
  }
  edit(**database);
  return true;
}

std::string TestRelay::Enrol(const std::string& org_id, bool admin) {
  ::testing::internal::CaptureStdout();
  const int rc = RunAdminEnrol(config_, operator_key_, AdminEnrolOptions{org_id, admin});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0) << out;
  std::istringstream words(out);
  std::string word;
  std::string last;
  while (words >> word) last = word;
  return last;
}

std::string TestRelay::AdminStatus(int* rc) {
  ::testing::internal::CaptureStdout();
  *rc = RunAdminStatus(config_, operator_key_);
  return ::testing::internal::GetCapturedStdout();
}

std::string TestRelay::Metrics() const { return HttpsGet(port_, "/metrics").body; }

std::optional<double> TestRelay::MetricValue(std::string_view series) const {
  std::istringstream lines(Metrics());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

// --- Users and devices
// ----------------------------------------------------------------------------

namespace {
wire::DeviceCertificate Certify(const std::string& user_id, const crypto::SigningKey& identity,
                                std::uint32_t device_id, const crypto::SigningKey& device_key) {
  wire::DeviceCertificateBody body;
  body.set_user_id(user_id);
  body.set_device_id(device_id);
  body.set_device_signing_key(std::string(AsText(device_key.verify_key().bytes())));
  std::string signal_key(protocol::kSignalKeySize, '\x11');
  signal_key[0] = static_cast<char>(protocol::kSignalKeyType);
  body.set_signal_identity_key(signal_key);
  body.set_created_ms(static_cast<std::uint64_t>(SystemNowMs()));
  auto certificate = protocol::SignDeviceCertificate(body, identity);
  EXPECT_TRUE(certificate.has_value());
  return certificate ? *certificate : wire::DeviceCertificate();
}
}  // namespace

TestUser::TestUser(std::string user_id, std::vector<std::uint32_t> device_ids)
    : user_id_(std::move(user_id)), identity_(crypto::SigningKey::Generate()) {
  for (const std::uint32_t id : device_ids) AddDevice(id);
}

TestDevice& TestUser::AddDevice(std::uint32_t device_id) {
  auto device = std::make_unique<TestDevice>(
      TestDevice{device_id, crypto::SigningKey::Generate(), wire::DeviceCertificate()});
  device->certificate = Certify(user_id_, identity_, device_id, device->key);
  devices_.push_back(std::move(device));
  return *devices_.back();
}

TestDevice& TestUser::device(std::uint32_t device_id) {
  for (auto& device : devices_) {
    if (device->device_id == device_id) return *device;
  }
  ADD_FAILURE() << "no test device " << device_id;
  return *devices_.front();
}

wire::Request TestUser::Register(const std::string& code) const {
  wire::Request request;
  wire::Register* reg = request.mutable_register_();
  reg->set_enrolment_code(code);
  reg->set_user_id(user_id_);
  reg->set_user_identity_key(std::string(AsText(identity_.verify_key().bytes())));
  *reg->mutable_first_device() = devices_.front()->certificate;
  return request;
}

// --- RelayClient
// ----------------------------------------------------------------------------------

std::unique_ptr<RelayClient> RelayClient::Connect(std::uint16_t port) {
  std::string error;
  auto ws = WsClient::Connect(port, &error);
  if (!ws) {
    ADD_FAILURE() << "WebSocket connect: " << error;
    return nullptr;
  }
  return std::unique_ptr<RelayClient>(new RelayClient(std::move(ws)));
}

bool RelayClient::ReadOne(Millis timeout) {
  if (closed_) return false;
  WsClient::Event event = ws_->Read(timeout);
  switch (event.kind) {
    case WsClient::Event::Kind::kMessage: {
      auto frame = protocol::ParseRelayFrame(AsBytes(event.data));
      if (!frame) {
        ADD_FAILURE() << "the relay sent a frame that does not validate: "
                      << frame.error().context();
        return true;
      }
      if (frame->has_response()) responses_.push_back(frame->response());
      if (frame->has_push()) pushes_.push_back(frame->push());
      return true;
    }
    case WsClient::Event::Kind::kClosed:
      closed_ = true;
      close_code_ = event.close_code;
      return false;
    case WsClient::Event::Kind::kError:
      closed_ = true;
      return false;
    case WsClient::Event::Kind::kTimeout:
      return false;
  }
  return false;
}

bool RelayClient::SendRaw(std::string_view bytes) { return ws_->Send(bytes); }

std::optional<wire::Response> RelayClient::Call(wire::Request request, Millis timeout) {
  request.set_id(NextId());
  wire::Frame frame;
  frame.set_version(protocol::kProtocolVersion);
  *frame.mutable_request() = request;
  if (!SendRaw(frame.SerializeAsString())) return std::nullopt;
  return WaitResponse(request.id(), timeout);
}

std::optional<wire::Response> RelayClient::WaitResponse(std::uint64_t id, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    for (auto it = responses_.begin(); it != responses_.end(); ++it) {
      if (it->id() == id) {
        wire::Response response = std::move(*it);
        responses_.erase(it);
        return response;
      }
    }
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis(0) || !ReadOne(left)) {
      // One more look: the last read may have brought it.
      for (auto it = responses_.begin(); it != responses_.end(); ++it) {
        if (it->id() == id) {
          wire::Response response = std::move(*it);
          responses_.erase(it);
          return response;
        }
      }
      if (closed_ || Clock::now() >= deadline) return std::nullopt;
    }
  }
}

std::optional<wire::Push> RelayClient::WaitPush(wire::Push::KindCase kind, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    for (auto it = pushes_.begin(); it != pushes_.end(); ++it) {
      if (it->kind_case() == kind) {
        wire::Push push = std::move(*it);
        pushes_.erase(it);
        return push;
      }
    }
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis(0)) return std::nullopt;
    if (!ReadOne(left) && (closed_ || Clock::now() >= deadline)) {
      for (auto it = pushes_.begin(); it != pushes_.end(); ++it) {
        if (it->kind_case() == kind) {
          wire::Push push = std::move(*it);
          pushes_.erase(it);
          return push;
        }
      }
      return std::nullopt;
    }
  }
}

std::vector<wire::Push> RelayClient::DrainPushes(Millis window) {
  const auto deadline = Clock::now() + window;
  while (!closed_) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis(0)) break;
    ReadOne(left);
  }
  std::vector<wire::Push> pushes(pushes_.begin(), pushes_.end());
  pushes_.clear();
  return pushes;
}

bool RelayClient::WaitClosed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    if (left <= Millis(0)) return false;
    ReadOne(left);
  }
  return true;
}

std::string RelayClient::Login(const std::string& user_id, TestDevice& device,
                               const CertificateDigest& relay_identity,
                               std::optional<wire::Response>* response) {
  auto challenge = Call(ChallengeRequest());
  if (!challenge || !challenge->has_challenge()) {
    ADD_FAILURE() << "no challenge";
    return {};
  }
  // Pinning: the identity the relay names must be the certificate we expect.
  EXPECT_EQ(challenge->challenge().relay_identity(), std::string(AsText(relay_identity)));
  auto reply = Call(Authenticate(user_id, device, challenge->challenge().nonce(), relay_identity));
  if (response != nullptr) *response = reply;
  if (!reply || !reply->has_session()) return {};
  return reply->session().token();
}

std::string Onboard(TestRelay& relay, RelayClient& client, TestUser& user, bool admin) {
  auto registered = client.Call(user.Register(relay.Enrol("sdis13", admin)));
  EXPECT_TRUE(registered && registered->has_registered())
      << (registered && registered->has_error() ? registered->error().message() : "no response");
  const std::string token = client.Login(user.id(), user.device(1), relay.relay_identity());
  EXPECT_FALSE(token.empty()) << "login failed";
  return token;
}

// --- Builders ---------------------------------------------------------------------------------

wire::Request ChallengeRequest() {
  wire::Request request;
  request.mutable_challenge();
  return request;
}

wire::Request Authenticate(const std::string& user_id, const TestDevice& device,
                           std::string_view nonce, const CertificateDigest& relay_identity) {
  wire::Request request;
  wire::Authenticate* auth = request.mutable_authenticate();
  auth->set_user_id(user_id);
  auth->set_device_id(device.device_id);
  auth->set_nonce(std::string(nonce));
  auto signature = protocol::SignAuthChallenge(device.key, user_id, device.device_id,
                                               AsBytes(nonce), relay_identity);
  if (signature) auth->set_signature(std::string(AsText(*signature)));
  return request;
}

std::string RandomId() {
  const auto bytes = crypto::RandomBytes(protocol::kIdSize);
  return std::string(AsText(bytes));
}

wire::Request SendTo(const std::string& recipient, std::uint32_t device_id, std::string_view text,
                     std::string client_id) {
  wire::Request request;
  wire::OutgoingEnvelope* envelope = request.mutable_send_envelopes()->add_envelopes();
  envelope->set_recipient_user_id(recipient);
  envelope->set_recipient_device_id(device_id);
  envelope->set_client_id(client_id.empty() ? RandomId() : client_id);
  envelope->set_type(2);
  envelope->set_ciphertext(std::string(text));
  return request;
}

wire::Request FetchMailbox(std::uint64_t after, std::uint32_t limit) {
  wire::Request request;
  request.mutable_fetch_mailbox()->set_after_sequence(after);
  request.mutable_fetch_mailbox()->set_limit(limit);
  return request;
}

wire::Request Ack(const std::vector<std::uint64_t>& sequences) {
  wire::Request request;
  for (const std::uint64_t sequence : sequences) {
    request.mutable_ack_envelopes()->add_sequences(sequence);
  }
  return request;
}

wire::ChainStatement SignStatement(wire::ChainStatementBody body, const crypto::SigningKey& key) {
  auto statement = protocol::SignChainStatement(body, key);
  EXPECT_TRUE(statement.has_value());
  return statement ? *statement : wire::ChainStatement();
}

wire::ChainStatementBody StatementBody(std::string_view team_id, std::uint64_t sequence,
                                       const protocol::Hash* previous, const std::string& signer,
                                       std::uint32_t signer_device) {
  wire::ChainStatementBody body;
  body.set_team_id(std::string(team_id));
  body.set_sequence(sequence);
  if (previous != nullptr) body.set_previous_hash(std::string(AsText(*previous)));
  body.set_signer_user_id(signer);
  body.set_signer_device_id(signer_device);
  body.set_created_ms(static_cast<std::uint64_t>(SystemNowMs()));
  return body;
}

wire::Request Append(const wire::ChainStatement& statement) {
  wire::Request request;
  *request.mutable_append_chain_statement()->mutable_statement() = statement;
  return request;
}

std::optional<wire::Response> AppendChange(
    RelayClient& client, TestUser& admin, TeamSetup& team,
    const std::function<void(wire::ChainStatementBody&)>& change) {
  wire::ChainStatementBody body =
      StatementBody(team.team_id, team.sequence + 1, &team.head, admin.id(), 1);
  change(body);
  const wire::ChainStatement statement = SignStatement(body, admin.device(1).key);
  auto response = client.Call(Append(statement));
  if (response && response->has_chain_appended()) {
    team.sequence = response->chain_appended().sequence();
    team.head = protocol::StatementHash(statement);
  }
  return response;
}

TeamSetup CreateTeam(RelayClient& admin_client, TestUser& admin,
                     const std::vector<std::pair<std::string, wire::Role>>& members) {
  TeamSetup team;
  team.team_id = RandomId();
  wire::ChainStatementBody genesis = StatementBody(team.team_id, 0, nullptr, admin.id(), 1);
  genesis.mutable_create();
  const wire::ChainStatement statement = SignStatement(genesis, admin.device(1).key);
  auto created = admin_client.Call(Append(statement));
  EXPECT_TRUE(created && created->has_chain_appended())
      << (created && created->has_error() ? created->error().message() : "no response");
  team.head = protocol::StatementHash(statement);
  team.sequence = 0;
  for (const auto& [user, role] : members) {
    auto added = AppendChange(admin_client, admin, team, [&](wire::ChainStatementBody& body) {
      body.mutable_add_member()->set_user_id(user);
      body.mutable_add_member()->set_role(role);
    });
    EXPECT_TRUE(added && added->has_chain_appended())
        << (added && added->has_error() ? added->error().message() : "no response");
  }
  return team;
}

wire::ItemManifestBody ManifestBody(std::string_view team_id, std::string_view item_id,
                                    std::uint64_t version, std::uint64_t parent,
                                    const std::string& author, std::uint32_t device) {
  wire::ItemManifestBody body;
  body.set_team_id(std::string(team_id));
  body.set_item_id(std::string(item_id));
  body.set_version(version);
  body.set_parent_version(parent);
  body.set_kind("note");
  body.set_key_generation(1);
  body.set_wrapped_key(std::string(72, '\x42'));
  body.set_encrypted_metadata("sealed metadata");
  body.set_author_user_id(author);
  body.set_author_device_id(device);
  body.set_created_ms(static_cast<std::uint64_t>(SystemNowMs()));
  return body;
}

wire::Request PutItem(const wire::ItemManifestBody& body, const crypto::SigningKey& key) {
  wire::Request request;
  auto manifest = protocol::SignItemManifest(body, key);
  EXPECT_TRUE(manifest.has_value());
  if (manifest) *request.mutable_put_item_version()->mutable_manifest() = *manifest;
  return request;
}

std::string Hex(std::string_view bytes) { return ToHex(AsBytes(bytes)); }

HttpResponse BlobPut(std::uint16_t port, const std::string& token, std::string_view team_id,
                     std::string_view blob_id, std::uint64_t offset, std::string_view data) {
  HttpRequest request;
  request.method = "PUT";
  request.target =
      "/v1/blobs/" + Hex(team_id) + "/" + Hex(blob_id) + "?offset=" + std::to_string(offset);
  request.body = std::string(data);
  request.headers.emplace_back("Authorization", "Bearer " + Hex(token));
  request.headers.emplace_back("Content-Type", "application/octet-stream");
  return HttpsRequest(port, request);
}

HttpResponse BlobGet(std::uint16_t port, const std::string& token, std::string_view team_id,
                     std::string_view blob_id, std::optional<std::string> range,
                     std::string method) {
  HttpRequest request;
  request.method = std::move(method);
  request.target = "/v1/blobs/" + Hex(team_id) + "/" + Hex(blob_id);
  request.headers.emplace_back("Authorization", "Bearer " + Hex(token));
  if (range) request.headers.emplace_back("Range", *range);
  return HttpsRequest(port, request);
}

wire::ErrorCode ErrorOf(const std::optional<wire::Response>& response) {
  if (!response) return wire::ERROR_CODE_UNSPECIFIED;
  return response->has_error() ? response->error().code() : wire::ERROR_CODE_UNSPECIFIED;
}

}  // namespace coffre::server::testing
