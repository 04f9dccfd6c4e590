// Fuzz target: audit::DecodeEntry (entries that a relay serves to auditors and puts in
// export bundles) and audit::DecodeDetails (what an auditor finds in a sealed box), both on
// the whole input, and audit::DecodeClientEvent (a device's signed statement, which the relay
// decodes from any authenticated device).
//
// Invariants (a broken one aborts: it is a finding):
//   - a refusal is kInvalidArgument, or kUnsupported for another format version;
//   - a decoded entry (or details) encodes back to exactly the input: one encoding per
//     value, so a leaf hash names one entry.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "coffre/audit/entry.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "audit_entry_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

bool IsDecodeRefusal(coffre::ErrorCode code) {
  return code == coffre::ErrorCode::kInvalidArgument || code == coffre::ErrorCode::kUnsupported;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::audit;
  const std::span<const std::uint8_t> input(data, size);

  const auto entry = DecodeEntry(input);
  if (!entry) {
    Require(IsDecodeRefusal(entry.error().code()), "DecodeEntry refuses with a decoding code");
  } else {
    const auto encoded = EncodeEntry(*entry);
    Require(encoded.has_value(), "a decoded entry encodes");
    Require(encoded->size() == size && std::equal(encoded->begin(), encoded->end(), input.begin()),
            "a decoded entry encodes back to the same bytes");
    Require(HashLeaf(*encoded) == HashLeaf(input), "the leaf hash is the input's");
  }

  const auto details = DecodeDetails(input);
  if (!details) {
    Require(IsDecodeRefusal(details.error().code()), "DecodeDetails refuses with a decoding code");
  } else {
    const auto encoded = EncodeDetails(*details);
    Require(encoded.has_value(), "decoded details encode");
    const auto bytes = encoded->span();
    Require(bytes.size() == size && std::equal(bytes.begin(), bytes.end(), input.begin()),
            "decoded details encode back to the same bytes");
  }

  const auto event = DecodeClientEvent(input);
  if (!event) {
    Require(IsDecodeRefusal(event.error().code()), "DecodeClientEvent refuses with a decoding code");
  } else {
    const auto encoded = EncodeClientEvent(*event);
    Require(size == encoded.size() && std::equal(encoded.begin(), encoded.end(), input.begin()),
            "a decoded client event encodes back to the same bytes");
    (void)VerifyClientEventSignature(*event);  // must not crash on any key or signature
  }
  return 0;
}
