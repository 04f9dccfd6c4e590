// The library's store callbacks. Each one copies what it is given (names and group ids
// arrive as pointer and length, not NUL-terminated, and only borrowed), calls our store,
// and answers in the library's convention, which differs from store to store:
//   load_session / load_sender_key    1 found, 0 absent
//   load_pre_key / load_signed_pre_key SG_SUCCESS found, SG_ERR_INVALID_KEY_ID absent
//   contains_*                          1 / 0
//   get_local_registration_id           takes user_data as its first argument
// Buffers handed back are created with signal_buffer_create, because the library frees
// them itself. No exception may cross back into C: every callback body is guarded.
#include "signal_store_bridge.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <utility>

namespace coffre::crypto::internal {

int StoreBridge::Failed(const Error& error) {
  if (!failure) failure = error;
  return kStoreFailure;
}

Status StoreBridge::FlushPendingIdentity() {
  if (!pending_identity) return Ok();
  PendingIdentity pending = std::move(*pending_identity);
  pending_identity.reset();
  return stores.identity->SaveIdentity(pending.address, pending.key);
}

namespace {

StoreBridge& BridgeOf(void* user_data) { return *static_cast<StoreBridge*>(user_data); }

template <typename Body>
int Guarded(void* user_data, Body&& body) noexcept {
  try {
    return body(BridgeOf(user_data));
  } catch (...) {
    return BridgeOf(user_data).Failed(Error(ErrorCode::kResourceExhausted, "out of memory"));
  }
}

// Copies (pointer, length) text; refuses a null pointer with a non-zero length.
bool CopyText(const char* data, std::size_t size, std::string& out) {
  if (data == nullptr && size != 0) return false;
  out.assign(data == nullptr ? "" : data, size);
  return true;
}

bool CopyAddress(const signal_protocol_address* address, SignalAddress& out) {
  if (address == nullptr) return false;
  out.device_id = address->device_id;
  return CopyText(address->name, address->name_len, out.name);
}

bool CopySenderKeyName(const signal_protocol_sender_key_name* name, std::string& group_id,
                       SignalAddress& sender) {
  if (name == nullptr) return false;
  return CopyText(name->group_id, name->group_id_len, group_id) &&
         CopyAddress(&name->sender, sender);
}

std::span<const std::uint8_t> Borrowed(const std::uint8_t* data, std::size_t size) {
  if (data == nullptr) return {};
  return {data, size};
}

// Hands a copy of `bytes` to the library.
int GiveBuffer(std::span<const std::uint8_t> bytes, signal_buffer** out) {
  signal_buffer* buffer = signal_buffer_create(bytes.data(), bytes.size());
  if (buffer == nullptr) return SG_ERR_NOMEM;
  *out = buffer;
  return SG_SUCCESS;
}

// --- Sessions ---------------------------------------------------------------------------

int LoadSession(signal_buffer** record, signal_buffer** /*user_record*/,
                const signal_protocol_address* address, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote)) return SG_ERR_INVAL;
    auto loaded = bridge.stores.session->LoadSession(remote);
    if (!loaded) return bridge.Failed(loaded.error());
    if (!loaded->has_value()) return 0;
    // We never attach an application record to sessions, so user_record stays unset.
    const int result = GiveBuffer((*loaded)->span(), record);
    return result == SG_SUCCESS ? 1 : result;
  });
}

int GetSubDeviceSessions(signal_int_list** sessions, const char* name, std::size_t name_len,
                         void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    std::string user;
    if (!CopyText(name, name_len, user)) return SG_ERR_INVAL;
    auto devices = bridge.stores.session->SubDeviceSessions(user);
    if (!devices) return bridge.Failed(devices.error());
    signal_int_list* list = signal_int_list_alloc();
    if (list == nullptr) return SG_ERR_NOMEM;
    for (const std::int32_t device : *devices) {
      if (signal_int_list_push_back(list, device) < 0) {
        signal_int_list_free(list);
        return SG_ERR_NOMEM;
      }
    }
    *sessions = list;
    return static_cast<int>(signal_int_list_size(list));
  });
}

int StoreSession(const signal_protocol_address* address, std::uint8_t* record,
                 std::size_t record_len, std::uint8_t* /*user_record*/,
                 std::size_t /*user_record_len*/, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote) || record == nullptr) return SG_ERR_INVAL;
    auto stored = bridge.stores.session->StoreSession(remote, Borrowed(record, record_len));
    if (!stored) return bridge.Failed(stored.error());
    return SG_SUCCESS;
  });
}

int ContainsSession(const signal_protocol_address* address, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote)) return SG_ERR_INVAL;
    auto found = bridge.stores.session->ContainsSession(remote);
    if (!found) return bridge.Failed(found.error());
    return *found ? 1 : 0;
  });
}

int DeleteSession(const signal_protocol_address* address, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote)) return SG_ERR_INVAL;
    auto deleted = bridge.stores.session->DeleteSession(remote);
    if (!deleted) return bridge.Failed(deleted.error());
    return *deleted ? 1 : 0;
  });
}

int DeleteAllSessions(const char* name, std::size_t name_len, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    std::string user;
    if (!CopyText(name, name_len, user)) return SG_ERR_INVAL;
    auto deleted = bridge.stores.session->DeleteAllSessions(user);
    if (!deleted) return bridge.Failed(deleted.error());
    return static_cast<int>(std::min<std::size_t>(*deleted, INT32_MAX));
  });
}

// --- Prekeys ----------------------------------------------------------------------------

int LoadPreKey(signal_buffer** record, std::uint32_t pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto loaded = bridge.stores.pre_key->LoadPreKey(pre_key_id);
    if (!loaded) return bridge.Failed(loaded.error());
    if (!loaded->has_value()) return SG_ERR_INVALID_KEY_ID;
    return GiveBuffer((*loaded)->span(), record);
  });
}

int StorePreKey(std::uint32_t pre_key_id, std::uint8_t* record, std::size_t record_len,
                void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    if (record == nullptr) return SG_ERR_INVAL;
    auto stored = bridge.stores.pre_key->StorePreKey(pre_key_id, Borrowed(record, record_len));
    if (!stored) return bridge.Failed(stored.error());
    return SG_SUCCESS;
  });
}

int ContainsPreKey(std::uint32_t pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto found = bridge.stores.pre_key->ContainsPreKey(pre_key_id);
    if (!found) return bridge.Failed(found.error());
    return *found ? 1 : 0;
  });
}

int RemovePreKey(std::uint32_t pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto removed = bridge.stores.pre_key->RemovePreKey(pre_key_id);
    if (!removed) return bridge.Failed(removed.error());
    return SG_SUCCESS;
  });
}

int LoadSignedPreKey(signal_buffer** record, std::uint32_t signed_pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto loaded = bridge.stores.signed_pre_key->LoadSignedPreKey(signed_pre_key_id);
    if (!loaded) return bridge.Failed(loaded.error());
    if (!loaded->has_value()) return SG_ERR_INVALID_KEY_ID;
    return GiveBuffer((*loaded)->span(), record);
  });
}

int StoreSignedPreKey(std::uint32_t signed_pre_key_id, std::uint8_t* record, std::size_t record_len,
                      void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    if (record == nullptr) return SG_ERR_INVAL;
    auto stored = bridge.stores.signed_pre_key->StoreSignedPreKey(signed_pre_key_id,
                                                                  Borrowed(record, record_len));
    if (!stored) return bridge.Failed(stored.error());
    return SG_SUCCESS;
  });
}

int ContainsSignedPreKey(std::uint32_t signed_pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto found = bridge.stores.signed_pre_key->ContainsSignedPreKey(signed_pre_key_id);
    if (!found) return bridge.Failed(found.error());
    return *found ? 1 : 0;
  });
}

int RemoveSignedPreKey(std::uint32_t signed_pre_key_id, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto removed = bridge.stores.signed_pre_key->RemoveSignedPreKey(signed_pre_key_id);
    if (!removed) return bridge.Failed(removed.error());
    return SG_SUCCESS;
  });
}

// --- Identities -------------------------------------------------------------------------

int GetIdentityKeyPair(signal_buffer** public_data, signal_buffer** private_data, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto loaded = bridge.stores.identity->LoadLocalIdentity();
    if (!loaded) return bridge.Failed(loaded.error());
    // The library dereferences both buffers on success: "absent" must be an error here.
    if (!loaded->has_value()) {
      return bridge.Failed(Error(ErrorCode::kNotFound, "no local signal identity"));
    }
    SignalBuffer public_buffer(
        signal_buffer_create((*loaded)->public_key.data(), (*loaded)->public_key.size()));
    SignalBuffer private_buffer(
        signal_buffer_create((*loaded)->private_key.data(), (*loaded)->private_key.size()));
    if (public_buffer == nullptr || private_buffer == nullptr) return SG_ERR_NOMEM;
    *public_data = public_buffer.release();
    *private_data = private_buffer.release();
    return SG_SUCCESS;
  });
}

int GetLocalRegistrationId(void* user_data, std::uint32_t* registration_id) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    auto loaded = bridge.stores.identity->LoadLocalIdentity();
    if (!loaded) return bridge.Failed(loaded.error());
    if (!loaded->has_value()) {
      return bridge.Failed(Error(ErrorCode::kNotFound, "no local signal identity"));
    }
    *registration_id = (*loaded)->registration_id;
    return SG_SUCCESS;
  });
}

int SaveIdentity(const signal_protocol_address* address, std::uint8_t* key_data,
                 std::size_t key_len, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote)) return SG_ERR_INVAL;
    if (key_data == nullptr) {
      // The library's "forget this identity" after a failed prekey message. During such a
      // call the save was only remembered, so forgetting it is enough. Outside one we
      // never erase a recorded identity on the library's word (see StoreBridge).
      if (bridge.pending_identity && bridge.pending_identity->address == remote) {
        bridge.pending_identity.reset();
      }
      return SG_SUCCESS;
    }
    const std::span<const std::uint8_t> key = Borrowed(key_data, key_len);
    if (bridge.defer_identity_saves) {
      bridge.pending_identity =
          StoreBridge::PendingIdentity{remote, std::vector<std::uint8_t>(key.begin(), key.end())};
      return SG_SUCCESS;
    }
    auto saved = bridge.stores.identity->SaveIdentity(remote, key);
    if (!saved) return bridge.Failed(saved.error());
    return SG_SUCCESS;
  });
}

int IsTrustedIdentity(const signal_protocol_address* address, std::uint8_t* key_data,
                      std::size_t key_len, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    SignalAddress remote;
    if (!CopyAddress(address, remote) || key_data == nullptr) return SG_ERR_INVAL;
    auto trusted = bridge.stores.identity->IsTrusted(remote, Borrowed(key_data, key_len));
    if (!trusted) return bridge.Failed(trusted.error());
    return *trusted ? 1 : 0;
  });
}

// --- Sender keys ------------------------------------------------------------------------

int StoreSenderKey(const signal_protocol_sender_key_name* sender_key_name, std::uint8_t* record,
                   std::size_t record_len, std::uint8_t* /*user_record*/,
                   std::size_t /*user_record_len*/, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    std::string group_id;
    SignalAddress sender;
    if (!CopySenderKeyName(sender_key_name, group_id, sender) || record == nullptr) {
      return SG_ERR_INVAL;
    }
    auto stored =
        bridge.stores.sender_key->StoreSenderKey(group_id, sender, Borrowed(record, record_len));
    if (!stored) return bridge.Failed(stored.error());
    return SG_SUCCESS;
  });
}

int LoadSenderKey(signal_buffer** record, signal_buffer** /*user_record*/,
                  const signal_protocol_sender_key_name* sender_key_name, void* user_data) {
  return Guarded(user_data, [&](StoreBridge& bridge) {
    std::string group_id;
    SignalAddress sender;
    if (!CopySenderKeyName(sender_key_name, group_id, sender)) return SG_ERR_INVAL;
    auto loaded = bridge.stores.sender_key->LoadSenderKey(group_id, sender);
    if (!loaded) return bridge.Failed(loaded.error());
    if (!loaded->has_value()) return 0;
    const int result = GiveBuffer((*loaded)->span(), record);
    return result == SG_SUCCESS ? 1 : result;
  });
}

}  // namespace

Status InstallStoreBridge(signal_protocol_store_context* context, StoreBridge* bridge) {
  // destroy_func stays null: the bridge and the stores are owned elsewhere.
  signal_protocol_session_store session_store{};
  session_store.load_session_func = LoadSession;
  session_store.get_sub_device_sessions_func = GetSubDeviceSessions;
  session_store.store_session_func = StoreSession;
  session_store.contains_session_func = ContainsSession;
  session_store.delete_session_func = DeleteSession;
  session_store.delete_all_sessions_func = DeleteAllSessions;
  session_store.user_data = bridge;

  signal_protocol_pre_key_store pre_key_store{};
  pre_key_store.load_pre_key = LoadPreKey;
  pre_key_store.store_pre_key = StorePreKey;
  pre_key_store.contains_pre_key = ContainsPreKey;
  pre_key_store.remove_pre_key = RemovePreKey;
  pre_key_store.user_data = bridge;

  signal_protocol_signed_pre_key_store signed_pre_key_store{};
  signed_pre_key_store.load_signed_pre_key = LoadSignedPreKey;
  signed_pre_key_store.store_signed_pre_key = StoreSignedPreKey;
  signed_pre_key_store.contains_signed_pre_key = ContainsSignedPreKey;
  signed_pre_key_store.remove_signed_pre_key = RemoveSignedPreKey;
  signed_pre_key_store.user_data = bridge;

  signal_protocol_identity_key_store identity_store{};
  identity_store.get_identity_key_pair = GetIdentityKeyPair;
  identity_store.get_local_registration_id = GetLocalRegistrationId;
  identity_store.save_identity = SaveIdentity;
  identity_store.is_trusted_identity = IsTrustedIdentity;
  identity_store.user_data = bridge;

  signal_protocol_sender_key_store sender_key_store{};
  sender_key_store.store_sender_key = StoreSenderKey;
  sender_key_store.load_sender_key = LoadSenderKey;
  sender_key_store.user_data = bridge;

  // Each structure is copied by the library.
  if (signal_protocol_store_context_set_session_store(context, &session_store) != SG_SUCCESS ||
      signal_protocol_store_context_set_pre_key_store(context, &pre_key_store) != SG_SUCCESS ||
      signal_protocol_store_context_set_signed_pre_key_store(context, &signed_pre_key_store) !=
          SG_SUCCESS ||
      signal_protocol_store_context_set_identity_key_store(context, &identity_store) !=
          SG_SUCCESS ||
      signal_protocol_store_context_set_sender_key_store(context, &sender_key_store) !=
          SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal store callbacks refused");
  }
  return Ok();
}

}  // namespace coffre::crypto::internal
