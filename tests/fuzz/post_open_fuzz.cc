// Fuzz target: client::ReadPostHeader and client::OpenPost on a "post" manifest body, as a
// sync takes it from the relay (after the author's signature checked out: a member's client
// may still sign anything). The channel key is fixed, so seeds sealed under it
// (corpus/post_open_fuzz, made by seed_corpus_tool.cc) open.
//
// Input: a serialized wire ItemManifestBody; inputs that do not parse as one are skipped.
//
// Invariants (a broken one aborts: it is a finding):
//   - ReadPostHeader fails only with kInvalidArgument, kUnsupported or kCorrupt, and
//     OpenPost, which makes the same checks first, fails the same way on the same input;
//   - past the header, OpenPost fails only with kAuthenticationFailed / kPostAuthFailure
//     (no oracle on which check failed) or kCorrupt (a body that opens but does not decode);
//   - a post that opens agrees with its header, keeps the text limit, does not open under
//     another key, and sealed again from what it says (SealPost) opens to the same post.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "coffre/client/content.h"
#include "content_fuzz_keys.h"

namespace {

using coffre::ErrorCode;
using namespace coffre::client;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "post_open_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

ItemId IdOf(const std::string& bytes) {
  ItemId id{};
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  coffre::wire::v1::ItemManifestBody body;
  if (!body.ParseFromArray(data, static_cast<int>(size))) return 0;

  const auto header = ReadPostHeader(body);
  const auto opened = OpenPost(body, coffre::fuzz::ChannelKey());
  if (!header) {
    const ErrorCode code = header.error().code();
    Require(code == ErrorCode::kInvalidArgument || code == ErrorCode::kUnsupported ||
                code == ErrorCode::kCorrupt,
            "ReadPostHeader fails with kInvalidArgument, kUnsupported or kCorrupt");
    Require(!opened && opened.error().code() == code &&
                opened.error().context() == header.error().context(),
            "OpenPost refuses a header the way ReadPostHeader does");
    return 0;
  }
  if (!opened) {
    const ErrorCode code = opened.error().code();
    Require((code == ErrorCode::kAuthenticationFailed &&
             opened.error().context() == std::string_view(kPostAuthFailure)) ||
                code == ErrorCode::kCorrupt,
            "OpenPost fails with the one authentication failure, or kCorrupt");
    return 0;
  }

  Require(opened->channel_id == header->channel_id &&
              opened->parent_post_id == header->parent_post_id &&
              opened->chain_head == header->chain_head,
          "an opened post agrees with its header");
  Require(opened->text.size() <= kMaxTextSize, "an opened post keeps the text limit");
  const auto other = OpenPost(body, coffre::fuzz::OtherKey());
  Require(!other && other.error().code() == ErrorCode::kAuthenticationFailed,
          "a post does not open under another channel key");

  PostContext context;
  context.team_id = IdOf(body.team_id());
  context.generation = body.key_generation();
  context.channel_id = opened->channel_id;
  context.post_id = IdOf(body.item_id());
  context.parent_post_id = opened->parent_post_id;
  context.sender_user_id = body.author_user_id();
  context.sender_device_id = body.author_device_id();
  context.chain_head = opened->chain_head;
  const auto resealed =
      SealPost(coffre::fuzz::ChannelKey(), context, opened->text, opened->sent_ms);
  Require(resealed.has_value(), "an opened post seals again");
  coffre::wire::v1::ItemManifestBody again = body;
  again.set_encrypted_metadata(resealed->data(), resealed->size());
  const auto reopened = OpenPost(again, coffre::fuzz::ChannelKey());
  Require(reopened && reopened->text == opened->text && reopened->sent_ms == opened->sent_ms &&
              reopened->channel_id == opened->channel_id &&
              reopened->parent_post_id == opened->parent_post_id &&
              reopened->chain_head == opened->chain_head,
          "a post sealed again from what it says opens to the same post");
  return 0;
}
