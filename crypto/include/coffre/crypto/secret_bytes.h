// SecretBytes: the only container for key material and other secrets.
//
// Move-only; the bytes are wiped with sodium_memzero when the object is destroyed or
// assigned over, and a moved-from object is empty. It has no
// operator== (use ConstantTimeEquals) and no stream operator, so a secret cannot be
// compared in variable time or printed by accident.
#ifndef COFFRE_CRYPTO_SECRET_BYTES_H_
#define COFFRE_CRYPTO_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace coffre::crypto {

class SecretBytes {
 public:
  SecretBytes() = default;
  // `size` zero bytes.
  explicit SecretBytes(std::size_t size);
  // A copy of `bytes`. The caller remains responsible for wiping its own copy.
  static SecretBytes CopyOf(std::span<const std::uint8_t> bytes);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  // An explicit copy, so that duplicating a secret is always visible in the code.
  SecretBytes Clone() const;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::uint8_t* data() { return bytes_.get(); }
  const std::uint8_t* data() const { return bytes_.get(); }
  std::span<std::uint8_t> span() { return {bytes_.get(), size_}; }
  std::span<const std::uint8_t> span() const { return {bytes_.get(), size_}; }

 private:
  void Wipe();

  std::unique_ptr<std::uint8_t[]> bytes_;
  std::size_t size_ = 0;
};

// Compares two byte strings in time that depends only on their lengths. Lengths are not
// secret: strings of different lengths compare unequal at once.
bool ConstantTimeEquals(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// Wipes `bytes` in a way the compiler cannot optimise away.
void Wipe(std::span<std::uint8_t> bytes);

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SECRET_BYTES_H_
