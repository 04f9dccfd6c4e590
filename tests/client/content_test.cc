#include "coffre/client/content.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/content/v1/content.pb.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/kdf.h"
#include "support/vectors.h"

namespace coffre::client {
namespace {

namespace pb = ::coffre::content::v1;
using crypto::SecretBytes;
using Bytes = std::vector<std::uint8_t>;
using testing::FromHex;

constexpr protocol::TeamId kTeam = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                    0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
constexpr protocol::TeamId kOtherTeam = {0xb0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                         0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};

ItemId Id(std::uint8_t first) {
  ItemId id{};
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(first + i);
  return id;
}

protocol::Hash HashOf(std::uint8_t first) {
  protocol::Hash hash{};
  for (std::size_t i = 0; i < hash.size(); ++i) hash[i] = static_cast<std::uint8_t>(first + i);
  return hash;
}

SecretBytes KeyOf(std::uint8_t first) {
  SecretBytes key(kTeamKeySize);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(first + i);
  return key;
}

template <typename T>
T Must(Result<T> result) {
  if (!result) {
    ADD_FAILURE() << "unexpected failure: " << result.error().context();
    std::abort();
  }
  return std::move(result).value();
}

std::string ToString(std::span<const std::uint8_t> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

Bytes ToBytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

bool SameBytes(const SecretBytes& a, const SecretBytes& b) {
  return crypto::ConstantTimeEquals(a.span(), b.span());
}

template <typename R>
void ExpectFailure(const R& result, ErrorCode code, std::string_view context) {
  ASSERT_FALSE(result.has_value()) << "expected: " << context;
  EXPECT_EQ(result.error().code(), code) << result.error().context();
  EXPECT_EQ(result.error().context(), context);
}

template <typename R>
void ExpectCode(const R& result, ErrorCode code) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), code) << result.error().context();
}

// The serialized message with `edit` applied.
template <typename Message>
std::string Edited(const std::string& serialized, const std::function<void(Message&)>& edit) {
  Message message;
  EXPECT_TRUE(message.ParseFromString(serialized));
  edit(message);
  return message.SerializeAsString();
}

// ---------------------------------------------------------------------------------------
// Team keys and derived keys

TEST(ContentKeysTest, CommitmentIsTheDocumentedDerivation) {
  const SecretBytes ptk = KeyOf(1);
  const protocol::Hash commitment = Must(KeyCommitment(kTeam, 5, ptk));
  Bytes context(kTeam.begin(), kTeam.end());
  for (int shift = 56; shift >= 0; shift -= 8) {
    context.push_back(static_cast<std::uint8_t>(std::uint64_t{5} >> shift));
  }
  const SecretBytes expected =
      Must(crypto::DeriveSubkey(ptk.span(), "coffre/team-key-commitment/v1", context, 32));
  EXPECT_TRUE(crypto::ConstantTimeEquals(commitment, expected.span()));
}

TEST(ContentKeysTest, CommitmentDiffersPerGenerationTeamAndKey) {
  const SecretBytes ptk = KeyOf(1);
  const protocol::Hash base = Must(KeyCommitment(kTeam, 1, ptk));
  EXPECT_EQ(base, Must(KeyCommitment(kTeam, 1, ptk)));
  EXPECT_NE(base, Must(KeyCommitment(kTeam, 2, ptk)));
  EXPECT_NE(base, Must(KeyCommitment(kOtherTeam, 1, ptk)));
  EXPECT_NE(base, Must(KeyCommitment(kTeam, 1, KeyOf(2))));
}

TEST(ContentKeysTest, CheckKeyCommitmentAcceptsOnlyTheCommittedKey) {
  const SecretBytes ptk = GenerateTeamKey();
  const protocol::Hash commitment = Must(KeyCommitment(kTeam, 3, ptk));
  EXPECT_TRUE(CheckKeyCommitment(kTeam, 3, ptk, commitment).has_value());
  ExpectFailure(CheckKeyCommitment(kTeam, 3, GenerateTeamKey(), commitment),
                ErrorCode::kAuthenticationFailed, kKeyCommitmentMismatch);
  ExpectFailure(CheckKeyCommitment(kTeam, 4, ptk, commitment), ErrorCode::kAuthenticationFailed,
                kKeyCommitmentMismatch);
  ExpectFailure(CheckKeyCommitment(kOtherTeam, 3, ptk, commitment),
                ErrorCode::kAuthenticationFailed, kKeyCommitmentMismatch);
  protocol::Hash flipped = commitment;
  flipped[31] ^= 0x01;
  ExpectFailure(CheckKeyCommitment(kTeam, 3, ptk, flipped), ErrorCode::kAuthenticationFailed,
                kKeyCommitmentMismatch);
  ExpectFailure(CheckKeyCommitment(kTeam, 3, ptk, std::span(commitment).first(31)),
                ErrorCode::kAuthenticationFailed, kKeyCommitmentMismatch);
}

TEST(ContentKeysTest, DerivationsRefuseABadKeyOrGenerationZero) {
  const SecretBytes short_key(31);
  ExpectCode(KeyCommitment(kTeam, 1, short_key), ErrorCode::kInvalidArgument);
  ExpectCode(KeyCommitment(kTeam, 0, KeyOf(1)), ErrorCode::kInvalidArgument);
  ExpectCode(DeriveChannelKey(short_key, kTeam, 1, Id(0)), ErrorCode::kInvalidArgument);
  ExpectCode(DeriveChannelKey(KeyOf(1), kTeam, 0, Id(0)), ErrorCode::kInvalidArgument);
  ExpectCode(DeriveDocumentWrapKey(SecretBytes(33), kTeam, 1), ErrorCode::kInvalidArgument);
  ExpectCode(DeriveMetadataKey(KeyOf(1), kTeam, 0), ErrorCode::kInvalidArgument);
  ExpectCode(DeriveKeyHistoryKey(SecretBytes(), kTeam, 1), ErrorCode::kInvalidArgument);
}

TEST(ContentKeysTest, EachDerivedKeyDependsOnItsLabelAndEveryBinding) {
  const SecretBytes ptk = KeyOf(1);
  std::vector<SecretBytes> keys;
  keys.push_back(Must(DeriveChannelKey(ptk, kTeam, 1, Id(0))));
  keys.push_back(Must(DeriveChannelKey(ptk, kTeam, 1, Id(1))));
  keys.push_back(Must(DeriveChannelKey(ptk, kTeam, 2, Id(0))));
  keys.push_back(Must(DeriveChannelKey(ptk, kOtherTeam, 1, Id(0))));
  keys.push_back(Must(DeriveChannelKey(KeyOf(2), kTeam, 1, Id(0))));
  keys.push_back(Must(DeriveDocumentWrapKey(ptk, kTeam, 1)));
  keys.push_back(Must(DeriveDocumentWrapKey(ptk, kTeam, 2)));
  keys.push_back(Must(DeriveMetadataKey(ptk, kTeam, 1)));
  keys.push_back(Must(DeriveMetadataKey(ptk, kOtherTeam, 1)));
  keys.push_back(Must(DeriveKeyHistoryKey(ptk, kTeam, 1)));
  keys.push_back(SecretBytes::CopyOf(Must(KeyCommitment(kTeam, 1, ptk))));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].size(), 32u);
    for (std::size_t j = i + 1; j < keys.size(); ++j) {
      EXPECT_FALSE(SameBytes(keys[i], keys[j])) << i << " and " << j;
    }
  }
  EXPECT_TRUE(SameBytes(keys[0], Must(DeriveChannelKey(ptk, kTeam, 1, Id(0)))));
}

TEST(ContentKeysTest, GeneratedKeysAreFreshAndOfKeySize) {
  const SecretBytes a = GenerateTeamKey();
  const SecretBytes b = GenerateTeamKey();
  EXPECT_EQ(a.size(), kTeamKeySize);
  EXPECT_FALSE(SameBytes(a, b));
  EXPECT_EQ(GenerateDocumentKey().size(), crypto::kDocumentKeySize);
}

// ---------------------------------------------------------------------------------------
// Padding

TEST(ContentPaddingTest, PaddedSizeIsTheSmallestBucketWithRoomForTheMarker) {
  EXPECT_EQ(PaddedSize(0), 256u);
  EXPECT_EQ(PaddedSize(255), 256u);
  EXPECT_EQ(PaddedSize(256), 1024u);
  EXPECT_EQ(PaddedSize(1023), 1024u);
  EXPECT_EQ(PaddedSize(1024), 4096u);
  EXPECT_EQ(PaddedSize(4095), 4096u);
  EXPECT_EQ(PaddedSize(16383), 16384u);
  EXPECT_EQ(PaddedSize(16384), 32768u);
  EXPECT_EQ(PaddedSize(32768), 49152u);
  EXPECT_EQ(PaddedSize(49151), 49152u);
  EXPECT_FALSE(PaddedSize(49152).has_value());
}

TEST(ContentPaddingTest, PaddedPostBodyEndsWithTheMarkerThenZeros) {
  const SecretBytes padded = Must(internal::PaddedPostBody("abc", 0));
  ASSERT_EQ(padded.size(), 256u);
  // PostBody{text = "abc"}: tag 0x0a, length 3, "abc".
  const Bytes expected_start = {0x0a, 0x03, 'a', 'b', 'c', 0x80};
  EXPECT_TRUE(std::equal(expected_start.begin(), expected_start.end(), padded.data()));
  EXPECT_TRUE(
      std::all_of(padded.data() + 6, padded.data() + 256, [](std::uint8_t b) { return b == 0; }));
}

// ---------------------------------------------------------------------------------------
// Posts

class ContentPostTest : public ::testing::Test {
 protected:
  ContentPostTest() {
    context_.team_id = kTeam;
    context_.generation = 4;
    context_.channel_id = Id(0x10);
    context_.post_id = Id(0x20);
    context_.sender_user_id = "alice";
    context_.sender_device_id = 7;
    context_.chain_head = {12, HashOf(0x40)};
  }

  SecretBytes ChannelKey(const ItemId& channel, std::uint64_t generation = 4) const {
    return Must(DeriveChannelKey(ptk_, kTeam, generation, channel));
  }

  wire::v1::ItemManifestBody Manifest(const Bytes& metadata) const {
    wire::v1::ItemManifestBody body;
    body.set_team_id(ToString(context_.team_id));
    body.set_item_id(ToString(context_.post_id));
    body.set_version(1);
    body.set_kind("post");
    body.set_key_generation(context_.generation);
    body.set_encrypted_metadata(ToString(metadata));
    body.set_author_user_id(context_.sender_user_id);
    body.set_author_device_id(context_.sender_device_id);
    body.set_created_ms(1);
    return body;
  }

  wire::v1::ItemManifestBody Sealed(std::string_view text, std::uint64_t sent_ms = 1234) const {
    return Manifest(Must(SealPost(ChannelKey(context_.channel_id), context_, text, sent_ms)));
  }

  // The sealed post with its clear header edited, as an author (or the relay, were the
  // manifest not signed) could present it.
  wire::v1::ItemManifestBody WithHeader(const std::function<void(pb::PostHeader&)>& edit) const {
    wire::v1::ItemManifestBody body = Sealed("hello");
    body.set_encrypted_metadata(Edited<pb::PostHeader>(body.encrypted_metadata(), edit));
    return body;
  }

  void ExpectAuthFailure(const wire::v1::ItemManifestBody& body, const SecretBytes& key) const {
    ExpectFailure(OpenPost(body, key), ErrorCode::kAuthenticationFailed, kPostAuthFailure);
  }

  SecretBytes ptk_ = KeyOf(1);
  PostContext context_;
};

TEST_F(ContentPostTest, TopLevelPostRoundTrips) {
  const auto body = Sealed("Réunion à 14 h", 1718870400000);
  const OpenedPost post = Must(OpenPost(body, ChannelKey(context_.channel_id)));
  EXPECT_EQ(post.text, "Réunion à 14 h");
  EXPECT_EQ(post.sent_ms, 1718870400000u);
  EXPECT_EQ(post.channel_id, context_.channel_id);
  EXPECT_FALSE(post.parent_post_id.has_value());
  EXPECT_EQ(post.chain_head, context_.chain_head);
}

TEST_F(ContentPostTest, AnswerInAThreadRoundTripsWithItsParent) {
  context_.parent_post_id = Id(0x30);
  const OpenedPost post = Must(OpenPost(Sealed("d'accord"), ChannelKey(context_.channel_id)));
  EXPECT_EQ(post.text, "d'accord");
  ASSERT_TRUE(post.parent_post_id.has_value());
  EXPECT_EQ(*post.parent_post_id, Id(0x30));
}

TEST_F(ContentPostTest, EmptyTextAndMaximumTextRoundTrip) {
  EXPECT_EQ(Must(OpenPost(Sealed("", 0), ChannelKey(context_.channel_id))).text, "");
  const std::string longest(kMaxTextSize, 'x');
  const auto body = Sealed(longest);
  EXPECT_LE(body.encrypted_metadata().size(), protocol::kMaxItemMetadata);
  EXPECT_EQ(Must(OpenPost(body, ChannelKey(context_.channel_id))).text, longest);
}

TEST_F(ContentPostTest, AuditCheckpointRidesAlongWhenItFits) {
  const std::string note(600, 'n');
  const SecretBytes key = ChannelKey(context_.channel_id);
  const auto with = Manifest(Must(SealPost(key, context_, "vu", 5, note)));
  const OpenedPost post = Must(OpenPost(with, key));
  EXPECT_EQ(post.text, "vu");
  EXPECT_EQ(post.audit_checkpoint, note);
  EXPECT_EQ(Must(OpenPost(Sealed("vu"), key)).audit_checkpoint, "");
  // The longest text leaves no room: the post goes without its gossip.
  const std::string longest(kMaxTextSize, 'x');
  const OpenedPost full = Must(OpenPost(Manifest(Must(SealPost(key, context_, longest, 5, note))), key));
  EXPECT_EQ(full.text, longest);
  EXPECT_EQ(full.audit_checkpoint, "");
  // An oversized checkpoint is never written, and refused when read.
  EXPECT_EQ(Must(OpenPost(Manifest(Must(SealPost(key, context_, "vu", 5,
                                                 std::string(kMaxGossipCheckpointSize + 1, 'n')))),
                          key))
                .audit_checkpoint,
            "");
  ExpectFailure(internal::PaddedPostBody("vu", 5, std::string(kMaxGossipCheckpointSize + 1, 'n')),
                ErrorCode::kInvalidArgument, "content: audit checkpoint is longer than 1024 bytes");
}

TEST_F(ContentPostTest, TextOverTheLimitIsRefused) {
  ExpectFailure(
      SealPost(ChannelKey(context_.channel_id), context_, std::string(kMaxTextSize + 1, 'x'), 1),
      ErrorCode::kInvalidArgument, "content: post text is longer than 49088 bytes");
}

TEST_F(ContentPostTest, SealRefusesBadInputs) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  ExpectCode(SealPost(SecretBytes(16), context_, "x", 1), ErrorCode::kInvalidArgument);
  PostContext context = context_;
  context.generation = 0;
  ExpectCode(SealPost(key, context, "x", 1), ErrorCode::kInvalidArgument);
  context = context_;
  context.sender_user_id = "Alice";
  ExpectCode(SealPost(key, context, "x", 1), ErrorCode::kInvalidArgument);
  context = context_;
  context.sender_device_id = 0;
  ExpectCode(SealPost(key, context, "x", 1), ErrorCode::kInvalidArgument);
}

TEST_F(ContentPostTest, ReadPostHeaderGivesTheClearFields) {
  context_.parent_post_id = Id(0x31);
  const PostHeaderInfo info = Must(ReadPostHeader(Sealed("x")));
  EXPECT_EQ(info.channel_id, context_.channel_id);
  EXPECT_EQ(info.parent_post_id, context_.parent_post_id);
  EXPECT_EQ(info.chain_head, context_.chain_head);
}

TEST_F(ContentPostTest, LengthsWithinABucketGiveTheSameSize) {
  const std::size_t one = Sealed("a").encrypted_metadata().size();
  EXPECT_EQ(Sealed(std::string(200, 'b')).encrypted_metadata().size(), one);
  const std::size_t kib = Sealed(std::string(300, 'c')).encrypted_metadata().size();
  EXPECT_EQ(Sealed(std::string(1000, 'd')).encrypted_metadata().size(), kib);
  EXPECT_NE(one, kib);
  // The ciphertext is exactly a bucket plus the AEAD overhead.
  std::vector<std::size_t> sizes;
  for (const std::size_t length : std::array<std::size_t, 6>{0, 300, 1500, 5000, 20000, 40000}) {
    const std::string text(length, 'e');
    pb::PostBody body;
    body.set_text(text);
    body.set_sent_ms(1234);
    pb::PostHeader header;
    ASSERT_TRUE(header.ParseFromString(Sealed(text).encrypted_metadata()));
    EXPECT_EQ(header.ciphertext().size(), *PaddedSize(body.ByteSizeLong()) + crypto::kAeadOverhead)
        << length;
    sizes.push_back(header.ciphertext().size() - crypto::kAeadOverhead);
  }
  // The first row of the table in docs/protocol.md ("Padding"), with a present-day sent_ms.
  const auto sealed_body_size = [&](std::size_t length) {
    pb::PostHeader header;
    EXPECT_TRUE(header.ParseFromString(
        Sealed(std::string(length, 'f'), 1718870400000).encrypted_metadata()));
    return header.ciphertext().size();
  };
  EXPECT_EQ(sealed_body_size(245), 296u);
  EXPECT_EQ(sealed_body_size(246), 1064u);
  EXPECT_EQ(sealed_body_size(49088), 49192u);
  // Every bucket is reached, in order.
  EXPECT_EQ(sizes, std::vector<std::size_t>(kPaddingBuckets.begin(), kPaddingBuckets.end()));
}

TEST_F(ContentPostTest, WrongKeysFail) {
  const auto body = Sealed("hello");
  ExpectAuthFailure(body, ChannelKey(Id(0x11)));                     // another channel's key
  ExpectAuthFailure(body, ChannelKey(context_.channel_id, 3));       // another generation's key
  ExpectAuthFailure(body, Must(DeriveMetadataKey(ptk_, kTeam, 4)));  // another purpose's key
  ExpectAuthFailure(body, KeyOf(9));
  ExpectCode(OpenPost(body, SecretBytes(31)), ErrorCode::kInvalidArgument);
}

TEST_F(ContentPostTest, PostMovedToAnotherTeamFails) {
  auto body = Sealed("hello");
  body.set_team_id(ToString(kOtherTeam));
  ExpectAuthFailure(body, ChannelKey(context_.channel_id));
  ExpectAuthFailure(body, Must(DeriveChannelKey(ptk_, kOtherTeam, 4, context_.channel_id)));
}

TEST_F(ContentPostTest, PostMovedToAnotherGenerationFails) {
  auto body = Sealed("hello");
  body.set_key_generation(5);
  ExpectAuthFailure(body, ChannelKey(context_.channel_id));
  ExpectAuthFailure(body, ChannelKey(context_.channel_id, 5));
}

TEST_F(ContentPostTest, PostMovedToAnotherChannelFails) {
  const auto body =
      WithHeader([](pb::PostHeader& header) { header.set_channel_id(ToString(Id(0x11))); });
  ExpectAuthFailure(body, ChannelKey(Id(0x11)));
  ExpectAuthFailure(body, ChannelKey(context_.channel_id));
}

TEST_F(ContentPostTest, PostMovedToAnotherParentFails) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  ExpectAuthFailure(
      WithHeader([](pb::PostHeader& header) { header.set_parent_post_id(ToString(Id(0x30))); }),
      key);
  context_.parent_post_id = Id(0x30);
  ExpectAuthFailure(
      WithHeader([](pb::PostHeader& header) { header.set_parent_post_id(ToString(Id(0x31))); }),
      key);
  ExpectAuthFailure(WithHeader([](pb::PostHeader& header) { header.clear_parent_post_id(); }), key);
}

TEST_F(ContentPostTest, PostAttributedToAnotherAuthorFails) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  auto body = Sealed("hello");
  body.set_author_user_id("mallory");
  ExpectAuthFailure(body, key);
  body = Sealed("hello");
  body.set_author_device_id(8);
  ExpectAuthFailure(body, key);
}

TEST_F(ContentPostTest, PostUnderAnotherIdFails) {
  auto body = Sealed("hello");
  body.set_item_id(ToString(Id(0x21)));
  ExpectAuthFailure(body, ChannelKey(context_.channel_id));
}

TEST_F(ContentPostTest, AnotherChainHeadFails) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  ExpectAuthFailure(WithHeader([](pb::PostHeader& header) { header.set_chain_sequence(13); }), key);
  ExpectAuthFailure(
      WithHeader([](pb::PostHeader& header) { header.set_chain_hash(ToString(HashOf(0x41))); }),
      key);
}

TEST_F(ContentPostTest, EveryFlippedCiphertextByteFails) {
  const wire::v1::ItemManifestBody body = Sealed("hello");
  pb::PostHeader header;
  ASSERT_TRUE(header.ParseFromString(body.encrypted_metadata()));
  const SecretBytes key = ChannelKey(context_.channel_id);
  for (std::size_t i = 0; i < header.ciphertext().size(); ++i) {
    pb::PostHeader altered = header;
    (*altered.mutable_ciphertext())[i] ^= 0x01;
    auto altered_body = body;
    altered_body.set_encrypted_metadata(altered.SerializeAsString());
    ExpectAuthFailure(altered_body, key);
  }
}

TEST_F(ContentPostTest, CiphertextOfAnotherSizeFailsAsAuthentication) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  ExpectAuthFailure(
      WithHeader([](pb::PostHeader& header) { header.mutable_ciphertext()->pop_back(); }), key);
  ExpectAuthFailure(
      WithHeader([](pb::PostHeader& header) { header.mutable_ciphertext()->push_back('\0'); }),
      key);
  ExpectAuthFailure(WithHeader([](pb::PostHeader& header) { header.clear_ciphertext(); }), key);
}

TEST_F(ContentPostTest, MalformedHeadersAreRefusedBeforeDecryption) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  constexpr std::string_view kMalformed = "content: post header is malformed";
  auto body = Sealed("hello");
  body.set_encrypted_metadata("\xff\xff\xff");
  ExpectFailure(OpenPost(body, key), ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(OpenPost(WithHeader([](pb::PostHeader& header) { header.set_version(2); }), key),
                ErrorCode::kUnsupported, "content: post format version is not supported");
  ExpectFailure(
      OpenPost(WithHeader([](pb::PostHeader& header) { header.set_channel_id("short"); }), key),
      ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(OpenPost(WithHeader([](pb::PostHeader& header) {
                           header.set_parent_post_id(std::string(17, 'p'));
                         }),
                         key),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(
      OpenPost(WithHeader([](pb::PostHeader& header) { header.set_chain_hash("abc"); }), key),
      ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(OpenPost(WithHeader([](pb::PostHeader& header) {
                           header.GetReflection()->MutableUnknownFields(&header)->AddVarint(99, 1);
                         }),
                         key),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(ReadPostHeader(body), ErrorCode::kCorrupt, kMalformed);
}

TEST_F(ContentPostTest, ManifestThatIsNotAValidPostIsRefused) {
  const SecretBytes key = ChannelKey(context_.channel_id);
  auto body = Sealed("hello");
  body.set_kind("document");
  ExpectFailure(OpenPost(body, key), ErrorCode::kInvalidArgument, "content: item is not a post");
  body = Sealed("hello");
  body.set_team_id("short");
  ExpectCode(OpenPost(body, key), ErrorCode::kInvalidArgument);
  body = Sealed("hello");
  body.set_key_generation(0);
  ExpectCode(OpenPost(body, key), ErrorCode::kInvalidArgument);
  body = Sealed("hello");
  body.set_author_device_id(0);
  ExpectCode(OpenPost(body, key), ErrorCode::kInvalidArgument);
  body = Sealed("hello");
  body.set_encrypted_metadata(std::string(protocol::kMaxItemMetadata + 1, '\0'));
  ExpectFailure(OpenPost(body, key), ErrorCode::kInvalidArgument,
                "content: item metadata is larger than 64 KiB");
}

TEST_F(ContentPostTest, BodyThatOpensButDoesNotDecodeIsCorrupt) {
  // A key holder can seal anything: the checks after authentication must hold too.
  const SecretBytes key = ChannelKey(context_.channel_id);
  const auto seal_raw = [&](const Bytes& padded) {
    const auto aead_key = Must(crypto::AeadKey::FromBytes(key.Clone()));
    pb::PostHeader header;
    header.set_version(1);
    header.set_channel_id(ToString(context_.channel_id));
    header.set_chain_sequence(context_.chain_head.sequence);
    header.set_chain_hash(ToString(context_.chain_head.hash));
    header.set_ciphertext(ToString(
        crypto::AeadSeal(aead_key, kPostLabel, padded, internal::PostAssociatedData(context_))));
    return Manifest(ToBytes(header.SerializeAsString()));
  };
  constexpr std::string_view kMalformed = "content: post body is malformed";
  ExpectFailure(OpenPost(seal_raw(Bytes(256, 0)), key), ErrorCode::kCorrupt, kMalformed);
  Bytes no_marker(256, 0);
  no_marker[0] = 0x01;
  ExpectFailure(OpenPost(seal_raw(no_marker), key), ErrorCode::kCorrupt, kMalformed);
  Bytes not_protobuf(256, 0);
  not_protobuf[0] = 0xff;
  not_protobuf[1] = 0x80;
  ExpectFailure(OpenPost(seal_raw(not_protobuf), key), ErrorCode::kCorrupt, kMalformed);
  Bytes unknown_field(256, 0);  // field 9, varint 1, then the marker
  unknown_field[0] = 0x48;
  unknown_field[1] = 0x01;
  unknown_field[2] = 0x80;
  ExpectFailure(OpenPost(seal_raw(unknown_field), key), ErrorCode::kCorrupt, kMalformed);
  Bytes valid(256, 0);
  valid[0] = 0x80;
  EXPECT_TRUE(OpenPost(seal_raw(valid), key).has_value());
}

// ---------------------------------------------------------------------------------------
// Channels and documents

class ContentItemTest : public ::testing::Test {
 protected:
  ContentItemTest() {
    context_.team_id = kTeam;
    context_.item_id = Id(0x50);
    context_.version = 3;
    context_.generation = 2;
  }

  wire::v1::ItemManifestBody Manifest(std::string_view kind, const Bytes& metadata) const {
    wire::v1::ItemManifestBody body;
    body.set_team_id(ToString(context_.team_id));
    body.set_item_id(ToString(context_.item_id));
    body.set_version(context_.version);
    body.set_parent_version(context_.version - 1);
    body.set_kind(std::string(kind));
    body.set_key_generation(context_.generation);
    body.set_encrypted_metadata(ToString(metadata));
    body.set_author_user_id("alice");
    body.set_author_device_id(1);
    return body;
  }

  SecretBytes ptk_ = KeyOf(1);
  SecretBytes metadata_key_ = Must(DeriveMetadataKey(ptk_, kTeam, 2));
  SecretBytes wrap_key_ = Must(DeriveDocumentWrapKey(ptk_, kTeam, 2));
  ItemContext context_;
};

TEST_F(ContentItemTest, ChannelInfoRoundTrips) {
  const auto sealed = Must(SealChannelInfo(metadata_key_, context_, {"Opérations nord"}));
  EXPECT_EQ(sealed.size(), 1 + 256 + crypto::kAeadOverhead);
  EXPECT_EQ(sealed[0], kContentFormatVersion);
  EXPECT_EQ(Must(OpenChannelInfo(Manifest("channel", sealed), metadata_key_)).name,
            "Opérations nord");
}

TEST_F(ContentItemTest, ChannelInfoIsBoundToItsItem) {
  const auto sealed = Must(SealChannelInfo(metadata_key_, context_, {"ops"}));
  const auto expect_auth_failure = [&](const wire::v1::ItemManifestBody& body,
                                       const SecretBytes& key) {
    ExpectFailure(OpenChannelInfo(body, key), ErrorCode::kAuthenticationFailed,
                  kItemMetadataAuthFailure);
  };
  auto body = Manifest("channel", sealed);
  body.set_team_id(ToString(kOtherTeam));
  expect_auth_failure(body, metadata_key_);
  body = Manifest("channel", sealed);
  body.set_item_id(ToString(Id(0x51)));
  expect_auth_failure(body, metadata_key_);
  body = Manifest("channel", sealed);
  body.set_version(4);
  expect_auth_failure(body, metadata_key_);
  body = Manifest("channel", sealed);
  body.set_key_generation(3);
  expect_auth_failure(body, metadata_key_);
  expect_auth_failure(Manifest("channel", sealed), Must(DeriveMetadataKey(ptk_, kTeam, 1)));
  expect_auth_failure(Manifest("channel", sealed), wrap_key_);
  for (std::size_t i = 1; i < sealed.size(); ++i) {
    Bytes altered = sealed;
    altered[i] ^= 0x80;
    expect_auth_failure(Manifest("channel", altered), metadata_key_);
  }
  Bytes truncated = sealed;
  truncated.pop_back();
  expect_auth_failure(Manifest("channel", truncated), metadata_key_);
}

TEST_F(ContentItemTest, ChannelInfoOfAnotherKindOrVersionIsRefused) {
  const auto sealed = Must(SealChannelInfo(metadata_key_, context_, {"ops"}));
  ExpectFailure(OpenChannelInfo(Manifest("document", sealed), metadata_key_),
                ErrorCode::kInvalidArgument, "content: item is not a channel");
  // The same bytes in a document manifest: the kind is in the associated data.
  ExpectFailure(OpenDocumentInfo(Manifest("document", sealed), metadata_key_),
                ErrorCode::kAuthenticationFailed, kItemMetadataAuthFailure);
  Bytes other_version = sealed;
  other_version[0] = 2;
  ExpectFailure(OpenChannelInfo(Manifest("channel", other_version), metadata_key_),
                ErrorCode::kUnsupported, "content: item metadata format version is not supported");
  ExpectFailure(OpenChannelInfo(Manifest("channel", {}), metadata_key_), ErrorCode::kCorrupt,
                "content: channel metadata is malformed");
}

TEST_F(ContentItemTest, ChannelNamesOutOfBoundsAreRefused) {
  constexpr std::string_view kBadName =
      "content: channel name must be 1 to 256 bytes without control characters";
  ExpectFailure(SealChannelInfo(metadata_key_, context_, {""}), ErrorCode::kInvalidArgument,
                kBadName);
  ExpectFailure(SealChannelInfo(metadata_key_, context_, {std::string(257, 'n')}),
                ErrorCode::kInvalidArgument, kBadName);
  ExpectFailure(SealChannelInfo(metadata_key_, context_, {"ops\x1b[2J"}),
                ErrorCode::kInvalidArgument, kBadName);
  EXPECT_TRUE(SealChannelInfo(metadata_key_, context_, {std::string(256, 'n')}).has_value());
  ExpectCode(SealChannelInfo(SecretBytes(8), context_, {"ops"}), ErrorCode::kInvalidArgument);
  ItemContext zero = context_;
  zero.version = 0;
  ExpectCode(SealChannelInfo(metadata_key_, zero, {"ops"}), ErrorCode::kInvalidArgument);
}

TEST_F(ContentItemTest, DocumentInfoRoundTripsAndMatchesTheBlob) {
  const DocumentInfo info{"plan-ETARE-entrepôt.pdf", "application/pdf", 1234567};
  const auto sealed = Must(SealDocumentInfo(metadata_key_, context_, info));
  auto body = Manifest("document", sealed);
  body.set_blob_id(ToString(Id(0x70)));
  body.set_blob_size(*crypto::CiphertextSize(info.size));
  const DocumentInfo opened = Must(OpenDocumentInfo(body, metadata_key_));
  EXPECT_EQ(opened.name, info.name);
  EXPECT_EQ(opened.media_type, info.media_type);
  EXPECT_EQ(opened.size, info.size);
  body.set_blob_size(body.blob_size() + 1);
  ExpectFailure(OpenDocumentInfo(body, metadata_key_), ErrorCode::kCorrupt,
                "content: document size does not match the blob size");
}

TEST_F(ContentItemTest, DocumentInfoFieldsAreChecked) {
  const auto seal = [&](std::string name, std::string media_type, std::uint64_t size) {
    return SealDocumentInfo(metadata_key_, context_,
                            {std::move(name), std::move(media_type), size});
  };
  EXPECT_TRUE(seal("a", "text/plain", 0).has_value());
  EXPECT_TRUE(
      seal(std::string(1024, 'n'), "application/vnd.oasis.opendocument.text", 1).has_value());
  EXPECT_TRUE(seal("x", "image/svg+xml", 1).has_value());
  ExpectCode(seal("", "text/plain", 0), ErrorCode::kInvalidArgument);
  ExpectCode(seal(std::string(1025, 'n'), "text/plain", 0), ErrorCode::kInvalidArgument);
  ExpectCode(seal("a\nb", "text/plain", 0), ErrorCode::kInvalidArgument);
  for (const char* media_type : {"", "text", "text/", "/plain", "text/plain; charset=utf-8",
                                 "text/pl/ain", ".a/b", "t\xc3\xa9xt/plain"}) {
    ExpectFailure(seal("a", media_type, 0), ErrorCode::kInvalidArgument,
                  "content: media type is not type/subtype");
  }
  std::string long_type(128, 't');
  long_type += "/plain";
  ExpectCode(seal("a", long_type, 0), ErrorCode::kInvalidArgument);
  ExpectFailure(seal("a", "text/plain", protocol::kMaxBlobSize), ErrorCode::kInvalidArgument,
                "content: document is larger than a blob can hold");
}

TEST_F(ContentItemTest, DocumentKeyWrapRoundTripsAndIsBoundToItsVersion) {
  const SecretBytes document_key = GenerateDocumentKey();
  const auto wrapped = Must(WrapDocumentKey(wrap_key_, context_, document_key));
  ASSERT_EQ(wrapped.size(), kWrappedDocumentKeySize);
  auto body = Manifest("document", {});
  body.set_wrapped_key(ToString(wrapped));
  EXPECT_TRUE(SameBytes(Must(UnwrapDocumentKey(body, wrap_key_)), document_key));

  const auto expect_auth_failure = [&](const wire::v1::ItemManifestBody& altered,
                                       const SecretBytes& key) {
    ExpectFailure(UnwrapDocumentKey(altered, key), ErrorCode::kAuthenticationFailed,
                  kDocumentKeyAuthFailure);
  };
  auto altered = body;
  altered.set_team_id(ToString(kOtherTeam));
  expect_auth_failure(altered, wrap_key_);
  altered = body;
  altered.set_item_id(ToString(Id(0x51)));
  expect_auth_failure(altered, wrap_key_);
  altered = body;
  altered.set_version(4);
  expect_auth_failure(altered, wrap_key_);
  altered = body;
  altered.set_key_generation(1);
  expect_auth_failure(altered, wrap_key_);
  expect_auth_failure(body, Must(DeriveDocumentWrapKey(ptk_, kTeam, 1)));
  expect_auth_failure(body, metadata_key_);
  for (std::size_t i = 0; i < wrapped.size(); ++i) {
    altered = body;
    (*altered.mutable_wrapped_key())[i] ^= 0x04;
    expect_auth_failure(altered, wrap_key_);
  }
  altered = body;
  altered.mutable_wrapped_key()->pop_back();
  expect_auth_failure(altered, wrap_key_);
  altered = body;
  altered.mutable_wrapped_key()->push_back('\0');
  expect_auth_failure(altered, wrap_key_);
  altered = body;
  altered.set_kind("channel");
  ExpectFailure(UnwrapDocumentKey(altered, wrap_key_), ErrorCode::kInvalidArgument,
                "content: item is not a document");
}

TEST_F(ContentItemTest, WrapRefusesBadKeys) {
  ExpectCode(WrapDocumentKey(wrap_key_, context_, SecretBytes(16)), ErrorCode::kInvalidArgument);
  ExpectCode(WrapDocumentKey(SecretBytes(16), context_, GenerateDocumentKey()),
             ErrorCode::kInvalidArgument);
  ItemContext zero = context_;
  zero.generation = 0;
  ExpectCode(WrapDocumentKey(wrap_key_, zero, GenerateDocumentKey()), ErrorCode::kInvalidArgument);
}

TEST_F(ContentItemTest, DocumentStreamIsBoundToItsVersion) {
  const SecretBytes document_key = GenerateDocumentKey();
  const Bytes ad = Must(DocumentStreamAssociatedData(context_));
  EXPECT_EQ(ad, internal::ItemAssociatedData(context_, "document"));
  const Bytes plaintext = ToBytes("plan de masse");
  const Bytes stream = Must(crypto::EncryptDocument(document_key, ad, plaintext));
  EXPECT_EQ(Must(crypto::DecryptDocument(document_key, ad, stream)), plaintext);
  ItemContext next = context_;
  next.version = 4;
  ExpectCode(
      crypto::DecryptDocument(document_key, Must(DocumentStreamAssociatedData(next)), stream),
      ErrorCode::kAuthenticationFailed);
}

// ---------------------------------------------------------------------------------------
// Key history

class ContentKeyHistoryTest : public ::testing::Test {
 protected:
  SecretBytes old_ptk_ = KeyOf(1);
  SecretBytes new_ptk_ = KeyOf(2);
  Bytes entry_ = Must(SealPreviousGeneration(new_ptk_, old_ptk_, kTeam, 4, 5));

  void ExpectAuthFailure(const Result<SecretBytes>& result) const {
    ExpectFailure(result, ErrorCode::kAuthenticationFailed, kKeyHistoryAuthFailure);
  }
  Bytes EditedEntry(const std::function<void(pb::KeyHistory&)>& edit) const {
    return ToBytes(Edited<pb::KeyHistory>(ToString(entry_), edit));
  }
};

TEST_F(ContentKeyHistoryTest, PreviousGenerationRoundTrips) {
  EXPECT_TRUE(SameBytes(Must(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5, entry_)), old_ptk_));
  EXPECT_LE(entry_.size(), kMaxKeyHistoryEntrySize);
}

TEST_F(ContentKeyHistoryTest, EveryBindingIsChecked) {
  ExpectAuthFailure(OpenPreviousGeneration(KeyOf(3), kTeam, 4, 5, entry_));
  ExpectAuthFailure(OpenPreviousGeneration(old_ptk_, kTeam, 4, 5, entry_));
  ExpectAuthFailure(OpenPreviousGeneration(new_ptk_, kOtherTeam, 4, 5, entry_));
  ExpectAuthFailure(OpenPreviousGeneration(new_ptk_, kTeam, 3, 5, entry_));
  ExpectAuthFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 6, entry_));
  // Relabelled in the clear, then opened as what the new labels say.
  ExpectAuthFailure(OpenPreviousGeneration(
      new_ptk_, kTeam, 3, 5, EditedEntry([](pb::KeyHistory& e) { e.set_old_generation(3); })));
  ExpectAuthFailure(OpenPreviousGeneration(
      new_ptk_, kOtherTeam, 4, 5,
      EditedEntry([](pb::KeyHistory& e) { e.set_team_id(ToString(kOtherTeam)); })));
  const Bytes six = Must(SealPreviousGeneration(KeyOf(4), old_ptk_, kTeam, 4, 6));
  ExpectAuthFailure(OpenPreviousGeneration(
      new_ptk_, kTeam, 4, 5, ToBytes(Edited<pb::KeyHistory>(ToString(six), [](pb::KeyHistory& e) {
        e.set_new_generation(5);
      }))));
  pb::KeyHistory history;
  ASSERT_TRUE(history.ParseFromArray(entry_.data(), static_cast<int>(entry_.size())));
  for (std::size_t i = 0; i < history.sealed_key().size(); ++i) {
    ExpectAuthFailure(OpenPreviousGeneration(
        new_ptk_, kTeam, 4, 5,
        EditedEntry([i](pb::KeyHistory& e) { (*e.mutable_sealed_key())[i] ^= 0x10; })));
  }
}

TEST_F(ContentKeyHistoryTest, MalformedEntriesAreRefusedBeforeDecryption) {
  constexpr std::string_view kMalformed = "content: key history entry is malformed";
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5, Bytes(257, 0)), ErrorCode::kCorrupt,
                kMalformed);
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5, Bytes{0xff}), ErrorCode::kCorrupt,
                kMalformed);
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5,
                                       EditedEntry([](pb::KeyHistory& e) { e.set_version(2); })),
                ErrorCode::kUnsupported, "content: key history format version is not supported");
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5, EditedEntry([](pb::KeyHistory& e) {
                                         e.mutable_sealed_key()->pop_back();
                                       })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 4, 5, EditedEntry([](pb::KeyHistory& e) {
                                         e.set_team_id("short");
                                       })),
                ErrorCode::kCorrupt, kMalformed);
}

TEST_F(ContentKeyHistoryTest, GenerationsMustIncrease) {
  constexpr std::string_view kOrder =
      "content: key history needs 1 <= old generation < new generation";
  ExpectFailure(SealPreviousGeneration(new_ptk_, old_ptk_, kTeam, 5, 5),
                ErrorCode::kInvalidArgument, kOrder);
  ExpectFailure(SealPreviousGeneration(new_ptk_, old_ptk_, kTeam, 0, 1),
                ErrorCode::kInvalidArgument, kOrder);
  ExpectFailure(OpenPreviousGeneration(new_ptk_, kTeam, 5, 4, entry_), ErrorCode::kInvalidArgument,
                kOrder);
  ExpectCode(SealPreviousGeneration(new_ptk_, SecretBytes(31), kTeam, 1, 2),
             ErrorCode::kInvalidArgument);
  ExpectCode(SealPreviousGeneration(SecretBytes(31), old_ptk_, kTeam, 1, 2),
             ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Peer messages

TEST(ContentPeerMessageTest, TeamKeyDeliveryRoundTrips) {
  TeamKeyDelivery delivery;
  delivery.team_id = kTeam;
  delivery.generation = 6;
  delivery.key = GenerateTeamKey();
  delivery.chain_head = {9, HashOf(0x33)};
  delivery.team_name = "SDIS 13 — colonne";
  const SecretBytes plaintext = Must(EncodePeerMessage(delivery));
  EXPECT_EQ(plaintext.size(), 256u);
  PeerMessage decoded = Must(DecodePeerMessage(plaintext.span()));
  const auto* received = std::get_if<TeamKeyDelivery>(&decoded);
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(received->team_id, kTeam);
  EXPECT_EQ(received->generation, 6u);
  EXPECT_TRUE(SameBytes(received->key, delivery.key));
  EXPECT_EQ(received->chain_head, delivery.chain_head);
  EXPECT_EQ(received->team_name, delivery.team_name);
}

TEST(ContentPeerMessageTest, TeamIntroductionRoundTripsAndCarriesNoKey) {
  TeamIntroduction introduction;
  introduction.team_id = kTeam;
  introduction.team_name = "SDIS 13 — colonne";
  introduction.chain_head = {4, HashOf(0x44)};
  const SecretBytes plaintext = Must(EncodePeerMessage(introduction));
  EXPECT_EQ(plaintext.size(), 256u);
  PeerMessage decoded = Must(DecodePeerMessage(plaintext.span()));
  const auto* received = std::get_if<TeamIntroduction>(&decoded);
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(received->team_id, kTeam);
  EXPECT_EQ(received->team_name, introduction.team_name);
  EXPECT_EQ(received->chain_head, introduction.chain_head);
  introduction.team_name.clear();
  ExpectCode(EncodePeerMessage(introduction), ErrorCode::kInvalidArgument);
}

TEST(ContentPeerMessageTest, DirectMessageRoundTripsPadded) {
  DirectMessage message{Id(0x60), "On se retrouve au PC à 8 h ?", 1718870400001};
  const SecretBytes plaintext = Must(EncodePeerMessage(message));
  EXPECT_EQ(plaintext.size(), 256u);
  PeerMessage decoded = Must(DecodePeerMessage(plaintext.span()));
  const auto* received = std::get_if<DirectMessage>(&decoded);
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(received->message_id, message.message_id);
  EXPECT_EQ(received->text, message.text);
  EXPECT_EQ(received->sent_ms, message.sent_ms);

  message.text.assign(500, 'x');
  EXPECT_EQ(Must(EncodePeerMessage(message)).size(), 1024u);
  message.text.assign(kMaxTextSize, 'x');
  EXPECT_EQ(Must(EncodePeerMessage(message)).size(), 49152u);
  message.text.push_back('x');
  ExpectFailure(EncodePeerMessage(message), ErrorCode::kInvalidArgument,
                "content: direct message text is longer than 49088 bytes");
}

TEST(ContentPeerMessageTest, EncodeRefusesABadKeyGenerationOrTeamName) {
  TeamKeyDelivery delivery;
  delivery.team_id = kTeam;
  delivery.generation = 1;
  delivery.team_name = "ops";
  delivery.key = SecretBytes(16);
  ExpectCode(EncodePeerMessage(delivery), ErrorCode::kInvalidArgument);
  delivery.key = GenerateTeamKey();
  delivery.generation = 0;
  ExpectCode(EncodePeerMessage(delivery), ErrorCode::kInvalidArgument);
  delivery.generation = 1;
  EXPECT_TRUE(EncodePeerMessage(delivery).has_value());
  constexpr std::string_view kBadName =
      "content: team name must be 1 to 64 bytes without control characters";
  for (const std::string& name : {std::string(), std::string(65, 't'), std::string("a\tb")}) {
    delivery.team_name = name;
    ExpectFailure(EncodePeerMessage(delivery), ErrorCode::kInvalidArgument, kBadName);
  }
}

// A plaintext padded as EncodePeerMessage would, around any bytes.
Bytes Padded(const std::string& encoded) {
  Bytes out(encoded.begin(), encoded.end());
  out.push_back(0x80);
  out.resize(*PaddedSize(encoded.size()), 0);
  return out;
}

TEST(ContentPeerMessageTest, MalformedPlaintextsAreCorrupt) {
  constexpr std::string_view kMalformed = "content: peer message is malformed";
  DirectMessage message{Id(0x60), "hi", 1};
  const SecretBytes valid = Must(EncodePeerMessage(message));
  const std::span<const std::uint8_t> valid_span = valid.span();
  ExpectFailure(DecodePeerMessage(valid_span.first(255)), ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage({}), ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(Bytes(256, 0)), ErrorCode::kCorrupt, kMalformed);
  Bytes no_marker(valid_span.begin(), valid_span.end());
  std::replace(no_marker.begin(), no_marker.end(), std::uint8_t{0x80}, std::uint8_t{0x81});
  ExpectFailure(DecodePeerMessage(no_marker), ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(Padded("")), ErrorCode::kCorrupt, kMalformed);  // no kind
  ExpectFailure(DecodePeerMessage(Padded("\xff\xff")), ErrorCode::kCorrupt, kMalformed);

  pb::PeerMessage with_unknown;
  with_unknown.mutable_direct()->set_message_id(ToString(Id(0)));
  with_unknown.mutable_direct()
      ->GetReflection()
      ->MutableUnknownFields(with_unknown.mutable_direct())
      ->AddVarint(77, 1);
  ExpectFailure(DecodePeerMessage(Padded(with_unknown.SerializeAsString())), ErrorCode::kCorrupt,
                kMalformed);

  const auto delivery = [](const std::function<void(pb::TeamKeyDelivery&)>& edit) {
    pb::PeerMessage m;
    pb::TeamKeyDelivery* d = m.mutable_team_key();
    d->set_team_id(ToString(kTeam));
    d->set_generation(1);
    d->set_key(std::string(32, 'k'));
    d->set_chain_hash(std::string(32, 'h'));
    d->set_team_name("ops");
    edit(*d);
    return Padded(m.SerializeAsString());
  };
  EXPECT_TRUE(DecodePeerMessage(delivery([](pb::TeamKeyDelivery&) {})).has_value());
  ExpectFailure(DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.set_key("short"); })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.set_generation(0); })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.set_team_id("t"); })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.clear_chain_hash(); })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.clear_team_name(); })),
                ErrorCode::kCorrupt, kMalformed);
  ExpectFailure(
      DecodePeerMessage(delivery([](pb::TeamKeyDelivery& d) { d.set_team_name("\x1b]0;x"); })),
      ErrorCode::kCorrupt, kMalformed);

  pb::PeerMessage bad_id;
  bad_id.mutable_direct()->set_message_id("123");
  ExpectFailure(DecodePeerMessage(Padded(bad_id.SerializeAsString())), ErrorCode::kCorrupt,
                kMalformed);
}

// ---------------------------------------------------------------------------------------
// Layouts, rebuilt from docs/protocol.md so the document and the code cannot drift apart

void AppendBigEndian(Bytes& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

TEST(ContentLayoutTest, PostAssociatedDataFollowsTheProtocolDocument) {
  PostContext context;
  context.team_id = kTeam;
  context.generation = 0x0102030405060708;
  context.channel_id = Id(0x10);
  context.post_id = Id(0x20);
  context.parent_post_id = Id(0x30);
  context.sender_user_id = "bob";
  context.sender_device_id = 0x01020304;
  context.chain_head = {0x1112131415161718, HashOf(0x40)};
  Bytes expected = {0x01};
  expected.insert(expected.end(), kTeam.begin(), kTeam.end());
  AppendBigEndian(expected, context.generation, 8);
  expected.insert(expected.end(), context.channel_id.begin(), context.channel_id.end());
  expected.insert(expected.end(), context.post_id.begin(), context.post_id.end());
  expected.push_back(16);
  expected.insert(expected.end(), context.parent_post_id->begin(), context.parent_post_id->end());
  AppendBigEndian(expected, context.chain_head.sequence, 8);
  expected.insert(expected.end(), context.chain_head.hash.begin(), context.chain_head.hash.end());
  AppendBigEndian(expected, 3, 2);
  expected.insert(expected.end(), {'b', 'o', 'b'});
  AppendBigEndian(expected, context.sender_device_id, 4);
  EXPECT_EQ(internal::PostAssociatedData(context), expected);
  EXPECT_EQ(expected.size(), 104u + 16 + 3);

  context.parent_post_id.reset();
  const Bytes top_level = internal::PostAssociatedData(context);
  ASSERT_EQ(top_level.size(), 104u + 3);
  EXPECT_EQ(top_level[57], 0);
}

TEST(ContentLayoutTest, ItemAndKeyHistoryAssociatedDataFollowTheProtocolDocument) {
  ItemContext context{kTeam, Id(0x50), 0x21, 0x22};
  Bytes expected = {0x01};
  expected.insert(expected.end(), kTeam.begin(), kTeam.end());
  AppendBigEndian(expected, 0x22, 8);
  expected.insert(expected.end(), context.item_id.begin(), context.item_id.end());
  AppendBigEndian(expected, 0x21, 8);
  AppendBigEndian(expected, 7, 2);
  expected.insert(expected.end(), {'c', 'h', 'a', 'n', 'n', 'e', 'l'});
  EXPECT_EQ(internal::ItemAssociatedData(context, "channel"), expected);

  Bytes history = {0x01};
  history.insert(history.end(), kTeam.begin(), kTeam.end());
  AppendBigEndian(history, 4, 8);
  AppendBigEndian(history, 5, 8);
  EXPECT_EQ(internal::KeyHistoryAssociatedData(kTeam, 4, 5), history);
}

TEST(ContentLayoutTest, DerivedKeysFollowTheProtocolDocument) {
  // subkey = BLAKE2b-256(key = PTK, "coffre/kdf/v1" || u16 len(label) || label || context)
  const SecretBytes ptk = KeyOf(1);
  const auto raw = [&](std::string_view label, const Bytes& context) {
    Bytes message = ToBytes("coffre/kdf/v1");
    AppendBigEndian(message, label.size(), 2);
    message.insert(message.end(), label.begin(), label.end());
    message.insert(message.end(), context.begin(), context.end());
    return Must(crypto::internal::Blake2b(ptk.span(), message, 32));
  };
  Bytes team_generation(kTeam.begin(), kTeam.end());
  AppendBigEndian(team_generation, 9, 8);
  Bytes with_channel = team_generation;
  const ItemId channel = Id(0x10);
  with_channel.insert(with_channel.end(), channel.begin(), channel.end());
  EXPECT_TRUE(SameBytes(Must(DeriveChannelKey(ptk, kTeam, 9, channel)),
                        raw("coffre/channel-key/v1", with_channel)));
  EXPECT_TRUE(SameBytes(Must(DeriveDocumentWrapKey(ptk, kTeam, 9)),
                        raw("coffre/document-wrap-key/v1", team_generation)));
  EXPECT_TRUE(SameBytes(Must(DeriveMetadataKey(ptk, kTeam, 9)),
                        raw("coffre/metadata-key/v1", team_generation)));
  EXPECT_TRUE(SameBytes(Must(DeriveKeyHistoryKey(ptk, kTeam, 9)),
                        raw("coffre/key-history-key/v1", team_generation)));
  EXPECT_TRUE(
      crypto::ConstantTimeEquals(Must(KeyCommitment(kTeam, 9, ptk)),
                                 raw("coffre/team-key-commitment/v1", team_generation).span()));
}

// ---------------------------------------------------------------------------------------
// Known-answer vectors (tests/vectors/coffre-post-v1, made by an independent script)

std::uint64_t Decimal(const std::string& text) { return std::stoull(text); }

TEST(ContentVectorTest, PostVectorsOpenAndMatchTheLayout) {
  const auto blocks = testing::ReadVectorFile("coffre-post-v1/post.txt");
  ASSERT_EQ(blocks.size(), 3u);
  for (const auto& block : blocks) {
    SCOPED_TRACE(block.at("POST"));
    const SecretBytes ptk = SecretBytes::CopyOf(FromHex(block.at("PTK")));
    PostContext context;
    const Bytes team = FromHex(block.at("TEAM"));
    std::copy(team.begin(), team.end(), context.team_id.begin());
    context.generation = Decimal(block.at("GENERATION"));
    const Bytes channel = FromHex(block.at("CHANNEL"));
    std::copy(channel.begin(), channel.end(), context.channel_id.begin());
    const Bytes post = FromHex(block.at("POST"));
    std::copy(post.begin(), post.end(), context.post_id.begin());
    const Bytes parent = FromHex(block.at("PARENT"));
    if (!parent.empty()) {
      context.parent_post_id.emplace();
      std::copy(parent.begin(), parent.end(), context.parent_post_id->begin());
    }
    context.sender_user_id = ToString(FromHex(block.at("USER")));
    context.sender_device_id = static_cast<std::uint32_t>(Decimal(block.at("DEVICE")));
    context.chain_head.sequence = Decimal(block.at("CHAIN_SEQUENCE"));
    const Bytes chain_hash = FromHex(block.at("CHAIN_HASH"));
    std::copy(chain_hash.begin(), chain_hash.end(), context.chain_head.hash.begin());
    const std::string text = ToString(FromHex(block.at("TEXT")));
    const std::uint64_t sent_ms = Decimal(block.at("SENT_MS"));
    const Bytes metadata = FromHex(block.at("METADATA"));

    // Keys, associated data and padding as this code computes them.
    const SecretBytes channel_key =
        Must(DeriveChannelKey(ptk, context.team_id, context.generation, context.channel_id));
    EXPECT_EQ(testing::ToHex(Bytes(channel_key.data(), channel_key.data() + channel_key.size())),
              block.at("CHANNEL_KEY"));
    EXPECT_EQ(internal::PostAssociatedData(context), FromHex(block.at("AD")));
    const SecretBytes padded = Must(internal::PaddedPostBody(text, sent_ms));
    EXPECT_EQ(Bytes(padded.data(), padded.data() + padded.size()), FromHex(block.at("PADDED")));

    // Sealing with the vector's nonce (through the raw construction, since SealPost draws
    // its own) gives the vector's ciphertext.
    pb::PostHeader header;
    ASSERT_TRUE(header.ParseFromArray(metadata.data(), static_cast<int>(metadata.size())));
    const Bytes nonce = FromHex(block.at("NONCE"));
    ASSERT_EQ(nonce.size(), crypto::kAeadNonceSize);
    Bytes labelled_ad;
    AppendBigEndian(labelled_ad, kPostLabel.size(), 2);
    labelled_ad.insert(labelled_ad.end(), kPostLabel.begin(), kPostLabel.end());
    const Bytes ad = internal::PostAssociatedData(context);
    labelled_ad.insert(labelled_ad.end(), ad.begin(), ad.end());
    const auto aead_key = Must(crypto::AeadKey::FromBytes(channel_key.Clone()));
    Bytes sealed = nonce;
    const Bytes body = crypto::internal::XChaCha20Poly1305Seal(
        aead_key, std::span<const std::uint8_t, crypto::kAeadNonceSize>(nonce.data(), nonce.size()),
        padded.span(), labelled_ad);
    sealed.insert(sealed.end(), body.begin(), body.end());
    EXPECT_EQ(ToBytes(header.ciphertext()), sealed);

    // The vector opens as a manifest would carry it.
    wire::v1::ItemManifestBody manifest;
    manifest.set_team_id(ToString(team));
    manifest.set_item_id(ToString(post));
    manifest.set_version(1);
    manifest.set_kind("post");
    manifest.set_key_generation(context.generation);
    manifest.set_encrypted_metadata(ToString(metadata));
    manifest.set_author_user_id(context.sender_user_id);
    manifest.set_author_device_id(context.sender_device_id);
    const OpenedPost opened = Must(OpenPost(manifest, channel_key));
    EXPECT_EQ(opened.text, text);
    EXPECT_EQ(opened.sent_ms, sent_ms);
    EXPECT_EQ(opened.channel_id, context.channel_id);
    EXPECT_EQ(opened.parent_post_id, context.parent_post_id);
    EXPECT_EQ(opened.chain_head, context.chain_head);

    // And SealPost's output has the same size and clear header.
    const Bytes ours = Must(SealPost(channel_key, context, text, sent_ms));
    EXPECT_EQ(ours.size(), metadata.size());
    pb::PostHeader our_header;
    ASSERT_TRUE(our_header.ParseFromArray(ours.data(), static_cast<int>(ours.size())));
    our_header.set_ciphertext(header.ciphertext());
    EXPECT_EQ(ToBytes(our_header.SerializeAsString()), metadata);
  }
}

}  // namespace
}  // namespace coffre::client
