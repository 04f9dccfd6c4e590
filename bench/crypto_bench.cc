// Micro-benchmarks of the crypto module, each against an anchor measured in the same run.
//
// Benchmark machines are shared and noisy, so no figure here means much on its own: every
// benchmark of our code has a "Raw" twin that calls libsodium directly on the same inputs,
// and what we report is the ratio between the two taken from one run of this binary.
//
//   AEAD       AeadSeal / AeadOpen            vs crypto_aead_xchacha20poly1305_ietf_*
//              at 64 B, 1 KiB, 64 KiB, 1 MiB. The raw twins get the same labelled
//              associated data (so Poly1305 authenticates the same bytes), draw their
//              nonce with randombytes_buf inside the timed loop as AeadSeal does, and
//              write into a buffer allocated once: the ratio is the price of our API
//              (allocations, copies, wiping), not of the cipher.
//   Stream     EncryptDocumentInto / DecryptDocumentInto of 64 MiB on 1 and 2 threads
//              vs one thread sealing (or opening) the same 64 MiB in 64 KiB chunks with
//              raw XChaCha20-Poly1305; both write into a buffer allocated once, as a
//              client streaming a document does. Goals: 1 thread >= 0.85x and 2 threads
//              >= 1.6x the raw one-thread throughput. Wall-clock time throughout
//              (UseRealTime), since the work runs on other threads than the one Google
//              Benchmark times.
//   Ed25519    SigningKey::Sign / VerifyKey::Verify vs crypto_sign_detached /
//              crypto_sign_verify_detached on a 256-byte message. Ours signs the domain
//              prefix and label as well (46 more bytes here), which is part of its cost.
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signature.h"

namespace coffre::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::string_view kAeadLabel = "coffre.bench.aead.v1";
constexpr std::string_view kSignatureLabel = "coffre.bench.signature.v1";
constexpr std::size_t kAssociatedDataSize = 32;  // the size of a document id
constexpr std::size_t kSignedMessageSize = 256;
constexpr std::size_t kDocumentSize = std::size_t{64} << 20;

// libsodium must be initialised before the raw twins call it; our API does it itself.
bool SodiumReady(benchmark::State& state) {
  if (sodium_init() < 0) {
    state.SkipWithError("libsodium failed to initialise");
    return false;
  }
  return true;
}

// The associated data AeadSeal authenticates for (label, ad): u16 big-endian label length
// || label || ad (aead.h), rebuilt here so the raw twins do exactly the same AEAD work.
Bytes LabelledAssociatedData(std::string_view label, std::span<const std::uint8_t> ad) {
  Bytes out(2 + label.size() + ad.size());
  out[0] = static_cast<std::uint8_t>(label.size() >> 8);
  out[1] = static_cast<std::uint8_t>(label.size() & 0xFF);
  std::copy(label.begin(), label.end(), out.begin() + 2);
  std::copy(ad.begin(), ad.end(), out.begin() + 2 + static_cast<std::ptrdiff_t>(label.size()));
  return out;
}

// ---------------------------------------------------------------------------------------
// AEAD

void BM_AeadSealRaw(benchmark::State& state) {
  if (!SodiumReady(state)) return;
  const auto size = static_cast<std::size_t>(state.range(0));
  const SecretBytes key = RandomSecret(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  const Bytes plaintext = RandomBytes(size);
  const Bytes ad = LabelledAssociatedData(kAeadLabel, RandomBytes(kAssociatedDataSize));
  Bytes out(kAeadNonceSize + size + kAeadTagSize);
  for (auto _ : state) {
    randombytes_buf(out.data(), kAeadNonceSize);
    unsigned long long written = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kAeadNonceSize, &written,
                                               plaintext.data(), plaintext.size(), ad.data(),
                                               ad.size(), nullptr, out.data(), key.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void BM_AeadSeal(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const AeadKey key = AeadKey::Generate();
  const Bytes plaintext = RandomBytes(size);
  const Bytes ad = RandomBytes(kAssociatedDataSize);
  for (auto _ : state) {
    Bytes sealed = AeadSeal(key, kAeadLabel, plaintext, ad);
    benchmark::DoNotOptimize(sealed.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void BM_AeadOpenRaw(benchmark::State& state) {
  if (!SodiumReady(state)) return;
  const auto size = static_cast<std::size_t>(state.range(0));
  const SecretBytes key = RandomSecret(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  const Bytes plaintext = RandomBytes(size);
  const Bytes ad = LabelledAssociatedData(kAeadLabel, RandomBytes(kAssociatedDataSize));
  Bytes sealed(kAeadNonceSize + size + kAeadTagSize);
  randombytes_buf(sealed.data(), kAeadNonceSize);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data() + kAeadNonceSize, &written,
                                             plaintext.data(), plaintext.size(), ad.data(),
                                             ad.size(), nullptr, sealed.data(), key.data());
  Bytes out(size);
  for (auto _ : state) {
    unsigned long long opened = 0;
    const int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        out.data(), &opened, nullptr, sealed.data() + kAeadNonceSize,
        sealed.size() - kAeadNonceSize, ad.data(), ad.size(), sealed.data(), key.data());
    if (rc != 0) {
      state.SkipWithError("raw decryption failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void BM_AeadOpen(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const AeadKey key = AeadKey::Generate();
  const Bytes ad = RandomBytes(kAssociatedDataSize);
  const Bytes sealed = AeadSeal(key, kAeadLabel, RandomBytes(size), ad);
  for (auto _ : state) {
    Result<SecretBytes> opened = AeadOpen(key, kAeadLabel, sealed, ad);
    if (!opened) {
      state.SkipWithError("AeadOpen failed");
      break;
    }
    benchmark::DoNotOptimize(opened->data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

void AeadSizes(benchmark::internal::Benchmark* b) {
  b->ArgName("bytes")->Arg(64)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20);
}

BENCHMARK(BM_AeadSealRaw)->Apply(AeadSizes);
BENCHMARK(BM_AeadSeal)->Apply(AeadSizes);
BENCHMARK(BM_AeadOpenRaw)->Apply(AeadSizes);
BENCHMARK(BM_AeadOpen)->Apply(AeadSizes);

// ---------------------------------------------------------------------------------------
// Document stream

// Inputs shared by every stream benchmark, built once (64 MiB of random bytes take a
// noticeable fraction of a second and Google Benchmark calls each function several times).
struct StreamFixture {
  SecretBytes document_key = RandomSecret(kDocumentKeySize);
  Bytes associated_data = RandomBytes(kAssociatedDataSize);
  Bytes plaintext = RandomBytes(kDocumentSize);
  // A complete stream of `plaintext`, for the decryption benchmarks.
  Bytes stream;
  // The same plaintext sealed by the raw anchor: kStreamChunkSize-byte chunks, each
  // followed by its tag, under `raw_key` and nonce `raw_nonce` with the chunk index in it.
  SecretBytes raw_key = RandomSecret(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> raw_nonce{};
  Bytes raw_sealed;
  bool ready = false;
};

constexpr std::size_t kRawChunks = kDocumentSize / kStreamChunkSize;
static_assert(kDocumentSize % kStreamChunkSize == 0);

// Writes the chunk index into the last 8 bytes of the nonce, as the stream does; a nonce
// must never repeat under one key, even in a benchmark.
void SetChunkIndex(std::span<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> nonce,
                   std::uint64_t index) {
  for (std::size_t i = 0; i < 8; ++i) {
    nonce[nonce.size() - 8 + i] = static_cast<std::uint8_t>(index >> (56 - 8 * i));
  }
}

void RawSealChunks(const StreamFixture& f, Bytes& out) {
  auto nonce = f.raw_nonce;
  for (std::size_t i = 0; i < kRawChunks; ++i) {
    SetChunkIndex(nonce, i);
    unsigned long long written = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out.data() + i * kStreamSealedChunkSize, &written,
        f.plaintext.data() + i * kStreamChunkSize, kStreamChunkSize, f.associated_data.data(),
        f.associated_data.size(), nullptr, nonce.data(), f.raw_key.data());
  }
}

StreamFixture BuildStreamFixture() {
  StreamFixture f;
  if (sodium_init() < 0) return f;
  Result<Bytes> stream = EncryptDocument(f.document_key, f.associated_data, f.plaintext);
  if (!stream) return f;
  f.stream = *std::move(stream);
  randombytes_buf(f.raw_nonce.data(), f.raw_nonce.size());
  f.raw_sealed.resize(kRawChunks * kStreamSealedChunkSize);
  RawSealChunks(f, f.raw_sealed);
  f.ready = true;
  return f;
}

const StreamFixture* StreamFixtureOrSkip(benchmark::State& state) {
  static const StreamFixture fixture = BuildStreamFixture();
  if (!fixture.ready) {
    state.SkipWithError("could not build the 64 MiB stream fixture");
    return nullptr;
  }
  return &fixture;
}

void SetDocumentBytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kDocumentSize));
}

// The anchor: one thread, raw XChaCha20-Poly1305 per 64 KiB chunk, preallocated output.
void BM_StreamRawChunksSeal(benchmark::State& state) {
  const StreamFixture* f = StreamFixtureOrSkip(state);
  if (f == nullptr) return;
  Bytes out(kRawChunks * kStreamSealedChunkSize);
  for (auto _ : state) {
    RawSealChunks(*f, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

// The decryption counterpart of the anchor, so DecryptDocument can also be read against
// the cost of opening (not sealing) the same chunks.
void BM_StreamRawChunksOpen(benchmark::State& state) {
  const StreamFixture* f = StreamFixtureOrSkip(state);
  if (f == nullptr) return;
  Bytes out(kDocumentSize);
  for (auto _ : state) {
    auto nonce = f->raw_nonce;
    int failures = 0;
    for (std::size_t i = 0; i < kRawChunks; ++i) {
      SetChunkIndex(nonce, i);
      unsigned long long opened = 0;
      failures |= crypto_aead_xchacha20poly1305_ietf_decrypt(
          out.data() + i * kStreamChunkSize, &opened, nullptr,
          f->raw_sealed.data() + i * kStreamSealedChunkSize, kStreamSealedChunkSize,
          f->associated_data.data(), f->associated_data.size(), nonce.data(), f->raw_key.data());
    }
    if (failures != 0) {
      state.SkipWithError("raw chunk decryption failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

// The stream format as the client uses it: the caller owns one output buffer and reuses it
// (EncryptDocumentInto / DecryptDocumentInto), exactly like the anchor.
void BM_EncryptDocument(benchmark::State& state) {
  const StreamFixture* f = StreamFixtureOrSkip(state);
  if (f == nullptr) return;
  const auto threads = static_cast<unsigned>(state.range(0));
  Result<DocumentStreamCipher> cipher =
      DocumentStreamCipher::Create(f->document_key, f->associated_data);
  if (!cipher) {
    state.SkipWithError("DocumentStreamCipher::Create failed");
    return;
  }
  Bytes out(f->stream.size());
  for (auto _ : state) {
    if (!EncryptDocumentInto(*cipher, f->plaintext, out, threads)) {
      state.SkipWithError("EncryptDocumentInto failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

void BM_DecryptDocument(benchmark::State& state) {
  const StreamFixture* f = StreamFixtureOrSkip(state);
  if (f == nullptr) return;
  const auto threads = static_cast<unsigned>(state.range(0));
  Bytes out(kDocumentSize);
  for (auto _ : state) {
    if (!DecryptDocumentInto(f->document_key, f->associated_data, f->stream, out, threads)) {
      state.SkipWithError("DecryptDocumentInto failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

BENCHMARK(BM_StreamRawChunksSeal)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamRawChunksOpen)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncryptDocument)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecryptDocument)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------
// Ed25519

void BM_Ed25519SignRaw(benchmark::State& state) {
  if (!SodiumReady(state)) return;
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> public_key{};
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(public_key.data(), secret_key.data());
  const Bytes message = RandomBytes(kSignedMessageSize);
  std::array<std::uint8_t, crypto_sign_BYTES> signature{};
  for (auto _ : state) {
    crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                         secret_key.data());
    benchmark::DoNotOptimize(signature.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSignedMessageSize));
}

void BM_Ed25519Sign(benchmark::State& state) {
  const SigningKey key = SigningKey::Generate();
  const Bytes message = RandomBytes(kSignedMessageSize);
  for (auto _ : state) {
    auto signature = key.Sign(kSignatureLabel, message);
    benchmark::DoNotOptimize(signature.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSignedMessageSize));
}

void BM_Ed25519VerifyRaw(benchmark::State& state) {
  if (!SodiumReady(state)) return;
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> public_key{};
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(public_key.data(), secret_key.data());
  const Bytes message = RandomBytes(kSignedMessageSize);
  std::array<std::uint8_t, crypto_sign_BYTES> signature{};
  crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                       secret_key.data());
  for (auto _ : state) {
    const int rc = crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                               public_key.data());
    if (rc != 0) {
      state.SkipWithError("raw verification failed");
      break;
    }
    benchmark::DoNotOptimize(rc);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSignedMessageSize));
}

void BM_Ed25519Verify(benchmark::State& state) {
  const SigningKey key = SigningKey::Generate();
  const Bytes message = RandomBytes(kSignedMessageSize);
  const auto signature = key.Sign(kSignatureLabel, message);
  const VerifyKey& verify_key = key.verify_key();
  for (auto _ : state) {
    const Status status = verify_key.Verify(kSignatureLabel, message, signature);
    if (!status) {
      state.SkipWithError("Verify failed");
      break;
    }
    benchmark::DoNotOptimize(status);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSignedMessageSize));
}

BENCHMARK(BM_Ed25519SignRaw);
BENCHMARK(BM_Ed25519Sign);
BENCHMARK(BM_Ed25519VerifyRaw);
BENCHMARK(BM_Ed25519Verify);

}  // namespace
}  // namespace coffre::crypto
