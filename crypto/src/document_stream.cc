#include "coffre/crypto/document_stream.h"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "coffre/base/without_exceptions.h"
#include "coffre/crypto/random.h"
#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kDocumentKeySize);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == kStreamTagSize);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24);

// Header layout (docs/protocol.md, "Document stream format").
constexpr std::size_t kKeySaltOffset = 1;
constexpr std::size_t kKeySaltSize = 16;
constexpr std::size_t kNoncePrefixOffset = kKeySaltOffset + kKeySaltSize;
constexpr std::size_t kNoncePrefixSize = 15;
static_assert(kNoncePrefixOffset + kNoncePrefixSize == kStreamHeaderSize);
// Nonce: prefix (15) || chunk index, u64 big-endian (8) || last-chunk flag (1).
static_assert(kNoncePrefixSize + 8 + 1 == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);

// Domain-separation label of the chunk-key derivation (docs/protocol.md, "Labels"). A
// fixed-length header follows it, so label || header is unambiguous.
constexpr std::string_view kChunkKeyLabel = "coffre/document-stream/v1/chunk-key";

constexpr const char* kBadKeySize = "document key must be 32 bytes";
constexpr const char* kOutOfMemory = "not enough memory for the document stream";

using Nonce = std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>;

Unexpected AuthFailure() {
  return Fail(ErrorCode::kAuthenticationFailed, kDocumentStreamAuthFailure);
}

// libsodium accepts (NULL, 0), but a pointer into a real object keeps every call well
// defined even for empty spans.
const unsigned char* DataOrEmpty(std::span<const std::uint8_t> bytes) {
  static constexpr unsigned char kEmpty = 0;
  return bytes.empty() ? &kEmpty : bytes.data();
}

// Our code throws nothing, but std::vector, std::thread and a caller's std::function can:
// this is the module edge where such exceptions become errors.
template <typename Body>
auto Guarded(Body&& body) -> decltype(body()) {
  return WithoutExceptions(kOutOfMemory, "unexpected exception in the document stream",
                           std::forward<Body>(body));
}

// Plaintext size of chunk `index` in a stream of `plaintext_size` bytes; index must be
// below StreamChunkCount(plaintext_size).
std::size_t ChunkPlaintextSize(std::uint64_t plaintext_size, std::uint64_t index) {
  const std::uint64_t start = index * kStreamChunkSize;
  return static_cast<std::size_t>(
      std::min<std::uint64_t>(kStreamChunkSize, plaintext_size - start));
}

// Offset of sealed chunk `index` in the stream.
std::uint64_t ChunkOffset(std::uint64_t index) {
  return kStreamHeaderSize + index * kStreamSealedChunkSize;
}

bool FitsInMemory(std::uint64_t size) {
  if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t)) {
    return size <= std::numeric_limits<std::size_t>::max();
  }
  return true;
}

// Runs work(i) for every i in [0, count), cutting the range into contiguous slices, one per
// thread. Chunks are independent (in STREAM each segment is an AEAD call of its own)
// so the order of execution does not change any output byte. Once a slice fails the others
// stop early; the error of the lowest failing slice is returned. A slice whose thread
// cannot be started runs on the calling thread, so a failed std::thread never fails the
// operation.
Status ForEachChunk(std::uint64_t count, unsigned threads,
                    const std::function<Status(std::uint64_t)>& work) {
  const std::uint64_t workers =
      std::min<std::uint64_t>({std::uint64_t{threads}, count, std::uint64_t{kMaxStreamThreads}});
  if (workers <= 1) {
    for (std::uint64_t i = 0; i < count; ++i) COFFRE_RETURN_IF_ERROR(work(i));
    return Ok();
  }
  std::vector<Status> results(static_cast<std::size_t>(workers));
  std::atomic<bool> failed{false};
  auto run_slice = [&](std::uint64_t slice) {
    const std::uint64_t begin = count * slice / workers;
    const std::uint64_t end = count * (slice + 1) / workers;
    for (std::uint64_t i = begin; i < end; ++i) {
      if (failed.load(std::memory_order_relaxed)) return;
      Status status = work(i);
      if (!status) {
        results[static_cast<std::size_t>(slice)] = status;
        failed.store(true, std::memory_order_relaxed);
        return;
      }
    }
  };
  {
    // jthreads join when this scope ends, before `results` is read.
    std::vector<std::jthread> pool;
    std::uint64_t started = 1;
    try {
      pool.reserve(static_cast<std::size_t>(workers - 1));
      for (; started < workers; ++started) pool.emplace_back(run_slice, started);
    } catch (...) {
      // Not enough memory or no more threads: the slices not started run here.
    }
    for (std::uint64_t slice = started; slice < workers; ++slice) run_slice(slice);
    run_slice(0);
  }
  for (const Status& status : results) {
    if (!status) return status;
  }
  return Ok();
}

}  // namespace

Result<std::uint64_t> CiphertextSize(std::uint64_t plaintext_size) {
  const std::uint64_t overhead =
      kStreamHeaderSize + StreamChunkCount(plaintext_size) * kStreamTagSize;
  if (plaintext_size > std::numeric_limits<std::uint64_t>::max() - overhead) {
    return Fail(ErrorCode::kInvalidArgument, "document too large for a document stream");
  }
  return plaintext_size + overhead;
}

Result<std::uint64_t> PlaintextSize(std::uint64_t ciphertext_size) {
  constexpr const char* kImpossible = "impossible document stream size";
  if (ciphertext_size < kStreamHeaderSize + kStreamTagSize) {
    return Fail(ErrorCode::kInvalidArgument, kImpossible);
  }
  const std::uint64_t body = ciphertext_size - kStreamHeaderSize;
  const std::uint64_t full_chunks = body / kStreamSealedChunkSize;
  const std::uint64_t remainder = body % kStreamSealedChunkSize;
  if (remainder == 0) {
    // The final chunk is full (body >= one tag, so full_chunks >= 1).
    return full_chunks * kStreamChunkSize;
  }
  if (remainder < kStreamTagSize) return Fail(ErrorCode::kInvalidArgument, kImpossible);
  // An empty final chunk exists only in the stream of an empty plaintext.
  if (remainder == kStreamTagSize && full_chunks > 0) {
    return Fail(ErrorCode::kInvalidArgument, kImpossible);
  }
  return full_chunks * kStreamChunkSize + (remainder - kStreamTagSize);
}

std::uint64_t StreamChunkCount(std::uint64_t plaintext_size) {
  if (plaintext_size == 0) return 1;
  return (plaintext_size - 1) / kStreamChunkSize + 1;
}

DocumentStreamCipher::DocumentStreamCipher(SecretBytes chunk_key,
                                           const DocumentStreamHeader& header,
                                           std::vector<std::uint8_t> associated_data)
    : chunk_key_(std::move(chunk_key)),
      header_(header),
      associated_data_(std::move(associated_data)) {}

Result<DocumentStreamCipher> DocumentStreamCipher::Create(
    const SecretBytes& document_key, std::span<const std::uint8_t> associated_data) {
  DocumentStreamHeader header{};
  header[0] = kStreamVersion;
  // Salt and nonce prefix are random: 31 random bytes make a second stream under the same
  // document key get another chunk key (and other nonces) except with negligible chance.
  RandomFill(std::span<std::uint8_t>(header).subspan(1));
  return FromHeader(document_key, header, associated_data);
}

Result<DocumentStreamCipher> DocumentStreamCipher::FromHeader(
    const SecretBytes& document_key, std::span<const std::uint8_t> header,
    std::span<const std::uint8_t> associated_data) {
  internal::EnsureSodium();
  if (document_key.size() != kDocumentKeySize) {
    return Fail(ErrorCode::kInvalidArgument, kBadKeySize);
  }
  if (header.size() != kStreamHeaderSize || header[0] != kStreamVersion) return AuthFailure();
  return Guarded([&]() -> Result<DocumentStreamCipher> {
    DocumentStreamHeader fixed_header{};
    std::copy(header.begin(), header.end(), fixed_header.begin());

    // chunk_key = BLAKE2b-256(key = document_key, label || header). The whole header goes
    // in, so two streams under one document key get independent chunk keys (the role of
    // age's per-file HKDF over its 16-byte nonce), and a chunk moved to another stream is
    // opened under the wrong key.
    std::array<std::uint8_t, kChunkKeyLabel.size() + kStreamHeaderSize> input{};
    std::copy(kChunkKeyLabel.begin(), kChunkKeyLabel.end(), input.begin());
    std::copy(header.begin(), header.end(), input.begin() + kChunkKeyLabel.size());
    SecretBytes chunk_key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (crypto_generichash(chunk_key.data(), chunk_key.size(), input.data(),
                           static_cast<unsigned long long>(input.size()), document_key.data(),
                           document_key.size()) != 0) {
      return Fail(ErrorCode::kInternal, "BLAKE2b failed");
    }
    return DocumentStreamCipher(
        std::move(chunk_key), fixed_header,
        std::vector<std::uint8_t>(associated_data.begin(), associated_data.end()));
  });
}

namespace {

// Nonce of chunk `index`: the header's nonce prefix, the index as a big-endian u64 and the
// last-chunk flag, as age builds its 12-byte ChaCha20-Poly1305 nonce from an 11-byte
// big-endian counter and a final flag byte (age spec, "Payload"); the wider XChaCha20
// nonce leaves room for the random prefix.
Nonce ChunkNonce(const DocumentStreamHeader& header, std::uint64_t index, bool is_last) {
  Nonce nonce{};
  std::copy_n(header.begin() + kNoncePrefixOffset, kNoncePrefixSize, nonce.begin());
  for (std::size_t i = 0; i < 8; ++i) {
    nonce[kNoncePrefixSize + i] = static_cast<std::uint8_t>(index >> (56 - 8 * i));
  }
  nonce[kNoncePrefixSize + 8] = is_last ? 0x01 : 0x00;
  return nonce;
}

}  // namespace

Status DocumentStreamCipher::SealChunk(std::uint64_t index, bool is_last,
                                       std::span<const std::uint8_t> plaintext,
                                       std::span<std::uint8_t> out) const {
  if (plaintext.size() > kStreamChunkSize || (!is_last && plaintext.size() != kStreamChunkSize) ||
      (plaintext.empty() && index != 0)) {
    return Fail(ErrorCode::kInvalidArgument,
                "document stream chunk has a size its position forbids");
  }
  if (out.size() != plaintext.size() + kStreamTagSize) {
    return Fail(ErrorCode::kInvalidArgument, "output buffer has the wrong size for the chunk");
  }
  const Nonce nonce = ChunkNonce(header_, index, is_last);
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(
          out.data(), &written, DataOrEmpty(plaintext),
          static_cast<unsigned long long>(plaintext.size()), DataOrEmpty(associated_data_),
          static_cast<unsigned long long>(associated_data_.size()), nullptr, nonce.data(),
          chunk_key_.data()) != 0 ||
      written != out.size()) {
    return Fail(ErrorCode::kInternal, "XChaCha20-Poly1305 encryption failed");
  }
  return Ok();
}

Result<std::vector<std::uint8_t>> DocumentStreamCipher::SealChunk(
    std::uint64_t index, bool is_last, std::span<const std::uint8_t> plaintext) const {
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    std::vector<std::uint8_t> out(std::min(plaintext.size(), kStreamChunkSize) + kStreamTagSize);
    COFFRE_RETURN_IF_ERROR(SealChunk(index, is_last, plaintext, out));
    return out;
  });
}

Status DocumentStreamCipher::OpenChunk(std::uint64_t index, bool is_last,
                                       std::span<const std::uint8_t> ciphertext,
                                       std::span<std::uint8_t> out) const {
  // The same size rules as SealChunk, applied to untrusted input: a size the writer could
  // not have produced for this position fails like a bad tag.
  if (ciphertext.size() < kStreamTagSize || ciphertext.size() > kStreamSealedChunkSize ||
      (!is_last && ciphertext.size() != kStreamSealedChunkSize) ||
      (ciphertext.size() == kStreamTagSize && index != 0)) {
    return AuthFailure();
  }
  if (out.size() != ciphertext.size() - kStreamTagSize) {
    return Fail(ErrorCode::kInvalidArgument, "output buffer has the wrong size for the chunk");
  }
  const Nonce nonce = ChunkNonce(header_, index, is_last);
  unsigned long long written = 0;
  // libsodium checks the tag before it decrypts and zeroes `out` on failure.
  unsigned char empty_out = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out.empty() ? &empty_out : out.data(), &written, nullptr, ciphertext.data(),
          static_cast<unsigned long long>(ciphertext.size()), DataOrEmpty(associated_data_),
          static_cast<unsigned long long>(associated_data_.size()), nonce.data(),
          chunk_key_.data()) != 0 ||
      written != out.size()) {
    Wipe(out);
    return AuthFailure();
  }
  return Ok();
}

Result<std::vector<std::uint8_t>> DocumentStreamCipher::OpenChunk(
    std::uint64_t index, bool is_last, std::span<const std::uint8_t> ciphertext) const {
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    if (ciphertext.size() < kStreamTagSize) return AuthFailure();
    std::vector<std::uint8_t> out(ciphertext.size() - kStreamTagSize);
    COFFRE_RETURN_IF_ERROR(OpenChunk(index, is_last, ciphertext, out));
    return out;
  });
}

Result<std::vector<std::uint8_t>> EncryptDocument(const SecretBytes& document_key,
                                                  std::span<const std::uint8_t> associated_data,
                                                  std::span<const std::uint8_t> plaintext,
                                                  unsigned threads) {
  COFFRE_ASSIGN_OR_RETURN(DocumentStreamCipher cipher,
                          DocumentStreamCipher::Create(document_key, associated_data));
  return EncryptDocument(cipher, plaintext, threads);
}

Status EncryptDocumentInto(const DocumentStreamCipher& cipher,
                           std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out,
                           unsigned threads) {
  if (threads == 0) return Fail(ErrorCode::kInvalidArgument, "thread count must be at least 1");
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t stream_size, CiphertextSize(plaintext.size()));
  if (out.size() != stream_size) {
    return Fail(ErrorCode::kInvalidArgument, "output buffer has the wrong size for the stream");
  }
  std::copy(cipher.header().begin(), cipher.header().end(), out.begin());
  const std::uint64_t chunk_count = StreamChunkCount(plaintext.size());
  return ForEachChunk(chunk_count, threads, [&](std::uint64_t index) -> Status {
    const std::size_t size = ChunkPlaintextSize(plaintext.size(), index);
    const auto start = static_cast<std::size_t>(index * kStreamChunkSize);
    const auto offset = static_cast<std::size_t>(ChunkOffset(index));
    return cipher.SealChunk(index, index + 1 == chunk_count, plaintext.subspan(start, size),
                            out.subspan(offset, size + kStreamTagSize));
  });
}

Result<std::vector<std::uint8_t>> EncryptDocument(const DocumentStreamCipher& cipher,
                                                  std::span<const std::uint8_t> plaintext,
                                                  unsigned threads) {
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t stream_size, CiphertextSize(plaintext.size()));
  if (!FitsInMemory(stream_size)) return Fail(ErrorCode::kResourceExhausted, kOutOfMemory);
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(stream_size));
    COFFRE_RETURN_IF_ERROR(EncryptDocumentInto(cipher, plaintext, out, threads));
    return out;
  });
}

Status DecryptDocumentInto(const SecretBytes& document_key,
                           std::span<const std::uint8_t> associated_data,
                           std::span<const std::uint8_t> ciphertext, std::span<std::uint8_t> out,
                           unsigned threads) {
  if (document_key.size() != kDocumentKeySize) {
    return Fail(ErrorCode::kInvalidArgument, kBadKeySize);
  }
  if (threads == 0) return Fail(ErrorCode::kInvalidArgument, "thread count must be at least 1");
  // Sizes are checked before any byte is used: the size alone fixes how many chunks there
  // are and which one is final.
  const Result<std::uint64_t> plaintext_size = PlaintextSize(ciphertext.size());
  if (!plaintext_size) return AuthFailure();
  if (out.size() != *plaintext_size) {
    return Fail(ErrorCode::kInvalidArgument, "output buffer has the wrong size for the stream");
  }
  COFFRE_ASSIGN_OR_RETURN(DocumentStreamCipher cipher,
                          DocumentStreamCipher::FromHeader(
                              document_key, ciphertext.first(kStreamHeaderSize), associated_data));
  const std::uint64_t chunk_count = StreamChunkCount(*plaintext_size);
  const Status status = ForEachChunk(chunk_count, threads, [&](std::uint64_t index) -> Status {
    const std::size_t size = ChunkPlaintextSize(*plaintext_size, index);
    const auto offset = static_cast<std::size_t>(ChunkOffset(index));
    return cipher.OpenChunk(index, index + 1 == chunk_count,
                            ciphertext.subspan(offset, size + kStreamTagSize),
                            out.subspan(static_cast<std::size_t>(index * kStreamChunkSize), size));
  });
  if (!status) {
    // Chunks opened before the failure were authentic, but a caller gets all or nothing.
    Wipe(out);
    return AuthFailure();
  }
  return Ok();
}

Result<std::vector<std::uint8_t>> DecryptDocument(const SecretBytes& document_key,
                                                  std::span<const std::uint8_t> associated_data,
                                                  std::span<const std::uint8_t> ciphertext,
                                                  unsigned threads) {
  const Result<std::uint64_t> plaintext_size = PlaintextSize(ciphertext.size());
  if (!plaintext_size) {
    if (document_key.size() != kDocumentKeySize) {
      return Fail(ErrorCode::kInvalidArgument, kBadKeySize);
    }
    return AuthFailure();
  }
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(*plaintext_size));
    COFFRE_RETURN_IF_ERROR(
        DecryptDocumentInto(document_key, associated_data, ciphertext, out, threads));
    return out;
  });
}

Result<std::vector<std::uint8_t>> DecryptRange(const SecretBytes& document_key,
                                               std::span<const std::uint8_t> associated_data,
                                               std::uint64_t ciphertext_size,
                                               const StreamReader& read,
                                               std::uint64_t plaintext_offset,
                                               std::uint64_t length) {
  if (document_key.size() != kDocumentKeySize) {
    return Fail(ErrorCode::kInvalidArgument, kBadKeySize);
  }
  if (!read) return Fail(ErrorCode::kInvalidArgument, "no reader given for the document stream");
  const Result<std::uint64_t> plaintext_size = PlaintextSize(ciphertext_size);
  if (!plaintext_size) return AuthFailure();
  if (plaintext_offset > *plaintext_size || length > *plaintext_size - plaintext_offset) {
    return Fail(ErrorCode::kInvalidArgument, "range lies outside the document");
  }
  if (!FitsInMemory(length)) return Fail(ErrorCode::kResourceExhausted, kOutOfMemory);
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    DocumentStreamHeader header{};
    COFFRE_RETURN_IF_ERROR(read(0, header));
    COFFRE_ASSIGN_OR_RETURN(
        DocumentStreamCipher cipher,
        DocumentStreamCipher::FromHeader(document_key, header, associated_data));

    const std::uint64_t chunk_count = StreamChunkCount(*plaintext_size);
    // Length 0 still opens one chunk (the one holding the offset, or the final one when the
    // offset is the end), so a wrong key or a forged header never goes unnoticed.
    const std::uint64_t first = std::min(plaintext_offset / kStreamChunkSize, chunk_count - 1);
    const std::uint64_t last =
        length == 0 ? first : (plaintext_offset + length - 1) / kStreamChunkSize;

    std::vector<std::uint8_t> result(static_cast<std::size_t>(length));
    std::vector<std::uint8_t> sealed(kStreamSealedChunkSize);
    std::vector<std::uint8_t> chunk(kStreamChunkSize);
    Status status = Ok();
    for (std::uint64_t index = first; index <= last && status; ++index) {
      const std::size_t size = ChunkPlaintextSize(*plaintext_size, index);
      const std::span<std::uint8_t> sealed_span = std::span(sealed).first(size + kStreamTagSize);
      const std::span<std::uint8_t> chunk_span = std::span(chunk).first(size);
      status = read(ChunkOffset(index), sealed_span);
      if (!status) break;
      if (!cipher.OpenChunk(index, index + 1 == chunk_count, sealed_span, chunk_span)) {
        status = AuthFailure();
        break;
      }
      // Copy the part of this chunk that lies inside the range.
      const std::uint64_t chunk_start = index * kStreamChunkSize;
      const std::uint64_t from = std::max(plaintext_offset, chunk_start);
      const std::uint64_t to = std::min(plaintext_offset + length, chunk_start + size);
      if (from < to) {
        std::copy(chunk.begin() + static_cast<std::ptrdiff_t>(from - chunk_start),
                  chunk.begin() + static_cast<std::ptrdiff_t>(to - chunk_start),
                  result.begin() + static_cast<std::ptrdiff_t>(from - plaintext_offset));
      }
    }
    Wipe(chunk);
    if (!status) {
      Wipe(result);
      return status.error();
    }
    return result;
  });
}

Result<std::vector<std::uint8_t>> DecryptRange(const SecretBytes& document_key,
                                               std::span<const std::uint8_t> associated_data,
                                               std::span<const std::uint8_t> ciphertext,
                                               std::uint64_t plaintext_offset,
                                               std::uint64_t length) {
  return Guarded([&]() -> Result<std::vector<std::uint8_t>> {
    const StreamReader read = [ciphertext](std::uint64_t offset,
                                           std::span<std::uint8_t> out) -> Status {
      if (offset > ciphertext.size() || out.size() > ciphertext.size() - offset) {
        return Fail(ErrorCode::kInvalidArgument, "read outside the document stream");
      }
      std::copy_n(ciphertext.begin() + static_cast<std::ptrdiff_t>(offset), out.size(),
                  out.begin());
      return Ok();
    };
    return DecryptRange(document_key, associated_data, ciphertext.size(), read, plaintext_offset,
                        length);
  });
}

}  // namespace coffre::crypto
