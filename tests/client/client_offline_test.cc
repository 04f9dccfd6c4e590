// Offline work: writes made while the relay is down wait in the outbox and arrive once;
// a client stopped between its outbox write and the send loses and doubles nothing.
#include <string>
#include <vector>

#include "client/client_fixture.h"
#include "coffre/storage/database.h"

namespace coffre::client {
namespace {

class ClientOfflineTest : public testing::ClientTest {
 protected:
  // Alice (admin) and Bob in team "ops" with channel "plans", both synced.
  void SetUpTeam() {
    alice_ = Enrol("alice", true);
    bob_ = Enrol("bob");
    ASSERT_TRUE(alice_ && bob_);
    ASSERT_OK(alice_->CreateTeam("ops"));
    ASSERT_OK(alice_->AddMember("ops", "bob", Role::kMember));
    ASSERT_OK(alice_->CreateChannel("ops", "plans"));
    Sync(*bob_);
  }

  std::unique_ptr<Client> alice_;
  std::unique_ptr<Client> bob_;
};

TEST_F(ClientOfflineTest, PostsWrittenWhileTheRelayIsDownArriveOnceItIsBack) {
  SetUpTeam();
  relay_->Stop();
  auto first = alice_->Post("ops", "plans", "écrit hors ligne 1", std::nullopt);
  ASSERT_OK(first);
  ASSERT_OK(alice_->Post("ops", "plans", "écrit hors ligne 2", *first));
  // The writer reads its own posts at once, from its profile.
  EXPECT_EQ(Texts(alice_->ReadChannel("ops", "plans", std::nullopt, std::nullopt)).size(), 2u);
  auto offline_sync = alice_->Sync();
  EXPECT_FALSE(offline_sync);  // the relay is down: sync says so, the outbox keeps everything

  // A new process, after the relay is back.
  alice_.reset();
  ASSERT_TRUE(relay_->Start());
  alice_ = Reopen("alice");
  ASSERT_TRUE(alice_);
  auto report = alice_->Sync();
  ASSERT_OK(report);
  EXPECT_EQ(report->outbox_sent, 2u);
  EXPECT_EQ(report->outbox_pending, 0u);
  Sync(*bob_);
  EXPECT_EQ(Texts(bob_->ReadChannel("ops", "plans", std::nullopt, std::nullopt)),
            (std::vector<std::string>{"écrit hors ligne 1", "écrit hors ligne 2"}));
  // A second sync finds nothing more: nothing was doubled.
  auto again = alice_->Sync();
  ASSERT_OK(again);
  EXPECT_EQ(again->outbox_sent, 0u);
}

TEST_F(ClientOfflineTest, AResentWriteAfterACrashIsNotDoubled) {
  SetUpTeam();
  // The state a crash after the send but before the outbox row was deleted leaves: the
  // post went out, and its row is still there (here: put back by hand).
  relay_->Stop();
  ASSERT_OK(alice_->Post("ops", "plans", "une seule fois", std::nullopt));
  alice_.reset();
  {
    auto db = storage::Database::Open(ProfileDir("alice") / "profile.db", Passphrase("alice").span());
    ASSERT_OK(db);
    ASSERT_OK((*db)->Execute("INSERT INTO outbox (request, created_ms) SELECT request, created_ms FROM outbox"));
  }
  ASSERT_TRUE(relay_->Start());
  alice_ = Reopen("alice");
  ASSERT_TRUE(alice_);
  auto report = alice_->Sync();
  ASSERT_OK(report);
  EXPECT_EQ(report->outbox_pending, 0u);
  for (const auto& warning : report->warnings) ADD_FAILURE() << warning;
  Sync(*bob_);
  EXPECT_EQ(Texts(bob_->ReadChannel("ops", "plans", std::nullopt, std::nullopt)),
            (std::vector<std::string>{"une seule fois"}));
}

TEST_F(ClientOfflineTest, DirectMessagesWaitForTheRelayToo) {
  SetUpTeam();
  // A session with Bob exists once Alice has sent him something (the team key).
  relay_->Stop();
  auto sent = alice_->SendDirect("bob", "hors ligne");
  // Without the relay Alice cannot fetch Bob's devices: the message is refused, not lost
  // silently, and nothing is stored as sent.
  ASSERT_FALSE(sent);
  ASSERT_TRUE(relay_->Start());
  ASSERT_OK(alice_->SendDirect("bob", "en ligne"));
  Sync(*bob_);
  auto messages = bob_->ReadDirect("alice");
  ASSERT_OK(messages);
  ASSERT_EQ(messages->size(), 1u);
  EXPECT_EQ((*messages)[0].text, "en ligne");
}

}  // namespace
}  // namespace coffre::client
