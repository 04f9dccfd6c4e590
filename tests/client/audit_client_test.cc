// The audit log from the client side: every device witnesses the relay's checkpoints, and an
// auditor's `audit verify` names the first entry a relay rewrote in its database.
#include <gtest/gtest.h>

#include <algorithm>

#include "client_fixture.h"
#include "coffre/storage/database.h"

namespace coffre::client {
namespace {

class AuditClientTest : public testing::AuditedTeamTest {
 protected:
  void SetUp() override {
    AuditedTeamTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK(alice_->CreateChannel("sdis-operations", "plans"));
    ASSERT_OK(alice_->Post("sdis-operations", "plans", "Point de regroupement", std::nullopt));
  }
};

TEST_F(AuditClientTest, AuditorVerifiesTheWholeLogAndSeesTheFetches) {
  Sync(*dave_);
  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_GT(report->tree_size, 5u);
  EXPECT_EQ(report->entries_checked, report->tree_size);

  AuditFilter logins;
  logins.type = "login";
  auto entries = dave_->AuditEntries(logins);
  ASSERT_OK(entries);
  EXPECT_FALSE(entries->empty());
  for (const auto& entry : *entries) {
    EXPECT_EQ(entry.type, "login");
    EXPECT_EQ(entry.jurisdiction, "FR");
  }
  // The auditor holds no team key and so no team name: the team id selects.
  auto shown = alice_->ShowTeam("sdis-operations");
  ASSERT_OK(shown);
  AuditFilter team;
  team.team = shown->team_id;
  auto about_team = dave_->AuditEntries(team);
  ASSERT_OK(about_team);
  EXPECT_FALSE(about_team->empty());
  for (const auto& entry : *about_team) EXPECT_EQ(entry.team, shown->team_id);
  team.team = "unknown-team";
  EXPECT_FALSE(dave_->AuditEntries(team));
  AuditFilter bad;
  bad.type = "teleported";
  EXPECT_FALSE(dave_->AuditEntries(bad));
  // Verified again later: the log only grew, and what was verified is unchanged.
  Sync(*alice_);
  auto again = dave_->VerifyAuditLog();
  ASSERT_OK(again);
  EXPECT_TRUE(again->ok) << again->problem;
  EXPECT_EQ(again->previous_size, report->tree_size);
  EXPECT_GT(again->tree_size, report->tree_size);
}

TEST_F(AuditClientTest, MembersWhoAreNotAuditorsCannotReadEntries) {
  auto entries = alice_->AuditEntries({});
  // Alice is the organisation's admin: she may. A plain member may not.
  ASSERT_OK(entries);
  auto bob = Enrol("bob");
  ASSERT_TRUE(bob);
  auto refused = bob->AuditEntries({});
  ASSERT_FALSE(refused);
}

TEST_F(AuditClientTest, ChangedEntryIsNamedByItsIndex) {
  auto first = dave_->VerifyAuditLog();
  ASSERT_OK(first);
  ASSERT_TRUE(first->ok) << first->problem;
  // The relay's operator rewrites entry 3 (its stored leaf hash left as it was).
  EditAuditLog("UPDATE audit_entries SET entry = substr(entry, 1, length(entry) - 1) || x'46' WHERE idx = 3");
  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  ASSERT_TRUE(report->first_bad_index.has_value()) << report->problem;
  EXPECT_EQ(*report->first_bad_index, 3u);
}

TEST_F(AuditClientTest, ReorderedEntriesAreNamedByTheFirstIndex) {
  ASSERT_TRUE(dave_->VerifyAuditLog()->ok);
  // Entries 2 and 4 swapped, their leaf hashes with them, and the checkpoints re-signed.
  EditAuditLog(
      "UPDATE audit_entries SET idx = -1 WHERE idx = 2;"
      "UPDATE audit_entries SET idx = 2 WHERE idx = 4;"
      "UPDATE audit_entries SET idx = 4 WHERE idx = -1;"
      "DELETE FROM audit_checkpoints;");
  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  // The relay's new tree does not extend the checkpoint dave verified: an alarm.
  EXPECT_NE(report->problem.find("does not extend"), std::string::npos) << report->problem;
}

TEST_F(AuditClientTest, RemovedEntryIsNamed) {
  ASSERT_TRUE(dave_->VerifyAuditLog()->ok);
  // Entry 1 removed and every later one moved down, checkpoints re-signed: a shorter or
  // different log.
  EditAuditLog(
      "DELETE FROM audit_entries WHERE idx = 1;"
      "UPDATE audit_entries SET idx = idx - 1 WHERE idx > 1;"
      "DELETE FROM audit_checkpoints;");
  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_FALSE(report->problem.empty());
}

TEST_F(AuditClientTest, WitnessRaisesAnAlarmWhenTheLogIsRewritten) {
  Sync(*alice_);  // alice pins the log and its checkpoint
  EditAuditLog(
      "UPDATE audit_entries SET idx = -1 WHERE idx = 0;"
      "UPDATE audit_entries SET idx = 0 WHERE idx = 1;"
      "UPDATE audit_entries SET idx = 1 WHERE idx = -1;"
      "DELETE FROM audit_checkpoints;");
  ASSERT_OK(alice_->Post("sdis-operations", "plans", "Après réécriture", std::nullopt));
  auto report = alice_->Sync();
  ASSERT_OK(report);
  bool alarmed = false;
  for (const auto& warning : report->warnings) {
    alarmed |= warning.find("AUDIT LOG ALARM") != std::string::npos;
  }
  EXPECT_TRUE(alarmed);
}

}  // namespace
}  // namespace coffre::client

namespace coffre::client {
namespace {

bool HasWarning(const SyncReport& report, std::string_view text) {
  return std::any_of(report.warnings.begin(), report.warnings.end(),
                     [&](const std::string& warning) { return warning.find(text) != std::string::npos; });
}

// A relay that shows two members two different logs (here: its log rewritten between the
// moment alice verified it and the moment bob first sees it). Each member's posts carry its
// checkpoint, and each detects the other's as a fork.
TEST_F(AuditClientTest, ForkIsDetectedByBothMembersThroughCheckpointsInPosts) {
  auto bob = Enrol("bob");
  ASSERT_TRUE(bob);
  ASSERT_OK(alice_->AddMember("sdis-operations", "bob", Role::kMember));
  Sync(*alice_);  // alice pins the log as it is now
  ASSERT_OK(alice_->Post("sdis-operations", "plans", "Vue d'Alice", std::nullopt));

  EditAuditLog(
      "UPDATE audit_entries SET idx = -1 WHERE idx = 0;"
      "UPDATE audit_entries SET idx = 0 WHERE idx = 1;"
      "UPDATE audit_entries SET idx = 1 WHERE idx = -1;"
      "DELETE FROM audit_checkpoints;");

  // Bob first sees the rewritten log, then alice's post and the checkpoint in it.
  auto bob_report = bob->Sync();
  ASSERT_OK(bob_report);
  EXPECT_TRUE(HasWarning(*bob_report, "seen in a post by alice")) << "bob did not detect the fork";
  ASSERT_OK(bob->Post("sdis-operations", "plans", "Vue de Bob", std::nullopt));

  auto alice_report = alice_->Sync();
  ASSERT_OK(alice_report);
  EXPECT_TRUE(HasWarning(*alice_report, "seen in a post by bob")) << "alice did not detect the fork";
}

TEST_F(AuditClientTest, ConsistentViewsInPostsRaiseNoAlarm) {
  auto bob = Enrol("bob");
  ASSERT_TRUE(bob);
  ASSERT_OK(alice_->AddMember("sdis-operations", "bob", Role::kMember));
  Sync(*alice_);
  ASSERT_OK(alice_->Post("sdis-operations", "plans", "Vue d'Alice", std::nullopt));
  Sync(*bob);  // fails the test on any warning
  ASSERT_OK(bob->Post("sdis-operations", "plans", "Vue de Bob", std::nullopt));
  Sync(*alice_);
  auto read = bob->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt);
  ASSERT_OK(read);
  EXPECT_EQ(read->size(), 3u);
}

}  // namespace
}  // namespace coffre::client

namespace coffre::client {
namespace {

TEST_F(AuditClientTest, DetailsOpenForTheAuditorWhoseKeyTheTeamSet) {
  auto key = dave_->AuditorKey();
  ASSERT_OK(key);
  EXPECT_EQ(*dave_->AuditorKey(), *key);  // made once, kept
  EXPECT_FALSE(alice_->SetTeamAuditorKey("sdis-operations", "not hex"));
  ASSERT_OK(alice_->SetTeamAuditorKey("sdis-operations", *key));
  ASSERT_OK(alice_->Post("sdis-operations", "plans", "Après la clé d'audit", std::nullopt));
  auto shown = alice_->ShowTeam("sdis-operations");
  ASSERT_OK(shown);

  AuditFilter by_alice;
  by_alice.team = shown->team_id;
  by_alice.user = "alice";
  auto entries = dave_->AuditEntries(by_alice);
  ASSERT_OK(entries);
  ASSERT_FALSE(entries->empty());
  for (const auto& entry : *entries) {
    EXPECT_EQ(entry.details, "opened");
    EXPECT_EQ(entry.actor_user, "alice");
    EXPECT_FALSE(entry.address.empty());
  }
  // Without the auditor key, --user cannot be answered.
  AuditFilter by_user;
  by_user.user = "alice";
  EXPECT_FALSE(alice_->AuditEntries(by_user));
}

}  // namespace
}  // namespace coffre::client
