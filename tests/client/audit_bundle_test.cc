// Audit export bundles: an auditor's export verifies offline (no relay, no profile), and
// every single-byte change of any of its files is detected and located.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "client_fixture.h"
#include "coffre/audit/signed_note.h"
#include "coffre/client/audit_bundle.h"

namespace coffre::client {
namespace {

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

void WriteAll(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

class AuditBundleTest : public testing::AuditedTeamTest {
 protected:
  void SetUp() override {
    AuditedTeamTest::SetUp();
    if (HasFatalFailure()) return;
    bundle_ = dir_.path() / "bundle";
    AuditFilter logins;
    logins.type = "login";
    auto exported = dave_->ExportAudit(logins, bundle_);
    ASSERT_OK(exported);
    ASSERT_GT(exported->records, 0u);
    log_key_ = relay_->audit()->VerifierKey();
  }

  std::filesystem::path bundle_;
  std::string log_key_;
};

TEST_F(AuditBundleTest, ExportVerifiesOfflineUnderThePinnedKey) {
  relay_->Stop();  // offline: nothing below talks to the relay
  auto report = VerifyAuditBundle(bundle_, log_key_);
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok) << report->problem << " at " << report->where;
  EXPECT_TRUE(report->log_key_pinned);
  EXPECT_EQ(report->exported_by, "dave/" + std::to_string(dave_->device_id()));
  const std::string csv = ReadAll(bundle_ / "records.csv");
  EXPECT_EQ(csv.rfind("time,actor,device,action,object,result,node,jurisdiction", 0), 0u);
  EXPECT_NE(csv.find(",login,"), std::string::npos);

  auto unpinned = VerifyAuditBundle(bundle_, std::nullopt);
  ASSERT_OK(unpinned);
  EXPECT_TRUE(unpinned->ok);
  EXPECT_FALSE(unpinned->log_key_pinned);
  // Another log key: the checkpoint is not one of this log.
  auto other_key = audit::NoteVerifier::FromPublicKey(relay_->config().audit.origin,
                                                      crypto::SigningKey::Generate().verify_key());
  ASSERT_OK(other_key);
  auto other = VerifyAuditBundle(bundle_, other_key->VerifierKey());
  ASSERT_OK(other);
  EXPECT_FALSE(other->ok);
  // An existing folder is never overwritten.
  EXPECT_FALSE(dave_->ExportAudit({}, bundle_));
}

TEST_F(AuditBundleTest, EverySingleByteChangeIsDetectedAndLocated) {
  for (const char* name : {"manifest.json", "manifest.sig", "checkpoint.txt", "records.jsonl", "records.csv"}) {
    const std::filesystem::path path = bundle_ / name;
    const std::string original = ReadAll(path);
    ASSERT_FALSE(original.empty()) << name;
    for (std::size_t i = 0; i < original.size(); ++i) {
      std::string changed = original;
      changed[i] = static_cast<char>(changed[i] ^ 0x01);
      WriteAll(path, changed);
      auto report = VerifyAuditBundle(bundle_, log_key_);
      ASSERT_OK(report);
      ASSERT_FALSE(report->ok) << name << " byte " << i << " changed and not detected";
      EXPECT_FALSE(report->where.empty()) << name << " byte " << i;
    }
    WriteAll(path, original);
    ASSERT_TRUE(VerifyAuditBundle(bundle_, log_key_)->ok) << name;
  }
}

TEST_F(AuditBundleTest, MissingOrExtraContentIsDetected) {
  const std::string csv = ReadAll(bundle_ / "records.csv");
  WriteAll(bundle_ / "records.csv", csv + csv.substr(csv.find('\n') + 1));
  auto extra = VerifyAuditBundle(bundle_, log_key_);
  ASSERT_OK(extra);
  EXPECT_FALSE(extra->ok);
  EXPECT_EQ(extra->where, "records.csv");
  WriteAll(bundle_ / "records.csv", csv);
  std::filesystem::remove(bundle_ / "checkpoint.txt");
  auto missing = VerifyAuditBundle(bundle_, log_key_);
  ASSERT_OK(missing);
  EXPECT_FALSE(missing->ok);
  EXPECT_EQ(missing->where, "checkpoint.txt");
  EXPECT_FALSE(VerifyAuditBundle(dir_.path() / "no-such-bundle", log_key_));
}

}  // namespace
}  // namespace coffre::client
