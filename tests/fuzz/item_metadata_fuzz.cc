// Fuzz target: the openers of "channel" and "document" manifests that a sync or a download
// takes from the relay: client::OpenChannelInfo, client::OpenDocumentInfo (under the
// metadata key) and client::UnwrapDocumentKey (under the document-wrap key). Keys are fixed,
// so seeds sealed under them (corpus/item_metadata_fuzz) open.
//
// Input: a serialized wire ItemManifestBody; inputs that do not parse as one are skipped.
//
// Invariants (a broken one aborts: it is a finding):
//   - every failure is kInvalidArgument (not that kind, invalid manifest fields),
//     kUnsupported, kCorrupt, or kAuthenticationFailed with the one context of its format;
//   - what opens is of the manifest's kind and within the documented bounds (names without
//     control characters, "type/subtype", a storable size that matches the blob's), and
//     sealed again (SealChannelInfo, SealDocumentInfo) opens to the same metadata;
//   - an unwrapped document key is the key every seed wrapped.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "coffre/client/content.h"
#include "coffre/crypto/document_stream.h"
#include "content_fuzz_keys.h"

namespace {

using coffre::ErrorCode;
using namespace coffre::client;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "item_metadata_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

template <typename T>
void RequireKnownFailure(const coffre::Result<T>& result, const char* auth_failure,
                         const char* invariant) {
  if (result) return;
  const ErrorCode code = result.error().code();
  Require(code == ErrorCode::kInvalidArgument || code == ErrorCode::kUnsupported ||
              code == ErrorCode::kCorrupt ||
              (code == ErrorCode::kAuthenticationFailed &&
               result.error().context() == std::string_view(auth_failure)),
          invariant);
}

bool HasNoControlCharacters(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  coffre::wire::v1::ItemManifestBody body;
  if (!body.ParseFromArray(data, static_cast<int>(size))) return 0;
  const auto& metadata_key = coffre::fuzz::MetadataKey();

  const auto channel = OpenChannelInfo(body, metadata_key);
  RequireKnownFailure(channel, kItemMetadataAuthFailure, "OpenChannelInfo fails as documented");
  if (channel) {
    Require(body.kind() == kChannelKind, "only a channel manifest opens as a channel");
    Require(!channel->name.empty() && channel->name.size() <= kMaxChannelNameSize &&
                HasNoControlCharacters(channel->name),
            "an opened channel name is within bounds");
    const auto context = ItemContextOf(body);
    Require(context.has_value(), "an opened channel has a valid context");
    const auto sealed = SealChannelInfo(metadata_key, *context, *channel);
    Require(sealed.has_value(), "an opened channel seals again");
    coffre::wire::v1::ItemManifestBody again = body;
    again.set_encrypted_metadata(sealed->data(), sealed->size());
    const auto reopened = OpenChannelInfo(again, metadata_key);
    Require(reopened && reopened->name == channel->name,
            "a channel sealed again opens to the same name");
  }

  const auto document = OpenDocumentInfo(body, metadata_key);
  RequireKnownFailure(document, kItemMetadataAuthFailure, "OpenDocumentInfo fails as documented");
  if (document) {
    Require(body.kind() == kDocumentKind, "only a document manifest opens as a document");
    Require(!document->name.empty() && document->name.size() <= kMaxDocumentNameSize &&
                HasNoControlCharacters(document->name),
            "an opened document name is within bounds");
    Require(document->media_type.find('/') != std::string::npos &&
                document->media_type.size() <= kMaxMediaTypeSize,
            "an opened media type is type/subtype");
    const auto stream_size = coffre::crypto::CiphertextSize(document->size);
    Require(stream_size && *stream_size <= coffre::protocol::kMaxBlobSize,
            "an opened document size makes a storable stream");
    Require(body.blob_id().empty() || *stream_size == body.blob_size(),
            "an opened document size matches its blob");
    const auto context = ItemContextOf(body);
    Require(context.has_value(), "an opened document has a valid context");
    const auto sealed = SealDocumentInfo(metadata_key, *context, *document);
    Require(sealed.has_value(), "an opened document seals again");
    coffre::wire::v1::ItemManifestBody again = body;
    again.set_encrypted_metadata(sealed->data(), sealed->size());
    const auto reopened = OpenDocumentInfo(again, metadata_key);
    Require(reopened && reopened->name == document->name &&
                reopened->media_type == document->media_type && reopened->size == document->size,
            "a document sealed again opens to the same metadata");
  }

  const auto document_key = UnwrapDocumentKey(body, coffre::fuzz::WrapKey());
  RequireKnownFailure(document_key, kDocumentKeyAuthFailure,
                      "UnwrapDocumentKey fails as documented");
  if (document_key) {
    Require(body.kind() == kDocumentKind, "only a document manifest has a document key");
    Require(coffre::crypto::ConstantTimeEquals(document_key->span(),
                                               coffre::fuzz::DocumentKey().span()),
            "what unwraps is the document key that was wrapped");
  }
  return 0;
}
