// The library's crypto provider and lock, and LibraryContext.
//
// The library does no cryptography of its own except Curve25519: every callback of the
// provider must be filled, or it aborts on an assertion the first time it needs the
// missing one. Random bytes, HMAC-SHA256 and SHA-512 come from libsodium; AES-CBC with
// PKCS#5 padding and AES-CTR come from OpenSSL's EVP interface (libsodium has neither).
//
// The callbacks are called from C: none may let an exception escape, so each allocation is
// guarded and reported as SG_ERR_NOMEM.
#include <openssl/evp.h>
#include <sodium.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>

#include "coffre/base/unique_handle.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "signal_library.h"
#include "sodium_init.h"

namespace coffre::crypto::internal {
namespace {

using CipherContext = UniqueHandle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// Hands `bytes` to the library in a buffer of its own (it frees it).
int ReturnBuffer(std::span<const std::uint8_t> bytes, signal_buffer** output) {
  signal_buffer* buffer = signal_buffer_create(bytes.data(), bytes.size());
  if (buffer == nullptr) return SG_ERR_NOMEM;
  *output = buffer;
  return SG_SUCCESS;
}

int RandomBytesCallback(std::uint8_t* data, std::size_t len, void* /*user_data*/) {
  RandomFill(std::span<std::uint8_t>(data, len));
  return SG_SUCCESS;
}

// HMAC-SHA256. The state lives on the heap between init and cleanup; the library passes
// it back as an opaque pointer.
int HmacInit(void** hmac_context, const std::uint8_t* key, std::size_t key_len,
             void* /*user_data*/) {
  auto state = std::unique_ptr<crypto_auth_hmacsha256_state>(new (std::nothrow)
                                                                 crypto_auth_hmacsha256_state());
  if (state == nullptr) return SG_ERR_NOMEM;
  if (crypto_auth_hmacsha256_init(state.get(), key, key_len) != 0) return SG_ERR_UNKNOWN;
  *hmac_context = state.release();
  return SG_SUCCESS;
}

int HmacUpdate(void* hmac_context, const std::uint8_t* data, std::size_t data_len,
               void* /*user_data*/) {
  auto* state = static_cast<crypto_auth_hmacsha256_state*>(hmac_context);
  if (crypto_auth_hmacsha256_update(state, data, data_len) != 0) return SG_ERR_UNKNOWN;
  return SG_SUCCESS;
}

int HmacFinal(void* hmac_context, signal_buffer** output, void* /*user_data*/) {
  auto* state = static_cast<crypto_auth_hmacsha256_state*>(hmac_context);
  // The library derives chain and message keys with HMAC: the output is secret.
  std::uint8_t mac[crypto_auth_hmacsha256_BYTES];
  if (crypto_auth_hmacsha256_final(state, mac) != 0) return SG_ERR_UNKNOWN;
  const int result = ReturnBuffer(mac, output);
  sodium_memzero(mac, sizeof mac);
  return result;
}

void HmacCleanup(void* hmac_context, void* /*user_data*/) {
  std::unique_ptr<crypto_auth_hmacsha256_state> state(
      static_cast<crypto_auth_hmacsha256_state*>(hmac_context));
  if (state != nullptr) sodium_memzero(state.get(), sizeof *state);
}

// SHA-512. The fingerprint generator initialises one context and then runs
// update/update/final thousands of times on it, so final must leave the context ready for
// the next message: otherwise every round after the first hashes garbage and safety
// numbers come out silently wrong (yet equal on both sides).
int Sha512Init(void** digest_context, void* /*user_data*/) {
  auto state =
      std::unique_ptr<crypto_hash_sha512_state>(new (std::nothrow) crypto_hash_sha512_state());
  if (state == nullptr) return SG_ERR_NOMEM;
  if (crypto_hash_sha512_init(state.get()) != 0) return SG_ERR_UNKNOWN;
  *digest_context = state.release();
  return SG_SUCCESS;
}

int Sha512Update(void* digest_context, const std::uint8_t* data, std::size_t data_len,
                 void* /*user_data*/) {
  auto* state = static_cast<crypto_hash_sha512_state*>(digest_context);
  if (crypto_hash_sha512_update(state, data, data_len) != 0) return SG_ERR_UNKNOWN;
  return SG_SUCCESS;
}

int Sha512Final(void* digest_context, signal_buffer** output, void* /*user_data*/) {
  auto* state = static_cast<crypto_hash_sha512_state*>(digest_context);
  std::uint8_t digest[crypto_hash_sha512_BYTES];
  if (crypto_hash_sha512_final(state, digest) != 0) return SG_ERR_UNKNOWN;
  if (crypto_hash_sha512_init(state) != 0) return SG_ERR_UNKNOWN;  // ready for reuse
  const int result = ReturnBuffer(digest, output);
  sodium_memzero(digest, sizeof digest);
  return result;
}

void Sha512Cleanup(void* digest_context, void* /*user_data*/) {
  std::unique_ptr<crypto_hash_sha512_state> state(
      static_cast<crypto_hash_sha512_state*>(digest_context));
  if (state != nullptr) sodium_memzero(state.get(), sizeof *state);
}

// The AES variant for the library's cipher constant and key length; null if unsupported.
const EVP_CIPHER* SelectCipher(int cipher, std::size_t key_len) {
  if (cipher == SG_CIPHER_AES_CBC_PKCS5) {
    switch (key_len) {
      case 16:
        return EVP_aes_128_cbc();
      case 24:
        return EVP_aes_192_cbc();
      case 32:
        return EVP_aes_256_cbc();
      default:
        return nullptr;
    }
  }
  if (cipher == SG_CIPHER_AES_CTR_NOPADDING) {
    switch (key_len) {
      case 16:
        return EVP_aes_128_ctr();
      case 24:
        return EVP_aes_192_ctr();
      case 32:
        return EVP_aes_256_ctr();
      default:
        return nullptr;
    }
  }
  return nullptr;
}

// One routine for both directions: EVP_CipherInit_ex takes the direction as a flag.
int AesCrypt(bool encrypt, signal_buffer** output, int cipher, const std::uint8_t* key,
             std::size_t key_len, const std::uint8_t* iv, std::size_t iv_len,
             const std::uint8_t* input, std::size_t input_len) {
  const EVP_CIPHER* evp_cipher = SelectCipher(cipher, key_len);
  if (evp_cipher == nullptr) return SG_ERR_INVAL;
  if (iv_len != static_cast<std::size_t>(EVP_CIPHER_get_iv_length(evp_cipher))) {
    return SG_ERR_INVAL;
  }
  const std::size_t block = static_cast<std::size_t>(EVP_CIPHER_get_block_size(evp_cipher));
  // EVP counts in int; leave room for one block of padding.
  if (input_len > static_cast<std::size_t>(INT_MAX) - 2 * block) return SG_ERR_INVAL;

  CipherContext context(EVP_CIPHER_CTX_new());
  if (context == nullptr) return SG_ERR_NOMEM;
  if (EVP_CipherInit_ex(context.get(), evp_cipher, nullptr, key, iv, encrypt ? 1 : 0) != 1) {
    return SG_ERR_UNKNOWN;
  }
  // CBC pads with PKCS#7, which is PKCS#5 for 16-byte blocks; CTR is a stream mode.
  if (cipher == SG_CIPHER_AES_CTR_NOPADDING) EVP_CIPHER_CTX_set_padding(context.get(), 0);

  // Either direction may produce plaintext: keep the intermediate copy wiped.
  SecretBytes out(input_len + block);
  int written = 0;
  if (input_len > 0 && EVP_CipherUpdate(context.get(), out.data(), &written, input,
                                        static_cast<int>(input_len)) != 1) {
    return SG_ERR_UNKNOWN;
  }
  int final_written = 0;
  // Fails on bad padding when decrypting; the library turns that into an invalid message.
  if (EVP_CipherFinal_ex(context.get(), out.data() + written, &final_written) != 1) {
    return SG_ERR_UNKNOWN;
  }
  const std::size_t total =
      static_cast<std::size_t>(written) + static_cast<std::size_t>(final_written);
  return ReturnBuffer(out.span().first(total), output);
}

int EncryptCallback(signal_buffer** output, int cipher, const std::uint8_t* key,
                    std::size_t key_len, const std::uint8_t* iv, std::size_t iv_len,
                    const std::uint8_t* plaintext, std::size_t plaintext_len, void* /*user_data*/) {
  try {
    return AesCrypt(true, output, cipher, key, key_len, iv, iv_len, plaintext, plaintext_len);
  } catch (...) {
    return SG_ERR_NOMEM;
  }
}

int DecryptCallback(signal_buffer** output, int cipher, const std::uint8_t* key,
                    std::size_t key_len, const std::uint8_t* iv, std::size_t iv_len,
                    const std::uint8_t* ciphertext, std::size_t ciphertext_len,
                    void* /*user_data*/) {
  try {
    return AesCrypt(false, output, cipher, key, key_len, iv, iv_len, ciphertext, ciphertext_len);
  } catch (...) {
    return SG_ERR_NOMEM;
  }
}

// The lock callbacks receive the user_data given to signal_context_create: our mutex.
void LockCallback(void* user_data) { static_cast<std::recursive_mutex*>(user_data)->lock(); }
void UnlockCallback(void* user_data) { static_cast<std::recursive_mutex*>(user_data)->unlock(); }

}  // namespace

Result<std::unique_ptr<LibraryContext>> LibraryContext::Create() {
  EnsureSodium();
  std::unique_ptr<LibraryContext> library(new (std::nothrow) LibraryContext());
  if (library == nullptr) return Fail(ErrorCode::kResourceExhausted, "out of memory");

  const int rc = signal_context_create(Out(library->context_), &library->mutex_);
  if (rc != SG_SUCCESS || library->context_ == nullptr) {
    return Fail(ErrorCode::kResourceExhausted, "signal context could not be created");
  }

  signal_crypto_provider provider{};
  provider.random_func = RandomBytesCallback;
  provider.hmac_sha256_init_func = HmacInit;
  provider.hmac_sha256_update_func = HmacUpdate;
  provider.hmac_sha256_final_func = HmacFinal;
  provider.hmac_sha256_cleanup_func = HmacCleanup;
  provider.sha512_digest_init_func = Sha512Init;
  provider.sha512_digest_update_func = Sha512Update;
  provider.sha512_digest_final_func = Sha512Final;
  provider.sha512_digest_cleanup_func = Sha512Cleanup;
  provider.encrypt_func = EncryptCallback;
  provider.decrypt_func = DecryptCallback;
  provider.user_data = nullptr;
  // The provider structure is copied by the library.
  if (signal_context_set_crypto_provider(library->context_.get(), &provider) != SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal crypto provider refused");
  }
  if (signal_context_set_locking_functions(library->context_.get(), LockCallback, UnlockCallback) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal locking functions refused");
  }
  // No log function on purpose. The library formats its log lines with user names and
  // group ids (personal data our logs must not hold), and it only formats them when a log
  // function is installed; with none, nothing is formatted at all.
  return library;
}

}  // namespace coffre::crypto::internal
