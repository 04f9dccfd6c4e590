// Safety numbers: known-answer vectors, agreement between the two sides, and mismatch
// detection.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "coffre/crypto/safety_number.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

// Known-answer vectors from libsignal-protocol-c, tests/test_fingerprint.c (the same
// vectors as Signal's Java library), GPL-3.0: two identity keys, the names "+14152222222"
// and "+14153333333", 5200 iterations, scannable format 1. They also check our provider's
// SHA-512: if `final` did not re-initialise its context, both sides would still agree with
// each other but not with these digits.
const std::vector<std::uint8_t> kAliceIdentity = {
    0x05, 0x06, 0x86, 0x3b, 0xc6, 0x6d, 0x02, 0xb4, 0x0d, 0x27, 0xb8,
    0xd4, 0x9c, 0xa7, 0xc0, 0x9e, 0x92, 0x39, 0x23, 0x6f, 0x9d, 0x7d,
    0x25, 0xd6, 0xfc, 0xca, 0x5c, 0xe1, 0x3c, 0x70, 0x64, 0xd8, 0x68};
const std::vector<std::uint8_t> kBobIdentity = {
    0x05, 0xf7, 0x81, 0xb6, 0xfb, 0x32, 0xfe, 0xd9, 0xba, 0x1c, 0xf2,
    0xde, 0x97, 0x8d, 0x4d, 0x5d, 0xa2, 0x8d, 0xc3, 0x40, 0x46, 0xae,
    0x81, 0x44, 0x02, 0xb5, 0xc0, 0xdb, 0xd9, 0x6f, 0xda, 0x90, 0x7b};
constexpr const char* kAliceName = "+14152222222";
constexpr const char* kBobName = "+14153333333";
constexpr const char* kDisplayable = "300354477692869396892869876765458257569162576843440918079131";
const std::vector<std::uint8_t> kAliceScannable = {
    0x08, 0x01, 0x12, 0x22, 0x0a, 0x20, 0x1e, 0x30, 0x1a, 0x03, 0x53, 0xdc, 0xe3, 0xdb, 0xe7,
    0x68, 0x4c, 0xb8, 0x33, 0x6e, 0x85, 0x13, 0x6c, 0xdc, 0x0e, 0xe9, 0x62, 0x19, 0x49, 0x4a,
    0xda, 0x30, 0x5d, 0x62, 0xa7, 0xbd, 0x61, 0xdf, 0x1a, 0x22, 0x0a, 0x20, 0xd6, 0x2c, 0xbf,
    0x73, 0xa1, 0x15, 0x92, 0x01, 0x5b, 0x6b, 0x9f, 0x16, 0x82, 0xac, 0x30, 0x6f, 0xea, 0x3a,
    0xaf, 0x38, 0x85, 0xb8, 0x4d, 0x12, 0xbc, 0xa6, 0x31, 0xe9, 0xd4, 0xfb, 0x3a, 0x4d};
const std::vector<std::uint8_t> kBobScannable = {
    0x08, 0x01, 0x12, 0x22, 0x0a, 0x20, 0xd6, 0x2c, 0xbf, 0x73, 0xa1, 0x15, 0x92, 0x01, 0x5b,
    0x6b, 0x9f, 0x16, 0x82, 0xac, 0x30, 0x6f, 0xea, 0x3a, 0xaf, 0x38, 0x85, 0xb8, 0x4d, 0x12,
    0xbc, 0xa6, 0x31, 0xe9, 0xd4, 0xfb, 0x3a, 0x4d, 0x1a, 0x22, 0x0a, 0x20, 0x1e, 0x30, 0x1a,
    0x03, 0x53, 0xdc, 0xe3, 0xdb, 0xe7, 0x68, 0x4c, 0xb8, 0x33, 0x6e, 0x85, 0x13, 0x6c, 0xdc,
    0x0e, 0xe9, 0x62, 0x19, 0x49, 0x4a, 0xda, 0x30, 0x5d, 0x62, 0xa7, 0xbd, 0x61, 0xdf};

TEST(SafetyNumberTest, MatchesPublishedVectors) {
  auto alice = ComputeSafetyNumber(kAliceName, kAliceIdentity, kBobName, kBobIdentity);
  auto bob = ComputeSafetyNumber(kBobName, kBobIdentity, kAliceName, kAliceIdentity);
  ASSERT_TRUE(alice);
  ASSERT_TRUE(bob);
  EXPECT_EQ(alice->digits, kDisplayable);
  EXPECT_EQ(bob->digits, kDisplayable);
  EXPECT_EQ(alice->scannable, kAliceScannable);
  EXPECT_EQ(bob->scannable, kBobScannable);
  EXPECT_EQ(alice->Grouped(),
            "30035 44776 92869 39689 28698 76765 45825 75691 62576 84344 09180 79131");
}

TEST(SafetyNumberTest, ScannableMatchesOnlyTheOtherSideOfTheSamePair) {
  EXPECT_TRUE(*ScannableFingerprintMatches(kAliceScannable, kBobScannable));
  EXPECT_TRUE(*ScannableFingerprintMatches(kBobScannable, kAliceScannable));
  // Scanning your own code is not a match.
  EXPECT_FALSE(*ScannableFingerprintMatches(kAliceScannable, kAliceScannable));

  std::vector<std::uint8_t> altered = kBobScannable;
  altered[20] ^= 0x01;
  EXPECT_FALSE(*ScannableFingerprintMatches(kAliceScannable, altered));

  EXPECT_EQ(ScannableFingerprintMatches(kAliceScannable, {}).error().code(),
            ErrorCode::kInvalidArgument);
  const std::vector<std::uint8_t> garbage = {0xff, 0x00, 0x13, 0x37};
  EXPECT_FALSE(ScannableFingerprintMatches(kAliceScannable, garbage));
  std::vector<std::uint8_t> version_zero = kBobScannable;
  version_zero[1] = 0x00;
  EXPECT_FALSE(ScannableFingerprintMatches(kAliceScannable, version_zero));
  for (std::size_t size = 0; size < kBobScannable.size(); ++size) {
    auto result = ScannableFingerprintMatches(
        kAliceScannable, std::span<const std::uint8_t>(kBobScannable.data(), size));
    EXPECT_TRUE(!result || !*result) << size;
  }
}

TEST(SafetyNumberTest, RejectsBadNamesAndKeys) {
  EXPECT_EQ(ComputeSafetyNumber("", kAliceIdentity, kBobName, kBobIdentity).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      ComputeSafetyNumber(kAliceName, std::span(kAliceIdentity).first(32), kBobName, kBobIdentity)
          .error()
          .code(),
      ErrorCode::kInvalidArgument);
  std::vector<std::uint8_t> wrong_type = kBobIdentity;
  wrong_type[0] = 0x04;
  EXPECT_FALSE(ComputeSafetyNumber(kAliceName, kAliceIdentity, kBobName, wrong_type));
}

struct Device {
  explicit Device(SignalAddress address) {
    auto created = SignalDevice::Create(std::move(address), stores.stores());
    EXPECT_TRUE(created);
    device = std::move(*created);
    EXPECT_TRUE(device->GenerateIdentity());
    EXPECT_TRUE(device->GeneratePreKeys(1, 2));
    EXPECT_TRUE(device->GenerateSignedPreKey(1, 1'700'000'000'000));
  }
  InMemorySignalStores stores;
  std::unique_ptr<SignalDevice> device;
};

TEST(SafetyNumberTest, BothSidesOfASessionComputeTheSameNumber) {
  Device alice({"alice", 1});
  Device bob({"bob", 1});
  auto bundle = bob.device->CreatePreKeyBundle(1, 1);
  ASSERT_TRUE(bundle);
  auto parsed = PreKeyBundle::Parse(bundle->Serialize());
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(alice.device->ProcessPreKeyBundle({"bob", 1}, *parsed));
  const std::vector<std::uint8_t> hello = {'s', 'a', 'l', 'u', 't'};
  auto message = alice.device->Encrypt({"bob", 1}, hello);
  ASSERT_TRUE(message);
  ASSERT_TRUE(bob.device->Decrypt({"alice", 1}, message->type, message->bytes));

  auto at_alice = alice.device->SafetyNumberWith({"bob", 1});
  auto at_bob = bob.device->SafetyNumberWith({"alice", 1});
  ASSERT_TRUE(at_alice);
  ASSERT_TRUE(at_bob);
  EXPECT_EQ(at_alice->digits, at_bob->digits);
  EXPECT_EQ(at_alice->digits.size(), kSafetyNumberDigits);
  EXPECT_TRUE(*ScannableFingerprintMatches(at_alice->scannable, at_bob->scannable));

  // Without a recorded identity there is nothing to compare.
  EXPECT_EQ(alice.device->SafetyNumberWith({"carla", 1}).error().code(), ErrorCode::kNotFound);
}

TEST(SafetyNumberTest, DifferentIdentityGivesADifferentNumber) {
  Device alice({"alice", 1});
  Device bob({"bob", 1});
  Device mallory({"bob", 1});  // same name, another key
  const SignalPublicKey alice_key = *alice.device->IdentityPublicKey();
  const SignalPublicKey bob_key = *bob.device->IdentityPublicKey();
  const SignalPublicKey mallory_key = *mallory.device->IdentityPublicKey();

  auto genuine = ComputeSafetyNumber("alice", alice_key, "bob", bob_key);
  auto substituted = ComputeSafetyNumber("alice", alice_key, "bob", mallory_key);
  auto seen_by_bob = ComputeSafetyNumber("bob", bob_key, "alice", alice_key);
  ASSERT_TRUE(genuine);
  ASSERT_TRUE(substituted);
  ASSERT_TRUE(seen_by_bob);
  EXPECT_NE(genuine->digits, substituted->digits);
  EXPECT_FALSE(*ScannableFingerprintMatches(substituted->scannable, seen_by_bob->scannable));
  EXPECT_TRUE(*ScannableFingerprintMatches(genuine->scannable, seen_by_bob->scannable));
}

}  // namespace
}  // namespace coffre::crypto
