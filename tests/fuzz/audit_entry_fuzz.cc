// Fuzz target: audit::DecodeEntry (entries that a relay serves to auditors and puts in
// export bundles), audit::DecodeDetails (what sealed details hold), the readers of
// sealed details and sealed month keys that an auditor's client runs on what the relay
// sends (SealedDetailsKeyId, OpenDetailsUnder, OpenMonthKey), and audit::DecodeClientEvent
// (a device's signed statement, which the relay decodes from any authenticated device), all
// on the whole input.
//
// Invariants (a broken one aborts: it is a finding):
//   - a refusal is kInvalidArgument, or kUnsupported for another format version;
//   - a decoded entry (or details) encodes back to exactly the input: one encoding per
//     value, so a leaf hash names one entry;
//   - SealedDetailsKeyId accepts exactly the sizes and key ids the format allows, and
//     returns the input's first 8 bytes;
//   - nothing opens under a key it was not sealed with, and every such failure is
//     kAuthenticationFailed; decoded details sealed under a month key open back to
//     themselves.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "coffre/audit/entry.h"
#include "coffre/crypto/x25519.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "audit_entry_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// A month key and an auditor key pair made once per process: the input was sealed under
// neither.
const coffre::audit::MonthKey& FuzzMonthKey() {
  static const coffre::audit::MonthKey key = coffre::audit::MonthKey::Generate();
  return key;
}

const coffre::crypto::X25519KeyPair& FuzzAuditor() {
  static const coffre::crypto::X25519KeyPair pair = coffre::crypto::X25519KeyPair::Generate();
  return pair;
}

std::uint64_t FirstU64(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 8; ++i) value = value << 8 | bytes[i];
  return value;
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
    const auto sealed = SealDetailsUnder(FuzzMonthKey(), 1, *details);
    Require(sealed.has_value(), "decoded details seal");
    const auto reopened = OpenDetailsUnder(FuzzMonthKey(), *sealed);
    Require(reopened.has_value() && *reopened == *details,
            "sealed details open back to themselves");
  }

  const auto key_id = SealedDetailsKeyId(input);
  const bool allowed_size = size >= kMinSealedDetailsSize && size <= kMaxSealedDetailsSize;
  if (key_id) {
    Require(allowed_size && *key_id >= 1 && *key_id <= kMaxMonthKeyId && *key_id == FirstU64(input),
            "SealedDetailsKeyId reads an allowed key id from an allowed size");
  } else {
    Require(key_id.error().code() == coffre::ErrorCode::kInvalidArgument,
            "SealedDetailsKeyId refuses with kInvalidArgument");
    Require(!allowed_size || FirstU64(input) == 0 || FirstU64(input) > kMaxMonthKeyId,
            "SealedDetailsKeyId refuses only impossible sizes and key ids");
  }
  const auto opened = OpenDetailsUnder(FuzzMonthKey(), input);
  Require(!opened && opened.error().code() == coffre::ErrorCode::kAuthenticationFailed,
          "sealed details never open under a key they were not sealed with");
  const auto month_key = OpenMonthKey(FuzzAuditor(), input);
  Require(!month_key && month_key.error().code() == coffre::ErrorCode::kAuthenticationFailed,
          "a month key never opens for an auditor it was not sealed to");

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
