// The relay's audit log, end to end: what gets recorded (logins, chain statements, items,
// fetches before they are served, refusals), checkpoints that verify under the log key,
// proofs that verify against them, and entries for auditors only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "coffre/storage/database.h"
#include "server/relay_harness.h"
#include "server/team_fixture.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace testing;

// Alice admin, bob member, dave auditor; carol is not in the team.
class RelayAuditTest : public TeamOfFourTest {
 protected:
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

namespace coffre::server {
namespace {

using namespace testing;

// Months since January 1970 of now, as the relay counts them.
std::int64_t CurrentMonth() {
  using namespace std::chrono;
  const year_month_day day{floor<days>(system_clock::now())};
  return (static_cast<int>(day.year()) - 1970) * 12 + static_cast<unsigned>(day.month()) - 1;
}

class RelayAuditRetentionTest : public ::testing::Test {
 protected:
  // A relay whose organisation auditor key is auditor_, with `hold` under legal hold.
  void Start(std::vector<std::int64_t> hold) {
    relay_ = std::make_unique<TestRelay>(dir_.path() / "relay", [&](RelayConfig& config) {
      config.audit.auditor_key = auditor_.public_key();
      config.audit.retention_months = 6;
      config.audit.legal_hold_months = hold;
    });
    ASSERT_TRUE(relay_->Start());
    auto client = RelayClient::Connect(relay_->port());
    ASSERT_NE(client, nullptr);
    ASSERT_FALSE(Onboard(*relay_, *client, alice_).empty());
  }

  std::vector<storage::AuditStoredEntry> Entries() {
    auto entries = relay_->audit()->log().Entries(0, 100);
    EXPECT_TRUE(entries);
    return entries ? *entries : std::vector<storage::AuditStoredEntry>{};
  }

  // The month keys the relay still stores for `entries`' sealed details.
  std::vector<storage::AuditMonthKeyRecord> MonthKeysOf(
      const std::vector<storage::AuditStoredEntry>& entries) {
    std::vector<std::uint64_t> ids;
    for (const auto& stored : entries) {
      if (!stored.sealed_details) continue;
      auto id = audit::SealedDetailsKeyId(*stored.sealed_details);
      EXPECT_TRUE(id);
      if (id) ids.push_back(*id);
    }
    auto keys = relay_->audit()->log().MonthKeys(ids);
    EXPECT_TRUE(keys);
    return keys ? *keys : std::vector<storage::AuditMonthKeyRecord>{};
  }

  // `sealed` opened as `auditor` would: the month key it names, from `keys`, opened with the
  // auditor key, then the details. nullopt when any step fails.
  static std::optional<audit::Details> Open(const std::vector<std::uint8_t>& sealed,
                                            const std::vector<storage::AuditMonthKeyRecord>& keys,
                                            const crypto::X25519KeyPair& auditor) {
    auto id = audit::SealedDetailsKeyId(sealed);
    if (!id) return std::nullopt;
    for (const auto& record : keys) {
      if (record.key_id != *id) continue;
      auto key = audit::OpenMonthKey(auditor, record.sealed_key);
      if (!key) return std::nullopt;
      auto details = audit::OpenDetailsUnder(*key, sealed);
      if (!details) return std::nullopt;
      return *details;
    }
    return std::nullopt;
  }

  TempDir dir_;
  crypto::X25519KeyPair auditor_ = crypto::X25519KeyPair::Generate();
  TestUser alice_{"alice"};
  std::unique_ptr<TestRelay> relay_;
};

TEST_F(RelayAuditRetentionTest, DetailsAreErasedAfterRetentionAndEveryProofStaysValid) {
  Start({});
  const auto before = Entries();
  ASSERT_FALSE(before.empty());
  // Details are sealed under a month key that only the auditor opens: the login names
  // alice, for the auditor only. One key serves the whole month.
  const auto keys = MonthKeysOf(before);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].month, CurrentMonth());
  EXPECT_TRUE(std::equal(keys[0].auditor_key.begin(), keys[0].auditor_key.end(),
                         auditor_.public_key().bytes().begin(),
                         auditor_.public_key().bytes().end()));
  EXPECT_FALSE(audit::OpenMonthKey(crypto::X25519KeyPair::Generate(), keys[0].sealed_key));
  bool found_alice = false;
  for (const auto& stored : before) {
    ASSERT_TRUE(stored.sealed_details.has_value());
    auto details = Open(*stored.sealed_details, keys, auditor_);
    ASSERT_TRUE(details);
    found_alice |= details->actor_user_id == "alice" || details->subject_user_id == "alice";
  }
  EXPECT_TRUE(found_alice);
  auto checkpoint = relay_->audit()->log().Checkpoint(/*fresh=*/true);
  ASSERT_TRUE(checkpoint);

  // Eight months later, with six months of retention: the details and their month key go,
  // nothing else.
  relay_->AdvanceClock(std::chrono::hours(24 * 31 * 8));
  auto erased = relay_->audit()->ApplyRetention();
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, before.size());
  EXPECT_TRUE(MonthKeysOf(before).empty());
  const auto after = Entries();
  ASSERT_EQ(after.size(), before.size());
  auto verifier = audit::NoteVerifier::FromVerifierKey(relay_->audit()->VerifierKey());
  ASSERT_TRUE(verifier);
  auto parsed = audit::ParseAndVerifyCheckpoint(checkpoint->note, *verifier, relay_->config().audit.origin);
  ASSERT_TRUE(parsed);
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(after[i].erased);
    EXPECT_FALSE(after[i].sealed_details.has_value());
    EXPECT_EQ(after[i].entry, before[i].entry);
    // The entry still commits to the hash of the details it had.
    auto entry = audit::DecodeEntry(after[i].entry);
    ASSERT_TRUE(entry && entry->details_hash.has_value());
    EXPECT_EQ(*entry->details_hash, audit::DetailsHash(*before[i].sealed_details));
    if (i < parsed->size) {
      auto proof = relay_->audit()->log().InclusionProof(i, parsed->size);
      ASSERT_TRUE(proof);
      EXPECT_TRUE(audit::VerifyInclusion(i, parsed->size, audit::HashLeaf(after[i].entry), *proof,
                                         parsed->root));
    }
  }
}

// Crypto-shredding: copies of the sealed details made before retention (an old export, an
// old backup) no longer open with anything a backup of audit.db taken after retention holds.
TEST_F(RelayAuditRetentionTest, ABackupAfterRetentionOpensNoErasedDetails) {
  Start({});
  const auto before = Entries();
  ASSERT_FALSE(before.empty());
  relay_->AdvanceClock(std::chrono::hours(24 * 31 * 8));
  ASSERT_TRUE(relay_->audit()->ApplyRetention());
  // The log goes on: this month's login is sealed under a new key, which the backup holds.
  {
    auto client = RelayClient::Connect(relay_->port());
    ASSERT_NE(client, nullptr);
    ASSERT_FALSE(client->Login("alice", alice_.device(1), relay_->relay_identity()).empty());
  }
  relay_->Stop();
  std::vector<storage::AuditMonthKeyRecord> backup_keys;
  std::int64_t details_left = -1;
  ASSERT_TRUE(relay_->EditAuditStore([&](storage::Database& db) {
    auto rows = db.Prepare("SELECT key_id, sealed_key FROM audit_month_keys");
    ASSERT_TRUE(rows);
    for (;;) {
      auto row = rows->Step();
      ASSERT_TRUE(row);
      if (!*row) break;
      storage::AuditMonthKeyRecord key;
      key.key_id = static_cast<std::uint64_t>(rows->ColumnInt64(0));
      key.sealed_key = rows->ColumnBlob(1);
      backup_keys.push_back(std::move(key));
    }
    auto count = db.Prepare("SELECT count(*) FROM audit_entries WHERE details IS NOT NULL");
    ASSERT_TRUE(count && *count->Step());
    details_left = count->ColumnInt64(0);
  }));
  EXPECT_EQ(details_left, 1);  // the login after retention
  ASSERT_EQ(backup_keys.size(), 1u);
  for (const auto& stored : before) {
    ASSERT_TRUE(stored.sealed_details.has_value());
    EXPECT_FALSE(Open(*stored.sealed_details, backup_keys, auditor_));
    // Not with any key the backup holds, whatever id it is filed under.
    for (const auto& key : backup_keys) {
      auto opened = audit::OpenMonthKey(auditor_, key.sealed_key);
      if (opened) {
        EXPECT_FALSE(audit::OpenDetailsUnder(*opened, *stored.sealed_details));
      }
    }
  }
}

TEST_F(RelayAuditRetentionTest, LegalHoldKeepsTheDetailsAndTheKeyOfItsMonths) {
  Start({CurrentMonth()});
  const auto before = Entries();
  ASSERT_FALSE(before.empty());
  relay_->AdvanceClock(std::chrono::hours(24 * 31 * 8));
  auto erased = relay_->audit()->ApplyRetention();
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 0u);
  const auto after = Entries();
  const auto keys = MonthKeysOf(after);
  ASSERT_EQ(keys.size(), 1u);
  for (const auto& stored : after) {
    EXPECT_FALSE(stored.erased);
    ASSERT_TRUE(stored.sealed_details.has_value());
    EXPECT_TRUE(Open(*stored.sealed_details, keys, auditor_));
  }
}

TEST_F(RelayAuditRetentionTest, ARestartSealsUnderANewKeyAndEarlierDetailsStillOpen) {
  Start({});
  const std::size_t first_run = Entries().size();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  auto client = RelayClient::Connect(relay_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_FALSE(client->Login("alice", alice_.device(1), relay_->relay_identity()).empty());
  const auto entries = Entries();
  ASSERT_GT(entries.size(), first_run);
  const auto keys = MonthKeysOf(entries);
  ASSERT_EQ(keys.size(), 2u);  // the same month, a key per run
  EXPECT_EQ(keys[0].month, keys[1].month);
  for (const auto& stored : entries) {
    ASSERT_TRUE(stored.sealed_details.has_value());
    EXPECT_TRUE(Open(*stored.sealed_details, keys, auditor_));
  }
}

}  // namespace
}  // namespace coffre::server
