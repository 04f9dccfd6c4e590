// Private: SignalDevice's state, shared by signal_device.cc (keys and pairwise sessions)
// and signal_group.cc (sender keys).
#ifndef COFFRE_CRYPTO_SRC_SIGNAL_DEVICE_IMPL_H_
#define COFFRE_CRYPTO_SRC_SIGNAL_DEVICE_IMPL_H_

#include <memory>
#include <mutex>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/crypto/signal_protocol.h"
#include "signal_library.h"
#include "signal_store_bridge.h"

namespace coffre::crypto {

struct SignalDevice::Impl {
  SignalAddress local;
  // Destroyed in reverse order: the store context, then the bridge it points to, then the
  // library context both depend on.
  std::unique_ptr<internal::LibraryContext> library;
  internal::StoreBridge bridge;
  internal::StoreContextHandle store_context;

  signal_context* context() const { return library->get(); }
  std::unique_lock<std::recursive_mutex> Lock() {
    return std::unique_lock<std::recursive_mutex>(library->mutex());
  }
  // The error to report for a failed library call: the store's own error when one of our
  // stores failed during the call, `otherwise` when the library failed by itself.
  Error Failure(const Error& otherwise) const {
    return bridge.failure ? *bridge.failure : otherwise;
  }
};

namespace internal {

// The library's view of an address. It keeps the name pointer, so `address` must outlive
// every builder or cipher created with the result.
inline signal_protocol_address LibraryAddress(const SignalAddress& address) {
  return signal_protocol_address{address.name.c_str(), address.name.size(), address.device_id};
}

// 1..kMaxSignalNameSize bytes without NUL (names also reach the library as C strings), and
// a device id >= 1.
Status ValidateAddress(const SignalAddress& address);
// 1..kMaxSignalGroupIdSize bytes.
Status ValidateGroupId(std::string_view group_id);

}  // namespace internal
}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SRC_SIGNAL_DEVICE_IMPL_H_
