// Fuzz target: audit::ProofFromBytes and audit::VerifyInclusion / VerifyConsistency on
// proofs from the input, against the fixed tree of audit_fuzz_inputs.h and its true roots
// (proofs come from the relay and inside export bundles).
//
// Input layout: audit_fuzz_inputs.h, MerkleFuzzInput.
//
// Invariants (a broken one aborts: it is a finding):
//   - ProofFromBytes refuses (kInvalidArgument) exactly the lengths that are not a whole
//     number of hashes or hold more than kMaxProofHashes;
//   - every verification failure is kAuthenticationFailed;
//   - a proof is accepted only for parameters inside the tree (or equal sizes with an empty
//     proof), and only if it is the proof the tree itself makes (for a true root there is
//     one valid proof: any other accepted would be a forgery).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "audit_fuzz_inputs.h"
#include "coffre/audit/merkle.h"

namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "merkle_proof_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The root at `size`, or the empty root beyond the tree (a root no proof leads to).
coffre::audit::Hash RootOrEmpty(std::uint64_t size) {
  const auto root = coffre::audit::RootAt(coffre::fuzz::AuditFuzzTree(), size);
  return root ? *root : coffre::audit::EmptyRoot();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::audit;
  using coffre::ErrorCode;
  if (size < 3) return 0;
  const std::span<const std::uint8_t> input(data, size);
  const std::span<const std::uint8_t> proof_bytes = input.subspan(3);
  const auto proof = ProofFromBytes(proof_bytes);
  const bool parses =
      proof_bytes.size() % kHashSize == 0 && proof_bytes.size() / kHashSize <= kMaxProofHashes;
  Require(proof.has_value() == parses, "ProofFromBytes refuses exactly the bad lengths");
  if (!proof) {
    Require(proof.error().code() == ErrorCode::kInvalidArgument, "refused with kInvalidArgument");
    return 0;
  }
  const MerkleTree& tree = coffre::fuzz::AuditFuzzTree();
  const std::uint64_t a = input[1];
  const std::uint64_t b = input[2];
  if (input[0] % 2 == 0) {
    const std::uint64_t index = a;
    const std::uint64_t tree_size = b;
    const auto leaf = tree.LeafHash(index);
    const Hash leaf_hash = leaf ? *leaf : EmptyRoot();
    const coffre::Status verified =
        VerifyInclusion(index, tree_size, leaf_hash, *proof, RootOrEmpty(tree_size));
    if (!verified) {
      Require(verified.error().code() == ErrorCode::kAuthenticationFailed,
              "inclusion failures are kAuthenticationFailed");
      return 0;
    }
    Require(tree_size <= tree.size() && index < tree_size, "accepted only inside the tree");
    const auto real = InclusionProof(tree, index, tree_size);
    Require(real.has_value() && *real == *proof, "the only accepted proof is the tree's");
  } else {
    const std::uint64_t first = a;
    const std::uint64_t second = b;
    const coffre::Status verified =
        VerifyConsistency(first, second, *proof, RootOrEmpty(first), RootOrEmpty(second));
    if (!verified) {
      Require(verified.error().code() == ErrorCode::kAuthenticationFailed,
              "consistency failures are kAuthenticationFailed");
      return 0;
    }
    if (first == second) {
      // Equal sizes with equal roots are consistent whatever the tree: the proof is empty.
      Require(first > 0 && proof->empty(), "equal sizes are accepted with an empty proof only");
      return 0;
    }
    Require(second <= tree.size() && 0 < first && first < second, "accepted only inside the tree");
    const auto real = ConsistencyProof(tree, first, second);
    Require(real.has_value() && *real == *proof, "the only accepted proof is the tree's");
  }
  return 0;
}
