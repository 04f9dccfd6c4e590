// Argon2id (RFC 9106) cost: the library we unlock with against the one we could use, at
// equal parameters, measured in the same run.
//
//   BM_Argon2idLibargon2        argon2id_hash_raw from Debian's libargon2 (the library
//                               behind internal::Argon2idFull).
//   BM_DeriveKeyFromPassphrase  our unlock path: DeriveKeyFromPassphrase on a record, i.e.
//                               libargon2 plus our checks; read against the line above.
//   BM_Argon2idLibsodium        the anchor, crypto_pwhash with
//                               crypto_pwhash_ALG_ARGON2ID13 from libsodium.
//
// Why: Debian builds libargon2 from its portable reference code, while libsodium ships
// vectorised Argon2 (PITFALLS §20), so the ratio libargon2 / libsodium says what the
// library choice costs at every unlock. Before timing, BM_Argon2idLibsodium checks that
// both libraries give the same output for its parameters, so the ratio compares two ways
// of computing one function. Parameter sets (m in KiB, t, p):
//   19456, 2, 1    OWASP's minimum (kMinimumArgon2Params)
//   65536, 3, 1    a common reference point (64 MiB, t = 3)
//   262144, 2, 2   our defaults (kDefaultArgon2Params): libargon2 and ours only, because
//                  libsodium always computes one lane (p = 1) on one thread
//   262144, 2, 1   the defaults with one lane, the closest libsodium can come; libargon2
//                  runs it too so that one pair is at equal parameters
// One hash takes tens to hundreds of milliseconds and allocates m KiB, so every case runs
// a fixed small number of iterations on wall-clock time (p = 2 runs a second thread).
#include <argon2.h>
#include <benchmark/benchmark.h>
#include <sodium.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {
namespace {

constexpr std::string_view kPassphrase = "correct horse battery staple";
constexpr std::array<std::uint8_t, kPassphraseSaltSize> kSalt = {
    0x43, 0x6f, 0x66, 0x66, 0x72, 0x65, 0x2d, 0x62, 0x65, 0x6e, 0x63, 0x68, 0x2d, 0x73, 0x61, 0x6c};
constexpr std::size_t kKeySize = 32;
static_assert(kPassphraseSaltSize == crypto_pwhash_SALTBYTES);

Argon2Params ParamsOf(const benchmark::State& state) {
  return {static_cast<std::uint32_t>(state.range(0)), static_cast<std::uint32_t>(state.range(1)),
          static_cast<std::uint32_t>(state.range(2))};
}

int Libargon2(const Argon2Params& params, std::array<std::uint8_t, kKeySize>& out) {
  return argon2id_hash_raw(params.iterations, params.memory_kib, params.parallelism,
                           kPassphrase.data(), kPassphrase.size(), kSalt.data(), kSalt.size(),
                           out.data(), out.size());
}

int Libsodium(const Argon2Params& params, std::array<std::uint8_t, kKeySize>& out) {
  return crypto_pwhash(out.data(), out.size(), kPassphrase.data(), kPassphrase.size(), kSalt.data(),
                       params.iterations, std::size_t{params.memory_kib} * 1024,
                       crypto_pwhash_ALG_ARGON2ID13);
}

void BM_Argon2idLibsodium(benchmark::State& state) {
  const Argon2Params params = ParamsOf(state);
  if (sodium_init() < 0 || params.parallelism != 1) {
    state.SkipWithError("libsodium needs sodium_init() and computes only p = 1");
    return;
  }
  std::array<std::uint8_t, kKeySize> reference{};
  std::array<std::uint8_t, kKeySize> out{};
  if (Libargon2(params, reference) != ARGON2_OK || Libsodium(params, out) != 0 ||
      !ConstantTimeEquals(reference, out)) {
    state.SkipWithError("libsodium and libargon2 disagree: the ratio would mean nothing");
    return;
  }
  for (auto _ : state) {
    if (Libsodium(params, out) != 0) {
      state.SkipWithError("crypto_pwhash failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

void BM_Argon2idLibargon2(benchmark::State& state) {
  const Argon2Params params = ParamsOf(state);
  std::array<std::uint8_t, kKeySize> out{};
  for (auto _ : state) {
    if (Libargon2(params, out) != ARGON2_OK) {
      state.SkipWithError("argon2id_hash_raw failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}

void BM_DeriveKeyFromPassphrase(benchmark::State& state) {
  const Result<PassphraseKdfRecord> record = PassphraseKdfRecord::Create(ParamsOf(state));
  if (!record) {
    state.SkipWithError("parameters refused by PassphraseKdfRecord::Create");
    return;
  }
  const auto* passphrase = reinterpret_cast<const std::uint8_t*>(kPassphrase.data());
  for (auto _ : state) {
    Result<SecretBytes> key =
        DeriveKeyFromPassphrase({passphrase, kPassphrase.size()}, *record, kKeySize);
    if (!key) {
      state.SkipWithError("DeriveKeyFromPassphrase failed");
      break;
    }
    benchmark::DoNotOptimize(key->data());
    benchmark::ClobberMemory();
  }
}

// Iteration counts keep the whole set near 15 s on two cores.
constexpr benchmark::IterationCount kIterationsMinimum = 12;
constexpr benchmark::IterationCount kIterations64MiB = 6;
constexpr benchmark::IterationCount kIterations256MiB = 4;

void Minimum(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m_kib", "t", "p"})
      ->Args({kMinimumArgon2Params.memory_kib, kMinimumArgon2Params.iterations,
              kMinimumArgon2Params.parallelism})
      ->Iterations(kIterationsMinimum)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void Reference64MiB(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m_kib", "t", "p"})
      ->Args({64 * 1024, 3, 1})
      ->Iterations(kIterations64MiB)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void DefaultsOneLane(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m_kib", "t", "p"})
      ->Args({kDefaultArgon2Params.memory_kib, kDefaultArgon2Params.iterations, 1})
      ->Iterations(kIterations256MiB)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void Defaults(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m_kib", "t", "p"})
      ->Args({kDefaultArgon2Params.memory_kib, kDefaultArgon2Params.iterations,
              kDefaultArgon2Params.parallelism})
      ->Iterations(kIterations256MiB)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_Argon2idLibsodium)->Apply(Minimum);
BENCHMARK(BM_Argon2idLibargon2)->Apply(Minimum);
BENCHMARK(BM_DeriveKeyFromPassphrase)->Apply(Minimum);

BENCHMARK(BM_Argon2idLibsodium)->Apply(Reference64MiB);
BENCHMARK(BM_Argon2idLibargon2)->Apply(Reference64MiB);
BENCHMARK(BM_DeriveKeyFromPassphrase)->Apply(Reference64MiB);

BENCHMARK(BM_Argon2idLibsodium)->Apply(DefaultsOneLane);
BENCHMARK(BM_Argon2idLibargon2)->Apply(DefaultsOneLane);

BENCHMARK(BM_Argon2idLibargon2)->Apply(Defaults);
BENCHMARK(BM_DeriveKeyFromPassphrase)->Apply(Defaults);

}  // namespace
}  // namespace coffre::crypto
