// Fuzz target: PassphraseKdfRecord::Parse on a stored record (a forged record must not make
// us derive with weak parameters or allocate without bound).
//
// Invariants (a broken one aborts: it is a finding):
//   - a record that parses is kPassphraseKdfRecordSize bytes and serializes back to exactly
//     the input;
//   - its parameters are within [kMinimumArgon2Params, maxima], the same bounds Create
//     enforces, so Create accepts them too.
// Nothing is derived: even the minimum parameters cost tens of milliseconds per input.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "coffre/crypto/passphrase_kdf.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "kdf_record_parse_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  const std::span<const std::uint8_t> input(data, size);
  const auto parsed = PassphraseKdfRecord::Parse(input);
  if (!parsed) {
    Require(parsed.error().code() == coffre::ErrorCode::kCorrupt,
            "Parse reports every refusal as kCorrupt");
    return 0;
  }

  Require(size == kPassphraseKdfRecordSize, "a record that parses has the record size");
  const std::vector<std::uint8_t> serialized = parsed->Serialize();
  Require(std::equal(serialized.begin(), serialized.end(), input.begin(), input.end()),
          "Parse then Serialize gives back the input");

  const Argon2Params& params = parsed->params;
  Require(params.memory_kib >= kMinimumArgon2Params.memory_kib &&
              params.iterations >= kMinimumArgon2Params.iterations &&
              params.parallelism >= kMinimumArgon2Params.parallelism,
          "parsed parameters are not below the minimum");
  Require(params.memory_kib <= kMaxArgon2MemoryKib && params.iterations <= kMaxArgon2Iterations &&
              params.parallelism <= kMaxArgon2Parallelism,
          "parsed parameters are not above the maxima");
  Require(PassphraseKdfRecord::Create(params).has_value(),
          "Create accepts the parameters Parse accepts");
  return 0;
}
