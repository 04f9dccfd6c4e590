// PreKeyBundle serialization: round trips, the documented sizes, and refusal of anything
// malformed without reading out of bounds.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

PreKeyBundle SampleBundle(bool with_pre_key) {
  PreKeyBundle bundle;
  bundle.registration_id = 4242;
  bundle.device_id = 3;
  bundle.signed_pre_key_id = 7;
  bundle.signed_pre_key[0] = kSignalKeyType;
  bundle.identity_key[0] = kSignalKeyType;
  for (std::size_t i = 1; i < kSignalPublicKeySize; ++i) {
    bundle.signed_pre_key[i] = static_cast<std::uint8_t>(i);
    bundle.identity_key[i] = static_cast<std::uint8_t>(200 - i);
  }
  for (std::size_t i = 0; i < kSignalSignatureSize; ++i) {
    bundle.signed_pre_key_signature[i] = static_cast<std::uint8_t>(i * 3);
  }
  if (with_pre_key) {
    PublicPreKey pre_key;
    pre_key.id = 99;
    pre_key.public_key.fill(0x42);
    pre_key.public_key[0] = kSignalKeyType;
    bundle.one_time_pre_key = pre_key;
  }
  return bundle;
}

void ExpectSameBundle(const PreKeyBundle& a, const PreKeyBundle& b) {
  EXPECT_EQ(a.registration_id, b.registration_id);
  EXPECT_EQ(a.device_id, b.device_id);
  EXPECT_EQ(a.signed_pre_key_id, b.signed_pre_key_id);
  EXPECT_EQ(a.signed_pre_key, b.signed_pre_key);
  EXPECT_EQ(a.signed_pre_key_signature, b.signed_pre_key_signature);
  EXPECT_EQ(a.identity_key, b.identity_key);
  ASSERT_EQ(a.one_time_pre_key.has_value(), b.one_time_pre_key.has_value());
  if (a.one_time_pre_key) {
    EXPECT_EQ(a.one_time_pre_key->id, b.one_time_pre_key->id);
    EXPECT_EQ(a.one_time_pre_key->public_key, b.one_time_pre_key->public_key);
  }
}

TEST(PreKeyBundleTest, RoundTripsWithAndWithoutOneTimePreKey) {
  for (const bool with_pre_key : {false, true}) {
    const PreKeyBundle bundle = SampleBundle(with_pre_key);
    const std::vector<std::uint8_t> bytes = bundle.Serialize();
    EXPECT_EQ(bytes.size(), with_pre_key ? kPreKeyBundleWithPreKeySize : kPreKeyBundleSize);
    auto parsed = PreKeyBundle::Parse(bytes);
    ASSERT_TRUE(parsed) << parsed.error().context();
    ExpectSameBundle(bundle, *parsed);
  }
}

TEST(PreKeyBundleTest, RealBundleRoundTrips) {
  InMemorySignalStores stores;
  auto device = SignalDevice::Create({"bob", 2}, stores.stores());
  ASSERT_TRUE(device);
  ASSERT_TRUE((*device)->GenerateIdentity());
  ASSERT_TRUE((*device)->GeneratePreKeys(10, 2));
  ASSERT_TRUE((*device)->GenerateSignedPreKey(1, 1'700'000'000'000));
  auto bundle = (*device)->CreatePreKeyBundle(11, 1);
  ASSERT_TRUE(bundle);
  EXPECT_EQ(bundle->device_id, 2);
  auto parsed = PreKeyBundle::Parse(bundle->Serialize());
  ASSERT_TRUE(parsed);
  ExpectSameBundle(*bundle, *parsed);
}

TEST(PreKeyBundleTest, ParseFailsOnEveryTruncationAndExtension) {
  const std::vector<std::uint8_t> bytes = SampleBundle(true).Serialize();
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(PreKeyBundle::Parse(std::span(bytes).first(size))) << size;
  }
  std::vector<std::uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(PreKeyBundle::Parse(longer));
  // Flag says "no prekey" but the prekey bytes are there.
  std::vector<std::uint8_t> flag_cleared = bytes;
  flag_cleared[4] = 0;
  EXPECT_FALSE(PreKeyBundle::Parse(flag_cleared));
}

TEST(PreKeyBundleTest, ParseRejectsBadMagicVersionFlagsRangesAndKeyTypes) {
  const std::vector<std::uint8_t> good = SampleBundle(true).Serialize();
  auto mutated = [&](std::size_t offset, std::uint8_t value) {
    std::vector<std::uint8_t> bytes = good;
    bytes[offset] = value;
    return PreKeyBundle::Parse(bytes);
  };
  EXPECT_EQ(mutated(0, 'X').error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(mutated(3, '2').error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(mutated(4, 0x03).error().code(), ErrorCode::kInvalidArgument);  // unknown flag
  EXPECT_FALSE(mutated(5, 0x80));    // registration id above 2^31-1
  EXPECT_FALSE(mutated(9, 0x80));    // negative device id
  EXPECT_FALSE(mutated(13, 0x01));   // signed prekey id above 2^24-1
  EXPECT_FALSE(mutated(17, 0x06));   // signed prekey key type
  EXPECT_FALSE(mutated(114, 0x00));  // identity key type
  EXPECT_FALSE(mutated(147, 0x01));  // prekey id above 2^24-2
  EXPECT_FALSE(mutated(151, 0x07));  // prekey key type

  std::vector<std::uint8_t> zero_device = good;
  for (std::size_t i = 9; i < 13; ++i) zero_device[i] = 0;
  EXPECT_FALSE(PreKeyBundle::Parse(zero_device));
}

TEST(PreKeyBundleTest, RandomGarbageNeverParsesIntoNonsenseOrCrashes) {
  for (std::size_t size = 0; size < 400; ++size) {
    const std::vector<std::uint8_t> garbage = RandomBytes(size);
    auto parsed = PreKeyBundle::Parse(garbage);
    EXPECT_FALSE(parsed) << size;  // no "CFB1" magic by chance at these odds
  }
  // Right magic and length, random body: may or may not parse, must not crash, and
  // whatever parses has valid key types.
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::uint8_t> bytes =
        RandomBytes(round % 2 ? kPreKeyBundleWithPreKeySize : kPreKeyBundleSize);
    bytes[0] = 'C';
    bytes[1] = 'F';
    bytes[2] = 'B';
    bytes[3] = '1';
    bytes[4] = static_cast<std::uint8_t>(round % 2);
    auto parsed = PreKeyBundle::Parse(bytes);
    if (parsed) {
      EXPECT_EQ(parsed->identity_key[0], kSignalKeyType);
      EXPECT_GE(parsed->device_id, 1);
    }
  }
}

}  // namespace
}  // namespace coffre::crypto
