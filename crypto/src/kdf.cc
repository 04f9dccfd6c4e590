#include "coffre/crypto/kdf.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "sodium_init.h"

namespace coffre::crypto {
namespace {

static_assert(kKdfMinKeySize == crypto_generichash_KEYBYTES_MIN);
static_assert(kKdfMaxKeySize == crypto_generichash_KEYBYTES_MAX);
static_assert(kKdfMinOutputSize == crypto_generichash_BYTES_MIN);
static_assert(kKdfMaxOutputSize == crypto_generichash_BYTES_MAX);

constexpr std::size_t kMaxLabelSize = 0xFFFF;  // the u16 length prefix

// The one call into libsodium, shared by every function of this file. crypto_generichash
// is BLAKE2b; it takes a key of 0..64 bytes and writes 1..64 bytes (RFC 7693 §2.1).
bool GenericHash(std::span<std::uint8_t> out, std::span<const std::uint8_t> key,
                 std::span<const std::uint8_t> message) {
  internal::EnsureSodium();
  if (out.empty() || out.size() > crypto_generichash_BYTES_MAX ||
      key.size() > crypto_generichash_KEYBYTES_MAX) {
    return false;
  }
  return crypto_generichash(out.data(), out.size(), message.data(),
                            static_cast<unsigned long long>(message.size()),
                            key.empty() ? nullptr : key.data(), key.size()) == 0;
}

}  // namespace

namespace internal {

Result<SecretBytes> Blake2b(std::span<const std::uint8_t> key,
                            std::span<const std::uint8_t> message, std::size_t output_size) {
  if (output_size == 0 || output_size > crypto_generichash_BYTES_MAX ||
      key.size() > crypto_generichash_KEYBYTES_MAX) {
    return Fail(ErrorCode::kInvalidArgument, "blake2b: key or output size out of range");
  }
  SecretBytes out(output_size);
  if (!GenericHash(out.span(), key, message)) {
    return Fail(ErrorCode::kInternal, "blake2b: libsodium refused the input");
  }
  return out;
}

}  // namespace internal

Result<SecretBytes> DeriveSubkey(std::span<const std::uint8_t> parent_key, std::string_view label,
                                 std::span<const std::uint8_t> context, std::size_t output_size) {
  if (label.empty() || label.size() > kMaxLabelSize) std::abort();
  if (parent_key.size() < kKdfMinKeySize || parent_key.size() > kKdfMaxKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "kdf: parent key must be 16..64 bytes");
  }
  if (output_size < kKdfMinOutputSize || output_size > kKdfMaxOutputSize) {
    return Fail(ErrorCode::kInvalidArgument, "kdf: output size must be 16..64 bytes");
  }
  // kKdfDomain || u16 big-endian label length || label || context (kdf.h). In SecretBytes
  // because callers may put secret material (a transcript, a shared secret) in the context.
  SecretBytes input(kKdfDomain.size() + 2 + label.size() + context.size());
  std::uint8_t* p = input.data();
  std::memcpy(p, kKdfDomain.data(), kKdfDomain.size());
  p += kKdfDomain.size();
  *p++ = static_cast<std::uint8_t>(label.size() >> 8);
  *p++ = static_cast<std::uint8_t>(label.size() & 0xFF);
  std::memcpy(p, label.data(), label.size());
  p += label.size();
  if (!context.empty()) std::memcpy(p, context.data(), context.size());
  return internal::Blake2b(parent_key, input.span(), output_size);
}

std::array<std::uint8_t, 32> Blake2b256(std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, 32> digest;
  if (!GenericHash(digest, {}, data)) std::abort();  // cannot fail for these sizes
  return digest;
}

}  // namespace coffre::crypto
