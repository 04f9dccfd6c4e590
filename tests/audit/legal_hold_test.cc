#include "coffre/audit/legal_hold.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "coffre/crypto/signature.h"

namespace coffre::audit {
namespace {

LegalHold Unsigned() {
  LegalHold hold;
  hold.origin = "relay.sdis13.example.fr/audit";
  hold.months = {*ParseMonth("2026-05"), *ParseMonth("2026-06")};
  hold.issued_ms = 1'764'000'000'000;
  hold.reason = "Réquisition 2026/113";
  return hold;
}

TEST(LegalHoldTest, TwoSignaturesRoundTripAndVerify) {
  const auto auditor = crypto::SigningKey::Generate();
  const auto admin = crypto::SigningKey::Generate();
  LegalHold hold = Unsigned();
  ASSERT_TRUE(SignLegalHold(hold, "denis", 7, auditor));
  ASSERT_TRUE(SignLegalHold(hold, "alice", 3, admin));
  EXPECT_TRUE(VerifyLegalHoldSignatures(hold));
  const auto encoded = EncodeLegalHold(hold);
  ASSERT_TRUE(encoded);
  const auto decoded = DecodeLegalHold(*encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, hold);
  EXPECT_EQ(decoded->signatures[1].device_key, admin.verify_key().bytes());
  // A third signature, or a second by the same user, is refused.
  EXPECT_FALSE(SignLegalHold(hold, "bob", 1, crypto::SigningKey::Generate()));
  LegalHold once = Unsigned();
  ASSERT_TRUE(SignLegalHold(once, "denis", 7, auditor));
  EXPECT_FALSE(SignLegalHold(once, "denis", 8, admin));
  EXPECT_EQ(once.signatures.size(), 1u);
}

// Whatever byte changes, the hold no longer decodes or no longer verifies.
TEST(LegalHoldTest, EveryChangedByteFailsDecodingOrSignatures) {
  LegalHold hold = Unsigned();
  ASSERT_TRUE(SignLegalHold(hold, "denis", 7, crypto::SigningKey::Generate()));
  ASSERT_TRUE(SignLegalHold(hold, "alice", 3, crypto::SigningKey::Generate()));
  const auto encoded = *EncodeLegalHold(hold);
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    auto changed = encoded;
    changed[i] ^= 0x01;
    const auto decoded = DecodeLegalHold(changed);
    if (!decoded) continue;
    if (decoded->signatures[0].user_id != "denis" || decoded->signatures[1].user_id != "alice" ||
        decoded->signatures[0].device_id != 7 || decoded->signatures[1].device_id != 3) {
      continue;  // a signer's name or device changed: the relay's lookup catches it
    }
    EXPECT_FALSE(VerifyLegalHoldSignatures(*decoded)) << i;
  }
  for (std::size_t size = 0; size < encoded.size(); ++size) {
    EXPECT_FALSE(DecodeLegalHold(std::span(encoded).first(size))) << size;
  }
  auto longer = encoded;
  longer.push_back(0);
  EXPECT_FALSE(DecodeLegalHold(longer));
}

TEST(LegalHoldTest, BodiesOutsideTheirFormAreRefused) {
  const auto key = crypto::SigningKey::Generate();
  const auto refused = [&](auto change) {
    LegalHold hold = Unsigned();
    change(hold);
    EXPECT_EQ(SignLegalHold(hold, "denis", 1, key).error().code(), ErrorCode::kInvalidArgument);
    EXPECT_FALSE(EncodeLegalHold(hold));
  };
  refused([](LegalHold& h) { h.months.clear(); });
  refused([](LegalHold& h) { h.months = {5, 5}; });
  refused([](LegalHold& h) { h.months = {6, 5}; });
  refused([](LegalHold& h) { h.months = {-1}; });
  refused([](LegalHold& h) { h.months.assign(kMaxHeldMonths + 1, 0); });
  refused([](LegalHold& h) { h.reason.clear(); });
  refused([](LegalHold& h) { h.reason = "ligne 1\nligne 2"; });
  refused([](LegalHold& h) { h.reason = std::string(kMaxLegalHoldReasonSize + 1, 'r'); });
  refused([](LegalHold& h) { h.origin.clear(); });
  LegalHold hold = Unsigned();
  EXPECT_FALSE(SignLegalHold(hold, "Denis", 1, key));  // not a user id
  EXPECT_FALSE(SignLegalHold(hold, "denis", 0, key));  // not a device id
  auto other = *EncodeLegalHold(Unsigned());
  other[0] = 2;
  EXPECT_EQ(DecodeLegalHold(other).error().code(), ErrorCode::kUnsupported);
}

TEST(LegalHoldTest, MonthsAreWrittenYYYYMM) {
  EXPECT_EQ(*ParseMonth("1970-01"), 0);
  EXPECT_EQ(*ParseMonth("2026-11"), 56 * 12 + 10);
  EXPECT_EQ(FormatMonth(56 * 12 + 10), "2026-11");
  EXPECT_EQ(FormatMonth(0), "1970-01");
  for (const char* bad : {"", "2026-13", "2026-00", "1969-12", "2026-1", "2026/11", "20261-1", "2a26-11"}) {
    EXPECT_FALSE(ParseMonth(bad)) << bad;
  }
}

}  // namespace
}  // namespace coffre::audit
