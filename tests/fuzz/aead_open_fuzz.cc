// Fuzz target: AeadOpen on a sealed message and associated data from the input, under a
// fixed key, so that seeds sealed with that key (corpus/aead_open_fuzz) open.
//
// Input layout: [0] n, the associated data length (cut to what remains); [1, 1 + n) the
// associated data; the rest the sealed message (nonce || ciphertext || tag).
//
// Invariants (a broken one aborts: it is a finding):
//   - every failure is kAuthenticationFailed, with one context for all of them;
//   - what opens has the size the input gives, does not open under another label, and
//     re-seals under its own nonce to exactly the input (aead.h: the label is bound as
//     u16 length || label || associated data).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/secret_bytes.h"

namespace {

using coffre::ErrorCode;
using coffre::crypto::AeadKey;
using coffre::crypto::SecretBytes;

// seed_corpus_tool.cc seals the seeds under the same key and label.
constexpr std::string_view kLabel = "coffre.fuzz.aead.v1";
constexpr std::string_view kOtherLabel = "coffre.fuzz.aead.other.v1";

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "aead_open_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The fixed, public fuzzing key: bytes 0x20, 0x21, ..., 0x3f.
const AeadKey& Key() {
  static const AeadKey key = [] {
    SecretBytes bytes(coffre::crypto::kAeadKeySize);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      bytes.data()[i] = static_cast<std::uint8_t>(0x20 + i);
    }
    auto made = AeadKey::FromBytes(std::move(bytes));
    Require(made.has_value(), "the fuzzing key is a valid key");
    return std::move(made).value();
  }();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  std::span<const std::uint8_t> input(data, size);
  const std::size_t ad_size = input.empty() ? 0 : std::min<std::size_t>(input[0], size - 1);
  const std::span<const std::uint8_t> associated_data =
      input.subspan(input.empty() ? 0 : 1, ad_size);
  const std::span<const std::uint8_t> sealed = input.subspan(input.empty() ? 0 : 1 + ad_size);

  static const char* first_context = nullptr;
  const auto opened = AeadOpen(Key(), kLabel, sealed, associated_data);
  if (!opened) {
    Require(opened.error().code() == ErrorCode::kAuthenticationFailed,
            "AeadOpen fails with kAuthenticationFailed");
    if (first_context == nullptr) first_context = opened.error().context().data();
    Require(opened.error().context().data() == first_context,
            "AeadOpen gives one context for every failure");
    return 0;
  }

  Require(opened->size() + kAeadOverhead == sealed.size(), "the plaintext has the sealed size");
  Require(!AeadOpen(Key(), kOtherLabel, sealed, associated_data).has_value(),
          "a sealed message does not open under another label");

  std::vector<std::uint8_t> labelled_ad(2 + kLabel.size() + associated_data.size());
  labelled_ad[0] = static_cast<std::uint8_t>(kLabel.size() >> 8);
  labelled_ad[1] = static_cast<std::uint8_t>(kLabel.size() & 0xFF);
  std::copy(kLabel.begin(), kLabel.end(), labelled_ad.begin() + 2);
  std::copy(associated_data.begin(), associated_data.end(),
            labelled_ad.begin() + 2 + static_cast<std::ptrdiff_t>(kLabel.size()));
  const std::vector<std::uint8_t> resealed = internal::XChaCha20Poly1305Seal(
      Key(), sealed.first<kAeadNonceSize>(), opened->span(), labelled_ad);
  Require(
      std::equal(resealed.begin(), resealed.end(), sealed.begin() + kAeadNonceSize, sealed.end()),
      "an opened message re-seals under its nonce to the same bytes");
  return 0;
}
