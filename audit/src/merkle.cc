#include "coffre/audit/merkle.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "coffre/crypto/secret_bytes.h"
#include "sha256.h"

namespace coffre::audit {
namespace {

constexpr std::uint8_t kLeafPrefix = 0x00;
constexpr std::uint8_t kNodePrefix = 0x01;

// One context for every verification failure: a proof is right or it is not.
constexpr const char* kProofFailed = "merkle: proof does not verify";

Status ProofFailed() { return Fail(ErrorCode::kAuthenticationFailed, kProofFailed); }

bool SameHash(const Hash& a, const Hash& b) { return crypto::ConstantTimeEquals(a, b); }

// Appends the perfect subtrees of [begin, end) to `nodes`, smallest (rightmost) first.
// `begin` is aligned on a power of two larger than end - begin, so every piece is an
// aligned perfect subtree: one per bit set in the length.
void AppendRange(std::uint64_t begin, std::uint64_t end, std::vector<NodeId>& nodes) {
  const std::uint64_t length = end - begin;
  std::uint64_t position = end;
  for (std::uint8_t level = 0; level < 64 && (length >> level) != 0; ++level) {
    if (((length >> level) & 1) == 0) continue;
    position -= std::uint64_t{1} << level;
    nodes.push_back(NodeId{level, position >> level});
  }
}

// The siblings, from `level0` up, on the path of node (level0, index) in the tree of
// `tree_size` leaves: the audit path of RFC 9162 §2.1.3.1 for a leaf (level0 = 0), the
// tail of the consistency proof of §2.1.4.1 for the first tree's last perfect subtree.
//
// Below the level where the paths of `index` and of the last leaf part (`inner` levels up)
// every sibling is a complete subtree. At that level the sibling is the right child that
// holds the last leaf: a border node when the tree ends inside it, stored as its perfect
// pieces. Above it the paths coincide and only the left siblings exist.
void AppendPath(std::uint8_t level0, std::uint64_t index, std::uint64_t tree_size,
                ProofPlan& plan) {
  const std::uint64_t last = (tree_size - 1) >> level0;
  const int inner = static_cast<int>(std::bit_width(index ^ last));
  for (int up = 0; up < inner; ++up) {
    const auto level = static_cast<std::uint8_t>(level0 + up);
    const std::uint64_t sibling = (index >> up) ^ 1;
    if (up + 1 < inner) {
      plan.nodes.push_back(NodeId{level, sibling});
      continue;
    }
    const std::uint64_t begin = sibling << level;
    const std::uint64_t end = std::min(begin + (std::uint64_t{1} << level), tree_size);
    const std::size_t before = plan.nodes.size();
    AppendRange(begin, end, plan.nodes);
    if (plan.nodes.size() - before >= 2) {
      plan.fold_begin = before;
      plan.fold_end = plan.nodes.size();
    }
  }
  for (int up = inner; up < 64 && (index >> up) != 0; ++up) {
    if (((index >> up) & 1) != 0) {
      plan.nodes.push_back(NodeId{static_cast<std::uint8_t>(level0 + up), (index >> up) ^ 1});
    }
  }
}

Hash FoldRange(std::span<const Hash> hashes) {
  Hash folded = hashes[0];
  for (std::size_t i = 1; i < hashes.size(); ++i) folded = HashChildren(hashes[i], folded);
  return folded;
}

// Checks the size against the reader's and reads `ids`.
Result<std::vector<Hash>> ReadStored(const NodeReader& reader, std::uint64_t needed_size,
                                     std::span<const NodeId> ids) {
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t stored, reader.TreeSize());
  if (needed_size > stored) {
    return Fail(ErrorCode::kNotFound, "merkle: tree size beyond the stored tree");
  }
  std::vector<Hash> hashes(ids.size());
  COFFRE_RETURN_IF_ERROR(reader.ReadNodes(ids, hashes));
  return hashes;
}

Hash MerkleRootOf(std::span<const Hash> leaves) {
  if (leaves.size() == 1) return leaves[0];
  // k: the largest power of two smaller than n (RFC 9162 §2.1.1).
  const std::size_t split = std::bit_floor(leaves.size() - 1);
  return HashChildren(MerkleRootOf(leaves.first(split)), MerkleRootOf(leaves.subspan(split)));
}

}  // namespace

Hash HashLeaf(std::span<const std::uint8_t> entry) {
  const std::uint8_t prefix[1] = {kLeafPrefix};
  return internal::Sha256({prefix, entry});
}

Hash HashChildren(const Hash& left, const Hash& right) {
  const std::uint8_t prefix[1] = {kNodePrefix};
  return internal::Sha256({prefix, left, right});
}

Hash EmptyRoot() { return internal::Sha256({}); }

Hash MerkleRoot(std::span<const Hash> leaf_hashes) {
  if (leaf_hashes.empty()) return EmptyRoot();
  return MerkleRootOf(leaf_hashes);
}

Result<Hash> HashFromBytes(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != kHashSize) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: a hash is 32 bytes");
  }
  Hash hash;
  std::memcpy(hash.data(), bytes.data(), kHashSize);
  return hash;
}

Result<std::vector<Hash>> ProofFromBytes(std::span<const std::uint8_t> bytes) {
  if (bytes.size() % kHashSize != 0) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: a proof is a whole number of hashes");
  }
  if (bytes.size() / kHashSize > kMaxProofHashes) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: proof longer than any valid proof");
  }
  std::vector<Hash> proof(bytes.size() / kHashSize);
  for (std::size_t i = 0; i < proof.size(); ++i) {
    std::memcpy(proof[i].data(), bytes.data() + i * kHashSize, kHashSize);
  }
  return proof;
}

std::vector<std::uint8_t> ProofToBytes(std::span<const Hash> proof) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(proof.size() * kHashSize);
  for (const Hash& hash : proof) bytes.insert(bytes.end(), hash.begin(), hash.end());
  return bytes;
}

// RFC 9162 §2.1.3.2, step by step.
Status VerifyInclusion(std::uint64_t leaf_index, std::uint64_t tree_size, const Hash& leaf_hash,
                       std::span<const Hash> proof, const Hash& root) {
  // Step 1 (and the size bounds of this module).
  if (tree_size == 0 || tree_size > kMaxTreeSize || leaf_index >= tree_size) return ProofFailed();
  if (proof.size() > kMaxProofHashes) return ProofFailed();
  // Steps 2 and 3.
  std::uint64_t fn = leaf_index;
  std::uint64_t sn = tree_size - 1;
  Hash r = leaf_hash;
  // Step 4.
  for (const Hash& p : proof) {
    if (sn == 0) return ProofFailed();
    if ((fn & 1) != 0 || fn == sn) {
      r = HashChildren(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Step 5.
  if (sn != 0 || !SameHash(r, root)) return ProofFailed();
  return Ok();
}

// RFC 9162 §2.1.4.2, step by step; the prepended first_hash of step 2 is read in place.
Status VerifyConsistency(std::uint64_t first_size, std::uint64_t second_size,
                         std::span<const Hash> proof, const Hash& first_root,
                         const Hash& second_root) {
  if (first_size == 0 || first_size > second_size || second_size > kMaxTreeSize) {
    return ProofFailed();
  }
  if (first_size == second_size) {
    if (!proof.empty() || !SameHash(first_root, second_root)) return ProofFailed();
    return Ok();
  }
  // Step 1.
  if (proof.empty() || proof.size() > kMaxProofHashes) return ProofFailed();
  // Step 2: the path is [first_root] + proof when first_size is a power of two.
  const bool prepend = std::has_single_bit(first_size);
  const std::size_t path_size = proof.size() + (prepend ? 1 : 0);
  const auto path = [&](std::size_t i) -> const Hash& {
    if (prepend) return i == 0 ? first_root : proof[i - 1];
    return proof[i];
  };
  // Steps 3 and 4.
  std::uint64_t fn = first_size - 1;
  std::uint64_t sn = second_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  // Step 5.
  Hash fr = path(0);
  Hash sr = path(0);
  // Step 6.
  for (std::size_t i = 1; i < path_size; ++i) {
    const Hash& c = path(i);
    if (sn == 0) return ProofFailed();
    if ((fn & 1) != 0 || fn == sn) {
      fr = HashChildren(c, fr);
      sr = HashChildren(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = HashChildren(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Step 7.
  const bool first_ok = SameHash(fr, first_root);
  const bool second_ok = SameHash(sr, second_root);
  if (!first_ok || !second_ok || sn != 0) return ProofFailed();
  return Ok();
}

Result<ProofPlan> PlanInclusionProof(std::uint64_t leaf_index, std::uint64_t tree_size) {
  if (tree_size == 0 || tree_size > kMaxTreeSize) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: tree size out of range");
  }
  if (leaf_index >= tree_size) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: leaf index not below the tree size");
  }
  ProofPlan plan;
  AppendPath(0, leaf_index, tree_size, plan);
  return plan;
}

// RFC 9162 §2.1.4.1 descends from the root until the first tree is a whole node: that node
// is the first tree's last perfect subtree, (ctz(m), (m - 1) >> ctz(m)). SUBPROOF leaves it
// out when it is the whole first tree (m a power of two, b = true); the rest of the proof
// is that node's path in the second tree.
Result<ProofPlan> PlanConsistencyProof(std::uint64_t first_size, std::uint64_t second_size) {
  if (second_size > kMaxTreeSize) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: tree size out of range");
  }
  if (first_size == 0 || first_size > second_size) {
    return Fail(ErrorCode::kInvalidArgument,
                "merkle: consistency needs 0 < first size <= second size");
  }
  ProofPlan plan;
  if (first_size == second_size) return plan;
  const auto level = static_cast<std::uint8_t>(std::countr_zero(first_size));
  const std::uint64_t index = (first_size - 1) >> level;
  if (index != 0) plan.nodes.push_back(NodeId{level, index});
  AppendPath(level, index, second_size, plan);
  return plan;
}

std::vector<NodeId> RootNodes(std::uint64_t tree_size) {
  std::vector<NodeId> nodes;
  if (tree_size > kMaxTreeSize) return nodes;
  AppendRange(0, tree_size, nodes);
  return nodes;
}

Hash FoldRootNodes(std::span<const Hash> hashes) {
  if (hashes.empty()) return EmptyRoot();
  return FoldRange(hashes);
}

Result<std::vector<Hash>> AssembleProof(const ProofPlan& plan, std::span<const Hash> node_hashes) {
  if (node_hashes.size() != plan.nodes.size() || plan.fold_begin > plan.fold_end ||
      plan.fold_end > plan.nodes.size()) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: node hashes do not match the proof plan");
  }
  std::vector<Hash> proof;
  proof.reserve(node_hashes.size());
  proof.insert(proof.end(), node_hashes.begin(),
               node_hashes.begin() + static_cast<std::ptrdiff_t>(plan.fold_begin));
  if (plan.fold_end > plan.fold_begin) {
    proof.push_back(
        FoldRange(node_hashes.subspan(plan.fold_begin, plan.fold_end - plan.fold_begin)));
  }
  proof.insert(proof.end(), node_hashes.begin() + static_cast<std::ptrdiff_t>(plan.fold_end),
               node_hashes.end());
  return proof;
}

Result<Hash> RootAt(const NodeReader& reader, std::uint64_t tree_size) {
  if (tree_size > kMaxTreeSize) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: tree size out of range");
  }
  const std::vector<NodeId> nodes = RootNodes(tree_size);
  COFFRE_ASSIGN_OR_RETURN(const std::vector<Hash> hashes, ReadStored(reader, tree_size, nodes));
  return FoldRootNodes(hashes);
}

Result<std::vector<Hash>> InclusionProof(const NodeReader& reader, std::uint64_t leaf_index,
                                         std::uint64_t tree_size) {
  COFFRE_ASSIGN_OR_RETURN(const ProofPlan plan, PlanInclusionProof(leaf_index, tree_size));
  COFFRE_ASSIGN_OR_RETURN(const std::vector<Hash> hashes,
                          ReadStored(reader, tree_size, plan.nodes));
  return AssembleProof(plan, hashes);
}

Result<std::vector<Hash>> ConsistencyProof(const NodeReader& reader, std::uint64_t first_size,
                                           std::uint64_t second_size) {
  COFFRE_ASSIGN_OR_RETURN(const ProofPlan plan, PlanConsistencyProof(first_size, second_size));
  COFFRE_ASSIGN_OR_RETURN(const std::vector<Hash> hashes,
                          ReadStored(reader, second_size, plan.nodes));
  return AssembleProof(plan, hashes);
}

// --- TreeFrontier ------------------------------------------------------------------------------

Result<TreeFrontier> TreeFrontier::FromRootNodes(std::uint64_t tree_size,
                                                 std::span<const Hash> hashes) {
  if (tree_size > kMaxTreeSize) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: tree size out of range");
  }
  if (hashes.size() != static_cast<std::size_t>(std::popcount(tree_size))) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: one hash per root node is needed");
  }
  TreeFrontier frontier;
  frontier.size_ = tree_size;
  frontier.nodes_.assign(hashes.rbegin(), hashes.rend());
  return frontier;
}

Hash TreeFrontier::Root() const {
  if (nodes_.empty()) return EmptyRoot();
  Hash root = nodes_.back();
  for (std::size_t i = nodes_.size() - 1; i-- > 0;) root = HashChildren(nodes_[i], root);
  return root;
}

Result<std::vector<std::pair<NodeId, Hash>>> TreeFrontier::Append(const Hash& leaf_hash) {
  if (size_ >= kMaxTreeSize) {
    return Fail(ErrorCode::kResourceExhausted, "merkle: the tree is full");
  }
  std::vector<std::pair<NodeId, Hash>> completed;
  completed.emplace_back(NodeId{0, size_}, leaf_hash);
  // Each bit set at the bottom of size_ is a left sibling waiting for this leaf's subtree.
  Hash node = leaf_hash;
  std::uint8_t level = 0;
  while (((size_ >> level) & 1) != 0) {
    node = HashChildren(nodes_.back(), node);
    nodes_.pop_back();
    ++level;
    completed.emplace_back(NodeId{level, ((size_ + 1) >> level) - 1}, node);
  }
  nodes_.push_back(node);
  ++size_;
  return completed;
}

// --- MerkleTree --------------------------------------------------------------------------------

Result<std::uint64_t> MerkleTree::Append(std::span<const std::uint8_t> entry) {
  return AppendLeafHash(HashLeaf(entry));
}

Result<std::uint64_t> MerkleTree::AppendLeafHash(const Hash& leaf_hash) {
  const std::uint64_t index = size();
  if (index >= kMaxTreeSize) {
    return Fail(ErrorCode::kResourceExhausted, "merkle: the tree is full");
  }
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].push_back(leaf_hash);
  // An even count at a level means its last node just became a right child: its parent is
  // complete.
  for (std::size_t level = 0; levels_[level].size() % 2 == 0; ++level) {
    if (levels_.size() == level + 1) levels_.emplace_back();
    const std::vector<Hash>& row = levels_[level];
    const Hash parent = HashChildren(row[row.size() - 2], row[row.size() - 1]);
    levels_[level + 1].push_back(parent);
  }
  return index;
}

Hash MerkleTree::Root() const {
  const std::vector<NodeId> nodes = RootNodes(size());
  std::vector<Hash> hashes;
  hashes.reserve(nodes.size());
  for (const NodeId& id : nodes) hashes.push_back(levels_[id.level][id.index]);
  return FoldRootNodes(hashes);
}

Result<Hash> MerkleTree::LeafHash(std::uint64_t index) const {
  if (index >= size()) return Fail(ErrorCode::kNotFound, "merkle: no such leaf");
  return levels_[0][index];
}

Status MerkleTree::ReadNodes(std::span<const NodeId> ids, std::span<Hash> out) const {
  if (ids.size() != out.size()) {
    return Fail(ErrorCode::kInvalidArgument, "merkle: one output per node is needed");
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const NodeId& id = ids[i];
    if (id.level >= levels_.size() || id.index >= levels_[id.level].size()) {
      return Fail(ErrorCode::kNotFound, "merkle: node not stored");
    }
    out[i] = levels_[id.level][id.index];
  }
  return Ok();
}

}  // namespace coffre::audit
