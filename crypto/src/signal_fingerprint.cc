// Safety numbers through the library's fingerprint generator.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include "coffre/crypto/safety_number.h"
#include "signal_library.h"

namespace coffre::crypto {

using internal::Out;
using internal::SignalBuffer;
using internal::SignalRef;
using internal::View;

namespace {

// The library's scannable format 1 carries the two fingerprint hashes only (format 0 also
// carried the names and raw keys).
constexpr int kScannableVersion = 1;

Status ValidateName(std::string_view name) {
  // The generator takes names as C strings.
  if (name.empty() || name.size() > kMaxSignalNameSize ||
      name.find('\0') != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "invalid name for a safety number");
  }
  return Ok();
}

// Parses a scannable fingerprint and checks that it has the fields a comparison reads,
// since the library's comparison dereferences them without checking.
Result<SignalRef<scannable_fingerprint>> ParseScannable(std::span<const std::uint8_t> bytes,
                                                        signal_context* context) {
  if (bytes.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "scannable fingerprint does not parse");
  }
  SignalRef<scannable_fingerprint> scannable;
  const int rc =
      scannable_fingerprint_deserialize(Out(scannable), bytes.data(), bytes.size(), context);
  if (rc != SG_SUCCESS || scannable == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "scannable fingerprint does not parse");
  }
  if (scannable_fingerprint_get_version(scannable.get()) != kScannableVersion) {
    return Fail(ErrorCode::kUnsupported, "unsupported scannable fingerprint version");
  }
  if (scannable_fingerprint_get_local_fingerprint(scannable.get()) == nullptr ||
      scannable_fingerprint_get_remote_fingerprint(scannable.get()) == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "scannable fingerprint is incomplete");
  }
  return scannable;
}

}  // namespace

std::string SafetyNumber::Grouped() const {
  std::string out;
  for (std::size_t i = 0; i < digits.size(); i += 5) {
    if (i != 0) out.push_back(' ');
    out.append(digits, i, 5);
  }
  return out;
}

Result<SafetyNumber> ComputeSafetyNumber(std::string_view local_name,
                                         std::span<const std::uint8_t> local_identity,
                                         std::string_view remote_name,
                                         std::span<const std::uint8_t> remote_identity) {
  COFFRE_RETURN_IF_ERROR(ValidateName(local_name));
  COFFRE_RETURN_IF_ERROR(ValidateName(remote_name));
  COFFRE_ASSIGN_OR_RETURN(auto library, internal::LibraryContext::Create());
  std::lock_guard<std::recursive_mutex> lock(library->mutex());
  COFFRE_ASSIGN_OR_RETURN(SignalRef<ec_public_key> local_key,
                          internal::DecodePublicKey(local_identity, library->get()));
  COFFRE_ASSIGN_OR_RETURN(SignalRef<ec_public_key> remote_key,
                          internal::DecodePublicKey(remote_identity, library->get()));

  internal::FingerprintGeneratorHandle generator;
  if (fingerprint_generator_create(Out(generator), kSafetyNumberIterations, kScannableVersion,
                                   library->get()) != SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "fingerprint generator could not be created");
  }
  const std::string local(local_name);
  const std::string remote(remote_name);
  SignalRef<fingerprint> result;
  const int rc = fingerprint_generator_create_for(generator.get(), local.c_str(), local_key.get(),
                                                  remote.c_str(), remote_key.get(), Out(result));
  if (rc != SG_SUCCESS || result == nullptr) {
    return Fail(ErrorCode::kInternal, "fingerprint could not be computed");
  }

  SafetyNumber number;
  const displayable_fingerprint* displayable = fingerprint_get_displayable(result.get());
  const char* text = displayable == nullptr ? nullptr : displayable_fingerprint_text(displayable);
  if (text == nullptr) return Fail(ErrorCode::kInternal, "fingerprint has no digits");
  number.digits = text;
  if (number.digits.size() != kSafetyNumberDigits ||
      !std::all_of(number.digits.begin(), number.digits.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return Fail(ErrorCode::kInternal, "fingerprint digits have an unexpected form");
  }

  SignalBuffer scannable;
  if (scannable_fingerprint_serialize(Out(scannable), fingerprint_get_scannable(result.get())) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "scannable fingerprint could not be serialized");
  }
  const std::span<const std::uint8_t> bytes = View(scannable.get());
  number.scannable.assign(bytes.begin(), bytes.end());
  return number;
}

Result<bool> ScannableFingerprintMatches(std::span<const std::uint8_t> ours,
                                         std::span<const std::uint8_t> scanned) {
  COFFRE_ASSIGN_OR_RETURN(auto library, internal::LibraryContext::Create());
  std::lock_guard<std::recursive_mutex> lock(library->mutex());
  COFFRE_ASSIGN_OR_RETURN(SignalRef<scannable_fingerprint> our_scannable,
                          ParseScannable(ours, library->get()));
  COFFRE_ASSIGN_OR_RETURN(SignalRef<scannable_fingerprint> their_scannable,
                          ParseScannable(scanned, library->get()));
  const int rc = scannable_fingerprint_compare(our_scannable.get(), their_scannable.get());
  if (rc == 1) return true;
  if (rc == 0 || rc == SG_ERR_FP_IDENT_MISMATCH) return false;
  if (rc == SG_ERR_FP_VERSION_MISMATCH) {
    return Fail(ErrorCode::kUnsupported, "unsupported scannable fingerprint version");
  }
  return Fail(ErrorCode::kInternal, "scannable fingerprints could not be compared");
}

}  // namespace coffre::crypto
