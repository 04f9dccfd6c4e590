// Fuzz target: the readers of an audit export bundle's binary files (records.bin and
// proofs.bin, client/src/audit_bundle_format.h), which `coffre audit verify-bundle` runs on
// files an auditor was handed. On the whole input: bundle::ReadFileHeader with each magic,
// then bundle::ReadBinaryRecord and bundle::ReadProof one after the other from the end of
// that header (from the start of the input when the header does not read), until one
// refuses.
//
// Invariants (a broken one aborts: it is a finding):
//   - a header reads exactly when the input starts with the magic and holds the count,
//     and AppendFileHeaders writes those bytes back for the count read;
//   - a read never goes outside the input: offsets only grow, stay <= size, and a refusal
//     leaves the offset where it was (AddressSanitizer catches the reads themselves);
//   - a record is read exactly when its bytes are a whole, well-framed record (a
//     reference check written from the format comment), its details state is one of the
//     three and its entry is 1..audit::kMaxEntrySize bytes inside the input, right after
//     its framing; a proof likewise, with at most kMaxInclusionHashes hashes;
//   - AppendBinaryRecord writes back, byte for byte, the part of the input read: one
//     encoding per record, so the hash the manifest gives records.bin names one selection.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit_bundle_format.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"

namespace {

namespace bundle = coffre::client::bundle;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "audit_bundle_binary_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

bool SameBytes(std::string_view written, std::span<const std::uint8_t> read) {
  return written.size() == read.size() &&
         (read.empty() || std::memcmp(written.data(), read.data(), read.size()) == 0);
}

std::uint64_t BigEndian(const std::uint8_t* bytes, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i) value = value << 8 | bytes[i];
  return value;
}

// The format comment of audit_bundle_format.h, read independently of the parser:
// u64 index || u8 details state (0..2) || u16 n (1..kMaxEntrySize) || n bytes.
bool IsFramedRecord(std::span<const std::uint8_t> data, std::size_t offset) {
  if (offset > data.size() || data.size() - offset < 11) return false;
  const std::uint8_t* at = data.data() + offset;
  const std::uint64_t n = BigEndian(at + 9, 2);
  return at[8] <= bundle::kMaxDetailsState && n >= 1 && n <= coffre::audit::kMaxEntrySize &&
         n <= data.size() - offset - 11;
}

// u8 m (0..kMaxInclusionHashes) || m hashes.
bool IsFramedProof(std::span<const std::uint8_t> data, std::size_t offset) {
  if (offset >= data.size()) return false;
  const std::size_t m = data[offset];
  return m <= bundle::kMaxInclusionHashes &&
         m * coffre::audit::kHashSize <= data.size() - offset - 1;
}

// The header for `magic`; returns where the records or proofs start.
std::size_t CheckHeader(std::span<const std::uint8_t> input, std::string_view magic) {
  const auto count = bundle::ReadFileHeader(input, magic);
  const bool starts_with_magic = input.size() >= bundle::HeaderSize(magic) &&
                                 std::memcmp(input.data(), magic.data(), magic.size()) == 0;
  Require(count.has_value() == starts_with_magic,
          "a header reads exactly when the input starts with the magic and a count");
  if (!count) return 0;
  Require(*count == BigEndian(input.data() + magic.size(), 8),
          "the count is the u64 after the magic");
  std::string records;
  std::string proofs;
  bundle::AppendFileHeaders(*count, records, proofs);
  const std::string& header = magic == bundle::kRecordsMagic ? records : proofs;
  Require(SameBytes(header, input.first(bundle::HeaderSize(magic))),
          "AppendFileHeaders writes back the header read");
  return bundle::HeaderSize(magic);
}

void WalkRecords(std::span<const std::uint8_t> input, std::size_t offset) {
  // Each record read is at least kMinRecordSize bytes, so this ends within size / 12 steps.
  for (;;) {
    const std::size_t before = offset;
    const auto record = bundle::ReadBinaryRecord(input, offset);
    Require(record.has_value() == IsFramedRecord(input, before),
            "a record is read exactly when it is whole and well framed");
    if (!record) {
      Require(offset == before, "a refused record leaves the offset unchanged");
      return;
    }
    Require(offset > before && offset <= input.size(), "offsets grow and stay within the input");
    Require(static_cast<std::uint8_t>(record->details) <= bundle::kMaxDetailsState,
            "the details state is one of the format's");
    Require(!record->entry.empty() && record->entry.size() <= coffre::audit::kMaxEntrySize,
            "an entry is 1..kMaxEntrySize bytes");
    Require(record->entry.data() == input.data() + before + 11 &&
                offset == before + 11 + record->entry.size(),
            "the entry is the bytes right after its framing, inside the input");
    Require(record->index == BigEndian(input.data() + before, 8), "the index is the first u64");

    std::string records;
    std::string proofs;
    const bundle::RecordInput written{record->index, record->entry, nullptr, record->details, {}};
    Require(bundle::AppendBinaryRecord(written, records, proofs),
            "a record that reads can be written");
    Require(SameBytes(records, input.subspan(before, offset - before)),
            "AppendBinaryRecord writes back the record read");
  }
}

void WalkProofs(std::span<const std::uint8_t> input, std::size_t offset) {
  // The smallest proof is one byte: this ends within `size` steps.
  static constexpr std::uint8_t kEntry[1] = {0x01};
  std::vector<coffre::audit::Hash> hashes;
  for (;;) {
    const std::size_t before = offset;
    const auto proof = bundle::ReadProof(input, offset);
    Require(proof.has_value() == IsFramedProof(input, before),
            "a proof is read exactly when it is whole and well framed");
    if (!proof) {
      Require(offset == before, "a refused proof leaves the offset unchanged");
      return;
    }
    Require(offset > before && offset <= input.size(), "offsets grow and stay within the input");
    Require(proof->size() % coffre::audit::kHashSize == 0 &&
                proof->size() / coffre::audit::kHashSize <= bundle::kMaxInclusionHashes,
            "a proof is at most kMaxInclusionHashes whole hashes");
    Require(proof->data() == input.data() + before + 1 && offset == before + 1 + proof->size(),
            "the hashes are the bytes right after their count, inside the input");

    hashes.resize(proof->size() / coffre::audit::kHashSize);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      std::memcpy(hashes[i].data(), proof->data() + i * coffre::audit::kHashSize,
                  coffre::audit::kHashSize);
    }
    std::string records;
    std::string proofs;
    const bundle::RecordInput written{0, kEntry, nullptr, bundle::DetailsState::kNone, hashes};
    Require(bundle::AppendBinaryRecord(written, records, proofs),
            "a proof that reads can be written");
    Require(SameBytes(proofs, input.subspan(before, offset - before)),
            "AppendBinaryRecord writes back the proof read");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  WalkRecords(input, CheckHeader(input, bundle::kRecordsMagic));
  WalkProofs(input, CheckHeader(input, bundle::kProofsMagic));

  // Offsets past the end, as a caller with a wrong index would pass: refused, unchanged.
  for (const std::size_t start : {size, size + 1, std::numeric_limits<std::size_t>::max()}) {
    std::size_t offset = start;
    Require(!bundle::ReadProof(input, offset) && offset == start,
            "no proof reads at or past the end");
    Require(!bundle::ReadBinaryRecord(input, offset) && offset == start,
            "no record reads at or past the end");
  }
  return 0;
}
