// End to end: three people's profiles against an in-process relay over real TLS.
#include <algorithm>
#include <string>
#include <vector>

#include "client/client_fixture.h"

namespace coffre::client {
namespace {

using testing::Secret;

class ClientScenarioTest : public testing::ClientTest {};

TEST_F(ClientScenarioTest, TeamPostsRemovalAndDirectMessages) {
  auto alice = Enrol("alice", /*admin=*/true);
  auto bob = Enrol("bob");
  auto carla = Enrol("carla");
  ASSERT_TRUE(alice && bob && carla);

  auto team = alice->CreateTeam("sdis-operations");
  ASSERT_TRUE(team) << team.error().context();
  EXPECT_EQ(team->key_generation, 1u);
  ASSERT_OK(alice->AddMember("sdis-operations", "bob", Role::kMember));
  ASSERT_OK(alice->AddMember("sdis-operations", "carla", Role::kMember));
  ASSERT_OK(alice->CreateChannel("sdis-operations", "plans"));
  auto first = alice->Post("sdis-operations", "plans", "Point de regroupement Nord", std::nullopt);
  ASSERT_TRUE(first) << first.error().context();
  auto reply = alice->Post("sdis-operations", "plans", "Accès par la rue Sud", *first);
  ASSERT_TRUE(reply) << reply.error().context();

  Sync(*bob);
  Sync(*carla);
  auto bob_view = bob->ShowTeam("sdis-operations");
  ASSERT_TRUE(bob_view) << bob_view.error().context();
  EXPECT_EQ(bob_view->members.size(), 3u);
  EXPECT_EQ(Texts(bob->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)),
            (std::vector<std::string>{"Point de regroupement Nord", "Accès par la rue Sud"}));
  auto thread = bob->ReadChannel("sdis-operations", "plans", *first, std::nullopt);
  ASSERT_TRUE(thread);
  ASSERT_EQ(thread->size(), 2u);
  EXPECT_EQ((*thread)[1].parent_id, *first);
  EXPECT_EQ(Texts(carla->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)).size(), 2u);

  ASSERT_OK(alice->RemoveMember("sdis-operations", "carla"));
  auto after = alice->Post("sdis-operations", "plans", "Après retrait", std::nullopt);
  ASSERT_TRUE(after) << after.error().context();
  Sync(*bob);
  auto carla_sync = carla->Sync();
  ASSERT_TRUE(carla_sync);
  EXPECT_EQ(Texts(bob->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)).back(), "Après retrait");
  const auto carla_texts = Texts(carla->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt));
  EXPECT_EQ(std::count(carla_texts.begin(), carla_texts.end(), "Après retrait"), 0);

  ASSERT_OK(bob->SendDirect("alice", "Bien reçu"));
  Sync(*alice);
  auto direct = alice->ReadDirect("bob");
  ASSERT_TRUE(direct);
  ASSERT_EQ(direct->size(), 1u);
  EXPECT_EQ((*direct)[0].text, "Bien reçu");
  EXPECT_EQ((*direct)[0].from, "bob");
}

TEST_F(ClientScenarioTest, WrongPassphraseIsAClearError) {
  auto alice = Enrol("alice", true);
  ASSERT_TRUE(alice);
  alice.reset();
  auto opened = Client::Open(dir_.path() / "alice", Secret("not the passphrase"));
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code(), ErrorCode::kWrongPassphrase);
  auto missing = Client::Open(dir_.path() / "nobody", Secret("x"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST_F(ClientScenarioTest, UsedEnrolmentCodeLeavesNoProfileBehind) {
  InitOptions options;
  options.relay_url = "https://127.0.0.1:" + std::to_string(relay_->port());
  options.enrolment_code = Secret("not-a-code-0123456789");
  options.user_id = "mallory";
  options.display_name = "Mallory";
  auto client = Client::Init(dir_.path() / "mallory", Secret("pass"), options, nullptr);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "mallory"));
}

}  // namespace
}  // namespace coffre::client
