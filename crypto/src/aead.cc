#include "coffre/crypto/aead.h"

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "coffre/crypto/random.h"
#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(kAeadKeySize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(kAeadNonceSize == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kAeadTagSize == crypto_aead_xchacha20poly1305_ietf_ABYTES);

constexpr std::size_t kMaxLabelSize = 0xFFFF;  // the u16 length prefix

// One context for every opening failure: the caller (and a log reader) must not learn
// whether the length, the tag, the key, the label or the associated data was wrong.
constexpr const char* kOpenFailed = "aead: sealed message failed authentication";

// u16 big-endian length of label || label || associated_data (see aead.h). Labels are
// constants of our code, so a bad one is a bug: abort instead of returning an error that
// AeadSeal has no channel for.
std::vector<std::uint8_t> LabelledAssociatedData(std::string_view label,
                                                 std::span<const std::uint8_t> associated_data) {
  if (label.empty() || label.size() > kMaxLabelSize) std::abort();
  std::vector<std::uint8_t> out(2 + label.size() + associated_data.size());
  out[0] = static_cast<std::uint8_t>(label.size() >> 8);
  out[1] = static_cast<std::uint8_t>(label.size() & 0xFF);
  std::memcpy(out.data() + 2, label.data(), label.size());
  if (!associated_data.empty()) {
    std::memcpy(out.data() + 2 + label.size(), associated_data.data(), associated_data.size());
  }
  return out;
}

}  // namespace

AeadKey AeadKey::Generate() { return AeadKey(RandomSecret(kAeadKeySize)); }

Result<AeadKey> AeadKey::FromBytes(SecretBytes bytes) {
  if (bytes.size() != kAeadKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "aead: key must be 32 bytes");
  }
  return AeadKey(std::move(bytes));
}

namespace internal {

std::vector<std::uint8_t> XChaCha20Poly1305Seal(const AeadKey& key,
                                                std::span<const std::uint8_t, kAeadNonceSize> nonce,
                                                std::span<const std::uint8_t> plaintext,
                                                std::span<const std::uint8_t> associated_data) {
  EnsureSodium();
  if (key.bytes().size() != kAeadKeySize) std::abort();  // moved-from key
  if (plaintext.size() > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) std::abort();
  std::vector<std::uint8_t> out(plaintext.size() + kAeadTagSize);
  unsigned long long out_size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(
          out.data(), &out_size, plaintext.data(),
          static_cast<unsigned long long>(plaintext.size()), associated_data.data(),
          static_cast<unsigned long long>(associated_data.size()), nullptr, nonce.data(),
          key.bytes().data()) != 0 ||
      out_size != out.size()) {
    std::abort();  // libsodium documents no failure for valid sizes
  }
  return out;
}

Result<SecretBytes> XChaCha20Poly1305Open(const AeadKey& key,
                                          std::span<const std::uint8_t, kAeadNonceSize> nonce,
                                          std::span<const std::uint8_t> ciphertext_and_tag,
                                          std::span<const std::uint8_t> associated_data) {
  EnsureSodium();
  if (key.bytes().size() != kAeadKeySize) std::abort();  // moved-from key
  if (ciphertext_and_tag.size() < kAeadTagSize) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  SecretBytes plaintext(ciphertext_and_tag.size() - kAeadTagSize);
  unsigned long long plaintext_size = 0;
  // For an empty plaintext, plaintext.data() is null: libsodium then verifies the tag and
  // writes nothing, which is what we want.
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          plaintext.data(), &plaintext_size, nullptr, ciphertext_and_tag.data(),
          static_cast<unsigned long long>(ciphertext_and_tag.size()), associated_data.data(),
          static_cast<unsigned long long>(associated_data.size()), nonce.data(),
          key.bytes().data()) != 0 ||
      plaintext_size != plaintext.size()) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  return plaintext;
}

}  // namespace internal

std::vector<std::uint8_t> AeadSeal(const AeadKey& key, std::string_view label,
                                   std::span<const std::uint8_t> plaintext,
                                   std::span<const std::uint8_t> associated_data) {
  const std::vector<std::uint8_t> full_ad = LabelledAssociatedData(label, associated_data);
  std::array<std::uint8_t, kAeadNonceSize> nonce;
  RandomFill(nonce);
  const std::vector<std::uint8_t> body =
      internal::XChaCha20Poly1305Seal(key, nonce, plaintext, full_ad);
  std::vector<std::uint8_t> sealed(kAeadNonceSize + body.size());
  std::memcpy(sealed.data(), nonce.data(), kAeadNonceSize);
  std::memcpy(sealed.data() + kAeadNonceSize, body.data(), body.size());
  return sealed;
}

Result<SecretBytes> AeadOpen(const AeadKey& key, std::string_view label,
                             std::span<const std::uint8_t> sealed,
                             std::span<const std::uint8_t> associated_data) {
  const std::vector<std::uint8_t> full_ad = LabelledAssociatedData(label, associated_data);
  if (sealed.size() < kAeadOverhead) {
    return Fail(ErrorCode::kAuthenticationFailed, kOpenFailed);
  }
  const std::span<const std::uint8_t, kAeadNonceSize> nonce = sealed.first<kAeadNonceSize>();
  return internal::XChaCha20Poly1305Open(key, nonce, sealed.subspan(kAeadNonceSize), full_ad);
}

}  // namespace coffre::crypto
