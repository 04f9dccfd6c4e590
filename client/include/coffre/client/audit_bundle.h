// Audit export bundles (issue 5; docs/protocol.md "Audit export bundle"): a folder an
// auditor hands to a court or an inspector, verifiable offline with no relay and no profile.
//
//   checkpoint.txt  the relay's signed checkpoint (C2SP note) the records are proved against
//   records.bin     the evidence: per record its log index, the state of its sealed details,
//                   its canonical entry and its RFC 9162 inclusion proof, in binary
//   records.jsonl   one JSON object per record: its fields decoded, for people and tools
//   records.csv     the same records as time, actor, device, action, object, result, node,
//                   jurisdiction (and index, team, version, details)
//   manifest.json   origin, log key, tree size and root, the record count, the BLAKE2b-256
//                   of checkpoint.txt and records.bin, and who exported it (user identity
//                   key, device certificate)
//   manifest.sig    the exporting device's signature over manifest.json (hex)
//
// VerifyAuditBundle checks the manifest signature, the hashes it lists, the checkpoint under
// the pinned log key, every entry and inclusion proof, and that every JSON and CSV line is
// byte for byte the line its record gives (so the views are covered by the signature through
// records.bin). Any changed byte fails and the report says where.
#ifndef COFFRE_CLIENT_AUDIT_BUNDLE_H_
#define COFFRE_CLIENT_AUDIT_BUNDLE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "coffre/base/result.h"

namespace coffre::client {

inline constexpr std::string_view kAuditBundleFormat = "coffre-audit-bundle/2";

struct AuditBundleReport {
  bool ok = false;
  std::uint64_t records = 0;
  std::uint64_t tree_size = 0;
  std::string origin;
  std::string log_key;
  bool log_key_pinned = false;  // false: the bundle's own log key was taken on trust
  std::string exported_by;      // "user/device"
  std::uint64_t device_events = 0;  // records that are events a device signed
  // Things worth knowing that do not fail the bundle: numbers of a device's events that
  // the export's filters left out (or that the log lacks: `audit verify` tells).
  std::vector<std::string> notes;
  std::string problem;          // when !ok: what failed
  std::string where;            // when !ok: the file, and its line or record when one is to blame
};

// Verifies the bundle in `folder`. `pinned_log_key`: the verifier key the auditor trusts
// (from the operator or the auditor's profile); without it the bundle's own is used and the
// report says so. Fails (Result error) only when the folder cannot be read at all
// (kNotFound) or the bundle does not fit in memory (kResourceExhausted); a bundle that does
// not verify, whatever its bytes, is a report with ok = false. Checks records on every core
// (up to 8 threads); a bundle of one million records takes about a second on two.
Result<AuditBundleReport> VerifyAuditBundle(const std::filesystem::path& folder,
                                            const std::optional<std::string>& pinned_log_key);

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_AUDIT_BUNDLE_H_
