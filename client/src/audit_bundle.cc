#include "coffre/client/audit_bundle.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "audit_bundle_format.h"
#include "client_impl.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/client_event.h"
#include "coffre/audit/signed_note.h"
#include "coffre/crypto/kdf.h"
#include "coffre/protocol/signed_objects.h"

namespace coffre::client {
namespace {

using bundle::kCheckpointFile;
using bundle::kManifestFile;
using bundle::kProofsFile;
using bundle::kRecordsBinaryFile;
using bundle::kRecordsCsvFile;
using bundle::kRecordsJsonFile;
using bundle::kSignatureFile;

// manifest.json (a certificate and a few hashes), manifest.sig and checkpoint.txt are a few
// kilobytes; anything larger is not a bundle of ours.
constexpr std::uintmax_t kMaxSmallFile = std::uintmax_t{1} << 20;
// The record files are read whole. 16 GiB holds about twenty million records, beyond what
// one bundle for a court is expected to carry.
constexpr std::uintmax_t kMaxRecordsFile = std::uintmax_t{1} << 34;
// Records are checked in runs of this many, handed to the next free thread; a run shares
// the upper nodes of its proofs (bundle::InclusionBatch).
constexpr std::size_t kRunSize = 2048;
// Threads that check records: one per core, bounded so that a large machine does not
// spawn more threads than runs are worth.
constexpr std::size_t kMaxWorkers = 8;

// A whole file in memory. Read rather than mapped: a mapping of a file that another
// process truncates meanwhile kills the verifier with SIGBUS. The copy is the price of
// that (measured: about 0.6 CPU-seconds per million records, as much as all the checks).
struct FileBytes {
  std::unique_ptr<std::uint8_t[]> data;
  std::size_t size = 0;

  std::span<const std::uint8_t> bytes() const { return {data.get(), size}; }
  std::string_view text() const { return {reinterpret_cast<const char*>(data.get()), size}; }
};

Result<FileBytes> ReadFile(const std::filesystem::path& path, std::uintmax_t limit) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Fail(ErrorCode::kNotFound, "a file of the bundle is missing");
  }
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return Fail(ErrorCode::kNotFound, "a file of the bundle is missing");
  if (size > limit) return Fail(ErrorCode::kResourceExhausted, "a file of the bundle is too large");
  FileBytes file;
  file.size = static_cast<std::size_t>(size);
  try {
    // Not zeroed first: every byte is overwritten by the read.
    file.data = std::make_unique_for_overwrite<std::uint8_t[]>(std::max<std::size_t>(file.size, 1));
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(file.data.get()), static_cast<std::streamsize>(file.size));
    if (!in || in.gcount() != static_cast<std::streamsize>(file.size) ||
        in.peek() != std::ifstream::traits_type::eof()) {
      return Fail(ErrorCode::kIo, "cannot read a file of the bundle");
    }
  } catch (const std::bad_alloc&) {
    return Fail(ErrorCode::kResourceExhausted, "not enough memory to read the bundle");
  } catch (const std::exception&) {
    return Fail(ErrorCode::kIo, "cannot read a file of the bundle");
  }
  return file;
}

// Runs task(w) for w in [0, count) on threads of their own, or on this one for those
// that cannot be started (the work is the same, only slower).
void RunParallel(std::size_t count, const std::function<void(std::size_t)>& task) {
  std::vector<std::thread> threads;
  std::size_t started = 1;
  try {
    threads.reserve(count);
    for (; started < count; ++started) threads.emplace_back(task, started);
  } catch (const std::exception&) {
  }
  task(0);
  for (std::thread& thread : threads) thread.join();
  for (std::size_t w = started; w < count; ++w) task(w);
}

AuditBundleReport Failed(AuditBundleReport report, std::string problem, std::string where) {
  report.ok = false;
  report.problem = std::move(problem);
  report.where = std::move(where);
  return report;
}

// "records.jsonl line 12".
std::string Where(std::string_view file, std::string_view unit, std::uint64_t number) {
  std::string where(file);
  where += ' ';
  where += unit;
  where += ' ';
  where += std::to_string(number);
  return where;
}

// The start of every line of `text` and its end (one past the newline, or the end of the
// text for a last line without one), as views into it.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const void* found = std::memchr(text.data() + start, '\n', text.size() - start);
    const std::size_t end =
        found == nullptr
            ? text.size()
            : static_cast<std::size_t>(static_cast<const char*>(found) - text.data()) + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
}

// What went wrong with one record. Evidence problems are in records.bin or proofs.bin (the
// entry, its proof, what the record says of its details); view problems are a JSON or CSV
// line that does not say what the evidence says.
struct RecordProblem {
  std::size_t position = 0;
  bool evidence = true;
  // An inclusion proof that fails is the fault of proofs.bin when records.bin is as the
  // manifest says, of records.bin otherwise: `where` is set once that is known.
  bool inclusion = false;
  const char* problem = "";
  std::string where;
};

// A record with its entry decoded and its proof: what every per-record check works on.
struct DecodedRecord {
  std::size_t position = 0;  // 0-based, the same in every file of records
  bundle::BinaryRecord binary;
  audit::Entry entry;
  std::span<const std::uint8_t> proof;
};

// One thread's state for checking records.
struct RecordChecker {
  explicit RecordChecker(const audit::Checkpoint& checkpoint)
      : proofs(checkpoint.size, checkpoint.root) {}

  bundle::InclusionBatch proofs;
  std::string line;  // reused for each rebuilt line
};

RecordProblem EvidenceProblem(std::string_view file, std::size_t position, const char* problem) {
  return RecordProblem{position, true, false, problem, Where(file, "record", position + 1)};
}

// Every check of one decoded record against the signed log and against its lines. A check
// that belongs to a single record (a signature the entry carries, say) goes here: it then
// runs on every core with the others.
std::optional<RecordProblem> CheckRecord(const DecodedRecord& record, std::string_view json_line,
                                         std::string_view csv_line, RecordChecker& checker) {
  const bundle::BinaryRecord& binary = record.binary;
  if ((binary.details == bundle::DetailsState::kNone) != !record.entry.details_hash) {
    return EvidenceProblem(kRecordsBinaryFile, record.position,
                           "the record's details state contradicts its entry");
  }
  if (record.entry.client_event && !audit::VerifyClientEventSignature(*record.entry.client_event)) {
    return EvidenceProblem(kRecordsBinaryFile, record.position,
                           "the device's signature on its event does not verify");
  }
  if (!checker.proofs.Verify(binary.index, audit::HashLeaf(binary.entry), record.proof)) {
    return RecordProblem{record.position, true, true,
                         "the entry is not in the signed log at its index", ""};
  }
  checker.line.clear();
  bundle::AppendJsonLine(binary.index, record.entry, binary.details, checker.line);
  if (checker.line != json_line) {
    return RecordProblem{record.position, false, false,
                         "the JSON line differs from its signed record",
                         Where(kRecordsJsonFile, "line", record.position + 1)};
  }
  checker.line.clear();
  bundle::AppendCsvLine(binary.index, record.entry, binary.details, checker.line);
  if (checker.line != csv_line) {
    return RecordProblem{record.position, false, false,
                         "the CSV line differs from its signed record",
                         Where(kRecordsCsvFile, "line", record.position + 2)};
  }
  return std::nullopt;
}

// Where each record of a binary file starts, once its header and every record's framing
// are checked; a problem when they are not as the format says.
struct Scan {
  std::vector<std::size_t> offsets;
  std::optional<RecordProblem> problem;
  // records.bin only: the first position whose log index is not above the one before
  // (the record count when there is none).
  std::size_t disorder = 0;
};

// `read(data, offset)` reads one record or proof and returns its log index (0 for a
// proof), nullopt when it is malformed.
template <typename Read>
Scan ScanFile(std::span<const std::uint8_t> data, std::string_view magic, std::string_view file,
              std::uint64_t count, std::size_t min_size, Read read) {
  Scan scan;
  const auto declared = bundle::ReadFileHeader(data, magic);
  if (!declared || *declared != count) {
    scan.problem = RecordProblem{0, true, false,
                                 "the file's header is not the bundle's or counts other records",
                                 std::string(file)};
    return scan;
  }
  // Bounded before allocating: a count the file cannot hold is refused here.
  if (count > (data.size() - bundle::HeaderSize(magic)) / min_size) {
    scan.problem = RecordProblem{0, true, false, "the file is shorter than its record count",
                                 std::string(file)};
    return scan;
  }
  const auto records = static_cast<std::size_t>(count);
  scan.offsets.resize(records);
  scan.disorder = records;
  std::size_t offset = bundle::HeaderSize(magic);
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i < records; ++i) {
    scan.offsets[i] = offset;
    const std::optional<std::uint64_t> index = read(data, offset);
    if (!index) {
      scan.problem = EvidenceProblem(file, i, "the record is malformed or truncated");
      return scan;
    }
    if (i > 0 && *index <= previous && scan.disorder == records) scan.disorder = i;
    previous = *index;
  }
  if (offset != data.size()) {
    scan.problem =
        RecordProblem{records, true, false, "bytes follow the last record", std::string(file)};
  }
  return scan;
}

Scan ScanRecords(std::span<const std::uint8_t> data, std::uint64_t count) {
  return ScanFile(
      data, bundle::kRecordsMagic, kRecordsBinaryFile, count, bundle::kMinRecordSize,
      [](std::span<const std::uint8_t> bytes, std::size_t& offset) -> std::optional<std::uint64_t> {
        const auto record = bundle::ReadBinaryRecord(bytes, offset);
        if (!record) return std::nullopt;
        return record->index;
      });
}

Scan ScanProofs(std::span<const std::uint8_t> data, std::uint64_t count) {
  return ScanFile(
      data, bundle::kProofsMagic, kProofsFile, count, bundle::kMinProofSize,
      [](std::span<const std::uint8_t> bytes, std::size_t& offset) -> std::optional<std::uint64_t> {
        if (!bundle::ReadProof(bytes, offset)) return std::nullopt;
        return 0;
      });
}

// The record at `position`, decoded from the binary files (framing validated by the scans)
// and checked.
struct Evidence {
  std::span<const std::uint8_t> records;
  std::span<const std::uint8_t> proofs;
  const Scan* record_scan;
  const Scan* proof_scan;
};

std::optional<RecordProblem> DecodeAndCheck(const Evidence& evidence, std::size_t position,
                                            std::string_view json_line, std::string_view csv_line,
                                            RecordChecker& checker) {
  DecodedRecord record;
  record.position = position;
  std::size_t offset = evidence.record_scan->offsets[position];
  auto binary = bundle::ReadBinaryRecord(evidence.records, offset);
  offset = evidence.proof_scan->offsets[position];
  auto proof = bundle::ReadProof(evidence.proofs, offset);
  if (!binary || !proof) {
    return EvidenceProblem(kRecordsBinaryFile, position, "the record is malformed");
  }
  record.binary = *binary;
  record.proof = *proof;
  auto entry = audit::DecodeEntry(record.binary.entry);
  if (!entry) {
    return EvidenceProblem(kRecordsBinaryFile, position, "the entry is not a valid encoding");
  }
  record.entry = std::move(*entry);
  return CheckRecord(record, json_line, csv_line, checker);
}

// Each device's signed events, in log order (decision 0017): a statement reused under a
// number, or a broken link, fails; numbers absent from the bundle are reported, since an
// export's filters may leave them out. Runs after every signature verified, on the few
// records that carry an event (format 2 entries), so it costs one pass over the framing.
std::optional<RecordProblem> FollowDeviceEvents(const Evidence& evidence, std::size_t count,
                                                AuditBundleReport& report) {
  audit::ClientEventChains chains;
  for (std::size_t position = 0; position < count; ++position) {
    std::size_t offset = evidence.record_scan->offsets[position];
    const auto binary = bundle::ReadBinaryRecord(evidence.records, offset);
    if (!binary || binary->entry[0] != audit::kClientEntryFormatVersion) continue;
    auto entry = audit::DecodeEntry(binary->entry);
    if (!entry || !entry->client_event) continue;  // checked with its record already
    ++report.device_events;
    std::uint64_t from = 0;
    std::uint64_t to = 0;
    switch (chains.Add(*entry->client_event, &from, &to)) {
      case audit::ClientEventChains::Link::kFork:
        return EvidenceProblem(kRecordsBinaryFile, position,
                               "a device's signed events fork: two under one number, or a broken link");
      case audit::ClientEventChains::Link::kGap: {
        std::string note = "events ";
        note += std::to_string(from);
        note += "..";
        note += std::to_string(to);
        note += " of the device before record ";
        note += std::to_string(position + 1);
        note += " are not in this bundle";
        report.notes.push_back(std::move(note));
        break;
      }
      default:
        break;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<AuditBundleReport> VerifyAuditBundle(const std::filesystem::path& folder,
                                            const std::optional<std::string>& pinned_log_key) {
  AuditBundleReport report;
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    return Fail(ErrorCode::kNotFound, "the bundle folder does not exist");
  }
  auto manifest_file = ReadFile(folder / kManifestFile, kMaxSmallFile);
  if (!manifest_file) {
    return Failed(report, "the manifest is missing or unreadable", std::string(kManifestFile));
  }
  auto signature_file = ReadFile(folder / kSignatureFile, kMaxSmallFile);
  if (!signature_file) {
    return Failed(report, "the manifest signature is missing", std::string(kSignatureFile));
  }
  const std::string_view manifest_text = manifest_file->text();

  // 1. The manifest, signed by the device it names, certified by the user key it names.
  // Fields are read with find and a type check: nlohmann's value() and get() throw on a
  // field of another type, and the manifest is input like any other.
  const auto text = [](const nlohmann::json& object, std::string_view key) -> std::string {
    const auto it = object.find(std::string(key));
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto number = [](const nlohmann::json& object,
                         std::string_view key) -> std::optional<std::uint64_t> {
    const auto it = object.find(std::string(key));
    if (it == object.end() || !it->is_number_unsigned()) return std::nullopt;
    return it->get<std::uint64_t>();
  };
  nlohmann::json manifest =
      nlohmann::json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object() ||
      text(manifest, "format") != kAuditBundleFormat) {
    return Failed(report,
                  "the manifest is not a Coffre audit bundle manifest (of this format version)",
                  std::string(kManifestFile));
  }
  const auto exporter_field = manifest.find("exported_by");
  const nlohmann::json exporter = exporter_field != manifest.end() && exporter_field->is_object()
                                      ? *exporter_field
                                      : nlohmann::json::object();
  const std::string certificate_hex = text(exporter, "certificate");
  auto user_key_bytes = ParseHex(text(exporter, "user_identity_key"), 32);
  auto certificate_bytes = ParseHex(certificate_hex, certificate_hex.size() / 2);
  // Exactly the lowercase hex the export writes and a newline: any other spelling of the
  // same signature is a changed byte too.
  const std::string_view signature_text = signature_file->text();
  auto signature = ParseHex(signature_text.substr(0, 128), 64);
  if (!user_key_bytes || !certificate_bytes || !signature ||
      Hex(*signature) + "\n" != signature_text) {
    return Failed(report, "the manifest names no valid exporter, or the signature is malformed",
                  std::string(kSignatureFile));
  }
  auto user_key = crypto::VerifyKey::FromBytes(*user_key_bytes);
  wire::DeviceCertificate certificate;
  if (!user_key || certificate_bytes->size() > kMaxSmallFile ||
      !certificate.ParseFromArray(certificate_bytes->data(),
                                  static_cast<int>(certificate_bytes->size()))) {
    return Failed(report, "the exporter's keys are malformed", std::string(kManifestFile));
  }
  auto device = protocol::VerifyDeviceCertificate(certificate, *user_key);
  if (!device) {
    return Failed(report, "the exporting device's certificate is not signed by the user key",
                  std::string(kManifestFile));
  }
  if (!device->signing_key.Verify(bundle::kManifestLabel, manifest_file->bytes(), *signature)) {
    return Failed(report,
                  "the manifest is not signed by the exporting device (changed since export)",
                  "manifest.json / manifest.sig");
  }
  report.exported_by = device->user_id + "/" + std::to_string(device->device_id);

  // 2. The checkpoint as it was when the manifest was signed, under the pinned log key.
  const auto files_field = manifest.find("files");
  const nlohmann::json files = files_field != manifest.end() && files_field->is_object()
                                   ? *files_field
                                   : nlohmann::json::object();
  const auto record_count = number(manifest, "records");
  const auto tree_size = number(manifest, "tree_size");
  if (!record_count || !tree_size || text(files, kCheckpointFile).empty() ||
      text(files, kRecordsBinaryFile).empty()) {
    return Failed(report, "the manifest lists no files or no record count",
                  std::string(kManifestFile));
  }
  auto checkpoint_file = ReadFile(folder / kCheckpointFile, kMaxSmallFile);
  if (!checkpoint_file) {
    return Failed(report, "a file the manifest lists is missing", std::string(kCheckpointFile));
  }
  if (Hex(crypto::Blake2b256(checkpoint_file->bytes())) != text(files, kCheckpointFile)) {
    return Failed(report, "the file changed since it was exported", std::string(kCheckpointFile));
  }
  report.log_key = pinned_log_key.value_or(text(manifest, "log_key"));
  report.log_key_pinned = pinned_log_key.has_value();
  report.origin = text(manifest, "origin");
  auto verifier = audit::NoteVerifier::FromVerifierKey(report.log_key);
  if (!verifier) {
    return Failed(report, "the log key is malformed",
                  pinned_log_key ? "--log-key" : std::string(kManifestFile));
  }
  if (pinned_log_key && text(manifest, "log_key") != *pinned_log_key) {
    return Failed(report, "the bundle names another log key than the pinned one",
                  std::string(kManifestFile));
  }
  auto checkpoint =
      audit::ParseAndVerifyCheckpoint(checkpoint_file->text(), *verifier, report.origin);
  if (!checkpoint) {
    return Failed(report, "the checkpoint is not signed by the log key",
                  std::string(kCheckpointFile));
  }
  report.tree_size = checkpoint->size;
  if (*tree_size != checkpoint->size || text(manifest, "root") != Hex(checkpoint->root)) {
    return Failed(report, "the manifest and the checkpoint name different trees",
                  std::string(kManifestFile));
  }
  if (*record_count > checkpoint->size) {
    return Failed(report, "the manifest counts more records than the log holds",
                  std::string(kManifestFile));
  }

  // 3. The record files, read and indexed on two threads: the binary ones framed record by
  // record, the views split into lines.
  Result<FileBytes> records_file = Fail(ErrorCode::kInternal, "not read");
  Result<FileBytes> proofs_file = Fail(ErrorCode::kInternal, "not read");
  Result<FileBytes> json_file = Fail(ErrorCode::kInternal, "not read");
  Result<FileBytes> csv_file = Fail(ErrorCode::kInternal, "not read");
  Scan record_scan;
  Scan proof_scan;
  std::vector<std::string_view> json_lines;
  std::vector<std::string_view> csv_lines;
  std::atomic<bool> indexed{true};
  RunParallel(2, [&](std::size_t task) {
    try {
      if (task == 0) {
        records_file = ReadFile(folder / kRecordsBinaryFile, kMaxRecordsFile);
        if (records_file) record_scan = ScanRecords(records_file->bytes(), *record_count);
        proofs_file = ReadFile(folder / kProofsFile, kMaxRecordsFile);
        if (proofs_file) proof_scan = ScanProofs(proofs_file->bytes(), *record_count);
      } else {
        json_file = ReadFile(folder / kRecordsJsonFile, kMaxRecordsFile);
        if (json_file) json_lines = Lines(json_file->text());
        csv_file = ReadFile(folder / kRecordsCsvFile, kMaxRecordsFile);
        if (csv_file) csv_lines = Lines(csv_file->text());
      }
    } catch (const std::exception&) {
      indexed = false;  // the indexes did not fit in memory
    }
  });
  if (!indexed) return Fail(ErrorCode::kResourceExhausted, "not enough memory to index the bundle");
  for (const auto& [file, name] :
       {std::pair{&records_file, kRecordsBinaryFile}, std::pair{&proofs_file, kProofsFile},
        std::pair{&json_file, kRecordsJsonFile}, std::pair{&csv_file, kRecordsCsvFile}}) {
    if (!*file) {
      if (file->error().code() == ErrorCode::kResourceExhausted) return file->error();
      return Failed(report, "a record file is missing or unreadable", std::string(name));
    }
  }
  if (record_scan.problem) {
    return Failed(report, record_scan.problem->problem, record_scan.problem->where);
  }
  if (proof_scan.problem) {
    return Failed(report, proof_scan.problem->problem, proof_scan.problem->where);
  }
  if (csv_lines.empty() || csv_lines[0] != bundle::kCsvHeader) {
    return Failed(report, "the CSV header is not the bundle's", Where(kRecordsCsvFile, "line", 1));
  }
  if (json_lines.size() != *record_count) {
    return Failed(report, "the files do not hold the same number of records",
                  std::string(kRecordsJsonFile));
  }
  if (csv_lines.size() != *record_count + 1) {
    return Failed(report, "the files do not hold the same number of records",
                  std::string(kRecordsCsvFile));
  }

  // 4. Every record: a valid entry, in the signed tree at its index, and its JSON and CSV
  // lines exactly what it says; meanwhile one thread hashes records.bin for the manifest.
  // Runs go to whichever thread is free, in order, so every record before the first bad
  // one found is checked and the one reported is the lowest.
  const std::size_t count = json_lines.size();
  const std::size_t runs = (count + kRunSize - 1) / kRunSize;
  const std::size_t workers =
      std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1,
                              std::min(kMaxWorkers, std::max<std::size_t>(runs, 1)));
  const Evidence evidence{records_file->bytes(), proofs_file->bytes(), &record_scan, &proof_scan};
  const std::string records_hash = text(files, kRecordsBinaryFile);
  bool records_hash_ok = false;
  std::atomic<std::size_t> next_run{0};
  std::atomic<std::size_t> first_bad{count};
  std::atomic<bool> out_of_memory{false};
  std::vector<std::optional<RecordProblem>> found(workers);
  RunParallel(workers, [&](std::size_t worker) {
    try {
      if (worker == 0) records_hash_ok = Hex(crypto::Blake2b256(evidence.records)) == records_hash;
      RecordChecker checker(*checkpoint);
      for (;;) {
        const std::size_t run = next_run.fetch_add(1, std::memory_order_relaxed);
        const std::size_t begin = run * kRunSize;
        if (run >= runs || begin >= first_bad.load(std::memory_order_relaxed)) return;
        const std::size_t end = std::min(count, begin + kRunSize);
        for (std::size_t i = begin; i < end && i < first_bad.load(std::memory_order_relaxed); ++i) {
          auto problem = DecodeAndCheck(evidence, i, json_lines[i], csv_lines[i + 1], checker);
          if (!problem) continue;
          if (!found[worker] || i < found[worker]->position) found[worker] = std::move(problem);
          std::size_t seen = first_bad.load();
          while (i < seen && !first_bad.compare_exchange_weak(seen, i)) {
          }
          break;
        }
      }
    } catch (const std::exception&) {
      // Only an allocation can throw here; the other threads stop at their next record.
      out_of_memory = true;
      first_bad = 0;
    }
  });
  if (out_of_memory) {
    return Fail(ErrorCode::kResourceExhausted, "not enough memory to check the bundle");
  }
  RecordProblem* first = nullptr;
  for (auto& problem : found) {
    if (problem && (first == nullptr || problem->position < first->position)) first = &*problem;
  }
  if (first != nullptr && first->inclusion) {
    first->where =
        Where(records_hash_ok ? kProofsFile : kRecordsBinaryFile, "record", first->position + 1);
  }
  // The evidence speaks first: a bad entry or proof, then records out of order, then a
  // records.bin changed in a byte no other check covers (a details state); a JSON or CSV
  // line that disagrees with evidence that verified is the view's fault.
  if (first != nullptr && first->evidence) return Failed(report, first->problem, first->where);
  if (record_scan.disorder < count) {
    return Failed(report, "records are repeated or out of order",
                  Where(kRecordsBinaryFile, "record", record_scan.disorder + 1));
  }
  if (!records_hash_ok) {
    return Failed(report, "the file changed since it was exported",
                  std::string(kRecordsBinaryFile));
  }
  if (first != nullptr) return Failed(report, first->problem, first->where);
  if (auto problem = FollowDeviceEvents(evidence, count, report)) {
    return Failed(report, problem->problem, problem->where);
  }
  report.records = count;
  report.ok = true;
  return report;
}

}  // namespace coffre::client
