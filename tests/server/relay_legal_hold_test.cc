// Legal holds (decision 0018): the relay keeps the details of held months past retention
// only on a hold signed by an organisation admin and an auditor, under their registered
// device keys, for its own log; anything else is refused and changes nothing.
#include <gtest/gtest.h>

#include <ctime>

#include "coffre/audit/entry.h"
#include "coffre/audit/legal_hold.h"
#include "server/relay_harness.h"
#include "server/team_fixture.h"

namespace coffre::server {
namespace {

namespace wire = coffre::wire::v1;
using namespace testing;

// This month, as months since 1970-01 (UTC).
std::int64_t ThisMonth() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  return static_cast<std::int64_t>(utc.tm_year - 70) * 12 + utc.tm_mon;
}

// Alice admin of the team, bob member, dave auditor, carol outside; erin is the
// organisation's admin. Details are sealed to an organisation auditor key; six months kept.
class RelayLegalHoldTest : public TeamOfFourTest {
 protected:
  void SetUp() override {
    Start([this](RelayConfig& config) {
      config.audit.auditor_key = auditor_.public_key();
      config.audit.retention_months = 6;
    });
    erin_client_ = RelayClient::Connect(relay_->port());
    ASSERT_NE(erin_client_, nullptr);
    ASSERT_FALSE(Onboard(*relay_, *erin_client_, erin_, /*admin=*/true).empty());
  }

  audit::LegalHold Hold(std::vector<std::int64_t> months) {
    audit::LegalHold hold;
    hold.origin = relay_->config().audit.origin;
    hold.months = std::move(months);
    hold.issued_ms = 1'764'000'000'000;
    hold.reason = "Réquisition judiciaire 2026/113";
    return hold;
  }

  static void Sign(audit::LegalHold& hold, TestUser& user) {
    ASSERT_TRUE(audit::SignLegalHold(hold, user.id(), 1, user.device(1).key));
  }

  wire::Response Place(RelayClient& client, const audit::LegalHold& hold) {
    wire::Request request;
    const auto bytes = audit::EncodeLegalHold(hold);
    EXPECT_TRUE(bytes);
    if (bytes) request.mutable_place_legal_hold()->set_hold(std::string(bytes->begin(), bytes->end()));
    auto response = client.Call(request);
    EXPECT_TRUE(response.has_value());
    return response.value_or(wire::Response());
  }

  std::vector<std::int64_t> Held() {
    auto held = relay_->audit()->HeldMonths();
    EXPECT_TRUE(held);
    return held ? *held : std::vector<std::int64_t>();
  }

  crypto::X25519KeyPair auditor_ = crypto::X25519KeyPair::Generate();
  TestUser erin_{"erin"};
  std::unique_ptr<RelayClient> erin_client_;
};

TEST_F(RelayLegalHoldTest, AHoldByAnAdminAndAnAuditorKeepsItsMonthsPastRetention) {
  const std::int64_t month = ThisMonth();
  audit::LegalHold hold = Hold({month});
  Sign(hold, dave_);  // the auditor signs first and hands it over
  Sign(hold, erin_);  // the organisation's admin signs and places it
  const auto placed = Place(*erin_client_, hold);
  ASSERT_TRUE(placed.has_legal_hold_placed()) << placed.error().message();
  EXPECT_EQ(Held(), std::vector<std::int64_t>{month});
  auto entries = relay_->audit()->log().Entries(placed.legal_hold_placed().index(), 1);
  ASSERT_TRUE(entries && entries->size() == 1);
  auto recorded = audit::DecodeEntry((*entries)[0].entry);
  ASSERT_TRUE(recorded);
  EXPECT_EQ(recorded->type, audit::EventType::kLegalHoldPlaced);

  // Eight months on, with six kept: this month's details stay, as do the entries.
  relay_->AdvanceClock(std::chrono::hours(24 * 31 * 8));
  auto erased = relay_->audit()->ApplyRetention();
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 0u);
  auto all = relay_->audit()->log().Entries(0, 500);
  ASSERT_TRUE(all);
  for (const auto& stored : *all) EXPECT_TRUE(stored.sealed_details.has_value()) << stored.index;
  // The hold survives a restart: it is in the log's store, not in memory.
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  EXPECT_EQ(Held(), std::vector<std::int64_t>{month});
}

TEST_F(RelayLegalHoldTest, WithoutTheHoldTheSameMonthsAreErased) {
  relay_->AdvanceClock(std::chrono::hours(24 * 31 * 8));
  auto erased = relay_->audit()->ApplyRetention();
  ASSERT_TRUE(erased);
  EXPECT_GT(*erased, 0u);
}

TEST_F(RelayLegalHoldTest, HoldsWithoutBothRolesOrValidSignaturesAreRefused) {
  const std::int64_t month = ThisMonth();
  const auto code = [&](RelayClient& client, const audit::LegalHold& hold) {
    return Place(client, hold).error().code();
  };
  {  // one signature only
    audit::LegalHold hold = Hold({month});
    Sign(hold, erin_);
    EXPECT_EQ(code(*erin_client_, hold), wire::ERROR_CODE_FORBIDDEN);
  }
  {  // an admin and a plain member
    audit::LegalHold hold = Hold({month});
    Sign(hold, bob_);
    Sign(hold, erin_);
    EXPECT_EQ(code(*erin_client_, hold), wire::ERROR_CODE_FORBIDDEN);
  }
  {  // an auditor and a team admin who is not the organisation's admin
    audit::LegalHold hold = Hold({month});
    Sign(hold, dave_);
    Sign(hold, alice_);
    EXPECT_EQ(code(Client("alice"), hold), wire::ERROR_CODE_FORBIDDEN);
  }
  {  // placed by someone who did not sign it
    audit::LegalHold hold = Hold({month});
    Sign(hold, dave_);
    Sign(hold, erin_);
    EXPECT_EQ(code(Client("carol"), hold), wire::ERROR_CODE_FORBIDDEN);
  }
  {  // the reason changed after signing
    audit::LegalHold hold = Hold({month});
    Sign(hold, dave_);
    Sign(hold, erin_);
    hold.reason = "autre affaire";
    EXPECT_EQ(code(*erin_client_, hold), wire::ERROR_CODE_AUTHENTICATION_FAILED);
  }
  {  // signed by a key that is not the signer's registered device key
    audit::LegalHold hold = Hold({month});
    Sign(hold, dave_);
    ASSERT_TRUE(audit::SignLegalHold(hold, "erin", 1, crypto::SigningKey::Generate()));
    EXPECT_EQ(code(*erin_client_, hold), wire::ERROR_CODE_FORBIDDEN);
  }
  {  // for another relay's log
    audit::LegalHold hold = Hold({month});
    hold.origin = "relay.other.example/audit";
    Sign(hold, dave_);
    Sign(hold, erin_);
    EXPECT_EQ(code(*erin_client_, hold), wire::ERROR_CODE_MALFORMED);
  }
  EXPECT_TRUE(Held().empty());
}

}  // namespace
}  // namespace coffre::server
