// Fuzz target: protocol::ParseFrame, the one entry point for every WebSocket message a
// relay or a client receives, including the signed bodies nested in requests.
//
// Invariants (a broken one aborts: it is a finding):
//   - every refusal carries a Failure of the protocol table (so a wire error code exists);
//   - a frame that parses serializes to bytes that parse again, to an equal frame;
//   - PeekRequestId agrees with the parsed request id.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "coffre/protocol/errors.h"
#include "coffre/protocol/validation.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "frame_parse_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::protocol;
  const std::span<const std::uint8_t> input(data, size);
  const auto frame = ParseFrame(input);
  if (!frame) {
    Require(FailureOf(frame.error()).has_value(), "every refusal names a protocol failure");
    return 0;
  }
  if (frame->has_request()) {
    const auto peeked = PeekRequestId(input);
    Require(peeked.has_value() && *peeked == frame->request().id(),
            "PeekRequestId agrees with the parsed request");
  }
  std::string again;
  Require(frame->SerializeToString(&again), "a parsed frame serializes");
  const auto reparsed = ParseFrame(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(again.data()),
                                    again.size()));
  Require(reparsed.has_value(), "a serialized valid frame parses again");
  std::string twice;
  Require(reparsed->SerializeToString(&twice) && twice == again,
          "serialization is stable across a round trip");
  return 0;
}
