#include "coffre/crypto/aead.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/crypto/random.h"
#include "support/vectors.h"

namespace coffre::crypto {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;

constexpr std::string_view kLabel = "coffre.test.aead.v1";
constexpr std::string_view kAssociatedData = "team=7;doc=12;version=3";

std::vector<std::uint8_t> Bytes(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

std::vector<std::uint8_t> FlipBit(std::vector<std::uint8_t> bytes, std::size_t index,
                                  unsigned bit) {
  bytes[index] = static_cast<std::uint8_t>(bytes[index] ^ (1u << bit));
  return bytes;
}

AeadKey KeyFromHex(const std::string& hex) {
  const std::vector<std::uint8_t> raw = FromHex(hex);
  Result<AeadKey> key = AeadKey::FromBytes(SecretBytes::CopyOf(raw));
  if (!key) std::abort();
  return std::move(key).value();
}

// Checks that `result` is the one failure AeadOpen reports, whatever went wrong.
void ExpectOpenFailure(const Result<SecretBytes>& result) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(result.error().context(), "aead: sealed message failed authentication");
}

class AeadTest : public ::testing::Test {
 protected:
  AeadKey key_ = AeadKey::Generate();
  std::vector<std::uint8_t> plaintext_ = Bytes("meeting notes, draft 3");
  std::vector<std::uint8_t> associated_data_ = Bytes(kAssociatedData);
  std::vector<std::uint8_t> sealed_ = AeadSeal(key_, kLabel, plaintext_, associated_data_);
};

// draft-irtf-cfrg-xchacha-03 §A.3.1 through the raw construction that AeadSeal uses.
TEST(AeadKatTest, RawSealAndOpenMatchDraftVector) {
  const auto blocks =
      ReadVectorFile("xchacha20poly1305-draft-irtf-cfrg-xchacha/aead_xchacha20poly1305.txt");
  ASSERT_EQ(blocks.size(), 1u);
  for (const auto& block : blocks) {
    const AeadKey key = KeyFromHex(block.at("KEY"));
    const std::vector<std::uint8_t> nonce = FromHex(block.at("NONCE"));
    ASSERT_EQ(nonce.size(), kAeadNonceSize);
    const std::span<const std::uint8_t, kAeadNonceSize> nonce_span(nonce.data(), kAeadNonceSize);
    const std::vector<std::uint8_t> plaintext = FromHex(block.at("IN"));
    const std::vector<std::uint8_t> ad = FromHex(block.at("AD"));
    std::vector<std::uint8_t> expected = FromHex(block.at("CT"));
    const std::vector<std::uint8_t> tag = FromHex(block.at("TAG"));
    expected.insert(expected.end(), tag.begin(), tag.end());

    EXPECT_EQ(internal::XChaCha20Poly1305Seal(key, nonce_span, plaintext, ad), expected);

    Result<SecretBytes> opened = internal::XChaCha20Poly1305Open(key, nonce_span, expected, ad);
    ASSERT_TRUE(opened.has_value());
    EXPECT_TRUE(ConstantTimeEquals(opened->span(), plaintext));
  }
}

TEST(AeadKatTest, RawOpenRejectsDraftVectorWithFlippedTagBit) {
  const auto blocks =
      ReadVectorFile("xchacha20poly1305-draft-irtf-cfrg-xchacha/aead_xchacha20poly1305.txt");
  ASSERT_EQ(blocks.size(), 1u);
  const auto& block = blocks[0];
  const AeadKey key = KeyFromHex(block.at("KEY"));
  const std::vector<std::uint8_t> nonce = FromHex(block.at("NONCE"));
  ASSERT_EQ(nonce.size(), kAeadNonceSize);
  std::vector<std::uint8_t> body = FromHex(block.at("CT"));
  const std::vector<std::uint8_t> tag = FromHex(block.at("TAG"));
  body.insert(body.end(), tag.begin(), tag.end());
  body = FlipBit(std::move(body), body.size() - 1, 7);
  ExpectOpenFailure(internal::XChaCha20Poly1305Open(
      key, std::span<const std::uint8_t, kAeadNonceSize>(nonce.data(), kAeadNonceSize), body,
      FromHex(block.at("AD"))));
}

TEST_F(AeadTest, OpenRecoversPlaintext) {
  Result<SecretBytes> opened = AeadOpen(key_, kLabel, sealed_, associated_data_);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(ConstantTimeEquals(opened->span(), plaintext_));
}

TEST_F(AeadTest, EmptyPlaintextAndEmptyAssociatedDataRoundTrip) {
  const std::vector<std::uint8_t> sealed = AeadSeal(key_, kLabel, {}, {});
  EXPECT_EQ(sealed.size(), kAeadOverhead);
  Result<SecretBytes> opened = AeadOpen(key_, kLabel, sealed, {});
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(opened->empty());
}

TEST_F(AeadTest, LargePlaintextRoundTrips) {
  const std::vector<std::uint8_t> large = RandomBytes(1 << 20);
  const std::vector<std::uint8_t> sealed = AeadSeal(key_, kLabel, large, associated_data_);
  Result<SecretBytes> opened = AeadOpen(key_, kLabel, sealed, associated_data_);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(ConstantTimeEquals(opened->span(), large));
}

TEST_F(AeadTest, SealedIsNonceThenRawCiphertextUnderLabelledAssociatedData) {
  ASSERT_EQ(sealed_.size(), plaintext_.size() + kAeadOverhead);
  // The documented layout and AD encoding: nonce || ciphertext || tag, and
  // u16be(label length) || label || associated_data.
  std::string encoded = {'\0', static_cast<char>(kLabel.size())};
  encoded += kLabel;
  encoded += kAssociatedData;
  const std::vector<std::uint8_t> full_ad = Bytes(encoded);
  const std::span<const std::uint8_t> sealed(sealed_);
  Result<SecretBytes> opened = internal::XChaCha20Poly1305Open(
      key_, sealed.first<kAeadNonceSize>(), sealed.subspan(kAeadNonceSize), full_ad);
  ASSERT_TRUE(opened.has_value());
  EXPECT_TRUE(ConstantTimeEquals(opened->span(), plaintext_));
}

TEST_F(AeadTest, SealingTwiceUsesFreshNonces) {
  const std::vector<std::uint8_t> again = AeadSeal(key_, kLabel, plaintext_, associated_data_);
  EXPECT_NE(std::vector<std::uint8_t>(sealed_.begin(), sealed_.begin() + kAeadNonceSize),
            std::vector<std::uint8_t>(again.begin(), again.begin() + kAeadNonceSize));
  EXPECT_NE(sealed_, again);
}

TEST_F(AeadTest, OpenFailsOnFlippedNonceBit) {
  for (std::size_t i = 0; i < kAeadNonceSize; ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      ExpectOpenFailure(AeadOpen(key_, kLabel, FlipBit(sealed_, i, bit), associated_data_));
    }
  }
}

TEST_F(AeadTest, OpenFailsOnFlippedCiphertextBit) {
  for (std::size_t i = kAeadNonceSize; i < kAeadNonceSize + plaintext_.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      ExpectOpenFailure(AeadOpen(key_, kLabel, FlipBit(sealed_, i, bit), associated_data_));
    }
  }
}

TEST_F(AeadTest, OpenFailsOnFlippedTagBit) {
  for (std::size_t i = sealed_.size() - kAeadTagSize; i < sealed_.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      ExpectOpenFailure(AeadOpen(key_, kLabel, FlipBit(sealed_, i, bit), associated_data_));
    }
  }
}

TEST_F(AeadTest, OpenFailsOnEveryTruncation) {
  for (std::size_t size = 0; size < sealed_.size(); ++size) {
    const std::vector<std::uint8_t> truncated(sealed_.begin(),
                                              sealed_.begin() + static_cast<std::ptrdiff_t>(size));
    ExpectOpenFailure(AeadOpen(key_, kLabel, truncated, associated_data_));
  }
}

TEST_F(AeadTest, OpenFailsOnAppendedByte) {
  std::vector<std::uint8_t> extended = sealed_;
  extended.push_back(0);
  ExpectOpenFailure(AeadOpen(key_, kLabel, extended, associated_data_));
}

TEST_F(AeadTest, OpenFailsWithWrongAssociatedData) {
  ExpectOpenFailure(AeadOpen(key_, kLabel, sealed_, Bytes("team=7;doc=12;version=4")));
  ExpectOpenFailure(AeadOpen(key_, kLabel, sealed_, {}));
}

TEST_F(AeadTest, OpenFailsWithWrongLabel) {
  ExpectOpenFailure(AeadOpen(key_, "coffre.test.aead.v2", sealed_, associated_data_));
}

TEST_F(AeadTest, OpenFailsWithWrongKey) {
  const AeadKey other = AeadKey::Generate();
  ExpectOpenFailure(AeadOpen(other, kLabel, sealed_, associated_data_));
}

TEST_F(AeadTest, LabelAndAssociatedDataBoundaryIsUnambiguous) {
  // Without the length prefix, ("ab", "c") and ("a", "bc") would authenticate the same bytes.
  const std::vector<std::uint8_t> sealed = AeadSeal(key_, "ab", plaintext_, Bytes("c"));
  ExpectOpenFailure(AeadOpen(key_, "a", sealed, Bytes("bc")));
  EXPECT_TRUE(AeadOpen(key_, "ab", sealed, Bytes("c")).has_value());
}

TEST(AeadKeyTest, FromBytesRefusesWrongSizes) {
  for (std::size_t size : {0u, 16u, 31u, 33u, 64u}) {
    Result<AeadKey> key = AeadKey::FromBytes(SecretBytes(size));
    ASSERT_FALSE(key.has_value()) << size;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(AeadKeyTest, FromBytesKeepsTheKeyBytes) {
  const SecretBytes raw = RandomSecret(kAeadKeySize);
  Result<AeadKey> key = AeadKey::FromBytes(raw.Clone());
  ASSERT_TRUE(key.has_value());
  EXPECT_TRUE(ConstantTimeEquals(key->bytes(), raw.span()));
}

TEST(AeadKeyTest, GenerateGivesDistinctKeys) {
  const AeadKey a = AeadKey::Generate();
  const AeadKey b = AeadKey::Generate();
  ASSERT_EQ(a.bytes().size(), kAeadKeySize);
  EXPECT_FALSE(ConstantTimeEquals(a.bytes(), b.bytes()));
}

TEST(AeadDeathTest, SealAbortsOnEmptyLabel) {
  const AeadKey key = AeadKey::Generate();
  EXPECT_DEATH((void)AeadSeal(key, "", {}, {}), "");
}

TEST(AeadDeathTest, OpenAbortsOnEmptyLabel) {
  const AeadKey key = AeadKey::Generate();
  const std::vector<std::uint8_t> sealed = AeadSeal(key, kLabel, {}, {});
  EXPECT_DEATH((void)AeadOpen(key, "", sealed, {}), "");
}

}  // namespace
}  // namespace coffre::crypto
