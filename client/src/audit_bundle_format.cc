#include "audit_bundle_format.h"

#include <charconv>
#include <cstring>

namespace coffre::client::bundle {
namespace {

void AppendU64(std::uint64_t value, std::string& out) {
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

void AppendBigEndian(std::uint64_t value, std::string& out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((value >> shift) & 0xFF));
  }
}

std::uint64_t ReadBigEndian(const std::uint8_t* bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | bytes[i];
  return value;
}

void AppendHex(std::span<const std::uint8_t> bytes, std::string& out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const std::size_t at = out.size();
  out.resize(at + 2 * bytes.size());
  char* to = out.data() + at;
  for (const std::uint8_t byte : bytes) {
    *to++ = kDigits[byte >> 4];
    *to++ = kDigits[byte & 0x0F];
  }
}

template <typename Id>
void AppendHexOr(const std::optional<Id>& id, std::string& out) {
  if (id) AppendHex(*id, out);
}

// Zero-padded decimal of `width` digits (value < 10^width).
void AppendPadded(std::uint64_t value, int width, std::string& out) {
  char digits[4];
  for (int i = width - 1; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(digits, static_cast<std::size_t>(width));
}

// "2026-11-29T01:19:26.011Z": what compliance exports and people read. The civil date is
// computed with the days_from_civil inverse of H. Hinnant's "chrono-Compatible Low-Level
// Date Algorithms" (civil_from_days), exact over every time an entry can hold (up to 2^63
// - 1 ms, years far beyond what std::chrono::year represents), and without snprintf, which
// cost more than the rest of a line when every line is rebuilt.
void AppendIsoTime(std::uint64_t unix_ms, std::string& out) {
  constexpr std::uint64_t kMsPerDay = 86'400'000;
  const std::uint64_t days = unix_ms / kMsPerDay;
  const std::uint64_t ms_of_day = unix_ms % kMsPerDay;
  // Days since 0000-03-01; unix_ms is at most 2^63 - 1, so this never overflows.
  const std::uint64_t z = days + 719'468;
  const std::uint64_t era = z / 146'097;
  const std::uint64_t doe = z - era * 146'097;  // [0, 146096]
  const std::uint64_t yoe = (doe - doe / 1'460 + doe / 36'524 - doe / 146'096) / 365;  // [0, 399]
  const std::uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                   // [0, 365]
  const std::uint64_t mp = (5 * doy + 2) / 153;                                        // [0, 11]
  const std::uint64_t day = doy - (153 * mp + 2) / 5 + 1;                              // [1, 31]
  const std::uint64_t month = mp < 10 ? mp + 3 : mp - 9;                               // [1, 12]
  const std::uint64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  if (year < 10'000) {
    AppendPadded(year, 4, out);
  } else {
    AppendU64(year, out);
  }
  out.push_back('-');
  AppendPadded(month, 2, out);
  out.push_back('-');
  AppendPadded(day, 2, out);
  out.push_back('T');
  AppendPadded(ms_of_day / 3'600'000, 2, out);
  out.push_back(':');
  AppendPadded(ms_of_day / 60'000 % 60, 2, out);
  out.push_back(':');
  AppendPadded(ms_of_day / 1'000 % 60, 2, out);
  out.push_back('.');
  AppendPadded(ms_of_day % 1'000, 3, out);
  out.push_back('Z');
}

}  // namespace

std::string_view DetailsStateName(DetailsState state) {
  switch (state) {
    case DetailsState::kNone:
      return "none";
    case DetailsState::kSealed:
      return "sealed";
    case DetailsState::kErased:
      return "erased";
  }
  return "none";
}

std::optional<DetailsState> DetailsStateFromName(std::string_view name) {
  for (const DetailsState state :
       {DetailsState::kNone, DetailsState::kSealed, DetailsState::kErased}) {
    if (DetailsStateName(state) == name) return state;
  }
  return std::nullopt;
}

void AppendFileHeaders(std::uint64_t count, std::string& records, std::string& proofs) {
  records.append(kRecordsMagic);
  AppendBigEndian(count, records);
  proofs.append(kProofsMagic);
  AppendBigEndian(count, proofs);
}

bool AppendBinaryRecord(const RecordInput& record, std::string& records, std::string& proofs) {
  if (record.encoded.empty() || record.encoded.size() > audit::kMaxEntrySize ||
      record.proof.size() > kMaxInclusionHashes) {
    return false;
  }
  AppendBigEndian(record.index, records);
  records.push_back(static_cast<char>(record.details));
  // Two bytes: an entry with a client event is longer than 255 bytes (entry.h).
  records.push_back(static_cast<char>(record.encoded.size() >> 8));
  records.push_back(static_cast<char>(record.encoded.size() & 0xFF));
  records.append(reinterpret_cast<const char*>(record.encoded.data()), record.encoded.size());
  proofs.push_back(static_cast<char>(record.proof.size()));
  for (const audit::Hash& hash : record.proof) {
    proofs.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  }
  return true;
}

// Written by hand rather than through nlohmann::json: the verifier rebuilds a million of
// these lines, and every value is a number, hex, a fixed name, a node name of
// [a-z0-9._-] or a jurisdiction of [A-Z]{2} (DecodeEntry refuses anything else), so no
// string ever needs escaping and the line is valid JSON as written.
void AppendJsonLine(std::uint64_t index, const audit::Entry& entry, DetailsState details,
                    std::string& out) {
  out.append("{\"index\":");
  AppendU64(index, out);
  out.append(",\"time\":\"");
  AppendIsoTime(entry.relay_time_ms, out);
  out.append("\",\"time_ms\":");
  AppendU64(entry.relay_time_ms, out);
  out.append(",\"actor\":\"");
  AppendHexOr(entry.actor, out);
  out.append("\",\"device\":");
  AppendU64(entry.device_id, out);
  out.append(",\"action\":\"");
  out.append(audit::EventTypeName(entry.type));
  out.append("\",\"object\":\"");
  AppendHexOr(entry.item_id, out);
  out.append("\",\"result\":\"");
  out.append(audit::EventResultName(entry.result));
  out.append("\",\"node\":\"");
  out.append(entry.node);
  out.append("\",\"jurisdiction\":\"");
  out.append(entry.jurisdiction);
  out.append("\",\"team\":\"");
  AppendHexOr(entry.team_id, out);
  out.append("\",\"version\":");
  AppendU64(entry.object_version, out);
  out.append(",\"details\":\"");
  out.append(DetailsStateName(details));
  out.push_back('"');
  // What the device signed (decision 0017): its event number, clock and key.
  if (const auto& event = entry.client_event) {
    out.append(",\"device_event\":");
    AppendU64(event->sequence, out);
    out.append(",\"device_time\":\"");
    AppendIsoTime(event->client_time_ms, out);
    out.append("\",\"device_key\":\"");
    AppendHex(event->device_key, out);
    out.push_back('"');
  }
  out.append("}\n");
}

// Every value is hex, a number or a name of [a-zA-Z0-9._-]: no quoting is ever needed.
void AppendCsvLine(std::uint64_t index, const audit::Entry& entry, DetailsState details,
                   std::string& out) {
  AppendIsoTime(entry.relay_time_ms, out);
  out.push_back(',');
  AppendHexOr(entry.actor, out);
  out.push_back(',');
  AppendU64(entry.device_id, out);
  out.push_back(',');
  out.append(audit::EventTypeName(entry.type));
  out.push_back(',');
  AppendHexOr(entry.item_id, out);
  out.push_back(',');
  out.append(audit::EventResultName(entry.result));
  out.push_back(',');
  out.append(entry.node);
  out.push_back(',');
  out.append(entry.jurisdiction);
  out.push_back(',');
  AppendU64(index, out);
  out.push_back(',');
  AppendHexOr(entry.team_id, out);
  out.push_back(',');
  AppendU64(entry.object_version, out);
  out.push_back(',');
  out.append(DetailsStateName(details));
  out.push_back(',');
  if (entry.client_event) AppendU64(entry.client_event->sequence, out);  // empty: a relay event
  out.push_back('\n');
}

std::optional<std::uint64_t> ReadFileHeader(std::span<const std::uint8_t> data,
                                            std::string_view magic) {
  if (data.size() < HeaderSize(magic) ||
      std::memcmp(data.data(), magic.data(), magic.size()) != 0) {
    return std::nullopt;
  }
  return ReadBigEndian(data.data() + magic.size());
}

std::optional<BinaryRecord> ReadBinaryRecord(std::span<const std::uint8_t> data,
                                             std::size_t& offset) {
  if (offset > data.size() || data.size() - offset < kMinRecordSize) return std::nullopt;
  const std::uint8_t* at = data.data() + offset;
  constexpr std::size_t kFixed = 8 + 1 + 2;  // index, state and n
  const std::size_t left = data.size() - offset - kFixed;
  BinaryRecord record;
  record.index = ReadBigEndian(at);
  if (at[8] > kMaxDetailsState) return std::nullopt;
  record.details = static_cast<DetailsState>(at[8]);
  const std::size_t entry_size = static_cast<std::size_t>(at[9]) << 8 | at[10];
  if (entry_size == 0 || entry_size > audit::kMaxEntrySize || entry_size > left) {
    return std::nullopt;
  }
  record.entry = std::span<const std::uint8_t>(at + kFixed, entry_size);
  offset += kFixed + entry_size;
  return record;
}

std::optional<std::span<const std::uint8_t>> ReadProof(std::span<const std::uint8_t> data,
                                                       std::size_t& offset) {
  if (offset >= data.size()) return std::nullopt;
  const std::size_t hashes = data[offset];
  const std::size_t left = data.size() - offset - 1;
  if (hashes > kMaxInclusionHashes || hashes * audit::kHashSize > left) return std::nullopt;
  const std::span<const std::uint8_t> proof = data.subspan(offset + 1, hashes * audit::kHashSize);
  offset += 1 + proof.size();
  return proof;
}

InclusionBatch::InclusionBatch(std::uint64_t tree_size, const audit::Hash& root)
    : tree_size_(tree_size), root_(root) {}

// RFC 9162 §2.1.3.2 step by step, as audit::VerifyInclusion; the comparison with the last
// verified proof is the only addition. The fold is a function of (fn, sn, r) and the
// hashes still to come, so when those equal the state and remaining hashes of a proof that
// ended at the root, this one ends there too.
bool InclusionBatch::Verify(std::uint64_t leaf_index, const audit::Hash& leaf_hash,
                            std::span<const std::uint8_t> proof) {
  if (tree_size_ == 0 || tree_size_ > audit::kMaxTreeSize || leaf_index >= tree_size_) return false;
  if (proof.size() % audit::kHashSize != 0) return false;
  const std::size_t length = proof.size() / audit::kHashSize;
  if (length > audit::kMaxProofHashes) return false;
  const bool comparable = known_ && known_length_ == length;
  // The steps below overwrite the record of the last proof from the bottom up; should
  // this proof fail, that record is no longer one verified proof.
  known_ = false;
  std::uint64_t fn = leaf_index;
  std::uint64_t sn = tree_size_ - 1;
  audit::Hash r = leaf_hash;
  for (std::size_t k = 0; k < length; ++k) {
    const std::uint8_t* p_bytes = proof.data() + k * audit::kHashSize;
    if (comparable && steps_[k].fn == fn && steps_[k].sn == sn &&
        std::memcmp(steps_[k].r.data(), r.data(), r.size()) == 0 &&
        std::memcmp(hashes_.data() + k * audit::kHashSize, p_bytes,
                    (length - k) * audit::kHashSize) == 0) {
      // Steps k and up are the old proof's and this one's alike, so the record of the last
      // verified proof is whole again.
      known_ = true;
      return true;
    }
    if (sn == 0) return false;
    steps_[k] = Step{fn, sn, r};
    audit::Hash p;
    std::memcpy(p.data(), p_bytes, p.size());
    std::memcpy(hashes_.data() + k * audit::kHashSize, p_bytes, p.size());
    if ((fn & 1) != 0 || fn == sn) {
      r = audit::HashChildren(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = audit::HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0 || std::memcmp(r.data(), root_.data(), r.size()) != 0) return false;
  known_length_ = length;
  known_ = true;
  return true;
}

}  // namespace coffre::client::bundle
