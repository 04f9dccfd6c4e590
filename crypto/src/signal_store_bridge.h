// Private: the library's C store callbacks, forwarded to our store interfaces.
#ifndef COFFRE_CRYPTO_SRC_SIGNAL_STORE_BRIDGE_H_
#define COFFRE_CRYPTO_SRC_SIGNAL_STORE_BRIDGE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/signal_stores.h"
#include "signal_library.h"

namespace coffre::crypto::internal {

// State shared by the callbacks of one device. Only touched under the device's lock.
struct StoreBridge {
  SignalStores stores;

  // The first failure reported by one of our stores during the current library call. The
  // library only sees kStoreFailure; the caller turns it back into this Error.
  std::optional<Error> failure;

  // While a prekey message is being decrypted the library records the sender's identity
  // before it has checked the message, and "un-records" it (a save of no key) if the
  // message then fails. Writing through would let a forged first message pin a forged
  // identity for a moment, and honouring the removal would erase an identity we had
  // pinned long before. So during that call the save is only remembered here, and written
  // by the decryption callback, i.e. only once the message has decrypted, before the
  // session is committed.
  bool defer_identity_saves = false;
  struct PendingIdentity {
    SignalAddress address;
    std::vector<std::uint8_t> key;
  };
  std::optional<PendingIdentity> pending_identity;

  // Records `error` (if it is the first) and returns kStoreFailure for the library.
  int Failed(const Error& error);
  // Writes the remembered identity, if any, to the identity store.
  Status FlushPendingIdentity();
  // Clears the per-call state before a library call.
  void BeginCall() {
    failure.reset();
    pending_identity.reset();
  }
};

// Points the store context's callbacks at `bridge`, which must outlive the context.
Status InstallStoreBridge(signal_protocol_store_context* context, StoreBridge* bridge);

}  // namespace coffre::crypto::internal

#endif  // COFFRE_CRYPTO_SRC_SIGNAL_STORE_BRIDGE_H_
