// Writes the seed corpus of the audit module's fuzz targets under the directory given
// (normally tests/fuzz/corpus): entries and details, checkpoints signed with the fixed log
// key of audit_fuzz_inputs.h, and proofs of its fixed tree. Every seed is deterministic
// (Ed25519 signatures are), so running it again rewrites the same files, except the sealed
// details and sealed month key (sealing draws a fresh key and nonce, so they change on
// every run and any run's serve); run it when a format or a target's input layout changes:
//
//   cmake --build BUILD --target fuzz_audit_seed_corpus_tool &&
//   BUILD/tests/fuzz/fuzz_audit_seed_corpus_tool tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit_fuzz_inputs.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/crypto/x25519.h"

namespace coffre::fuzz {
namespace {

template <typename T>
T Must(Result<T> result, const char* what) {
  if (!result) {
    std::fprintf(stderr, "audit_seed_corpus_tool: %s\n", what);
    std::exit(1);
  }
  return std::move(result).value();
}

void Write(const std::filesystem::path& root, std::string_view target, std::string_view name,
           std::span<const std::uint8_t> bytes) {
  const std::filesystem::path directory = root / target;
  std::filesystem::create_directories(directory);
  std::ofstream file(directory / name, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  if (!file) {
    std::fprintf(stderr, "audit_seed_corpus_tool: cannot write a seed file\n");
    std::exit(1);
  }
}

void Write(const std::filesystem::path& root, std::string_view target, std::string_view name,
           std::string_view text) {
  Write(root, target, name,
        std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

void WriteEntries(const std::filesystem::path& root) {
  audit::Entry full;
  full.type = audit::EventType::kBlobFetched;
  full.result = audit::EventResult::kSuccess;
  full.relay_time_ms = 1'764'000'000'000;
  full.actor.emplace().fill(0xAC);
  full.device_id = 7;
  full.team_id.emplace().fill(0x7E);
  full.item_id.emplace().fill(0x1D);
  full.object_version = 3;
  full.node = "relay-1";
  full.jurisdiction = "FR";
  full.details_hash.emplace().fill(0xD5);
  Write(root, "audit_entry_fuzz", "entry-full", Must(audit::EncodeEntry(full), "entry"));
  audit::Entry minimal;
  minimal.type = audit::EventType::kLogin;
  minimal.result = audit::EventResult::kFailed;
  minimal.node = "r";
  minimal.jurisdiction = "FR";
  Write(root, "audit_entry_fuzz", "entry-minimal", Must(audit::EncodeEntry(minimal), "entry"));
  audit::Details details;
  details.actor_user_id = "alice";
  details.subject_user_id = "bob";
  details.ip_address = "192.0.2.7";
  details.user_agent = "coffre/0.1";
  details.reason = "not a member";
  const crypto::SecretBytes encoded = Must(audit::EncodeDetails(details), "details");
  Write(root, "audit_entry_fuzz", "details", encoded.span());
  // Sealed details as the relay sends them (under a month key made here, so they reach
  // the key id reader and the failure path of opening), and a sealed month key.
  const audit::MonthKey month_key = audit::MonthKey::Generate();
  Write(root, "audit_entry_fuzz", "sealed-details",
        Must(audit::SealDetailsUnder(month_key, 42, details), "sealed details"));
  Write(root, "audit_entry_fuzz", "sealed-month-key",
        audit::SealMonthKey(crypto::X25519KeyPair::Generate().public_key(), month_key));
}

void WriteCheckpoints(const std::filesystem::path& root) {
  const audit::MerkleTree& tree = AuditFuzzTree();
  audit::Checkpoint checkpoint;
  checkpoint.origin = std::string(kAuditOrigin);
  checkpoint.size = tree.size();
  checkpoint.root = tree.Root();
  const std::string note =
      Must(audit::SignCheckpoint(checkpoint, AuditLogKey(), kAuditOrigin), "checkpoint");
  Write(root, "checkpoint_parse_fuzz", "checkpoint", note);
  // With a witness's cosignature after the log's (another key, ignored by the verifier).
  const crypto::SigningKey witness =
      Must(crypto::SigningKey::FromSeed(std::vector<std::uint8_t>(32, 0x77)), "witness");
  const std::string text = Must(audit::FormatCheckpoint(checkpoint), "text");
  const std::string cosigned = Must(audit::SignNote(text, witness, "witness.example"), "note");
  Write(root, "checkpoint_parse_fuzz", "checkpoint-witnessed",
        note + cosigned.substr(cosigned.find("\n\n") + 2));
  checkpoint.size = 0;
  checkpoint.root = audit::EmptyRoot();
  Write(root, "checkpoint_parse_fuzz", "checkpoint-empty",
        Must(audit::SignCheckpoint(checkpoint, AuditLogKey(), kAuditOrigin), "checkpoint"));
  Write(root, "checkpoint_parse_fuzz", "verifier-key", AuditLogVerifier().VerifierKey());
}

void WriteProofs(const std::filesystem::path& root) {
  const audit::MerkleTree& tree = AuditFuzzTree();
  const struct {
    const char* name;
    std::uint8_t index;
    std::uint8_t size;
  } inclusions[] = {{"inclusion-0-of-1", 0, 1},
                    {"inclusion-5-of-8", 5, 8},
                    {"inclusion-13-of-27", 13, 27},
                    {"inclusion-39-of-40", 39, 40}};
  for (const auto& seed : inclusions) {
    const auto proof = Must(audit::InclusionProof(tree, seed.index, seed.size), "inclusion");
    Write(root, "merkle_proof_fuzz", seed.name, MerkleFuzzInput(0, seed.index, seed.size, proof));
  }
  const struct {
    const char* name;
    std::uint8_t first;
    std::uint8_t second;
  } consistencies[] = {{"consistency-1-to-8", 1, 8},
                       {"consistency-6-to-7", 6, 7},
                       {"consistency-13-to-40", 13, 40},
                       {"consistency-16-to-33", 16, 33}};
  for (const auto& seed : consistencies) {
    const auto proof = Must(audit::ConsistencyProof(tree, seed.first, seed.second), "consistency");
    Write(root, "merkle_proof_fuzz", seed.name, MerkleFuzzInput(1, seed.first, seed.second, proof));
  }
}

}  // namespace
}  // namespace coffre::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIRECTORY\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  coffre::fuzz::WriteEntries(root);
  coffre::fuzz::WriteCheckpoints(root);
  coffre::fuzz::WriteProofs(root);
  return 0;
}
