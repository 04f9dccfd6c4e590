#include "coffre/audit/client_event.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "coffre/audit/entry.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {
namespace {

using Bytes = std::vector<std::uint8_t>;

ClientEvent Unsigned(std::uint64_t sequence, const Hash& previous) {
  ClientEvent event;
  event.type = EventType::kDocumentOpened;
  event.client_time_ms = 1'764'000'000'000 + sequence;
  event.device_id = 3;
  event.team_id.fill(0x7E);
  event.item_id.fill(0x1D);
  event.version = 2;
  event.sequence = sequence;
  event.previous = previous;
  return event;
}

// A device's chain of `count` signed events.
std::vector<ClientEvent> Chain(const crypto::SigningKey& key, int count) {
  std::vector<ClientEvent> events;
  Hash previous{};
  for (int i = 1; i <= count; ++i) {
    events.push_back(*SignClientEvent(Unsigned(static_cast<std::uint64_t>(i), previous), key));
    previous = ClientEventHash(events.back());
  }
  return events;
}

Entry EntryFor(const ClientEvent& event) {
  Entry entry;
  entry.type = event.type;
  entry.relay_time_ms = 1'764'000'000'500;
  entry.device_id = event.device_id;
  entry.team_id = event.team_id;
  entry.item_id = event.item_id;
  entry.object_version = event.version;
  entry.node = "relay-1";
  entry.jurisdiction = "FR";
  entry.client_event = event;
  return entry;
}

TEST(ClientEventTest, SignedEventsRoundTripAndVerify) {
  const auto key = crypto::SigningKey::Generate();
  const ClientEvent event = Chain(key, 1)[0];
  EXPECT_EQ(event.device_key, key.verify_key().bytes());
  EXPECT_TRUE(VerifyClientEventSignature(event).has_value());
  const auto encoded = EncodeClientEvent(event);
  EXPECT_EQ(encoded[0], kClientEventFormatVersion);
  const auto decoded = DecodeClientEvent(encoded);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, event);
}

// Whatever byte changes, the event either no longer decodes or no longer verifies.
TEST(ClientEventTest, EveryChangedByteFailsDecodingOrSignature) {
  const auto key = crypto::SigningKey::Generate();
  const auto encoded = EncodeClientEvent(Chain(key, 1)[0]);
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    for (const int flip : {0x01, 0x80}) {
      auto changed = encoded;
      changed[i] ^= static_cast<std::uint8_t>(flip);
      const auto decoded = DecodeClientEvent(changed);
      if (decoded) {
        EXPECT_FALSE(VerifyClientEventSignature(*decoded).has_value()) << i;
      }
    }
  }
}

TEST(ClientEventTest, MalformedEventsAreRefused) {
  const auto key = crypto::SigningKey::Generate();
  const auto encoded = EncodeClientEvent(Chain(key, 1)[0]);
  EXPECT_FALSE(DecodeClientEvent(Bytes()).has_value());
  EXPECT_FALSE(DecodeClientEvent(std::span(encoded).first(kClientEventSize - 1)).has_value());
  Bytes longer(encoded.begin(), encoded.end());
  longer.push_back(0);
  EXPECT_FALSE(DecodeClientEvent(longer).has_value());
  auto other_version = encoded;
  other_version[0] = 2;
  EXPECT_EQ(DecodeClientEvent(other_version).error().code(), ErrorCode::kUnsupported);

  const auto refused = [&](auto change) {
    ClientEvent event = Unsigned(1, Hash{});
    change(event);
    EXPECT_EQ(SignClientEvent(event, key).error().code(), ErrorCode::kInvalidArgument);
  };
  refused([](ClientEvent& e) { e.type = EventType::kBlobFetched; });
  refused([](ClientEvent& e) { e.device_id = 0; });
  refused([](ClientEvent& e) { e.version = 0; });
  refused([](ClientEvent& e) { e.sequence = 0; });
  refused([](ClientEvent& e) { e.client_time_ms = std::uint64_t{1} << 63; });
  refused([](ClientEvent& e) { e.previous.fill(1); });  // sequence 1 links to nothing
}

TEST(ClientEventTest, ASignatureByAnotherKeyDoesNotVerify) {
  const auto device = crypto::SigningKey::Generate();
  const auto relay = crypto::SigningKey::Generate();
  ClientEvent forged = *SignClientEvent(Unsigned(1, Hash{}), relay);
  forged.device_key = device.verify_key().bytes();  // claims to be the device's
  EXPECT_EQ(VerifyClientEventSignature(forged).error().code(), ErrorCode::kAuthenticationFailed);
}

TEST(ClientEventChainsTest, FollowsEachDeviceAndNamesGapsAndForks) {
  using Link = ClientEventChains::Link;
  const auto alice = crypto::SigningKey::Generate();
  const auto bob = crypto::SigningKey::Generate();
  const auto a = Chain(alice, 5);
  const auto b = Chain(bob, 2);
  ClientEventChains chains;
  EXPECT_EQ(chains.Add(a[0]), Link::kFirst);
  EXPECT_EQ(chains.Add(b[0]), Link::kFirst);
  EXPECT_EQ(chains.Add(a[1]), Link::kNext);
  EXPECT_EQ(chains.Add(a[1]), Link::kRepeat);  // a retried report
  EXPECT_EQ(chains.Add(b[1]), Link::kNext);
  std::uint64_t from = 0, to = 0;
  EXPECT_EQ(chains.Add(a[4], &from, &to), Link::kGap);  // 3 and 4 never reached the log
  EXPECT_EQ(from, 3u);
  EXPECT_EQ(to, 4u);
  EXPECT_EQ(chains.Add(a[2]), Link::kFork);  // an older number after a newer one

  // Another statement under a number already seen, and a next one that links elsewhere.
  ClientEventChains other;
  EXPECT_EQ(other.Add(a[0]), Link::kFirst);
  ClientEvent twin = Unsigned(1, Hash{});
  twin.version = 9;
  EXPECT_EQ(other.Add(*SignClientEvent(twin, alice)), Link::kFork);
  ClientEvent stray = Unsigned(2, Hash{});
  stray.previous.fill(0x42);
  EXPECT_EQ(other.Add(*SignClientEvent(stray, alice)), Link::kFork);

  // The first event seen for a device that is not its first.
  ClientEventChains late;
  EXPECT_EQ(late.Add(a[3], &from, &to), Link::kGap);
  EXPECT_EQ(from, 1u);
  EXPECT_EQ(to, 3u);
}

TEST(ClientEntryTest, EntriesCarryTheEventAsFormat2) {
  const auto key = crypto::SigningKey::Generate();
  const Entry entry = EntryFor(Chain(key, 1)[0]);
  const auto encoded = EncodeEntry(entry);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ((*encoded)[0], kClientEntryFormatVersion);
  const auto tail = std::span(*encoded).last(kClientEventSize);
  const auto event = EncodeClientEvent(*entry.client_event);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), event.begin()));
  const auto decoded = DecodeEntry(*encoded);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, entry);

  // A format 1 entry with an event appended is not a format 2 entry, and the reverse.
  Bytes as_format_1 = *encoded;
  as_format_1[0] = kEntryFormatVersion;
  EXPECT_FALSE(DecodeEntry(as_format_1).has_value());
  Bytes without_event(encoded->begin(), encoded->end() - kClientEventSize);
  EXPECT_FALSE(DecodeEntry(without_event).has_value());
}

TEST(ClientEntryTest, TheEntryAndItsEventMustAgree) {
  const auto key = crypto::SigningKey::Generate();
  const ClientEvent event = Chain(key, 1)[0];
  const auto refused = [&](auto change) {
    Entry entry = EntryFor(event);
    change(entry);
    EXPECT_EQ(EncodeEntry(entry).error().code(), ErrorCode::kInvalidArgument);
  };
  refused([](Entry& e) { e.device_id = 4; });
  refused([](Entry& e) { e.object_version = 3; });
  refused([](Entry& e) { e.team_id.reset(); });
  refused([](Entry& e) { e.item_id->fill(0); });
  refused([](Entry& e) { e.type = EventType::kDocumentExported; });  // the event says opened
  refused([](Entry& e) { e.client_event.reset(); });  // a client type needs its statement
  refused([](Entry& e) {  // and a relay event has none
    e.type = EventType::kItemFetched;
  });
}

}  // namespace
}  // namespace coffre::audit
