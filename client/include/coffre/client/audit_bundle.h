// Audit export bundles (issue 5; docs/protocol.md "Audit export bundle"): a folder an
// auditor hands to a court or an inspector, verifiable offline with no relay and no profile.
//
//   checkpoint.txt  the relay's signed checkpoint (C2SP note) the records are proved against
//   records.jsonl   one JSON object per record: the entry (hex of its canonical encoding),
//                   its fields decoded, and its inclusion proof
//   records.csv     the same records as time, actor, device, action, object, result, node,
//                   jurisdiction (and index, team, version, details)
//   manifest.json   origin, log key, tree size and root, the BLAKE2b-256 of each file above,
//                   and who exported it (user identity key, device certificate)
//   manifest.sig    the exporting device's signature over manifest.json (hex)
//
// VerifyAuditBundle checks the manifest signature, every file hash, the checkpoint under the
// pinned log key, every inclusion proof and that every JSON and CSV line says what its
// signed entry says. Any changed byte fails and the report says where.
#ifndef COFFRE_CLIENT_AUDIT_BUNDLE_H_
#define COFFRE_CLIENT_AUDIT_BUNDLE_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "coffre/base/result.h"

namespace coffre::client {

inline constexpr std::string_view kAuditBundleFormat = "coffre-audit-bundle/1";

struct AuditBundleReport {
  bool ok = false;
  std::uint64_t records = 0;
  std::uint64_t tree_size = 0;
  std::string origin;
  std::string log_key;
  bool log_key_pinned = false;  // false: the bundle's own log key was taken on trust
  std::string exported_by;      // "user/device"
  std::string problem;          // when !ok: what failed
  std::string where;            // when !ok: file and line
};

// Verifies the bundle in `folder`. `pinned_log_key`: the verifier key the auditor trusts
// (from the operator or the auditor's profile); without it the bundle's own is used and the
// report says so. Fails (Result error) only when the folder cannot be read at all; a bundle
// that does not verify is a report with ok = false.
Result<AuditBundleReport> VerifyAuditBundle(const std::filesystem::path& folder,
                                            const std::optional<std::string>& pinned_log_key);

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_AUDIT_BUNDLE_H_
