// A relay with four onboarded users and one team: alice admin, bob member, dave auditor,
// carol outside. What the item and audit tests of the relay start from.
#ifndef COFFRE_TESTS_SERVER_TEAM_FIXTURE_H_
#define COFFRE_TESTS_SERVER_TEAM_FIXTURE_H_

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server::testing {

class TeamOfFourTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  // A fresh relay (in a new folder each time) with the four users and the team.
  void Start(const std::function<void(RelayConfig&)>& tweak = {}) {
    clients_.clear();
    relay_.reset();
    relay_ = std::make_unique<TestRelay>(dir_.path() / std::to_string(++starts_), tweak);
    ASSERT_TRUE(relay_->Start());
    for (TestUser* user : {&alice_, &bob_, &carol_, &dave_}) {
      auto client = RelayClient::Connect(relay_->port());
      ASSERT_NE(client, nullptr);
      tokens_[user->id()] = Onboard(*relay_, *client, *user);
      clients_[user->id()] = std::move(client);
    }
    team_ = CreateTeam(*clients_["alice"], alice_,
                       {{"bob", wire::ROLE_MEMBER}, {"dave", wire::ROLE_AUDITOR}});
  }

  RelayClient& Client(const std::string& user) { return *clients_.at(user); }

  TempDir dir_;
  int starts_ = 0;
  std::unique_ptr<TestRelay> relay_;
  TestUser alice_{"alice"};
  TestUser bob_{"bob"};
  TestUser carol_{"carol"};
  TestUser dave_{"dave"};
  std::map<std::string, std::unique_ptr<RelayClient>> clients_;
  std::map<std::string, std::string> tokens_;
  TeamSetup team_;
};

}  // namespace coffre::server::testing

#endif  // COFFRE_TESTS_SERVER_TEAM_FIXTURE_H_
