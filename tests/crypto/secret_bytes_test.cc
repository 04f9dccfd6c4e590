#include "coffre/crypto/secret_bytes.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "coffre/crypto/random.h"

namespace coffre::crypto {
namespace {

TEST(SecretBytesTest, CopyOfHoldsTheSameBytes) {
  const std::vector<std::uint8_t> source = {1, 2, 3, 4};
  SecretBytes secret = SecretBytes::CopyOf(source);
  ASSERT_EQ(secret.size(), 4u);
  EXPECT_TRUE(ConstantTimeEquals(secret.span(), source));
}

TEST(SecretBytesTest, MovedFromIsEmpty) {
  SecretBytes a = RandomSecret(32);
  SecretBytes b = std::move(a);
  EXPECT_EQ(b.size(), 32u);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
}

TEST(SecretBytesTest, CloneIsIndependent) {
  SecretBytes a = RandomSecret(16);
  SecretBytes b = a.Clone();
  EXPECT_TRUE(ConstantTimeEquals(a.span(), b.span()));
  b.data()[0] ^= 1;
  EXPECT_FALSE(ConstantTimeEquals(a.span(), b.span()));
}

TEST(ConstantTimeEqualsTest, DifferentLengthsAreUnequal) {
  const std::vector<std::uint8_t> a = {1, 2, 3};
  const std::vector<std::uint8_t> b = {1, 2};
  EXPECT_FALSE(ConstantTimeEquals(a, b));
  EXPECT_TRUE(ConstantTimeEquals(std::span<const std::uint8_t>(), std::span<const std::uint8_t>()));
}

TEST(RandomTest, TwoDrawsDiffer) {
  EXPECT_NE(RandomBytes(32), RandomBytes(32));
  for (int i = 0; i < 100; ++i) EXPECT_LT(RandomUniform(7), 7u);
}

}  // namespace
}  // namespace coffre::crypto
