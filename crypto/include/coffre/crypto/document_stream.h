// Document stream: the encryption format of document contents (plans, attachments).
//
// A STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-
// Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015, IACR ePrint 2015/189),
// laid out like the payload of the age file format (age-encryption.org/v1, "Payload"): the
// plaintext is cut into 64 KiB chunks, each sealed on its own with XChaCha20-Poly1305-IETF,
// and the nonce of chunk i carries i (big-endian) and a flag that is 1 on the final chunk
// only. So chunks cannot be reordered, dropped, duplicated or cut off at a chunk boundary
// without the tag check failing, and yet every chunk can be sealed, opened or re-read
// independently: parallel encryption, range reads and resumable uploads.
//
// Byte layout, key derivation and size formulas: docs/protocol.md, "Document stream
// format". Every failure to decrypt, whatever check failed (size, header, tag, flag,
// associated data), is ErrorCode::kAuthenticationFailed with the single context
// kDocumentStreamAuthFailure, so a caller learns nothing about which check it was.
#ifndef COFFRE_CRYPTO_DOCUMENT_STREAM_H_
#define COFFRE_CRYPTO_DOCUMENT_STREAM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

// Plaintext bytes per chunk; only the final chunk may be shorter.
inline constexpr std::size_t kStreamChunkSize = 65536;
// Poly1305 tag appended to every chunk.
inline constexpr std::size_t kStreamTagSize = 16;
// Size of a full (non-final) chunk on the wire.
inline constexpr std::size_t kStreamSealedChunkSize = kStreamChunkSize + kStreamTagSize;
// version (1) || key salt (16) || nonce prefix (15).
inline constexpr std::size_t kStreamHeaderSize = 32;
inline constexpr std::uint8_t kStreamVersion = 0x01;
// Document keys are 256-bit random keys, one per document version (DESIGN.md, Documents).
inline constexpr std::size_t kDocumentKeySize = 32;
// The whole-buffer helpers never start more threads than this, whatever is asked.
inline constexpr unsigned kMaxStreamThreads = 64;

// The one context string of every decryption failure.
inline constexpr const char* kDocumentStreamAuthFailure = "document stream failed authentication";

using DocumentStreamHeader = std::array<std::uint8_t, kStreamHeaderSize>;

// Size of the whole stream (header and every sealed chunk) for `plaintext_size` bytes of
// plaintext. A pure function of the plaintext size. Fails with kInvalidArgument only when
// the result would not fit in 64 bits.
Result<std::uint64_t> CiphertextSize(std::uint64_t plaintext_size);

// The plaintext size of a stream of `ciphertext_size` bytes: the inverse of
// CiphertextSize. Fails with kInvalidArgument when no plaintext size maps to it (shorter
// than a header and one tag, a trailing chunk shorter than a tag, or an empty final chunk
// after full ones). It reads sizes only: it does not authenticate anything.
Result<std::uint64_t> PlaintextSize(std::uint64_t ciphertext_size);

// Number of chunks of a stream of `plaintext_size` bytes: 1 for an empty plaintext (one
// empty final chunk), otherwise ceil(plaintext_size / kStreamChunkSize).
std::uint64_t StreamChunkCount(std::uint64_t plaintext_size);

// The keyed state of one stream: the chunk key derived from the document key and the
// header, the header itself and the caller's associated data. An object that exists is
// valid. Every method is const and touches no shared mutable state, so one object may
// seal or open different chunks from many threads at once. The chunk key is wiped when the
// object is destroyed.
class DocumentStreamCipher {
 public:
  // A cipher for writing a new stream, with a fresh random header. `document_key` must be
  // kDocumentKeySize bytes (else kInvalidArgument); `associated_data` is opaque to this
  // layer (the caller's encoding of document id, version, ...) and is copied.
  static Result<DocumentStreamCipher> Create(const SecretBytes& document_key,
                                             std::span<const std::uint8_t> associated_data);

  // A cipher for a stream whose header is `header` (the first kStreamHeaderSize bytes of
  // the stream): to read it, or to resume an interrupted upload of the SAME plaintext.
  // Sealing a different plaintext under a header already used with this key reuses
  // (key, nonce) pairs and leaks the XOR of the two plaintexts: new content always takes
  // Create(). Fails with kInvalidArgument on a key of the wrong size, and with
  // kAuthenticationFailed / kDocumentStreamAuthFailure when the header is not a header
  // this code writes (wrong size or version), because a header is untrusted input.
  static Result<DocumentStreamCipher> FromHeader(const SecretBytes& document_key,
                                                 std::span<const std::uint8_t> header,
                                                 std::span<const std::uint8_t> associated_data);

  DocumentStreamCipher(DocumentStreamCipher&&) noexcept = default;
  DocumentStreamCipher& operator=(DocumentStreamCipher&&) noexcept = default;
  DocumentStreamCipher(const DocumentStreamCipher&) = delete;
  DocumentStreamCipher& operator=(const DocumentStreamCipher&) = delete;
  ~DocumentStreamCipher() = default;

  // The header to write at offset 0 of the stream.
  const DocumentStreamHeader& header() const { return header_; }

  // Seals chunk `index` into `out`, which must be exactly plaintext.size() + kStreamTagSize
  // bytes. Chunk rules (kInvalidArgument otherwise): at most kStreamChunkSize bytes; exactly
  // kStreamChunkSize unless `is_last`; empty only for the final chunk of an empty document
  // (index 0, is_last). Deterministic for a given header, index, flag and plaintext.
  Status SealChunk(std::uint64_t index, bool is_last, std::span<const std::uint8_t> plaintext,
                   std::span<std::uint8_t> out) const;
  // As above, returning the sealed chunk (ciphertext || tag).
  Result<std::vector<std::uint8_t>> SealChunk(std::uint64_t index, bool is_last,
                                              std::span<const std::uint8_t> plaintext) const;

  // Opens chunk `index` (ciphertext || tag) into `out`, which must be exactly
  // ciphertext.size() - kStreamTagSize bytes (kInvalidArgument otherwise). `is_last` must
  // come from the caller's knowledge of the stream size, never from the chunk. Any size
  // that SealChunk could not have produced for this position, or any tag failure (wrong
  // key, header, index, flag or associated data, or altered bytes) gives
  // kAuthenticationFailed / kDocumentStreamAuthFailure, and `out` is then zeroed.
  Status OpenChunk(std::uint64_t index, bool is_last, std::span<const std::uint8_t> ciphertext,
                   std::span<std::uint8_t> out) const;
  // As above, returning the plaintext of the chunk.
  Result<std::vector<std::uint8_t>> OpenChunk(std::uint64_t index, bool is_last,
                                              std::span<const std::uint8_t> ciphertext) const;

 private:
  DocumentStreamCipher(SecretBytes chunk_key, const DocumentStreamHeader& header,
                       std::vector<std::uint8_t> associated_data);

  SecretBytes chunk_key_;
  DocumentStreamHeader header_;
  std::vector<std::uint8_t> associated_data_;
};

// Encrypts `plaintext` into a complete stream (header || chunks) under a fresh random
// header, sealing chunks on up to `threads` threads (at least 1; capped at the chunk count
// and kMaxStreamThreads). Fails with kInvalidArgument on a bad key size or threads == 0,
// kResourceExhausted when memory runs out. If a thread cannot be started its share of the
// work runs on the calling thread instead.
Result<std::vector<std::uint8_t>> EncryptDocument(const SecretBytes& document_key,
                                                  std::span<const std::uint8_t> associated_data,
                                                  std::span<const std::uint8_t> plaintext,
                                                  unsigned threads = 1);

// As above under the header of `cipher`. The output bytes depend only on the cipher and
// the plaintext, never on `threads`. See FromHeader for why a header must not be reused
// for different content.
Result<std::vector<std::uint8_t>> EncryptDocument(const DocumentStreamCipher& cipher,
                                                  std::span<const std::uint8_t> plaintext,
                                                  unsigned threads = 1);

// Decrypts and authenticates a complete stream, opening chunks on up to `threads` threads.
// The final chunk is the one the total size designates, and it must carry the final flag,
// so a stream cut at a chunk boundary fails. Any failure of the stream itself is
// kAuthenticationFailed / kDocumentStreamAuthFailure and no plaintext is returned; a bad
// key size or threads == 0 is kInvalidArgument; kResourceExhausted when memory runs out.
Result<std::vector<std::uint8_t>> DecryptDocument(const SecretBytes& document_key,
                                                  std::span<const std::uint8_t> associated_data,
                                                  std::span<const std::uint8_t> ciphertext,
                                                  unsigned threads = 1);

// EncryptDocument and DecryptDocument writing into a caller's buffer, which must be exactly
// CiphertextSize(plaintext.size()) (resp. PlaintextSize(ciphertext.size())) bytes long,
// else kInvalidArgument. They let a caller reuse one buffer for a window of chunks instead
// of allocating (and zero-filling) a fresh one per call. Same failures as the functions
// above; on an authentication failure `out` is wiped.
Status EncryptDocumentInto(const DocumentStreamCipher& cipher,
                           std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out,
                           unsigned threads = 1);
Status DecryptDocumentInto(const SecretBytes& document_key,
                           std::span<const std::uint8_t> associated_data,
                           std::span<const std::uint8_t> ciphertext, std::span<std::uint8_t> out,
                           unsigned threads = 1);

// Reads stream bytes for DecryptRange: fills all of `out` with the bytes of the stream at
// `offset`, or returns an error (which DecryptRange passes through unchanged). A reader over
// a file would pread() into `out`.
using StreamReader = std::function<Status(std::uint64_t offset, std::span<std::uint8_t> out)>;

// Decrypts plaintext bytes [plaintext_offset, plaintext_offset + length) of a stream of
// `ciphertext_size` bytes that `read` gives access to, reading and opening only the header
// and the chunks that cover the range (at least one chunk, even for length 0, so that the
// key, header and associated data are always checked). Fails with kInvalidArgument when
// the range does not lie within PlaintextSize(ciphertext_size) or on a bad key size or an
// empty reader; with the reader's own error when a read fails; with kAuthenticationFailed
// / kDocumentStreamAuthFailure when the stream size is impossible or any chunk read fails
// authentication. Callers compare the plaintext size with the signed manifest themselves.
Result<std::vector<std::uint8_t>> DecryptRange(const SecretBytes& document_key,
                                               std::span<const std::uint8_t> associated_data,
                                               std::uint64_t ciphertext_size,
                                               const StreamReader& read,
                                               std::uint64_t plaintext_offset,
                                               std::uint64_t length);

// As above over a stream held in memory.
Result<std::vector<std::uint8_t>> DecryptRange(const SecretBytes& document_key,
                                               std::span<const std::uint8_t> associated_data,
                                               std::span<const std::uint8_t> ciphertext,
                                               std::uint64_t plaintext_offset,
                                               std::uint64_t length);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_DOCUMENT_STREAM_H_
