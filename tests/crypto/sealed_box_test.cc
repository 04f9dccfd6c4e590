#include "coffre/crypto/sealed_box.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "coffre/crypto/x25519.h"

namespace coffre::crypto {
namespace {

constexpr std::string_view kLabel = "coffre.test.sealed-box.v1";

std::vector<std::uint8_t> Bytes(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

void ExpectOpenFailure(const Result<SecretBytes>& result) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(result.error().context(), "sealed box: failed authentication");
}

class SealedBoxTest : public ::testing::Test {
 protected:
  X25519KeyPair recipient_ = X25519KeyPair::Generate();
  std::vector<std::uint8_t> plaintext_ = Bytes("team key, epoch 4");
  std::vector<std::uint8_t> sealed_ = SealToPublicKey(recipient_.public_key(), kLabel, plaintext_);
};

TEST_F(SealedBoxTest, OpenRecoversPlaintext) {
  Result<SecretBytes> opened = OpenSealedBox(recipient_, kLabel, sealed_);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(ConstantTimeEquals(opened->span(), plaintext_));
}

TEST_F(SealedBoxTest, EmptyPlaintextRoundTrips) {
  const std::vector<std::uint8_t> sealed = SealToPublicKey(recipient_.public_key(), kLabel, {});
  Result<SecretBytes> opened = OpenSealedBox(recipient_, kLabel, sealed);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(opened->empty());
}

TEST_F(SealedBoxTest, SizeIsOverheadPlusLabelPrefixPlusPlaintext) {
  EXPECT_EQ(sealed_.size(), kSealedBoxOverhead + 2 + kLabel.size() + plaintext_.size());
}

TEST_F(SealedBoxTest, SealingTwiceGivesDifferentBoxes) {
  // A fresh ephemeral key per box: equal plaintexts must not be linkable.
  EXPECT_NE(SealToPublicKey(recipient_.public_key(), kLabel, plaintext_), sealed_);
}

TEST_F(SealedBoxTest, OpenFailsOnFlippedBitAnywhere) {
  // Covers the ephemeral public key (first 32 bytes), the tag and the ciphertext.
  for (std::size_t i = 0; i < sealed_.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      std::vector<std::uint8_t> flipped = sealed_;
      flipped[i] = static_cast<std::uint8_t>(flipped[i] ^ (1u << bit));
      ExpectOpenFailure(OpenSealedBox(recipient_, kLabel, flipped));
    }
  }
}

TEST_F(SealedBoxTest, OpenFailsOnEveryTruncation) {
  for (std::size_t size = 0; size < sealed_.size(); ++size) {
    const std::vector<std::uint8_t> truncated(sealed_.begin(),
                                              sealed_.begin() + static_cast<std::ptrdiff_t>(size));
    ExpectOpenFailure(OpenSealedBox(recipient_, kLabel, truncated));
  }
}

TEST_F(SealedBoxTest, OpenFailsOnAppendedByte) {
  std::vector<std::uint8_t> extended = sealed_;
  extended.push_back(0);
  ExpectOpenFailure(OpenSealedBox(recipient_, kLabel, extended));
}

TEST_F(SealedBoxTest, OpenFailsWithWrongLabel) {
  ExpectOpenFailure(OpenSealedBox(recipient_, "coffre.test.sealed-box.v2", sealed_));
  // A label that is a prefix of the real one, and one of the same length.
  ExpectOpenFailure(OpenSealedBox(recipient_, "coffre.test", sealed_));
  ExpectOpenFailure(OpenSealedBox(recipient_, "coffre.test.sealed-box.v0", sealed_));
}

TEST_F(SealedBoxTest, OpenFailsForAnotherRecipient) {
  const X25519KeyPair other = X25519KeyPair::Generate();
  ExpectOpenFailure(OpenSealedBox(other, kLabel, sealed_));
}

TEST_F(SealedBoxTest, LabelAndPlaintextBoundaryIsUnambiguous) {
  const std::vector<std::uint8_t> sealed =
      SealToPublicKey(recipient_.public_key(), "ab", Bytes("c"));
  ExpectOpenFailure(OpenSealedBox(recipient_, "a", sealed));
  Result<SecretBytes> opened = OpenSealedBox(recipient_, "ab", sealed);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(ConstantTimeEquals(opened->span(), Bytes("c")));
}

TEST(SealedBoxDeathTest, SealAbortsOnEmptyLabel) {
  const X25519KeyPair recipient = X25519KeyPair::Generate();
  EXPECT_DEATH((void)SealToPublicKey(recipient.public_key(), "", {}), "");
}

TEST(SealedBoxDeathTest, OpenAbortsOnEmptyLabel) {
  const X25519KeyPair recipient = X25519KeyPair::Generate();
  const std::vector<std::uint8_t> sealed = SealToPublicKey(recipient.public_key(), kLabel, {});
  EXPECT_DEATH((void)OpenSealedBox(recipient, "", sealed), "");
}

}  // namespace
}  // namespace coffre::crypto
