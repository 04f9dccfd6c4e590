// The audit log's Merkle tree: RFC 6962 hashing, inclusion and consistency proofs made and
// checked with the algorithms of RFC 9162 §2.1.
//
// Hashing (RFC 6962 §2.1, RFC 9162 §2.1.1):
//     leaf hash = SHA-256(0x00 || entry)
//     node hash = SHA-256(0x01 || left || right)
//     root of the empty tree = SHA-256("")
// The tree over n leaves splits at k, the largest power of two below n: left D[0:k],
// right D[k:n].
//
// Storage layout. Every node of that tree is either a perfect subtree aligned on its size
// or lies on the right border of the tree. A perfect subtree is addressed by
//     NodeId (level, index): the 2^level leaves [index * 2^level, (index + 1) * 2^level)
// so (0, i) is the hash of leaf i and (level, index) = HashChildren((level - 1, 2 index),
// (level - 1, 2 index + 1)). Once its last leaf is appended a perfect subtree never changes,
// so a store keeps exactly these hashes, keyed by (level, index) — in SQLite
//     audit_nodes(level INTEGER, idx INTEGER, hash BLOB (32), PRIMARY KEY (level, idx))
// — and writes, with leaf i, the nodes that leaf completes (TreeFrontier::Append lists them:
// two per leaf on average). Border nodes are never stored: a proof or a root at any size n
// up to the stored size folds the perfect subtrees of its right edge (RootNodes), so every
// root and proof reads O(log n) stored hashes (about 2 log2 n at most) and hashes no leaf.
//
// Generation is split so that a store can serve it in one read: Plan*Proof says which
// stored nodes a proof is made of, the store reads them, AssembleProof folds the border
// ones. InclusionProof / ConsistencyProof / RootAt do the three steps over a NodeReader,
// which MerkleTree (in memory) implements and a persistent store can too. Measured at one
// million entries: under 1 µs per proof from MerkleTree; one SQLCipher SELECT per node
// costs 3 to 6 µs, 24 of them a proof, so a store that serves proofs from disk should keep
// the upper levels in memory or read a proof's nodes in one query.
//
// Sizes and indices are at most kMaxTreeSize (2^63 - 1), so they fit the signed 64-bit
// integers of SQLite and of the checkpoint parser.
#ifndef COFFRE_AUDIT_MERKLE_H_
#define COFFRE_AUDIT_MERKLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "coffre/base/result.h"

namespace coffre::audit {

inline constexpr std::size_t kHashSize = 32;
using Hash = std::array<std::uint8_t, kHashSize>;

inline constexpr std::uint64_t kMaxTreeSize = (std::uint64_t{1} << 63) - 1;
// The longest proof for a tree of at most kMaxTreeSize leaves: an inclusion proof has at
// most 63 hashes, a consistency proof at most 64 (the first tree's last subtree and 63).
inline constexpr std::size_t kMaxProofHashes = 64;

// --- Hashing --------------------------------------------------------------------------------

// SHA-256(0x00 || entry). Never fails.
Hash HashLeaf(std::span<const std::uint8_t> entry);
// SHA-256(0x01 || left || right). Never fails.
Hash HashChildren(const Hash& left, const Hash& right);
// SHA-256 of the empty string: the root of the tree of size 0.
Hash EmptyRoot();
// MTH of RFC 9162 §2.1.1 over `leaf_hashes` (already leaf-hashed), computed from the
// definition; EmptyRoot() for none. O(n): for tests and small trees, not for the log.
Hash MerkleRoot(std::span<const Hash> leaf_hashes);

// --- Proofs as bytes ------------------------------------------------------------------------

// `bytes` as a hash. Fails with kInvalidArgument unless it is exactly kHashSize bytes.
Result<Hash> HashFromBytes(std::span<const std::uint8_t> bytes);
// A proof sent as its hashes concatenated. Fails with kInvalidArgument when the length is
// not a multiple of kHashSize or holds more than kMaxProofHashes hashes.
Result<std::vector<Hash>> ProofFromBytes(std::span<const std::uint8_t> bytes);
std::vector<std::uint8_t> ProofToBytes(std::span<const Hash> proof);

// --- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------

// Ok() when `proof` proves that the leaf whose hash is `leaf_hash` is leaf `leaf_index` of
// the tree of `tree_size` leaves whose root is `root`. Every failure — index >= size, size
// 0 or above kMaxTreeSize, proof too long or too short, a wrong hash anywhere — returns
// kAuthenticationFailed with one context.
Status VerifyInclusion(std::uint64_t leaf_index, std::uint64_t tree_size, const Hash& leaf_hash,
                       std::span<const Hash> proof, const Hash& root);

// Ok() when `proof` proves that the tree of `first_size` leaves with root `first_root` is a
// prefix of the tree of `second_size` leaves with root `second_root`. RFC 9162 defines the
// proof for 0 < first < second; equal sizes are consistent exactly when the proof is empty
// and the roots are equal. Every failure — first 0 (nothing to prove: the first checkpoint
// a client sees is trusted for its signature alone), first > second, a size above
// kMaxTreeSize, a proof of the wrong length, a wrong hash — returns kAuthenticationFailed
// with one context.
Status VerifyConsistency(std::uint64_t first_size, std::uint64_t second_size,
                         std::span<const Hash> proof, const Hash& first_root,
                         const Hash& second_root);

// --- Generation over stored perfect subtrees --------------------------------------------------

struct NodeId {
  std::uint8_t level = 0;  // 0..62
  std::uint64_t index = 0;

  bool operator==(const NodeId&) const = default;
};

// The stored nodes a proof is made of, in proof order, except that nodes[fold_begin,
// fold_end) — when that range holds two nodes or more — are the perfect subtrees of one
// border node, smallest (rightmost) first: they fold into the single proof hash
//     h = nodes[fold_begin]; h = HashChildren(nodes[i], h) for each next i.
// A proof has at most one border node (RFC 9162 §2.1.3.1 and §2.1.4.1 only ever split a
// border node into a perfect left part and the rest).
struct ProofPlan {
  std::vector<NodeId> nodes;
  std::size_t fold_begin = 0;
  std::size_t fold_end = 0;
};

// The plan of PATH(leaf_index, D[tree_size]) (RFC 9162 §2.1.3.1). Fails with
// kInvalidArgument when tree_size is 0 or above kMaxTreeSize, or leaf_index >= tree_size.
Result<ProofPlan> PlanInclusionProof(std::uint64_t leaf_index, std::uint64_t tree_size);
// The plan of PROOF(first_size, D[second_size]) (RFC 9162 §2.1.4.1); empty when the sizes
// are equal. Fails with kInvalidArgument when first_size is 0, first_size > second_size, or
// second_size is above kMaxTreeSize.
Result<ProofPlan> PlanConsistencyProof(std::uint64_t first_size, std::uint64_t second_size);
// The perfect subtrees whose concatenation is the tree of `tree_size` leaves, smallest
// (rightmost) first: one per bit set in tree_size. The root folds them as a ProofPlan's
// fold range does; empty for size 0. Requires tree_size <= kMaxTreeSize (larger sizes give
// an empty list).
std::vector<NodeId> RootNodes(std::uint64_t tree_size);
// Folds hashes listed as RootNodes lists them: EmptyRoot() for none.
Hash FoldRootNodes(std::span<const Hash> hashes);
// The proof from the hashes of plan.nodes, read in the same order. Fails with
// kInvalidArgument when node_hashes does not have one hash per node.
Result<std::vector<Hash>> AssembleProof(const ProofPlan& plan, std::span<const Hash> node_hashes);

// What a tree store provides for proofs: the hashes of its perfect subtrees. Implemented by
// MerkleTree and by a persistent store that keeps the layout of the file comment.
class NodeReader {
 public:
  virtual ~NodeReader() = default;
  // The number of leaves stored.
  virtual Result<std::uint64_t> TreeSize() const = 0;
  // Fills out[i] with the hash of ids[i]; `out` has ids.size() elements. Every id asked by
  // the functions below is a complete subtree of the stored tree. Fails with kNotFound for
  // a node not stored, or with the store's own error.
  virtual Status ReadNodes(std::span<const NodeId> ids, std::span<Hash> out) const = 0;
};

// The root of the first `tree_size` leaves of the stored tree. Fails with kInvalidArgument
// above kMaxTreeSize, kNotFound beyond the stored size, or with the reader's error.
Result<Hash> RootAt(const NodeReader& reader, std::uint64_t tree_size);
// The inclusion proof of leaf `leaf_index` in the tree of its first `tree_size` leaves.
// Fails as PlanInclusionProof does, with kNotFound beyond the stored size, or with the
// reader's error.
Result<std::vector<Hash>> InclusionProof(const NodeReader& reader, std::uint64_t leaf_index,
                                         std::uint64_t tree_size);
// The consistency proof between the trees of the first `first_size` and `second_size`
// leaves. Fails as PlanConsistencyProof does, with kNotFound beyond the stored size, or
// with the reader's error.
Result<std::vector<Hash>> ConsistencyProof(const NodeReader& reader, std::uint64_t first_size,
                                           std::uint64_t second_size);

// --- Appending --------------------------------------------------------------------------------

// The right edge of a tree (its RootNodes hashes): all a writer keeps in memory to append
// leaves and to know the root, whatever the size. A persistent store loads it once and
// writes, with each leaf, the nodes Append returns.
class TreeFrontier {
 public:
  // The empty tree.
  TreeFrontier() = default;
  // The frontier of a stored tree of `tree_size` leaves from the hashes of
  // RootNodes(tree_size), in that order. Fails with kInvalidArgument when the count does
  // not match or tree_size is above kMaxTreeSize.
  static Result<TreeFrontier> FromRootNodes(std::uint64_t tree_size, std::span<const Hash> hashes);

  std::uint64_t size() const { return size_; }
  Hash Root() const;

  // Appends leaf size() and returns the nodes it completes, to be stored with it: the leaf
  // itself (level 0) first, then one node per level it closes. Fails with
  // kResourceExhausted when the tree already holds kMaxTreeSize leaves.
  Result<std::vector<std::pair<NodeId, Hash>>> Append(const Hash& leaf_hash);

 private:
  std::uint64_t size_ = 0;
  // Hashes of RootNodes(size_), largest first (the order they were completed in).
  std::vector<Hash> nodes_;
};

// An in-memory tree that keeps every perfect subtree level by level (the stored layout of
// the file comment, 64 bytes per leaf), so that roots and proofs at any earlier size cost
// O(log n) lookups. Not thread-safe: one writer, or readers with no writer.
class MerkleTree final : public NodeReader {
 public:
  MerkleTree() = default;

  std::uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }

  // Appends one leaf and returns its index. Fails with kResourceExhausted at kMaxTreeSize
  // leaves.
  Result<std::uint64_t> Append(std::span<const std::uint8_t> entry);
  Result<std::uint64_t> AppendLeafHash(const Hash& leaf_hash);

  // The root at the current size (EmptyRoot() when empty).
  Hash Root() const;
  // Fails with kNotFound when index >= size().
  Result<Hash> LeafHash(std::uint64_t index) const;

  Result<std::uint64_t> TreeSize() const override { return size(); }
  Status ReadNodes(std::span<const NodeId> ids, std::span<Hash> out) const override;

 private:
  // levels_[l][i] is node (l, i); only complete nodes are kept.
  std::vector<std::vector<Hash>> levels_;
};

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_MERKLE_H_
