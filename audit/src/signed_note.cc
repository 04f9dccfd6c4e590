#include "coffre/audit/signed_note.h"

#include <array>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "sha256.h"
#include "text.h"

namespace coffre::audit {
namespace {

// "— ": U+2014 EM DASH in UTF-8, then a space.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
constexpr std::size_t kKeyIdSize = 4;
// The verifier key's hex key id and its base64 of 0x01 || 32-byte key (33 bytes: 44
// characters, no padding).
constexpr std::size_t kKeyIdHexSize = 8;
constexpr std::size_t kVerifierKeyBase64Size = 44;

// One context for every signature failure: which check failed is nobody's business.
constexpr const char* kNotSigned = "signed note: no valid signature by the pinned key";

std::span<const std::uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

Status ValidateText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return Fail(ErrorCode::kInvalidArgument, "signed note: text must end with a newline");
  }
  if (!internal::IsValidUtf8(text) || internal::HasControlCharacter(text, true)) {
    return Fail(ErrorCode::kInvalidArgument,
                "signed note: text must be UTF-8 without control characters");
  }
  return Ok();
}

std::string HexKeyId(std::uint32_t key_id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(kKeyIdHexSize, '0');
  for (std::size_t i = 0; i < kKeyIdHexSize; ++i) {
    hex[i] = kDigits[(key_id >> (28 - 4 * i)) & 0xF];
  }
  return hex;
}

std::optional<std::uint32_t> ParseHexKeyId(std::string_view hex) {
  if (hex.size() != kKeyIdHexSize) return std::nullopt;
  std::uint32_t value = 0;
  for (const char c : hex) {
    std::uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<std::uint32_t>(c - 'a' + 10);
    } else {
      return std::nullopt;  // upper case too: one spelling per key
    }
    value = value << 4 | digit;
  }
  return value;
}

std::uint32_t ReadKeyId(std::span<const std::uint8_t> bytes) {
  return static_cast<std::uint32_t>(bytes[0]) << 24 | static_cast<std::uint32_t>(bytes[1]) << 16 |
         static_cast<std::uint32_t>(bytes[2]) << 8 | static_cast<std::uint32_t>(bytes[3]);
}

struct SignatureLine {
  std::string_view name;
  std::uint32_t key_id;
  std::vector<std::uint8_t> signature;  // after the key id
};

// One signature line without its newline.
Result<SignatureLine> ParseSignatureLine(std::string_view line) {
  constexpr ErrorCode kMalformed = ErrorCode::kInvalidArgument;
  if (line.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
    return Fail(kMalformed, "signed note: signature line must start with an em dash");
  }
  line.remove_prefix(kSignaturePrefix.size());
  const std::size_t space = line.find(' ');
  if (space == std::string_view::npos) {
    return Fail(kMalformed, "signed note: signature line without a signature");
  }
  SignatureLine parsed;
  parsed.name = line.substr(0, space);
  COFFRE_RETURN_IF_ERROR(ValidateKeyName(parsed.name));
  std::optional<std::vector<std::uint8_t>> blob = internal::Base64Decode(line.substr(space + 1));
  if (!blob || blob->size() <= kKeyIdSize) {
    return Fail(kMalformed, "signed note: signature is not base64 of a key id and a signature");
  }
  parsed.key_id = ReadKeyId(*blob);
  parsed.signature.assign(blob->begin() + kKeyIdSize, blob->end());
  return parsed;
}

}  // namespace

Status ValidateKeyName(std::string_view name) {
  if (name.empty() || name.size() > kMaxKeyNameSize || !internal::IsValidUtf8(name) ||
      internal::HasControlCharacter(name, false) || internal::HasUnicodeSpace(name) ||
      name.find('+') != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument,
                "signed note: key name must be 1..256 bytes of UTF-8 without spaces or '+'");
  }
  return Ok();
}

std::uint32_t NoteKeyId(std::string_view key_name, const crypto::VerifyKey& key) {
  const std::uint8_t separator[2] = {'\n', kNoteEd25519Type};
  const internal::Sha256Digest digest = internal::Sha256({Bytes(key_name), separator, key.bytes()});
  return ReadKeyId(digest);
}

NoteVerifier::NoteVerifier(std::string name, const crypto::VerifyKey& key)
    : name_(std::move(name)), key_(key), key_id_(NoteKeyId(name_, key_)) {}

Result<NoteVerifier> NoteVerifier::FromPublicKey(std::string_view key_name,
                                                 const crypto::VerifyKey& key) {
  COFFRE_RETURN_IF_ERROR(ValidateKeyName(key_name));
  return NoteVerifier(std::string(key_name), key);
}

Result<NoteVerifier> NoteVerifier::FromVerifierKey(std::string_view verifier_key) {
  constexpr ErrorCode kBad = ErrorCode::kInvalidArgument;
  const std::size_t plus = verifier_key.find('+');
  if (plus == std::string_view::npos) return Fail(kBad, "verifier key: no '+' after the name");
  const std::string_view name = verifier_key.substr(0, plus);
  COFFRE_RETURN_IF_ERROR(ValidateKeyName(name));
  const std::string_view rest = verifier_key.substr(plus + 1);
  if (rest.size() != kKeyIdHexSize + 1 + kVerifierKeyBase64Size || rest[kKeyIdHexSize] != '+') {
    return Fail(kBad, "verifier key: expected <name>+<8 hex digits>+<base64 of 33 bytes>");
  }
  const std::optional<std::uint32_t> key_id = ParseHexKeyId(rest.substr(0, kKeyIdHexSize));
  if (!key_id) return Fail(kBad, "verifier key: key id is not 8 lower-case hex digits");
  const std::optional<std::vector<std::uint8_t>> typed_key =
      internal::Base64Decode(rest.substr(kKeyIdHexSize + 1));
  if (!typed_key || typed_key->size() != 1 + crypto::kEd25519PublicKeySize) {
    return Fail(kBad, "verifier key: key is not the base64 of 33 bytes");
  }
  if ((*typed_key)[0] != kNoteEd25519Type) {
    return Fail(kBad, "verifier key: not an Ed25519 key");
  }
  COFFRE_ASSIGN_OR_RETURN(const crypto::VerifyKey key,
                          crypto::VerifyKey::FromBytes(std::span(*typed_key).subspan(1)));
  NoteVerifier verifier(std::string(name), key);
  if (verifier.key_id() != *key_id) {
    return Fail(kBad, "verifier key: key id does not match the name and key");
  }
  return verifier;
}

std::string NoteVerifier::VerifierKey() const {
  std::array<std::uint8_t, 1 + crypto::kEd25519PublicKeySize> typed_key;
  typed_key[0] = kNoteEd25519Type;
  std::memcpy(typed_key.data() + 1, key_.bytes().data(), crypto::kEd25519PublicKeySize);
  std::string out = name_;
  out += '+';
  out += HexKeyId(key_id_);
  out += '+';
  out += internal::Base64Encode(typed_key);
  return out;
}

Result<std::string> SignNote(std::string_view text, const crypto::SigningKey& key,
                             std::string_view key_name) {
  COFFRE_RETURN_IF_ERROR(ValidateKeyName(key_name));
  COFFRE_RETURN_IF_ERROR(ValidateText(text));
  const auto signature = crypto::SignUnlabelled(key, Bytes(text));
  const std::uint32_t key_id = NoteKeyId(key_name, key.verify_key());
  std::array<std::uint8_t, kKeyIdSize + crypto::kEd25519SignatureSize> blob;
  for (std::size_t i = 0; i < kKeyIdSize; ++i) {
    blob[i] = static_cast<std::uint8_t>(key_id >> (24 - 8 * i));
  }
  std::memcpy(blob.data() + kKeyIdSize, signature.data(), signature.size());
  std::string note(text);
  note += '\n';
  note += kSignaturePrefix;
  note += key_name;
  note += ' ';
  note += internal::Base64Encode(blob);
  note += '\n';
  if (note.size() > kMaxNoteSize) {
    return Fail(ErrorCode::kInvalidArgument, "signed note: note over the size limit");
  }
  return note;
}

Result<std::string> OpenNote(std::string_view note, const NoteVerifier& verifier) {
  constexpr ErrorCode kMalformed = ErrorCode::kInvalidArgument;
  if (note.size() > kMaxNoteSize) return Fail(kMalformed, "signed note: note over the size limit");
  if (!internal::IsValidUtf8(note) || internal::HasControlCharacter(note, true)) {
    return Fail(kMalformed, "signed note: note must be UTF-8 without control characters");
  }
  // The text ends at the last blank line (signature lines are never empty).
  const std::size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return Fail(kMalformed, "signed note: no blank line before the signatures");
  }
  const std::string_view text = note.substr(0, split + 1);
  std::string_view signatures = note.substr(split + 2);
  if (signatures.empty() || signatures.back() != '\n') {
    return Fail(kMalformed, "signed note: signatures must be lines ending with a newline");
  }
  std::vector<SignatureLine> lines;
  while (!signatures.empty()) {
    if (lines.size() == kMaxNoteSignatures) {
      return Fail(kMalformed, "signed note: too many signatures");
    }
    const std::size_t end = signatures.find('\n');
    COFFRE_ASSIGN_OR_RETURN(SignatureLine line, ParseSignatureLine(signatures.substr(0, end)));
    lines.push_back(std::move(line));
    signatures.remove_prefix(end + 1);
  }
  // Signatures by other keys are ignored; every one by the pinned key must verify.
  std::size_t verified = 0;
  for (const SignatureLine& line : lines) {
    if (line.name != verifier.name() || line.key_id != verifier.key_id()) continue;
    if (!crypto::VerifyUnlabelled(verifier.key(), Bytes(text), line.signature)) {
      return Fail(ErrorCode::kAuthenticationFailed, kNotSigned);
    }
    ++verified;
  }
  if (verified == 0) return Fail(ErrorCode::kAuthenticationFailed, kNotSigned);
  return std::string(text);
}

}  // namespace coffre::audit
