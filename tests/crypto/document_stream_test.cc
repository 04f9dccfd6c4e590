#include "coffre/crypto/document_stream.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kMiB = 1024 * 1024;

// Deterministic, non-repeating-per-chunk content so a chunk moved elsewhere is visible.
Bytes Pattern(std::size_t size, std::uint32_t seed = 1) {
  Bytes out(size);
  std::mt19937 rng(seed);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

Bytes Ad(std::string_view text) { return Bytes(text.begin(), text.end()); }

SecretBytes FixedKey(std::uint8_t first = 0x40) {
  SecretBytes key(kDocumentKeySize);
  for (std::size_t i = 0; i < key.size(); ++i) key.data()[i] = static_cast<std::uint8_t>(first + i);
  return key;
}

DocumentStreamHeader FixedHeader() {
  DocumentStreamHeader header{};
  header[0] = kStreamVersion;
  for (std::size_t i = 1; i < header.size(); ++i) header[i] = static_cast<std::uint8_t>(0xa0 + i);
  return header;
}

std::size_t ChunkStart(std::size_t index) {
  return kStreamHeaderSize + index * kStreamSealedChunkSize;
}

Bytes Encrypt(const SecretBytes& key, const Bytes& ad, const Bytes& plaintext,
              unsigned threads = 1) {
  auto result = EncryptDocument(key, ad, plaintext, threads);
  EXPECT_TRUE(result.has_value());
  return result.has_value() ? std::move(result).value() : Bytes{};
}

template <typename T>
void ExpectAuthFailure(const Result<T>& result) {
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(result.error().context(), std::string_view(kDocumentStreamAuthFailure));
}

// ---------------------------------------------------------------------------------------
// Sizes

TEST(DocumentStreamSizeTest, CiphertextSizeFollowsTheFormula) {
  EXPECT_EQ(CiphertextSize(0).value(), 32u + 16u);
  EXPECT_EQ(CiphertextSize(1).value(), 32u + 1u + 16u);
  EXPECT_EQ(CiphertextSize(65535).value(), 32u + 65535u + 16u);
  EXPECT_EQ(CiphertextSize(65536).value(), 32u + 65536u + 16u);
  EXPECT_EQ(CiphertextSize(65537).value(), 32u + 65537u + 32u);
  EXPECT_EQ(CiphertextSize(10 * kMiB).value(), 32u + 10 * kMiB + 160u * 16u);
  EXPECT_EQ(StreamChunkCount(0), 1u);
  EXPECT_EQ(StreamChunkCount(65536), 1u);
  EXPECT_EQ(StreamChunkCount(65537), 2u);
}

TEST(DocumentStreamSizeTest, PlaintextSizeInvertsCiphertextSize) {
  std::vector<std::uint64_t> sizes;
  for (std::uint64_t base : {0ull, 65536ull, 131072ull, 10ull * kMiB}) {
    for (std::uint64_t delta = 0; delta < 40; ++delta) {
      sizes.push_back(base + delta);
      if (base >= delta) sizes.push_back(base - delta);
    }
  }
  sizes.push_back(std::uint64_t{1} << 40);
  for (std::uint64_t n : sizes) {
    auto stream_size = CiphertextSize(n);
    ASSERT_TRUE(stream_size.has_value()) << n;
    auto back = PlaintextSize(*stream_size);
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, n);
  }
}

TEST(DocumentStreamSizeTest, PlaintextSizeRejectsImpossibleSizes) {
  for (std::uint64_t size :
       {std::uint64_t{0}, std::uint64_t{31}, std::uint64_t{32}, std::uint64_t{47},
        // a full chunk followed by an empty final chunk
        std::uint64_t{32 + 65552 + 16},
        // a full chunk followed by a trailing piece shorter than a tag
        std::uint64_t{32 + 65552 + 1}, std::uint64_t{32 + 65552 + 15}}) {
    auto result = PlaintextSize(size);
    ASSERT_FALSE(result.has_value()) << size;
    EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(DocumentStreamSizeTest, CiphertextSizeRejectsOverflow) {
  EXPECT_FALSE(CiphertextSize(std::numeric_limits<std::uint64_t>::max()).has_value());
}

// ---------------------------------------------------------------------------------------
// Round trips

class DocumentStreamRoundTripTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(DocumentStreamRoundTripTest, RoundTripsAndIsIndependentOfThreadCount) {
  const std::size_t size = GetParam();
  const SecretBytes key = FixedKey();
  const Bytes ad = Ad("document 7 version 3");
  const Bytes plaintext = Pattern(size);

  const DocumentStreamHeader header = FixedHeader();
  auto cipher = DocumentStreamCipher::FromHeader(key, header, ad);
  ASSERT_TRUE(cipher.has_value());
  auto one = EncryptDocument(*cipher, plaintext, 1);
  auto two = EncryptDocument(*cipher, plaintext, 2);
  ASSERT_TRUE(one.has_value());
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(*one, *two);
  EXPECT_EQ(one->size(), CiphertextSize(size).value());
  EXPECT_TRUE(std::equal(header.begin(), header.end(), one->begin()));

  for (unsigned threads : {1u, 2u}) {
    auto decrypted = DecryptDocument(key, ad, *one, threads);
    ASSERT_TRUE(decrypted.has_value()) << threads;
    EXPECT_EQ(*decrypted, plaintext);
  }

  // The same through the fresh-header entry point.
  const Bytes fresh = Encrypt(key, ad, plaintext, 2);
  auto decrypted = DecryptDocument(key, ad, fresh);
  ASSERT_TRUE(decrypted.has_value());
  EXPECT_EQ(*decrypted, plaintext);
}

INSTANTIATE_TEST_SUITE_P(DocumentStreamSizes, DocumentStreamRoundTripTest,
                         ::testing::Values(0, 1, kStreamChunkSize - 1, kStreamChunkSize,
                                           kStreamChunkSize + 1, 10 * kMiB));

TEST(DocumentStreamTest, ManyThreadsGiveTheSameBytes) {
  const SecretBytes key = FixedKey();
  const Bytes plaintext = Pattern(3 * kMiB + 5);
  auto cipher = DocumentStreamCipher::FromHeader(key, FixedHeader(), Ad("ad"));
  ASSERT_TRUE(cipher.has_value());
  auto reference = EncryptDocument(*cipher, plaintext, 1);
  ASSERT_TRUE(reference.has_value());
  for (unsigned threads : {3u, 8u, 1000u}) {
    auto other = EncryptDocument(*cipher, plaintext, threads);
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(*other, *reference) << threads;
    auto back = DecryptDocument(key, Ad("ad"), *reference, threads);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, plaintext);
  }
}

TEST(DocumentStreamTest, TwoEncryptionsUseDifferentHeaders) {
  const SecretBytes key = RandomSecret(kDocumentKeySize);
  const Bytes plaintext = Pattern(1000);
  const Bytes a = Encrypt(key, {}, plaintext);
  const Bytes b = Encrypt(key, {}, plaintext);
  EXPECT_EQ(a[0], kStreamVersion);
  EXPECT_NE(Bytes(a.begin(), a.begin() + kStreamHeaderSize),
            Bytes(b.begin(), b.begin() + kStreamHeaderSize));
  EXPECT_NE(a, b);
}

// Rebuilds a stream from docs/protocol.md with raw libsodium calls, so the document and the
// code cannot drift apart.
TEST(DocumentStreamTest, LayoutMatchesTheProtocolDocument) {
  ASSERT_GE(sodium_init(), 0);
  const SecretBytes key = FixedKey();
  const DocumentStreamHeader header = FixedHeader();
  const Bytes ad = Ad("team 1 / document 2 / version 3");
  const Bytes plaintext = Pattern(2 * kStreamChunkSize + 100);
  auto cipher = DocumentStreamCipher::FromHeader(key, header, ad);
  ASSERT_TRUE(cipher.has_value());
  auto stream = EncryptDocument(*cipher, plaintext);
  ASSERT_TRUE(stream.has_value());

  const std::string label = "coffre/document-stream/v1/chunk-key";
  Bytes kdf_input(label.begin(), label.end());
  kdf_input.insert(kdf_input.end(), header.begin(), header.end());
  std::uint8_t chunk_key[32];
  ASSERT_EQ(
      crypto_generichash(chunk_key, sizeof chunk_key, kdf_input.data(),
                         static_cast<unsigned long long>(kdf_input.size()), key.data(), key.size()),
      0);

  Bytes expected(header.begin(), header.end());
  const std::size_t chunks = 3;
  for (std::size_t i = 0; i < chunks; ++i) {
    std::uint8_t nonce[24] = {};
    std::copy(header.begin() + 17, header.end(), nonce);
    for (int b = 0; b < 8; ++b)
      nonce[15 + b] = static_cast<std::uint8_t>(std::uint64_t{i} >> (56 - 8 * b));
    nonce[23] = static_cast<std::uint8_t>(i + 1 == chunks ? 1 : 0);
    const std::size_t start = i * kStreamChunkSize;
    const std::size_t len = std::min(kStreamChunkSize, plaintext.size() - start);
    Bytes sealed(len + 16);
    unsigned long long sealed_len = 0;
    ASSERT_EQ(crypto_aead_xchacha20poly1305_ietf_encrypt(
                  sealed.data(), &sealed_len, plaintext.data() + start,
                  static_cast<unsigned long long>(len), ad.data(),
                  static_cast<unsigned long long>(ad.size()), nullptr, nonce, chunk_key),
              0);
    expected.insert(expected.end(), sealed.begin(), sealed.end());
  }
  sodium_memzero(chunk_key, sizeof chunk_key);
  EXPECT_EQ(*stream, expected);
}

TEST(DocumentStreamTest, ChunkApiBuildsTheSameStream) {
  const SecretBytes key = FixedKey();
  const Bytes plaintext = Pattern(3 * kStreamChunkSize + 7);
  auto cipher = DocumentStreamCipher::FromHeader(key, FixedHeader(), Ad("x"));
  ASSERT_TRUE(cipher.has_value());
  Bytes assembled(cipher->header().begin(), cipher->header().end());
  for (std::uint64_t i = 0; i < 4; ++i) {
    const std::size_t start = static_cast<std::size_t>(i) * kStreamChunkSize;
    const std::size_t len = std::min(kStreamChunkSize, plaintext.size() - start);
    auto sealed = cipher->SealChunk(i, i == 3, std::span(plaintext).subspan(start, len));
    ASSERT_TRUE(sealed.has_value());
    auto opened = cipher->OpenChunk(i, i == 3, *sealed);
    ASSERT_TRUE(opened.has_value());
    EXPECT_TRUE(std::equal(opened->begin(), opened->end(),
                           plaintext.begin() + static_cast<std::ptrdiff_t>(start)));
    assembled.insert(assembled.end(), sealed->begin(), sealed->end());
  }
  auto whole = EncryptDocument(*cipher, plaintext, 2);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(assembled, *whole);
}

TEST(DocumentStreamTest, SealChunkRejectsSizesItsPositionForbids) {
  auto cipher = DocumentStreamCipher::Create(FixedKey(), {});
  ASSERT_TRUE(cipher.has_value());
  const Bytes short_chunk(100);
  const Bytes too_long(kStreamChunkSize + 1);
  const Bytes empty;
  // A non-final chunk must be full.
  EXPECT_EQ(cipher->SealChunk(0, false, short_chunk).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cipher->SealChunk(0, true, too_long).error().code(), ErrorCode::kInvalidArgument);
  // An empty final chunk only for the empty document.
  EXPECT_EQ(cipher->SealChunk(2, true, empty).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(cipher->SealChunk(0, true, empty).has_value());
  // The output buffer must fit exactly.
  Bytes out(short_chunk.size() + kStreamTagSize + 1);
  EXPECT_EQ(cipher->SealChunk(0, true, short_chunk, out).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(DocumentStreamTest, OpenChunkFailsUnderAnotherIndexOrFlag) {
  auto cipher = DocumentStreamCipher::Create(FixedKey(), Ad("ad"));
  ASSERT_TRUE(cipher.has_value());
  const Bytes full = Pattern(kStreamChunkSize);
  auto sealed = cipher->SealChunk(4, false, full);
  ASSERT_TRUE(sealed.has_value());
  EXPECT_TRUE(cipher->OpenChunk(4, false, *sealed).has_value());
  ExpectAuthFailure(cipher->OpenChunk(5, false, *sealed));
  ExpectAuthFailure(cipher->OpenChunk(4, true, *sealed));
  // An empty final chunk after index 0 is refused before any tag check.
  auto empty = cipher->SealChunk(0, true, Bytes{});
  ASSERT_TRUE(empty.has_value());
  ExpectAuthFailure(cipher->OpenChunk(1, true, *empty));
  ExpectAuthFailure(cipher->OpenChunk(0, true, Bytes(kStreamTagSize - 1)));
  ExpectAuthFailure(cipher->OpenChunk(0, true, Bytes(kStreamSealedChunkSize + 1)));
}

TEST(DocumentStreamTest, RejectsKeysOfTheWrongSize) {
  const SecretBytes short_key = RandomSecret(16);
  EXPECT_EQ(DocumentStreamCipher::Create(short_key, {}).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(EncryptDocument(short_key, {}, Bytes(10)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecryptDocument(short_key, {}, Bytes(48)).error().code(), ErrorCode::kInvalidArgument);
}

TEST(DocumentStreamTest, RejectsZeroThreads) {
  const SecretBytes key = FixedKey();
  EXPECT_EQ(EncryptDocument(key, {}, Bytes(10), 0).error().code(), ErrorCode::kInvalidArgument);
  const Bytes stream = Encrypt(key, {}, Bytes(10));
  EXPECT_EQ(DecryptDocument(key, {}, stream, 0).error().code(), ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Range reads

class DocumentStreamRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plaintext_ = Pattern(kMiB + 12345, 99);
    stream_ = Encrypt(key_, ad_, plaintext_, 2);
  }

  void ExpectRange(std::uint64_t offset, std::uint64_t length) {
    auto range = DecryptRange(key_, ad_, stream_, offset, length);
    ASSERT_TRUE(range.has_value()) << offset << "+" << length;
    ASSERT_EQ(range->size(), length);
    EXPECT_TRUE(std::equal(range->begin(), range->end(),
                           plaintext_.begin() + static_cast<std::ptrdiff_t>(offset)))
        << offset << "+" << length;
  }

  const SecretBytes key_ = FixedKey(7);
  const Bytes ad_ = Ad("document 9 version 1");
  Bytes plaintext_;
  Bytes stream_;
};

TEST_F(DocumentStreamRangeTest, RandomRangesMatchThePlaintext) {
  std::mt19937_64 rng(20240501);
  const std::uint64_t size = plaintext_.size();
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t offset = rng() % (size + 1);
    // Mostly short ranges (many cross one boundary), some long ones.
    const std::uint64_t max_length = size - offset;
    const std::uint64_t length =
        i % 4 == 0 ? rng() % (max_length + 1)
                   : rng() % (std::min<std::uint64_t>(max_length, 3 * kStreamChunkSize) + 1);
    ExpectRange(offset, length);
  }
}

TEST_F(DocumentStreamRangeTest, BoundaryRangesMatchThePlaintext) {
  const std::uint64_t size = plaintext_.size();
  ExpectRange(0, size);
  ExpectRange(0, 0);
  ExpectRange(size, 0);
  ExpectRange(size - 1, 1);
  ExpectRange(size - 100, 100);
  ExpectRange(kStreamChunkSize - 6, 12);                        // crosses one boundary
  ExpectRange(kStreamChunkSize, kStreamChunkSize);              // exactly one chunk
  ExpectRange(kStreamChunkSize - 1, 2 * kStreamChunkSize + 2);  // spans four chunks
  ExpectRange(16 * kStreamChunkSize - 1, size - (16 * kStreamChunkSize - 1));  // into the end
}

TEST_F(DocumentStreamRangeTest, ReadsOnlyTheChunksCoveringTheRange) {
  std::vector<std::pair<std::uint64_t, std::size_t>> reads;
  const StreamReader reader = [&](std::uint64_t offset, std::span<std::uint8_t> out) -> Status {
    reads.emplace_back(offset, out.size());
    if (offset > stream_.size() || out.size() > stream_.size() - offset) {
      return Fail(ErrorCode::kIo, "short read");
    }
    std::copy_n(stream_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
    return Ok();
  };
  // Bytes in chunks 5 and 6.
  auto range = DecryptRange(key_, ad_, stream_.size(), reader, 6 * kStreamChunkSize - 10, 20);
  ASSERT_TRUE(range.has_value());
  EXPECT_TRUE(
      std::equal(range->begin(), range->end(),
                 plaintext_.begin() + static_cast<std::ptrdiff_t>(6 * kStreamChunkSize - 10)));
  const std::vector<std::pair<std::uint64_t, std::size_t>> expected = {
      {0, kStreamHeaderSize},
      {ChunkStart(5), kStreamSealedChunkSize},
      {ChunkStart(6), kStreamSealedChunkSize}};
  EXPECT_EQ(reads, expected);
}

TEST_F(DocumentStreamRangeTest, ReaderErrorsPassThrough) {
  const StreamReader failing = [](std::uint64_t, std::span<std::uint8_t>) -> Status {
    return Fail(ErrorCode::kIo, "disk on fire");
  };
  auto range = DecryptRange(key_, ad_, stream_.size(), failing, 0, 10);
  ASSERT_FALSE(range.has_value());
  EXPECT_EQ(range.error().code(), ErrorCode::kIo);
  EXPECT_EQ(DecryptRange(key_, ad_, stream_.size(), StreamReader(), 0, 10).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(DocumentStreamRangeTest, RangeOutsideTheDocumentIsInvalid) {
  const std::uint64_t size = plaintext_.size();
  EXPECT_EQ(DecryptRange(key_, ad_, stream_, size + 1, 0).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecryptRange(key_, ad_, stream_, size - 5, 6).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      DecryptRange(key_, ad_, stream_, 1, std::numeric_limits<std::uint64_t>::max()).error().code(),
      ErrorCode::kInvalidArgument);
}

TEST_F(DocumentStreamRangeTest, RangeReadsAuthenticate) {
  Bytes tampered = stream_;
  tampered[ChunkStart(3) + 100] ^= 0x01;
  ExpectAuthFailure(DecryptRange(key_, ad_, tampered, 3 * kStreamChunkSize + 5, 10));
  // Chunks untouched by the range are not read, so they do not fail it.
  EXPECT_TRUE(DecryptRange(key_, ad_, tampered, 0, 10).has_value());
  ExpectAuthFailure(DecryptRange(key_, Ad("other"), stream_, 0, 0));
  ExpectAuthFailure(DecryptRange(FixedKey(8), ad_, stream_, 0, 10));
  // Cut at a chunk boundary: the new last chunk does not carry the final flag.
  const Bytes cut(stream_.begin(), stream_.begin() + static_cast<std::ptrdiff_t>(ChunkStart(16)));
  ExpectAuthFailure(DecryptRange(key_, ad_, cut, 15 * kStreamChunkSize, 10));
  ExpectAuthFailure(DecryptRange(key_, ad_, Bytes(47), 0, 0));
}

// ---------------------------------------------------------------------------------------
// Tampering: every change to a stream fails the same way.

class DocumentStreamTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plaintext_ = Pattern(3 * kStreamChunkSize + 1000, 5);  // chunks 0..3, chunk 3 short
    stream_ = Encrypt(key_, ad_, plaintext_, 2);
    ASSERT_TRUE(DecryptDocument(key_, ad_, stream_).has_value());
  }

  Bytes Chunk(const Bytes& stream, std::size_t index) const {
    const std::size_t end = std::min(ChunkStart(index + 1), stream.size());
    return Bytes(stream.begin() + static_cast<std::ptrdiff_t>(ChunkStart(index)),
                 stream.begin() + static_cast<std::ptrdiff_t>(end));
  }

  void ExpectRejected(const Bytes& stream) {
    ExpectAuthFailure(DecryptDocument(key_, ad_, stream, 1));
    ExpectAuthFailure(DecryptDocument(key_, ad_, stream, 2));
  }

  const SecretBytes key_ = FixedKey(1);
  const Bytes ad_ = Ad("team 4 / document 5 / version 6");
  Bytes plaintext_;
  Bytes stream_;
};

TEST_F(DocumentStreamTamperTest, TruncatedLastChunkFails) {
  for (std::size_t cut : {1u, 10u, 16u, 999u, 1016u}) {
    ExpectRejected(Bytes(stream_.begin(), stream_.end() - static_cast<std::ptrdiff_t>(cut)));
  }
}

TEST_F(DocumentStreamTamperTest, DroppedFinalChunkFails) {
  // Truncation at a chunk boundary: what remains has a valid size but its last chunk was
  // sealed as non-final.
  ExpectRejected(
      Bytes(stream_.begin(), stream_.begin() + static_cast<std::ptrdiff_t>(ChunkStart(3))));
  ExpectRejected(
      Bytes(stream_.begin(), stream_.begin() + static_cast<std::ptrdiff_t>(ChunkStart(1))));
  // Same with a document of full chunks only.
  const Bytes full = Pattern(2 * kStreamChunkSize);
  const Bytes stream = Encrypt(key_, ad_, full);
  ASSERT_TRUE(DecryptDocument(key_, ad_, stream).has_value());
  ExpectRejected(
      Bytes(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(ChunkStart(1))));
  // Down to the bare header.
  ExpectRejected(Bytes(stream.begin(), stream.begin() + kStreamHeaderSize));
}

TEST_F(DocumentStreamTamperTest, SwappedChunksFail) {
  Bytes swapped = stream_;
  const Bytes c0 = Chunk(stream_, 0);
  const Bytes c1 = Chunk(stream_, 1);
  std::copy(c1.begin(), c1.end(), swapped.begin() + static_cast<std::ptrdiff_t>(ChunkStart(0)));
  std::copy(c0.begin(), c0.end(), swapped.begin() + static_cast<std::ptrdiff_t>(ChunkStart(1)));
  ExpectRejected(swapped);
}

TEST_F(DocumentStreamTamperTest, DuplicatedChunkFails) {
  // Chunk 0 in place of chunk 1.
  Bytes replaced = stream_;
  const Bytes c0 = Chunk(stream_, 0);
  std::copy(c0.begin(), c0.end(), replaced.begin() + static_cast<std::ptrdiff_t>(ChunkStart(1)));
  ExpectRejected(replaced);
  // Chunk 1 inserted a second time.
  Bytes inserted = stream_;
  const Bytes c1 = Chunk(stream_, 1);
  inserted.insert(inserted.begin() + static_cast<std::ptrdiff_t>(ChunkStart(2)), c1.begin(),
                  c1.end());
  ExpectRejected(inserted);
}

TEST_F(DocumentStreamTamperTest, ChunkFromAnotherDocumentUnderTheSameKeyFails) {
  // Same key, same associated data, same content, other header.
  const Bytes other = Encrypt(key_, ad_, plaintext_);
  for (std::size_t index : {0u, 1u, 3u}) {
    Bytes spliced = stream_;
    const Bytes chunk = Chunk(other, index);
    std::copy(chunk.begin(), chunk.end(),
              spliced.begin() + static_cast<std::ptrdiff_t>(ChunkStart(index)));
    ExpectRejected(spliced);
  }
  // The other document's header with our chunks.
  Bytes header_swapped = stream_;
  std::copy(other.begin(), other.begin() + kStreamHeaderSize, header_swapped.begin());
  ExpectRejected(header_swapped);
}

TEST_F(DocumentStreamTamperTest, ChunkFromADocumentUnderAnotherKeyFails) {
  auto cipher = DocumentStreamCipher::FromHeader(
      FixedKey(2), Bytes(stream_.begin(), stream_.begin() + kStreamHeaderSize), ad_);
  ASSERT_TRUE(cipher.has_value());
  auto other = EncryptDocument(*cipher, plaintext_);
  ASSERT_TRUE(other.has_value());
  Bytes spliced = stream_;
  const Bytes chunk = Chunk(*other, 2);
  std::copy(chunk.begin(), chunk.end(),
            spliced.begin() + static_cast<std::ptrdiff_t>(ChunkStart(2)));
  ExpectRejected(spliced);
}

TEST_F(DocumentStreamTamperTest, EveryHeaderBitFlipFails) {
  for (std::size_t byte = 0; byte < kStreamHeaderSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes flipped = stream_;
      flipped[byte] ^= static_cast<std::uint8_t>(1 << bit);
      ExpectAuthFailure(DecryptDocument(key_, ad_, flipped));
    }
  }
}

TEST_F(DocumentStreamTamperTest, BodyAndTagBitFlipsFail) {
  const std::size_t last_tag = stream_.size() - kStreamTagSize;
  for (std::size_t position :
       {ChunkStart(0), ChunkStart(0) + 5000, ChunkStart(1) - 1 /* tag of chunk 0 */,
        ChunkStart(1) - kStreamTagSize /* first tag byte of chunk 0 */, ChunkStart(2) + 65535,
        ChunkStart(3), last_tag - 1, last_tag, stream_.size() - 1}) {
    for (int bit : {0, 7}) {
      Bytes flipped = stream_;
      flipped[position] ^= static_cast<std::uint8_t>(1 << bit);
      ExpectRejected(flipped);
    }
  }
}

TEST_F(DocumentStreamTamperTest, WrongAssociatedDataFails) {
  ExpectAuthFailure(DecryptDocument(key_, Ad("team 4 / document 5 / version 7"), stream_));
  ExpectAuthFailure(DecryptDocument(key_, {}, stream_));
  Bytes longer = ad_;
  longer.push_back(0);
  ExpectAuthFailure(DecryptDocument(key_, longer, stream_));
}

TEST_F(DocumentStreamTamperTest, WrongKeyFails) {
  ExpectAuthFailure(DecryptDocument(FixedKey(2), ad_, stream_));
  ExpectAuthFailure(DecryptDocument(RandomSecret(kDocumentKeySize), ad_, stream_, 2));
}

TEST_F(DocumentStreamTamperTest, AppendedBytesFail) {
  for (std::size_t extra :
       std::initializer_list<std::size_t>{1, 15, 16, 17, kStreamSealedChunkSize}) {
    Bytes longer = stream_;
    longer.insert(longer.end(), extra, 0);
    ExpectRejected(longer);
  }
  // A whole chunk sealed by the same cipher appended after the final one.
  auto cipher = DocumentStreamCipher::FromHeader(
      key_, Bytes(stream_.begin(), stream_.begin() + kStreamHeaderSize), ad_);
  ASSERT_TRUE(cipher.has_value());
  auto extra_chunk = cipher->SealChunk(4, true, Pattern(10));
  ASSERT_TRUE(extra_chunk.has_value());
  Bytes longer = stream_;
  longer.insert(longer.end(), extra_chunk->begin(), extra_chunk->end());
  ExpectRejected(longer);
}

TEST_F(DocumentStreamTamperTest, EmptyDocumentIsAuthenticatedToo) {
  const Bytes stream = Encrypt(key_, ad_, {});
  ASSERT_EQ(stream.size(), kStreamHeaderSize + kStreamTagSize);
  auto back = DecryptDocument(key_, ad_, stream);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->empty());
  ExpectAuthFailure(DecryptDocument(key_, Ad("x"), stream));
  Bytes flipped = stream;
  flipped.back() ^= 0x80;
  ExpectAuthFailure(DecryptDocument(key_, ad_, flipped));
  ExpectAuthFailure(DecryptDocument(key_, ad_, Bytes(stream.begin(), stream.end() - 1)));
  ExpectAuthFailure(DecryptDocument(key_, ad_, Bytes{}));
}

}  // namespace
}  // namespace coffre::crypto
