// How audit records are written into an export bundle (audit_bundle.h, docs/protocol.md
// "Audit export bundle"): shared by the export (client_audit.cc), the offline verification
// (audit_bundle.cc) and the benchmark, so that the verifier reads the binary files with the
// parser that matches the writer and rebuilds each JSON and CSV line with the same code.
//
// The evidence, in two binary files (every integer big-endian):
//     records.bin = "coffre-audit-records/2\n" || u64 record count || record*
//         record  = u64 log index || u8 details state (0 none, 1 sealed, 2 erased)
//                   || u16 n || canonical entry (n = 1..audit::kMaxEntrySize)
//     proofs.bin  = "coffre-audit-proofs/2\n" || u64 record count || proof*
//         proof   = u8 m || m hashes of 32 bytes: the record's RFC 9162 inclusion proof in
//                   the checkpoint's tree (m <= 63), in the order of records.bin
// The manifest hashes records.bin: the selection (which entries, their details state).
// proofs.bin needs no hash: each proof is checked to the root the log key signed, and a
// leaf has one proof in a given tree. records.jsonl and records.csv are views: one line
// per record, in the same order, each a pure function of (index, entry, details state),
// checked byte for byte.
#ifndef COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_
#define COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"

namespace coffre::client::bundle {

inline constexpr std::string_view kCheckpointFile = "checkpoint.txt";
inline constexpr std::string_view kRecordsBinaryFile = "records.bin";
inline constexpr std::string_view kProofsFile = "proofs.bin";
inline constexpr std::string_view kRecordsJsonFile = "records.jsonl";
inline constexpr std::string_view kRecordsCsvFile = "records.csv";
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kSignatureFile = "manifest.sig";
// Label of the exporting device's signature over manifest.json. The manifest's "format"
// says which bundle version it describes, so the label did not change with version 2.
inline constexpr std::string_view kManifestLabel = "coffre/audit-bundle-manifest/v1";

inline constexpr std::string_view kRecordsMagic = "coffre-audit-records/2\n";
inline constexpr std::string_view kProofsMagic = "coffre-audit-proofs/2\n";
// An inclusion proof in a tree of at most audit::kMaxTreeSize leaves has at most 63 hashes.
inline constexpr std::size_t kMaxInclusionHashes = audit::kMaxProofHashes - 1;
// The smallest record (index, details state, n = 1 and one byte) and proof (m = 0).
inline constexpr std::size_t kMinRecordSize = 8 + 1 + 2 + 1;
inline constexpr std::size_t kMinProofSize = 1;

inline constexpr std::string_view kCsvHeader =
    "time,actor,device,action,object,result,node,jurisdiction,index,team,version,details,"
    "device_event\n";

// What the bundle says of a record's sealed details. kNone exactly when the entry commits
// to no details; otherwise whether the relay still held them (sealed) or had erased them
// at the end of retention when the bundle was exported.
enum class DetailsState : std::uint8_t { kNone = 0, kSealed = 1, kErased = 2 };
inline constexpr std::uint8_t kMaxDetailsState = 2;
// "none", "sealed", "erased".
std::string_view DetailsStateName(DetailsState state);
// The state named `name`, nullopt for another name.
std::optional<DetailsState> DetailsStateFromName(std::string_view name);

// One record as the export writes it.
struct RecordInput {
  std::uint64_t index = 0;
  std::span<const std::uint8_t> encoded;  // the canonical entry
  const audit::Entry* entry = nullptr;    // its decoding
  DetailsState details = DetailsState::kNone;
  std::span<const audit::Hash> proof;  // inclusion in the checkpoint's tree
};

// Append records.bin's and proofs.bin's headers for `count` records.
void AppendFileHeaders(std::uint64_t count, std::string& records, std::string& proofs);
// Appends the record to records.bin and its proof to proofs.bin. Returns false, leaving
// both as they were, when the entry or proof does not fit the format (an entry longer than
// audit::kMaxEntrySize or empty, more than kMaxInclusionHashes hashes).
bool AppendBinaryRecord(const RecordInput& record, std::string& records, std::string& proofs);
// Append the record's line of records.jsonl / records.csv (with its newline) to `out`.
// Fast enough to rebuild every line when verifying: no allocation beyond `out` growing.
void AppendJsonLine(std::uint64_t index, const audit::Entry& entry, DetailsState details,
                    std::string& out);
void AppendCsvLine(std::uint64_t index, const audit::Entry& entry, DetailsState details,
                   std::string& out);

// The record count in the header of records.bin (kRecordsMagic) or proofs.bin
// (kProofsMagic), nullopt when `data` does not start with that header. The records or
// proofs start at HeaderSize(magic).
std::optional<std::uint64_t> ReadFileHeader(std::span<const std::uint8_t> data,
                                            std::string_view magic);
constexpr std::size_t HeaderSize(std::string_view magic) { return magic.size() + 8; }

// A record of records.bin as read, the entry a view into the file's bytes. The framing is
// valid (sizes within the format's bounds); nothing else is checked.
struct BinaryRecord {
  std::uint64_t index = 0;
  DetailsState details = DetailsState::kNone;
  std::span<const std::uint8_t> entry;
};

// The record / proof that starts at `offset` in `data` (records.bin / proofs.bin), and
// moves `offset` past it. nullopt, with `offset` unchanged, when the bytes there are not a
// whole, well-framed one (truncated, a length or details state outside the format); never
// reads outside `data`. A proof is its hashes concatenated.
std::optional<BinaryRecord> ReadBinaryRecord(std::span<const std::uint8_t> data,
                                             std::size_t& offset);
std::optional<std::span<const std::uint8_t>> ReadProof(std::span<const std::uint8_t> data,
                                                       std::size_t& offset);

// Verifies many inclusion proofs against one tree, for one thread. Each proof is checked
// to the root exactly as audit::VerifyInclusion does (RFC 9162 §2.1.3.2), but the fold
// stops hashing at the first step where its state (position, and the hash computed so
// far) equals that of the last proof verified and its remaining hashes are that proof's
// remaining hashes: the rest of the fold is then the one already verified to end at the
// root. Proofs of neighbouring leaves share all but their lowest nodes, so a run of
// records costs about three hashes each instead of one per proof hash.
class InclusionBatch {
 public:
  InclusionBatch(std::uint64_t tree_size, const audit::Hash& root);

  // True when `proof` (its hashes concatenated) proves that `leaf_hash` is leaf
  // `leaf_index` of the tree. Any failure (index outside the tree, wrong length, a wrong
  // hash) is false.
  bool Verify(std::uint64_t leaf_index, const audit::Hash& leaf_hash,
              std::span<const std::uint8_t> proof);

 private:
  struct Step {
    std::uint64_t fn = 0;
    std::uint64_t sn = 0;
    audit::Hash r{};
  };
  std::uint64_t tree_size_;
  audit::Hash root_;
  // The last proof verified: the fold's state before each of its hashes, and the hashes
  // concatenated (so that one comparison covers all the remaining ones).
  std::size_t known_length_ = 0;
  bool known_ = false;
  std::array<Step, audit::kMaxProofHashes> steps_{};
  std::array<std::uint8_t, audit::kMaxProofHashes * audit::kHashSize> hashes_{};
};

}  // namespace coffre::client::bundle

#endif  // COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_
