// Benchmarks of the audit log as the relay stores it and as an auditor verifies an export
// (issue 5), each against an anchor measured in the same run. audit_bench.cc times the
// in-memory part (hashing, tree, proofs); these add the disk and the bundle.
//
//   Anchor   BM_AuditStoreAppendEach: one entry per transaction, one fsync each, from one
//            thread, straight into AuditStore (SQLCipher) on a fresh audit.db: what every
//            append would cost without group commit.
//   Appends  BM_AuditRecordDurable: AuditRecorder::Record, the relay's own path (pseudonym,
//            encoding, leaf hash, AuditLog's group commit of up to 1,024 waiting entries,
//            signed checkpoints at most once a second), on a fresh audit.db in a temporary
//            directory, from 1, 32 and 64 caller threads. /sealed:1 seals each entry's
//            details as well, as when the organisation has an auditor key: under the month
//            key (XChaCha20-Poly1305), made and stored sealed to the auditor key on the first
//            append. Real time: callers spend it waiting for the commit. Goal: >= 50,000
//            appends/s on one core.
//   Bundle   BM_AuditVerifyBundle: VerifyAuditBundle on a valid export bundle of N records
//            (real entries, tree, signed checkpoint, proofs and manifest, built as
//            client_audit.cc's ExportAudit builds them) written to a temporary folder before
//            the timing; CPU is the whole process's (every verifying thread). Goal: one
//            million records verified in under 5 s, records checked on every core.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit_bundle_format.h"
#include "audit_recorder.h"
#include "client_impl.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "coffre/client/audit_bundle.h"
#include "coffre/crypto/kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/storage/audit_store.h"
#include "server/temp_dir.h"

namespace coffre {
namespace {

using server::testing::TempDir;

constexpr const char* kOrigin = "relay.sdis13.example.fr/audit";
constexpr std::uint64_t kFirstTimeMs = 1'764'000'000'000;

// A typical relay entry: a blob fetch with every field present.
audit::Entry TypicalEntry(std::uint64_t index) {
  audit::Entry entry;
  entry.type = audit::EventType::kBlobFetched;
  entry.result = audit::EventResult::kSuccess;
  entry.relay_time_ms = kFirstTimeMs + index;
  entry.actor.emplace().fill(0xAC);
  entry.device_id = 3;
  entry.team_id.emplace().fill(0x7E);
  entry.item_id.emplace().fill(0x1D);
  (*entry.item_id)[0] = static_cast<std::uint8_t>(index);  // entries differ, as in a log
  entry.object_version = 12;
  entry.node = "relay-1";
  entry.jurisdiction = "FR";
  entry.details_hash.emplace().fill(0xD5);
  return entry;
}

// ---------------------------------------------------------------------------------------
// Durable appends

void BM_AuditStoreAppendEach(benchmark::State& state) {
  TempDir dir;
  const crypto::SecretBytes key = crypto::RandomSecret(32);
  auto store = storage::AuditStore::Open(dir.path() / server::kAuditStoreFile, key);
  if (dir.path().empty() || !store) {
    state.SkipWithError("cannot open audit.db");
    return;
  }
  std::uint64_t index = 0;
  for (auto _ : state) {
    storage::AuditAppend record;
    auto encoded = audit::EncodeEntry(TypicalEntry(++index));
    if (!encoded) {
      state.SkipWithError("encoding failed");
      break;
    }
    record.entry = std::move(encoded).value();
    const audit::Hash leaf = audit::HashLeaf(record.entry);
    std::copy(leaf.begin(), leaf.end(), record.leaf_hash.begin());
    if (!(*store)->Append(std::span<const storage::AuditAppend>(&record, 1))) {
      state.SkipWithError("append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AuditStoreAppendEach)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

// One recorder shared by the threads of one benchmark run: thread 0 opens it before the
// timed loop and closes it after; Google Benchmark holds every thread at a barrier around
// the loop, so the others only touch it inside.
struct SharedRecorder {
  TempDir dir;
  std::unique_ptr<server::AuditRecorder> recorder;
};
std::unique_ptr<SharedRecorder> shared_recorder;

void BM_AuditRecordDurable(benchmark::State& state) {
  if (state.thread_index() == 0) {
    shared_recorder = std::make_unique<SharedRecorder>();
    server::AuditConfig config;
    config.origin = kOrigin;
    if (state.range(0) != 0) config.auditor_key = crypto::X25519KeyPair::Generate().public_key();
    auto opened = server::AuditRecorder::Open(shared_recorder->dir.path(), crypto::RandomSecret(32),
                                              config, nullptr);
    if (opened) shared_recorder->recorder = std::move(opened).value();
  }
  const std::string user_id = "user" + std::to_string(state.thread_index());
  std::array<std::uint8_t, 16> team{};
  team.fill(0x7E);
  std::array<std::uint8_t, 16> item{};
  item.fill(0x1D);
  server::AuditEvent event;
  event.type = audit::EventType::kBlobFetched;
  event.user_id = user_id;
  event.device_id = 3;
  event.team_id = team;
  event.item_id = item;
  event.version = 12;
  event.details.ip_address = "192.0.2.17";
  event.details.user_agent = "coffre-desktop/1.0";
  for (auto _ : state) {
    if (!shared_recorder->recorder) {
      state.SkipWithError("cannot open the audit recorder");
      break;
    }
    ++item[0];
    if (!shared_recorder->recorder->Record(event)) {
      state.SkipWithError("record failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) shared_recorder.reset();
}
BENCHMARK(BM_AuditRecordDurable)
    ->ArgName("sealed")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(32)
    ->Threads(64)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------
// Bundle verification

struct Bundle {
  TempDir dir;
  std::filesystem::path folder;
  std::string log_key;
  double setup_seconds = 0;
  double megabytes = 0;
};

bool WriteFile(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  return static_cast<bool>(out);
}

// An export bundle of `records` entries, the whole log, laid out as ExportAudit writes one.
std::unique_ptr<Bundle> BuildBundle(std::uint64_t records, std::string* error) {
  using namespace client;
  const auto start = std::chrono::steady_clock::now();
  auto made = std::make_unique<Bundle>();
  made->folder = made->dir.path() / "bundle";
  std::error_code ec;
  if (made->dir.path().empty() || !std::filesystem::create_directories(made->folder, ec)) {
    *error = "cannot create the bundle folder";
    return nullptr;
  }
  std::vector<audit::Entry> entries;
  std::vector<std::vector<std::uint8_t>> encoded;
  entries.reserve(records);
  encoded.reserve(records);
  audit::MerkleTree tree;
  for (std::uint64_t i = 0; i < records; ++i) {
    entries.push_back(TypicalEntry(i));
    auto bytes = audit::EncodeEntry(entries.back());
    if (!bytes || !tree.Append(*bytes)) {
      *error = "cannot encode or append an entry";
      return nullptr;
    }
    encoded.push_back(std::move(bytes).value());
  }
  const crypto::SigningKey log_signing_key = crypto::SigningKey::Generate();
  auto note = audit::SignCheckpoint(audit::Checkpoint{kOrigin, records, tree.Root()},
                                    log_signing_key, kOrigin);
  auto verifier = audit::NoteVerifier::FromPublicKey(kOrigin, log_signing_key.verify_key());
  if (!note || !verifier) {
    *error = "cannot sign the checkpoint";
    return nullptr;
  }
  made->log_key = verifier->VerifierKey();

  std::string binary;
  std::string proofs;
  bundle::AppendFileHeaders(records, binary, proofs);
  std::string json;
  std::string csv(bundle::kCsvHeader);
  for (std::uint64_t i = 0; i < records; ++i) {
    auto proof = audit::InclusionProof(tree, i, records);
    const bundle::RecordInput input{i, encoded[i], &entries[i], bundle::DetailsState::kSealed,
                                    proof ? std::span<const audit::Hash>(*proof)
                                          : std::span<const audit::Hash>()};
    if (!proof || !bundle::AppendBinaryRecord(input, binary, proofs)) {
      *error = "cannot prove an entry";
      return nullptr;
    }
    bundle::AppendJsonLine(i, entries[i], bundle::DetailsState::kSealed, json);
    bundle::AppendCsvLine(i, entries[i], bundle::DetailsState::kSealed, csv);
  }

  // The exporting auditor's device, certified by the auditor's identity key.
  const crypto::SigningKey user_key = crypto::SigningKey::Generate();
  const crypto::SigningKey device_key = crypto::SigningKey::Generate();
  ::coffre::wire::v1::DeviceCertificateBody body;
  body.set_user_id("auditor");
  body.set_device_id(1);
  body.set_device_signing_key(AsString(device_key.verify_key().bytes()));
  std::string signal_key(protocol::kSignalKeySize, '\x11');
  signal_key[0] = static_cast<char>(protocol::kSignalKeyType);
  body.set_signal_identity_key(signal_key);
  body.set_created_ms(NowMs());
  auto certificate = protocol::SignDeviceCertificate(body, user_key);
  if (!certificate) {
    *error = "cannot certify the exporting device";
    return nullptr;
  }
  const nlohmann::json files = {
      {std::string(bundle::kCheckpointFile), Hex(crypto::Blake2b256(AsBytes(*note)))},
      {std::string(bundle::kRecordsBinaryFile), Hex(crypto::Blake2b256(AsBytes(binary)))},
  };
  const nlohmann::json manifest = {
      {"format", std::string(kAuditBundleFormat)},
      {"origin", kOrigin},
      {"log_key", made->log_key},
      {"tree_size", records},
      {"root", Hex(tree.Root())},
      {"records", records},
      {"files", files},
      {"created_ms", NowMs()},
      {"exported_by",
       {{"user", "auditor"},
        {"device", 1},
        {"user_identity_key", Hex(user_key.verify_key().bytes())},
        {"certificate", Hex(AsBytes(certificate->SerializeAsString()))}}},
  };
  const std::string manifest_text = manifest.dump(2) + "\n";
  const auto signature = device_key.Sign(bundle::kManifestLabel, AsBytes(manifest_text));
  const std::filesystem::path& folder = made->folder;
  if (!WriteFile(folder / bundle::kCheckpointFile, *note) ||
      !WriteFile(folder / bundle::kRecordsBinaryFile, binary) ||
      !WriteFile(folder / bundle::kProofsFile, proofs) ||
      !WriteFile(folder / bundle::kRecordsJsonFile, json) ||
      !WriteFile(folder / bundle::kRecordsCsvFile, csv) ||
      !WriteFile(folder / bundle::kManifestFile, manifest_text) ||
      !WriteFile(folder / bundle::kSignatureFile, Hex(signature) + "\n")) {
    *error = "cannot write the bundle";
    return nullptr;
  }
  made->megabytes = static_cast<double>(note->size() + binary.size() + proofs.size() + json.size() +
                                        csv.size() + manifest_text.size()) / 1e6;
  made->setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return made;
}

void BM_AuditVerifyBundle(benchmark::State& state) {
  const auto records = static_cast<std::uint64_t>(state.range(0));
  std::string error;
  // Built once per size: setting up the largest takes longer than verifying it.
  static std::map<std::uint64_t, std::unique_ptr<Bundle>> bundles;
  std::unique_ptr<Bundle>& bundle = bundles[records];
  if (!bundle) bundle = BuildBundle(records, &error);
  if (!bundle) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (auto _ : state) {
    auto report = client::VerifyAuditBundle(bundle->folder, bundle->log_key);
    if (!report || !report->ok || report->records != records) {
      error = report ? report->problem + " at " + report->where : "cannot read the bundle";
      state.SkipWithError(error.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(records));
  state.counters["setup_s"] = bundle->setup_seconds;
  state.counters["bundle_MB"] = bundle->megabytes;
}
// The large sizes are left out of bench.smoke (bench/CMakeLists.txt): their set-up alone
// takes seconds to tens of seconds and they run the code of the small one.
BENCHMARK(BM_AuditVerifyBundle)
    ->ArgName("records")
    ->Arg(1000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coffre
