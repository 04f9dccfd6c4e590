// The main() of a fuzz target when it is not built with libFuzzer (g++, or Clang without
// COFFRE_FUZZ): it runs every seed of the target's corpus, then a seeded, deterministic
// sequence of mutations of them (bit flips, byte changes, truncations, insertions, erasures,
// splices between seeds, overwritten integers, wholly random inputs), until an input count
// or a time budget is reached. There is no coverage feedback: this is a bounded smoke run for
// ctest, and the libFuzzer build (tests/fuzz/CMakeLists.txt) is the one for long runs.
//
//   TARGET [--iterations=N] [--seconds=S] [--seed=N] [--max-len=N] PATH...
//
// PATH is a corpus directory (every regular file in it, in name order) or a single file; to
// replay one input, give only that file and --iterations=0. Exit status 0 when every input
// ran, 2 on a usage error or an empty corpus. When an input crashes the target (abort,
// signal, sanitizer report), its bytes are printed in hex on stderr and written to
// ./fuzz-crash-input, so the finding can be replayed with the line above.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define COFFRE_FUZZ_HAS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define COFFRE_FUZZ_HAS_SANITIZER 1
#endif
#if defined(COFFRE_FUZZ_HAS_SANITIZER)
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// --- Reporting the input that crashed ------------------------------------------------------

// The input being run, for the crash handlers. Only read from a handler, which runs on the
// same thread and only uses async-signal-safe calls.
const std::uint8_t* volatile g_current_data = nullptr;
volatile std::size_t g_current_size = 0;
volatile std::uint64_t g_current_index = 0;

void WriteAll(int fd, const char* text, std::size_t size) {
  while (size > 0) {
    const ssize_t written = write(fd, text, size);
    if (written <= 0) return;
    text += written;
    size -= static_cast<std::size_t>(written);
  }
}

void WriteText(int fd, const char* text) {
  std::size_t size = 0;
  while (text[size] != '\0') ++size;
  WriteAll(fd, text, size);
}

void WriteDecimal(int fd, std::uint64_t value) {
  char digits[24];
  std::size_t count = 0;
  do {
    digits[sizeof digits - 1 - count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  WriteAll(fd, digits + sizeof digits - count, count);
}

void ReportCurrentInput() {
  const std::uint8_t* data = g_current_data;
  const std::size_t size = g_current_size;
  WriteText(STDERR_FILENO, "\n==fuzz== crash on input #");
  WriteDecimal(STDERR_FILENO, g_current_index);
  WriteText(STDERR_FILENO, " (");
  WriteDecimal(STDERR_FILENO, size);
  WriteText(STDERR_FILENO, " bytes), written to ./fuzz-crash-input; hex:\n");
  static constexpr char kHex[] = "0123456789abcdef";
  char pair[2];
  for (std::size_t i = 0; i < size; ++i) {
    pair[0] = kHex[data[i] >> 4];
    pair[1] = kHex[data[i] & 0x0F];
    WriteAll(STDERR_FILENO, pair, 2);
  }
  WriteText(STDERR_FILENO, "\n");
  const int fd = open("fuzz-crash-input", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    WriteAll(fd, reinterpret_cast<const char*>(data), size);
    close(fd);
  }
}

void OnFatalSignal(int signal_number) {
  ReportCurrentInput();
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void InstallCrashReporting() {
  for (const int signal_number : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    std::signal(signal_number, OnFatalSignal);
  }
#if defined(COFFRE_FUZZ_HAS_SANITIZER)
  // Sanitizer reports end in _exit, not in a signal.
  __sanitizer_set_death_callback(ReportCurrentInput);
#endif
}

void Run(const std::vector<std::uint8_t>& input, std::uint64_t index) {
  // A copy of exactly `size` bytes on the heap, so that AddressSanitizer sees any read past
  // the end of the input.
  std::vector<std::uint8_t> exact(input);
  exact.shrink_to_fit();
  g_current_data = exact.data();
  g_current_size = exact.size();
  g_current_index = index;
  LLVMFuzzerTestOneInput(exact.data(), exact.size());
  g_current_data = nullptr;
  g_current_size = 0;
}

// --- Mutations ---------------------------------------------------------------------------

// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
// OOPSLA 2014): tiny, seeded and the same on every platform, so a run can be repeated.
class Prng {
 public:
  explicit Prng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, bound) for bound >= 1.
  std::size_t Below(std::size_t bound) { return static_cast<std::size_t>(Next() % bound); }
  std::uint8_t Byte() { return static_cast<std::uint8_t>(Next()); }
  bool OneIn(std::size_t n) { return Below(n) == 0; }

 private:
  std::uint64_t state_;
};

constexpr std::array<std::uint8_t, 8> kInterestingBytes = {0x00, 0x01, 0x02, 0x7F,
                                                           0x80, 0xFE, 0xFF, 0x05};
constexpr std::array<std::uint64_t, 10> kInterestingWords = {
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF};

// One mutation of `input` in place, keeping it at most `max_len` bytes long.
void MutateOnce(std::vector<std::uint8_t>& input,
                const std::vector<std::vector<std::uint8_t>>& seeds, std::size_t max_len,
                Prng& prng) {
  const auto at = [&](std::size_t extra) { return prng.Below(input.size() + extra); };
  switch (prng.Below(12)) {
    case 0:  // flip one bit
      if (!input.empty()) input[at(0)] ^= static_cast<std::uint8_t>(1u << prng.Below(8));
      break;
    case 1:  // random byte
      if (!input.empty()) input[at(0)] = prng.Byte();
      break;
    case 2:  // boundary byte
      if (!input.empty()) input[at(0)] = kInterestingBytes[prng.Below(kInterestingBytes.size())];
      break;
    case 3:  // small arithmetic
      if (!input.empty()) {
        std::uint8_t& byte = input[at(0)];
        byte = static_cast<std::uint8_t>(byte + (prng.OneIn(2) ? 1 : 255) * (1 + prng.Below(4)));
      }
      break;
    case 4:  // truncate
      input.resize(at(1));
      break;
    case 5: {  // erase a range
      if (input.empty()) break;
      const std::size_t begin = at(0);
      const std::size_t count = 1 + prng.Below(std::min<std::size_t>(input.size() - begin, 64));
      input.erase(input.begin() + static_cast<std::ptrdiff_t>(begin),
                  input.begin() + static_cast<std::ptrdiff_t>(begin + count));
      break;
    }
    case 6: {  // insert random bytes
      const std::size_t position = at(1);
      std::vector<std::uint8_t> bytes(1 + prng.Below(16));
      for (std::uint8_t& byte : bytes) byte = prng.Byte();
      input.insert(input.begin() + static_cast<std::ptrdiff_t>(position), bytes.begin(),
                   bytes.end());
      break;
    }
    case 7: {  // insert a run of one byte
      const std::size_t position = at(1);
      const std::uint8_t value =
          prng.OneIn(2) ? prng.Byte() : kInterestingBytes[prng.Below(kInterestingBytes.size())];
      input.insert(input.begin() + static_cast<std::ptrdiff_t>(position), 1 + prng.Below(128),
                   value);
      break;
    }
    case 8: {  // splice: our head, another seed's tail
      const std::vector<std::uint8_t>& other = seeds[prng.Below(seeds.size())];
      input.resize(at(1));
      const std::size_t from = prng.Below(other.size() + 1);
      input.insert(input.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
      break;
    }
    case 9: {  // copy a range of the input over another place in it
      if (input.size() < 2) break;
      const std::size_t from = at(0);
      const std::size_t to = at(0);
      const std::size_t count =
          1 + prng.Below(std::min({input.size() - from, input.size() - to, std::size_t{32}}));
      const std::vector<std::uint8_t> part(
          input.begin() + static_cast<std::ptrdiff_t>(from),
          input.begin() + static_cast<std::ptrdiff_t>(from + count));
      std::copy(part.begin(), part.end(), input.begin() + static_cast<std::ptrdiff_t>(to));
      break;
    }
    case 10: {  // overwrite a big-endian 16- or 32-bit integer with a boundary value
      const std::size_t width = prng.OneIn(2) ? 2 : 4;
      if (input.size() < width) break;
      const std::size_t position = prng.Below(input.size() - width + 1);
      std::uint64_t value = kInterestingWords[prng.Below(kInterestingWords.size())];
      if (prng.OneIn(4)) value = input.size() + prng.Below(3) - 1;  // a length near the truth
      for (std::size_t i = 0; i < width; ++i) {
        input[position + i] = static_cast<std::uint8_t>(value >> (8 * (width - 1 - i)));
      }
      break;
    }
    default: {  // replace a random range with random bytes
      if (input.empty()) break;
      const std::size_t begin = at(0);
      const std::size_t count = 1 + prng.Below(std::min<std::size_t>(input.size() - begin, 16));
      for (std::size_t i = 0; i < count; ++i) input[begin + i] = prng.Byte();
      break;
    }
  }
  if (input.size() > max_len) input.resize(max_len);
}

std::vector<std::uint8_t> NextInput(const std::vector<std::vector<std::uint8_t>>& seeds,
                                    const std::vector<std::uint8_t>& previous, std::size_t max_len,
                                    Prng& prng) {
  if (prng.OneIn(64)) {  // an input with no structure at all
    std::vector<std::uint8_t> input(prng.Below(std::min<std::size_t>(max_len, 512) + 1));
    for (std::uint8_t& byte : input) byte = prng.Byte();
    return input;
  }
  // Mostly fresh mutations of a seed; sometimes stack more onto the previous input.
  std::vector<std::uint8_t> input =
      (!previous.empty() && prng.OneIn(4)) ? previous : seeds[prng.Below(seeds.size())];
  std::size_t count = 1;
  while (count < 8 && prng.OneIn(2)) ++count;
  for (std::size_t i = 0; i < count; ++i) MutateOnce(input, seeds, max_len, prng);
  return input;
}

// --- Command line --------------------------------------------------------------------------

bool ParseNumber(std::string_view text, std::uint64_t& value) {
  if (text.empty() || text.size() > 19) return false;
  value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

bool ReadFile(const std::filesystem::path& path, std::vector<std::uint8_t>& out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  out.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  return !file.bad();
}

bool CollectSeeds(const std::string& argument, std::vector<std::vector<std::uint8_t>>& seeds) {
  std::error_code error;
  const std::filesystem::path path(argument);
  if (std::filesystem::is_directory(path, error)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
      if (entry.is_regular_file(error)) files.push_back(entry.path());
    }
    if (error) return false;
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      seeds.emplace_back();
      if (!ReadFile(file, seeds.back())) return false;
    }
    return true;
  }
  seeds.emplace_back();
  return ReadFile(path, seeds.back());
}

int Usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--iterations=N] [--seconds=S] [--seed=N] [--max-len=N] PATH...\n",
               program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t iterations = 20000;
  std::uint64_t seconds = 20;
  std::uint64_t seed = 1;
  std::uint64_t max_len = 0;  // 0: derived from the corpus
  std::vector<std::vector<std::uint8_t>> seeds;
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument(argv[i]);
    const auto option = [&](std::string_view name, std::uint64_t& value) {
      if (argument.substr(0, name.size()) != name) return false;
      if (!ParseNumber(argument.substr(name.size()), value)) std::exit(Usage(argv[0]));
      return true;
    };
    if (option("--iterations=", iterations) || option("--seconds=", seconds) ||
        option("--seed=", seed) || option("--max-len=", max_len)) {
      continue;
    }
    if (argument.substr(0, 2) == "--" || !CollectSeeds(argv[i], seeds)) {
      std::fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
      return Usage(argv[0]);
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seed input given\n", argv[0]);
    return Usage(argv[0]);
  }
  if (max_len == 0) {
    std::size_t longest = 0;
    for (const auto& input : seeds) longest = std::max(longest, input.size());
    max_len = std::max<std::uint64_t>(4096, longest + 1024);
  }

  InstallCrashReporting();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t index = 0;
  for (const auto& input : seeds) Run(input, index++);

  Prng prng(seed);
  std::vector<std::uint8_t> previous;
  const auto deadline = start + std::chrono::seconds(seconds);
  std::uint64_t mutated = 0;
  for (; mutated < iterations; ++mutated) {
    if (mutated % 32 == 0 && std::chrono::steady_clock::now() >= deadline) break;
    previous = NextInput(seeds, previous, static_cast<std::size_t>(max_len), prng);
    Run(previous, index++);
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  std::printf("%zu seeds and %llu mutated inputs (seed %llu) in %.1f s%s\n", seeds.size(),
              static_cast<unsigned long long>(mutated), static_cast<unsigned long long>(seed),
              elapsed.count(), mutated < iterations ? ", stopped by the time budget" : "");
  return 0;
}
