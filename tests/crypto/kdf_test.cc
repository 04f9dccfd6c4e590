#include "coffre/crypto/kdf.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "coffre/crypto/random.h"
#include "support/vectors.h"

namespace coffre::crypto {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;

constexpr std::string_view kLabel = "coffre.test.subkey.v1";

std::vector<std::uint8_t> Bytes(std::string_view text) {
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

std::vector<std::uint8_t> ToVector(std::span<const std::uint8_t> bytes) {
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

std::vector<std::uint8_t> Counting(std::size_t size) {
  std::vector<std::uint8_t> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(i);
  return out;
}

// RFC 7693 Appendix A: BLAKE2b-512("abc"), through the raw function DeriveSubkey uses.
TEST(Blake2bKatTest, UnkeyedAbcMatchesRfc7693AppendixA) {
  const auto blocks = ReadVectorFile("blake2b-rfc7693/blake2b.txt");
  ASSERT_EQ(blocks.size(), 1u);
  for (const auto& block : blocks) {
    const std::vector<std::uint8_t> expected = FromHex(block.at("OUT"));
    Result<SecretBytes> digest =
        internal::Blake2b(FromHex(block.at("KEY")), FromHex(block.at("IN")), expected.size());
    ASSERT_TRUE(digest.has_value());
    EXPECT_EQ(ToVector(digest->span()), expected);
  }
}

TEST(Blake2bTest, Blake2b256IsUnkeyedBlake2bWith32ByteOutput) {
  const std::vector<std::uint8_t> data = Bytes("public content");
  Result<SecretBytes> raw = internal::Blake2b({}, data, 32);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(ToVector(Blake2b256(data)), ToVector(raw->span()));
}

TEST(Blake2bTest, Blake2b256DiffersForDifferentInputs) {
  EXPECT_NE(Blake2b256(Bytes("a")), Blake2b256(Bytes("b")));
  EXPECT_NE(Blake2b256({}), Blake2b256(std::vector<std::uint8_t>(1, 0)));
  EXPECT_EQ(Blake2b256(Bytes("same")), Blake2b256(Bytes("same")));
}

TEST(Blake2bTest, RawRefusesOutOfRangeSizes) {
  EXPECT_FALSE(internal::Blake2b({}, Bytes("x"), 0).has_value());
  EXPECT_FALSE(internal::Blake2b({}, Bytes("x"), 65).has_value());
  EXPECT_FALSE(internal::Blake2b(Counting(65), Bytes("x"), 32).has_value());
  EXPECT_TRUE(internal::Blake2b(Counting(64), Bytes("x"), 64).has_value());
}

// Pins the encoding documented in kdf.h against a second implementation: the expected
// values were computed with Python's hashlib.blake2b(b"coffre/kdf/v1" + len(label) as two
// big-endian bytes + label + context, key=parent, digest_size=32 or 64), with parent =
// 00 01 .. 1f, label "coffre.test.subkey.v1" and context "device-42".
TEST(KdfTest, MatchesIndependentlyComputedValue) {
  const std::vector<std::uint8_t> parent = Counting(32);
  Result<SecretBytes> key32 = DeriveSubkey(parent, kLabel, Bytes("device-42"));
  ASSERT_TRUE(key32.has_value());
  EXPECT_EQ(ToVector(key32->span()),
            FromHex("ee22d990b1f9f6b0113dfbca788dc5115c8c2eb04fe77600d9ea0c306d86a8fc"));
  Result<SecretBytes> key64 = DeriveSubkey(parent, kLabel, Bytes("device-42"), 64);
  ASSERT_TRUE(key64.has_value());
  EXPECT_EQ(ToVector(key64->span()),
            FromHex("6f22b8c565d567b175866b185c988c0016dcead4d601071512dd6c2cdcdc0470"
                    "7aa733aa04f8a9b1a81ed658f979e384129f59a34b92aa20760c3feefbf4d0c1"));
}

TEST(KdfTest, SameInputsGiveSameKey) {
  const SecretBytes parent = RandomSecret(32);
  Result<SecretBytes> a = DeriveSubkey(parent.span(), kLabel, Bytes("ctx"));
  Result<SecretBytes> b = DeriveSubkey(parent.span(), kLabel, Bytes("ctx"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_TRUE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(KdfTest, DifferentLabelsGiveDifferentKeys) {
  const SecretBytes parent = RandomSecret(32);
  Result<SecretBytes> a = DeriveSubkey(parent.span(), "coffre.test.a.v1");
  Result<SecretBytes> b = DeriveSubkey(parent.span(), "coffre.test.b.v1");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(KdfTest, DifferentContextsGiveDifferentKeys) {
  const SecretBytes parent = RandomSecret(32);
  Result<SecretBytes> a = DeriveSubkey(parent.span(), kLabel, Bytes("device-1"));
  Result<SecretBytes> b = DeriveSubkey(parent.span(), kLabel, Bytes("device-2"));
  Result<SecretBytes> none = DeriveSubkey(parent.span(), kLabel);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
  EXPECT_FALSE(ConstantTimeEquals(a->span(), none->span()));
}

TEST(KdfTest, DifferentParentKeysGiveDifferentKeys) {
  Result<SecretBytes> a = DeriveSubkey(RandomSecret(32).span(), kLabel);
  Result<SecretBytes> b = DeriveSubkey(RandomSecret(32).span(), kLabel);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(KdfTest, LabelAndContextBoundaryIsUnambiguous) {
  const SecretBytes parent = RandomSecret(32);
  Result<SecretBytes> a = DeriveSubkey(parent.span(), "ab", Bytes("c"));
  Result<SecretBytes> b = DeriveSubkey(parent.span(), "a", Bytes("bc"));
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(KdfTest, ShortOutputIsNotAPrefixOfLongOutput) {
  // The output length is a BLAKE2b parameter, so a 16-byte key says nothing about the
  // first half of the 32-byte key for the same inputs.
  const SecretBytes parent = RandomSecret(32);
  Result<SecretBytes> short_key = DeriveSubkey(parent.span(), kLabel, {}, 16);
  Result<SecretBytes> long_key = DeriveSubkey(parent.span(), kLabel, {}, 32);
  ASSERT_TRUE(short_key.has_value());
  ASSERT_TRUE(long_key.has_value());
  ASSERT_EQ(short_key->size(), 16u);
  EXPECT_FALSE(ConstantTimeEquals(short_key->span(), long_key->span().first(16)));
}

TEST(KdfTest, AcceptsParentKeysAndOutputsFrom16To64Bytes) {
  for (std::size_t key_size : {16u, 32u, 64u}) {
    for (std::size_t output_size : {16u, 32u, 64u}) {
      Result<SecretBytes> key =
          DeriveSubkey(RandomSecret(key_size).span(), kLabel, {}, output_size);
      ASSERT_TRUE(key.has_value()) << key_size << " " << output_size;
      EXPECT_EQ(key->size(), output_size);
    }
  }
}

TEST(KdfTest, RefusesParentKeyOutside16To64Bytes) {
  for (std::size_t key_size : {0u, 15u, 65u}) {
    Result<SecretBytes> key = DeriveSubkey(RandomSecret(key_size).span(), kLabel);
    ASSERT_FALSE(key.has_value()) << key_size;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(KdfTest, RefusesOutputSizeOutside16To64Bytes) {
  const SecretBytes parent = RandomSecret(32);
  for (std::size_t output_size : {0u, 15u, 65u}) {
    Result<SecretBytes> key = DeriveSubkey(parent.span(), kLabel, {}, output_size);
    ASSERT_FALSE(key.has_value()) << output_size;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(KdfDeathTest, DeriveAbortsOnEmptyLabel) {
  const SecretBytes parent = RandomSecret(32);
  EXPECT_DEATH((void)DeriveSubkey(parent.span(), ""), "");
}

}  // namespace
}  // namespace coffre::crypto
