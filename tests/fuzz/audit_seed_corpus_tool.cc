// Writes the seed corpus of the audit module's fuzz targets under the directory given
// (normally tests/fuzz/corpus): entries and details, checkpoints signed with the fixed log
// key of audit_fuzz_inputs.h, proofs of its fixed tree, and export bundles (whole, and
// their binary files alone) written with the export's own writer
// (client/src/audit_bundle_format.h) and signed with the fixed keys of
// audit_bundle_fuzz_inputs.h, so that they verify. Every seed is deterministic
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
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "audit_bundle_format.h"
#include "audit_bundle_fuzz_inputs.h"
#include "audit_fuzz_inputs.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/client_event.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/client/audit_bundle.h"
#include "coffre/crypto/kdf.h"
#include "coffre/crypto/x25519.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"

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

// --- Export bundles ---------------------------------------------------------------------

namespace bundle = client::bundle;

// One entry of the bundles' log, encoded, with the state its sealed details are in.
struct LoggedEntry {
  audit::Entry entry;
  std::vector<std::uint8_t> encoded;
  bundle::DetailsState details = bundle::DetailsState::kNone;
};

std::span<const std::uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

audit::ClientEvent DeviceEvent(audit::EventType type, std::uint64_t sequence,
                               const audit::Hash& previous) {
  audit::ClientEvent event;
  event.type = type;
  event.client_time_ms = 1'764'000'000'000 + sequence;
  event.device_id = 5;
  event.team_id.fill(0x7E);
  event.item_id.fill(0x1D);
  event.version = 2;
  event.sequence = sequence;
  event.previous = previous;
  return Must(audit::SignClientEvent(event, EventDeviceKey()), "client event");
}

// Six entries covering what a bundle carries: no details, sealed and erased details, a
// refusal, a device's signed events with one left out of the log (event 2, so that a
// bundle has a gap to note), and a relay time past the year 9999.
std::vector<LoggedEntry> BundleLog() {
  std::vector<LoggedEntry> log(6);
  audit::Entry& login = log[0].entry;
  login.type = audit::EventType::kLogin;
  login.relay_time_ms = 1'764'000'000'000;
  login.actor.emplace().fill(0xA1);
  login.device_id = 1;
  login.node = "relay-1";
  login.jurisdiction = "FR";

  audit::Entry& fetch = log[1].entry;
  fetch = login;
  fetch.type = audit::EventType::kBlobFetched;
  fetch.device_id = 2;
  fetch.team_id.emplace().fill(0x7E);
  fetch.item_id.emplace().fill(0x1D);
  fetch.object_version = 3;
  fetch.details_hash.emplace().fill(0xD1);
  log[1].details = bundle::DetailsState::kSealed;

  audit::Entry& upload = log[2].entry;
  upload = fetch;
  upload.type = audit::EventType::kItemVersionUploaded;
  upload.result = audit::EventResult::kRefused;
  upload.node = "relay-2.eu-west";
  upload.details_hash.emplace().fill(0xD2);
  log[2].details = bundle::DetailsState::kErased;

  const audit::ClientEvent first = DeviceEvent(audit::EventType::kDocumentOpened, 1, {});
  const audit::ClientEvent second =
      DeviceEvent(audit::EventType::kDocumentOpened, 2, audit::ClientEventHash(first));
  const audit::ClientEvent third =
      DeviceEvent(audit::EventType::kDocumentExported, 3, audit::ClientEventHash(second));
  for (const auto& [position, event] : {std::pair{3, &first}, std::pair{4, &third}}) {
    audit::Entry& entry = log[static_cast<std::size_t>(position)].entry;
    entry.type = event->type;
    entry.relay_time_ms = 1'764'000'001'000 + event->sequence;
    entry.actor.emplace().fill(0xA2);
    entry.device_id = event->device_id;
    entry.team_id = event->team_id;
    entry.item_id = event->item_id;
    entry.object_version = event->version;
    entry.node = "relay-1";
    entry.jurisdiction = "FR";
    entry.client_event = *event;
  }

  audit::Entry& hold = log[5].entry;
  hold.type = audit::EventType::kLegalHoldPlaced;
  hold.relay_time_ms = 253'402'300'800'000;  // 10000-01-01T00:00:00.000Z
  hold.team_id.emplace().fill(0x7E);
  hold.node = "r";
  hold.jurisdiction = "DE";
  hold.details_hash.emplace().fill(0xD3);
  log[5].details = bundle::DetailsState::kSealed;

  for (LoggedEntry& logged : log) logged.encoded = Must(audit::EncodeEntry(logged.entry), "entry");
  return log;
}

// The files ExportAudit (client_audit.cc) writes for the entries of `log` at `positions`
// (increasing), proved against the log's checkpoint at `tree_size`, exported by the fixed
// auditor device of audit_bundle_fuzz_inputs.h.
BundleFiles MakeBundle(const std::vector<LoggedEntry>& log, std::uint64_t tree_size,
                       const std::vector<std::size_t>& positions) {
  audit::MerkleTree tree;
  for (std::uint64_t i = 0; i < tree_size; ++i) Must(tree.Append(log[i].encoded), "leaf");
  audit::Checkpoint checkpoint;
  checkpoint.origin = std::string(kAuditOrigin);
  checkpoint.size = tree_size;
  checkpoint.root = tree.Root();
  const std::string note =
      Must(audit::SignCheckpoint(checkpoint, AuditLogKey(), kAuditOrigin), "checkpoint");

  std::string records;
  std::string proofs;
  bundle::AppendFileHeaders(positions.size(), records, proofs);
  std::string json;
  std::string csv(bundle::kCsvHeader);
  for (const std::size_t i : positions) {
    const auto proof = Must(audit::InclusionProof(tree, i, tree_size), "inclusion");
    const bundle::RecordInput input{i, log[i].encoded, &log[i].entry, log[i].details, proof};
    if (!bundle::AppendBinaryRecord(input, records, proofs)) {
      std::fprintf(stderr, "audit_seed_corpus_tool: a record does not fit the bundle format\n");
      std::exit(1);
    }
    bundle::AppendJsonLine(i, log[i].entry, log[i].details, json);
    bundle::AppendCsvLine(i, log[i].entry, log[i].details, csv);
  }

  wire::v1::DeviceCertificateBody body;
  body.set_user_id(std::string(kExporterUser));
  body.set_device_id(kExporterDevice);
  const auto& device_key = ExporterDeviceKey().verify_key().bytes();
  body.set_device_signing_key(std::string(device_key.begin(), device_key.end()));
  std::string signal_key(protocol::kSignalKeySize, '\x11');
  signal_key[0] = static_cast<char>(protocol::kSignalKeyType);
  body.set_signal_identity_key(signal_key);
  body.set_created_ms(1'764'000'000'000);
  const auto certificate =
      Must(protocol::SignDeviceCertificate(body, ExporterUserKey()), "certificate");
  const std::string certificate_bytes = certificate.SerializeAsString();

  const nlohmann::json files = {
      {std::string(bundle::kCheckpointFile), LowerHex(crypto::Blake2b256(Bytes(note)))},
      {std::string(bundle::kRecordsBinaryFile), LowerHex(crypto::Blake2b256(Bytes(records)))},
  };
  const nlohmann::json manifest = {
      {"format", std::string(client::kAuditBundleFormat)},
      {"origin", checkpoint.origin},
      {"log_key", AuditLogVerifier().VerifierKey()},
      {"tree_size", checkpoint.size},
      {"root", LowerHex(checkpoint.root)},
      {"records", positions.size()},
      {"files", files},
      {"created_ms", 1'764'000'100'000},
      {"exported_by",
       {{"user", std::string(kExporterUser)},
        {"device", kExporterDevice},
        {"user_identity_key", LowerHex(ExporterUserKey().verify_key().bytes())},
        {"certificate", LowerHex(Bytes(certificate_bytes))}}},
  };
  const std::string manifest_text = manifest.dump(2) + "\n";
  const std::string signature =
      LowerHex(ExporterDeviceKey().Sign(bundle::kManifestLabel, Bytes(manifest_text))) + "\n";

  BundleFiles bundle_files;  // in the order of kBundleFiles
  bundle_files[0] = manifest_text;
  bundle_files[1] = signature;
  bundle_files[2] = note;
  bundle_files[3] = records;
  bundle_files[4] = proofs;
  bundle_files[5] = json;
  bundle_files[6] = csv;
  return bundle_files;
}

// Every bundle seed must verify, so that the seeds reach the success path of
// VerifyAuditBundle (and the verify target's checks of an accepted bundle): each is
// verified from a scratch folder under the pinned log key before it is written.
void RequireVerifies(const BundleFiles& files, const std::filesystem::path& scratch) {
  for (std::size_t i = 0; i < kBundleFiles.size(); ++i) {
    std::ofstream out(scratch / kBundleFiles[i], std::ios::binary | std::ios::trunc);
    out.write(files[i]->data(), static_cast<std::streamsize>(files[i]->size()));
    if (!out) {
      std::fprintf(stderr, "audit_seed_corpus_tool: cannot write a scratch bundle\n");
      std::exit(1);
    }
  }
  const auto report = Must(client::VerifyAuditBundle(scratch, AuditLogVerifier().VerifierKey()),
                           "bundle verification");
  if (!report.ok) {
    std::fprintf(stderr, "audit_seed_corpus_tool: a bundle seed does not verify: %s (%s)\n",
                 report.problem.c_str(), report.where.c_str());
    std::exit(1);
  }
}

void WriteBundles(const std::filesystem::path& root) {
  const std::vector<LoggedEntry> log = BundleLog();
  std::error_code ec;
  const std::filesystem::path scratch = root / ".audit-bundle-scratch";
  std::filesystem::create_directories(scratch, ec);
  const struct {
    const char* name;
    std::uint64_t tree_size;
    std::vector<std::size_t> positions;
  } bundles[] = {{"whole-log", 6, {0, 1, 2, 3, 4, 5}},
                 {"selection", 6, {1, 3, 4}},
                 {"earlier-checkpoint", 3, {0, 2}},
                 {"no-records", 6, {}}};
  for (const auto& made : bundles) {
    const BundleFiles files = MakeBundle(log, made.tree_size, made.positions);
    RequireVerifies(files, scratch);
    const std::string name(made.name);
    Write(root, "audit_bundle_verify_fuzz", "bundle-" + name, FrameBundle(files));
    Write(root, "audit_bundle_binary_fuzz", "records-" + name, *files[3]);
    Write(root, "audit_bundle_binary_fuzz", "proofs-" + name, *files[4]);
  }
  std::filesystem::remove_all(scratch, ec);
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
  coffre::fuzz::WriteBundles(root);
  return 0;
}
