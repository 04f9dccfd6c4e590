// Legal holds from the command line's side (decision 0018): the auditor signs a hold into a
// file, the organisation's admin checks and co-signs it and the relay obeys it.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "client_fixture.h"

namespace coffre::client {
namespace {

class LegalHoldClientTest : public testing::AuditedTeamTest {
 protected:
  std::filesystem::path HoldFile() const { return dir_.path() / "hold.bin"; }

  std::vector<std::int64_t> Held() {
    auto held = relay_->audit()->HeldMonths();
    EXPECT_TRUE(held);
    return held ? *held : std::vector<std::int64_t>();
  }
};

TEST_F(LegalHoldClientTest, TheAuditorSignsTheAdminPlacesTheRelayKeeps) {
  auto started = dave_->StartLegalHold({"2026-06", "2026-05", "2026-06"}, "Réquisition 2026/113", HoldFile());
  ASSERT_OK(started);
  EXPECT_FALSE(started->placed);
  EXPECT_EQ(started->months, (std::vector<std::string>{"2026-05", "2026-06"}));  // sorted, once each
  ASSERT_EQ(started->signers.size(), 1u);
  EXPECT_TRUE(Held().empty());  // nothing happens on one signature

  auto placed = alice_->CompleteLegalHold(HoldFile());
  ASSERT_OK(placed);
  EXPECT_TRUE(placed->placed);
  EXPECT_EQ(placed->signers.size(), 2u);
  EXPECT_EQ(placed->reason, "Réquisition 2026/113");
  EXPECT_EQ(Held(), (std::vector<std::int64_t>{56 * 12 + 4, 56 * 12 + 5}));

  AuditFilter holds;
  holds.type = "legal_hold_placed";
  auto entries = dave_->AuditEntries(holds);
  ASSERT_OK(entries);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ(entries->front().index, placed->index);
}

TEST_F(LegalHoldClientTest, AChangedFileOrTheWrongRolesAreRefused) {
  EXPECT_FALSE(dave_->StartLegalHold({"2026-13"}, "x", HoldFile()));
  ASSERT_OK(dave_->StartLegalHold({"2026-05"}, "Réquisition 2026/113", HoldFile()));
  EXPECT_EQ(dave_->StartLegalHold({"2026-05"}, "again", HoldFile()).error().code(), ErrorCode::kAlreadyExists);

  // One byte of the reason changed on the way: the admin's device refuses to co-sign.
  std::vector<char> bytes;
  {
    std::ifstream in(HoldFile(), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto changed = dir_.path() / "changed.bin";
  auto altered = bytes;
  altered[altered.size() / 2] ^= 0x01;
  std::ofstream(changed, std::ios::binary).write(altered.data(), static_cast<std::streamsize>(altered.size()));
  EXPECT_FALSE(alice_->CompleteLegalHold(changed));

  // An auditor and a plain member do not make a hold: the relay refuses it.
  auto bob = Enrol("bob");
  ASSERT_TRUE(bob);
  const auto by_bob = dir_.path() / "by-bob.bin";
  ASSERT_OK(bob->StartLegalHold({"2026-05"}, "Réquisition 2026/113", by_bob));
  EXPECT_FALSE(dave_->CompleteLegalHold(by_bob));
  // Nor does one person signing twice.
  EXPECT_FALSE(dave_->CompleteLegalHold(HoldFile()));
  EXPECT_TRUE(Held().empty());
}

}  // namespace
}  // namespace coffre::client
