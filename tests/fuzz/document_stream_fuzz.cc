// Fuzz target: the document stream reader (DecryptDocument, DecryptRange) on a stream and
// associated data from the input, under a fixed key, so that seeds made with that key
// (corpus/document_stream_fuzz) reach the chunk and tag checks and the success paths.
//
// Input layout:
//   [0]            n, the associated data length (cut to what remains)
//   [1, 1 + n)     associated data
//   next 1 byte    range mode: bit 0 = take offset and length as they are (usually out of
//                  range) instead of reducing them into the document; bits 2..7 = d, and the
//                  reader-based DecryptRange is told the stream is d - 32 bytes longer than
//                  it is (its reads past the real end fail)
//   next 8 bytes   range offset, big-endian (missing bytes read as zero)
//   next 8 bytes   range length, big-endian
//   the rest       the stream
//
// Invariants (a broken one aborts: it is a finding):
//   - every failure of DecryptDocument is kAuthenticationFailed with the one context
//     kDocumentStreamAuthFailure (no oracle);
//   - a stream that decrypts re-encrypts, under its own header, to exactly the same bytes
//     (the ciphertext is a function of key, header, associated data and plaintext);
//   - one thread and several threads give the same result;
//   - OpenChunk (the body taken as one chunk, index and final flag from the offset field)
//     fails only with kAuthenticationFailed;
//   - DecryptRange accepts exactly the in-range requests of a valid stream and returns the
//     same bytes as DecryptDocument; out-of-range requests fail with kInvalidArgument, other
//     failures are kAuthenticationFailed, and a reader's error comes back unchanged.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/secret_bytes.h"

namespace {

using coffre::ErrorCode;
using coffre::crypto::SecretBytes;

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "document_stream_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The fixed, public fuzzing key: bytes 0x00, 0x01, ..., 0x1f. seed_corpus_tool.cc uses the
// same key to write the seeds.
const SecretBytes& DocumentKey() {
  static const SecretBytes key = [] {
    SecretBytes bytes(coffre::crypto::kDocumentKeySize);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes.data()[i] = static_cast<std::uint8_t>(i);
    return bytes;
  }();
  return key;
}

class InputReader {
 public:
  explicit InputReader(std::span<const std::uint8_t> input) : input_(input) {}

  std::uint8_t U8() { return input_.empty() ? 0 : Take(1)[0]; }
  std::uint64_t U64() {
    std::uint64_t value = 0;
    for (const std::uint8_t byte : Take(8)) value = value << 8 | byte;
    return value;
  }
  std::span<const std::uint8_t> Take(std::size_t size) {
    const std::span<const std::uint8_t> taken = input_.first(std::min(size, input_.size()));
    input_ = input_.subspan(taken.size());
    return taken;
  }
  std::span<const std::uint8_t> Rest() const { return input_; }

 private:
  std::span<const std::uint8_t> input_;
};

bool SameBytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

constexpr const char* kReadPastEnd = "fuzz reader: read past the end of the stream";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  InputReader reader(std::span<const std::uint8_t>(data, size));
  const std::span<const std::uint8_t> associated_data = reader.Take(reader.U8());
  const std::uint8_t range_mode = reader.U8();
  std::uint64_t offset = reader.U64();
  std::uint64_t length = reader.U64();
  const std::span<const std::uint8_t> stream = reader.Rest();
  const SecretBytes& key = DocumentKey();

  // The whole stream.
  const auto full = DecryptDocument(key, associated_data, stream, 1);
  const auto plaintext_size = PlaintextSize(stream.size());
  if (full) {
    Require(plaintext_size && full->size() == *plaintext_size,
            "a stream that decrypts has the plaintext size its length gives");
    const auto cipher =
        DocumentStreamCipher::FromHeader(key, stream.first(kStreamHeaderSize), associated_data);
    Require(cipher.has_value(), "the header of a stream that decrypts is accepted");
    const auto again = EncryptDocument(*cipher, *full, 1);
    Require(again && SameBytes(*again, stream),
            "a stream that decrypts re-encrypts under its header to the same bytes");
  } else {
    Require(full.error().code() == ErrorCode::kAuthenticationFailed &&
                full.error().context() == kDocumentStreamAuthFailure,
            "DecryptDocument fails with the one authentication failure");
  }
  if (plaintext_size && StreamChunkCount(*plaintext_size) > 1) {
    const auto threaded = DecryptDocument(key, associated_data, stream, 3);
    Require(threaded.has_value() == full.has_value() && (!full || SameBytes(*threaded, *full)),
            "several threads decrypt like one");
  }

  // The body as one chunk at an index from the input, through the public chunk API that a
  // resumable download uses.
  if (stream.size() >= kStreamHeaderSize) {
    const auto cipher =
        DocumentStreamCipher::FromHeader(key, stream.first(kStreamHeaderSize), associated_data);
    if (cipher) {
      const auto chunk =
          cipher->OpenChunk(offset >> 1, (offset & 1) != 0, stream.subspan(kStreamHeaderSize));
      Require(chunk || chunk.error().code() == ErrorCode::kAuthenticationFailed,
              "OpenChunk fails with kAuthenticationFailed");
      Require(!chunk || chunk->size() + kStreamTagSize == stream.size() - kStreamHeaderSize,
              "an opened chunk has the size of the sealed chunk");
    } else {
      Require(cipher.error().code() == ErrorCode::kAuthenticationFailed,
              "FromHeader refuses a bad header as an authentication failure");
    }
  }

  // A range of it, in memory.
  if ((range_mode & 1) == 0 && plaintext_size) {
    offset %= *plaintext_size + 1;
    length %= *plaintext_size - offset + 1;
  }
  const bool in_range =
      plaintext_size && offset <= *plaintext_size && length <= *plaintext_size - offset;
  const auto range = DecryptRange(key, associated_data, stream, offset, length);
  if (range) {
    Require(in_range && range->size() == length, "DecryptRange returns the range asked for");
    if (full) {
      Require(SameBytes(*range, std::span(*full).subspan(static_cast<std::size_t>(offset),
                                                         static_cast<std::size_t>(length))),
              "DecryptRange returns the bytes DecryptDocument returns");
    }
  } else {
    Require(!(full && in_range), "every range of a valid stream decrypts");
    const ErrorCode expected = (plaintext_size && !in_range) ? ErrorCode::kInvalidArgument
                                                             : ErrorCode::kAuthenticationFailed;
    Require(range.error().code() == expected,
            "DecryptRange fails with kInvalidArgument out of range, else authentication");
  }

  // The same through a reader that is told another stream size.
  const auto delta = static_cast<std::int64_t>(range_mode >> 2) - 32;
  if (delta < 0 && static_cast<std::uint64_t>(-delta) > stream.size()) return 0;
  const std::uint64_t claimed_size = stream.size() + static_cast<std::uint64_t>(delta);
  bool read_failed = false;
  const StreamReader read = [&](std::uint64_t at, std::span<std::uint8_t> out) -> coffre::Status {
    if (at > stream.size() || out.size() > stream.size() - at) {
      read_failed = true;
      return coffre::Fail(ErrorCode::kIo, kReadPastEnd);
    }
    std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(at), out.size(), out.begin());
    return coffre::Ok();
  };
  const auto claimed_plaintext_size = PlaintextSize(claimed_size);
  if ((range_mode & 1) == 0 && claimed_plaintext_size && delta != 0) {
    offset %= *claimed_plaintext_size + 1;
    length %= *claimed_plaintext_size - offset + 1;
  }
  const auto read_range = DecryptRange(key, associated_data, claimed_size, read, offset, length);
  if (delta == 0) {
    Require(read_range.has_value() == range.has_value() && !read_failed &&
                (!range || SameBytes(*read_range, *range)),
            "DecryptRange through a reader decrypts like DecryptRange in memory");
  } else if (read_range) {
    Require(!read_failed && read_range->size() == length, "DecryptRange returns the range");
    if (full) {
      // Chunks keep their offsets whatever size is claimed, and a chunk opens only at its
      // own index with its own final flag: what opens is what DecryptDocument saw.
      Require(offset <= full->size() && length <= full->size() - offset,
              "DecryptRange with another claimed size opens only chunks that exist");
      Require(SameBytes(*read_range, std::span(*full).subspan(static_cast<std::size_t>(offset),
                                                              static_cast<std::size_t>(length))),
              "DecryptRange with another claimed size returns authentic bytes only");
    }
  } else if (read_failed) {
    Require(read_range.error().code() == ErrorCode::kIo &&
                read_range.error().context().data() == kReadPastEnd,
            "DecryptRange passes the reader's error through unchanged");
  }
  return 0;
}
