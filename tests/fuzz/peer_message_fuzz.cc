// Fuzz target: client::DecodePeerMessage, the parser of what a libsignal pairwise session
// delivers (a team key or a direct message, padded to a bucket). The session authenticates
// the sender, not the bytes' sanity: a member's buggy or hostile client can send anything.
//
// Input: the decrypted plaintext, as is.
//
// Invariants (a broken one aborts: it is a finding):
//   - every failure is kCorrupt with the one context of the format;
//   - what decodes has the documented bounds (ids of 16 bytes, a generation of at least 1,
//     a 32-byte key, a valid team name, text within kMaxTextSize) and came in a padding
//     bucket;
//   - it encodes again (EncodePeerMessage accepts it) and that encoding decodes to the same
//     message.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <variant>

#include "coffre/client/content.h"
#include "coffre/crypto/secret_bytes.h"

namespace {

using coffre::ErrorCode;
using namespace coffre::client;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "peer_message_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

bool Same(const TeamKeyDelivery& a, const TeamKeyDelivery& b) {
  return a.team_id == b.team_id && a.generation == b.generation &&
         coffre::crypto::ConstantTimeEquals(a.key.span(), b.key.span()) &&
         a.chain_head.sequence == b.chain_head.sequence && a.chain_head.hash == b.chain_head.hash &&
         a.team_name == b.team_name;
}

bool Same(const DirectMessage& a, const DirectMessage& b) {
  return a.message_id == b.message_id && a.text == b.text && a.sent_ms == b.sent_ms;
}

bool Same(const TeamIntroduction& a, const TeamIntroduction& b) {
  return a.team_id == b.team_id && a.team_name == b.team_name &&
         a.chain_head.sequence == b.chain_head.sequence && a.chain_head.hash == b.chain_head.hash;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  static const char* first_context = nullptr;
  const auto decoded = DecodePeerMessage(input);
  if (!decoded) {
    Require(decoded.error().code() == ErrorCode::kCorrupt, "DecodePeerMessage fails with kCorrupt");
    if (first_context == nullptr) first_context = decoded.error().context().data();
    Require(decoded.error().context().data() == first_context,
            "DecodePeerMessage gives one context for every failure");
    return 0;
  }
  Require(std::find(kPaddingBuckets.begin(), kPaddingBuckets.end(), size) != kPaddingBuckets.end(),
          "only a padding bucket decodes");

  if (const auto* delivery = std::get_if<TeamKeyDelivery>(&*decoded)) {
    Require(delivery->generation >= 1, "a delivered key has a generation");
    Require(delivery->key.size() == kTeamKeySize, "a delivered key is 32 bytes");
    Require(!delivery->team_name.empty() && delivery->team_name.size() <= kMaxTeamNameSize,
            "a delivered team name is within bounds");
    const auto encoded = EncodePeerMessage(*delivery);
    Require(encoded.has_value(), "a decoded team key delivery encodes again");
    const auto again = DecodePeerMessage(encoded->span());
    Require(again.has_value() && std::holds_alternative<TeamKeyDelivery>(*again) &&
                Same(std::get<TeamKeyDelivery>(*again), *delivery),
            "a re-encoded team key delivery decodes to the same delivery");
    return 0;
  }
  if (const auto* introduction = std::get_if<TeamIntroduction>(&*decoded)) {
    Require(!introduction->team_name.empty() && introduction->team_name.size() <= kMaxTeamNameSize,
            "an introduced team name is within bounds");
    const auto encoded = EncodePeerMessage(*introduction);
    Require(encoded.has_value(), "a decoded team introduction encodes again");
    const auto again = DecodePeerMessage(encoded->span());
    Require(again.has_value() && std::holds_alternative<TeamIntroduction>(*again) &&
                Same(std::get<TeamIntroduction>(*again), *introduction),
            "a re-encoded team introduction decodes to the same introduction");
    return 0;
  }
  const auto& direct = std::get<DirectMessage>(*decoded);
  Require(direct.text.size() <= kMaxTextSize, "a direct message is within the text limit");
  const auto encoded = EncodePeerMessage(direct);
  Require(encoded.has_value(), "a decoded direct message encodes again");
  const auto again = DecodePeerMessage(encoded->span());
  Require(again.has_value() && std::holds_alternative<DirectMessage>(*again) &&
              Same(std::get<DirectMessage>(*again), direct),
          "a re-encoded direct message decodes to the same message");
  return 0;
}
