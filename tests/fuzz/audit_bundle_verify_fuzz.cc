// Fuzz target: client::VerifyAuditBundle (`coffre audit verify-bundle`) on a whole export
// bundle. The input holds the seven files in the framing of audit_bundle_fuzz_inputs.h;
// they are written into a folder made once per process (files overwritten, or removed when
// the input leaves them out) and verified under the fixed pinned log key of
// audit_fuzz_inputs.h. Inputs over 1 MiB are skipped, so each one costs a bounded time.
//
// Invariants (a broken one aborts: it is a finding):
//   - a bundle whose files are at most 1 MiB, in a folder that exists, is always a report
//     (VerifyAuditBundle fails as a Result only when the folder is missing or out of
//     memory), and it never crashes;
//   - a report that is not ok names the problem and where it is;
//   - a report that is ok is one the fuzzer could not have made up. The fuzzer holds no
//     private key: every signature it can present was made by audit_seed_corpus_tool.cc,
//     which signs manifests only with ExporterDeviceKey() and checkpoints only with the
//     log key. Ed25519 signatures are deterministic, and libsodium refuses non-canonical
//     encodings, so an accepted manifest.sig must be byte for byte that key's signature of
//     manifest.json; any other accepted one would be a forgery, or a signature taken from
//     another context (a certificate, a checkpoint, a device's event). The rest of what
//     the report vouches for is then checked again here, independently of the verifier's
//     batched and multi-threaded code: the checkpoint verifies under the pinned key and is
//     the one the manifest hashes, records.bin is the one the manifest hashes, every entry
//     decodes and is in the signed tree at its index by audit::VerifyInclusion, record by
//     record (the reference for bundle::InclusionBatch), indices increase, every device
//     event's signature verifies, and records.jsonl and records.csv are exactly the lines
//     the records give.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
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

namespace {

namespace bundle = coffre::client::bundle;
using coffre::fuzz::kBundleFiles;

constexpr std::size_t kMaxInput = std::size_t{1} << 20;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "audit_bundle_verify_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// A folder of our own under the temporary directory, removed when the process exits
// normally (a crash leaves it, with the bundle that crashed in it).
class BundleFolder {
 public:
  BundleFolder() {
    std::error_code ec;
    std::string name =
        (std::filesystem::temp_directory_path(ec) / "coffre-bundle-fuzz-XXXXXX").string();
    if (ec || mkdtemp(name.data()) == nullptr) {
      std::fprintf(stderr, "audit_bundle_verify_fuzz: cannot create a temporary folder\n");
      std::abort();
    }
    path_ = name;
  }
  ~BundleFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  BundleFolder(const BundleFolder&) = delete;
  BundleFolder& operator=(const BundleFolder&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

const std::filesystem::path& Folder() {
  static const BundleFolder folder;
  return folder.path();
}

const std::optional<std::string>& PinnedKey() {
  static const std::optional<std::string> key = coffre::fuzz::AuditLogVerifier().VerifierKey();
  return key;
}

// Each file is removed and written anew rather than truncated: ext4 (auto_da_alloc) flushes
// a file truncated and rewritten to disk on close, which made every input wait on the disk.
void WriteBundle(const coffre::fuzz::BundleFiles& files) {
  for (std::size_t i = 0; i < kBundleFiles.size(); ++i) {
    const std::filesystem::path path = Folder() / kBundleFiles[i];
    std::error_code ec;
    std::filesystem::remove(path, ec);
    Require(!ec, "(set-up) a file of the previous input can be removed");
    if (!files[i]) continue;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(files[i]->data(), static_cast<std::streamsize>(files[i]->size()));
    out.close();
    Require(static_cast<bool>(out), "(set-up) the bundle's files can be written");
  }
}

std::span<const std::uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string JsonText(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// What an accepted report vouches for, checked again without the verifier's code paths
// (see the file comment). Every file is present: a report cannot be ok without all seven.
void CheckAccepted(const coffre::fuzz::BundleFiles& files,
                   const coffre::client::AuditBundleReport& report) {
  using namespace coffre;
  for (const auto& file : files) Require(file.has_value(), "an accepted bundle has every file");
  const std::string& manifest_text = *files[0];
  const std::string& signature_text = *files[1];
  const std::string& checkpoint_text = *files[2];
  const std::span<const std::uint8_t> records = Bytes(*files[3]);
  const std::span<const std::uint8_t> proofs = Bytes(*files[4]);

  Require(signature_text == fuzz::LowerHex(fuzz::ExporterDeviceKey().Sign(bundle::kManifestLabel,
                                                                          Bytes(manifest_text))) +
                                "\n",
          "an accepted manifest.sig is the exporting device's own signature of manifest.json");
  std::string exporter(fuzz::kExporterUser);
  exporter += '/';
  exporter += std::to_string(fuzz::kExporterDevice);
  Require(report.exported_by == exporter, "the report names the device that signed");
  Require(report.log_key_pinned && report.log_key == *PinnedKey(),
          "an accepted bundle was checked under the pinned log key");

  const auto checkpoint = audit::ParseAndVerifyCheckpoint(checkpoint_text, fuzz::AuditLogVerifier(),
                                                          fuzz::kAuditOrigin);
  Require(checkpoint.has_value(), "an accepted checkpoint verifies under the pinned key");
  Require(report.origin == fuzz::kAuditOrigin && report.tree_size == checkpoint->size,
          "the report names the checkpoint's origin and tree");

  const nlohmann::json manifest =
      nlohmann::json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  Require(manifest.is_object(), "an accepted manifest is a JSON object");
  const auto listed = manifest.find("files");
  Require(listed != manifest.end() && listed->is_object(), "an accepted manifest lists files");
  Require(JsonText(*listed, "checkpoint.txt") ==
                  fuzz::LowerHex(crypto::Blake2b256(Bytes(checkpoint_text))) &&
              JsonText(*listed, "records.bin") == fuzz::LowerHex(crypto::Blake2b256(records)),
          "checkpoint.txt and records.bin are the ones the manifest hashes");
  Require(JsonText(manifest, "root") == fuzz::LowerHex(checkpoint->root),
          "the manifest names the checkpoint's root");
  const auto count_field = manifest.find("records");
  Require(count_field != manifest.end() && count_field->is_number_unsigned() &&
              count_field->get<std::uint64_t>() == report.records,
          "the report counts the records the manifest counts");

  Require(bundle::ReadFileHeader(records, bundle::kRecordsMagic) == report.records &&
              bundle::ReadFileHeader(proofs, bundle::kProofsMagic) == report.records,
          "both binary files count the report's records");
  std::size_t record_at = bundle::HeaderSize(bundle::kRecordsMagic);
  std::size_t proof_at = bundle::HeaderSize(bundle::kProofsMagic);
  std::string json;
  std::string csv(bundle::kCsvHeader);
  std::optional<std::uint64_t> previous;
  for (std::uint64_t i = 0; i < report.records; ++i) {
    const auto record = bundle::ReadBinaryRecord(records, record_at);
    const auto proof_bytes = bundle::ReadProof(proofs, proof_at);
    Require(record && proof_bytes, "every accepted record and proof is well framed");
    Require(!previous || record->index > *previous, "accepted records are in increasing order");
    previous = record->index;
    const auto entry = audit::DecodeEntry(record->entry);
    Require(entry.has_value(), "every accepted entry decodes");
    Require((record->details == bundle::DetailsState::kNone) == !entry->details_hash,
            "an accepted details state agrees with its entry");
    Require(!entry->client_event || audit::VerifyClientEventSignature(*entry->client_event),
            "every accepted device event is signed by its device");
    const auto proof = audit::ProofFromBytes(*proof_bytes);
    Require(proof.has_value(), "an accepted proof is whole hashes");
    Require(audit::VerifyInclusion(record->index, checkpoint->size, audit::HashLeaf(record->entry),
                                   *proof, checkpoint->root)
                .has_value(),
            "every accepted entry is in the signed tree at its index (reference check)");
    bundle::AppendJsonLine(record->index, *entry, record->details, json);
    bundle::AppendCsvLine(record->index, *entry, record->details, csv);
  }
  Require(record_at == records.size() && proof_at == proofs.size(),
          "nothing follows the last accepted record or proof");
  Require(json == *files[5] && csv == *files[6],
          "records.jsonl and records.csv are exactly the lines the records give");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInput) return 0;
  const coffre::fuzz::BundleFiles files = coffre::fuzz::SplitBundle({data, size});
  WriteBundle(files);
  const auto report = coffre::client::VerifyAuditBundle(Folder(), PinnedKey());
  Require(report.has_value(), "a small bundle in an existing folder is always a report");
  if (!report->ok) {
    Require(!report->problem.empty() && !report->where.empty(),
            "a bundle that does not verify is told what failed and where");
    return 0;
  }
  CheckAccepted(files, *report);
  return 0;
}
