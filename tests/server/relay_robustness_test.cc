// A relay that keeps working when clients misbehave: malformed frames, floods, and the
// counts /metrics shows afterwards; the drain.
#include <gtest/gtest.h>

#include "coffre/protocol/limits.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

class RelayRobustnessTest : public ::testing::Test {
 protected:
  void Start(const std::function<void(RelayConfig&)>& tweak = {}) {
    relay_ = std::make_unique<TestRelay>(dir_.path(), tweak);
    ASSERT_TRUE(relay_->Start());
  }
  void SetUp() override {}

  static std::string FrameWith(const wire::Request& request, std::uint32_t version = 1) {
    wire::Frame frame;
    frame.set_version(version);
    *frame.mutable_request() = request;
    return frame.SerializeAsString();
  }

  TempDir dir_;
  std::unique_ptr<TestRelay> relay_;
};

TEST_F(RelayRobustnessTest,
       MalformedFramesGetMalformedWithTheRequestIdAndTheConnectionStaysUsable) {
  Start();
  auto client = RelayClient::Connect(relay_->port());
  ASSERT_NE(client, nullptr);

  // Not a protobuf at all: the id is unknown, so 0.
  ASSERT_TRUE(client->SendRaw(std::string("\xff\xff\xff\xff garbage", 12)));
  auto garbage = client->WaitResponse(0);
  ASSERT_EQ(ErrorOf(garbage), wire::ERROR_CODE_MALFORMED);

  // A request whose id parses but whose content is invalid: the id comes back.
  wire::Request bad_user;
  bad_user.set_id(77);
  bad_user.mutable_list_devices()->set_user_id("Not A Login!");
  ASSERT_TRUE(client->SendRaw(FrameWith(bad_user)));
  EXPECT_EQ(ErrorOf(client->WaitResponse(77)), wire::ERROR_CODE_MALFORMED);

  // Another protocol version.
  wire::Request other_version;
  other_version.set_id(78);
  other_version.mutable_challenge();
  ASSERT_TRUE(client->SendRaw(FrameWith(other_version, 2)));
  EXPECT_EQ(ErrorOf(client->WaitResponse(78)), wire::ERROR_CODE_UNSUPPORTED_VERSION);

  // An unknown field appended to a valid request.
  std::string unknown = FrameWith([] {
    wire::Request request;
    request.set_id(79);
    request.mutable_challenge();
    return request;
  }());
  unknown += std::string("\xa0\x06\x01", 3);  // field 100, varint 1
  ASSERT_TRUE(client->SendRaw(unknown));
  EXPECT_EQ(ErrorOf(client->WaitResponse(79)), wire::ERROR_CODE_MALFORMED);

  // A request without a method, and a frame carrying a response instead of a request.
  wire::Request empty;
  empty.set_id(80);
  ASSERT_TRUE(client->SendRaw(FrameWith(empty)));
  EXPECT_EQ(ErrorOf(client->WaitResponse(80)), wire::ERROR_CODE_MALFORMED);
  wire::Frame response_frame;
  response_frame.set_version(1);
  response_frame.mutable_response()->set_id(81);
  response_frame.mutable_response()->mutable_ok();
  ASSERT_TRUE(client->SendRaw(response_frame.SerializeAsString()));
  EXPECT_EQ(ErrorOf(client->WaitResponse(0)), wire::ERROR_CODE_MALFORMED);

  // Still usable.
  auto challenge = client->Call(ChallengeRequest());
  ASSERT_TRUE(challenge.has_value());
  EXPECT_TRUE(challenge->has_challenge());
  EXPECT_FALSE(client->closed());
  EXPECT_GE(relay_->MetricValue("coffre_relay_errors_total{code=\"MALFORMED\"}").value_or(0), 4);
  EXPECT_GE(
      relay_->MetricValue("coffre_relay_errors_total{code=\"UNSUPPORTED_VERSION\"}").value_or(0),
      1);
}

TEST_F(RelayRobustnessTest, FloodingDeviceIsRateLimitedWhileOthersAreServed) {
  Start([](RelayConfig& config) {
    config.rate_limits.requests_per_second_per_device = 1;
    config.rate_limits.requests_burst_per_device = 20;
  });
  auto flooder = RelayClient::Connect(relay_->port());
  auto calm = RelayClient::Connect(relay_->port());
  ASSERT_TRUE(flooder && calm);
  TestUser mallory("mallory");
  TestUser alice("alice");
  Onboard(*relay_, *flooder, mallory);
  Onboard(*relay_, *calm, alice);
  int limited = 0;
  std::uint64_t retry_after = 0;
  wire::Request list;
  list.mutable_list_teams();
  for (int i = 0; i < 40; ++i) {
    auto response = flooder->Call(list);
    ASSERT_TRUE(response.has_value());
    if (ErrorOf(response) == wire::ERROR_CODE_RATE_LIMITED) {
      ++limited;
      retry_after = response->error().retry_after_ms();
    }
  }
  EXPECT_GE(limited, 15);
  EXPECT_GT(retry_after, 0u);
  // The other device still has its whole budget.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(calm->Call(list)->has_teams());
  // A new connection of the flooding device shares its bucket.
  auto again = RelayClient::Connect(relay_->port());
  ASSERT_NE(again, nullptr);
  // Login takes two requests under the connection's own budget (not yet authenticated).
  ASSERT_FALSE(again->Login("mallory", mallory.device(1), relay_->relay_identity()).empty());
  EXPECT_EQ(ErrorOf(again->Call(list)), wire::ERROR_CODE_RATE_LIMITED);
}

TEST_F(RelayRobustnessTest, OversizedFramesAreRefusedBeforeParsing) {
  Start();
  auto client = RelayClient::Connect(relay_->port());
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  Onboard(*relay_, *client, alice);
  // Envelopes too large for the protocol limit (but within the transport's frame limit).
  wire::Request big = SendTo("alice", 1, std::string(protocol::kMaxEnvelopeCiphertext + 1, 'x'));
  EXPECT_EQ(ErrorOf(client->Call(big)), wire::ERROR_CODE_TOO_LARGE);
  EXPECT_TRUE(client->Call(ChallengeRequest())->has_challenge());
}

TEST_F(RelayRobustnessTest, MetricsCountWhatHappened) {
  Start();
  auto alice_client = RelayClient::Connect(relay_->port());
  auto bob_client = RelayClient::Connect(relay_->port());
  ASSERT_TRUE(alice_client && bob_client);
  TestUser alice("alice");
  TestUser bob("bob");
  Onboard(*relay_, *alice_client, alice);
  Onboard(*relay_, *bob_client, bob);
  EXPECT_EQ(relay_->MetricValue("coffre_relay_authenticated_connections").value_or(-1), 2);
  const double before = relay_->MetricValue("coffre_relay_envelopes_in_total").value_or(0);
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(alice_client->Call(SendTo("bob", 1, "payload"))->has_send_result());
  }
  EXPECT_EQ(relay_->MetricValue("coffre_relay_envelopes_in_total").value_or(0), before + 7);
  EXPECT_EQ(relay_->MetricValue("coffre_relay_envelope_bytes_in_total").value_or(0),
            7 * std::string("payload").size());
  EXPECT_GE(
      relay_->MetricValue("coffre_relay_request_duration_seconds_count{method=\"send_envelopes\"}")
          .value_or(0),
      7);
  ASSERT_TRUE(alice_client->SendRaw("junk"));
  ASSERT_TRUE(alice_client->WaitResponse(0).has_value());
  EXPECT_GE(relay_->MetricValue("coffre_relay_errors_total{code=\"MALFORMED\"}").value_or(0), 1);
  const std::string text = relay_->Metrics();
  EXPECT_NE(text.find("# TYPE coffre_relay_request_duration_seconds histogram"), std::string::npos);
  // Nothing from the users in the metrics.
  EXPECT_EQ(text.find("alice"), std::string::npos);
  bob_client.reset();
  alice_client.reset();
}

TEST_F(RelayRobustnessTest, DrainTellsConnectionsToGoAway) {
  Start();
  auto client = RelayClient::Connect(relay_->port());
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  Onboard(*relay_, *client, alice);
  relay_->BeginDrain();
  auto going_away = client->WaitPush(wire::Push::kGoingAway);
  ASSERT_TRUE(going_away.has_value());
  EXPECT_GT(going_away->going_away().retry_after_ms(), 0u);
  EXPECT_TRUE(client->WaitClosed());
  EXPECT_EQ(client->close_code(), 1001);
}

}  // namespace
}  // namespace coffre::server
