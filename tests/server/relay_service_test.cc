// The relay service without the network: fake connections call it directly, which lets a
// test throw thousands of hostile inputs at it quickly and look at every frame it sends.
#include "relay_service.h"

#include <gtest/gtest.h>

#include <mutex>
#include <random>

#include "coffre/crypto/random.h"
#include "coffre/protocol/validation.h"
#include "coffre/storage/relay_store.h"
#include "relay_factory.h"
#include "relay_util.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace testing;

class FakeConnection final : public Connection {
 public:
  explicit FakeConnection(std::uint64_t id) : id_(id) {}
  bool SendFrame(std::vector<std::uint8_t> frame) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    frames_.push_back(std::move(frame));
    return true;
  }
  void Close(std::uint16_t code, std::string) override {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    close_code_ = code;
  }
  const std::string& peer_address() const override { return address_; }
  std::uint64_t id() const override { return id_; }

  // Every frame sent so far, parsed as the client would; clears them.
  std::vector<wire::Frame> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<wire::Frame> parsed;
    for (const auto& bytes : frames_) {
      auto frame = protocol::ParseRelayFrame(bytes);
      EXPECT_TRUE(frame.has_value()) << "the service sent an invalid frame";
      if (frame) parsed.push_back(std::move(*frame));
    }
    frames_.clear();
    return parsed;
  }

 private:
  const std::uint64_t id_;
  const std::string address_ = "192.0.2.1";
  std::mutex mutex_;
  std::vector<std::vector<std::uint8_t>> frames_;
  bool closed_ = false;
  std::uint16_t close_code_ = 0;
};

class RelayServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::OpenSqlCipherRelayStore(dir_.path() / kRelayStoreFile, key_);
    ASSERT_TRUE(store.has_value());
    RelayServiceOptions options;
    options.data_dir = dir_.path();
    identity_.fill(0x42);
    options.relay_identity = identity_;
    options.rate_limits.requests_per_second_per_device = 1e6;
    options.rate_limits.requests_burst_per_device = 1'000'000;
    options.rate_limits.auth_attempts_per_minute_per_address = 1e6;
    options.rate_limits.auth_burst_per_address = 1'000'000;
    auto service = NewRelayService(std::move(options), std::move(*store));
    ASSERT_TRUE(service.has_value());
    service_ = std::move(*service);
  }

  std::shared_ptr<FakeConnection> Open() {
    auto connection = std::make_shared<FakeConnection>(++next_id_);
    service_->OnOpen(connection);
    return connection;
  }

  void Send(const std::shared_ptr<FakeConnection>& connection, std::string_view bytes) {
    service_->OnFrame(connection, AsBytes(bytes));
  }

  // One request and its response.
  wire::Response Call(const std::shared_ptr<FakeConnection>& connection, wire::Request request) {
    request.set_id(++next_request_);
    wire::Frame frame;
    frame.set_version(1);
    *frame.mutable_request() = request;
    Send(connection, frame.SerializeAsString());
    for (const auto& sent : connection->Take()) {
      if (sent.has_response() && sent.response().id() == request.id()) return sent.response();
    }
    ADD_FAILURE() << "no response";
    return {};
  }

  // Registers `user` through a second handle on the store (as `admin enrol` would) and
  // authenticates its device 1 on `connection`.
  void RegisterAndLogin(const std::shared_ptr<FakeConnection>& connection, TestUser& user) {
    auto admin = storage::OpenSqlCipherRelayStore(dir_.path() / kRelayStoreFile, key_);
    ASSERT_TRUE(admin.has_value());
    // Codes are upper case, as `admin enrol` issues them.
    std::string code = "CODE";
    code.append(std::to_string(++codes_));
    const Sha256Digest hash = Sha256(AsBytes(code));
    ASSERT_TRUE((*admin)->CreateEnrolment(hash, "org", false, SystemNowMs() + 60'000));
    ASSERT_TRUE(Call(connection, user.Register(code)).has_registered());
    const wire::Response challenge = Call(connection, ChallengeRequest());
    ASSERT_TRUE(challenge.has_challenge());
    ASSERT_TRUE(Call(connection, Authenticate(user.id(), user.device(1),
                                              challenge.challenge().nonce(), identity_))
                    .has_session());
  }

  TempDir dir_;
  crypto::SecretBytes key_ = crypto::RandomSecret(32);
  CertificateDigest identity_{};
  std::uint64_t next_request_ = 0;
  int codes_ = 0;
  std::unique_ptr<Service> service_;
  std::uint64_t next_id_ = 0;
};

TEST_F(RelayServiceTest, EveryInputGetsExactlyOneValidResponseAndNeverCrashes) {
  TestUser user("alice");
  TestUser bob("bob");
  auto authenticated = Open();
  RegisterAndLogin(authenticated, user);
  auto other = Open();
  RegisterAndLogin(other, bob);
  auto anonymous = Open();
  std::mt19937_64 random(20240611);
  // Valid frames of several methods to mutate.
  std::vector<std::string> seeds;
  for (const wire::Request& request : {user.Register("ABCDEFGHIJKLMNOPQRST"), ChallengeRequest(),
                                       SendTo("bob", 1, "hello"), FetchMailbox(), Ack({1, 2, 3}),
                                       Append(SignStatement(
                                           [] {
                                             auto body = StatementBody(std::string(16, 'T'), 0,
                                                                       nullptr, "alice", 1);
                                             body.mutable_create();
                                             return body;
                                           }(),
                                           user.device(1).key))}) {
    wire::Frame frame;
    frame.set_version(1);
    *frame.mutable_request() = request;
    frame.mutable_request()->set_id(5);
    seeds.push_back(frame.SerializeAsString());
  }
  for (int i = 0; i < 3000; ++i) {
    std::string input;
    if (i % 3 == 0) {
      input.resize(random() % 200);
      for (char& c : input) c = static_cast<char>(random());
    } else {
      input = seeds[random() % seeds.size()];
      const int flips = 1 + static_cast<int>(random() % 4);
      for (int f = 0; f < flips && !input.empty(); ++f) {
        input[random() % input.size()] = static_cast<char>(random());
      }
      if (random() % 4 == 0) input.resize(random() % (input.size() + 1));
    }
    const auto& connection = i % 2 == 0 ? authenticated : anonymous;
    Send(connection, input);
    const auto frames = connection->Take();
    ASSERT_GE(frames.size(), 1u);
    std::size_t responses = 0;
    for (const auto& frame : frames) responses += frame.has_response() ? 1 : 0;
    ASSERT_EQ(responses, 1u) << "input " << i;
    other->Take();
  }
  // Still answering properly afterwards.
  EXPECT_TRUE(Call(authenticated, FetchMailbox()).has_envelopes());
  EXPECT_TRUE(Call(anonymous, ChallengeRequest()).has_challenge());
  for (const auto& connection : {authenticated, other, anonymous}) service_->OnClose(connection);
}

TEST_F(RelayServiceTest, DrainPushesGoingAwayAndRefusesNewRequests) {
  auto first = Open();
  auto second = Open();
  service_->OnDrain();
  for (const auto& connection : {first, second}) {
    const auto frames = connection->Take();
    ASSERT_EQ(frames.size(), 1u);
    ASSERT_TRUE(frames[0].has_push());
    EXPECT_TRUE(frames[0].push().has_going_away());
  }
  wire::Frame frame;
  frame.set_version(1);
  frame.mutable_request()->set_id(9);
  frame.mutable_request()->mutable_challenge();
  Send(first, frame.SerializeAsString());
  const auto frames = first->Take();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].response().id(), 9u);
  EXPECT_EQ(frames[0].response().error().code(), wire::ERROR_CODE_UNAVAILABLE);
  EXPECT_GT(frames[0].response().error().retry_after_ms(), 0u);
  HttpRequestInfo request;
  request.method = "GET";
  request.target = "/v1/blobs/00/00";
  EXPECT_EQ(service_->OnHttp(request, {}).status, 503u);
}

TEST_F(RelayServiceTest, UnknownHttpRoutesAndMethodsGetJsonErrors) {
  HttpRequestInfo request;
  request.method = "GET";
  request.target = "/v1/other";
  HttpReply reply = service_->OnHttp(request, {});
  EXPECT_EQ(reply.status, 404u);
  EXPECT_EQ(reply.content_type, "application/json");
  const std::string body(reply.body.begin(), reply.body.end());
  EXPECT_NE(body.find("\"code\":\"NOT_FOUND\""), std::string::npos) << body;
  request.method = "DELETE";
  request.target = "/v1/blobs/" + std::string(32, '0') + "/" + std::string(32, '0');
  EXPECT_EQ(service_->OnHttp(request, {}).status, 405u);
  request.method = "GET";
  EXPECT_EQ(service_->OnHttp(request, {}).status, 401u);
}

TEST(RelayFactoryTest, MakeRelayServiceOpensTheStoreAndRefusesAWrongKey) {
  TempDir dir;
  RelayConfig config;
  config.data_dir = dir.path() / "relay";
  const crypto::SecretBytes key = crypto::RandomSecret(kOperatorKeyBytes);
  CertificateDigest identity{};
  auto service = MakeRelayService(config, key, identity);
  ASSERT_TRUE(service.has_value()) << service.error().context();
  EXPECT_TRUE(std::filesystem::exists(config.data_dir / kRelayStoreFile));
  EXPECT_TRUE(std::filesystem::is_directory(config.data_dir / "blobs"));
  service->reset();
  auto wrong = MakeRelayService(config, crypto::RandomSecret(kOperatorKeyBytes), identity);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kWrongPassphrase);
  EXPECT_FALSE(MakeRelayService(config, crypto::RandomSecret(16), identity).has_value());
}

}  // namespace
}  // namespace coffre::server
