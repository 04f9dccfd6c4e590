// What the client's end-to-end tests share: an in-process relay over real TLS in a
// temporary folder, and profiles enrolled against it.
#ifndef COFFRE_TESTS_CLIENT_CLIENT_FIXTURE_H_
#define COFFRE_TESTS_CLIENT_CLIENT_FIXTURE_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/client/client.h"
#include "coffre/client/relay_address.h"
#include "coffre/storage/database.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

// Asserts that a Status or Result succeeded, printing its error's sentence otherwise.
#define ASSERT_OK(expr)                                                \
  do {                                                                 \
    const auto& status_ = (expr);                                      \
    ASSERT_TRUE(status_) << #expr << ": " << status_.error().context(); \
  } while (false)

namespace coffre::client::testing {

inline crypto::SecretBytes Secret(std::string_view text) {
  return crypto::SecretBytes::CopyOf(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<server::testing::TestRelay>(dir_.path() / "relay");
    ASSERT_TRUE(relay_->Start());
  }

  std::filesystem::path ProfileDir(const std::string& login) const { return dir_.path() / login; }
  static crypto::SecretBytes Passphrase(const std::string& login) { return Secret("passphrase of " + login); }

  // Creates `login`'s profile and account (an admin of the organisation when `admin`).
  std::unique_ptr<Client> Enrol(const std::string& login, bool admin = false) {
    InitOptions options;
    options.relay_url = "https://127.0.0.1:" + std::to_string(relay_->port());
    CertificateFingerprint fingerprint{};
    std::copy(relay_->relay_identity().begin(), relay_->relay_identity().end(), fingerprint.begin());
    options.relay_fingerprint = FormatFingerprint(fingerprint);
    options.enrolment_code = Secret(relay_->Enrol("sdis13", admin));
    options.user_id = login;
    options.display_name = login + " Martin";
    InitReport report;
    auto client = Client::Init(ProfileDir(login), Passphrase(login), options, &report);
    EXPECT_TRUE(client) << login << ": " << (client ? "" : client.error().context());
    if (!client) return nullptr;
    EXPECT_EQ(report.user_id, login);
    EXPECT_EQ(report.admin, admin);
    return std::move(*client);
  }

  // Opens `login`'s existing profile again, as a new process would.
  std::unique_ptr<Client> Reopen(const std::string& login) {
    auto client = Client::Open(ProfileDir(login), Passphrase(login));
    EXPECT_TRUE(client) << login << ": " << (client ? "" : client.error().context());
    return client ? std::move(*client) : nullptr;
  }

  static std::vector<std::string> Texts(const Result<std::vector<PostView>>& posts) {
    std::vector<std::string> texts;
    if (posts) {
      for (const auto& post : *posts) texts.push_back(post.text);
    }
    return texts;
  }

  // Syncs and fails the test on any error or warning.
  static void Sync(Client& client) {
    auto report = client.Sync();
    ASSERT_TRUE(report) << client.user_id() << ": " << report.error().context();
    for (const auto& warning : report->warnings) ADD_FAILURE() << client.user_id() << ": " << warning;
  }

  server::testing::TempDir dir_;
  std::unique_ptr<server::testing::TestRelay> relay_;
};

// Alice, the organisation's admin, with team sdis-operations whose auditor is Dave: what the
// audit tests start from.
class AuditedTeamTest : public ClientTest {
 protected:
  void SetUp() override {
    ClientTest::SetUp();
    alice_ = Enrol("alice", /*admin=*/true);
    dave_ = Enrol("dave");
    ASSERT_TRUE(alice_ && dave_);
    ASSERT_TRUE(alice_->CreateTeam("sdis-operations"));
    ASSERT_TRUE(alice_->AddMember("sdis-operations", "dave", Role::kAuditor));
  }

  // A relay that rewrites its log: stops it, runs `sql` on its audit database, starts it
  // again.
  void EditAuditLog(const std::string& sql) {
    relay_->Stop();
    ASSERT_TRUE(relay_->EditAuditStore([&](storage::Database& db) { ASSERT_TRUE(db.Execute(sql.c_str())); }));
    ASSERT_TRUE(relay_->Start());
  }

  std::unique_ptr<Client> alice_, dave_;
};

}  // namespace coffre::client::testing

#endif  // COFFRE_TESTS_CLIENT_CLIENT_FIXTURE_H_
