// Team chains end to end: the relay verifies every statement it stores, refuses forks and
// forgeries with their codes, pushes new heads to members and lets only members read.
#include <gtest/gtest.h>

#include "coffre/protocol/team_chain.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

class RelayChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<TestRelay>(dir_.path());
    ASSERT_TRUE(relay_->Start());
    alice_client_ = RelayClient::Connect(relay_->port());
    bob_client_ = RelayClient::Connect(relay_->port());
    carol_client_ = RelayClient::Connect(relay_->port());
    ASSERT_TRUE(alice_client_ && bob_client_ && carol_client_);
    Onboard(*relay_, *alice_client_, alice_, /*admin=*/true);
    Onboard(*relay_, *bob_client_, bob_);
    Onboard(*relay_, *carol_client_, carol_);
    team_ = CreateTeam(*alice_client_, alice_, {{"bob", wire::ROLE_MEMBER}});
  }

  // A signed statement after the current head, by `signer` (device 1).
  wire::ChainStatement Next(TestUser& signer,
                            const std::function<void(wire::ChainStatementBody&)>& change) {
    wire::ChainStatementBody body =
        StatementBody(team_.team_id, team_.sequence + 1, &team_.head, signer.id(), 1);
    change(body);
    return SignStatement(body, signer.device(1).key);
  }

  static void AddCarol(wire::ChainStatementBody& body) {
    body.mutable_add_member()->set_user_id("carol");
    body.mutable_add_member()->set_role(wire::ROLE_GUEST);
  }

  wire::Request FetchChainRequest(std::uint64_t from = 0) {
    wire::Request request;
    request.mutable_fetch_chain()->set_team_id(team_.team_id);
    request.mutable_fetch_chain()->set_from_sequence(from);
    return request;
  }

  TempDir dir_;
  std::unique_ptr<TestRelay> relay_;
  TestUser alice_{"alice"};
  TestUser bob_{"bob"};
  TestUser carol_{"carol"};
  std::unique_ptr<RelayClient> alice_client_;
  std::unique_ptr<RelayClient> bob_client_;
  std::unique_ptr<RelayClient> carol_client_;
  TeamSetup team_;
};

TEST_F(RelayChainTest, AppendedStatementIsPushedToOldAndNewMembers) {
  bob_client_->DrainPushes(100ms);
  carol_client_->DrainPushes(50ms);
  auto appended = alice_client_->Call(Append(Next(alice_, AddCarol)));
  ASSERT_TRUE(appended && appended->has_chain_appended());
  EXPECT_EQ(appended->chain_appended().sequence(), 2u);
  for (RelayClient* client : {bob_client_.get(), carol_client_.get()}) {
    auto push = client->WaitPush(wire::Push::kChainAdvanced);
    ASSERT_TRUE(push.has_value());
    EXPECT_EQ(push->chain_advanced().team_id(), team_.team_id);
    EXPECT_EQ(push->chain_advanced().sequence(), 2u);
    EXPECT_EQ(push->chain_advanced().head(), appended->chain_appended().head());
  }
  wire::Request list;
  list.mutable_list_teams();
  auto teams = carol_client_->Call(list);
  ASSERT_TRUE(teams && teams->has_teams());
  ASSERT_EQ(teams->teams().teams_size(), 1);
  EXPECT_EQ(teams->teams().teams(0).head(), appended->chain_appended().head());
}

TEST_F(RelayChainTest, BadSignatureIsRefused) {
  wire::ChainStatement statement = Next(alice_, AddCarol);
  std::string signature = statement.signature();
  signature[5] = static_cast<char>(signature[5] ^ 0x01);
  statement.set_signature(signature);
  EXPECT_EQ(ErrorOf(alice_client_->Call(Append(statement))), wire::ERROR_CODE_INVALID_SIGNATURE);
  // Signed by a key that is not the named device's.
  wire::ChainStatementBody body =
      StatementBody(team_.team_id, team_.sequence + 1, &team_.head, "alice", 1);
  AddCarol(body);
  EXPECT_EQ(ErrorOf(alice_client_->Call(Append(SignStatement(body, bob_.device(1).key)))),
            wire::ERROR_CODE_INVALID_SIGNATURE);
}

TEST_F(RelayChainTest, WrongPreviousHashIsRefusedWithTheCurrentHead) {
  protocol::Hash wrong = team_.head;
  wrong[0] ^= 0xFF;
  wire::ChainStatementBody body =
      StatementBody(team_.team_id, team_.sequence + 1, &wrong, "alice", 1);
  AddCarol(body);
  auto refused = alice_client_->Call(Append(SignStatement(body, alice_.device(1).key)));
  ASSERT_EQ(ErrorOf(refused), wire::ERROR_CODE_CONFLICT);
  EXPECT_EQ(refused->error().current_head(), std::string(team_.head.begin(), team_.head.end()));
}

TEST_F(RelayChainTest, NonAdminSignerIsRefused) {
  EXPECT_EQ(ErrorOf(bob_client_->Call(Append(Next(bob_, AddCarol)))),
            wire::ERROR_CODE_CHAIN_REJECTED);
  // Someone outside the team cannot either.
  EXPECT_EQ(ErrorOf(carol_client_->Call(Append(Next(carol_, AddCarol)))),
            wire::ERROR_CODE_CHAIN_REJECTED);
}

TEST_F(RelayChainTest, ForkIsRefusedWithTheHeadThatWon) {
  const wire::ChainStatement first = Next(alice_, AddCarol);
  const wire::ChainStatement rival = Next(alice_, [](wire::ChainStatementBody& body) {
    body.mutable_rotate_key()->set_generation(1);
    body.mutable_rotate_key()->set_commitment(std::string(32, '\x01'));
  });
  auto won = alice_client_->Call(Append(first));
  ASSERT_TRUE(won && won->has_chain_appended());
  auto lost = alice_client_->Call(Append(rival));
  ASSERT_EQ(ErrorOf(lost), wire::ERROR_CODE_CONFLICT);
  EXPECT_EQ(lost->error().current_head(), won->chain_appended().head());
  // A second team created over an existing id is a fork of its genesis.
  wire::ChainStatementBody genesis = StatementBody(team_.team_id, 0, nullptr, "carol", 1);
  genesis.mutable_create();
  const wire::ErrorCode code =
      ErrorOf(carol_client_->Call(Append(SignStatement(genesis, carol_.device(1).key))));
  EXPECT_TRUE(code == wire::ERROR_CODE_CONFLICT || code == wire::ERROR_CODE_CHAIN_REJECTED)
      << wire::ErrorCode_Name(code);
}

TEST_F(RelayChainTest, SequenceGapIsRefused) {
  wire::ChainStatementBody body =
      StatementBody(team_.team_id, team_.sequence + 2, &team_.head, "alice", 1);
  AddCarol(body);
  EXPECT_EQ(ErrorOf(alice_client_->Call(Append(SignStatement(body, alice_.device(1).key)))),
            wire::ERROR_CODE_CHAIN_REJECTED);
}

TEST_F(RelayChainTest, RevokedSignerDeviceIsRefusedButHistoryStaysReadable) {
  // Alice gets a second device, which will sign nothing; device 1 is then revoked.
  TestDevice& laptop = alice_.AddDevice(2);
  wire::Request add;
  *add.mutable_add_device()->mutable_certificate() = laptop.certificate;
  ASSERT_TRUE(alice_client_->Call(add)->has_ok());
  auto laptop_client = RelayClient::Connect(relay_->port());
  ASSERT_NE(laptop_client, nullptr);
  ASSERT_FALSE(laptop_client->Login("alice", laptop, relay_->relay_identity()).empty());
  wire::Request revoke;
  revoke.mutable_revoke_device()->set_device_id(1);
  auto signature = protocol::SignRevocation(alice_.identity(), "alice", 1);
  ASSERT_TRUE(signature.has_value());
  revoke.mutable_revoke_device()->set_signature(std::string(signature->begin(), signature->end()));
  ASSERT_TRUE(laptop_client->Call(revoke)->has_ok());

  EXPECT_EQ(ErrorOf(laptop_client->Call(Append(Next(alice_, AddCarol)))),
            wire::ERROR_CODE_CHAIN_REJECTED);
  // After a restart the relay rebuilds the chain, signed by a device now revoked.
  laptop_client.reset();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  auto bob = RelayClient::Connect(relay_->port());
  ASSERT_NE(bob, nullptr);
  ASSERT_FALSE(bob->Login("bob", bob_.device(1), relay_->relay_identity()).empty());
  auto chain = bob->Call(FetchChainRequest());
  ASSERT_TRUE(chain && chain->has_chain());
  EXPECT_EQ(chain->chain().statements_size(), 2);
  EXPECT_EQ(ErrorOf(bob->Call(Append(Next(alice_, AddCarol)))), wire::ERROR_CODE_CHAIN_REJECTED);
}

TEST_F(RelayChainTest, MembersFetchAVerifiableChainWithItsSignersAndOthersAreRefused) {
  ASSERT_TRUE(alice_client_->Call(Append(Next(alice_, AddCarol)))->has_chain_appended());
  team_.sequence = 2;
  auto chain = bob_client_->Call(FetchChainRequest());
  ASSERT_TRUE(chain && chain->has_chain());
  ASSERT_EQ(chain->chain().statements_size(), 3);
  EXPECT_FALSE(chain->chain().more());
  ASSERT_EQ(chain->chain().signers_size(), 1);
  const wire::DeviceList& signer = chain->chain().signers(0);
  EXPECT_EQ(signer.user_id(), "alice");
  ASSERT_EQ(signer.devices_size(), 1);

  // A client verifies it with nothing but what the reply carries.
  auto identity = crypto::VerifyKey::FromBytes(
      std::span(reinterpret_cast<const std::uint8_t*>(signer.user_identity_key().data()),
                signer.user_identity_key().size()));
  ASSERT_TRUE(identity.has_value());
  auto device = protocol::VerifyDeviceCertificate(signer.devices(0).certificate(), *identity);
  ASSERT_TRUE(device.has_value());
  const crypto::VerifyKey device_key = device->signing_key;
  auto verified = protocol::TeamChain::Verify(
      chain->chain().statements(),
      [&](std::string_view user, std::uint32_t id) -> Result<crypto::VerifyKey> {
        if (user == "alice" && id == 1) return device_key;
        return Fail(ErrorCode::kNotFound, "unknown");
      });
  ASSERT_TRUE(verified.has_value());
  EXPECT_TRUE(verified->IsMember("carol"));

  auto later = bob_client_->Call(FetchChainRequest(2));
  ASSERT_TRUE(later && later->has_chain());
  EXPECT_EQ(later->chain().statements_size(), 1);

  TestUser dave("dave");
  auto dave_client = RelayClient::Connect(relay_->port());
  ASSERT_NE(dave_client, nullptr);
  Onboard(*relay_, *dave_client, dave);
  EXPECT_EQ(ErrorOf(dave_client->Call(FetchChainRequest())), wire::ERROR_CODE_FORBIDDEN);
  wire::Request unknown;
  unknown.mutable_fetch_chain()->set_team_id(RandomId());
  EXPECT_EQ(ErrorOf(dave_client->Call(unknown)), wire::ERROR_CODE_FORBIDDEN);
}

TEST_F(RelayChainTest, RemovedMemberIsToldAndLosesAccess) {
  bob_client_->DrainPushes(100ms);
  auto removed = AppendChange(*alice_client_, alice_, team_, [](wire::ChainStatementBody& body) {
    body.mutable_remove_member()->set_user_id("bob");
  });
  ASSERT_TRUE(removed && removed->has_chain_appended());
  auto push = bob_client_->WaitPush(wire::Push::kChainAdvanced);
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->chain_advanced().sequence(), team_.sequence);
  EXPECT_EQ(ErrorOf(bob_client_->Call(FetchChainRequest())), wire::ERROR_CODE_FORBIDDEN);
  wire::Request list;
  list.mutable_list_teams();
  auto teams = bob_client_->Call(list);
  ASSERT_TRUE(teams && teams->has_teams());
  EXPECT_EQ(teams->teams().teams_size(), 0);
}

TEST_F(RelayChainTest, AppendsContinueAfterARestart) {
  alice_client_.reset();
  bob_client_.reset();
  carol_client_.reset();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  auto alice = RelayClient::Connect(relay_->port());
  ASSERT_NE(alice, nullptr);
  ASSERT_FALSE(alice->Login("alice", alice_.device(1), relay_->relay_identity()).empty());
  auto appended = alice->Call(Append(Next(alice_, AddCarol)));
  ASSERT_TRUE(appended && appended->has_chain_appended());
  EXPECT_EQ(appended->chain_appended().sequence(), 2u);
  EXPECT_GE(relay_->MetricValue("coffre_relay_chain_statements_total").value_or(0), 1);
}

}  // namespace
}  // namespace coffre::server
