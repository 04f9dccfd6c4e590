#include "coffre/crypto/secret_bytes.h"

#include <sodium.h>

#include <cstring>

#include "sodium_init.h"

namespace coffre::crypto {

SecretBytes::SecretBytes(std::size_t size) : size_(size) {
  internal::EnsureSodium();
  if (size_ == 0) return;
  // Value-initialised: zeros. Not mlock()ed: locking costs four system calls (about 5 us)
  // per secret and is capped by RLIMIT_MEMLOCK anyway; swap is kept out of reach by the
  // host's encrypted swap instead (threat-model/decisions/0006).
  bytes_ = std::make_unique<std::uint8_t[]>(size_);
}

SecretBytes SecretBytes::CopyOf(std::span<const std::uint8_t> bytes) {
  SecretBytes copy(bytes.size());
  if (!bytes.empty()) std::memcpy(copy.data(), bytes.data(), bytes.size());
  return copy;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : bytes_(std::move(other.bytes_)), size_(other.size_) {
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes SecretBytes::Clone() const { return CopyOf(span()); }

void SecretBytes::Wipe() {
  if (bytes_ != nullptr) {
    sodium_memzero(bytes_.get(), size_);
    bytes_.reset();
  }
  size_ = 0;
}

bool ConstantTimeEquals(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  internal::EnsureSodium();
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void Wipe(std::span<std::uint8_t> bytes) {
  if (!bytes.empty()) sodium_memzero(bytes.data(), bytes.size());
}

}  // namespace coffre::crypto
