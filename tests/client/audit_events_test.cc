// Events only a device sees — a document written to a file, opened from an application's
// own copy — reach the relay's log as statements the device signs, numbered and linked
// (decision 0017): the auditor sees them, and a relay that drops one is caught, by the
// auditor when a gap shows and by the device itself when it was the last.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "client_fixture.h"
#include "coffre/client/audit_bundle.h"

namespace coffre::client {
namespace {

constexpr char kTeam[] = "sdis-operations";

class AuditEventsTest : public testing::AuditedTeamTest {
 protected:
  void SetUp() override {
    AuditedTeamTest::SetUp();
    if (HasFatalFailure()) return;
    const auto plan = dir_.path() / "plan.txt";
    std::ofstream(plan) << "Plan ETARE, secteur nord";
    auto put = alice_->PutDocument(kTeam, plan, std::nullopt, std::nullopt, {});
    ASSERT_OK(put);
    document_ = put->document_id;
  }

  void Export(Client& client) {
    const auto output = dir_.path() / ("copy-" + std::to_string(++exports_));
    ASSERT_OK(client.GetDocument(kTeam, document_, output, std::nullopt, {}));
  }

  // The device-signed events in the log, as the auditor lists them.
  std::vector<AuditEntryView> DeviceEvents(const std::string& type) {
    AuditFilter filter;
    filter.type = type;
    auto entries = dave_->AuditEntries(filter);
    EXPECT_TRUE(entries) << entries.error().context();
    return entries ? *entries : std::vector<AuditEntryView>();
  }

  // Alice writes the plan to a file `times` times; the events the auditor then sees.
  std::vector<AuditEntryView> AliceExports(int times) {
    for (int i = 0; i < times; ++i) Export(*alice_);
    return DeviceEvents("document_exported");
  }

  // The relay removes entry `index` and closes the hole: a log consistent with itself and
  // with the checkpoints it signs from then on.
  void DropFromLog(std::uint64_t index) {
    const std::string at = std::to_string(index);
    EditAuditLog("DELETE FROM audit_entries WHERE idx = " + at +
                 ";UPDATE audit_entries SET idx = idx - 1 WHERE idx > " + at +
                 ";DELETE FROM audit_checkpoints;");
  }

  std::string document_;
  int exports_ = 0;
};

TEST_F(AuditEventsTest, ExportsAndOpeningsAreSignedNumberedAndVerified) {
  Export(*alice_);
  Export(*alice_);
  ASSERT_OK(alice_->RecordDocumentOpened(kTeam, document_, 1));
  const auto exported = DeviceEvents("document_exported");
  ASSERT_EQ(exported.size(), 2u);
  EXPECT_EQ(exported[0].device_sequence, 1u);
  EXPECT_EQ(exported[1].device_sequence, 2u);
  EXPECT_EQ(exported[0].object, document_);
  EXPECT_EQ(exported[0].version, 1u);
  EXPECT_EQ(exported[0].result, "success");
  EXPECT_GT(exported[0].device_time_ms, 0u);
  const auto opened = DeviceEvents("document_opened");
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].device_sequence, 3u);
  EXPECT_EQ(opened[0].device_id, exported[0].device_id);

  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->problem;
  auto own = alice_->VerifyAuditLog();  // alice, the organisation's admin, checks her own
  ASSERT_OK(own);
  EXPECT_TRUE(own->ok) << own->problem;

  // Only a version this profile knows can be reported opened.
  EXPECT_FALSE(alice_->RecordDocumentOpened(kTeam, document_, 7));
  EXPECT_FALSE(alice_->RecordDocumentOpened(kTeam, "00112233445566778899aabbccddeeff", 1));
}

// The auditor gets no key, but is told which team it audits: it names the team as its
// members do, and still cannot read a document of it.
TEST_F(AuditEventsTest, TheAuditorNamesTheTeamButReadsNoDocument) {
  Export(*alice_);
  Sync(*dave_);
  auto teams = dave_->ListTeams();
  ASSERT_OK(teams);
  ASSERT_EQ(teams->size(), 1u);
  EXPECT_EQ(teams->front().name, kTeam);
  AuditFilter filter;
  filter.team = kTeam;
  filter.type = "document_exported";
  auto entries = dave_->AuditEntries(filter);
  ASSERT_OK(entries);
  EXPECT_EQ(entries->size(), 1u);
  EXPECT_FALSE(dave_->GetDocument(kTeam, document_, dir_.path() / "auditor-copy", std::nullopt, {}));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "auditor-copy"));
}

TEST_F(AuditEventsTest, AnEventRecordedOfflineGoesAtTheNextSync) {
  relay_->Stop();
  ASSERT_OK(alice_->RecordDocumentOpened(kTeam, document_, 1));  // kept in the profile
  ASSERT_TRUE(relay_->Start());
  EXPECT_TRUE(DeviceEvents("document_opened").empty());
  Sync(*alice_);
  const auto opened = DeviceEvents("document_opened");
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0].device_sequence, 1u);
  // Sent once: a second sync sends nothing again.
  Sync(*alice_);
  EXPECT_EQ(DeviceEvents("document_opened").size(), 1u);
}

TEST_F(AuditEventsTest, ARelayThatDropsAnEventShowsAGap) {
  const auto exported = AliceExports(3);
  ASSERT_EQ(exported.size(), 3u);
  DropFromLog(exported[1].index);  // before anyone witnessed it
  auto report = dave_->VerifyAuditLog();
  ASSERT_OK(report);
  EXPECT_FALSE(report->ok);
  EXPECT_NE(report->problem.find("2..2"), std::string::npos) << report->problem;
  ASSERT_TRUE(report->first_bad_index.has_value());
  EXPECT_EQ(*report->first_bad_index, exported[2].index - 1);  // where the third now is
}

TEST_F(AuditEventsTest, ARelayThatDropsTheLastEventIsCaughtByTheDevice) {
  const auto exported = AliceExports(2);
  ASSERT_EQ(exported.size(), 2u);
  DropFromLog(exported[1].index);
  // No gap shows to the auditor: the chain just ends at 1.
  auto auditor = dave_->VerifyAuditLog();
  ASSERT_OK(auditor);
  EXPECT_TRUE(auditor->ok) << auditor->problem;
  // The device knows it sent 2 and where the relay said it went.
  auto device = alice_->VerifyAuditLog();
  ASSERT_OK(device);
  EXPECT_FALSE(device->ok);
  EXPECT_NE(device->problem.find("this device reported"), std::string::npos) << device->problem;
  ASSERT_TRUE(device->first_bad_index.has_value());
  EXPECT_EQ(*device->first_bad_index, exported[1].index);
}

TEST_F(AuditEventsTest, BundlesCarryTheDeviceSignaturesAndCheckThem) {
  const auto exported = AliceExports(2);
  ASSERT_EQ(exported.size(), 2u);
  AuditFilter filter;
  filter.type = "document_exported";
  const auto bundle = dir_.path() / "bundle";
  ASSERT_OK(dave_->ExportAudit(filter, bundle));
  auto report = VerifyAuditBundle(bundle, std::nullopt);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->problem << " " << report->where;
  EXPECT_EQ(report->device_events, 2u);
  EXPECT_TRUE(report->notes.empty());

  // Only the second export selected: the first number is missing from the bundle, said.
  filter.from_ms = exported[1].time_ms;
  const auto later = dir_.path() / "later";
  ASSERT_OK(dave_->ExportAudit(filter, later));
  auto partial = VerifyAuditBundle(later, std::nullopt);
  ASSERT_OK(partial);
  EXPECT_TRUE(partial->ok) << partial->problem;
  ASSERT_EQ(partial->notes.size(), 1u);
  EXPECT_NE(partial->notes[0].find("events 1..1"), std::string::npos) << partial->notes[0];

  // One bit of the first event's device signature flipped in records.bin.
  const auto records = bundle / "records.bin";
  std::string bytes;
  {
    std::ifstream in(records, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::size_t first = std::string("coffre-audit-records/2\n").size() + 8;
  const std::size_t size = static_cast<std::size_t>(static_cast<std::uint8_t>(bytes[first + 9])) << 8 |
                           static_cast<std::uint8_t>(bytes[first + 10]);
  bytes[first + 11 + size - 1] ^= 0x01;  // the entry's last byte: its event's signature
  std::ofstream(records, std::ios::binary | std::ios::trunc) << bytes;
  auto changed = VerifyAuditBundle(bundle, std::nullopt);
  ASSERT_OK(changed);
  EXPECT_FALSE(changed->ok);
  EXPECT_NE(changed->problem.find("signature"), std::string::npos) << changed->problem;
  EXPECT_EQ(changed->where, "records.bin record 1");
}

}  // namespace
}  // namespace coffre::client
