// Audit export bundles: an auditor's export verifies offline (no relay, no profile), and
// every single-byte change of any of its files is detected and located.
#include "coffre/client/audit_bundle.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client_fixture.h"
#include "coffre/audit/signed_note.h"

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

// Where a change of each byte of a bundle file must be reported, when the file's format
// lets the test tell ("" when only the file can be named): the line of a text file, the
// record of a binary file (walked here from the layout docs/protocol.md gives, not with
// the exporter's code). A newline or a length prefix changes the framing, so a problem
// further on may be the first one seen.
std::vector<std::string> ExpectedPlaces(const std::string& name, const std::string& data) {
  std::vector<std::string> places(data.size());
  if (name == "records.jsonl" || name == "records.csv") {
    std::size_t line = 1;
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (data[i] == '\n') {
        ++line;
        continue;
      }
      places[i] = name + " line " + std::to_string(line);
    }
  } else if (name == "records.bin" || name == "proofs.bin") {
    const bool records = name == "records.bin";
    std::size_t at =
        (records ? std::string("coffre-audit-records/2\n") : std::string("coffre-audit-proofs/2\n"))
            .size() +
        8;
    for (std::size_t record = 1; at < data.size(); ++record) {
      const std::string place = name + " record " + std::to_string(record);
      if (records) {
        // index (8) || details state (1) || n (2) || entry (n): all but n are the record's.
        const std::size_t n = static_cast<std::size_t>(static_cast<std::uint8_t>(data[at + 9])) << 8 |
                              static_cast<std::uint8_t>(data[at + 10]);
        for (std::size_t i = at; i < at + 11 + n && i < data.size(); ++i) {
          places[i] = i == at + 9 || i == at + 10 ? "" : place;
        }
        at += 11 + n;
      } else {
        // m (1) || m hashes: every hash byte is the proof's.
        const std::size_t m = static_cast<std::uint8_t>(data[at]);
        for (std::size_t i = at + 1; i < at + 1 + 32 * m && i < data.size(); ++i) places[i] = place;
        at += 1 + 32 * m;
      }
    }
  }
  return places;
}

TEST_F(AuditBundleTest, EverySingleByteChangeIsDetectedAndLocated) {
  for (const char* name : {"manifest.json", "manifest.sig", "checkpoint.txt", "records.bin",
                           "proofs.bin", "records.jsonl", "records.csv"}) {
    const std::filesystem::path path = bundle_ / name;
    const std::string original = ReadAll(path);
    ASSERT_FALSE(original.empty()) << name;
    const std::vector<std::string> places = ExpectedPlaces(name, original);
    // The manifest and its signature fail together: either may be named.
    const std::string file = std::string(name).rfind("manifest", 0) == 0 ? "manifest" : name;
    for (std::size_t i = 0; i < original.size(); ++i) {
      std::string changed = original;
      changed[i] = static_cast<char>(changed[i] ^ 0x01);
      WriteAll(path, changed);
      auto report = VerifyAuditBundle(bundle_, log_key_);
      ASSERT_OK(report);
      ASSERT_FALSE(report->ok) << name << " byte " << i << " changed and not detected";
      EXPECT_NE(report->where.find(file), std::string::npos)
          << name << " byte " << i << ": " << report->where;
      if (!places[i].empty()) {
        EXPECT_EQ(report->where, places[i]) << name << " byte " << i;
      }
    }
    WriteAll(path, original);
    ASSERT_TRUE(VerifyAuditBundle(bundle_, log_key_)->ok) << name;
  }
}

// A whole log exported: consecutive records whose proofs share most of their hashes, which
// the verifier compares rather than rehashes. A change in any hash of any proof, low or
// high in the tree, still fails at that record.
TEST_F(AuditBundleTest, EveryProofHashOfConsecutiveRecordsIsChecked) {
  const std::filesystem::path all = dir_.path() / "all";
  auto exported = dave_->ExportAudit({}, all);
  ASSERT_OK(exported);
  ASSERT_EQ(exported->records, exported->tree_size);
  ASSERT_GE(exported->records, 4u);
  ASSERT_TRUE(VerifyAuditBundle(all, log_key_)->ok);
  const std::filesystem::path path = all / "proofs.bin";
  const std::string original = ReadAll(path);
  std::size_t at = std::string("coffre-audit-proofs/2\n").size() + 8;
  std::size_t checked = 0;
  for (std::size_t record = 1; at < original.size(); ++record) {
    const std::size_t hashes = static_cast<std::uint8_t>(original[at]);
    for (std::size_t h = 0; h < hashes; ++h) {
      std::string changed = original;
      const std::size_t byte = at + 1 + 32 * h + (record + h) % 32;
      changed[byte] = static_cast<char>(changed[byte] ^ 0x80);
      WriteAll(path, changed);
      auto report = VerifyAuditBundle(all, log_key_);
      ASSERT_OK(report);
      ASSERT_FALSE(report->ok) << "record " << record << " hash " << h;
      EXPECT_EQ(report->where, "proofs.bin record " + std::to_string(record));
      ++checked;
    }
    at += 1 + 32 * hashes;
  }
  WriteAll(path, original);
  EXPECT_GT(checked, exported->records);
  EXPECT_TRUE(VerifyAuditBundle(all, log_key_)->ok);
}

TEST_F(AuditBundleTest, EveryTruncationIsDetectedAndLocated) {
  for (const char* name :
       {"checkpoint.txt", "records.bin", "proofs.bin", "records.jsonl", "records.csv"}) {
    const std::filesystem::path path = bundle_ / name;
    const std::string original = ReadAll(path);
    for (std::size_t size = 0; size < original.size(); ++size) {
      WriteAll(path, original.substr(0, size));
      auto report = VerifyAuditBundle(bundle_, log_key_);
      ASSERT_OK(report);
      ASSERT_FALSE(report->ok) << name << " cut at " << size;
      EXPECT_EQ(report->where.rfind(name, 0), 0u)
          << name << " cut at " << size << ": " << report->where;
    }
    WriteAll(path, original);
  }
  ASSERT_TRUE(VerifyAuditBundle(bundle_, log_key_)->ok);
}

TEST_F(AuditBundleTest, JsonLinesAreJsonWithTheDocumentedFields) {
  std::istringstream lines(ReadAll(bundle_ / "records.jsonl"));
  const std::string csv = ReadAll(bundle_ / "records.csv");
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto record = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(record.is_object()) << line;
    for (const char* key : {"index", "time", "time_ms", "actor", "device", "action", "object",
                            "result", "node", "jurisdiction", "team", "version", "details"}) {
      EXPECT_TRUE(record.contains(key)) << key;
    }
    EXPECT_EQ(record["action"], "login");
    EXPECT_TRUE(record["index"].is_number_unsigned());
    EXPECT_EQ(record["time"].get<std::string>().size(),
              std::string("2026-11-29T01:19:26.011Z").size());
    // The CSV says the same of the record, starting with its time.
    EXPECT_NE(csv.find("\n" + record["time"].get<std::string>() + ","), std::string::npos);
  }
  EXPECT_GT(count, 0u);
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
