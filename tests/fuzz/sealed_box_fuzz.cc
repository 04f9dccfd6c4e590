// Fuzz target: OpenSealedBox on a box from the input, to a fixed key pair, so that seeds
// sealed to it (corpus/sealed_box_fuzz) open; and X25519PublicKey::FromBytes on the box's
// first 32 bytes (where the sender's ephemeral public key sits) and on the whole input.
//
// Invariants (a broken one aborts: it is a finding):
//   - every failure to open is kAuthenticationFailed, with one context for all of them;
//   - what opens has the size the box gives and does not open under another label;
//   - a public key that parses keeps its bytes and never gives an all-zero shared secret
//     (x25519.h: FromBytes refuses exactly the low-order points);
//   - FromBytes refuses every size but 32 with kInvalidArgument.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>

#include "coffre/crypto/sealed_box.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/x25519.h"

namespace {

using coffre::ErrorCode;
using coffre::crypto::SecretBytes;
using coffre::crypto::X25519KeyPair;

// seed_corpus_tool.cc seals the seeds to the same key under the same label.
constexpr std::string_view kLabel = "coffre.fuzz.sealed-box.v1";
constexpr std::string_view kOtherLabel = "coffre.fuzz.sealed-box.other.v1";

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "sealed_box_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The fixed, public fuzzing key pair: private key bytes 0x40, 0x41, ..., 0x5f.
const X25519KeyPair& Recipient() {
  static const X25519KeyPair pair = [] {
    SecretBytes secret(coffre::crypto::kX25519KeySize);
    for (std::size_t i = 0; i < secret.size(); ++i) {
      secret.data()[i] = static_cast<std::uint8_t>(0x40 + i);
    }
    auto made = X25519KeyPair::FromSecret(std::move(secret));
    Require(made.has_value(), "the fuzzing key pair is valid");
    return std::move(made).value();
  }();
  return pair;
}

void CheckPublicKey(std::span<const std::uint8_t> bytes) {
  using namespace coffre::crypto;
  const auto key = X25519PublicKey::FromBytes(bytes);
  if (!key) {
    Require(key.error().code() == ErrorCode::kInvalidArgument,
            "X25519PublicKey::FromBytes fails with kInvalidArgument");
    return;
  }
  Require(bytes.size() == kX25519KeySize, "only 32-byte public keys parse");
  Require(std::equal(key->bytes().begin(), key->bytes().end(), bytes.begin(), bytes.end()),
          "a parsed public key keeps its bytes");
  Require(X25519SharedSecret(Recipient(), *key).has_value(),
          "a public key that parses gives a non-zero shared secret");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  const std::span<const std::uint8_t> sealed(data, size);

  CheckPublicKey(sealed.first(std::min(size, kX25519KeySize)));
  if (size != kX25519KeySize) CheckPublicKey(sealed);

  static const char* first_context = nullptr;
  const auto opened = OpenSealedBox(Recipient(), kLabel, sealed);
  if (!opened) {
    Require(opened.error().code() == ErrorCode::kAuthenticationFailed,
            "OpenSealedBox fails with kAuthenticationFailed");
    if (first_context == nullptr) first_context = opened.error().context().data();
    Require(opened.error().context().data() == first_context,
            "OpenSealedBox gives one context for every failure");
    return 0;
  }
  Require(opened->size() + kSealedBoxOverhead + 2 + kLabel.size() == size,
          "the plaintext has the size the box gives");
  Require(!OpenSealedBox(Recipient(), kOtherLabel, sealed).has_value(),
          "a box does not open under another label");
  return 0;
}
