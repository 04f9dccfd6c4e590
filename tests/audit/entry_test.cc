#include "coffre/audit/entry.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/sealed_box.h"
#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"

namespace coffre::audit {
namespace {

using Bytes = std::vector<std::uint8_t>;

Entry FullEntry() {
  Entry entry;
  entry.type = EventType::kBlobFetched;
  entry.result = EventResult::kRefused;
  entry.relay_time_ms = 1'764'000'000'123;
  entry.actor.emplace();
  for (std::size_t i = 0; i < kPseudonymSize; ++i) (*entry.actor)[i] = static_cast<std::uint8_t>(i);
  entry.device_id = 0x01020304;
  entry.team_id.emplace();
  entry.team_id->fill(0x7E);
  entry.item_id.emplace();
  entry.item_id->fill(0x1D);
  entry.object_version = 0x0A0B0C0D0E0F1011;
  entry.node = "relay-1.sdis13";
  entry.jurisdiction = "FR";
  entry.details_hash.emplace();
  entry.details_hash->fill(0xD5);
  return entry;
}

Entry MinimalEntry() {
  Entry entry;
  entry.type = EventType::kLogin;
  entry.result = EventResult::kFailed;
  entry.relay_time_ms = 0;
  entry.node = "r";
  entry.jurisdiction = "DE";
  return entry;
}

void Append(Bytes& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = 0; i < width; ++i) {
    out.push_back(static_cast<std::uint8_t>(value >> (8 * (width - 1 - i))));
  }
}

template <typename Range>
void Append(Bytes& out, const Range& bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

void ExpectCode(const auto& result, ErrorCode code) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), code);
}

// docs/protocol.md "Audit log": the entry layout, rebuilt by hand.
TEST(EntryEncodingTest, FollowsTheDocumentedLayout) {
  const Entry entry = FullEntry();
  Bytes expected;
  Append(expected, 1, 1);   // version
  Append(expected, 14, 2);  // blob_fetched
  Append(expected, 2, 1);   // refused
  Append(expected, entry.relay_time_ms, 8);
  Append(expected, 32, 1);
  Append(expected, *entry.actor);
  Append(expected, 0x01020304, 4);
  Append(expected, 16, 1);
  Append(expected, *entry.team_id);
  Append(expected, 16, 1);
  Append(expected, *entry.item_id);
  Append(expected, entry.object_version, 8);
  Append(expected, entry.node.size(), 1);
  Append(expected, entry.node);
  Append(expected, std::string_view("FR"));
  Append(expected, 32, 1);
  Append(expected, *entry.details_hash);
  const auto encoded = EncodeEntry(entry);
  ASSERT_TRUE(encoded.has_value());
  EXPECT_EQ(*encoded, expected);
  EXPECT_LE(encoded->size(), kMaxEntrySize);

  Bytes minimal;
  Append(minimal, 1, 1);
  Append(minimal, 4, 2);  // login
  Append(minimal, 3, 1);  // failed
  Append(minimal, 0, 8);
  Append(minimal, 0, 1);  // no actor
  Append(minimal, 0, 4);  // no device
  Append(minimal, 0, 1);  // no team
  Append(minimal, 0, 1);  // no item
  Append(minimal, 0, 8);
  Append(minimal, 1, 1);
  Append(minimal, std::string_view("rDE"));
  Append(minimal, 0, 1);  // no details
  EXPECT_EQ(*EncodeEntry(MinimalEntry()), minimal);
}

TEST(EntryEncodingTest, TheLongestEntryIsKMaxEntrySize) {
  // Every optional field, the longest node name, and a client event.
  Entry entry = FullEntry();
  entry.node = std::string(kMaxNodeNameSize, 'n');
  entry.type = EventType::kDocumentExported;
  ClientEvent event;
  event.type = entry.type;
  event.device_id = entry.device_id;
  event.team_id = *entry.team_id;
  event.item_id = *entry.item_id;
  event.version = entry.object_version;
  event.sequence = 1;
  entry.client_event = *SignClientEvent(event, crypto::SigningKey::Generate());
  EXPECT_EQ(EncodeEntry(entry)->size(), kMaxEntrySize);
}

Entry RandomEntry(std::mt19937_64& random) {
  Entry entry;
  entry.type = static_cast<EventType>(1 + random() % kMaxEventType);
  entry.result = static_cast<EventResult>(1 + random() % 3);
  entry.relay_time_ms = random() >> 1;
  const auto fill = [&](auto& array) {
    for (auto& byte : array) byte = static_cast<std::uint8_t>(random());
  };
  if (random() % 2) fill(entry.actor.emplace());
  entry.device_id = random() % 2 ? static_cast<std::uint32_t>(random() % (kMaxDeviceId + 1ull)) : 0;
  if (random() % 2) fill(entry.team_id.emplace());
  if (random() % 2) fill(entry.item_id.emplace());
  entry.object_version = random() % 2 ? random() : 0;
  static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-";
  entry.node.resize(1 + random() % kMaxNodeNameSize);
  for (char& c : entry.node) c = kAlphabet[random() % kAlphabet.size()];
  entry.jurisdiction = {static_cast<char>('A' + random() % 26),
                        static_cast<char>('A' + random() % 26)};
  if (random() % 2) fill(entry.details_hash.emplace());
  if (IsClientEventType(entry.type)) {
    // Only a device reports these, with its signed statement of the same facts.
    static const crypto::SigningKey device_key = crypto::SigningKey::Generate();
    entry.device_id = 1 + static_cast<std::uint32_t>(random() % kMaxDeviceId);
    fill(entry.team_id.emplace());
    fill(entry.item_id.emplace());
    entry.object_version = 1 + random() % 1000;
    ClientEvent event;
    event.type = entry.type;
    event.client_time_ms = random() >> 1;
    event.device_id = entry.device_id;
    event.team_id = *entry.team_id;
    event.item_id = *entry.item_id;
    event.version = entry.object_version;
    event.sequence = 2 + random() % 1000;
    fill(event.previous);
    entry.client_event = *SignClientEvent(event, device_key);
  }
  return entry;
}

TEST(EntryEncodingTest, RandomEntriesRoundTrip) {
  std::mt19937_64 random(1);
  for (int i = 0; i < 5000; ++i) {
    const Entry entry = RandomEntry(random);
    const auto encoded = EncodeEntry(entry);
    ASSERT_TRUE(encoded.has_value());
    const auto decoded = DecodeEntry(*encoded);
    ASSERT_TRUE(decoded.has_value());
    ASSERT_EQ(*decoded, entry);
  }
}

// Canonical: whatever single byte changes, the result either fails to decode or decodes to
// an entry whose encoding is exactly the changed bytes (another valid entry).
TEST(EntryDecodingTest, EveryByteChangeIsRefusedOrCanonical) {
  const Bytes encoded = *EncodeEntry(FullEntry());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    for (int value = 0; value < 256; ++value) {
      Bytes changed = encoded;
      changed[i] = static_cast<std::uint8_t>(value);
      const auto decoded = DecodeEntry(changed);
      if (decoded) {
        ASSERT_EQ(*EncodeEntry(*decoded), changed) << i << " " << value;
      }
    }
  }
}

TEST(EntryDecodingTest, TruncatedOrExtendedEntriesAreRefused) {
  for (const Entry& entry : {FullEntry(), MinimalEntry()}) {
    const Bytes encoded = *EncodeEntry(entry);
    for (std::size_t size = 0; size < encoded.size(); ++size) {
      const auto decoded = DecodeEntry(std::span(encoded).first(size));
      ASSERT_FALSE(decoded.has_value()) << size;
    }
    for (const int extra : {0x00, 0x01, 0xFF}) {
      Bytes longer = encoded;
      longer.push_back(static_cast<std::uint8_t>(extra));
      ExpectCode(DecodeEntry(longer), ErrorCode::kInvalidArgument);
    }
  }
  ExpectCode(DecodeEntry(Bytes(kMaxEntrySize + 1)), ErrorCode::kInvalidArgument);
}

TEST(EntryDecodingTest, EachMalformedFieldIsRefused) {
  const Bytes good = *EncodeEntry(FullEntry());
  // Offsets in FullEntry's encoding.
  constexpr std::size_t kType = 1, kResult = 3, kTime = 4, kActor = 12, kDevice = 45, kTeam = 49,
                        kItem = 66, kNode = 91, kJurisdiction = 106, kDetails = 108;
  ASSERT_EQ(good.size(), kDetails + 33);
  const auto with = [&](std::size_t at, std::initializer_list<int> bytes) {
    Bytes changed = good;
    std::size_t i = at;
    for (const int byte : bytes) changed[i++] = static_cast<std::uint8_t>(byte);
    return changed;
  };
  for (const int version : {0x00, 0x03, 0xFF}) {
    ExpectCode(DecodeEntry(with(0, {version})), ErrorCode::kUnsupported);
  }
  // Format 2 is format 1 followed by a client event: here there is none.
  ExpectCode(DecodeEntry(with(0, {0x02})), ErrorCode::kInvalidArgument);
  for (const int type : {0, 19, 0x100, 0xFFFF}) {
    ExpectCode(DecodeEntry(with(kType, {type >> 8, type & 0xFF})), ErrorCode::kInvalidArgument);
  }
  for (const int result : {0, 4, 0xFF}) {
    ExpectCode(DecodeEntry(with(kResult, {result})), ErrorCode::kInvalidArgument);
  }
  ExpectCode(DecodeEntry(with(kTime, {0x80})), ErrorCode::kInvalidArgument);  // 2^63 and up
  for (const int length : {1, 16, 31, 33, 0xFF}) {
    ExpectCode(DecodeEntry(with(kActor, {length})), ErrorCode::kInvalidArgument);
    ExpectCode(DecodeEntry(with(kDetails, {length})), ErrorCode::kInvalidArgument);
  }
  ExpectCode(DecodeEntry(with(kDevice, {0x80, 0, 0, 0})), ErrorCode::kInvalidArgument);
  for (const int length : {1, 15, 17, 32}) {
    ExpectCode(DecodeEntry(with(kTeam, {length})), ErrorCode::kInvalidArgument);
    ExpectCode(DecodeEntry(with(kItem, {length})), ErrorCode::kInvalidArgument);
  }
  ExpectCode(DecodeEntry(with(kNode, {0})), ErrorCode::kInvalidArgument);
  ExpectCode(DecodeEntry(with(kNode, {65})), ErrorCode::kInvalidArgument);
  for (const int c : {int{'R'}, int{' '}, int{'/'}, 0x00, 0xC3}) {
    ExpectCode(DecodeEntry(with(kNode + 1, {c})), ErrorCode::kInvalidArgument);
  }
  for (const auto& [first, second] :
       std::vector<std::pair<int, int>>{{'f', 'r'}, {'F', '1'}, {' ', 'R'}, {'F', 0x00}}) {
    ExpectCode(DecodeEntry(with(kJurisdiction, {first, second})), ErrorCode::kInvalidArgument);
  }
}

TEST(EntryEncodingTest, EncodeRefusesWhatDecodeWouldRefuse) {
  const auto refused = [](auto change) {
    Entry entry = FullEntry();
    change(entry);
    ExpectCode(EncodeEntry(entry), ErrorCode::kInvalidArgument);
  };
  refused([](Entry& e) { e.type = static_cast<EventType>(0); });
  refused([](Entry& e) { e.type = static_cast<EventType>(kMaxEventType + 1); });
  refused([](Entry& e) { e.result = static_cast<EventResult>(4); });
  refused([](Entry& e) { e.relay_time_ms = std::uint64_t{1} << 63; });
  refused([](Entry& e) { e.device_id = kMaxDeviceId + 1; });
  refused([](Entry& e) { e.node = ""; });
  refused([](Entry& e) { e.node = std::string(kMaxNodeNameSize + 1, 'n'); });
  refused([](Entry& e) { e.node = "Relay-1"; });
  refused([](Entry& e) { e.jurisdiction = "fr"; });
  refused([](Entry& e) { e.jurisdiction = "FRA"; });
  refused([](Entry& e) { e.jurisdiction = ""; });
  EXPECT_TRUE(ValidateNodeName("relay-1").has_value());
  EXPECT_TRUE(ValidateJurisdiction("FR").has_value());
}

TEST(EntryEncodingTest, EventAndResultNamesRoundTrip) {
  for (std::uint16_t value = 1; value <= kMaxEventType; ++value) {
    const auto type = static_cast<EventType>(value);
    const std::string_view name = EventTypeName(type);
    EXPECT_FALSE(name.empty()) << value;
    EXPECT_EQ(EventTypeFromName(name), type);
  }
  EXPECT_EQ(EventTypeName(EventType::kBlobFetched), "blob_fetched");
  EXPECT_EQ(EventTypeName(EventType::kDocumentExported), "document_exported");
  EXPECT_TRUE(EventTypeName(static_cast<EventType>(0)).empty());
  EXPECT_FALSE(EventTypeFromName("").has_value());
  EXPECT_FALSE(EventTypeFromName("login_failed").has_value());
  for (const auto result : {EventResult::kSuccess, EventResult::kRefused, EventResult::kFailed}) {
    EXPECT_EQ(EventResultFromName(EventResultName(result)), result);
  }
  EXPECT_EQ(EventResultName(EventResult::kRefused), "refused");
  EXPECT_FALSE(EventResultFromName("ok").has_value());
}

// ---------------------------------------------------------------------------------------------
// Pseudonyms

TEST(PseudonymTest, IsTheDocumentedKeyedBlake2b) {
  const crypto::SecretBytes key = crypto::RandomSecret(32);
  const auto pseudonym = PseudonymizeActor(key, "alice.martin");
  ASSERT_TRUE(pseudonym.has_value());
  // BLAKE2b-256 keyed with the organisation key over the DeriveSubkey encoding of label and
  // user id (docs/protocol.md "Key derivation"), computed here with libsodium directly.
  const std::string input =
      std::string("coffre/kdf/v1") + '\0' + '\x15' + "coffre/audit-actor/v1" + "alice.martin";
  Pseudonym expected;
  ASSERT_EQ(crypto_generichash(expected.data(), expected.size(),
                               reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                               key.data(), key.size()),
            0);
  EXPECT_EQ(*pseudonym, expected);
}

TEST(PseudonymTest, IsStablePerOrganisationAndUnlinkableAcross) {
  const crypto::SecretBytes org_a = crypto::RandomSecret(32);
  const crypto::SecretBytes org_b = crypto::RandomSecret(32);
  EXPECT_EQ(*PseudonymizeActor(org_a, "alice"), *PseudonymizeActor(org_a, "alice"));
  EXPECT_NE(*PseudonymizeActor(org_a, "alice"), *PseudonymizeActor(org_a, "alicf"));
  EXPECT_NE(*PseudonymizeActor(org_a, "alice"), *PseudonymizeActor(org_b, "alice"));
  for (const std::string_view user : {"", "Alice", "alice martin", "al/ice"}) {
    ExpectCode(PseudonymizeActor(org_a, user), ErrorCode::kInvalidArgument);
  }
  ExpectCode(PseudonymizeActor(org_a, std::string(65, 'a')), ErrorCode::kInvalidArgument);
  ExpectCode(PseudonymizeActor(crypto::RandomSecret(8), "alice"), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Sealed details

Details FullDetails() {
  Details details;
  details.actor_user_id = "alice.martin";
  details.subject_user_id = "bob_1";
  details.ip_address = "2001:db8::8a2e:370:7334";
  details.user_agent = "coffre/0.1 (Debian 12)";
  details.reason = "accès refusé : pas membre de l'équipe";
  return details;
}

TEST(DetailsTest, EncodingFollowsTheDocumentedLayoutAndRoundTrips) {
  const Details details = FullDetails();
  const auto encoded = EncodeDetails(details);
  ASSERT_TRUE(encoded.has_value());
  Bytes expected = {1};
  const auto field = [&](const std::string& text, std::size_t width) {
    Append(expected, text.size(), width);
    Append(expected, text);
  };
  field(details.actor_user_id, 1);
  field(details.subject_user_id, 1);
  field(details.ip_address, 1);
  field(details.user_agent, 2);
  field(details.reason, 2);
  EXPECT_EQ(Bytes(encoded->span().begin(), encoded->span().end()), expected);
  EXPECT_EQ(*DecodeDetails(encoded->span()), details);
  EXPECT_EQ(*DecodeDetails(EncodeDetails(Details{})->span()), Details{});
}

TEST(DetailsTest, MalformedDetailsAreRefused) {
  const crypto::SecretBytes encoded = *EncodeDetails(FullDetails());
  const Bytes good(encoded.span().begin(), encoded.span().end());
  for (std::size_t size = 0; size < good.size(); ++size) {
    EXPECT_FALSE(DecodeDetails(std::span(good).first(size)).has_value()) << size;
  }
  Bytes longer = good;
  longer.push_back(0);
  ExpectCode(DecodeDetails(longer), ErrorCode::kInvalidArgument);
  Bytes version = good;
  version[0] = 2;
  ExpectCode(DecodeDetails(version), ErrorCode::kUnsupported);
  Bytes upper = good;
  upper[2] = 'A';  // in the actor user id
  ExpectCode(DecodeDetails(upper), ErrorCode::kInvalidArgument);
  const auto refused = [](auto change) {
    Details details = FullDetails();
    change(details);
    ExpectCode(EncodeDetails(details), ErrorCode::kInvalidArgument);
  };
  refused([](Details& d) { d.actor_user_id = "Alice"; });
  refused([](Details& d) { d.subject_user_id = std::string(65, 'b'); });
  refused([](Details& d) { d.ip_address = "192.168.1.1%eth0"; });
  refused([](Details& d) { d.ip_address = std::string(46, '1'); });
  refused([](Details& d) { d.user_agent = "line\nbreak"; });
  refused([](Details& d) { d.user_agent = std::string(kMaxDetailsTextSize + 1, 'u'); });
  refused([](Details& d) { d.reason = "\xC3"; });
}

constexpr std::uint64_t kKeyId = 0x0102030405060708;

TEST(SealedDetailsTest, RoundTripUnderTheMonthKey) {
  const MonthKey key = MonthKey::Generate();
  const auto sealed = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(sealed.has_value());
  EXPECT_EQ(sealed->size(), kSealedDetailsOverhead + EncodeDetails(FullDetails())->size());
  // The key id comes first, big-endian, readable without the key.
  EXPECT_EQ(Bytes(sealed->begin(), sealed->begin() + 8), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));
  const auto key_id = SealedDetailsKeyId(*sealed);
  ASSERT_TRUE(key_id.has_value());
  EXPECT_EQ(*key_id, kKeyId);
  const auto opened = OpenDetailsUnder(key, *sealed);
  ASSERT_TRUE(opened.has_value()) << opened.error().context();
  EXPECT_EQ(*opened, FullDetails());
  // Empty details (every field absent) seal and open too: the shortest sealed details.
  const auto empty = SealDetailsUnder(key, 1, Details{});
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->size(), kMinSealedDetailsSize);
  EXPECT_EQ(*OpenDetailsUnder(key, *empty), Details{});
}

TEST(SealedDetailsTest, SealingIsRandomised) {
  const MonthKey key = MonthKey::Generate();
  const auto first = SealDetailsUnder(key, kKeyId, FullDetails());
  const auto again = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(first && again);
  EXPECT_NE(*again, *first);
  EXPECT_NE(DetailsHash(*again), DetailsHash(*first));
}

TEST(SealedDetailsTest, OpenFailsUnderAnotherKey) {
  const MonthKey key = MonthKey::Generate();
  const auto sealed = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(sealed.has_value());
  ExpectCode(OpenDetailsUnder(MonthKey::Generate(), *sealed), ErrorCode::kAuthenticationFailed);
}

TEST(SealedDetailsTest, OpenFailsIfAnyByteChanges) {
  const MonthKey key = MonthKey::Generate();
  const auto sealed = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(sealed.has_value());
  std::string context;
  for (std::size_t i = 0; i < sealed->size(); ++i) {
    Bytes changed = *sealed;
    changed[i] ^= 0x01;
    const auto opened = OpenDetailsUnder(key, changed);
    ASSERT_FALSE(opened.has_value()) << i;
    EXPECT_EQ(opened.error().code(), ErrorCode::kAuthenticationFailed) << i;
    // One context for every failure: no oracle on what was wrong.
    if (i == 0) context = opened.error().context();
    EXPECT_EQ(opened.error().context(), context) << i;
  }
}

TEST(SealedDetailsTest, OpenFailsUnderAnotherKeyId) {
  const MonthKey key = MonthKey::Generate();
  const auto sealed = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(sealed.has_value());
  // The key id is bound as associated data: the right key does not open details that name
  // another id.
  Bytes moved = *sealed;
  moved[7] = 0x09;
  ASSERT_EQ(*SealedDetailsKeyId(moved), kKeyId + 1);
  ExpectCode(OpenDetailsUnder(key, moved), ErrorCode::kAuthenticationFailed);
}

TEST(SealedDetailsTest, TruncatedOrOverlongInputsAreRefused) {
  const MonthKey key = MonthKey::Generate();
  const auto sealed = SealDetailsUnder(key, kKeyId, FullDetails());
  ASSERT_TRUE(sealed.has_value());
  for (std::size_t size = 0; size < sealed->size(); ++size) {
    const auto truncated = std::span(*sealed).first(size);
    ExpectCode(OpenDetailsUnder(key, truncated), ErrorCode::kAuthenticationFailed);
    if (size < kMinSealedDetailsSize) {
      ExpectCode(SealedDetailsKeyId(truncated), ErrorCode::kInvalidArgument);
    }
  }
  Bytes longer = *sealed;
  longer.push_back(0);
  ExpectCode(OpenDetailsUnder(key, longer), ErrorCode::kAuthenticationFailed);
  Bytes too_long(kMaxSealedDetailsSize + 1, 0x01);
  ExpectCode(SealedDetailsKeyId(too_long), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(SealedDetailsKeyId(std::span(too_long).first(kMaxSealedDetailsSize)));
}

TEST(SealedDetailsTest, KeyIdsOutsideTheRowidRangeAreRefused) {
  const MonthKey key = MonthKey::Generate();
  ExpectCode(SealDetailsUnder(key, 0, FullDetails()), ErrorCode::kInvalidArgument);
  ExpectCode(SealDetailsUnder(key, kMaxMonthKeyId + 1, FullDetails()), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(SealDetailsUnder(key, kMaxMonthKeyId, FullDetails()));
  Bytes zero(kMinSealedDetailsSize, 0);
  ExpectCode(SealedDetailsKeyId(zero), ErrorCode::kInvalidArgument);
  Bytes top(kMinSealedDetailsSize, 0);
  top[0] = 0x80;
  ExpectCode(SealedDetailsKeyId(top), ErrorCode::kInvalidArgument);
  // Details outside their form are refused before anything is sealed.
  Details bad = FullDetails();
  bad.actor_user_id = "Alice";
  ExpectCode(SealDetailsUnder(key, kKeyId, bad), ErrorCode::kInvalidArgument);
}

TEST(MonthKeyTest, OpensOnlyForTheAuditorAndSealsTheSameDetails) {
  const crypto::X25519KeyPair auditor = crypto::X25519KeyPair::Generate();
  const MonthKey key = MonthKey::Generate();
  const Bytes sealed_key = SealMonthKey(auditor.public_key(), key);
  const Bytes sealed = *SealDetailsUnder(key, kKeyId, FullDetails());
  const auto opened_key = OpenMonthKey(auditor, sealed_key);
  ASSERT_TRUE(opened_key.has_value());
  EXPECT_EQ(*OpenDetailsUnder(*opened_key, sealed), FullDetails());
  ExpectCode(OpenMonthKey(crypto::X25519KeyPair::Generate(), sealed_key),
             ErrorCode::kAuthenticationFailed);
  for (std::size_t i = 0; i < sealed_key.size(); ++i) {
    Bytes changed = sealed_key;
    changed[i] ^= 0x01;
    ExpectCode(OpenMonthKey(auditor, changed), ErrorCode::kAuthenticationFailed);
  }
  for (std::size_t size = 0; size < sealed_key.size(); ++size) {
    ExpectCode(OpenMonthKey(auditor, std::span(sealed_key).first(size)),
               ErrorCode::kAuthenticationFailed);
  }
  // A box under the month-key label that holds anything but 32 bytes is no month key.
  const Bytes short_key(31, 0x42);
  ExpectCode(OpenMonthKey(auditor, crypto::SealToPublicKey(auditor.public_key(),
                                                           "coffre/audit-month-key/v1", short_key)),
             ErrorCode::kAuthenticationFailed);
  // A box under another label is refused even if it holds 32 bytes.
  const Bytes other_label =
      crypto::SealToPublicKey(auditor.public_key(), "coffre/audit-details/v1", Bytes(32, 0x42));
  ExpectCode(OpenMonthKey(auditor, other_label), ErrorCode::kAuthenticationFailed);
}

TEST(DetailsTest, HashIsTheDocumentedLabelledBlake2b) {
  const Bytes sealed = crypto::RandomBytes(200);
  std::string input = std::string("\x00\x1c", 2) + "coffre/audit-details-hash/v1";
  input.append(reinterpret_cast<const char*>(sealed.data()), sealed.size());
  Hash expected;
  ASSERT_EQ(crypto_generichash(expected.data(), expected.size(),
                               reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                               nullptr, 0),
            0);
  EXPECT_EQ(DetailsHash(sealed), expected);
}

// The point of the design: the entry commits to the sealed details' hash, so erasing the
// details leaves the entry, its leaf hash and every proof as they were.
TEST(DetailsTest, EntryCommitsToTheSealedDetailsOnly) {
  const Bytes sealed = *SealDetailsUnder(MonthKey::Generate(), kKeyId, FullDetails());
  Entry entry = FullEntry();
  entry.details_hash = DetailsHash(sealed);
  const Bytes encoded = *EncodeEntry(entry);
  const Hash leaf = HashLeaf(encoded);
  // An auditor holding the sealed bytes checks them against the entry.
  EXPECT_EQ(DecodeEntry(encoded)->details_hash, DetailsHash(sealed));
  Bytes tampered = sealed;
  tampered.back() ^= 1;
  EXPECT_NE(DecodeEntry(encoded)->details_hash, DetailsHash(tampered));
  // Without the details (erased), the entry still decodes and hashes to the same leaf.
  EXPECT_EQ(HashLeaf(*EncodeEntry(*DecodeEntry(encoded))), leaf);
}

}  // namespace
}  // namespace coffre::audit
