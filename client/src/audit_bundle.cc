#include "coffre/client/audit_bundle.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "audit_bundle_format.h"
#include "client_impl.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/signed_note.h"
#include "coffre/crypto/kdf.h"
#include "coffre/protocol/signed_objects.h"

namespace coffre::client {
namespace bundle {
namespace {

// "2026-11-29T01:19:26.011Z": what compliance exports and people read.
std::string IsoTime(std::uint64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> at{milliseconds(static_cast<std::int64_t>(unix_ms))};
  const auto day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss time{at - day};
  char out[64];  // room for any year the type can hold, as the compiler checks
  std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<long long>(time.hours().count()),
                static_cast<long long>(time.minutes().count()),
                static_cast<long long>(time.seconds().count()),
                static_cast<long long>(time.subseconds().count()));
  return out;
}

template <typename Id>
std::string HexOr(const std::optional<Id>& id) {
  return id ? Hex(*id) : std::string();
}

}  // namespace

std::string RecordJsonLine(const RecordInput& record) {
  const audit::Entry& entry = *record.entry;
  nlohmann::json proof = nlohmann::json::array();
  for (const audit::Hash& hash : record.proof) proof.push_back(Hex(hash));
  const nlohmann::json line = {
      {"index", record.index},
      {"time", IsoTime(entry.relay_time_ms)},
      {"time_ms", entry.relay_time_ms},
      {"actor", HexOr(entry.actor)},
      {"device", entry.device_id},
      {"action", std::string(audit::EventTypeName(entry.type))},
      {"object", HexOr(entry.item_id)},
      {"result", std::string(audit::EventResultName(entry.result))},
      {"node", entry.node},
      {"jurisdiction", entry.jurisdiction},
      {"team", HexOr(entry.team_id)},
      {"version", entry.object_version},
      {"details", std::string(record.details)},
      {"entry", Hex(record.encoded)},
      {"proof", proof},
  };
  std::string out = line.dump();
  out += '\n';
  return out;
}

std::string RecordCsvLine(const RecordInput& record) {
  const audit::Entry& entry = *record.entry;
  // Every value is hex, a number or a name of [a-z0-9._-A-Z]: no quoting is ever needed.
  std::string out = IsoTime(entry.relay_time_ms);
  for (const std::string& field :
       {HexOr(entry.actor), std::to_string(entry.device_id),
        std::string(audit::EventTypeName(entry.type)), HexOr(entry.item_id),
        std::string(audit::EventResultName(entry.result)), entry.node, entry.jurisdiction,
        std::to_string(record.index), HexOr(entry.team_id), std::to_string(entry.object_version),
        std::string(record.details)}) {
    out += ',';
    out += field;
  }
  out += '\n';
  return out;
}

}  // namespace bundle

namespace {

constexpr std::uintmax_t kMaxBundleFile = std::uintmax_t{1} << 31;  // 2 GiB

Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(ErrorCode::kNotFound, "a file of the bundle is missing");
  if (size > kMaxBundleFile) return Fail(ErrorCode::kResourceExhausted, "a file of the bundle is too large");
  std::string data(static_cast<std::size_t>(size), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (!in || in.gcount() != static_cast<std::streamsize>(data.size())) {
    return Fail(ErrorCode::kIo, "cannot read a file of the bundle");
  }
  return data;
}

AuditBundleReport Failed(AuditBundleReport report, std::string problem, std::string where) {
  report.ok = false;
  report.problem = std::move(problem);
  report.where = std::move(where);
  return report;
}

// The lines of `text`, each with its newline, as views into it.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start + 1));
    start = end + 1;
  }
  return lines;
}

struct RecordProblem {
  std::string problem;
  std::string where;
};

// Checks one record: its entry, its inclusion in the checkpoint's tree, and its JSON and
// CSV lines rebuilt from the entry. Sets `index` to the record's log index.
std::optional<RecordProblem> CheckRecord(std::size_t line_number, std::string_view json_line,
                                         std::string_view csv_line,
                                         const audit::Checkpoint& checkpoint, std::uint64_t& index) {
  using namespace bundle;
  const std::string where = std::string(kRecordsJsonFile) + " line " + std::to_string(line_number + 1);
  auto problem = [&](const char* what) { return std::optional<RecordProblem>(RecordProblem{what, where}); };
  const nlohmann::json line = nlohmann::json::parse(json_line, nullptr, false);
  if (line.is_discarded() || !line.is_object()) return problem("not a JSON record");
  const auto text = [&](const char* key) -> std::string {
    const auto it = line.find(key);
    return it != line.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string entry_hex = text("entry");
  auto encoded = ParseHex(entry_hex, entry_hex.size() / 2);
  if (!encoded) return problem("the record holds no entry");
  auto entry = audit::DecodeEntry(*encoded);
  if (!entry) return problem("the entry is not a valid encoding");
  std::vector<audit::Hash> proof;
  const auto proof_field = line.find("proof");
  if (proof_field == line.end() || !proof_field->is_array() ||
      proof_field->size() > audit::kMaxProofHashes) {
    return problem("the inclusion proof is malformed");
  }
  for (const auto& element : *proof_field) {
    if (!element.is_string()) return problem("the inclusion proof is malformed");
    auto hash = ParseHex(element.get<std::string>(), audit::kHashSize);
    if (!hash) return problem("the inclusion proof is malformed");
    audit::Hash h{};
    std::copy(hash->begin(), hash->end(), h.begin());
    proof.push_back(h);
  }
  const auto index_field = line.find("index");
  if (index_field == line.end() || !index_field->is_number_unsigned()) return problem("the record has no index");
  index = index_field->get<std::uint64_t>();
  if (!audit::VerifyInclusion(index, checkpoint.size, audit::HashLeaf(*encoded), proof, checkpoint.root)) {
    return problem("the entry is not in the signed log at its index");
  }
  const std::string details = text("details");
  if (details != "none" && details != "sealed" && details != "erased") {
    return problem("the record's details state is unknown");
  }
  const RecordInput input{index, *encoded, &*entry, details, proof};
  if (RecordJsonLine(input) != json_line) return problem("the record's fields differ from its signed entry");
  if (RecordCsvLine(input) != csv_line) {
    return RecordProblem{"the CSV line differs from its signed entry",
                         std::string(kRecordsCsvFile) + " line " + std::to_string(line_number + 2)};
  }
  return std::nullopt;
}

}  // namespace

Result<AuditBundleReport> VerifyAuditBundle(const std::filesystem::path& folder,
                                            const std::optional<std::string>& pinned_log_key) {
  using namespace bundle;
  AuditBundleReport report;
  if (!std::filesystem::is_directory(folder)) {
    return Fail(ErrorCode::kNotFound, "the bundle folder does not exist");
  }
  auto manifest_text = ReadFile(folder / kManifestFile);
  if (!manifest_text) return Failed(report, "the manifest is missing or unreadable", std::string(kManifestFile));
  auto signature_text = ReadFile(folder / kSignatureFile);
  if (!signature_text) return Failed(report, "the manifest signature is missing", std::string(kSignatureFile));

  // 1. The manifest, signed by the device it names, certified by the user key it names.
  nlohmann::json manifest = nlohmann::json::parse(*manifest_text, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object() || manifest.value("format", "") != kAuditBundleFormat) {
    return Failed(report, "the manifest is not a Coffre audit bundle manifest", std::string(kManifestFile));
  }
  const auto text = [&](const char* key) -> std::string {
    const auto it = manifest.find(key);
    return it != manifest.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto& exporter = manifest.contains("exported_by") && manifest["exported_by"].is_object()
                             ? manifest["exported_by"]
                             : nlohmann::json::object();
  auto user_key_bytes = ParseHex(exporter.value("user_identity_key", ""), 32);
  auto certificate_bytes = ParseHex(exporter.value("certificate", ""), exporter.value("certificate", "").size() / 2);
  std::string signature_hex = *signature_text;
  while (!signature_hex.empty() && (signature_hex.back() == '\n' || signature_hex.back() == '\r')) signature_hex.pop_back();
  auto signature = ParseHex(signature_hex, 64);
  if (!user_key_bytes || !certificate_bytes || !signature) {
    return Failed(report, "the manifest names no valid exporter, or the signature is malformed", std::string(kSignatureFile));
  }
  auto user_key = crypto::VerifyKey::FromBytes(*user_key_bytes);
  wire::DeviceCertificate certificate;
  if (!user_key || !certificate.ParseFromArray(certificate_bytes->data(), static_cast<int>(certificate_bytes->size()))) {
    return Failed(report, "the exporter's keys are malformed", std::string(kManifestFile));
  }
  auto device = protocol::VerifyDeviceCertificate(certificate, *user_key);
  if (!device) return Failed(report, "the exporting device's certificate is not signed by the user key", std::string(kManifestFile));
  if (!device->signing_key.Verify(kManifestLabel, AsBytes(*manifest_text), *signature)) {
    return Failed(report, "the manifest is not signed by the exporting device (changed since export)",
                  "manifest.json / manifest.sig");
  }
  report.exported_by = device->user_id + "/" + std::to_string(device->device_id);

  // 2. Every file as it was when the manifest was signed.
  if (!manifest.contains("files") || !manifest["files"].is_object()) {
    return Failed(report, "the manifest lists no files", std::string(kManifestFile));
  }
  std::map<std::string, std::string> contents;
  for (const std::string_view name : {kCheckpointFile, kRecordsJsonFile, kRecordsCsvFile}) {
    const std::string file(name);
    const std::string expected = manifest["files"].value(file, "");
    auto data = ReadFile(folder / file);
    if (!data) return Failed(report, "a file the manifest lists is missing", file);
    if (Hex(crypto::Blake2b256(AsBytes(*data))) != expected) {
      return Failed(report, "the file changed since it was exported", file);
    }
    contents[file] = std::move(*data);
  }

  // 3. The checkpoint, under the pinned log key.
  report.log_key = pinned_log_key.value_or(text("log_key"));
  report.log_key_pinned = pinned_log_key.has_value();
  report.origin = text("origin");
  auto verifier = audit::NoteVerifier::FromVerifierKey(report.log_key);
  if (!verifier) return Failed(report, "the log key is malformed", pinned_log_key ? "--log-key" : std::string(kManifestFile));
  if (pinned_log_key && text("log_key") != *pinned_log_key) {
    return Failed(report, "the bundle names another log key than the pinned one", std::string(kManifestFile));
  }
  auto checkpoint = audit::ParseAndVerifyCheckpoint(contents[std::string(kCheckpointFile)], *verifier, report.origin);
  if (!checkpoint) return Failed(report, "the checkpoint is not signed by the log key", std::string(kCheckpointFile));
  report.tree_size = checkpoint->size;
  if (manifest.value("tree_size", std::uint64_t{0}) != checkpoint->size || text("root") != Hex(checkpoint->root)) {
    return Failed(report, "the manifest and the checkpoint name different trees", std::string(kManifestFile));
  }

  // 4. Every record: a valid entry, in the signed tree, and its JSON and CSV lines exactly
  // what that entry says.
  const std::vector<std::string_view> json_lines = Lines(contents[std::string(kRecordsJsonFile)]);
  const std::vector<std::string_view> csv_lines = Lines(contents[std::string(kRecordsCsvFile)]);
  if (csv_lines.empty() || csv_lines[0] != kCsvHeader) {
    return Failed(report, "the CSV header is not the bundle's", std::string(kRecordsCsvFile) + " line 1");
  }
  if (csv_lines.size() != json_lines.size() + 1 ||
      manifest.value("records", std::uint64_t{0}) != json_lines.size()) {
    return Failed(report, "the files do not hold the same number of records", std::string(kRecordsCsvFile));
  }
  // Records are independent: both cores check them, and the first bad one (lowest line)
  // is the one reported.
  const std::size_t count = json_lines.size();
  std::vector<std::uint64_t> indices(count, 0);
  std::vector<std::optional<RecordProblem>> problems(count);
  const std::size_t workers =
      std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, std::max<std::size_t>(count, 1));
  std::vector<std::thread> threads;
  std::atomic<std::size_t> first_bad{count};
  for (std::size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (std::size_t i = w; i < count && i < first_bad.load(std::memory_order_relaxed); i += workers) {
        problems[i] = CheckRecord(i, json_lines[i], csv_lines[i + 1], *checkpoint, indices[i]);
        if (problems[i]) {
          std::size_t seen = first_bad.load();
          while (i < seen && !first_bad.compare_exchange_weak(seen, i)) {
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (first_bad.load() < count) {
    const RecordProblem& problem = *problems[first_bad.load()];
    return Failed(report, problem.problem, problem.where);
  }
  for (std::size_t i = 1; i < count; ++i) {
    if (indices[i] <= indices[i - 1]) {
      return Failed(report, "records are repeated or out of order",
                    std::string(kRecordsJsonFile) + " line " + std::to_string(i + 1));
    }
  }
  report.records = json_lines.size();
  report.ok = true;
  return report;
}

}  // namespace coffre::client
