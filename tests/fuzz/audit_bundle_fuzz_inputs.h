// What audit_bundle_verify_fuzz and audit_seed_corpus_tool.cc share about export bundles
// (coffre/client/audit_bundle.h): the fixed, public keys of the exporting auditor, and how
// one fuzz input holds the seven files of a bundle. The log key, origin and pinned verifier
// key are those of audit_fuzz_inputs.h.
//
// Input framing, for each file of kBundleFiles in order: u32 big-endian length || bytes.
// A length beyond the input's end takes the rest of the input; a file whose length prefix
// is missing is absent from the folder, as are the ones after it. The manifest and what it
// authenticates come first, so that a mutation in a record file leaves them whole more
// often than not and the fuzzer reaches the per-record checks.
#ifndef COFFRE_TESTS_FUZZ_AUDIT_BUNDLE_FUZZ_INPUTS_H_
#define COFFRE_TESTS_FUZZ_AUDIT_BUNDLE_FUZZ_INPUTS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit_bundle_format.h"
#include "coffre/crypto/signature.h"

namespace coffre::fuzz {

inline constexpr std::array<std::string_view, 7> kBundleFiles = {
    client::bundle::kManifestFile,   client::bundle::kSignatureFile,
    client::bundle::kCheckpointFile, client::bundle::kRecordsBinaryFile,
    client::bundle::kProofsFile,     client::bundle::kRecordsJsonFile,
    client::bundle::kRecordsCsvFile};

// A file's bytes, nullopt when the folder does not hold it.
using BundleFiles = std::array<std::optional<std::string>, kBundleFiles.size()>;

inline std::vector<std::uint8_t> FrameBundle(const BundleFiles& files) {
  std::vector<std::uint8_t> input;
  for (const auto& file : files) {
    if (!file) break;  // absent: so are the ones after it
    const auto size = static_cast<std::uint32_t>(file->size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      input.push_back(static_cast<std::uint8_t>(size >> shift));
    }
    input.insert(input.end(), file->begin(), file->end());
  }
  return input;
}

inline BundleFiles SplitBundle(std::span<const std::uint8_t> input) {
  BundleFiles files;
  std::size_t at = 0;
  for (auto& file : files) {
    if (input.size() - at < 4) break;
    std::size_t size = 0;
    for (int i = 0; i < 4; ++i) size = size << 8 | input[at + static_cast<std::size_t>(i)];
    at += 4;
    if (size > input.size() - at) size = input.size() - at;
    file.emplace(reinterpret_cast<const char*>(input.data() + at), size);
    at += size;
  }
  return files;
}

// The exporting auditor: user identity key from seed bytes 0x60, 0x61, ..., device key from
// 0x80, 0x81, ..., the device's signed events (client_event.h) from 0xa0, 0xa1, ... Distinct
// keys for distinct roles, so that a signature made in one role and accepted in another
// is visible as such.
inline constexpr std::string_view kExporterUser = "auditor";
inline constexpr std::uint32_t kExporterDevice = 1;

inline crypto::SigningKey FuzzKeyFromSeedBase(std::uint8_t base) {
  std::uint8_t seed[crypto::kEd25519SeedSize];
  for (std::size_t i = 0; i < sizeof seed; ++i) seed[i] = static_cast<std::uint8_t>(base + i);
  auto made = crypto::SigningKey::FromSeed(seed);
  if (!made) std::abort();
  return std::move(made).value();
}

inline const crypto::SigningKey& ExporterUserKey() {
  static const crypto::SigningKey key = FuzzKeyFromSeedBase(0x60);
  return key;
}

inline const crypto::SigningKey& ExporterDeviceKey() {
  static const crypto::SigningKey key = FuzzKeyFromSeedBase(0x80);
  return key;
}

inline const crypto::SigningKey& EventDeviceKey() {
  static const crypto::SigningKey key = FuzzKeyFromSeedBase(0xa0);
  return key;
}

// Lowercase hex, as the export writes hashes, keys and the manifest signature.
inline std::string LowerHex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes.size());
  for (const std::uint8_t byte : bytes) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0x0F]);
  }
  return hex;
}

}  // namespace coffre::fuzz

#endif  // COFFRE_TESTS_FUZZ_AUDIT_BUNDLE_FUZZ_INPUTS_H_
