// Private: the only header that includes libsignal-protocol-c. It gives every library
// object an owner, wraps the library's global context (crypto provider and recursive lock)
// and translates the library's error codes.
#ifndef COFFRE_CRYPTO_SRC_SIGNAL_LIBRARY_H_
#define COFFRE_CRYPTO_SRC_SIGNAL_LIBRARY_H_

// The library's headers are C and predate our warning set; keep their diagnostics out of
// our -Werror build.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#include <curve.h>
#include <fingerprint.h>
#include <group_cipher.h>
#include <group_session_builder.h>
#include <key_helper.h>
#include <protocol.h>
#include <ratchet.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>
#include <session_record.h>
#include <session_state.h>
#include <signal_protocol.h>
#pragma GCC diagnostic pop

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/base/unique_handle.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto::internal {

// --- Owners -------------------------------------------------------------------------------

// Reference-counted library objects (keys, records, messages, fingerprints): dropping the
// owner drops our reference.
struct SignalUnref {
  template <typename T>
  void operator()(T* object) const {
    if (object != nullptr) signal_type_unref(reinterpret_cast<signal_type_base*>(object));
  }
};
template <typename T>
using SignalRef = std::unique_ptr<T, SignalUnref>;

// Buffers the library hands us. Always wiped: many hold keys or plaintext, and telling
// them apart at every call site is a mistake waiting to happen.
using SignalBuffer = UniqueHandle<signal_buffer, signal_buffer_bzero_free>;

using SignalContextHandle = UniqueHandle<signal_context, signal_context_destroy>;
using StoreContextHandle =
    UniqueHandle<signal_protocol_store_context, signal_protocol_store_context_destroy>;
using SessionBuilderHandle = UniqueHandle<session_builder, session_builder_free>;
using SessionCipherHandle = UniqueHandle<session_cipher, session_cipher_free>;
using GroupBuilderHandle = UniqueHandle<group_session_builder, group_session_builder_free>;
using GroupCipherHandle = UniqueHandle<group_cipher, group_cipher_free>;
using FingerprintGeneratorHandle = UniqueHandle<fingerprint_generator, fingerprint_generator_free>;
using PreKeyListHandle = UniqueHandle<signal_protocol_key_helper_pre_key_list_node,
                                      signal_protocol_key_helper_key_list_free>;

// Adapts an owner to the library's `T** out` parameters, so that whatever the library
// creates is owned as soon as the call returns:
//   SignalRef<ec_public_key> key;
//   int rc = curve_decode_point(Out(key), data, size, context);
// The temporary hands the pointer to the owner at the end of the full expression, so test
// the owner in a later statement, never in the same condition as the call.
template <typename Owner>
class OutParam {
 public:
  using Pointer = typename Owner::pointer;
  explicit OutParam(Owner& owner) : owner_(owner) {}
  ~OutParam() { owner_.reset(raw_); }
  OutParam(const OutParam&) = delete;
  OutParam& operator=(const OutParam&) = delete;
  operator Pointer*() { return &raw_; }  // NOLINT(google-explicit-constructor)

 private:
  Owner& owner_;
  Pointer raw_ = nullptr;
};
template <typename Owner>
OutParam<Owner> Out(Owner& owner) {
  return OutParam<Owner>(owner);
}

// Views of library buffers. The library's accessors are not const-correct.
inline std::span<const std::uint8_t> View(const signal_buffer* buffer) {
  if (buffer == nullptr) return {};
  return {signal_buffer_const_data(buffer), signal_buffer_len(buffer)};
}

// --- Library context -------------------------------------------------------------------

// One signal_context with our crypto provider and a recursive lock. The library locks it
// around every operation and calls back into our stores while holding it; a plain mutex
// would deadlock as soon as a prekey message is processed (the library re-enters its own
// lock). SignalDevice also takes it around each of its operations, so that our own checks
// and the library's store callbacks for one operation are never interleaved with another.
class LibraryContext {
 public:
  // kInternal / kResourceExhausted if the library refuses to start.
  static Result<std::unique_ptr<LibraryContext>> Create();

  signal_context* get() const { return context_.get(); }
  std::recursive_mutex& mutex() { return mutex_; }

 private:
  LibraryContext() = default;

  // Declared first: the context holds a pointer to it and is destroyed before it.
  std::recursive_mutex mutex_;
  SignalContextHandle context_;
};

// --- Errors -----------------------------------------------------------------------------

// Returned by our store callbacks when one of our stores failed; below SG_ERR_MINIMUM so it
// can never be confused with a library code. The Error itself is kept by the bridge.
inline constexpr int kStoreFailure = SG_ERR_MINIMUM - 1;

// One context for every decryption or verification failure, so that callers (and anyone
// watching them) cannot tell a bad MAC from a malformed message or an unknown prekey.
inline constexpr const char* kMessageRejected = "signal message rejected";

// Maps a negative library code from decrypting a message.
Error MessageError(int code);
// Maps a negative library code from any other operation; `context` names the operation.
Error OperationError(int code, const char* context);

// --- Keys -------------------------------------------------------------------------------

// Decodes a 33-byte public key; kInvalidArgument if the library refuses it.
Result<SignalRef<ec_public_key>> DecodePublicKey(std::span<const std::uint8_t> bytes,
                                                 signal_context* context);
// Serializes a public key to its 33 bytes.
Result<SignalPublicKey> EncodePublicKey(const ec_public_key* key);

// --- Byte codec -------------------------------------------------------------------------

// Appends big-endian integers and bytes.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::uint8_t>& out) : out_(out) {}
  void U8(std::uint8_t value) { out_.push_back(value); }
  void U16(std::uint16_t value);
  void U32(std::uint32_t value);
  void Bytes(std::span<const std::uint8_t> bytes);

 private:
  std::vector<std::uint8_t>& out_;
};

// Reads big-endian integers and bytes; every read checks the remaining length first and
// fails (returns false) without moving when there is not enough.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> in) : in_(in) {}
  bool U8(std::uint8_t& value);
  bool U16(std::uint16_t& value);
  bool U32(std::uint32_t& value);
  bool Bytes(std::size_t size, std::span<const std::uint8_t>& bytes);
  std::size_t remaining() const { return in_.size() - offset_; }
  std::span<const std::uint8_t> Rest() const { return in_.subspan(offset_); }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t offset_ = 0;
};

}  // namespace coffre::crypto::internal

#endif  // COFFRE_CRYPTO_SRC_SIGNAL_LIBRARY_H_
