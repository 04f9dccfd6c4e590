// The fixed, public key, origin and tree shared by the fuzz targets of the audit module and
// by audit_seed_corpus_tool.cc, which makes the seeds with them so that seeds reach the
// signature checks and the success paths.
#ifndef COFFRE_TESTS_FUZZ_AUDIT_FUZZ_INPUTS_H_
#define COFFRE_TESTS_FUZZ_AUDIT_FUZZ_INPUTS_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "coffre/crypto/signature.h"

namespace coffre::fuzz {

inline constexpr std::string_view kAuditOrigin = "fuzz.coffre.example/audit";

// The log key: seed bytes 0x40, 0x41, ..., 0x5f; its name is the origin.
inline const crypto::SigningKey& AuditLogKey() {
  static const crypto::SigningKey key = [] {
    std::uint8_t seed[crypto::kEd25519SeedSize];
    for (std::size_t i = 0; i < sizeof seed; ++i) seed[i] = static_cast<std::uint8_t>(0x40 + i);
    auto made = crypto::SigningKey::FromSeed(seed);
    if (!made) std::abort();
    return std::move(made).value();
  }();
  return key;
}

inline const audit::NoteVerifier& AuditLogVerifier() {
  static const audit::NoteVerifier verifier = [] {
    auto made = audit::NoteVerifier::FromPublicKey(kAuditOrigin, AuditLogKey().verify_key());
    if (!made) std::abort();
    return std::move(made).value();
  }();
  return verifier;
}

// merkle_proof_fuzz's tree: leaf i is the single byte i.
inline constexpr std::uint64_t kAuditFuzzTreeSize = 40;

inline const audit::MerkleTree& AuditFuzzTree() {
  static const audit::MerkleTree tree = [] {
    audit::MerkleTree made;
    for (std::uint64_t i = 0; i < kAuditFuzzTreeSize; ++i) {
      const std::uint8_t leaf[1] = {static_cast<std::uint8_t>(i)};
      if (!made.Append(leaf)) std::abort();
    }
    return made;
  }();
  return tree;
}

// merkle_proof_fuzz's input: [0] kind (even: inclusion, odd: consistency), [1] a, [2] b
// (index and size, or first and second size; values above the tree size are kept to test
// the refusals), then the proof as concatenated hashes.
inline std::vector<std::uint8_t> MerkleFuzzInput(std::uint8_t kind, std::uint8_t a, std::uint8_t b,
                                                 std::span<const audit::Hash> proof) {
  std::vector<std::uint8_t> input = {kind, a, b};
  const std::vector<std::uint8_t> bytes = audit::ProofToBytes(proof);
  input.insert(input.end(), bytes.begin(), bytes.end());
  return input;
}

}  // namespace coffre::fuzz

#endif  // COFFRE_TESTS_FUZZ_AUDIT_FUZZ_INPUTS_H_
