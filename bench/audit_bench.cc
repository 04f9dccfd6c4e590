// Benchmarks of the audit module (issue 5, point 7), each against an anchor measured in the
// same run.
//
//   Anchor     BM_AuditLeafSha256Raw: one SHA-256 of 0x00 || a 134-byte entry through
//              OpenSSL's one-shot EVP_Digest with the digest fetched once: the least any
//              append can cost.
//   Appends    BM_AuditAppend: encode an entry (EncodeEntry) and append it to the in-memory
//              tree (leaf hash and the node hashes it completes), one core. With
//              /checkpoint_every:N, a checkpoint (root, C2SP text, Ed25519 signature) is
//              signed every N appends and its cost spread over them. Goal (issue 5):
//              >= 50,000 appends/s with storage, which these figures bound from above.
//   Proofs     BM_AuditInclusionProof / BM_AuditConsistencyProof: a proof at a tree size of
//              one million entries, for random indices and earlier sizes, from the stored
//              perfect-subtree hashes (the way a store serves them: O(log n) reads, no leaf
//              rehashed). BM_AuditVerify*: RFC 9162 verification of those proofs. Goal: a
//              proof in under 50 microseconds.
//   Checkpoint BM_AuditCheckpointSign / BM_AuditCheckpointVerify: sign, and parse and verify,
//              one checkpoint (compare with BM_Ed25519SignRaw / BM_Ed25519VerifyRaw of
//              crypto_bench.cc).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {
namespace {

constexpr std::uint64_t kMillion = 1'000'000;
constexpr std::size_t kRandomQueries = 4096;
constexpr const char* kOrigin = "relay.sdis13.example.fr/audit";

// A typical relay entry: a blob fetch with every field present.
Entry TypicalEntry(std::uint64_t time_ms) {
  Entry entry;
  entry.type = EventType::kBlobFetched;
  entry.result = EventResult::kSuccess;
  entry.relay_time_ms = time_ms;
  entry.actor.emplace().fill(0xAC);
  entry.device_id = 3;
  entry.team_id.emplace().fill(0x7E);
  entry.item_id.emplace().fill(0x1D);
  entry.object_version = 12;
  entry.node = "relay-1";
  entry.jurisdiction = "FR";
  entry.details_hash.emplace().fill(0xD5);
  return entry;
}

std::vector<std::uint8_t> Encoded(std::uint64_t time_ms) {
  auto encoded = EncodeEntry(TypicalEntry(time_ms));
  if (!encoded) std::abort();
  return std::move(encoded).value();
}

// The tree of one million typical entries, built once for every proof benchmark.
const MerkleTree& MillionTree() {
  static const MerkleTree tree = [] {
    MerkleTree made;
    for (std::uint64_t i = 0; i < kMillion; ++i) {
      if (!made.Append(Encoded(1'764'000'000'000 + i))) std::abort();
    }
    return made;
  }();
  return tree;
}

void BM_AuditLeafSha256Raw(benchmark::State& state) {
  std::vector<std::uint8_t> leaf = {0x00};
  const std::vector<std::uint8_t> entry = Encoded(1'764'000'000'000);
  leaf.insert(leaf.end(), entry.begin(), entry.end());
  const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> sha256(
      EVP_MD_fetch(nullptr, "SHA256", nullptr), &EVP_MD_free);
  unsigned char digest[32];
  unsigned int length = 0;
  for (auto _ : state) {
    if (EVP_Digest(leaf.data(), leaf.size(), digest, &length, sha256.get(), nullptr) != 1) {
      state.SkipWithError("EVP_Digest failed");
      break;
    }
    benchmark::DoNotOptimize(digest);
    leaf[1] = digest[0];  // each leaf differs, as in a log
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditLeafSha256Raw);

// Appends; arg 0: no checkpoints, N: one signed checkpoint every N appends. The tree is
// started again (untimed) every million entries to keep memory flat over long runs.
void BM_AuditAppend(benchmark::State& state) {
  const auto every = static_cast<std::uint64_t>(state.range(0));
  const crypto::SigningKey key = crypto::SigningKey::Generate();
  auto tree = std::make_unique<MerkleTree>();
  std::uint64_t time_ms = 1'764'000'000'000;
  std::uint64_t signed_checkpoints = 0;
  for (auto _ : state) {
    if (tree->size() == kMillion) {
      state.PauseTiming();
      tree = std::make_unique<MerkleTree>();
      state.ResumeTiming();
    }
    auto encoded = EncodeEntry(TypicalEntry(++time_ms));
    if (!encoded || !tree->Append(*encoded)) {
      state.SkipWithError("append failed");
      break;
    }
    if (every != 0 && tree->size() % every == 0) {
      const Checkpoint checkpoint{kOrigin, tree->size(), tree->Root()};
      auto note = SignCheckpoint(checkpoint, key, kOrigin);
      if (!note) {
        state.SkipWithError("signing failed");
        break;
      }
      benchmark::DoNotOptimize(note->data());
      ++signed_checkpoints;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["checkpoints"] = static_cast<double>(signed_checkpoints);
}
BENCHMARK(BM_AuditAppend)->ArgName("checkpoint_every")->Arg(0)->Arg(1000)->Arg(100);

struct Query {
  std::uint64_t a;  // leaf index, or first size
  std::vector<Hash> proof;
};

std::vector<Query> RandomQueries(bool inclusion) {
  std::mt19937_64 random(inclusion ? 1 : 2);
  std::vector<Query> queries(kRandomQueries);
  for (Query& query : queries) {
    query.a = inclusion ? random() % kMillion : 1 + random() % (kMillion - 1);
    auto proof = inclusion ? InclusionProof(MillionTree(), query.a, kMillion)
                           : ConsistencyProof(MillionTree(), query.a, kMillion);
    if (!proof) std::abort();
    query.proof = std::move(proof).value();
  }
  return queries;
}

// Runs `step` on query 0, 1, 2, ... in turn (round robin over `count`) for as long as the
// benchmark asks; a step that returns false stops it with `error`.
template <typename Step>
void CycleQueries(benchmark::State& state, std::size_t count, const char* error, Step step) {
  std::size_t next = 0;
  for (auto _ : state) {
    if (!step(next)) {
      state.SkipWithError(error);
      break;
    }
    next = (next + 1) % count;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_AuditInclusionProof(benchmark::State& state) {
  const MerkleTree& tree = MillionTree();
  const std::vector<Query> queries = RandomQueries(true);
  CycleQueries(state, queries.size(), "proof failed", [&](std::size_t i) {
    auto proof = InclusionProof(tree, queries[i].a, kMillion);
    if (proof) benchmark::DoNotOptimize(proof->data());
    return proof.has_value();
  });
}
BENCHMARK(BM_AuditInclusionProof)->Unit(benchmark::kMicrosecond);

void BM_AuditVerifyInclusion(benchmark::State& state) {
  const MerkleTree& tree = MillionTree();
  const std::vector<Query> queries = RandomQueries(true);
  std::vector<Hash> leaves;
  for (const Query& query : queries) leaves.push_back(*tree.LeafHash(query.a));
  const Hash root = tree.Root();
  CycleQueries(state, queries.size(), "verification failed", [&](std::size_t i) {
    return VerifyInclusion(queries[i].a, kMillion, leaves[i], queries[i].proof, root).has_value();
  });
}
BENCHMARK(BM_AuditVerifyInclusion)->Unit(benchmark::kMicrosecond);

void BM_AuditConsistencyProof(benchmark::State& state) {
  const MerkleTree& tree = MillionTree();
  const std::vector<Query> queries = RandomQueries(false);
  CycleQueries(state, queries.size(), "proof failed", [&](std::size_t i) {
    auto proof = ConsistencyProof(tree, queries[i].a, kMillion);
    if (proof) benchmark::DoNotOptimize(proof->data());
    return proof.has_value();
  });
}
BENCHMARK(BM_AuditConsistencyProof)->Unit(benchmark::kMicrosecond);

void BM_AuditVerifyConsistency(benchmark::State& state) {
  const MerkleTree& tree = MillionTree();
  const std::vector<Query> queries = RandomQueries(false);
  std::vector<Hash> first_roots;
  for (const Query& query : queries) first_roots.push_back(*RootAt(tree, query.a));
  const Hash root = tree.Root();
  CycleQueries(state, queries.size(), "verification failed", [&](std::size_t i) {
    return VerifyConsistency(queries[i].a, kMillion, queries[i].proof, first_roots[i], root).has_value();
  });
}
BENCHMARK(BM_AuditVerifyConsistency)->Unit(benchmark::kMicrosecond);

void BM_AuditCheckpointSign(benchmark::State& state) {
  const crypto::SigningKey key = crypto::SigningKey::Generate();
  Checkpoint checkpoint{kOrigin, kMillion, MillionTree().Root()};
  for (auto _ : state) {
    auto note = SignCheckpoint(checkpoint, key, kOrigin);
    if (!note) {
      state.SkipWithError("signing failed");
      break;
    }
    benchmark::DoNotOptimize(note->data());
    ++checkpoint.size;
  }
}
BENCHMARK(BM_AuditCheckpointSign)->Unit(benchmark::kMicrosecond);

void BM_AuditCheckpointVerify(benchmark::State& state) {
  const crypto::SigningKey key = crypto::SigningKey::Generate();
  const Checkpoint checkpoint{kOrigin, kMillion, MillionTree().Root()};
  const std::string note = *SignCheckpoint(checkpoint, key, kOrigin);
  const NoteVerifier verifier = *NoteVerifier::FromPublicKey(kOrigin, key.verify_key());
  for (auto _ : state) {
    auto parsed = ParseAndVerifyCheckpoint(note, verifier, kOrigin);
    if (!parsed) {
      state.SkipWithError("verification failed");
      break;
    }
    benchmark::DoNotOptimize(parsed->size);
  }
}
BENCHMARK(BM_AuditCheckpointVerify)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace coffre::audit
