#include "coffre/crypto/x25519.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "coffre/crypto/random.h"
#include "support/vectors.h"

namespace coffre::crypto {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;

std::vector<std::uint8_t> ToVector(std::span<const std::uint8_t> bytes) {
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

std::array<std::uint8_t, kX25519KeySize> ToArray(const std::vector<std::uint8_t>& bytes) {
  std::array<std::uint8_t, kX25519KeySize> out{};
  if (bytes.size() != out.size()) {
    ADD_FAILURE() << "expected 32 bytes, got " << bytes.size();
    return out;
  }
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

X25519KeyPair PairFromHex(const std::string& hex) {
  Result<X25519KeyPair> pair = X25519KeyPair::FromSecret(SecretBytes::CopyOf(FromHex(hex)));
  if (!pair) std::abort();
  return std::move(pair).value();
}

X25519PublicKey PublicFromHex(const std::string& hex) {
  Result<X25519PublicKey> key = X25519PublicKey::FromBytes(FromHex(hex));
  if (!key) std::abort();
  return *key;
}

// RFC 7748 §5.2, the two single-multiplication vectors (the second with the unused top
// bit of u set, which X25519 must ignore).
TEST(X25519KatTest, ScalarMultMatchesRfcVectors) {
  const auto blocks = ReadVectorFile("x25519-rfc7748/x25519_scalarmult.txt");
  ASSERT_EQ(blocks.size(), 2u);
  for (const auto& block : blocks) {
    const auto scalar = ToArray(FromHex(block.at("SCALAR")));
    const auto u = ToArray(FromHex(block.at("U")));
    Result<SecretBytes> out = internal::X25519(scalar, u);
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(ToVector(out->span()), FromHex(block.at("OUT")));
  }
}

// RFC 7748 §5.2, the iterated function: k = u = 9, then k, u = X25519(k, u), k.
TEST(X25519KatTest, IteratedFunctionMatchesRfcVectors) {
  const auto blocks = ReadVectorFile("x25519-rfc7748/x25519_iterated.txt");
  ASSERT_EQ(blocks.size(), 2u);
  for (const auto& block : blocks) {
    const unsigned long iterations = std::stoul(block.at("ITERATIONS"));
    std::array<std::uint8_t, kX25519KeySize> k{9};
    std::array<std::uint8_t, kX25519KeySize> u{9};
    for (unsigned long i = 0; i < iterations; ++i) {
      Result<SecretBytes> next = internal::X25519(k, u);
      ASSERT_TRUE(next.has_value()) << "iteration " << i;
      u = k;
      std::copy(next->span().begin(), next->span().end(), k.begin());
    }
    EXPECT_EQ(ToVector(k), FromHex(block.at("OUT"))) << iterations << " iterations";
  }
}

// RFC 7748 §6.1: both public keys derive from the private keys, and both sides reach K.
TEST(X25519KatTest, DiffieHellmanMatchesRfcExample) {
  const auto blocks = ReadVectorFile("x25519-rfc7748/x25519_dh.txt");
  ASSERT_EQ(blocks.size(), 1u);
  const auto& block = blocks[0];
  const X25519KeyPair alice = PairFromHex(block.at("ALICE_PRIVATE"));
  const X25519KeyPair bob = PairFromHex(block.at("BOB_PRIVATE"));
  EXPECT_EQ(ToVector(alice.public_key().bytes()), FromHex(block.at("ALICE_PUBLIC")));
  EXPECT_EQ(ToVector(bob.public_key().bytes()), FromHex(block.at("BOB_PUBLIC")));

  Result<SecretBytes> alice_side = X25519SharedSecret(alice, PublicFromHex(block.at("BOB_PUBLIC")));
  Result<SecretBytes> bob_side = X25519SharedSecret(bob, PublicFromHex(block.at("ALICE_PUBLIC")));
  ASSERT_TRUE(alice_side.has_value());
  ASSERT_TRUE(bob_side.has_value());
  EXPECT_EQ(ToVector(alice_side->span()), FromHex(block.at("SHARED")));
  EXPECT_EQ(ToVector(bob_side->span()), FromHex(block.at("SHARED")));
}

TEST(X25519Test, SharedSecretAgreesBothWays) {
  const X25519KeyPair a = X25519KeyPair::Generate();
  const X25519KeyPair b = X25519KeyPair::Generate();
  Result<SecretBytes> ab = X25519SharedSecret(a, b.public_key());
  Result<SecretBytes> ba = X25519SharedSecret(b, a.public_key());
  ASSERT_TRUE(ab.has_value());
  ASSERT_TRUE(ba.has_value());
  EXPECT_EQ(ab->size(), kX25519KeySize);
  EXPECT_TRUE(ConstantTimeEquals(ab->span(), ba->span()));
}

TEST(X25519Test, DifferentPeersGiveDifferentSecrets) {
  const X25519KeyPair a = X25519KeyPair::Generate();
  const X25519KeyPair b = X25519KeyPair::Generate();
  const X25519KeyPair c = X25519KeyPair::Generate();
  Result<SecretBytes> ab = X25519SharedSecret(a, b.public_key());
  Result<SecretBytes> ac = X25519SharedSecret(a, c.public_key());
  ASSERT_TRUE(ab.has_value());
  ASSERT_TRUE(ac.has_value());
  EXPECT_FALSE(ConstantTimeEquals(ab->span(), ac->span()));
}

TEST(X25519Test, FromSecretKeepsSecretAndDerivesSamePublicKey) {
  const X25519KeyPair original = X25519KeyPair::Generate();
  Result<X25519KeyPair> restored = X25519KeyPair::FromSecret(original.secret().Clone());
  ASSERT_TRUE(restored.has_value());
  EXPECT_TRUE(ConstantTimeEquals(restored->secret().span(), original.secret().span()));
  EXPECT_EQ(restored->public_key().bytes(), original.public_key().bytes());
}

TEST(X25519Test, GenerateGivesDistinctKeys) {
  EXPECT_NE(X25519KeyPair::Generate().public_key().bytes(),
            X25519KeyPair::Generate().public_key().bytes());
}

TEST(X25519Test, FromSecretRefusesWrongSizes) {
  for (std::size_t size : {0u, 31u, 33u, 64u}) {
    Result<X25519KeyPair> pair = X25519KeyPair::FromSecret(RandomSecret(size));
    ASSERT_FALSE(pair.has_value()) << size;
    EXPECT_EQ(pair.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(X25519Test, PublicKeyFromBytesRefusesWrongSizes) {
  for (std::size_t size : {0u, 31u, 33u}) {
    Result<X25519PublicKey> key = X25519PublicKey::FromBytes(RandomBytes(size));
    ASSERT_FALSE(key.has_value()) << size;
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(X25519Test, PublicKeyFromBytesRefusesAllZeroKey) {
  const std::vector<std::uint8_t> zero(kX25519KeySize, 0);
  Result<X25519PublicKey> key = X25519PublicKey::FromBytes(zero);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
}

// Every u-coordinate whose point has order 1, 2, 4 or 8, in canonical form (0, 1, the two
// order-8 points, p-1) and as p and p+1, each also with the unused top bit set. With any of
// them every shared secret is all-zero (RFC 7748 §6.1), so they must never become keys.
TEST(X25519Test, PublicKeyFromBytesRefusesLowOrderPoints) {
  const std::vector<std::string> low_order = {
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  };
  for (const std::string& hex : low_order) {
    std::vector<std::uint8_t> bytes = FromHex(hex);
    EXPECT_FALSE(X25519PublicKey::FromBytes(bytes).has_value()) << hex;
    bytes[31] = static_cast<std::uint8_t>(bytes[31] | 0x80);
    EXPECT_FALSE(X25519PublicKey::FromBytes(bytes).has_value()) << hex << " with top bit";
  }
}

// The shared-secret check itself, below FromBytes: X25519 with a low-order u is refused
// rather than returning the all-zero value (RFC 7748 §6.1).
TEST(X25519Test, RawScalarMultRefusesAllZeroResult) {
  const X25519KeyPair own = X25519KeyPair::Generate();
  const std::array<std::uint8_t, kX25519KeySize> zero{};
  Result<SecretBytes> out = internal::X25519(
      std::span<const std::uint8_t>(own.secret().span()).first<kX25519KeySize>(), zero);
  ASSERT_FALSE(out.has_value());
  EXPECT_EQ(out.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::crypto
