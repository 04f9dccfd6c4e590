// Signed notes (https://c2sp.org/signed-note) with Ed25519 keys, the envelope of the audit
// log's checkpoints (checkpoint.h).
//
//     note      = text || "\n" || signature line+
//     text      = UTF-8 ending in "\n", no control character but "\n"
//     signature = "— " (U+2014, U+0020) || key name || " " || base64(key id (4, big-endian)
//                 || Ed25519 signature (64)) || "\n"
//     key id    = SHA-256(key name || 0x0A || 0x01 || public key (32))[0:4]
//
// The signature is plain Ed25519 (RFC 8032) over the text bytes, with no Coffre label, as
// every other implementation of the format expects (crypto::SignUnlabelled). The key that
// signs notes must sign nothing else. Base64 is RFC 4648 §4 with padding.
//
// A verifier key, the string that pins a log key in configuration, is the Go note
// package's format: "<key name>+<key id, 8 lower-case hex digits>+<base64(0x01 || public
// key)>".
#ifndef COFFRE_AUDIT_SIGNED_NOTE_H_
#define COFFRE_AUDIT_SIGNED_NOTE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"

namespace coffre::audit {

// A note (text and signatures) longer than this is refused unread: a checkpoint with a few
// witness cosignatures takes well under 1 KiB.
inline constexpr std::size_t kMaxNoteSize = 16 * 1024;
// More signature lines than this are refused (the specification asks verifiers to accept
// at least 16).
inline constexpr std::size_t kMaxNoteSignatures = 32;
// Longest key name we sign with or pin.
inline constexpr std::size_t kMaxKeyNameSize = 256;
// The signature type byte of Ed25519 in key ids and verifier keys.
inline constexpr std::uint8_t kNoteEd25519Type = 0x01;

// Ok() when `name` can be a key name: 1..kMaxKeyNameSize bytes of UTF-8 with no control
// character, no Unicode space and no '+'. Fails with kInvalidArgument otherwise.
Status ValidateKeyName(std::string_view name);

// The key id of an Ed25519 key under `key_name` (file comment). The name is not checked.
std::uint32_t NoteKeyId(std::string_view key_name, const crypto::VerifyKey& key);

// The key a note must be signed with: a name, an Ed25519 public key and their key id.
// Copyable. A NoteVerifier that exists has a valid name and key.
class NoteVerifier {
 public:
  // Fails with kInvalidArgument on an invalid key name.
  static Result<NoteVerifier> FromPublicKey(std::string_view key_name,
                                            const crypto::VerifyKey& key);
  // Parses a verifier key string (file comment). Strict: one '+' after the name, the key id
  // in exactly 8 lower-case hex digits and equal to the one the name and key give, the
  // canonical base64 of exactly 33 bytes whose first is 0x01, and a public key that is a
  // valid point. Fails with kInvalidArgument otherwise.
  static Result<NoteVerifier> FromVerifierKey(std::string_view verifier_key);

  const std::string& name() const { return name_; }
  std::uint32_t key_id() const { return key_id_; }
  const crypto::VerifyKey& key() const { return key_; }
  // The verifier key string; FromVerifierKey gives this verifier back.
  std::string VerifierKey() const;

 private:
  NoteVerifier(std::string name, const crypto::VerifyKey& key);

  std::string name_;
  crypto::VerifyKey key_;
  std::uint32_t key_id_;
};

// `text` signed by `key` under `key_name`: the text, a blank line and one signature line.
// Fails with kInvalidArgument when the text is empty, does not end in '\n', is not UTF-8,
// holds a control character other than '\n', or makes a note over kMaxNoteSize; or when
// the key name is invalid.
Result<std::string> SignNote(std::string_view text, const crypto::SigningKey& key,
                             std::string_view key_name);

// The text of `note` once a signature by `verifier` checks. Strict: fails with
// kInvalidArgument on a note over kMaxNoteSize, not UTF-8, with a control character other
// than '\n', without the blank line before the signatures, with a malformed signature line
// (prefix, name, base64, fewer than 5 bytes) or more than kMaxNoteSignatures of them.
// Signatures by other keys (another name or key id) are ignored, as the specification
// requires. Fails with kAuthenticationFailed, one context for all, when a signature by the
// verifier's key does not verify (the whole note is refused) or when none is there.
Result<std::string> OpenNote(std::string_view note, const NoteVerifier& verifier);

}  // namespace coffre::audit

#endif  // COFFRE_AUDIT_SIGNED_NOTE_H_
