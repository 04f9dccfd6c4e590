#include "coffre/crypto/sealed_box.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(kSealedBoxOverhead == crypto_box_SEALBYTES);
static_assert(kX25519KeySize == crypto_box_PUBLICKEYBYTES);
static_assert(kX25519KeySize == crypto_box_SECRETKEYBYTES);

constexpr std::size_t kMaxLabelSize = 0xFFFF;  // the u16 length prefix

// One context for every opening failure (no oracle on which check failed).
constexpr const char* kOpenFailed = "sealed box: failed authentication";

// u16 big-endian label length || label: the prefix sealed in front of the plaintext.
std::vector<std::uint8_t> LabelPrefix(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelSize) std::abort();
  std::vector<std::uint8_t> prefix(2 + label.size());
  prefix[0] = static_cast<std::uint8_t>(label.size() >> 8);
  prefix[1] = static_cast<std::uint8_t>(label.size() & 0xFF);
  std::memcpy(prefix.data() + 2, label.data(), label.size());
  return prefix;
}

}  // namespace

std::vector<std::uint8_t> SealToPublicKey(const X25519PublicKey& recipient, std::string_view label,
                                          std::span<const std::uint8_t> plaintext) {
  internal::EnsureSodium();
  const std::vector<std::uint8_t> prefix = LabelPrefix(label);
  if (plaintext.size() > crypto_box_MESSAGEBYTES_MAX - prefix.size()) std::abort();
  SecretBytes inner(prefix.size() + plaintext.size());
  std::memcpy(inner.data(), prefix.data(), prefix.size());
  if (!plaintext.empty()) {
    std::memcpy(inner.data() + prefix.size(), plaintext.data(), plaintext.size());
  }
  std::vector<std::uint8_t> sealed(kSealedBoxOverhead + inner.size());
  if (crypto_box_seal(sealed.data(), inner.data(), static_cast<unsigned long long>(inner.size()),
                      recipient.bytes().data()) != 0) {
    // Only a low-order recipient key makes libsodium fail, and X25519PublicKey refuses those.
    std::abort();
  }
  return sealed;
}

Result<SecretBytes> OpenSealedBox(const X25519KeyPair& own, std::string_view label,
                                  std::span<const std::uint8_t> sealed) {
  internal::EnsureSodium();
  const std::vector<std::uint8_t> prefix = LabelPrefix(label);
  if (own.secret().size() != kX25519KeySize) std::abort();  // moved-from key pair
  if (sealed.size() < kSealedBoxOverhead + prefix.size()) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  SecretBytes inner(sealed.size() - kSealedBoxOverhead);
  if (crypto_box_seal_open(inner.data(), sealed.data(),
                           static_cast<unsigned long long>(sealed.size()),
                           own.public_key().bytes().data(), own.secret().data()) != 0) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  // The box is authentic; now check it was sealed for this purpose. `inner` is wiped on
  // every return path by its destructor.
  if (!ConstantTimeEquals(inner.span().first(prefix.size()), prefix)) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  return SecretBytes::CopyOf(inner.span().subspan(prefix.size()));
}

}  // namespace coffre::crypto
