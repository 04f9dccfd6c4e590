// How one audit record is written into an export bundle (audit_bundle.h): shared by the
// export (client_audit.cc) and the offline verification (audit_bundle.cc), so that the
// verifier rebuilds each line from the signed entry and compares.
#ifndef COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_
#define COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"

namespace coffre::client::bundle {

inline constexpr std::string_view kCheckpointFile = "checkpoint.txt";
inline constexpr std::string_view kRecordsJsonFile = "records.jsonl";
inline constexpr std::string_view kRecordsCsvFile = "records.csv";
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kSignatureFile = "manifest.sig";
// Label of the exporting device's signature over manifest.json.
inline constexpr std::string_view kManifestLabel = "coffre/audit-bundle-manifest/v1";

inline constexpr std::string_view kCsvHeader =
    "time,actor,device,action,object,result,node,jurisdiction,index,team,version,details\n";

// What a record's details are, as far as the bundle says: "none", "sealed" or "erased".
struct RecordInput {
  std::uint64_t index = 0;
  std::span<const std::uint8_t> encoded;  // the canonical entry
  const audit::Entry* entry = nullptr;     // its decoding
  std::string_view details;
  std::span<const audit::Hash> proof;      // inclusion in the checkpoint's tree
};

// One line of records.jsonl (with its newline).
std::string RecordJsonLine(const RecordInput& record);
// One line of records.csv (with its newline).
std::string RecordCsvLine(const RecordInput& record);

}  // namespace coffre::client::bundle

#endif  // COFFRE_CLIENT_SRC_AUDIT_BUNDLE_FORMAT_H_
