// Fuzz target: VerifyKey::FromBytes on a public key and VerifyKey::Verify on a signature
// and a message, all from the input.
//
// Input layout: [0, 32) the public key; [32, 96) the signature; the rest the message. Short
// inputs give short keys and signatures. The whole input is also tried as a key (every other
// size), and the whole rest after the key as a signature (every other size).
//
// Invariants (a broken one aborts: it is a finding):
//   - FromBytes fails with kInvalidArgument, and a key that parses keeps its bytes;
//   - every verification failure is kAuthenticationFailed, with one context for all;
//   - a signature verifies only under the fixed key whose private half we hold (seeds are
//     signed with it; nothing else can make a valid signature, so a success under any other
//     key is a forgery through a degenerate key), never under another label, and it is the
//     one signature Sign gives for that message (Ed25519 is deterministic and libsodium
//     refuses non-canonical encodings: any other accepted signature is malleability).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>

#include "coffre/crypto/signature.h"

namespace {

using coffre::ErrorCode;
using coffre::crypto::SigningKey;

// seed_corpus_tool.cc signs the seeds with the same key under the same label.
constexpr std::string_view kLabel = "coffre.fuzz.signature.v1";
constexpr std::string_view kOtherLabel = "coffre.fuzz.signature.other.v1";

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "signature_verify_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The fixed, public fuzzing key: seed bytes 0x60, 0x61, ..., 0x7f.
const SigningKey& Signer() {
  static const SigningKey key = [] {
    std::uint8_t seed[coffre::crypto::kEd25519SeedSize];
    for (std::size_t i = 0; i < sizeof seed; ++i) seed[i] = static_cast<std::uint8_t>(0x60 + i);
    auto made = SigningKey::FromSeed(seed);
    Require(made.has_value(), "the fuzzing seed is a valid seed");
    return std::move(made).value();
  }();
  return key;
}

const char* first_context = nullptr;

void CheckVerify(const coffre::crypto::VerifyKey& key, std::span<const std::uint8_t> message,
                 std::span<const std::uint8_t> signature) {
  const coffre::Status verified = key.Verify(kLabel, message, signature);
  if (!verified) {
    Require(verified.error().code() == ErrorCode::kAuthenticationFailed,
            "Verify fails with kAuthenticationFailed");
    if (first_context == nullptr) first_context = verified.error().context().data();
    Require(verified.error().context().data() == first_context,
            "Verify gives one context for every failure");
    return;
  }
  Require(key.bytes() == Signer().verify_key().bytes(),
          "a signature verifies only under a key whose private half made it");
  const auto expected = Signer().Sign(kLabel, message);
  Require(std::equal(expected.begin(), expected.end(), signature.begin(), signature.end()),
          "the only signature that verifies is the one Sign makes");
  Require(!key.Verify(kOtherLabel, message, signature).has_value(),
          "a signature does not verify under another label");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  const std::span<const std::uint8_t> input(data, size);

  if (size != kEd25519PublicKeySize) {
    const auto whole = VerifyKey::FromBytes(input);
    Require(!whole && whole.error().code() == ErrorCode::kInvalidArgument,
            "FromBytes refuses every size but 32 with kInvalidArgument");
  }
  const std::span<const std::uint8_t> key_bytes =
      input.first(std::min(size, kEd25519PublicKeySize));
  const std::span<const std::uint8_t> rest = input.subspan(key_bytes.size());
  const auto key = VerifyKey::FromBytes(key_bytes);
  if (!key) {
    Require(key.error().code() == ErrorCode::kInvalidArgument,
            "FromBytes fails with kInvalidArgument");
    return 0;
  }
  Require(std::equal(key->bytes().begin(), key->bytes().end(), key_bytes.begin(), key_bytes.end()),
          "a parsed key keeps its bytes");

  const std::span<const std::uint8_t> signature =
      rest.first(std::min(rest.size(), kEd25519SignatureSize));
  CheckVerify(*key, rest.subspan(signature.size()), signature);
  if (rest.size() != kEd25519SignatureSize) CheckVerify(*key, {}, rest);
  return 0;
}
