// RelayConnection against the real relay in-process (tests/server/relay_harness.h: real TLS,
// port 0) and against a scripted stand-in that misbehaves on purpose (malformed, unexpected
// and oversized messages), with OpenSSL and POSIX sockets only.
#include "coffre/client/relay_connection.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "coffre/protocol/limits.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::client {
namespace {

namespace harness = coffre::server::testing;
namespace wire = coffre::wire::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ByteView View(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string Text(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

bool Mentions(const Error& error, std::string_view words) {
  return error.context().find(words) != std::string_view::npos;
}

wire::Request ListTeams() {
  wire::Request request;
  request.mutable_list_teams();
  return request;
}

// --- Against the real relay ---------------------------------------------------------------

class RelayConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(const std::function<void(server::RelayConfig&)>& tweak = {}) {
    relay_.reset();
    relay_ = std::make_unique<harness::TestRelay>(dir_.path() / std::to_string(++starts_), tweak);
    ASSERT_TRUE(relay_->Start());
  }

  ConnectOptions Options(std::optional<CertificateFingerprint> pinned) const {
    ConnectOptions options;
    options.address.host = "127.0.0.1";
    options.address.port = relay_->port();
    options.pinned = pinned;
    options.timeout = 5s;
    return options;
  }

  std::unique_ptr<RelayConnection> Connect() {
    auto connection = RelayConnection::Connect(Options(relay_->relay_identity()));
    EXPECT_TRUE(connection) << connection.error().context();
    return connection ? std::move(*connection) : nullptr;
  }

  // Registers `user` (device 1) with a fresh enrolment code and authenticates that device.
  void Onboard(RelayConnection& connection, harness::TestUser& user) {
    auto registered = connection.Call(user.Register(relay_->Enrol("sdis13")));
    ASSERT_TRUE(registered) << registered.error().context();
    ASSERT_TRUE(registered->has_registered()) << registered->error().message();
    auto session = connection.Authenticate(user.id(), 1, user.device(1).key);
    ASSERT_TRUE(session) << session.error().context();
    EXPECT_GT(session->expires_ms, 0u);
  }

  // A team created by `admin` (device 1) over `connection`; returns its id.
  static std::string CreateTeam(RelayConnection& connection, harness::TestUser& admin) {
    const std::string team_id = harness::RandomId();
    wire::ChainStatementBody genesis = harness::StatementBody(team_id, 0, nullptr, admin.id(), 1);
    genesis.mutable_create();
    auto created =
        connection.Call(harness::Append(harness::SignStatement(genesis, admin.device(1).key)));
    EXPECT_TRUE(created && created->has_chain_appended());
    return team_id;
  }

  static wire::Request CreateBlob(const std::string& team_id, const std::string& blob_id,
                                  std::uint64_t size) {
    wire::Request request;
    request.mutable_create_blob()->set_team_id(team_id);
    request.mutable_create_blob()->set_blob_id(blob_id);
    request.mutable_create_blob()->set_size(size);
    return request;
  }

  double Metric(std::string_view series) const { return relay_->MetricValue(series).value_or(0); }

  server::testing::TempDir dir_;
  int starts_ = 0;
  std::unique_ptr<harness::TestRelay> relay_;
  harness::TestUser alice_{"alice"};
  harness::TestUser bob_{"bob"};
};

TEST_F(RelayConnectionTest, ConnectsWithTheRightPin) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(connection->relay_identity(), relay_->relay_identity());
  EXPECT_TRUE(connection->is_open());
  wire::Request challenge;
  challenge.mutable_challenge();
  auto response = connection->Call(challenge);
  ASSERT_TRUE(response) << response.error().context();
  ASSERT_TRUE(response->has_challenge());
  EXPECT_EQ(response->challenge().relay_identity(),
            std::string(relay_->relay_identity().begin(), relay_->relay_identity().end()));
}

TEST_F(RelayConnectionTest, WrongPinIsRefusedBeforeAnythingIsSent) {
  const double websockets = Metric("coffre_relay_websockets_total");
  const double tls_failures = Metric("coffre_relay_tls_handshake_failures_total");
  CertificateFingerprint wrong = relay_->relay_identity();
  wrong[7] ^= 0x01;
  auto connection = RelayConnection::Connect(Options(wrong));
  ASSERT_FALSE(connection);
  EXPECT_EQ(connection.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_TRUE(Mentions(connection.error(), "pinned fingerprint")) << connection.error().context();
  // The relay saw a TLS handshake fail, and no upgrade request.
  const auto deadline = Clock::now() + 3s;
  while (Metric("coffre_relay_tls_handshake_failures_total") < tls_failures + 1 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(Metric("coffre_relay_tls_handshake_failures_total"), tls_failures + 1);
  EXPECT_EQ(Metric("coffre_relay_websockets_total"), websockets);
}

TEST_F(RelayConnectionTest, WithoutAPinReportsTheCertificateTheRelayPresents) {
  auto connection = RelayConnection::Connect(Options(std::nullopt));
  ASSERT_TRUE(connection) << connection.error().context();
  EXPECT_EQ((*connection)->relay_identity(), relay_->relay_identity());
}

TEST_F(RelayConnectionTest, UnreachableRelayFailsWithinTheTimeout) {
  ConnectOptions options = Options(relay_->relay_identity());
  relay_->Stop();
  options.timeout = 2s;
  const auto start = Clock::now();
  auto connection = RelayConnection::Connect(options);
  ASSERT_FALSE(connection);
  EXPECT_EQ(connection.error().code(), ErrorCode::kIo);
  EXPECT_LT(Clock::now() - start, 3s);
}

TEST_F(RelayConnectionTest, InvalidOptionsAreRefused) {
  ConnectOptions options = Options(std::nullopt);
  options.address.host.clear();
  EXPECT_EQ(RelayConnection::Connect(options).error().code(), ErrorCode::kInvalidArgument);
  options = Options(std::nullopt);
  options.timeout = 0ms;
  EXPECT_EQ(RelayConnection::Connect(options).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayConnectionTest, RegistersAndAuthenticatesADevice) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  // Before authentication the relay refuses session-only methods.
  auto refused = connection->Call(ListTeams());
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->error().code(), wire::ERROR_CODE_UNAUTHENTICATED);
  Onboard(*connection, alice_);
  auto teams = connection->Call(ListTeams());
  ASSERT_TRUE(teams) << teams.error().context();
  EXPECT_TRUE(teams->has_teams());
}

TEST_F(RelayConnectionTest, AuthenticationWithAnotherDeviceKeyIsRefused) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto registered = connection->Call(alice_.Register(relay_->Enrol("sdis13")));
  ASSERT_TRUE(registered && registered->has_registered());
  const crypto::SigningKey stranger = crypto::SigningKey::Generate();
  auto session = connection->Authenticate(alice_.id(), 1, stranger);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().code(), ErrorCode::kAuthenticationFailed);
  // Still usable, still unauthenticated.
  auto teams = connection->Call(ListTeams());
  ASSERT_TRUE(teams);
  EXPECT_EQ(teams->error().code(), wire::ERROR_CODE_UNAUTHENTICATED);
}

TEST_F(RelayConnectionTest, InvalidRequestIsRefusedWithoutBeingSent) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  wire::Request request;
  request.mutable_fetch_mailbox()->set_limit(protocol::kMaxFetchLimit + 1);
  auto response = connection->Call(request);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(connection->is_open());
  EXPECT_FALSE(connection->Call(wire::Request()));  // no method
  EXPECT_EQ(connection->Call(ListTeams(), 0ms).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(connection->Call(ListTeams()));
}

TEST_F(RelayConnectionTest, EnvelopeFromAnotherDeviceArrivesAsAPushWhileIdle) {
  auto alice = Connect();
  ASSERT_NE(alice, nullptr);
  Onboard(*alice, alice_);
  auto bob = harness::RelayClient::Connect(relay_->port());
  ASSERT_NE(bob, nullptr);
  harness::Onboard(*relay_, *bob, bob_);

  auto nothing = alice->NextPush(100ms);
  ASSERT_TRUE(nothing) << nothing.error().context();
  EXPECT_FALSE(nothing->has_value());

  auto sent = bob->Call(harness::SendTo("alice", 1, "sealed hello"));
  ASSERT_TRUE(sent && sent->has_send_result());
  auto push = alice->NextPush(5s);
  ASSERT_TRUE(push) << push.error().context();
  ASSERT_TRUE(push->has_value());
  ASSERT_TRUE((*push)->has_envelopes());
  ASSERT_EQ((*push)->envelopes().envelopes_size(), 1);
  EXPECT_EQ((*push)->envelopes().envelopes(0).ciphertext(), "sealed hello");
  EXPECT_EQ((*push)->envelopes().envelopes(0).sender_user_id(), "bob");
}

TEST_F(RelayConnectionTest, PushArrivingDuringACallIsKeptForNextPush) {
  auto alice = Connect();
  ASSERT_NE(alice, nullptr);
  Onboard(*alice, alice_);
  auto bob = harness::RelayClient::Connect(relay_->port());
  ASSERT_NE(bob, nullptr);
  harness::Onboard(*relay_, *bob, bob_);

  ASSERT_TRUE(bob->Call(harness::SendTo("alice", 1, "while busy")));
  // The push is on alice's socket before her request, so the Call reads it first.
  std::this_thread::sleep_for(300ms);
  auto teams = alice->Call(ListTeams());
  ASSERT_TRUE(teams) << teams.error().context();
  EXPECT_TRUE(teams->has_teams());
  auto push = alice->NextPush(0ms);
  ASSERT_TRUE(push) << push.error().context();
  ASSERT_TRUE(push->has_value());
  ASSERT_TRUE((*push)->has_envelopes());
  EXPECT_EQ((*push)->envelopes().envelopes(0).ciphertext(), "while busy");
}

TEST_F(RelayConnectionTest, RelayStoppedMidSessionGivesAClearErrorNotAHang) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  const auto start = Clock::now();
  std::thread stopper([this] {
    std::this_thread::sleep_for(300ms);
    relay_->Stop();
  });
  // The relay says it is going away, then closes; NextPush reports the close as an error.
  bool going_away = false;
  std::optional<Error> failure;
  while (!failure && Clock::now() - start < 10s) {
    auto push = connection->NextPush(10s);
    if (!push) {
      failure = push.error();
    } else if (push->has_value() && (*push)->has_going_away()) {
      going_away = true;
    }
  }
  stopper.join();
  EXPECT_LT(Clock::now() - start, 6s);
  ASSERT_TRUE(failure.has_value());
  EXPECT_EQ(failure->code(), ErrorCode::kIo);
  EXPECT_TRUE(Mentions(*failure, "relay")) << failure->context();
  EXPECT_TRUE(going_away);
  EXPECT_FALSE(connection->is_open());
  // Later calls fail at once, with a sentence.
  const auto before_call = Clock::now();
  auto call = connection->Call(ListTeams());
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code(), ErrorCode::kIo);
  EXPECT_LT(Clock::now() - before_call, 1s);
  auto put = connection->PutBlobChunk(View(harness::RandomId()), View(harness::RandomId()), 0,
                                      View("x"), 2s);
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code(), ErrorCode::kIo);
}

TEST_F(RelayConnectionTest, CallToAStoppedRelayFailsWithinItsTimeout) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  relay_->Stop();
  const auto start = Clock::now();
  auto call = connection->Call(ListTeams(), 3s);
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code(), ErrorCode::kIo);
  EXPECT_LT(Clock::now() - start, 4s);
}

TEST_F(RelayConnectionTest, CloseEndsTheSession) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  connection->Close();
  EXPECT_FALSE(connection->is_open());
  auto call = connection->Call(ListTeams());
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code(), ErrorCode::kIo);
  connection->Close();  // idempotent
}

// --- Blobs ---

TEST_F(RelayConnectionTest, UploadsTwoChunksAndReadsARange) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  const std::string team = CreateTeam(*connection, alice_);
  const std::string blob = harness::RandomId();
  auto created = connection->Call(CreateBlob(team, blob, 10));
  ASSERT_TRUE(created && created->has_blob());

  auto first = connection->PutBlobChunk(View(team), View(blob), 0, View("01234"));
  ASSERT_TRUE(first) << first.error().context();
  auto second = connection->PutBlobChunk(View(team), View(blob), 5, View("56789"));
  ASSERT_TRUE(second) << second.error().context();

  wire::Request status;
  status.mutable_blob_status()->set_team_id(team);
  status.mutable_blob_status()->set_blob_id(blob);
  auto info = connection->Call(status);
  ASSERT_TRUE(info && info->has_blob());
  EXPECT_TRUE(info->blob().complete());

  auto range = connection->GetBlobRange(View(team), View(blob), 2, 6);
  ASSERT_TRUE(range) << range.error().context();
  EXPECT_EQ(Text(*range), "23456");
  // A range running past the end is clipped by the relay.
  auto tail = connection->GetBlobRange(View(team), View(blob), 8, 100);
  ASSERT_TRUE(tail) << tail.error().context();
  EXPECT_EQ(Text(*tail), "89");
  auto past = connection->GetBlobRange(View(team), View(blob), 10, 12);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayConnectionTest, BlobErrorsMapToClearErrors) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  const std::string team = CreateTeam(*connection, alice_);
  const std::string blob = harness::RandomId();
  ASSERT_TRUE(connection->Call(CreateBlob(team, blob, 4)));

  auto oversized = connection->PutBlobChunk(View(team), View(blob), 0, View("12345"));
  ASSERT_FALSE(oversized);
  EXPECT_EQ(oversized.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(oversized.error(), "declared size")) << oversized.error().context();

  auto misplaced = connection->PutBlobChunk(View(team), View(blob), 2, View("34"));
  ASSERT_FALSE(misplaced);
  EXPECT_EQ(misplaced.error().code(), ErrorCode::kConflict);

  auto incomplete = connection->GetBlobRange(View(team), View(blob), 0, 1);
  ASSERT_FALSE(incomplete);
  EXPECT_EQ(incomplete.error().code(), ErrorCode::kConflict);

  auto unknown = connection->GetBlobRange(View(team), View(harness::RandomId()), 0, 1);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);

  // Bob is not a member of alice's team.
  auto bob = Connect();
  ASSERT_NE(bob, nullptr);
  Onboard(*bob, bob_);
  auto forbidden = bob->PutBlobChunk(View(team), View(blob), 0, View("1234"));
  ASSERT_FALSE(forbidden);
  EXPECT_EQ(forbidden.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_TRUE(Mentions(forbidden.error(), "member")) << forbidden.error().context();

  // The upload still completes after all of that.
  EXPECT_TRUE(connection->PutBlobChunk(View(team), View(blob), 0, View("1234")));
}

TEST_F(RelayConnectionTest, QuotaRefusalMapsToResourceExhausted) {
  Start([](server::RelayConfig& config) {
    config.quotas.max_blob_bytes = 1000;
    config.quotas.max_team_storage_bytes = 100;
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  const std::string team = CreateTeam(*connection, alice_);
  auto refused = connection->Call(CreateBlob(team, harness::RandomId(), 200));
  ASSERT_TRUE(refused);
  ASSERT_TRUE(refused->has_error());
  EXPECT_EQ(refused->error().code(), wire::ERROR_CODE_QUOTA_EXCEEDED);
  EXPECT_EQ(ErrorFromWire(refused->error().code()).code(), ErrorCode::kResourceExhausted);
}

TEST_F(RelayConnectionTest, BlobCallsNeedASessionAndValidIds) {
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  const std::string id = harness::RandomId();
  auto put = connection->PutBlobChunk(View(id), View(id), 0, View("x"));
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(put.error(), "authenticate")) << put.error().context();
  Onboard(*connection, alice_);
  EXPECT_EQ(connection->PutBlobChunk(View("short"), View(id), 0, View("x")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(connection->PutBlobChunk(View(id), View(id), 0, View("")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(connection->GetBlobRange(View(id), View(id), 5, 4).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(RelayConnectionTest, BlobConnectionClosedByTheRelayWhileIdleIsReopened) {
  Start([](server::RelayConfig& config) { config.limits.http_request_timeout = 300ms; });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  Onboard(*connection, alice_);
  const std::string team = CreateTeam(*connection, alice_);
  const std::string blob = harness::RandomId();
  ASSERT_TRUE(connection->Call(CreateBlob(team, blob, 6)));
  ASSERT_TRUE(connection->PutBlobChunk(View(team), View(blob), 0, View("abc")));
  std::this_thread::sleep_for(800ms);  // the relay closes the idle keep-alive connection
  auto second = connection->PutBlobChunk(View(team), View(blob), 3, View("def"));
  ASSERT_TRUE(second) << second.error().context();
  auto all = connection->GetBlobRange(View(team), View(blob), 0, 5);
  ASSERT_TRUE(all) << all.error().context();
  EXPECT_EQ(Text(*all), "abcdef");
}

TEST(ErrorFromWireTest, EveryCodeHasASentenceAndTheDocumentedClass) {
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_SIZE_MISMATCH).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_FORBIDDEN).code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_NOT_FOUND).code(), ErrorCode::kNotFound);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_QUOTA_EXCEEDED).code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_CONFLICT).code(), ErrorCode::kConflict);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_UNAVAILABLE).code(), ErrorCode::kIo);
  EXPECT_EQ(ErrorFromWire(wire::ERROR_CODE_UNSPECIFIED).code(), ErrorCode::kCorrupt);
  for (int code = wire::ErrorCode_MIN; code <= wire::ErrorCode_MAX; ++code) {
    EXPECT_FALSE(ErrorFromWire(static_cast<wire::ErrorCode>(code)).context().empty()) << code;
  }
}

// --- Against a misbehaving relay ----------------------------------------------------------

// The server side of one scripted connection: TLS 1.3 and just enough of RFC 6455 to read
// the client's (masked) messages and send whatever a test wants.
class FakeSession {
 public:
  FakeSession(SSL* ssl, std::string pending) : ssl_(ssl), pending_(std::move(pending)) {}

  // The payload of the next data message; nullopt on a close frame (answered) or an error.
  std::optional<std::string> ReadMessage() {
    while (true) {
      std::string header;
      if (!ReadExact(2, header)) return std::nullopt;
      const auto opcode = static_cast<std::uint8_t>(header[0] & 0x0f);
      const bool masked = (header[1] & 0x80) != 0;
      std::uint64_t length = static_cast<std::uint8_t>(header[1] & 0x7f);
      std::string extended;
      if (length == 126 || length == 127) {
        const std::size_t size = length == 126 ? 2 : 8;
        if (!ReadExact(size, extended)) return std::nullopt;
        length = 0;
        for (const char c : extended) length = length << 8 | static_cast<std::uint8_t>(c);
      }
      std::string mask;
      if (masked && !ReadExact(4, mask)) return std::nullopt;
      std::string payload;
      if (length > protocol::kMaxFrameSize ||
          !ReadExact(static_cast<std::size_t>(length), payload)) {
        return std::nullopt;
      }
      for (std::size_t i = 0; masked && i < payload.size(); ++i) payload[i] ^= mask[i % 4];
      if (opcode == 0x8) {
        if (payload.size() >= 2) {
          close_code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(payload[0]) << 8 |
                                                  static_cast<std::uint8_t>(payload[1]));
        }
        Send(0x8, payload.substr(0, 2));
        return std::nullopt;
      }
      if (opcode == 0x1 || opcode == 0x2) return payload;
    }
  }

  std::optional<wire::Request> ReadRequest() {
    const auto message = ReadMessage();
    wire::Frame frame;
    if (!message || !frame.ParseFromString(*message) || !frame.has_request()) return std::nullopt;
    return frame.request();
  }

  // One unmasked frame with FIN set; `claimed` replaces the length in the header (the
  // payload sent is still `payload`).
  bool Send(std::uint8_t opcode, std::string_view payload,
            std::optional<std::uint64_t> claimed = std::nullopt) {
    const std::uint64_t length = claimed.value_or(payload.size());
    std::string frame;
    frame += static_cast<char>(0x80 | opcode);
    if (length < 126) {
      frame += static_cast<char>(length);
    } else if (length <= 0xFFFF) {
      frame += static_cast<char>(126);
      frame += static_cast<char>(length >> 8);
      frame += static_cast<char>(length & 0xFF);
    } else {
      frame += static_cast<char>(127);
      for (int shift = 56; shift >= 0; shift -= 8) {
        frame += static_cast<char>((length >> shift) & 0xFF);
      }
    }
    frame.append(payload);
    return SSL_write(ssl_, frame.data(), static_cast<int>(frame.size())) ==
           static_cast<int>(frame.size());
  }

  bool SendFrame(const wire::Frame& frame) { return Send(0x2, frame.SerializeAsString()); }

  bool SendResponse(wire::Response response) {
    wire::Frame frame;
    frame.set_version(protocol::kProtocolVersion);
    *frame.mutable_response() = std::move(response);
    return SendFrame(frame);
  }

  static wire::Response Ok(std::uint64_t id) {
    wire::Response response;
    response.set_id(id);
    response.mutable_ok();
    return response;
  }

  std::uint16_t close_code = 0;

 private:
  bool ReadExact(std::size_t size, std::string& out) {
    while (pending_.size() < size) {
      char chunk[4096];
      const int n = SSL_read(ssl_, chunk, sizeof(chunk));
      if (n <= 0) return false;
      pending_.append(chunk, static_cast<std::size_t>(n));
    }
    out = pending_.substr(0, size);
    pending_.erase(0, size);
    return true;
  }

  SSL* ssl_;
  std::string pending_;
};

// Accepts one connection on 127.0.0.1 (port 0), with a certificate of its own, and runs a
// script over it on a thread. Every socket wait is bounded (5 s).
class FakeRelay {
 public:
  using Script = std::function<void(FakeSession&)>;

  explicit FakeRelay(const std::filesystem::path& dir) {
    auto identity = server::LoadOrCreateTlsIdentity(dir);
    if (!identity) return;
    identity_ = identity->certificate_sha256;
    context_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(context_, TLS1_3_VERSION);
    BIO* cert_bio = BIO_new_mem_buf(identity->certificate_pem.data(),
                                    static_cast<int>(identity->certificate_pem.size()));
    X509* certificate = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
    BIO_free(cert_bio);
    BIO* key_bio = BIO_new_mem_buf(identity->private_key_pem.data(),
                                   static_cast<int>(identity->private_key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
    BIO_free(key_bio);
    const bool loaded = certificate != nullptr && key != nullptr &&
                        SSL_CTX_use_certificate(context_, certificate) == 1 &&
                        SSL_CTX_use_PrivateKey(context_, key) == 1;
    X509_free(certificate);
    EVP_PKEY_free(key);
    if (!loaded) return;
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listener_, 4) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      return;
    }
    port_ = ntohs(address.sin_port);
  }

  ~FakeRelay() {
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) close(listener_);
    SSL_CTX_free(context_);
  }

  FakeRelay(const FakeRelay&) = delete;
  FakeRelay& operator=(const FakeRelay&) = delete;

  bool ready() const { return port_ != 0; }
  std::uint16_t port() const { return port_; }
  const server::CertificateDigest& identity() const { return identity_; }
  bool tls_failed() const { return tls_failed_; }
  std::size_t upgrade_bytes() const { return upgrade_bytes_; }
  std::uint16_t close_code() const { return close_code_; }

  void Serve(Script script) {
    thread_ = std::thread([this, script = std::move(script)] { Run(script); });
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  ConnectOptions Options() const {
    ConnectOptions options;
    options.address.host = "127.0.0.1";
    options.address.port = port_;
    options.pinned = identity_;
    options.timeout = 3s;
    return options;
  }

 private:
  void Run(const Script& script) {
    // OpenSSL writes to the socket with write(2): a client that has gone away would raise
    // SIGPIPE. Blocked on this thread only, the write fails with EPIPE instead.
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    pollfd waiting{listener_, POLLIN, 0};
    if (poll(&waiting, 1, 5000) != 1) return;
    const int fd = accept(listener_, nullptr, nullptr);
    if (fd < 0) return;
    timeval limit{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    SSL* ssl = SSL_new(context_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      Upgrade(ssl, script);
      SSL_shutdown(ssl);  // close_notify, as a TLS peer ends a connection
    } else {
      tls_failed_ = true;
    }
    SSL_free(ssl);
    close(fd);
  }

  void Upgrade(SSL* ssl, const Script& script) {
    std::string received;
    std::size_t end = std::string::npos;
    while ((end = received.find("\r\n\r\n")) == std::string::npos && received.size() < 16384) {
      char chunk[4096];
      const int n = SSL_read(ssl, chunk, sizeof(chunk));
      if (n <= 0) break;
      received.append(chunk, static_cast<std::size_t>(n));
    }
    upgrade_bytes_ = received.size();
    if (end == std::string::npos) return;
    const std::string head = received.substr(0, end);
    const std::string rest = received.substr(end + 4);
    const std::string name = "Sec-WebSocket-Key: ";
    const std::size_t at = head.find(name);
    if (at == std::string::npos) return;
    const std::size_t line_end = head.find("\r\n", at);
    std::string key =
        head.substr(at + name.size(), line_end == std::string::npos ? std::string::npos
                                                                    : line_end - at - name.size());
    key += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 §1.3
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_length = 0;
    EVP_Digest(key.data(), key.size(), digest, &digest_length, EVP_sha1(), nullptr);
    unsigned char accept[64];
    const int accept_length = EVP_EncodeBlock(accept, digest, static_cast<int>(digest_length));
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: ";
    response.append(reinterpret_cast<const char*>(accept), static_cast<std::size_t>(accept_length));
    response += "\r\n\r\n";
    if (SSL_write(ssl, response.data(), static_cast<int>(response.size())) <= 0) return;
    FakeSession session(ssl, rest);
    script(session);
    close_code_ = session.close_code;
  }

  server::CertificateDigest identity_{};
  SSL_CTX* context_ = nullptr;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> tls_failed_{false};
  std::atomic<std::size_t> upgrade_bytes_{0};
  std::atomic<std::uint16_t> close_code_{0};
  std::thread thread_;
};

class MisbehavingRelayTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fake_.ready()); }

  // Connects, runs `client` and closes; the fake runs `script` meanwhile.
  std::unique_ptr<RelayConnection> Connect() {
    auto connection = RelayConnection::Connect(fake_.Options());
    EXPECT_TRUE(connection) << connection.error().context();
    return connection ? std::move(*connection) : nullptr;
  }

  // Waits for the client's next message, then lingers until the client goes away, so the
  // client's error comes from what was sent and not from a closed socket.
  static void Linger(FakeSession& session) {
    while (session.ReadMessage()) {
    }
  }

  server::testing::TempDir dir_;
  FakeRelay fake_{dir_.path()};
};

TEST_F(MisbehavingRelayTest, WrongPinSendsNothingBeyondTheHandshake) {
  fake_.Serve([](FakeSession&) {});
  ConnectOptions options = fake_.Options();
  (*options.pinned)[0] ^= 0x80;
  auto connection = RelayConnection::Connect(options);
  ASSERT_FALSE(connection);
  EXPECT_EQ(connection.error().code(), ErrorCode::kUntrustedIdentity);
  fake_.Join();
  EXPECT_TRUE(fake_.tls_failed());
  EXPECT_EQ(fake_.upgrade_bytes(), 0u);
}

TEST_F(MisbehavingRelayTest, MalformedFrameClosesTheConnectionWithAClearError) {
  fake_.Serve([](FakeSession& session) {
    ASSERT_TRUE(session.ReadRequest());
    session.Send(0x2, "\xff\xff\xff not a frame");
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto response = connection->Call(ListTeams());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Mentions(response.error(), "fails protocol validation"))
      << response.error().context();
  EXPECT_FALSE(connection->is_open());
  EXPECT_EQ(connection->Call(ListTeams()).error().code(), ErrorCode::kCorrupt);
}

TEST_F(MisbehavingRelayTest, ResponseToNoRequestInFlightIsRefused) {
  fake_.Serve([](FakeSession& session) {
    const auto request = session.ReadRequest();
    ASSERT_TRUE(request);
    session.SendResponse(FakeSession::Ok(request->id() + 7));
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto response = connection->Call(ListTeams());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Mentions(response.error(), "no request in flight")) << response.error().context();
}

TEST_F(MisbehavingRelayTest, UnsolicitedResponseWhileIdleIsRefused) {
  fake_.Serve([](FakeSession& session) {
    session.SendResponse(FakeSession::Ok(1));
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto push = connection->NextPush(2s);
  ASSERT_FALSE(push);
  EXPECT_EQ(push.error().code(), ErrorCode::kCorrupt);
}

TEST_F(MisbehavingRelayTest, OversizedMessageIsRefusedBeforeItIsRead) {
  fake_.Serve([](FakeSession& session) {
    ASSERT_TRUE(session.ReadRequest());
    session.Send(0x2, "", protocol::kMaxFrameSize + 1);
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto response = connection->Call(ListTeams());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Mentions(response.error(), "frame size limit")) << response.error().context();
}

TEST_F(MisbehavingRelayTest, TextMessageIsRefused) {
  fake_.Serve([](FakeSession& session) {
    ASSERT_TRUE(session.ReadRequest());
    session.Send(0x1, "{\"hello\":1}");
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto response = connection->Call(ListTeams());
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kCorrupt);
}

TEST_F(MisbehavingRelayTest, ChallengeNamingAnotherCertificateIsNotSigned) {
  std::atomic<bool> authenticate_sent{false};
  fake_.Serve([&](FakeSession& session) {
    const auto request = session.ReadRequest();
    ASSERT_TRUE(request && request->has_challenge());
    wire::Response response;
    response.set_id(request->id());
    response.mutable_challenge()->set_nonce(std::string(protocol::kNonceSize, '\x01'));
    response.mutable_challenge()->set_relay_identity(
        std::string(protocol::kRelayIdentitySize, '\x42'));
    session.SendResponse(response);
    while (const auto next = session.ReadRequest()) {
      if (next->has_authenticate()) authenticate_sent = true;
    }
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  const crypto::SigningKey key = crypto::SigningKey::Generate();
  auto session = connection->Authenticate("alice", 1, key);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().code(), ErrorCode::kUntrustedIdentity);
  connection->Close();
  fake_.Join();
  EXPECT_FALSE(authenticate_sent);
}

TEST_F(MisbehavingRelayTest, PushSentBeforeTheResponseIsKept) {
  fake_.Serve([](FakeSession& session) {
    const auto request = session.ReadRequest();
    ASSERT_TRUE(request);
    wire::Frame push;
    push.set_version(protocol::kProtocolVersion);
    push.mutable_push()->mutable_pre_keys_low()->set_remaining(3);
    session.SendFrame(push);
    session.SendResponse(FakeSession::Ok(request->id()));
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto response = connection->Call(ListTeams());
  ASSERT_TRUE(response) << response.error().context();
  EXPECT_TRUE(response->has_ok());
  auto push = connection->NextPush(0ms);
  ASSERT_TRUE(push) << push.error().context();
  ASSERT_TRUE(push->has_value());
  EXPECT_EQ((*push)->pre_keys_low().remaining(), 3u);
  auto none = connection->NextPush(0ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_F(MisbehavingRelayTest, LateResponseToATimedOutCallIsDropped) {
  fake_.Serve([](FakeSession& session) {
    const auto slow = session.ReadRequest();
    ASSERT_TRUE(slow);
    const auto next = session.ReadRequest();
    ASSERT_TRUE(next);
    session.SendResponse(FakeSession::Ok(slow->id()));
    session.SendResponse(FakeSession::Ok(next->id()));
    Linger(session);
  });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  auto timed_out = connection->Call(ListTeams(), 200ms);
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code(), ErrorCode::kIo);
  EXPECT_TRUE(Mentions(timed_out.error(), "timed out")) << timed_out.error().context();
  EXPECT_TRUE(connection->is_open());
  auto answered = connection->Call(ListTeams());
  ASSERT_TRUE(answered) << answered.error().context();
  EXPECT_TRUE(answered->has_ok());
}

TEST_F(MisbehavingRelayTest, CloseSendsANormalClosure) {
  fake_.Serve([](FakeSession& session) { Linger(session); });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  const auto start = Clock::now();
  connection->Close();
  EXPECT_LT(Clock::now() - start, 2s);
  fake_.Join();
  EXPECT_EQ(fake_.close_code(), 1000);
}

TEST_F(MisbehavingRelayTest, SilentRelayMakesTheCallTimeOut) {
  fake_.Serve([](FakeSession& session) { Linger(session); });
  auto connection = Connect();
  ASSERT_NE(connection, nullptr);
  const auto start = Clock::now();
  auto response = connection->Call(ListTeams(), 300ms);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kIo);
  EXPECT_LT(Clock::now() - start, 1s);
}

}  // namespace
}  // namespace coffre::client
