// Accounts, devices and authentication against an in-process relay over real TLS.
#include <gtest/gtest.h>

#include <sstream>

#include "coffre/crypto/random.h"
#include "coffre/protocol/signed_objects.h"
#include "relay_factory.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

class RelayAuthTest : public ::testing::Test {
 protected:
  void StartRelay(const std::function<void(RelayConfig&)>& tweak = {}) {
    // A fresh data directory each time: a new TestRelay has a new operator key.
    relay_.reset();
    relay_ = std::make_unique<TestRelay>(dir_.path() / std::to_string(++starts_),
                                         [&](RelayConfig& config) {
                                           config.auth.session_token_lifetime = 60s;
                                           if (tweak) tweak(config);
                                         });
    ASSERT_TRUE(relay_->Start());
  }
  void SetUp() override { StartRelay(); }

  std::unique_ptr<RelayClient> Connect() {
    auto client = RelayClient::Connect(relay_->port());
    EXPECT_NE(client, nullptr);
    return client;
  }

  TempDir dir_;
  int starts_ = 0;
  std::unique_ptr<TestRelay> relay_;
};

TEST_F(RelayAuthTest, RegistrationWithAGoodCodeCreatesTheAccountWithTheGrant) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  auto registered = client->Call(alice.Register(relay_->Enrol("sdis13", /*admin=*/true)));
  ASSERT_TRUE(registered.has_value());
  ASSERT_TRUE(registered->has_registered()) << registered->error().message();
  EXPECT_EQ(registered->registered().user_id(), "alice");
  EXPECT_EQ(registered->registered().org_id(), "sdis13");
  EXPECT_TRUE(registered->registered().admin());
  EXPECT_FALSE(client->Login("alice", alice.device(1), relay_->relay_identity()).empty());
}

TEST_F(RelayAuthTest, CodesAreAcceptedInLowerCase) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  std::string code = relay_->Enrol("sdis13");
  for (char& c : code) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto registered = client->Call(TestUser("bob").Register(code));
  ASSERT_TRUE(registered.has_value());
  EXPECT_TRUE(registered->has_registered());
}

TEST_F(RelayAuthTest, UsedCodeIsRefused) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string code = relay_->Enrol("sdis13");
  ASSERT_TRUE(client->Call(TestUser("alice").Register(code))->has_registered());
  EXPECT_EQ(ErrorOf(client->Call(TestUser("bob").Register(code))),
            wire::ERROR_CODE_ENROLMENT_INVALID);
}

TEST_F(RelayAuthTest, ForgedCodeIsRefused) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  relay_->Enrol("sdis13");
  EXPECT_EQ(ErrorOf(client->Call(TestUser("mallory").Register("AAAAAAAAAAAAAAAAAAAA"))),
            wire::ERROR_CODE_ENROLMENT_INVALID);
}

TEST_F(RelayAuthTest, ExpiredCodeIsRefused) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string code = relay_->Enrol("sdis13");
  relay_->AdvanceClock(relay_->config().auth.enrolment_code_lifetime + 1s);
  EXPECT_EQ(ErrorOf(client->Call(TestUser("alice").Register(code))),
            wire::ERROR_CODE_ENROLMENT_INVALID);
}

TEST_F(RelayAuthTest, TakenUserIdIsRefusedAndTheCodeStaysUsable) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Call(TestUser("alice").Register(relay_->Enrol("sdis13")))->has_registered());
  const std::string code = relay_->Enrol("sdis13");
  EXPECT_EQ(ErrorOf(client->Call(TestUser("alice").Register(code))),
            wire::ERROR_CODE_ALREADY_EXISTS);
  EXPECT_TRUE(client->Call(TestUser("bob").Register(code))->has_registered());
}

TEST_F(RelayAuthTest, CertificateNotSignedByTheRegisteredIdentityIsRefused) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  TestUser impostor("alice");
  wire::Request request = alice.Register(relay_->Enrol("sdis13"));
  *request.mutable_register_()->mutable_first_device() = impostor.device(1).certificate;
  EXPECT_EQ(ErrorOf(client->Call(request)), wire::ERROR_CODE_INVALID_SIGNATURE);
}

TEST_F(RelayAuthTest, MethodsOtherThanAuthenticationNeedASession) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  wire::Request list;
  list.mutable_list_teams();
  EXPECT_EQ(ErrorOf(client->Call(list)), wire::ERROR_CODE_UNAUTHENTICATED);
  EXPECT_EQ(ErrorOf(client->Call(FetchMailbox())), wire::ERROR_CODE_UNAUTHENTICATED);
  EXPECT_EQ(ErrorOf(client->Call(SendTo("alice", 1, "x"))), wire::ERROR_CODE_UNAUTHENTICATED);
}

TEST_F(RelayAuthTest, BadSignatureFailsAndLeavesTheConnectionUnauthenticated) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  ASSERT_TRUE(client->Call(alice.Register(relay_->Enrol("sdis13")))->has_registered());
  auto challenge = client->Call(ChallengeRequest());
  ASSERT_TRUE(challenge && challenge->has_challenge());
  TestDevice forged{1, crypto::SigningKey::Generate(), {}};
  EXPECT_EQ(ErrorOf(client->Call(Authenticate("alice", forged, challenge->challenge().nonce(),
                                              relay_->relay_identity()))),
            wire::ERROR_CODE_AUTHENTICATION_FAILED);
  wire::Request list;
  list.mutable_list_teams();
  EXPECT_EQ(ErrorOf(client->Call(list)), wire::ERROR_CODE_UNAUTHENTICATED);
}

TEST_F(RelayAuthTest, SignatureForAnotherRelayIdentityFails) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  ASSERT_TRUE(client->Call(alice.Register(relay_->Enrol("sdis13")))->has_registered());
  auto challenge = client->Call(ChallengeRequest());
  ASSERT_TRUE(challenge && challenge->has_challenge());
  CertificateDigest other{};
  other.fill(0x5A);
  EXPECT_EQ(ErrorOf(client->Call(
                Authenticate("alice", alice.device(1), challenge->challenge().nonce(), other))),
            wire::ERROR_CODE_AUTHENTICATION_FAILED);
}

TEST_F(RelayAuthTest, ReplayedChallengeFails) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  ASSERT_TRUE(client->Call(alice.Register(relay_->Enrol("sdis13")))->has_registered());
  auto challenge = client->Call(ChallengeRequest());
  ASSERT_TRUE(challenge && challenge->has_challenge());
  const wire::Request answer = Authenticate(
      "alice", alice.device(1), challenge->challenge().nonce(), relay_->relay_identity());
  auto first = client->Call(answer);
  ASSERT_TRUE(first && first->has_session());
  // The same answer again, on the same connection and on another one.
  EXPECT_EQ(ErrorOf(client->Call(answer)), wire::ERROR_CODE_AUTHENTICATION_FAILED);
  auto other = Connect();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ErrorOf(other->Call(answer)), wire::ERROR_CODE_AUTHENTICATION_FAILED);
  // Even after asking for a fresh challenge there: only the fresh nonce is accepted.
  ASSERT_TRUE(other->Call(ChallengeRequest())->has_challenge());
  EXPECT_EQ(ErrorOf(other->Call(answer)), wire::ERROR_CODE_AUTHENTICATION_FAILED);
}

TEST_F(RelayAuthTest, ExpiredChallengeFails) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  ASSERT_TRUE(client->Call(alice.Register(relay_->Enrol("sdis13")))->has_registered());
  auto challenge = client->Call(ChallengeRequest());
  ASSERT_TRUE(challenge && challenge->has_challenge());
  relay_->AdvanceClock(relay_->config().auth.challenge_lifetime + 1s);
  EXPECT_EQ(
      ErrorOf(client->Call(Authenticate("alice", alice.device(1), challenge->challenge().nonce(),
                                        relay_->relay_identity()))),
      wire::ERROR_CODE_AUTHENTICATION_FAILED);
}

TEST_F(RelayAuthTest, UnknownDeviceFails) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser ghost("ghost");
  std::optional<wire::Response> response;
  EXPECT_TRUE(client->Login("ghost", ghost.device(1), relay_->relay_identity(), &response).empty());
  EXPECT_EQ(ErrorOf(response), wire::ERROR_CODE_AUTHENTICATION_FAILED);
}

TEST_F(RelayAuthTest, TokenResumesASessionOnANewConnection) {
  auto first = Connect();
  ASSERT_NE(first, nullptr);
  TestUser alice("alice");
  const std::string token = Onboard(*relay_, *first, alice);
  auto second = Connect();
  ASSERT_NE(second, nullptr);
  wire::Request resume;
  resume.mutable_resume()->set_token(token);
  auto resumed = second->Call(resume);
  ASSERT_TRUE(resumed && resumed->has_session());
  wire::Request list;
  list.mutable_list_teams();
  EXPECT_TRUE(second->Call(list)->has_teams());
}

TEST_F(RelayAuthTest, ExpiredTokenIsRefusedEverywhere) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  const std::string token = Onboard(*relay_, *client, alice);
  relay_->AdvanceClock(relay_->config().auth.session_token_lifetime + 1s);
  // The open connection's session has ended too.
  wire::Request list;
  list.mutable_list_teams();
  EXPECT_EQ(ErrorOf(client->Call(list)), wire::ERROR_CODE_UNAUTHENTICATED);
  auto other = Connect();
  ASSERT_NE(other, nullptr);
  wire::Request resume;
  resume.mutable_resume()->set_token(token);
  EXPECT_EQ(ErrorOf(other->Call(resume)), wire::ERROR_CODE_UNAUTHENTICATED);
  EXPECT_EQ(BlobGet(relay_->port(), token, RandomId(), RandomId()).status, 401u);
  // Logging in again gives a new, working session.
  EXPECT_FALSE(other->Login("alice", alice.device(1), relay_->relay_identity()).empty());
}

TEST_F(RelayAuthTest, UnknownTokenIsRefused) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  wire::Request resume;
  resume.mutable_resume()->set_token(std::string(32, '\x07'));
  EXPECT_EQ(ErrorOf(client->Call(resume)), wire::ERROR_CODE_UNAUTHENTICATED);
}

TEST_F(RelayAuthTest, RepeatedFailuresFromOneAddressAreRateLimited) {
  StartRelay([](RelayConfig& config) {
    config.rate_limits.auth_burst_per_address = 3;
    config.rate_limits.auth_attempts_per_minute_per_address = 1;
  });
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ErrorOf(client->Call(TestUser("mallory").Register("AAAAAAAAAAAAAAAAAAAA"))),
              wire::ERROR_CODE_ENROLMENT_INVALID);
  }
  auto limited = client->Call(TestUser("mallory").Register("AAAAAAAAAAAAAAAAAAAA"));
  ASSERT_EQ(ErrorOf(limited), wire::ERROR_CODE_RATE_LIMITED);
  EXPECT_GT(limited->error().retry_after_ms(), 0u);
  // A good code from that address waits too, and so do other connections from it.
  const std::string code = relay_->Enrol("sdis13");
  auto other = Connect();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ErrorOf(other->Call(TestUser("alice").Register(code))), wire::ERROR_CODE_RATE_LIMITED);
  EXPECT_GE(relay_->MetricValue("coffre_relay_errors_total{code=\"RATE_LIMITED\"}").value_or(0), 2);
}

TEST_F(RelayAuthTest, AddedDeviceLogsInAndRevokedDeviceIsDisconnectedAndLockedOut) {
  auto first = Connect();
  ASSERT_NE(first, nullptr);
  TestUser alice("alice");
  Onboard(*relay_, *first, alice);
  TestDevice& laptop = alice.AddDevice(2);
  wire::Request add;
  *add.mutable_add_device()->mutable_certificate() = laptop.certificate;
  ASSERT_TRUE(first->Call(add)->has_ok());
  EXPECT_EQ(ErrorOf(first->Call(add)), wire::ERROR_CODE_ALREADY_EXISTS);

  auto second = Connect();
  ASSERT_NE(second, nullptr);
  const std::string laptop_token = second->Login("alice", laptop, relay_->relay_identity());
  ASSERT_FALSE(laptop_token.empty());

  // A revocation not signed by the identity key is refused.
  wire::Request forged;
  forged.mutable_revoke_device()->set_device_id(2);
  auto bad = protocol::SignRevocation(laptop.key, "alice", 2);
  ASSERT_TRUE(bad.has_value());
  forged.mutable_revoke_device()->set_signature(std::string(bad->begin(), bad->end()));
  EXPECT_EQ(ErrorOf(first->Call(forged)), wire::ERROR_CODE_INVALID_SIGNATURE);

  wire::Request revoke;
  revoke.mutable_revoke_device()->set_device_id(2);
  auto signature = protocol::SignRevocation(alice.identity(), "alice", 2);
  ASSERT_TRUE(signature.has_value());
  revoke.mutable_revoke_device()->set_signature(std::string(signature->begin(), signature->end()));
  ASSERT_TRUE(first->Call(revoke)->has_ok());

  EXPECT_TRUE(second->WaitClosed());
  EXPECT_EQ(second->close_code(), 1008);
  auto third = Connect();
  ASSERT_NE(third, nullptr);
  std::optional<wire::Response> response;
  EXPECT_TRUE(third->Login("alice", laptop, relay_->relay_identity(), &response).empty());
  EXPECT_EQ(ErrorOf(response), wire::ERROR_CODE_AUTHENTICATION_FAILED);
  wire::Request resume;
  resume.mutable_resume()->set_token(laptop_token);
  EXPECT_EQ(ErrorOf(third->Call(resume)), wire::ERROR_CODE_UNAUTHENTICATED);

  wire::Request list;
  list.mutable_list_devices()->set_user_id("alice");
  auto devices = first->Call(list);
  ASSERT_TRUE(devices && devices->has_devices());
  ASSERT_EQ(devices->devices().devices_size(), 2);
  EXPECT_EQ(devices->devices().user_identity_key(),
            std::string(alice.identity().verify_key().bytes().begin(),
                        alice.identity().verify_key().bytes().end()));
  int revoked = 0;
  for (const auto& entry : devices->devices().devices()) revoked += entry.revoked() ? 1 : 0;
  EXPECT_EQ(revoked, 1);
  // Nobody can send to the revoked device any more.
  EXPECT_EQ(ErrorOf(first->Call(SendTo("alice", 2, "late"))), wire::ERROR_CODE_NOT_FOUND);
}

TEST_F(RelayAuthTest, CertificateForAnotherUserOrBeyondTheDeviceQuotaIsRefused) {
  StartRelay([](RelayConfig& config) { config.quotas.max_devices_per_user = 2; });
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  TestUser alice("alice");
  Onboard(*relay_, *client, alice);
  TestUser bob("bob", {7});
  wire::Request foreign;
  *foreign.mutable_add_device()->mutable_certificate() = bob.device(7).certificate;
  // Signed by bob's key, not alice's: the signature check fails first.
  EXPECT_EQ(ErrorOf(client->Call(foreign)), wire::ERROR_CODE_INVALID_SIGNATURE);

  wire::Request second;
  *second.mutable_add_device()->mutable_certificate() = alice.AddDevice(2).certificate;
  ASSERT_TRUE(client->Call(second)->has_ok());
  wire::Request third;
  *third.mutable_add_device()->mutable_certificate() = alice.AddDevice(3).certificate;
  EXPECT_EQ(ErrorOf(client->Call(third)), wire::ERROR_CODE_QUOTA_EXCEEDED);
}

TEST_F(RelayAuthTest, AdminCommandsIssueCodesAndCountOnALiveStore) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string code = relay_->Enrol("sdis13");
  EXPECT_EQ(code.size(), 20u);
  TestUser alice("alice");
  Onboard(*relay_, *client, alice);
  int rc = -1;
  const std::string status = relay_->AdminStatus(&rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(status.find("users 1\n"), std::string::npos) << status;
  EXPECT_NE(status.find("devices 1\n"), std::string::npos) << status;
  // A wrong operator key is named as such, with its own exit code.
  ::testing::internal::CaptureStderr();
  const int wrong = RunAdminStatus(relay_->config(), crypto::RandomSecret(kOperatorKeyBytes));
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(wrong, kExitWrongOperatorKey);
  EXPECT_NE(err.find(kWrongOperatorKeyLine), std::string::npos) << err;
}

}  // namespace
}  // namespace coffre::server
