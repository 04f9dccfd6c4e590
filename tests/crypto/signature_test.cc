#include "coffre/crypto/signature.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "support/vectors.h"

namespace coffre::crypto {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;

constexpr std::string_view kLabel = "coffre.test.signature.v1";
constexpr std::string_view kMessage = "device 3 joins team 7";

std::vector<std::uint8_t> Bytes(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

std::vector<std::uint8_t> ToVector(std::span<const std::uint8_t> bytes) {
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

void ExpectVerifyFailure(const Status& status) {
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(status.error().context(), "signature: verification failed");
}

std::vector<coffre::testing::VectorBlock> RfcVectors() {
  return ReadVectorFile("ed25519-rfc8032/ed25519.txt");
}

// RFC 8032 §7.1: the public key derived from each seed is the one printed.
TEST(Ed25519KatTest, FromSeedGivesRfcPublicKey) {
  const auto blocks = RfcVectors();
  ASSERT_EQ(blocks.size(), 4u);
  for (const auto& block : blocks) {
    Result<SigningKey> key = SigningKey::FromSeed(FromHex(block.at("SEED")));
    ASSERT_TRUE(key.has_value()) << block.at("NAME");
    EXPECT_EQ(ToVector(key->verify_key().bytes()), FromHex(block.at("PUBLIC"))) << block.at("NAME");
  }
}

// RFC 8032 §7.1: Ed25519 is deterministic, so the raw signature must match byte for byte.
TEST(Ed25519KatTest, RawSignMatchesRfcSignature) {
  const auto blocks = RfcVectors();
  ASSERT_EQ(blocks.size(), 4u);
  for (const auto& block : blocks) {
    Result<SigningKey> key = SigningKey::FromSeed(FromHex(block.at("SEED")));
    ASSERT_TRUE(key.has_value()) << block.at("NAME");
    EXPECT_EQ(ToVector(internal::Ed25519Sign(*key, FromHex(block.at("MSG")))),
              FromHex(block.at("SIG")))
        << block.at("NAME");
  }
}

TEST(Ed25519KatTest, RawVerifyAcceptsRfcSignatureAndRejectsFlippedBit) {
  const auto blocks = RfcVectors();
  ASSERT_EQ(blocks.size(), 4u);
  for (const auto& block : blocks) {
    Result<VerifyKey> key = VerifyKey::FromBytes(FromHex(block.at("PUBLIC")));
    ASSERT_TRUE(key.has_value()) << block.at("NAME");
    const std::vector<std::uint8_t> message = FromHex(block.at("MSG"));
    std::vector<std::uint8_t> signature = FromHex(block.at("SIG"));
    EXPECT_TRUE(internal::Ed25519Verify(*key, message, signature).has_value()) << block.at("NAME");
    signature[0] = static_cast<std::uint8_t>(signature[0] ^ 0x01);
    ExpectVerifyFailure(internal::Ed25519Verify(*key, message, signature));
  }
}

// SignUnlabelled / VerifyUnlabelled are plain RFC 8032 Ed25519 (for C2SP signed notes).
TEST(Ed25519KatTest, UnlabelledSignatureIsTheRfcSignature) {
  const auto blocks = RfcVectors();
  ASSERT_EQ(blocks.size(), 4u);
  for (const auto& block : blocks) {
    Result<SigningKey> key = SigningKey::FromSeed(FromHex(block.at("SEED")));
    ASSERT_TRUE(key.has_value()) << block.at("NAME");
    const std::vector<std::uint8_t> message = FromHex(block.at("MSG"));
    const std::vector<std::uint8_t> signature = FromHex(block.at("SIG"));
    EXPECT_EQ(ToVector(SignUnlabelled(*key, message)), signature) << block.at("NAME");
    EXPECT_TRUE(VerifyUnlabelled(key->verify_key(), message, signature).has_value());
    // Neither kind of signature passes for the other.
    ExpectVerifyFailure(key->verify_key().Verify(kLabel, message, signature));
    ExpectVerifyFailure(VerifyUnlabelled(key->verify_key(), message, key->Sign(kLabel, message)));
  }
}

class SignatureTest : public ::testing::Test {
 protected:
  SigningKey key_ = SigningKey::Generate();
  std::vector<std::uint8_t> message_ = Bytes(kMessage);
  std::array<std::uint8_t, kEd25519SignatureSize> signature_ = key_.Sign(kLabel, message_);
};

TEST_F(SignatureTest, VerifyAcceptsSignatureWithSameLabelAndMessage) {
  EXPECT_TRUE(key_.verify_key().Verify(kLabel, message_, signature_).has_value());
}

TEST_F(SignatureTest, EmptyMessageSignsAndVerifies) {
  const auto signature = key_.Sign(kLabel, {});
  EXPECT_TRUE(key_.verify_key().Verify(kLabel, {}, signature).has_value());
  ExpectVerifyFailure(key_.verify_key().Verify(kLabel, Bytes("x"), signature));
}

TEST_F(SignatureTest, SignIsDeterministic) { EXPECT_EQ(key_.Sign(kLabel, message_), signature_); }

TEST_F(SignatureTest, LabelledSignatureIsEd25519OverDocumentedEncoding) {
  // kSignatureDomain || u16be(label length) || label || message, as signature.h documents.
  std::string text(kSignatureDomain);
  text += '\0';
  text += static_cast<char>(kLabel.size());
  text += kLabel;
  text += kMessage;
  const std::vector<std::uint8_t> encoded = Bytes(text);
  EXPECT_EQ(internal::Ed25519Sign(key_, encoded), signature_);
  EXPECT_TRUE(internal::Ed25519Verify(key_.verify_key(), encoded, signature_).has_value());
}

TEST_F(SignatureTest, LabelledSignatureIsNotARawSignatureOfTheMessage) {
  ExpectVerifyFailure(internal::Ed25519Verify(key_.verify_key(), message_, signature_));
}

TEST_F(SignatureTest, VerifyFailsWithOtherLabel) {
  ExpectVerifyFailure(key_.verify_key().Verify("coffre.test.signature.v2", message_, signature_));
}

TEST_F(SignatureTest, VerifyFailsOnOtherMessage) {
  ExpectVerifyFailure(key_.verify_key().Verify(kLabel, Bytes("device 4 joins team 7"), signature_));
  std::vector<std::uint8_t> longer = message_;
  longer.push_back('!');
  ExpectVerifyFailure(key_.verify_key().Verify(kLabel, longer, signature_));
}

TEST_F(SignatureTest, VerifyFailsOnFlippedSignatureBit) {
  for (std::size_t i = 0; i < signature_.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      auto flipped = signature_;
      flipped[i] = static_cast<std::uint8_t>(flipped[i] ^ (1u << bit));
      ExpectVerifyFailure(key_.verify_key().Verify(kLabel, message_, flipped));
    }
  }
}

TEST_F(SignatureTest, VerifyFailsOnTruncatedOrExtendedSignature) {
  const std::span<const std::uint8_t> full(signature_);
  for (std::size_t size = 0; size < full.size(); ++size) {
    ExpectVerifyFailure(key_.verify_key().Verify(kLabel, message_, full.first(size)));
  }
  std::vector<std::uint8_t> extended(signature_.begin(), signature_.end());
  extended.push_back(0);
  ExpectVerifyFailure(key_.verify_key().Verify(kLabel, message_, extended));
}

TEST_F(SignatureTest, VerifyFailsForSignatureByAnotherKey) {
  const SigningKey other = SigningKey::Generate();
  const auto other_signature = other.Sign(kLabel, message_);
  ExpectVerifyFailure(key_.verify_key().Verify(kLabel, message_, other_signature));
  ExpectVerifyFailure(other.verify_key().Verify(kLabel, message_, signature_));
}

TEST_F(SignatureTest, LabelAndMessageBoundaryIsUnambiguous) {
  const auto signature = key_.Sign("ab", Bytes("c"));
  ExpectVerifyFailure(key_.verify_key().Verify("a", Bytes("bc"), signature));
  EXPECT_TRUE(key_.verify_key().Verify("ab", Bytes("c"), signature).has_value());
}

TEST_F(SignatureTest, CopiedVerifyKeyStillVerifies) {
  const VerifyKey copy = key_.verify_key();
  EXPECT_TRUE(copy.Verify(kLabel, message_, signature_).has_value());
  Result<VerifyKey> parsed = VerifyKey::FromBytes(key_.verify_key().bytes());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->Verify(kLabel, message_, signature_).has_value());
}

TEST_F(SignatureTest, SeedRestoresTheSameKey) {
  const SecretBytes seed = key_.Seed();
  ASSERT_EQ(seed.size(), kEd25519SeedSize);
  Result<SigningKey> restored = SigningKey::FromSeed(seed.span());
  ASSERT_TRUE(restored.has_value());
  EXPECT_EQ(restored->verify_key().bytes(), key_.verify_key().bytes());
  EXPECT_EQ(restored->Sign(kLabel, message_), signature_);
}

TEST(SignatureKeyTest, GenerateGivesDistinctKeys) {
  EXPECT_NE(SigningKey::Generate().verify_key().bytes(),
            SigningKey::Generate().verify_key().bytes());
}

TEST(SignatureKeyTest, FromSeedRefusesWrongSizes) {
  for (std::size_t size : {0u, 31u, 33u, 64u}) {
    const std::vector<std::uint8_t> seed(size, 0x11);
    Result<SigningKey> key = SigningKey::FromSeed(seed);
    ASSERT_FALSE(key.has_value()) << size;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(SignatureKeyTest, VerifyKeyFromBytesRefusesWrongSizes) {
  const SigningKey key = SigningKey::Generate();
  std::vector<std::uint8_t> bytes(key.verify_key().bytes().begin(), key.verify_key().bytes().end());
  bytes.push_back(0);
  EXPECT_FALSE(VerifyKey::FromBytes(bytes).has_value());
  bytes.resize(31);
  EXPECT_FALSE(VerifyKey::FromBytes(bytes).has_value());
  EXPECT_FALSE(VerifyKey::FromBytes({}).has_value());
}

TEST(SignatureKeyTest, VerifyKeyFromBytesRefusesSmallOrderPoints) {
  // The neutral element (x, y) = (0, 1) and the order-2 point (0, -1), encoded as in
  // RFC 8032 §5.1.2: y little-endian, sign of x in the top bit.
  std::vector<std::uint8_t> identity(32, 0x00);
  identity[0] = 0x01;
  std::vector<std::uint8_t> minus_one(32, 0xff);
  minus_one[0] = 0xec;
  minus_one[31] = 0x7f;
  for (const auto& point : {identity, minus_one}) {
    Result<VerifyKey> key = VerifyKey::FromBytes(point);
    ASSERT_FALSE(key.has_value());
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(SignatureDeathTest, SignAbortsOnEmptyLabel) {
  const SigningKey key = SigningKey::Generate();
  EXPECT_DEATH((void)key.Sign("", {}), "");
}

TEST(SignatureDeathTest, VerifyAbortsOnEmptyLabel) {
  const SigningKey key = SigningKey::Generate();
  const auto signature = key.Sign("coffre.test.signature.v1", {});
  EXPECT_DEATH((void)key.verify_key().Verify("", {}, signature), "");
}

}  // namespace
}  // namespace coffre::crypto
