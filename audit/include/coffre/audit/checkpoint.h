// Checkpoints (https://c2sp.org/tlog-checkpoint): the audit log's signed tree heads, in
// the signed-note envelope of signed_note.h.
//
//     text = origin || "\n" || tree size in decimal || "\n" || base64(root hash) || "\n"
//
// The origin comes from the relay's configuration (for example
// `relay.sdis13.example.fr/audit`); the tree size has no leading zero ("0" for the empty
// tree); the root is the RFC 6962 root (merkle.h) at that size, in padded base64. The log
// key's name should equal the origin, but verifiers do not require it (the specification
// only recommends it). We write no extension lines and refuse checkpoints that carry any:
// the specification makes them optional and advises against them, and a checkpoint of a
// Coffre relay never has one.
#ifndef COFFRE_AUDIT_CHECKPOINT_H_
#define COFFRE_AUDIT_CHECKPOINT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {

// Longest origin line we write or accept.
inline constexpr std::size_t kMaxOriginSize = 256;

struct Checkpoint {
  std::string origin;
  std::uint64_t size = 0;
  Hash root{};

  bool operator==(const Checkpoint&) const = default;
};

// Ok() when `origin` can be a checkpoint origin: 1..kMaxOriginSize bytes of UTF-8 with no
// control character. Fails with kInvalidArgument otherwise.
Status ValidateOrigin(std::string_view origin);

// The note text of `checkpoint` (file comment). Fails with kInvalidArgument on an invalid
// origin or a size above kMaxTreeSize.
Result<std::string> FormatCheckpoint(const Checkpoint& checkpoint);

// The signed checkpoint: FormatCheckpoint's text signed by the log key under `key_name`
// (SignNote). Fails as FormatCheckpoint and SignNote do.
Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const crypto::SigningKey& key,
                                   std::string_view key_name);

// The checkpoint in `note` once the pinned log key's signature checks (OpenNote, same
// failures) and its text parses strictly as a checkpoint of the log named `origin`:
// exactly three lines; the origin equal to `origin`; a size of 1 to 19 decimal digits with
// no leading zero, at most kMaxTreeSize; a root of exactly 32 bytes in canonical padded
// base64. A text that does not parse, or names another origin, fails with
// kInvalidArgument.
Result<Checkpoint> ParseAndVerifyCheckpoint(std::string_view note, const NoteVerifier& verifier,
                                            std::string_view origin);

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_CHECKPOINT_H_
