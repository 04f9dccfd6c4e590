#include "coffre/client/content.h"

#include <google/protobuf/message.h>

#include <algorithm>
#include <utility>

#include "coffre/content/v1/content.pb.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/protocol/validation.h"
#include "protobuf_bytes.h"

namespace coffre::client {
namespace {

namespace pb = ::coffre::content::v1;
using crypto::SecretBytes;

static_assert(kTeamKeySize == crypto::kAeadKeySize);
static_assert(crypto::kDocumentKeySize == crypto::kAeadKeySize);
static_assert(kWrappedDocumentKeySize == crypto::kDocumentKeySize + crypto::kAeadOverhead);
static_assert(kWrappedDocumentKeySize <= protocol::kMaxWrappedKey);
// The largest sealed post and its header (channel id, parent, chain head, and the
// length prefixes of protobuf) must fit in an item manifest's metadata.
static_assert(kPaddingBuckets.back() + crypto::kAeadOverhead + 256 <= protocol::kMaxItemMetadata);
// The longest text, its PostBody / PeerMessage encoding (at most 64 bytes more) and the
// 0x80 marker fit in the largest bucket.
static_assert(kMaxTextSize + 64 <= kPaddingBuckets.back());

constexpr std::uint8_t kPaddingMarker = 0x80;  // ISO/IEC 7816-4 padding

// ---------------------------------------------------------------------------------------
// Encoding helpers

std::span<const std::uint8_t> AsBytes(std::string_view bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

void AppendU8(std::vector<std::uint8_t>& out, std::uint8_t value) { out.push_back(value); }

void AppendU16(std::vector<std::uint8_t>& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}

void AppendU32(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void AppendU64(std::vector<std::uint8_t>& out, std::uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

void AppendBytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Copies a 16-byte field that the caller has already checked for size.
ItemId ToId(std::string_view bytes) {
  ItemId id{};
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

protocol::Hash ToHash(std::string_view bytes) {
  protocol::Hash hash{};
  std::copy(bytes.begin(), bytes.end(), hash.begin());
  return hash;
}

// ---------------------------------------------------------------------------------------
// Padding (docs/protocol.md, "Padding"): encoded message || 0x80 || 0x00 ... to a bucket.

bool IsBucketSize(std::size_t size) {
  return std::find(kPaddingBuckets.begin(), kPaddingBuckets.end(), size) != kPaddingBuckets.end();
}

// Serializes `message` straight into a padded buffer, so the encoding of a key never
// passes through an unwiped std::string.
Result<SecretBytes> SerializePadded(const google::protobuf::Message& message,
                                    const char* too_large) {
  const std::size_t size = message.ByteSizeLong();
  const std::optional<std::size_t> padded_size = PaddedSize(size);
  if (!padded_size) return Fail(ErrorCode::kInvalidArgument, too_large);
  SecretBytes padded(*padded_size);  // zero-filled
  if (size != 0 && !message.SerializeToArray(padded.data(), static_cast<int>(size))) {
    return Fail(ErrorCode::kInternal, "content: protobuf serialization failed");
  }
  padded.data()[size] = kPaddingMarker;
  return padded;
}

// The size of the message inside `padded`: the bytes before the last non-zero byte, which
// must be the marker. Only called on plaintext that was authenticated, so the scan's
// timing tells nothing an attacker could not compute.
std::optional<std::size_t> UnpaddedSize(std::span<const std::uint8_t> padded) {
  std::size_t end = padded.size();
  while (end > 0 && padded[end - 1] == 0x00) --end;
  if (end == 0 || padded[end - 1] != kPaddingMarker) return std::nullopt;
  return end - 1;
}

// ---------------------------------------------------------------------------------------
// Keys

Status CheckGeneration(std::uint64_t generation) {
  if (generation == 0) {
    return Fail(ErrorCode::kInvalidArgument, "content: key generation must be at least 1");
  }
  return Ok();
}

Status CheckTeamKey(const SecretBytes& ptk) {
  if (ptk.size() != kTeamKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "content: team key must be 32 bytes");
  }
  return Ok();
}

// DeriveSubkey(ptk, label, team_id || u64be(generation) || extra, 32).
Result<SecretBytes> DeriveTeamSubkey(const SecretBytes& ptk, std::string_view label,
                                     const protocol::TeamId& team_id, std::uint64_t generation,
                                     std::span<const std::uint8_t> extra = {}) {
  COFFRE_RETURN_IF_ERROR(CheckTeamKey(ptk));
  COFFRE_RETURN_IF_ERROR(CheckGeneration(generation));
  std::vector<std::uint8_t> context;
  context.reserve(team_id.size() + 8 + extra.size());
  AppendBytes(context, team_id);
  AppendU64(context, generation);
  AppendBytes(context, extra);
  return crypto::DeriveSubkey(ptk.span(), label, context, kTeamKeySize);
}

Result<crypto::AeadKey> AeadKeyOf(const SecretBytes& key, const char* wrong_size) {
  Result<crypto::AeadKey> aead_key = crypto::AeadKey::FromBytes(key.Clone());
  if (!aead_key) return Fail(ErrorCode::kInvalidArgument, wrong_size);
  return aead_key;
}

// ---------------------------------------------------------------------------------------
// Manifests and field formats

Status CheckItemContext(const ItemContext& context) {
  if (context.version == 0) {
    return Fail(ErrorCode::kInvalidArgument, "content: item version must be at least 1");
  }
  return CheckGeneration(context.generation);
}

// The manifest checks shared by every Open function: its kind, then the fields the
// associated data is built from (the caller verified the signature; this checks sizes
// again because nothing here may read a field it has not checked).
Result<ItemContext> CheckManifest(const wire::v1::ItemManifestBody& body, std::string_view kind,
                                  const char* wrong_kind) {
  if (body.kind() != kind) return Fail(ErrorCode::kInvalidArgument, wrong_kind);
  if (body.encrypted_metadata().size() > protocol::kMaxItemMetadata) {
    return Fail(ErrorCode::kInvalidArgument, "content: item metadata is larger than 64 KiB");
  }
  return ItemContextOf(body);
}

// A name shown to people: 1..max bytes, no ASCII control characters (which a terminal
// would interpret). Any other byte is the display code's business.
bool IsValidName(std::string_view name, std::size_t max_size) {
  if (name.empty() || name.size() > max_size) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 6838 §4.2: restricted-name = restricted-name-first *126restricted-name-chars.
bool IsRestrictedName(std::string_view name) {
  if (name.empty() || name.size() > 127 || !IsAsciiAlnum(name.front())) return false;
  constexpr std::string_view kOtherChars = "!#$&-^_.+";
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return IsAsciiAlnum(c) || kOtherChars.find(c) != std::string_view::npos;
  });
}

// "type/subtype", without parameters.
bool IsValidMediaType(std::string_view media_type) {
  if (media_type.size() > kMaxMediaTypeSize) return false;
  const std::size_t slash = media_type.find('/');
  if (slash == std::string_view::npos) return false;
  return IsRestrictedName(media_type.substr(0, slash)) &&
         IsRestrictedName(media_type.substr(slash + 1));
}

// True when a document of `size` plaintext bytes makes a stream a blob can hold.
bool IsStorableDocumentSize(std::uint64_t size) {
  const Result<std::uint64_t> stream_size = crypto::CiphertextSize(size);
  return stream_size.has_value() && *stream_size <= protocol::kMaxBlobSize;
}

// ---------------------------------------------------------------------------------------
// Posts

Result<pb::PostHeader> ParsePostHeader(const wire::v1::ItemManifestBody& body) {
  COFFRE_RETURN_IF_ERROR(CheckManifest(body, kPostKind, "content: item is not a post"));
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(body.author_user_id()));
  COFFRE_RETURN_IF_ERROR(protocol::ValidateDeviceId(body.author_device_id()));
  constexpr const char* kMalformed = "content: post header is malformed";
  pb::PostHeader header;
  if (!ParseBounded(AsBytes(body.encrypted_metadata()), header)) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  if (header.version() != kContentFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "content: post format version is not supported");
  }
  if (protocol::HasUnknownFields(header) || header.channel_id().size() != protocol::kIdSize ||
      (!header.parent_post_id().empty() && header.parent_post_id().size() != protocol::kIdSize) ||
      header.chain_hash().size() != protocol::kHashSize) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  return header;
}

PostHeaderInfo HeaderInfoOf(const pb::PostHeader& header) {
  PostHeaderInfo info;
  info.channel_id = ToId(header.channel_id());
  if (!header.parent_post_id().empty()) info.parent_post_id = ToId(header.parent_post_id());
  info.chain_head.sequence = header.chain_sequence();
  info.chain_head.hash = ToHash(header.chain_hash());
  return info;
}

// Opens `sealed` (nonce || ciphertext || tag of a padded plaintext) and returns the
// padded plaintext. A size that is not a bucket plus the AEAD overhead is refused before
// the key is used, with the same failure as a bad tag.
Result<SecretBytes> OpenPadded(const crypto::AeadKey& key, std::string_view label,
                               std::span<const std::uint8_t> sealed,
                               std::span<const std::uint8_t> associated_data,
                               const char* auth_failure) {
  if (sealed.size() < crypto::kAeadOverhead ||
      !IsBucketSize(sealed.size() - crypto::kAeadOverhead)) {
    return Fail(ErrorCode::kAuthenticationFailed, auth_failure);
  }
  Result<SecretBytes> opened = crypto::AeadOpen(key, label, sealed, associated_data);
  if (!opened) return Fail(ErrorCode::kAuthenticationFailed, auth_failure);
  return opened;
}

// Parses the message inside an authenticated padded plaintext. The plaintext came from a
// key holder, so a failure here is kCorrupt, not an authentication failure.
bool ParsePadded(const SecretBytes& padded, google::protobuf::Message& message) {
  const std::optional<std::size_t> size = UnpaddedSize(padded.span());
  return size.has_value() && ParseBounded(padded.span().first(*size), message) &&
         !protocol::HasUnknownFields(message);
}

// ---------------------------------------------------------------------------------------
// Item metadata

// kContentFormatVersion || AeadSeal(metadata key, kItemMetadataLabel, padded, item AD).
Result<std::vector<std::uint8_t>> SealItemMetadata(const SecretBytes& metadata_key,
                                                   const ItemContext& context,
                                                   std::string_view kind,
                                                   const google::protobuf::Message& message) {
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(metadata_key, "content: metadata key must be 32 bytes"));
  COFFRE_RETURN_IF_ERROR(CheckItemContext(context));
  COFFRE_ASSIGN_OR_RETURN(SecretBytes padded,
                          SerializePadded(message, "content: item metadata is too large"));
  const std::vector<std::uint8_t> sealed = crypto::AeadSeal(
      key, kItemMetadataLabel, padded.span(), internal::ItemAssociatedData(context, kind));
  std::vector<std::uint8_t> out;
  out.reserve(1 + sealed.size());
  AppendU8(out, kContentFormatVersion);
  AppendBytes(out, sealed);
  return out;
}

// Opens the metadata of a manifest of `kind` into `message`.
Status OpenItemMetadata(const wire::v1::ItemManifestBody& body, const SecretBytes& metadata_key,
                        std::string_view kind, const char* wrong_kind, const char* malformed,
                        google::protobuf::Message& message) {
  COFFRE_ASSIGN_OR_RETURN(const ItemContext context, CheckManifest(body, kind, wrong_kind));
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(metadata_key, "content: metadata key must be 32 bytes"));
  const std::span<const std::uint8_t> metadata = AsBytes(body.encrypted_metadata());
  if (metadata.empty()) return Fail(ErrorCode::kCorrupt, malformed);
  if (metadata[0] != kContentFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "content: item metadata format version is not supported");
  }
  COFFRE_ASSIGN_OR_RETURN(
      SecretBytes padded,
      OpenPadded(key, kItemMetadataLabel, metadata.subspan(1),
                 internal::ItemAssociatedData(context, kind), kItemMetadataAuthFailure));
  if (!ParsePadded(padded, message)) return Fail(ErrorCode::kCorrupt, malformed);
  return Ok();
}

}  // namespace

std::optional<std::size_t> PaddedSize(std::size_t encoded_size) {
  for (const std::size_t bucket : kPaddingBuckets) {
    if (encoded_size < bucket) return bucket;  // room for the 0x80 marker
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// Team keys and derived keys

SecretBytes GenerateTeamKey() { return crypto::RandomSecret(kTeamKeySize); }

SecretBytes GenerateDocumentKey() { return crypto::RandomSecret(crypto::kDocumentKeySize); }

Result<protocol::Hash> KeyCommitment(const protocol::TeamId& team_id, std::uint64_t generation,
                                     const SecretBytes& ptk) {
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes derived,
                          DeriveTeamSubkey(ptk, kTeamKeyCommitmentLabel, team_id, generation));
  protocol::Hash commitment{};
  std::copy(derived.span().begin(), derived.span().end(), commitment.begin());
  return commitment;
}

Status CheckKeyCommitment(const protocol::TeamId& team_id, std::uint64_t generation,
                          const SecretBytes& ptk, std::span<const std::uint8_t> commitment) {
  COFFRE_ASSIGN_OR_RETURN(const protocol::Hash expected, KeyCommitment(team_id, generation, ptk));
  if (!crypto::ConstantTimeEquals(expected, commitment)) {
    return Fail(ErrorCode::kAuthenticationFailed, kKeyCommitmentMismatch);
  }
  return Ok();
}

Result<SecretBytes> DeriveChannelKey(const SecretBytes& ptk, const protocol::TeamId& team_id,
                                     std::uint64_t generation, const ItemId& channel_id) {
  return DeriveTeamSubkey(ptk, kChannelKeyLabel, team_id, generation, channel_id);
}

Result<SecretBytes> DeriveDocumentWrapKey(const SecretBytes& ptk, const protocol::TeamId& team_id,
                                          std::uint64_t generation) {
  return DeriveTeamSubkey(ptk, kDocumentWrapKeyLabel, team_id, generation);
}

Result<SecretBytes> DeriveMetadataKey(const SecretBytes& ptk, const protocol::TeamId& team_id,
                                      std::uint64_t generation) {
  return DeriveTeamSubkey(ptk, kMetadataKeyLabel, team_id, generation);
}

Result<SecretBytes> DeriveKeyHistoryKey(const SecretBytes& ptk, const protocol::TeamId& team_id,
                                        std::uint64_t generation) {
  return DeriveTeamSubkey(ptk, kKeyHistoryKeyLabel, team_id, generation);
}

// ---------------------------------------------------------------------------------------
// Posts

Result<std::vector<std::uint8_t>> SealPost(const SecretBytes& channel_key,
                                           const PostContext& context, std::string_view text,
                                           std::uint64_t sent_ms, std::string_view audit_checkpoint) {
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(channel_key, "content: channel key must be 32 bytes"));
  COFFRE_RETURN_IF_ERROR(CheckGeneration(context.generation));
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(context.sender_user_id));
  COFFRE_RETURN_IF_ERROR(protocol::ValidateDeviceId(context.sender_device_id));
  if (audit_checkpoint.size() > kMaxGossipCheckpointSize) audit_checkpoint = {};
  auto with_gossip = internal::PaddedPostBody(text, sent_ms, audit_checkpoint);
  // A text that fills the largest bucket leaves no room for the gossip: the post goes alone.
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes padded,
                          with_gossip ? std::move(with_gossip) : internal::PaddedPostBody(text, sent_ms));
  const std::vector<std::uint8_t> sealed =
      crypto::AeadSeal(key, kPostLabel, padded.span(), internal::PostAssociatedData(context));

  pb::PostHeader header;
  header.set_version(kContentFormatVersion);
  SetBytes(header.mutable_channel_id(), context.channel_id);
  if (context.parent_post_id) SetBytes(header.mutable_parent_post_id(), *context.parent_post_id);
  header.set_chain_sequence(context.chain_head.sequence);
  SetBytes(header.mutable_chain_hash(), context.chain_head.hash);
  SetBytes(header.mutable_ciphertext(), sealed);
  std::vector<std::uint8_t> out(header.ByteSizeLong());
  if (!header.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    return Fail(ErrorCode::kInternal, "content: protobuf serialization failed");
  }
  return out;
}

Result<PostHeaderInfo> ReadPostHeader(const wire::v1::ItemManifestBody& body) {
  COFFRE_ASSIGN_OR_RETURN(const pb::PostHeader header, ParsePostHeader(body));
  return HeaderInfoOf(header);
}

Result<OpenedPost> OpenPost(const wire::v1::ItemManifestBody& body,
                            const SecretBytes& channel_key) {
  COFFRE_ASSIGN_OR_RETURN(const pb::PostHeader header, ParsePostHeader(body));
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(channel_key, "content: channel key must be 32 bytes"));
  const PostHeaderInfo info = HeaderInfoOf(header);

  PostContext context;
  context.team_id = ToId(body.team_id());
  context.generation = body.key_generation();
  context.channel_id = info.channel_id;
  context.post_id = ToId(body.item_id());
  context.parent_post_id = info.parent_post_id;
  context.sender_user_id = body.author_user_id();
  context.sender_device_id = body.author_device_id();
  context.chain_head = info.chain_head;
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes padded,
                          OpenPadded(key, kPostLabel, AsBytes(header.ciphertext()),
                                     internal::PostAssociatedData(context), kPostAuthFailure));

  pb::PostBody post_body;
  if (!ParsePadded(padded, post_body) || post_body.text().size() > kMaxTextSize ||
      post_body.audit_checkpoint().size() > kMaxGossipCheckpointSize) {
    return Fail(ErrorCode::kCorrupt, "content: post body is malformed");
  }
  OpenedPost post;
  post.channel_id = info.channel_id;
  post.parent_post_id = info.parent_post_id;
  post.chain_head = info.chain_head;
  post.text = std::move(*post_body.mutable_text());
  post.sent_ms = post_body.sent_ms();
  post.audit_checkpoint = std::move(*post_body.mutable_audit_checkpoint());
  return post;
}

// ---------------------------------------------------------------------------------------
// Channels and documents

Result<ItemContext> ItemContextOf(const wire::v1::ItemManifestBody& body) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateTeamId(body.team_id()));
  COFFRE_RETURN_IF_ERROR(protocol::ValidateItemId(body.item_id()));
  ItemContext context;
  context.team_id = ToId(body.team_id());
  context.item_id = ToId(body.item_id());
  context.version = body.version();
  context.generation = body.key_generation();
  COFFRE_RETURN_IF_ERROR(CheckItemContext(context));
  return context;
}

Result<std::vector<std::uint8_t>> SealChannelInfo(const SecretBytes& metadata_key,
                                                  const ItemContext& context,
                                                  const ChannelInfo& info) {
  if (!IsValidName(info.name, kMaxChannelNameSize)) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: channel name must be 1 to 256 bytes without control characters");
  }
  pb::ChannelInfo message;
  message.set_name(info.name);
  return SealItemMetadata(metadata_key, context, kChannelKind, message);
}

Result<ChannelInfo> OpenChannelInfo(const wire::v1::ItemManifestBody& body,
                                    const SecretBytes& metadata_key) {
  constexpr const char* kMalformed = "content: channel metadata is malformed";
  pb::ChannelInfo message;
  COFFRE_RETURN_IF_ERROR(OpenItemMetadata(body, metadata_key, kChannelKind,
                                          "content: item is not a channel", kMalformed, message));
  if (!IsValidName(message.name(), kMaxChannelNameSize)) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  ChannelInfo info;
  info.name = std::move(*message.mutable_name());
  return info;
}

Result<std::vector<std::uint8_t>> SealDocumentInfo(const SecretBytes& metadata_key,
                                                   const ItemContext& context,
                                                   const DocumentInfo& info) {
  if (!IsValidName(info.name, kMaxDocumentNameSize)) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: document name must be 1 to 1024 bytes without control characters");
  }
  if (!IsValidMediaType(info.media_type)) {
    return Fail(ErrorCode::kInvalidArgument, "content: media type is not type/subtype");
  }
  if (!IsStorableDocumentSize(info.size)) {
    return Fail(ErrorCode::kInvalidArgument, "content: document is larger than a blob can hold");
  }
  pb::DocumentInfo message;
  message.set_name(info.name);
  message.set_media_type(info.media_type);
  message.set_size(info.size);
  return SealItemMetadata(metadata_key, context, kDocumentKind, message);
}

Result<DocumentInfo> OpenDocumentInfo(const wire::v1::ItemManifestBody& body,
                                      const SecretBytes& metadata_key) {
  constexpr const char* kMalformed = "content: document metadata is malformed";
  pb::DocumentInfo message;
  COFFRE_RETURN_IF_ERROR(OpenItemMetadata(body, metadata_key, kDocumentKind,
                                          "content: item is not a document", kMalformed, message));
  if (!IsValidName(message.name(), kMaxDocumentNameSize) ||
      !IsValidMediaType(message.media_type()) || !IsStorableDocumentSize(message.size())) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  if (!body.blob_id().empty() && *crypto::CiphertextSize(message.size()) != body.blob_size()) {
    return Fail(ErrorCode::kCorrupt, "content: document size does not match the blob size");
  }
  DocumentInfo info;
  info.name = std::move(*message.mutable_name());
  info.media_type = std::move(*message.mutable_media_type());
  info.size = message.size();
  return info;
}

Result<std::vector<std::uint8_t>> WrapDocumentKey(const SecretBytes& wrap_key,
                                                  const ItemContext& context,
                                                  const SecretBytes& document_key) {
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(wrap_key, "content: document-wrap key must be 32 bytes"));
  if (document_key.size() != crypto::kDocumentKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "content: document key must be 32 bytes");
  }
  COFFRE_RETURN_IF_ERROR(CheckItemContext(context));
  return crypto::AeadSeal(key, kDocumentKeyLabel, document_key.span(),
                          internal::ItemAssociatedData(context, kDocumentKind));
}

Result<SecretBytes> UnwrapDocumentKey(const wire::v1::ItemManifestBody& body,
                                      const SecretBytes& wrap_key) {
  COFFRE_ASSIGN_OR_RETURN(const ItemContext context,
                          CheckManifest(body, kDocumentKind, "content: item is not a document"));
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(wrap_key, "content: document-wrap key must be 32 bytes"));
  const std::span<const std::uint8_t> wrapped = AsBytes(body.wrapped_key());
  if (wrapped.size() != kWrappedDocumentKeySize) {
    return Fail(ErrorCode::kAuthenticationFailed, kDocumentKeyAuthFailure);
  }
  Result<SecretBytes> document_key = crypto::AeadOpen(
      key, kDocumentKeyLabel, wrapped, internal::ItemAssociatedData(context, kDocumentKind));
  if (!document_key) return Fail(ErrorCode::kAuthenticationFailed, kDocumentKeyAuthFailure);
  return document_key;
}

Result<std::vector<std::uint8_t>> DocumentStreamAssociatedData(const ItemContext& context) {
  COFFRE_RETURN_IF_ERROR(CheckItemContext(context));
  return internal::ItemAssociatedData(context, kDocumentKind);
}

// ---------------------------------------------------------------------------------------
// Key history

namespace {

Status CheckGenerationPair(std::uint64_t old_generation, std::uint64_t new_generation) {
  if (old_generation == 0 || old_generation >= new_generation) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: key history needs 1 <= old generation < new generation");
  }
  return Ok();
}

}  // namespace

Result<std::vector<std::uint8_t>> SealPreviousGeneration(const SecretBytes& new_ptk,
                                                         const SecretBytes& old_ptk,
                                                         const protocol::TeamId& team_id,
                                                         std::uint64_t old_generation,
                                                         std::uint64_t new_generation) {
  COFFRE_RETURN_IF_ERROR(CheckTeamKey(old_ptk));
  COFFRE_RETURN_IF_ERROR(CheckGenerationPair(old_generation, new_generation));
  COFFRE_ASSIGN_OR_RETURN(SecretBytes history_key,
                          DeriveKeyHistoryKey(new_ptk, team_id, new_generation));
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(history_key, "content: team key must be 32 bytes"));
  const std::vector<std::uint8_t> sealed =
      crypto::AeadSeal(key, kKeyHistoryLabel, old_ptk.span(),
                       internal::KeyHistoryAssociatedData(team_id, old_generation, new_generation));

  pb::KeyHistory entry;
  entry.set_version(kContentFormatVersion);
  SetBytes(entry.mutable_team_id(), team_id);
  entry.set_old_generation(old_generation);
  entry.set_new_generation(new_generation);
  SetBytes(entry.mutable_sealed_key(), sealed);
  std::vector<std::uint8_t> out(entry.ByteSizeLong());
  if (!entry.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    return Fail(ErrorCode::kInternal, "content: protobuf serialization failed");
  }
  return out;
}

Result<SecretBytes> OpenPreviousGeneration(const SecretBytes& new_ptk,
                                           const protocol::TeamId& team_id,
                                           std::uint64_t old_generation,
                                           std::uint64_t new_generation,
                                           std::span<const std::uint8_t> entry) {
  COFFRE_RETURN_IF_ERROR(CheckGenerationPair(old_generation, new_generation));
  COFFRE_ASSIGN_OR_RETURN(SecretBytes history_key,
                          DeriveKeyHistoryKey(new_ptk, team_id, new_generation));
  COFFRE_ASSIGN_OR_RETURN(crypto::AeadKey key,
                          AeadKeyOf(history_key, "content: team key must be 32 bytes"));

  constexpr const char* kMalformed = "content: key history entry is malformed";
  if (entry.size() > kMaxKeyHistoryEntrySize) return Fail(ErrorCode::kCorrupt, kMalformed);
  pb::KeyHistory history;
  if (!ParseBounded(entry, history)) return Fail(ErrorCode::kCorrupt, kMalformed);
  if (history.version() != kContentFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "content: key history format version is not supported");
  }
  if (protocol::HasUnknownFields(history) || history.team_id().size() != protocol::kIdSize ||
      history.sealed_key().size() != kTeamKeySize + crypto::kAeadOverhead) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  // The clear fields only name the entry; the associated data is built from what the
  // caller expects, so an entry relabelled in the clear fails like one sealed elsewhere.
  if (ToId(history.team_id()) != team_id || history.old_generation() != old_generation ||
      history.new_generation() != new_generation) {
    return Fail(ErrorCode::kAuthenticationFailed, kKeyHistoryAuthFailure);
  }
  Result<SecretBytes> old_ptk =
      crypto::AeadOpen(key, kKeyHistoryLabel, AsBytes(history.sealed_key()),
                       internal::KeyHistoryAssociatedData(team_id, old_generation, new_generation));
  if (!old_ptk) return Fail(ErrorCode::kAuthenticationFailed, kKeyHistoryAuthFailure);
  return old_ptk;
}

// ---------------------------------------------------------------------------------------
// Peer messages

Result<SecretBytes> EncodePeerMessage(const TeamKeyDelivery& delivery) {
  COFFRE_RETURN_IF_ERROR(CheckGeneration(delivery.generation));
  COFFRE_RETURN_IF_ERROR(CheckTeamKey(delivery.key));
  if (!IsValidName(delivery.team_name, kMaxTeamNameSize)) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: team name must be 1 to 64 bytes without control characters");
  }
  pb::PeerMessage message;
  pb::TeamKeyDelivery* field = message.mutable_team_key();
  SetBytes(field->mutable_team_id(), delivery.team_id);
  field->set_generation(delivery.generation);
  SetBytes(field->mutable_key(), delivery.key.span());
  const WipeOnExit wipe(field->mutable_key());
  field->set_chain_sequence(delivery.chain_head.sequence);
  SetBytes(field->mutable_chain_hash(), delivery.chain_head.hash);
  field->set_team_name(delivery.team_name);
  return SerializePadded(message, "content: peer message is too large");
}

Result<SecretBytes> EncodePeerMessage(const DirectMessage& direct) {
  if (direct.text.size() > kMaxTextSize) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: direct message text is longer than 49088 bytes");
  }
  pb::PeerMessage message;
  pb::DirectMessage* field = message.mutable_direct();
  SetBytes(field->mutable_message_id(), direct.message_id);
  field->set_text(direct.text);
  field->set_sent_ms(direct.sent_ms);
  return SerializePadded(message, "content: peer message is too large");
}

Result<SecretBytes> EncodePeerMessage(const TeamIntroduction& introduction) {
  if (!IsValidName(introduction.team_name, kMaxTeamNameSize)) {
    return Fail(ErrorCode::kInvalidArgument,
                "content: team name must be 1 to 64 bytes without control characters");
  }
  pb::PeerMessage message;
  pb::TeamIntroduction* field = message.mutable_team_intro();
  SetBytes(field->mutable_team_id(), introduction.team_id);
  field->set_team_name(introduction.team_name);
  field->set_chain_sequence(introduction.chain_head.sequence);
  SetBytes(field->mutable_chain_hash(), introduction.chain_head.hash);
  return SerializePadded(message, "content: peer message is too large");
}

Result<PeerMessage> DecodePeerMessage(std::span<const std::uint8_t> plaintext) {
  constexpr const char* kMalformed = "content: peer message is malformed";
  if (!IsBucketSize(plaintext.size())) return Fail(ErrorCode::kCorrupt, kMalformed);
  const std::optional<std::size_t> size = UnpaddedSize(plaintext);
  if (!size) return Fail(ErrorCode::kCorrupt, kMalformed);
  pb::PeerMessage message;
  const bool parsed = ParseBounded(plaintext.first(*size), message);
  // Whatever happens next, a parsed key is wiped before `message` frees it.
  const WipeOnExit wipe(message.kind_case() == pb::PeerMessage::kTeamKey
                            ? message.mutable_team_key()->mutable_key()
                            : nullptr);
  if (!parsed || protocol::HasUnknownFields(message)) {
    return Fail(ErrorCode::kCorrupt, kMalformed);
  }
  switch (message.kind_case()) {
    case pb::PeerMessage::kTeamKey: {
      const pb::TeamKeyDelivery& field = message.team_key();
      if (field.team_id().size() != protocol::kIdSize || field.generation() == 0 ||
          field.key().size() != kTeamKeySize || field.chain_hash().size() != protocol::kHashSize ||
          !IsValidName(field.team_name(), kMaxTeamNameSize)) {
        return Fail(ErrorCode::kCorrupt, kMalformed);
      }
      TeamKeyDelivery delivery;
      delivery.team_id = ToId(field.team_id());
      delivery.generation = field.generation();
      delivery.key = SecretBytes::CopyOf(AsBytes(field.key()));
      delivery.chain_head.sequence = field.chain_sequence();
      delivery.chain_head.hash = ToHash(field.chain_hash());
      delivery.team_name = field.team_name();
      return PeerMessage(std::move(delivery));
    }
    case pb::PeerMessage::kDirect: {
      const pb::DirectMessage& field = message.direct();
      if (field.message_id().size() != protocol::kIdSize || field.text().size() > kMaxTextSize) {
        return Fail(ErrorCode::kCorrupt, kMalformed);
      }
      DirectMessage direct;
      direct.message_id = ToId(field.message_id());
      direct.text = field.text();
      direct.sent_ms = field.sent_ms();
      return PeerMessage(std::move(direct));
    }
    case pb::PeerMessage::kTeamIntro: {
      const pb::TeamIntroduction& field = message.team_intro();
      if (field.team_id().size() != protocol::kIdSize || field.chain_hash().size() != protocol::kHashSize ||
          !IsValidName(field.team_name(), kMaxTeamNameSize)) {
        return Fail(ErrorCode::kCorrupt, kMalformed);
      }
      TeamIntroduction introduction;
      introduction.team_id = ToId(field.team_id());
      introduction.team_name = field.team_name();
      introduction.chain_head.sequence = field.chain_sequence();
      introduction.chain_head.hash = ToHash(field.chain_hash());
      return PeerMessage(std::move(introduction));
    }
    case pb::PeerMessage::KIND_NOT_SET:
      break;
  }
  return Fail(ErrorCode::kCorrupt, kMalformed);
}

// ---------------------------------------------------------------------------------------
// Associated data and padded bodies

namespace internal {

std::vector<std::uint8_t> PostAssociatedData(const PostContext& context) {
  std::vector<std::uint8_t> ad;
  ad.reserve(104 + protocol::kIdSize + context.sender_user_id.size());
  AppendU8(ad, kContentFormatVersion);
  AppendBytes(ad, context.team_id);
  AppendU64(ad, context.generation);
  AppendBytes(ad, context.channel_id);
  AppendBytes(ad, context.post_id);
  if (context.parent_post_id) {
    AppendU8(ad, static_cast<std::uint8_t>(protocol::kIdSize));
    AppendBytes(ad, *context.parent_post_id);
  } else {
    AppendU8(ad, 0);
  }
  AppendU64(ad, context.chain_head.sequence);
  AppendBytes(ad, context.chain_head.hash);
  AppendU16(ad, static_cast<std::uint16_t>(context.sender_user_id.size()));
  AppendBytes(ad, AsBytes(context.sender_user_id));
  AppendU32(ad, context.sender_device_id);
  return ad;
}

std::vector<std::uint8_t> ItemAssociatedData(const ItemContext& context, std::string_view kind) {
  std::vector<std::uint8_t> ad;
  ad.reserve(51 + kind.size());
  AppendU8(ad, kContentFormatVersion);
  AppendBytes(ad, context.team_id);
  AppendU64(ad, context.generation);
  AppendBytes(ad, context.item_id);
  AppendU64(ad, context.version);
  AppendU16(ad, static_cast<std::uint16_t>(kind.size()));
  AppendBytes(ad, AsBytes(kind));
  return ad;
}

std::vector<std::uint8_t> KeyHistoryAssociatedData(const protocol::TeamId& team_id,
                                                   std::uint64_t old_generation,
                                                   std::uint64_t new_generation) {
  std::vector<std::uint8_t> ad;
  ad.reserve(33);
  AppendU8(ad, kContentFormatVersion);
  AppendBytes(ad, team_id);
  AppendU64(ad, old_generation);
  AppendU64(ad, new_generation);
  return ad;
}

Result<SecretBytes> PaddedPostBody(std::string_view text, std::uint64_t sent_ms,
                                   std::string_view audit_checkpoint) {
  if (text.size() > kMaxTextSize) {
    return Fail(ErrorCode::kInvalidArgument, "content: post text is longer than 49088 bytes");
  }
  if (audit_checkpoint.size() > kMaxGossipCheckpointSize) {
    return Fail(ErrorCode::kInvalidArgument, "content: audit checkpoint is longer than 1024 bytes");
  }
  pb::PostBody body;
  body.mutable_text()->assign(text);
  body.set_sent_ms(sent_ms);
  body.mutable_audit_checkpoint()->assign(audit_checkpoint);
  return SerializePadded(body, "content: post is too large");
}

}  // namespace internal

}  // namespace coffre::client
