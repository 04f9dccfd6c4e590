// Fuzz target: client::OpenPreviousGeneration, which opens a "key-history" item (the
// previous team key sealed under the next one) that a sync takes from the relay. Keys and
// team are fixed, so seeds sealed under them (corpus/key_history_fuzz) open.
//
// Input layout: [0] g, the generation the entry is expected under (the previous one is
// g - 1, so g < 2 is a caller error); the rest, the serialized KeyHistory entry.
//
// Invariants (a broken one aborts: it is a finding):
//   - kInvalidArgument exactly when g < 2 (the caller's generations are checked first);
//   - otherwise every failure is kCorrupt, kUnsupported, or kAuthenticationFailed with the
//     one context kKeyHistoryAuthFailure;
//   - what opens is the previous key every seed sealed (the AEAD lets nothing else through),
//     and the entry does not open under another newer key nor for another generation.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "coffre/client/content.h"
#include "content_fuzz_keys.h"

namespace {

using coffre::ErrorCode;
using namespace coffre::client;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "key_history_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const std::uint64_t generation = input.empty() ? 0 : input[0];
  const std::span<const std::uint8_t> entry = input.empty() ? input : input.subspan(1);
  const std::uint64_t previous = generation == 0 ? 0 : generation - 1;
  const auto team_id = coffre::fuzz::FuzzTeamId();

  const auto opened =
      OpenPreviousGeneration(coffre::fuzz::NewTeamKey(), team_id, previous, generation, entry);
  if (generation < 2) {
    Require(!opened && opened.error().code() == ErrorCode::kInvalidArgument,
            "generations that do not follow each other are the caller's error");
    return 0;
  }
  if (!opened) {
    const ErrorCode code = opened.error().code();
    Require(code == ErrorCode::kCorrupt || code == ErrorCode::kUnsupported ||
                (code == ErrorCode::kAuthenticationFailed &&
                 opened.error().context() == std::string_view(kKeyHistoryAuthFailure)),
            "OpenPreviousGeneration fails with kCorrupt, kUnsupported or the one "
            "authentication failure");
    return 0;
  }
  Require(coffre::crypto::ConstantTimeEquals(opened->span(), coffre::fuzz::OldTeamKey().span()),
          "what opens is the previous key that was sealed");
  const auto other_key =
      OpenPreviousGeneration(coffre::fuzz::OldTeamKey(), team_id, previous, generation, entry);
  Require(!other_key && other_key.error().code() == ErrorCode::kAuthenticationFailed,
          "an entry does not open under another newer key");
  const auto other_generation = OpenPreviousGeneration(coffre::fuzz::NewTeamKey(), team_id,
                                                       generation, generation + 1, entry);
  Require(!other_generation && other_generation.error().code() == ErrorCode::kAuthenticationFailed,
          "an entry does not open for other generations");
  return 0;
}
