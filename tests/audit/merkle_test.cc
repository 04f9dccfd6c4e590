#include "coffre/audit/merkle.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/vectors.h"

namespace coffre::audit {
namespace {

using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;
using coffre::testing::VectorBlock;

constexpr const char* kVectorDir = "rfc6962-merkle-transparency-dev/";

Hash HashFromHex(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = FromHex(hex);
  Hash hash{};
  EXPECT_EQ(bytes.size(), kHashSize) << hex;
  if (bytes.size() == kHashSize) std::memcpy(hash.data(), bytes.data(), kHashSize);
  return hash;
}

std::vector<Hash> ProofFromHex(const std::string& hex) {
  const std::vector<std::uint8_t> bytes = FromHex(hex);
  auto proof = ProofFromBytes(bytes);
  EXPECT_TRUE(proof.has_value()) << hex;
  return proof ? *proof : std::vector<Hash>{};
}

std::uint64_t Number(const VectorBlock& block, const char* key) {
  return std::stoull(block.at(key));
}

std::vector<std::vector<std::uint8_t>> ReferenceLeaves() {
  std::vector<std::vector<std::uint8_t>> leaves;
  for (const VectorBlock& block : ReadVectorFile(std::string(kVectorDir) + "leaves.txt")) {
    EXPECT_EQ(Number(block, "INDEX"), leaves.size());
    leaves.push_back(FromHex(block.at("INPUT")));
  }
  EXPECT_EQ(leaves.size(), 8u);
  return leaves;
}

std::vector<Hash> ReferenceRoots() {
  std::vector<Hash> roots;
  for (const VectorBlock& block : ReadVectorFile(std::string(kVectorDir) + "roots.txt")) {
    EXPECT_EQ(Number(block, "SIZE"), roots.size());
    roots.push_back(HashFromHex(block.at("ROOT")));
  }
  EXPECT_EQ(roots.size(), 9u);
  return roots;
}

MerkleTree ReferenceTree() {
  MerkleTree tree;
  for (const auto& leaf : ReferenceLeaves()) EXPECT_TRUE(tree.Append(leaf).has_value());
  return tree;
}

void ExpectRefused(const Status& status) {
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(status.error().context(), "merkle: proof does not verify");
}

// --- The definitions of RFC 9162 §2.1.3.1 and §2.1.4.1, written out recursively, to check
// the stored-node planner against. -------------------------------------------------------------

std::size_t Split(std::size_t n) { return std::bit_floor(n - 1); }

std::vector<Hash> RfcPath(std::size_t m, std::span<const Hash> d) {
  if (d.size() == 1) return {};
  const std::size_t k = Split(d.size());
  std::vector<Hash> path;
  if (m < k) {
    path = RfcPath(m, d.first(k));
    path.push_back(MerkleRoot(d.subspan(k)));
  } else {
    path = RfcPath(m - k, d.subspan(k));
    path.push_back(MerkleRoot(d.first(k)));
  }
  return path;
}

std::vector<Hash> RfcSubproof(std::size_t m, std::span<const Hash> d, bool b) {
  if (m == d.size()) return b ? std::vector<Hash>{} : std::vector<Hash>{MerkleRoot(d)};
  const std::size_t k = Split(d.size());
  std::vector<Hash> proof;
  if (m <= k) {
    proof = RfcSubproof(m, d.first(k), b);
    proof.push_back(MerkleRoot(d.subspan(k)));
  } else {
    proof = RfcSubproof(m - k, d.subspan(k), false);
    proof.push_back(MerkleRoot(d.first(k)));
  }
  return proof;
}

std::vector<Hash> RfcProof(std::size_t m, std::span<const Hash> d) {
  return RfcSubproof(m, d, true);
}

// ---------------------------------------------------------------------------------------------
// Known answers

TEST(MerkleKatTest, EmptyRootIsSha256OfTheEmptyString) {
  EXPECT_EQ(EmptyRoot(), ReferenceRoots()[0]);
  EXPECT_EQ(MerkleRoot({}), ReferenceRoots()[0]);
  EXPECT_EQ(MerkleTree().Root(), ReferenceRoots()[0]);
  EXPECT_EQ(TreeFrontier().Root(), ReferenceRoots()[0]);
}

TEST(MerkleKatTest, RootsOfZeroToEightLeavesMatchTheReference) {
  const auto leaves = ReferenceLeaves();
  const auto roots = ReferenceRoots();
  std::vector<Hash> leaf_hashes;
  MerkleTree tree;
  TreeFrontier frontier;
  for (std::size_t size = 0; size <= leaves.size(); ++size) {
    EXPECT_EQ(MerkleRoot(leaf_hashes), roots[size]) << size;
    EXPECT_EQ(tree.Root(), roots[size]) << size;
    EXPECT_EQ(frontier.Root(), roots[size]) << size;
    if (size == leaves.size()) break;
    leaf_hashes.push_back(HashLeaf(leaves[size]));
    ASSERT_TRUE(tree.Append(leaves[size]).has_value());
    ASSERT_TRUE(frontier.Append(leaf_hashes.back()).has_value());
  }
  // Every earlier root, read back from the full tree's stored nodes.
  for (std::size_t size = 0; size <= leaves.size(); ++size) {
    const auto root = RootAt(tree, size);
    ASSERT_TRUE(root.has_value()) << size;
    EXPECT_EQ(*root, roots[size]) << size;
  }
}

// The (level, index) layout of merkle.h is the one of the reference's NodeHashes().
TEST(MerkleKatTest, StoredNodesAreTheReferenceNodeHashes) {
  const MerkleTree tree = ReferenceTree();
  const auto blocks = ReadVectorFile(std::string(kVectorDir) + "nodes.txt");
  ASSERT_EQ(blocks.size(), 15u);
  std::map<std::pair<std::uint64_t, std::uint64_t>, Hash> expected;
  for (const VectorBlock& block : blocks) {
    const NodeId id{static_cast<std::uint8_t>(Number(block, "LEVEL")), Number(block, "INDEX")};
    Hash read{};
    ASSERT_TRUE(tree.ReadNodes(std::span(&id, 1), std::span(&read, 1)).has_value());
    EXPECT_EQ(read, HashFromHex(block.at("HASH"))) << int{id.level} << "." << id.index;
    expected[{id.level, id.index}] = read;
  }
  // A store fed by TreeFrontier::Append writes exactly these nodes, each once.
  TreeFrontier frontier;
  std::map<std::pair<std::uint64_t, std::uint64_t>, Hash> written;
  for (const auto& leaf : ReferenceLeaves()) {
    auto completed = frontier.Append(HashLeaf(leaf));
    ASSERT_TRUE(completed.has_value());
    for (const auto& [id, hash] : *completed) {
      EXPECT_TRUE(written.emplace(std::make_pair(id.level, id.index), hash).second);
    }
  }
  EXPECT_EQ(written, expected);
}

TEST(MerkleKatTest, InclusionProofsMatchTheReferenceAndVerify) {
  const MerkleTree tree = ReferenceTree();
  const auto leaves = ReferenceLeaves();
  const auto roots = ReferenceRoots();
  const auto blocks = ReadVectorFile(std::string(kVectorDir) + "inclusion.txt");
  ASSERT_EQ(blocks.size(), 5u);
  for (const VectorBlock& block : blocks) {
    const std::uint64_t index = Number(block, "INDEX");
    const std::uint64_t size = Number(block, "SIZE");
    const std::vector<Hash> expected = ProofFromHex(block.at("PROOF"));
    const auto proof = InclusionProof(tree, index, size);
    ASSERT_TRUE(proof.has_value()) << index << "/" << size;
    EXPECT_EQ(*proof, expected) << index << "/" << size;
    EXPECT_TRUE(
        VerifyInclusion(index, size, HashLeaf(leaves[index]), expected, roots[size]).has_value())
        << index << "/" << size;
  }
}

TEST(MerkleKatTest, ConsistencyProofsMatchTheReferenceAndVerify) {
  const MerkleTree tree = ReferenceTree();
  const auto roots = ReferenceRoots();
  const auto blocks = ReadVectorFile(std::string(kVectorDir) + "consistency.txt");
  ASSERT_EQ(blocks.size(), 5u);
  for (const VectorBlock& block : blocks) {
    const std::uint64_t first = Number(block, "SIZE1");
    const std::uint64_t second = Number(block, "SIZE2");
    const std::vector<Hash> expected = ProofFromHex(block.at("PROOF"));
    const auto proof = ConsistencyProof(tree, first, second);
    ASSERT_TRUE(proof.has_value()) << first << "->" << second;
    EXPECT_EQ(*proof, expected) << first << "->" << second;
    EXPECT_TRUE(VerifyConsistency(first, second, expected, roots[first], roots[second]).has_value())
        << first << "->" << second;
  }
}

std::vector<NodeId> ParseNodeIds(const std::string& text) {
  std::vector<NodeId> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    const auto dot = word.find('.');
    ids.push_back(NodeId{static_cast<std::uint8_t>(std::stoul(word.substr(0, dot))),
                         std::stoull(word.substr(dot + 1))});
  }
  return ids;
}

// Which stored nodes a proof reads: the node ids and rehash ranges of the reference suite.
TEST(MerkleKatTest, ProofPlansReadTheReferenceNodes) {
  const auto blocks = ReadVectorFile(std::string(kVectorDir) + "proof_nodes.txt");
  ASSERT_GE(blocks.size(), 40u);
  for (const VectorBlock& block : blocks) {
    const bool inclusion = block.at("KIND") == "inclusion";
    const auto plan = inclusion
                          ? PlanInclusionProof(Number(block, "INDEX"), Number(block, "SIZE"))
                          : PlanConsistencyProof(Number(block, "SIZE1"), Number(block, "SIZE2"));
    const std::string name = inclusion
                                 ? "inclusion " + block.at("INDEX") + "/" + block.at("SIZE")
                                 : "consistency " + block.at("SIZE1") + "->" + block.at("SIZE2");
    if (block.count("ERROR") != 0) {
      ASSERT_FALSE(plan.has_value()) << name;
      EXPECT_EQ(plan.error().code(), ErrorCode::kInvalidArgument) << name;
      continue;
    }
    ASSERT_TRUE(plan.has_value()) << name;
    EXPECT_EQ(plan->nodes, ParseNodeIds(block.at("NODES"))) << name;
    if (block.count("FOLD") != 0) {
      std::istringstream fold(block.at("FOLD"));
      std::size_t begin = 0;
      std::size_t end = 0;
      fold >> begin >> end;
      EXPECT_EQ(plan->fold_begin, begin) << name;
      EXPECT_EQ(plan->fold_end, end) << name;
    } else {
      EXPECT_EQ(plan->fold_begin, plan->fold_end) << name;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The mutations of the reference suite's corruptInclusionProof and corruptConsistencyProof,
// plus every single-bit change: none may verify.

const Hash kSomeHash =
    HashFromHex("abacaba000000000000000000000000000000000000000000060061e00123456");

std::vector<Hash> With(std::vector<Hash> proof, std::size_t at, const Hash& hash) {
  proof.insert(proof.begin() + static_cast<std::ptrdiff_t>(at), hash);
  return proof;
}

void FlipBit(Hash& hash, std::size_t bit) {
  hash[bit / 8] = static_cast<std::uint8_t>(hash[bit / 8] ^ (1u << (bit % 8)));
}

// Calls `check` with every copy of `hash` that differs in one bit.
template <typename Check>
void ForEveryBitFlip(const Hash& hash, Check check) {
  for (std::size_t bit = 0; bit < kHashSize * 8; ++bit) {
    Hash changed = hash;
    FlipBit(changed, bit);
    check(changed);
  }
}

// Calls `check` with every copy of `proof` that differs in one bit of one element.
template <typename Check>
void ForEveryBitFlip(const std::vector<Hash>& proof, Check check) {
  for (std::size_t element = 0; element < proof.size(); ++element) {
    ForEveryBitFlip(proof[element], [&](const Hash& changed_element) {
      std::vector<Hash> changed = proof;
      changed[element] = changed_element;
      check(changed);
    });
  }
}

TEST(MerkleMutationTest, EveryMutationOfAReferenceInclusionProofIsRefused) {
  const auto leaves = ReferenceLeaves();
  const auto roots = ReferenceRoots();
  for (const VectorBlock& block : ReadVectorFile(std::string(kVectorDir) + "inclusion.txt")) {
    const std::uint64_t index = Number(block, "INDEX");
    const std::uint64_t size = Number(block, "SIZE");
    const std::vector<Hash> proof = ProofFromHex(block.at("PROOF"));
    const Hash leaf = HashLeaf(leaves[index]);
    const Hash& root = roots[size];
    SCOPED_TRACE(::testing::Message() << "inclusion " << index << "/" << size);
    ASSERT_TRUE(VerifyInclusion(index, size, leaf, proof, root).has_value());

    // Wrong leaf index (index - 1 wraps around at 0, as the reference's unsigned one does).
    ExpectRefused(VerifyInclusion(index - 1, size, leaf, proof, root));
    ExpectRefused(VerifyInclusion(index + 1, size, leaf, proof, root));
    ExpectRefused(VerifyInclusion(index ^ 2, size, leaf, proof, root));
    // Wrong tree height.
    ExpectRefused(VerifyInclusion(index, size * 2, leaf, proof, root));
    ExpectRefused(VerifyInclusion(index, size / 2, leaf, proof, root));
    // Wrong leaf or root.
    const std::string_view wrong = "WrongLeaf";
    ExpectRefused(VerifyInclusion(
        index, size,
        HashLeaf(std::span(reinterpret_cast<const std::uint8_t*>(wrong.data()), wrong.size())),
        proof, root));
    ExpectRefused(VerifyInclusion(index, size, leaf, proof, EmptyRoot()));
    ExpectRefused(VerifyInclusion(index, size, leaf, proof, kSomeHash));
    // Garbage at either end. An empty element (the reference's []byte{}) cannot be a Hash;
    // as bytes it is a proof whose length is not a multiple of 32 (ProofBytesTest).
    ExpectRefused(VerifyInclusion(index, size, leaf, With(proof, proof.size(), root), root));
    ExpectRefused(VerifyInclusion(index, size, leaf, With(proof, 0, root), root));
    ExpectRefused(VerifyInclusion(index, size, leaf, With(proof, proof.size(), Hash{}), root));
    ExpectRefused(VerifyInclusion(index, size, leaf, With(proof, 0, Hash{}), root));
    // A component removed or inserted.
    if (!proof.empty()) {
      ExpectRefused(
          VerifyInclusion(index, size, leaf, std::span(proof).first(proof.size() - 1), root));
    }
    if (proof.size() > 1) {
      ExpectRefused(VerifyInclusion(index, size, leaf, With(proof, 1, kSomeHash), root));
    }
    // One bit anywhere: in each proof element (the reference flips bit 3 of byte 0), in the
    // leaf hash, in the root.
    ForEveryBitFlip(proof, [&](const std::vector<Hash>& changed) {
      ExpectRefused(VerifyInclusion(index, size, leaf, changed, root));
    });
    ForEveryBitFlip(leaf, [&](const Hash& changed) {
      ExpectRefused(VerifyInclusion(index, size, changed, proof, root));
    });
    ForEveryBitFlip(root, [&](const Hash& changed) {
      ExpectRefused(VerifyInclusion(index, size, leaf, proof, changed));
    });
  }
}

TEST(MerkleMutationTest, EveryMutationOfAReferenceConsistencyProofIsRefused) {
  const auto roots = ReferenceRoots();
  std::size_t mutated = 0;
  for (const VectorBlock& block : ReadVectorFile(std::string(kVectorDir) + "consistency.txt")) {
    const std::uint64_t first = Number(block, "SIZE1");
    const std::uint64_t second = Number(block, "SIZE2");
    const std::vector<Hash> proof = ProofFromHex(block.at("PROOF"));
    const Hash& root1 = roots[first];
    const Hash& root2 = roots[second];
    SCOPED_TRACE(::testing::Message() << "consistency " << first << "->" << second);
    ASSERT_TRUE(VerifyConsistency(first, second, proof, root1, root2).has_value());
    // As the reference: only non-trivial proofs (root1 != root2) are mutated.
    if (proof.empty()) continue;
    ++mutated;
    const std::string_view wrong = "WrongRoot";
    const Hash wrong_root =
        HashLeaf(std::span(reinterpret_cast<const std::uint8_t*>(wrong.data()), wrong.size()));
    ExpectRefused(VerifyConsistency(first - 1, second, proof, root1, root2));
    ExpectRefused(VerifyConsistency(first + 1, second, proof, root1, root2));
    ExpectRefused(VerifyConsistency(first ^ 2, second, proof, root1, root2));
    ExpectRefused(VerifyConsistency(first, second * 2, proof, root1, root2));
    ExpectRefused(VerifyConsistency(first, second / 2, proof, root1, root2));
    ExpectRefused(VerifyConsistency(first, second, proof, wrong_root, root2));
    ExpectRefused(VerifyConsistency(first, second, proof, root1, wrong_root));
    ExpectRefused(VerifyConsistency(first, second, proof, root2, root1));
    ExpectRefused(VerifyConsistency(first, second, {}, root1, root2));
    ExpectRefused(
        VerifyConsistency(first, second, With(proof, proof.size(), Hash{}), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, proof.size(), root1), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, proof.size(), root2), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, 0, Hash{}), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, 0, root1), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, 0, root2), root1, root2));
    ExpectRefused(VerifyConsistency(first, second, With(proof, 0, proof[0]), root1, root2));
    ExpectRefused(
        VerifyConsistency(first, second, std::span(proof).first(proof.size() - 1), root1, root2));
    ForEveryBitFlip(proof, [&](const std::vector<Hash>& changed) {
      ExpectRefused(VerifyConsistency(first, second, changed, root1, root2));
    });
    ForEveryBitFlip(root1, [&](const Hash& changed) {
      ExpectRefused(VerifyConsistency(first, second, proof, changed, root2));
    });
    ForEveryBitFlip(root2, [&](const Hash& changed) {
      ExpectRefused(VerifyConsistency(first, second, proof, root1, changed));
    });
  }
  EXPECT_EQ(mutated, 4u);
}

// ---------------------------------------------------------------------------------------------
// Edge cases, refused cleanly

TEST(MerkleVerifyTest, InclusionEdgeCasesAreRefused) {
  const Hash leaf = kSomeHash;
  // A one-leaf tree: the root is the leaf hash and the proof is empty.
  EXPECT_TRUE(VerifyInclusion(0, 1, leaf, {}, leaf).has_value());
  ExpectRefused(VerifyInclusion(0, 1, leaf, {}, EmptyRoot()));
  ExpectRefused(VerifyInclusion(0, 1, EmptyRoot(), {}, leaf));
  // Index at or past the size, size 0, even when the root "matches".
  for (const auto& [index, size] :
       std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 0}, {1, 0}, {1, 1}, {2, 1}}) {
    ExpectRefused(VerifyInclusion(index, size, leaf, {}, leaf));
    ExpectRefused(VerifyInclusion(index, size, leaf, {}, EmptyRoot()));
  }
  // Sizes past the bound, proofs longer than any valid one.
  ExpectRefused(VerifyInclusion(0, kMaxTreeSize + 1, leaf, {}, leaf));
  ExpectRefused(VerifyInclusion(0, ~std::uint64_t{0}, leaf, {}, leaf));
  ExpectRefused(VerifyInclusion(0, 2, leaf, std::vector<Hash>(kMaxProofHashes + 1), leaf));
  // Huge sizes with random proofs: refused, never a crash.
  std::mt19937_64 random(7);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t size = 1 + random() % kMaxTreeSize;
    std::vector<Hash> proof(random() % (kMaxProofHashes + 2));
    ExpectRefused(VerifyInclusion(random() % size, size, leaf, proof, leaf));
  }
}

TEST(MerkleVerifyTest, ConsistencyEdgeCasesAreRefused) {
  const Hash root1 = kSomeHash;
  const Hash root2 = EmptyRoot();
  // Equal sizes: consistent exactly when the roots are equal and the proof is empty.
  EXPECT_TRUE(VerifyConsistency(1, 1, {}, root1, root1).has_value());
  EXPECT_TRUE(VerifyConsistency(5, 5, {}, root2, root2).has_value());
  ExpectRefused(VerifyConsistency(1, 1, {}, root1, root2));
  ExpectRefused(VerifyConsistency(1, 1, std::vector<Hash>{root1}, root1, root1));
  // A first size of 0 is outside RFC 9162 (0 < first): refused whatever the roots.
  ExpectRefused(VerifyConsistency(0, 0, {}, root2, root2));
  ExpectRefused(VerifyConsistency(0, 1, {}, root2, root1));
  ExpectRefused(VerifyConsistency(0, 1, std::vector<Hash>{root2}, root2, root2));
  // Time travel.
  ExpectRefused(VerifyConsistency(1, 0, {}, root1, root2));
  ExpectRefused(VerifyConsistency(2, 1, {}, root1, root2));
  // Empty proof between different sizes.
  ExpectRefused(VerifyConsistency(1, 2, {}, root1, root2));
  // Bounds.
  ExpectRefused(VerifyConsistency(1, kMaxTreeSize + 1, std::vector<Hash>{root1}, root1, root2));
  ExpectRefused(VerifyConsistency(1, 3, std::vector<Hash>(kMaxProofHashes + 1), root1, root2));
  std::mt19937_64 random(11);
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t second = 2 + random() % (kMaxTreeSize - 1);
    const std::uint64_t first = 1 + random() % (second - 1);
    std::vector<Hash> proof(1 + random() % (kMaxProofHashes + 1));
    ExpectRefused(VerifyConsistency(first, second, proof, root1, root2));
  }
}

TEST(MerkleVerifyTest, VerificationIsTheSameForEveryFailure) {
  const Status a = VerifyInclusion(5, 3, kSomeHash, {}, kSomeHash);
  const Status b = VerifyConsistency(3, 2, {}, kSomeHash, kSomeHash);
  const Status c = VerifyInclusion(0, 2, kSomeHash, std::vector<Hash>{kSomeHash}, kSomeHash);
  for (const Status* status : {&a, &b, &c}) {
    ASSERT_FALSE(status->has_value());
    EXPECT_EQ(status->error().code(), ErrorCode::kAuthenticationFailed);
    EXPECT_EQ(status->error().context().data(), a.error().context().data());
  }
}

TEST(ProofBytesTest, HashesAndProofsOfTheWrongSizeAreRefused) {
  for (const std::size_t size : {0, 1, 31, 33, 64}) {
    const std::vector<std::uint8_t> bytes(size);
    const auto hash = HashFromBytes(bytes);
    ASSERT_FALSE(hash.has_value()) << size;
    EXPECT_EQ(hash.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_TRUE(HashFromBytes(std::vector<std::uint8_t>(32)).has_value());
  for (const std::size_t size : {1, 31, 33, 65, 32 * 3 + 1}) {
    const auto proof = ProofFromBytes(std::vector<std::uint8_t>(size));
    ASSERT_FALSE(proof.has_value()) << size;
    EXPECT_EQ(proof.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(ProofFromBytes(std::vector<std::uint8_t>(32 * (kMaxProofHashes + 1))).has_value());
  const auto empty = ProofFromBytes({});
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
  const std::vector<Hash> proof = {kSomeHash, EmptyRoot()};
  const auto again = ProofFromBytes(ProofToBytes(proof));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, proof);
}

// ---------------------------------------------------------------------------------------------
// Generation

TEST(MerkleGenerationTest, RequestsOutsideTheStoredTreeAreRefused) {
  const MerkleTree tree = ReferenceTree();
  const auto expect_code = [](const auto& result, ErrorCode code) {
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code(), code);
  };
  expect_code(InclusionProof(tree, 0, 0), ErrorCode::kInvalidArgument);
  expect_code(InclusionProof(tree, 3, 3), ErrorCode::kInvalidArgument);
  expect_code(InclusionProof(tree, 8, 9), ErrorCode::kNotFound);
  expect_code(InclusionProof(tree, 0, 16), ErrorCode::kNotFound);
  expect_code(InclusionProof(tree, 0, kMaxTreeSize + 1), ErrorCode::kInvalidArgument);
  expect_code(ConsistencyProof(tree, 0, 4), ErrorCode::kInvalidArgument);
  expect_code(ConsistencyProof(tree, 5, 4), ErrorCode::kInvalidArgument);
  expect_code(ConsistencyProof(tree, 4, 9), ErrorCode::kNotFound);
  expect_code(RootAt(tree, 9), ErrorCode::kNotFound);
  expect_code(RootAt(tree, kMaxTreeSize + 1), ErrorCode::kInvalidArgument);
  expect_code(tree.LeafHash(8), ErrorCode::kNotFound);
  const auto same = ConsistencyProof(tree, 4, 4);
  ASSERT_TRUE(same.has_value());
  EXPECT_TRUE(same->empty());
  const NodeId missing{0, 8};
  Hash out{};
  EXPECT_EQ(tree.ReadNodes(std::span(&missing, 1), std::span(&out, 1)).error().code(),
            ErrorCode::kNotFound);
}

class FailingReader final : public NodeReader {
 public:
  Result<std::uint64_t> TreeSize() const override { return std::uint64_t{1000}; }
  Status ReadNodes(std::span<const NodeId>, std::span<Hash>) const override {
    return Fail(ErrorCode::kDatabase, "test: the store failed");
  }
};

TEST(MerkleGenerationTest, AReaderErrorIsPassedOn) {
  const FailingReader reader;
  EXPECT_EQ(InclusionProof(reader, 3, 900).error().code(), ErrorCode::kDatabase);
  EXPECT_EQ(ConsistencyProof(reader, 3, 900).error().code(), ErrorCode::kDatabase);
  EXPECT_EQ(RootAt(reader, 900).error().code(), ErrorCode::kDatabase);
}

TEST(MerkleGenerationTest, AssembleRefusesHashesThatDoNotMatchThePlan) {
  const auto plan = PlanInclusionProof(0, 7);
  ASSERT_TRUE(plan.has_value());
  EXPECT_FALSE(AssembleProof(*plan, std::vector<Hash>(plan->nodes.size() - 1)).has_value());
  ProofPlan broken = *plan;
  broken.fold_end = broken.nodes.size() + 1;
  EXPECT_FALSE(AssembleProof(broken, std::vector<Hash>(broken.nodes.size())).has_value());
}

// Plans at the largest sizes: at most kMaxProofHashes nodes, each a complete subtree inside
// the tree, no arithmetic overflow.
TEST(MerkleGenerationTest, PlansStayInsideHugeTrees) {
  const auto inside = [](const ProofPlan& plan, std::uint64_t size) {
    for (const NodeId& id : plan.nodes) {
      if (id.level > 62) return false;
      const std::uint64_t end = (id.index + 1) << id.level;
      if ((end >> id.level) != id.index + 1 || end > size) return false;
    }
    return true;
  };
  const auto proof_size = [](const ProofPlan& plan) {
    const std::size_t folded = plan.fold_end - plan.fold_begin;
    return plan.nodes.size() - folded + (folded > 0 ? 1 : 0);
  };
  std::mt19937_64 random(3);
  std::vector<std::uint64_t> sizes = {kMaxTreeSize, kMaxTreeSize - 1, std::uint64_t{1} << 62,
                                      (std::uint64_t{1} << 62) + 1};
  for (int i = 0; i < 200; ++i) sizes.push_back(1 + random() % kMaxTreeSize);
  for (const std::uint64_t size : sizes) {
    for (const std::uint64_t index : {std::uint64_t{0}, size - 1, random() % size}) {
      const auto plan = PlanInclusionProof(index, size);
      ASSERT_TRUE(plan.has_value());
      EXPECT_LE(proof_size(*plan), kMaxProofHashes - 1);
      EXPECT_TRUE(inside(*plan, size)) << index << "/" << size;
    }
    for (const std::uint64_t first : {std::uint64_t{1}, size, 1 + random() % size}) {
      const auto plan = PlanConsistencyProof(first, size);
      ASSERT_TRUE(plan.has_value());
      EXPECT_LE(proof_size(*plan), kMaxProofHashes);
      EXPECT_TRUE(inside(*plan, size)) << first << "->" << size;
    }
    for (const NodeId& id : RootNodes(size)) EXPECT_LE(id.level, 62);
  }
  EXPECT_TRUE(RootNodes(kMaxTreeSize + 1).empty());
}

// ---------------------------------------------------------------------------------------------
// Properties over every (index, size) and (first, second) up to 64 leaves

constexpr std::size_t kPropertyLeaves = 64;

std::vector<Hash> CountingLeafHashes(std::size_t count) {
  std::vector<Hash> hashes;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t data[2] = {static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
    hashes.push_back(HashLeaf(data));
  }
  return hashes;
}

// Flips one bit in every byte of `hash` in turn (bit i % 8 of byte i) and checks `verify`
// refuses each.
template <typename Verify>
void ExpectEveryByteMatters(Hash hash, Verify verify) {
  for (std::size_t byte = 0; byte < kHashSize; ++byte) {
    const std::size_t bit = byte * 8 + byte % 8;
    FlipBit(hash, bit);
    ExpectRefused(verify(hash));
    FlipBit(hash, bit);
  }
}

TEST(MerklePropertyTest, EveryInclusionProofMatchesTheRfcAndOnlyItVerifies) {
  const std::vector<Hash> leaves = CountingLeafHashes(kPropertyLeaves);
  MerkleTree tree;
  for (const Hash& leaf : leaves) ASSERT_TRUE(tree.AppendLeafHash(leaf).has_value());
  std::vector<Hash> roots(kPropertyLeaves + 1);
  for (std::size_t size = 1; size <= kPropertyLeaves; ++size) {
    roots[size] = MerkleRoot(std::span(leaves).first(size));
  }
  for (std::uint64_t size = 1; size <= kPropertyLeaves; ++size) {
    const Hash& root = roots[size];
    ASSERT_EQ(*RootAt(tree, size), root);
    for (std::uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(::testing::Message() << index << "/" << size);
      const auto proof = InclusionProof(tree, index, size);
      ASSERT_TRUE(proof.has_value());
      ASSERT_EQ(*proof, RfcPath(index, std::span(leaves).first(size)));
      const Hash& leaf = leaves[index];
      ASSERT_TRUE(VerifyInclusion(index, size, leaf, *proof, root).has_value());
      for (std::size_t element = 0; element < proof->size(); ++element) {
        ExpectEveryByteMatters((*proof)[element], [&](const Hash& changed) {
          std::vector<Hash> copy = *proof;
          copy[element] = changed;
          return VerifyInclusion(index, size, leaf, copy, root);
        });
      }
      ExpectEveryByteMatters(leaf, [&](const Hash& changed) {
        return VerifyInclusion(index, size, changed, *proof, root);
      });
      ExpectEveryByteMatters(root, [&](const Hash& changed) {
        return VerifyInclusion(index, size, leaf, *proof, changed);
      });
      // Another position in the same tree. (A size is only ever checked together with its
      // root, as a signed checkpoint gives them: with a root that is not the tree's at the
      // claimed size, RFC 9162 verification does not promise to fail — the proof of leaf 0
      // of 3 leaves also "proves" it in a 4-leaf tree whose root would be that one.)
      for (std::uint64_t other = 0; other < size; ++other) {
        if (other != index) ExpectRefused(VerifyInclusion(other, size, leaf, *proof, root));
      }
      for (std::uint64_t other = 1; other <= kPropertyLeaves; ++other) {
        if (other == size || index >= other) continue;
        if (*InclusionProof(tree, index, other) == *proof) continue;  // the same path
        ExpectRefused(VerifyInclusion(index, other, leaf, *proof, roots[other]));
      }
    }
  }
}

TEST(MerklePropertyTest, EveryConsistencyProofMatchesTheRfcAndOnlyItVerifies) {
  const std::vector<Hash> leaves = CountingLeafHashes(kPropertyLeaves);
  MerkleTree tree;
  for (const Hash& leaf : leaves) ASSERT_TRUE(tree.AppendLeafHash(leaf).has_value());
  std::vector<Hash> roots(kPropertyLeaves + 1);
  for (std::size_t size = 1; size <= kPropertyLeaves; ++size) {
    roots[size] = MerkleRoot(std::span(leaves).first(size));
  }
  for (std::uint64_t second = 1; second <= kPropertyLeaves; ++second) {
    for (std::uint64_t first = 1; first <= second; ++first) {
      SCOPED_TRACE(::testing::Message() << first << "->" << second);
      const auto proof = ConsistencyProof(tree, first, second);
      ASSERT_TRUE(proof.has_value());
      if (first < second) {
        ASSERT_EQ(*proof, RfcProof(first, std::span(leaves).first(second)));
      } else {
        ASSERT_TRUE(proof->empty());
      }
      const Hash& root1 = roots[first];
      const Hash& root2 = roots[second];
      ASSERT_TRUE(VerifyConsistency(first, second, *proof, root1, root2).has_value());
      for (std::size_t element = 0; element < proof->size(); ++element) {
        ExpectEveryByteMatters((*proof)[element], [&](const Hash& changed) {
          std::vector<Hash> copy = *proof;
          copy[element] = changed;
          return VerifyConsistency(first, second, copy, root1, root2);
        });
      }
      ExpectEveryByteMatters(root1, [&](const Hash& changed) {
        return VerifyConsistency(first, second, *proof, changed, root2);
      });
      ExpectEveryByteMatters(root2, [&](const Hash& changed) {
        return VerifyConsistency(first, second, *proof, root1, changed);
      });
      // Other sizes with their own roots (see the inclusion property for why a size is
      // only checked with its root).
      for (std::uint64_t other = 1; other <= second; ++other) {
        if (other == first || *ConsistencyProof(tree, other, second) == *proof) continue;
        ExpectRefused(VerifyConsistency(other, second, *proof, roots[other], root2));
      }
      for (std::uint64_t other = first; other <= kPropertyLeaves; ++other) {
        if (other == second || *ConsistencyProof(tree, first, other) == *proof) continue;
        ExpectRefused(VerifyConsistency(first, other, *proof, root1, roots[other]));
      }
    }
  }
}

// The frontier a store keeps gives the same roots and writes the same nodes as the
// in-memory tree, also after being reloaded from stored nodes.
TEST(TreeFrontierTest, MirrorsTheInMemoryTreeAndReloads) {
  MerkleTree tree;
  TreeFrontier frontier;
  std::mt19937_64 random(5);
  for (std::uint64_t i = 0; i < 3000; ++i) {
    Hash leaf{};
    for (auto& byte : leaf) byte = static_cast<std::uint8_t>(random());
    ASSERT_TRUE(tree.AppendLeafHash(leaf).has_value());
    const auto completed = frontier.Append(leaf);
    ASSERT_TRUE(completed.has_value());
    ASSERT_EQ(completed->front().first, (NodeId{0, i}));
    ASSERT_EQ(completed->size(), 1u + static_cast<std::size_t>(std::countr_one(i)));
    for (const auto& [id, hash] : *completed) {
      Hash stored{};
      ASSERT_TRUE(tree.ReadNodes(std::span(&id, 1), std::span(&stored, 1)).has_value());
      ASSERT_EQ(hash, stored);
    }
    ASSERT_EQ(frontier.size(), i + 1);
    ASSERT_EQ(frontier.Root(), tree.Root());
    if (i % 97 == 0) {
      // Reload from the stored root nodes, as a store does at start.
      const std::vector<NodeId> ids = RootNodes(i + 1);
      std::vector<Hash> hashes(ids.size());
      ASSERT_TRUE(tree.ReadNodes(ids, hashes).has_value());
      auto reloaded = TreeFrontier::FromRootNodes(i + 1, hashes);
      ASSERT_TRUE(reloaded.has_value());
      ASSERT_EQ(reloaded->Root(), frontier.Root());
      frontier = std::move(*reloaded);
    }
  }
  EXPECT_FALSE(TreeFrontier::FromRootNodes(3, std::vector<Hash>(1)).has_value());
  EXPECT_FALSE(TreeFrontier::FromRootNodes(kMaxTreeSize + 1, std::vector<Hash>(64)).has_value());
}

// Proofs from a large tree, at random earlier sizes, verify against its roots.
TEST(MerklePropertyTest, ProofsFromALargeTreeVerify) {
  constexpr std::uint64_t kLeaves = 100'003;
  MerkleTree tree;
  for (std::uint64_t i = 0; i < kLeaves; ++i) {
    const std::uint8_t data[8] = {
        static_cast<std::uint8_t>(i >> 56), static_cast<std::uint8_t>(i >> 48),
        static_cast<std::uint8_t>(i >> 40), static_cast<std::uint8_t>(i >> 32),
        static_cast<std::uint8_t>(i >> 24), static_cast<std::uint8_t>(i >> 16),
        static_cast<std::uint8_t>(i >> 8),  static_cast<std::uint8_t>(i)};
    ASSERT_TRUE(tree.Append(data).has_value());
  }
  std::mt19937_64 random(9);
  for (int i = 0; i < 300; ++i) {
    const std::uint64_t second = 1 + random() % kLeaves;
    const std::uint64_t first = 1 + random() % second;
    const std::uint64_t index = random() % second;
    const Hash root1 = *RootAt(tree, first);
    const Hash root2 = *RootAt(tree, second);
    const auto inclusion = InclusionProof(tree, index, second);
    ASSERT_TRUE(inclusion.has_value());
    EXPECT_TRUE(
        VerifyInclusion(index, second, *tree.LeafHash(index), *inclusion, root2).has_value());
    const auto consistency = ConsistencyProof(tree, first, second);
    ASSERT_TRUE(consistency.has_value());
    EXPECT_TRUE(VerifyConsistency(first, second, *consistency, root1, root2).has_value());
  }
}

}  // namespace
}  // namespace coffre::audit
