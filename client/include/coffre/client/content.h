// Client content formats: what clients send one another, sealed so that the relay only
// ever holds ciphertext (DESIGN.md, "Keys" and "What is encrypted how"). Pure functions:
// no I/O, no state, safe to call from any thread.
//
//  - Team keys: a per-team key (PTK) per generation, 32 random bytes, committed to in the
//    team chain's RotateKey statement (KeyCommitment) and delivered to each member device
//    inside a libsignal pairwise session (EncodePeerMessage).
//  - Derived keys: every use of a PTK goes through crypto::DeriveSubkey with its own label,
//    bound to the team and the generation (and the channel, for a channel key).
//  - Posts: the encrypted_metadata of a "post" item, XChaCha20-Poly1305 under the channel
//    key, the associated data binding team, channel, generation, author, post, parent and
//    the author's view of the team chain head; plaintext padded to size buckets.
//  - Channel and document metadata under the metadata key; document keys wrapped under the
//    document-wrap key; older PTKs sealed under newer ones (key history).
//
// Byte layouts, labels, padding: docs/protocol.md, "Client content formats"; schema:
// protocol/proto/coffre/content/v1/content.proto.
//
// Errors. kInvalidArgument: the caller passed something this code would never send (wrong
// key size, generation 0, text over the limit, a manifest of another kind). kCorrupt or
// kUnsupported: received bytes that are not in the format (their structure is checked
// before any key is used; an authenticated plaintext that does not decode is kCorrupt
// too). kAuthenticationFailed: a ciphertext that does not open, for whatever reason
// (wrong key, any associated-data field, any altered byte, a size no sender produces),
// always with the one context of its format, so a caller cannot tell which check failed.
#ifndef COFFRE_CLIENT_CONTENT_H_
#define COFFRE_CLIENT_CONTENT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::client {

// Team, channel, post, document and message ids: 16 bytes. A channel's id is the item id
// of its "channel" item; a post's id is the item id of its "post" item.
using ItemId = std::array<std::uint8_t, protocol::kIdSize>;

// A PTK and every key derived from it.
inline constexpr std::size_t kTeamKeySize = 32;
// A document key (crypto::kDocumentKeySize) wrapped with AEAD: nonce (24) || key (32) ||
// tag (16).
inline constexpr std::size_t kWrappedDocumentKeySize = 72;
// The first byte of every associated data below, and PostHeader.version,
// KeyHistory.version, and the first byte of sealed item metadata.
inline constexpr std::uint8_t kContentFormatVersion = 1;

// Item kinds of the manifests these formats travel in.
inline constexpr std::string_view kPostKind = "post";
inline constexpr std::string_view kChannelKind = "channel";
inline constexpr std::string_view kDocumentKind = "document";

// Key derivation labels (crypto::DeriveSubkey), one per derived key.
inline constexpr std::string_view kTeamKeyCommitmentLabel = "coffre/team-key-commitment/v1";
inline constexpr std::string_view kChannelKeyLabel = "coffre/channel-key/v1";
inline constexpr std::string_view kDocumentWrapKeyLabel = "coffre/document-wrap-key/v1";
inline constexpr std::string_view kMetadataKeyLabel = "coffre/metadata-key/v1";
inline constexpr std::string_view kKeyHistoryKeyLabel = "coffre/key-history-key/v1";
// AEAD labels (crypto::AeadSeal), one per derived key, so no key is used under two labels.
inline constexpr std::string_view kPostLabel = "coffre/post/v1";
inline constexpr std::string_view kItemMetadataLabel = "coffre/item-metadata/v1";
inline constexpr std::string_view kDocumentKeyLabel = "coffre/document-key/v1";
inline constexpr std::string_view kKeyHistoryLabel = "coffre/key-history/v1";

// Sizes a padded plaintext may have: a message of n encoded bytes is padded to the
// smallest bucket of at least n + 1 bytes (ISO/IEC 7816-4: 0x80, then zeros). The largest
// bucket keeps a sealed post, with its header, within protocol::kMaxItemMetadata.
inline constexpr std::array<std::size_t, 6> kPaddingBuckets = {256,   1024,  4096,
                                                               16384, 32768, 49152};
// Longest post or direct message text: 48 KiB less room for the encoding around it.
inline constexpr std::size_t kMaxTextSize = 49152 - 64;
// The audit checkpoint a post carries as gossip (PostBody.audit_checkpoint).
inline constexpr std::size_t kMaxGossipCheckpointSize = 1024;
inline constexpr std::size_t kMaxChannelNameSize = 256;
inline constexpr std::size_t kMaxTeamNameSize = 64;
inline constexpr std::size_t kMaxDocumentNameSize = 1024;
// RFC 6838 §4.2: type and subtype of at most 127 characters each.
inline constexpr std::size_t kMaxMediaTypeSize = 255;
// Bound on a serialized KeyHistory entry, checked before it is parsed.
inline constexpr std::size_t kMaxKeyHistoryEntrySize = 256;

// The one context of each format's authentication failure.
inline constexpr const char* kPostAuthFailure = "content: post failed authentication";
inline constexpr const char* kItemMetadataAuthFailure =
    "content: item metadata failed authentication";
inline constexpr const char* kDocumentKeyAuthFailure =
    "content: wrapped document key failed authentication";
inline constexpr const char* kKeyHistoryAuthFailure =
    "content: key history entry failed authentication";
inline constexpr const char* kKeyCommitmentMismatch =
    "content: team key does not match its commitment";

// The padded size of an encoded message of `encoded_size` bytes (see kPaddingBuckets), or
// nullopt when it does not fit in the largest bucket.
std::optional<std::size_t> PaddedSize(std::size_t encoded_size);

// ---------------------------------------------------------------------------------------
// Team keys and derived keys
//
// Every function below fails with kInvalidArgument when a PTK is not kTeamKeySize bytes
// or a generation is 0 (generation 0 is the team before its first RotateKey: no key).

// A fresh PTK or document key (32 bytes from the operating system). Never fails.
crypto::SecretBytes GenerateTeamKey();
crypto::SecretBytes GenerateDocumentKey();

// The commitment to `ptk` that the RotateKey statement of `generation` carries:
//   DeriveSubkey(ptk, kTeamKeyCommitmentLabel, team_id || u64be(generation), 32).
// Keyed BLAKE2b is a PRF (it reveals nothing of the key) and collision resistant in its
// key, so a delivered key that matches cannot be another key.
Result<protocol::Hash> KeyCommitment(const protocol::TeamId& team_id, std::uint64_t generation,
                                     const crypto::SecretBytes& ptk);

// Ok() when KeyCommitment(team_id, generation, ptk) equals `commitment` (compared in
// constant time); kAuthenticationFailed / kKeyCommitmentMismatch otherwise, including when
// `commitment` is not 32 bytes. What a member checks before using a delivered key, with
// the commitment of the chain it verified (protocol::TeamChain::key_commitment()).
Status CheckKeyCommitment(const protocol::TeamId& team_id, std::uint64_t generation,
                          const crypto::SecretBytes& ptk, std::span<const std::uint8_t> commitment);

// The key posts of one channel are sealed under, for one generation:
//   DeriveSubkey(ptk, kChannelKeyLabel, team_id || u64be(generation) || channel_id, 32).
Result<crypto::SecretBytes> DeriveChannelKey(const crypto::SecretBytes& ptk,
                                             const protocol::TeamId& team_id,
                                             std::uint64_t generation, const ItemId& channel_id);
// The key that wraps document keys: DeriveSubkey(ptk, kDocumentWrapKeyLabel,
// team_id || u64be(generation), 32).
Result<crypto::SecretBytes> DeriveDocumentWrapKey(const crypto::SecretBytes& ptk,
                                                  const protocol::TeamId& team_id,
                                                  std::uint64_t generation);
// The key of item metadata (channel and document): DeriveSubkey(ptk, kMetadataKeyLabel,
// team_id || u64be(generation), 32).
Result<crypto::SecretBytes> DeriveMetadataKey(const crypto::SecretBytes& ptk,
                                              const protocol::TeamId& team_id,
                                              std::uint64_t generation);
// The key that seals the previous PTK under the PTK of `generation`:
// DeriveSubkey(ptk, kKeyHistoryKeyLabel, team_id || u64be(generation), 32).
Result<crypto::SecretBytes> DeriveKeyHistoryKey(const crypto::SecretBytes& ptk,
                                                const protocol::TeamId& team_id,
                                                std::uint64_t generation);

// ---------------------------------------------------------------------------------------
// Posts (item kind "post")

// Everything a post's associated data binds, besides the format version.
struct PostContext {
  protocol::TeamId team_id{};
  std::uint64_t generation = 0;  // the manifest's key_generation
  ItemId channel_id{};
  ItemId post_id{};                      // the manifest's item_id
  std::optional<ItemId> parent_post_id;  // set for an answer in a thread
  std::string sender_user_id;            // the manifest's author_user_id
  std::uint32_t sender_device_id = 0;    // the manifest's author_device_id
  protocol::ChainHead chain_head;        // the sender's verified team chain head
};

// The clear part of a post: where it belongs and the sender's chain head.
struct PostHeaderInfo {
  ItemId channel_id{};
  std::optional<ItemId> parent_post_id;
  protocol::ChainHead chain_head;
};

struct OpenedPost {
  ItemId channel_id{};
  std::optional<ItemId> parent_post_id;
  protocol::ChainHead chain_head;
  std::string text;
  std::uint64_t sent_ms = 0;
  std::string audit_checkpoint;  // the sender's view of the audit log; empty when none
};

// Seals a post: returns the serialized PostHeader to put in the manifest's
// encrypted_metadata (at most protocol::kMaxItemMetadata bytes). The manifest must carry
// kind "post" and the team, item id, key generation and author of `context`. Fails with
// kInvalidArgument when `channel_key` is not 32 bytes, the generation is 0, the sender
// user or device id is invalid, or `text` is longer than kMaxTextSize.
// `audit_checkpoint` (at most kMaxGossipCheckpointSize bytes) rides along when it fits in
// the padding bucket of the text; it is left out otherwise.
Result<std::vector<std::uint8_t>> SealPost(const crypto::SecretBytes& channel_key,
                                           const PostContext& context, std::string_view text,
                                           std::uint64_t sent_ms,
                                           std::string_view audit_checkpoint = {});

// Reads the clear header of a post manifest, so the caller can pick the channel key.
// `body` comes from a manifest whose signature the caller verified. Fails with
// kInvalidArgument when the item is not a post or a manifest field is invalid, kUnsupported
// on another format version, kCorrupt when the header is malformed.
Result<PostHeaderInfo> ReadPostHeader(const wire::v1::ItemManifestBody& body);

// Opens a post: ReadPostHeader's checks, then the ciphertext under `channel_key` with the
// associated data rebuilt from the manifest and the header. Every failure to open (a size
// no sender produces, wrong key, the post moved to another team, channel, generation,
// parent or author, another chain head, any altered byte) is kAuthenticationFailed /
// kPostAuthFailure. A body that opens but does not decode is kCorrupt.
Result<OpenedPost> OpenPost(const wire::v1::ItemManifestBody& body,
                            const crypto::SecretBytes& channel_key);

// ---------------------------------------------------------------------------------------
// Channels and documents

// What the associated data of item metadata and document keys binds, with the item kind.
struct ItemContext {
  protocol::TeamId team_id{};
  ItemId item_id{};
  std::uint64_t version = 0;     // the manifest's version, 1..
  std::uint64_t generation = 0;  // the manifest's key_generation, 1..
};

// The ItemContext of a (signature-verified) manifest. kInvalidArgument when its team or
// item id is not 16 bytes, or its version or key generation is 0.
Result<ItemContext> ItemContextOf(const wire::v1::ItemManifestBody& body);

struct ChannelInfo {
  std::string name;  // 1..kMaxChannelNameSize bytes, no control characters
};

struct DocumentInfo {
  std::string name;        // 1..kMaxDocumentNameSize bytes, no control characters
  std::string media_type;  // "type/subtype", RFC 6838 §4.2 restricted names
  std::uint64_t size = 0;  // plaintext size of the document version
};

// Seals channel metadata for the encrypted_metadata of a "channel" item:
// kContentFormatVersion || AeadSeal(metadata_key, kItemMetadataLabel, padded ChannelInfo,
// item associated data with kind "channel"). kInvalidArgument on a key that is not 32
// bytes, a zero version or generation, or a name out of bounds.
Result<std::vector<std::uint8_t>> SealChannelInfo(const crypto::SecretBytes& metadata_key,
                                                  const ItemContext& context,
                                                  const ChannelInfo& info);
// Opens the metadata of a "channel" manifest. kInvalidArgument when the item is not a
// channel or its fields are invalid; kUnsupported on another format version;
// kAuthenticationFailed / kItemMetadataAuthFailure when it does not open; kCorrupt when it
// opens but does not decode to a valid ChannelInfo.
Result<ChannelInfo> OpenChannelInfo(const wire::v1::ItemManifestBody& body,
                                    const crypto::SecretBytes& metadata_key);

// As SealChannelInfo for a "document" item version. Also kInvalidArgument when the media
// type is not "type/subtype" or when a stream of `size` bytes would exceed
// protocol::kMaxBlobSize.
Result<std::vector<std::uint8_t>> SealDocumentInfo(const crypto::SecretBytes& metadata_key,
                                                   const ItemContext& context,
                                                   const DocumentInfo& info);
// As OpenChannelInfo for a "document" manifest. Also kCorrupt when the manifest has a blob
// whose size is not the stream size of DocumentInfo.size.
Result<DocumentInfo> OpenDocumentInfo(const wire::v1::ItemManifestBody& body,
                                      const crypto::SecretBytes& metadata_key);

// Wraps a document version's key for the manifest's wrapped_key:
// AeadSeal(wrap_key, kDocumentKeyLabel, document_key, item associated data with kind
// "document"), kWrappedDocumentKeySize bytes. kInvalidArgument when either key is not 32
// bytes or the version or generation is 0.
Result<std::vector<std::uint8_t>> WrapDocumentKey(const crypto::SecretBytes& wrap_key,
                                                  const ItemContext& context,
                                                  const crypto::SecretBytes& document_key);
// Unwraps the document key of a "document" manifest. kInvalidArgument when the item is not
// a document or its fields are invalid; kAuthenticationFailed / kDocumentKeyAuthFailure
// for every failure to open (size, key, team, document, version, generation, any byte).
Result<crypto::SecretBytes> UnwrapDocumentKey(const wire::v1::ItemManifestBody& body,
                                              const crypto::SecretBytes& wrap_key);

// The associated data to give the document stream of a document version
// (crypto/document_stream.h): the item associated data with kind "document", so a stream
// cannot be presented as another team's, document's or version's. kInvalidArgument when
// the version or generation is 0.
Result<std::vector<std::uint8_t>> DocumentStreamAssociatedData(const ItemContext& context);

// ---------------------------------------------------------------------------------------
// Key history

// Seals `old_ptk` (generation old_generation) under the key-history key of `new_ptk`
// (generation new_generation) and returns the serialized KeyHistory entry. kInvalidArgument
// when a key is not 32 bytes or unless 1 <= old_generation < new_generation.
Result<std::vector<std::uint8_t>> SealPreviousGeneration(const crypto::SecretBytes& new_ptk,
                                                         const crypto::SecretBytes& old_ptk,
                                                         const protocol::TeamId& team_id,
                                                         std::uint64_t old_generation,
                                                         std::uint64_t new_generation);

// Opens a KeyHistory entry expected to hold generation `old_generation` of `team_id`
// under `new_ptk` (generation new_generation), and returns the older PTK. The caller then
// checks it against that generation's commitment when it knows it. kInvalidArgument as
// SealPreviousGeneration; kCorrupt when the entry is malformed (size checked before
// parsing); kUnsupported on another format version; kAuthenticationFailed /
// kKeyHistoryAuthFailure when it names another team or generations, or does not open.
Result<crypto::SecretBytes> OpenPreviousGeneration(const crypto::SecretBytes& new_ptk,
                                                   const protocol::TeamId& team_id,
                                                   std::uint64_t old_generation,
                                                   std::uint64_t new_generation,
                                                   std::span<const std::uint8_t> entry);

// ---------------------------------------------------------------------------------------
// Peer messages: the plaintext of a libsignal pairwise session

struct TeamKeyDelivery {
  protocol::TeamId team_id{};
  std::uint64_t generation = 0;
  crypto::SecretBytes key;         // the PTK of `generation`
  protocol::ChainHead chain_head;  // the sender's chain head when it sent the key
  std::string team_name;           // 1..kMaxTeamNameSize bytes, no control characters
};

struct DirectMessage {
  ItemId message_id{};
  std::string text;  // at most kMaxTextSize bytes
  std::uint64_t sent_ms = 0;
};

// A team made known to its auditor (who gets no key): what its profile names it.
struct TeamIntroduction {
  protocol::TeamId team_id{};
  std::string team_name;           // 1..kMaxTeamNameSize bytes, no control characters
  protocol::ChainHead chain_head;  // the sender's chain head when it sent it
};

using PeerMessage = std::variant<TeamKeyDelivery, DirectMessage, TeamIntroduction>;

// The padded PeerMessage plaintext to encrypt in the pairwise session (a kPaddingBuckets
// size), in SecretBytes since it may hold a key. kInvalidArgument when the generation is
// 0, the key is not 32 bytes, the team name is out of bounds, or the text is longer than
// kMaxTextSize.
Result<crypto::SecretBytes> EncodePeerMessage(const TeamKeyDelivery& delivery);
Result<crypto::SecretBytes> EncodePeerMessage(const DirectMessage& message);
Result<crypto::SecretBytes> EncodePeerMessage(const TeamIntroduction& introduction);

// Decodes a plaintext that the pairwise session authenticated. kCorrupt when its size is
// not a padding bucket, the padding is wrong, it does not parse, has unknown fields, no
// kind, or a field out of bounds.
Result<PeerMessage> DecodePeerMessage(std::span<const std::uint8_t> plaintext);

namespace internal {

// The associated data layouts of docs/protocol.md, exposed for the test that rebuilds them
// from the document. Neither validates its input.
std::vector<std::uint8_t> PostAssociatedData(const PostContext& context);
std::vector<std::uint8_t> ItemAssociatedData(const ItemContext& context, std::string_view kind);
std::vector<std::uint8_t> KeyHistoryAssociatedData(const protocol::TeamId& team_id,
                                                   std::uint64_t old_generation,
                                                   std::uint64_t new_generation);
// The padded plaintext of a post (serialized PostBody, 0x80, zeros to its bucket).
// kInvalidArgument when the text is longer than kMaxTextSize.
Result<crypto::SecretBytes> PaddedPostBody(std::string_view text, std::uint64_t sent_ms,
                                           std::string_view audit_checkpoint = {});

}  // namespace internal

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_CONTENT_H_
