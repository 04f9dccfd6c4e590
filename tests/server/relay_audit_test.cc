// The relay's audit log, end to end: what gets recorded (logins, chain statements, items,
// fetches before they are served, refusals), checkpoints that verify under the log key,
// proofs that verify against them, and entries for auditors only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace testing;

class RelayAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<TestRelay>(dir_.path() / "relay");
    ASSERT_TRUE(relay_->Start());
    for (TestUser* user : {&alice_, &bob_, &carol_, &dave_}) {
      auto client = RelayClient::Connect(relay_->port());
      ASSERT_NE(client, nullptr);
      tokens_[user->id()] = Onboard(*relay_, *client, *user);
      clients_[user->id()] = std::move(client);
    }
    // Alice admin, bob member, dave auditor; carol is not in the team.
    team_ = CreateTeam(*clients_["alice"], alice_,
                       {{"bob", wire::ROLE_MEMBER}, {"dave", wire::ROLE_AUDITOR}});
  }

  RelayClient& Client(const std::string& user) { return *clients_.at(user); }

  // The latest checkpoint, verified under the log key the relay names and its origin.
  audit::Checkpoint FreshCheckpoint(RelayClient& client, std::string* note = nullptr) {
    wire::Request request;
    request.mutable_get_audit_checkpoint()->set_fresh(true);
    auto response = client.Call(request);
    EXPECT_TRUE(response && response->has_audit_checkpoint());
    if (!response || !response->has_audit_checkpoint()) return {};
    auto verifier = audit::NoteVerifier::FromVerifierKey(response->audit_checkpoint().log_key());
    EXPECT_TRUE(verifier);
    EXPECT_EQ(response->audit_checkpoint().log_key(), relay_->audit()->VerifierKey());
    auto checkpoint = audit::ParseAndVerifyCheckpoint(response->audit_checkpoint().note(), *verifier,
                                                      relay_->config().audit.origin);
    EXPECT_TRUE(checkpoint) << (checkpoint ? "" : checkpoint.error().context());
    if (note != nullptr) *note = response->audit_checkpoint().note();
    return checkpoint ? *checkpoint : audit::Checkpoint{};
  }

  // Every entry of the log, read as auditor dave.
  std::vector<audit::Entry> AllEntries() {
    std::vector<audit::Entry> entries;
    for (std::uint64_t from = 0;;) {
      wire::Request request;
      request.mutable_get_audit_entries()->set_from_index(from);
      request.mutable_get_audit_entries()->set_limit(100);
      auto response = Client("dave").Call(request);
      EXPECT_TRUE(response && response->has_audit_entries());
      if (!response || !response->has_audit_entries()) break;
      for (const auto& stored : response->audit_entries().entries()) {
        EXPECT_EQ(stored.index(), from);
        auto decoded = audit::DecodeEntry(AsBytes(stored.entry()));
        EXPECT_TRUE(decoded);
        if (decoded) entries.push_back(*decoded);
        ++from;
      }
      if (!response->audit_entries().more()) break;
    }
    return entries;
  }

  static std::span<const std::uint8_t> AsBytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

  static bool Same(const audit::ObjectId& id, const std::string& bytes) {
    return bytes.size() == id.size() && std::memcmp(id.data(), bytes.data(), id.size()) == 0;
  }

  static std::size_t Count(const std::vector<audit::Entry>& entries, audit::EventType type,
                           audit::EventResult result = audit::EventResult::kSuccess) {
    return static_cast<std::size_t>(std::count_if(entries.begin(), entries.end(), [&](const auto& e) {
      return e.type == type && e.result == result;
    }));
  }

  TempDir dir_;
  std::unique_ptr<TestRelay> relay_;
  TestUser alice_{"alice"}, bob_{"bob"}, carol_{"carol"}, dave_{"dave"};
  std::map<std::string, std::unique_ptr<RelayClient>> clients_;
  std::map<std::string, std::string> tokens_;
  TeamSetup team_;
};

TEST_F(RelayAuditTest, AccountsTeamsAndItemsAreRecordedWithNodeAndJurisdiction) {
  const std::string item = RandomId();
  ASSERT_TRUE(Client("alice")
                  .Call(PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key))
                  ->has_item_accepted());
  const auto entries = AllEntries();
  EXPECT_EQ(Count(entries, audit::EventType::kEnrolment), 4u);
  EXPECT_EQ(Count(entries, audit::EventType::kLogin), 4u);
  EXPECT_EQ(Count(entries, audit::EventType::kTeamCreated), 1u);
  EXPECT_EQ(Count(entries, audit::EventType::kMemberAdded), 2u);
  EXPECT_EQ(Count(entries, audit::EventType::kItemVersionUploaded), 1u);
  for (const auto& entry : entries) {
    EXPECT_EQ(entry.node, relay_->config().audit.node);
    EXPECT_EQ(entry.jurisdiction, "FR");
  }
  // One person, one pseudonym: alice's login and upload share the actor.
  std::optional<audit::Pseudonym> login_actor, upload_actor;
  for (const auto& entry : entries) {
    if (entry.type == audit::EventType::kTeamCreated) login_actor = entry.actor;
    if (entry.type == audit::EventType::kItemVersionUploaded) upload_actor = entry.actor;
  }
  ASSERT_TRUE(login_actor && upload_actor);
  EXPECT_EQ(*login_actor, *upload_actor);
}

TEST_F(RelayAuditTest, FetchesAreRecordedAndRefusalsAsRefused) {
  const std::string item = RandomId();
  ASSERT_TRUE(Client("alice")
                  .Call(PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key))
                  ->has_item_accepted());
  wire::Request get;
  get.mutable_get_item()->set_team_id(team_.team_id);
  get.mutable_get_item()->set_item_id(item);
  ASSERT_TRUE(Client("bob").Call(get)->has_item());
  auto refused = Client("carol").Call(get);
  ASSERT_TRUE(refused && refused->has_error());
  EXPECT_EQ(refused->error().code(), wire::ERROR_CODE_FORBIDDEN);

  const std::string blob = RandomId();
  wire::Request create;
  create.mutable_create_blob()->set_team_id(team_.team_id);
  create.mutable_create_blob()->set_blob_id(blob);
  create.mutable_create_blob()->set_size(4);
  ASSERT_TRUE(Client("alice").Call(create)->has_blob());
  ASSERT_EQ(BlobPut(relay_->port(), tokens_["alice"], team_.team_id, blob, 0, "abcd").status, 200u);
  ASSERT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob).status, 200u);
  ASSERT_EQ(BlobGet(relay_->port(), tokens_["carol"], team_.team_id, blob).status, 403u);

  const auto entries = AllEntries();
  EXPECT_EQ(Count(entries, audit::EventType::kItemFetched), 1u);
  EXPECT_EQ(Count(entries, audit::EventType::kItemFetched, audit::EventResult::kRefused), 1u);
  EXPECT_EQ(Count(entries, audit::EventType::kBlobFetched), 1u);
  EXPECT_EQ(Count(entries, audit::EventType::kBlobFetched, audit::EventResult::kRefused), 1u);
  for (const auto& entry : entries) {
    if (entry.type != audit::EventType::kItemFetched && entry.type != audit::EventType::kBlobFetched) continue;
    ASSERT_TRUE(entry.team_id.has_value());
    EXPECT_TRUE(Same(*entry.team_id, team_.team_id));
    ASSERT_TRUE(entry.item_id.has_value());
    const std::string& expected = entry.type == audit::EventType::kItemFetched ? item : blob;
    EXPECT_TRUE(Same(*entry.item_id, expected));
  }
}

TEST_F(RelayAuditTest, CheckpointsVerifyAndEveryEntryIsProvablyIncluded) {
  std::string first_note;
  const audit::Checkpoint first = FreshCheckpoint(Client("bob"), &first_note);
  ASSERT_GT(first.size, 0u);
  // The same size asked again gives the same signed note.
  std::string again;
  EXPECT_EQ(FreshCheckpoint(Client("bob"), &again).size, first.size);
  EXPECT_EQ(again, first_note);

  ASSERT_TRUE(Client("alice")
                  .Call(PutItem(ManifestBody(team_.team_id, RandomId(), 1, 0, "alice", 1),
                                alice_.device(1).key))
                  ->has_item_accepted());
  const audit::Checkpoint second = FreshCheckpoint(Client("bob"));
  ASSERT_GT(second.size, first.size);

  wire::Request consistency;
  consistency.mutable_get_audit_proof()->mutable_consistency()->set_first_size(first.size);
  consistency.mutable_get_audit_proof()->mutable_consistency()->set_second_size(second.size);
  auto proof = Client("bob").Call(consistency);
  ASSERT_TRUE(proof && proof->has_audit_proof());
  std::vector<audit::Hash> hashes;
  for (const auto& hash : proof->audit_proof().hashes()) {
    audit::Hash h{};
    std::copy(hash.begin(), hash.end(), h.begin());
    hashes.push_back(h);
  }
  EXPECT_TRUE(audit::VerifyConsistency(first.size, second.size, hashes, first.root, second.root));

  // Every entry: its leaf hash is included in the second checkpoint.
  wire::Request page;
  page.mutable_get_audit_entries()->set_from_index(0);
  page.mutable_get_audit_entries()->set_limit(500);
  auto entries = Client("dave").Call(page);
  ASSERT_TRUE(entries && entries->has_audit_entries());
  ASSERT_GE(static_cast<std::uint64_t>(entries->audit_entries().entries_size()), second.size);
  for (std::uint64_t index = 0; index < second.size; ++index) {
    const std::string& encoded = entries->audit_entries().entries(static_cast<int>(index)).entry();
    wire::Request inclusion;
    inclusion.mutable_get_audit_proof()->mutable_inclusion()->set_index(index);
    inclusion.mutable_get_audit_proof()->mutable_inclusion()->set_tree_size(second.size);
    auto included = Client("bob").Call(inclusion);
    ASSERT_TRUE(included && included->has_audit_proof());
    std::vector<audit::Hash> path;
    for (const auto& hash : included->audit_proof().hashes()) {
      audit::Hash h{};
      std::copy(hash.begin(), hash.end(), h.begin());
      path.push_back(h);
    }
    EXPECT_TRUE(audit::VerifyInclusion(index, second.size, audit::HashLeaf(AsBytes(encoded)), path,
                                       second.root))
        << "entry " << index;
  }
  // A size the log never reached has no proof.
  wire::Request beyond;
  beyond.mutable_get_audit_proof()->mutable_inclusion()->set_index(0);
  beyond.mutable_get_audit_proof()->mutable_inclusion()->set_tree_size(second.size + 1000);
  auto refused = Client("bob").Call(beyond);
  ASSERT_TRUE(refused && refused->has_error());
  EXPECT_EQ(refused->error().code(), wire::ERROR_CODE_NOT_FOUND);
}

TEST_F(RelayAuditTest, OnlyAuditorsReadEntriesAndTheRefusalIsRecorded) {
  wire::Request page;
  page.mutable_get_audit_entries()->set_from_index(0);
  page.mutable_get_audit_entries()->set_limit(10);
  auto refused = Client("bob").Call(page);
  ASSERT_TRUE(refused && refused->has_error());
  EXPECT_EQ(refused->error().code(), wire::ERROR_CODE_FORBIDDEN);
  const auto entries = AllEntries();
  EXPECT_EQ(Count(entries, audit::EventType::kAuditExported, audit::EventResult::kRefused), 1u);
  // Dave's own reading is recorded too, after the page it returned: the next reading sees it.
  EXPECT_EQ(Count(entries, audit::EventType::kAuditExported), 0u);
  EXPECT_EQ(Count(AllEntries(), audit::EventType::kAuditExported), 1u);
}

TEST_F(RelayAuditTest, LogSurvivesARestartWithTheSameKey) {
  const audit::Checkpoint before = FreshCheckpoint(Client("bob"));
  const std::string key = relay_->audit()->VerifierKey();
  clients_.clear();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  EXPECT_EQ(relay_->audit()->VerifierKey(), key);
  EXPECT_EQ(relay_->audit()->log().Size(), before.size);
  auto client = RelayClient::Connect(relay_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_FALSE(client->Login("bob", bob_.device(1), relay_->relay_identity()).empty());
  const audit::Checkpoint after = FreshCheckpoint(*client);
  EXPECT_EQ(after.size, before.size + 1);  // bob's login
}

}  // namespace
}  // namespace coffre::server
