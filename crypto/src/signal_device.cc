// SignalDevice: creation, key generation and pairwise (1:1) sessions.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "coffre/crypto/safety_number.h"
#include "coffre/crypto/signal_protocol.h"
#include "signal_device_impl.h"
#include "signal_library.h"
#include "signal_store_bridge.h"
#include "sodium_init.h"

namespace coffre::crypto {

using internal::LibraryAddress;
using internal::Out;
using internal::SignalBuffer;
using internal::SignalRef;
using internal::View;

namespace internal {

Status ValidateAddress(const SignalAddress& address) {
  if (address.name.empty() || address.name.size() > kMaxSignalNameSize ||
      address.name.find('\0') != std::string::npos || address.device_id < 1) {
    return Fail(ErrorCode::kInvalidArgument, "invalid signal address");
  }
  return Ok();
}

Status ValidateGroupId(std::string_view group_id) {
  if (group_id.empty() || group_id.size() > kMaxSignalGroupIdSize) {
    return Fail(ErrorCode::kInvalidArgument, "invalid group id");
  }
  return Ok();
}

}  // namespace internal

namespace {

// Room left for the protocol's own fields, so that any plaintext we accept gives a
// ciphertext the receiving side accepts (kMaxSignalMessageSize).
constexpr std::size_t kMessageOverheadAllowance = 1024;

// Carried through the library to the decryption callback.
struct PairwiseDecryptCall {
  internal::StoreBridge* bridge;
  const PlaintextSink* sink;
};

// Runs after decryption and before the session is committed: this is where the deferred
// identity is written and where the caller persists the plaintext, so that all three land
// in the same transaction or not at all.
int PairwiseDecryptCallback(session_cipher* /*cipher*/, signal_buffer* plaintext,
                            void* decrypt_context) {
  auto* call = static_cast<PairwiseDecryptCall*>(decrypt_context);
  try {
    if (Status flushed = call->bridge->FlushPendingIdentity(); !flushed) {
      return call->bridge->Failed(flushed.error());
    }
    if (call->sink != nullptr && *call->sink) {
      if (Status sunk = (*call->sink)(View(plaintext)); !sunk) {
        return call->bridge->Failed(sunk.error());
      }
    }
    return SG_SUCCESS;
  } catch (...) {
    return call->bridge->Failed(Error(ErrorCode::kResourceExhausted, "out of memory"));
  }
}

// Defers identity saves for the duration of one prekey-message decryption (StoreBridge).
class DeferIdentitySaves {
 public:
  explicit DeferIdentitySaves(internal::StoreBridge& bridge) : bridge_(bridge) {
    bridge_.defer_identity_saves = true;
  }
  ~DeferIdentitySaves() {
    bridge_.defer_identity_saves = false;
    bridge_.pending_identity.reset();
  }
  DeferIdentitySaves(const DeferIdentitySaves&) = delete;
  DeferIdentitySaves& operator=(const DeferIdentitySaves&) = delete;

 private:
  internal::StoreBridge& bridge_;
};

Result<LocalIdentity> LoadLocalIdentity(SignalDevice::Impl& impl) {
  COFFRE_ASSIGN_OR_RETURN(std::optional<LocalIdentity> identity,
                          impl.bridge.stores.identity->LoadLocalIdentity());
  if (!identity) return Fail(ErrorCode::kNotFound, "no local signal identity");
  if (identity->public_key.size() != kSignalPublicKeySize) {
    return Fail(ErrorCode::kCorrupt, "stored signal identity has a bad size");
  }
  return std::move(*identity);
}

// The library refuses nothing about a session when it encrypts: it only checks identities
// when a session is built. So before every use of a session we ask the identity store
// whether the identity the session was built with is still trusted (a newer identity may
// have been recorded since, or the device certificate revoked).
Status CheckSessionTrusted(SignalDevice::Impl& impl, const SignalAddress& remote) {
  COFFRE_ASSIGN_OR_RETURN(std::optional<SecretBytes> stored,
                          impl.bridge.stores.session->LoadSession(remote));
  if (!stored) return Fail(ErrorCode::kNotFound, "no signal session with this device");
  SignalRef<session_record> record;
  const int rc =
      session_record_deserialize(Out(record), stored->data(), stored->size(), impl.context());
  if (rc != SG_SUCCESS || record == nullptr) {
    return Fail(ErrorCode::kCorrupt, "stored signal session does not parse");
  }
  session_state* state = session_record_get_state(record.get());  // borrowed
  const ec_public_key* identity =
      state == nullptr ? nullptr : session_state_get_remote_identity_key(state);
  if (identity == nullptr) return Fail(ErrorCode::kNotFound, "no signal session with this device");
  COFFRE_ASSIGN_OR_RETURN(SignalPublicKey key, internal::EncodePublicKey(identity));
  COFFRE_ASSIGN_OR_RETURN(bool trusted, impl.bridge.stores.identity->IsTrusted(remote, key));
  if (!trusted) return Fail(ErrorCode::kUntrustedIdentity, "signal identity not trusted");
  return Ok();
}

Status ValidateRemote(const SignalDevice::Impl& impl, const SignalAddress& remote) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateAddress(remote));
  if (remote == impl.local) {
    return Fail(ErrorCode::kInvalidArgument, "a session with our own address");
  }
  return Ok();
}

}  // namespace

SignalDevice::SignalDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SignalDevice::~SignalDevice() = default;

const SignalAddress& SignalDevice::local_address() const { return impl_->local; }

Result<std::unique_ptr<SignalDevice>> SignalDevice::Create(SignalAddress local_address,
                                                           const SignalStores& stores) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateAddress(local_address));
  if (stores.session == nullptr || stores.pre_key == nullptr || stores.signed_pre_key == nullptr ||
      stores.identity == nullptr || stores.sender_key == nullptr ||
      stores.group_replay == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "a signal store is missing");
  }
  internal::EnsureSodium();

  auto impl = std::make_unique<Impl>();
  impl->local = std::move(local_address);
  impl->bridge.stores = stores;
  COFFRE_ASSIGN_OR_RETURN(impl->library, internal::LibraryContext::Create());
  const int rc = signal_protocol_store_context_create(Out(impl->store_context), impl->context());
  if (rc != SG_SUCCESS || impl->store_context == nullptr) {
    return Fail(ErrorCode::kResourceExhausted, "signal store context could not be created");
  }
  COFFRE_RETURN_IF_ERROR(internal::InstallStoreBridge(impl->store_context.get(), &impl->bridge));
  std::unique_ptr<SignalDevice> device(new (std::nothrow) SignalDevice(std::move(impl)));
  if (device == nullptr) return Fail(ErrorCode::kResourceExhausted, "out of memory");
  return device;
}

// --- Keys ---------------------------------------------------------------------------------

Status SignalDevice::GenerateIdentity() {
  auto lock = impl_->Lock();
  COFFRE_ASSIGN_OR_RETURN(std::optional<LocalIdentity> existing,
                          impl_->bridge.stores.identity->LoadLocalIdentity());
  if (existing) return Fail(ErrorCode::kAlreadyExists, "signal identity already exists");

  SignalRef<ratchet_identity_key_pair> pair;
  if (signal_protocol_key_helper_generate_identity_key_pair(Out(pair), impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal identity generation failed");
  }
  COFFRE_ASSIGN_OR_RETURN(
      SignalPublicKey public_key,
      internal::EncodePublicKey(ratchet_identity_key_pair_get_public(pair.get())));
  SignalBuffer private_key;
  if (ec_private_key_serialize(Out(private_key),
                               ratchet_identity_key_pair_get_private(pair.get())) != SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal identity could not be serialized");
  }
  std::uint32_t registration_id = 0;
  // 1..16380: the compact range, as other Signal clients use.
  if (signal_protocol_key_helper_generate_registration_id(&registration_id, 0, impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signal registration id generation failed");
  }
  return impl_->bridge.stores.identity->StoreLocalIdentity(public_key, View(private_key.get()),
                                                           registration_id);
}

Result<SignalPublicKey> SignalDevice::IdentityPublicKey() {
  auto lock = impl_->Lock();
  COFFRE_ASSIGN_OR_RETURN(LocalIdentity identity, LoadLocalIdentity(*impl_));
  SignalPublicKey key{};
  std::memcpy(key.data(), identity.public_key.data(), key.size());
  return key;
}

Result<std::vector<PublicPreKey>> SignalDevice::GeneratePreKeys(std::uint32_t start_id,
                                                                std::uint32_t count) {
  if (count == 0 || count > kMaxPreKeyBatch || start_id == 0 ||
      std::uint64_t{start_id} + count - 1 > kMaxPreKeyId) {
    return Fail(ErrorCode::kInvalidArgument, "prekey ids out of range");
  }
  auto lock = impl_->Lock();
  internal::PreKeyListHandle head;
  if (signal_protocol_key_helper_generate_pre_keys(Out(head), start_id, count, impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "prekey generation failed");
  }
  std::vector<PublicPreKey> published;
  published.reserve(count);
  for (const signal_protocol_key_helper_pre_key_list_node* node = head.get(); node != nullptr;
       node = signal_protocol_key_helper_key_list_next(node)) {
    session_pre_key* pre_key = signal_protocol_key_helper_key_list_element(node);  // borrowed
    SignalBuffer record;
    if (session_pre_key_serialize(Out(record), pre_key) != SG_SUCCESS) {
      return Fail(ErrorCode::kInternal, "prekey could not be serialized");
    }
    const std::uint32_t id = session_pre_key_get_id(pre_key);
    COFFRE_RETURN_IF_ERROR(impl_->bridge.stores.pre_key->StorePreKey(id, View(record.get())));
    COFFRE_ASSIGN_OR_RETURN(
        SignalPublicKey public_key,
        internal::EncodePublicKey(ec_key_pair_get_public(session_pre_key_get_key_pair(pre_key))));
    published.push_back(PublicPreKey{id, public_key});
  }
  return published;
}

Result<PublicSignedPreKey> SignalDevice::GenerateSignedPreKey(std::uint32_t id,
                                                              std::uint64_t timestamp_ms) {
  if (id > kMaxPreKeyId) return Fail(ErrorCode::kInvalidArgument, "signed prekey id out of range");
  auto lock = impl_->Lock();
  impl_->bridge.BeginCall();
  SignalRef<ratchet_identity_key_pair> identity;
  if (const int rc =
          signal_protocol_identity_get_key_pair(impl_->store_context.get(), Out(identity));
      rc != SG_SUCCESS) {
    return impl_->Failure(internal::OperationError(rc, "signal identity could not be loaded"));
  }
  SignalRef<session_signed_pre_key> signed_pre_key;
  if (signal_protocol_key_helper_generate_signed_pre_key(
          Out(signed_pre_key), identity.get(), id, timestamp_ms, impl_->context()) != SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signed prekey generation failed");
  }
  SignalBuffer record;
  if (session_signed_pre_key_serialize(Out(record), signed_pre_key.get()) != SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "signed prekey could not be serialized");
  }
  COFFRE_RETURN_IF_ERROR(
      impl_->bridge.stores.signed_pre_key->StoreSignedPreKey(id, View(record.get())));

  PublicSignedPreKey published;
  published.id = id;
  published.timestamp_ms = timestamp_ms;
  COFFRE_ASSIGN_OR_RETURN(published.public_key,
                          internal::EncodePublicKey(ec_key_pair_get_public(
                              session_signed_pre_key_get_key_pair(signed_pre_key.get()))));
  if (session_signed_pre_key_get_signature_len(signed_pre_key.get()) != kSignalSignatureSize) {
    return Fail(ErrorCode::kInternal, "signed prekey signature has an unexpected size");
  }
  std::memcpy(published.signature.data(),
              session_signed_pre_key_get_signature(signed_pre_key.get()), kSignalSignatureSize);
  return published;
}

Result<PreKeyBundle> SignalDevice::CreatePreKeyBundle(std::optional<std::uint32_t> pre_key_id,
                                                      std::uint32_t signed_pre_key_id) {
  auto lock = impl_->Lock();
  COFFRE_ASSIGN_OR_RETURN(LocalIdentity identity, LoadLocalIdentity(*impl_));

  PreKeyBundle bundle;
  bundle.registration_id = identity.registration_id;
  bundle.device_id = impl_->local.device_id;
  std::memcpy(bundle.identity_key.data(), identity.public_key.data(), kSignalPublicKeySize);

  COFFRE_ASSIGN_OR_RETURN(std::optional<SecretBytes> signed_record,
                          impl_->bridge.stores.signed_pre_key->LoadSignedPreKey(signed_pre_key_id));
  if (!signed_record) return Fail(ErrorCode::kNotFound, "signed prekey not found");
  SignalRef<session_signed_pre_key> signed_pre_key;
  const int signed_rc = session_signed_pre_key_deserialize(
      Out(signed_pre_key), signed_record->data(), signed_record->size(), impl_->context());
  if (signed_rc != SG_SUCCESS || signed_pre_key == nullptr ||
      session_signed_pre_key_get_signature_len(signed_pre_key.get()) != kSignalSignatureSize) {
    return Fail(ErrorCode::kCorrupt, "stored signed prekey does not parse");
  }
  bundle.signed_pre_key_id = signed_pre_key_id;
  COFFRE_ASSIGN_OR_RETURN(bundle.signed_pre_key,
                          internal::EncodePublicKey(ec_key_pair_get_public(
                              session_signed_pre_key_get_key_pair(signed_pre_key.get()))));
  std::memcpy(bundle.signed_pre_key_signature.data(),
              session_signed_pre_key_get_signature(signed_pre_key.get()), kSignalSignatureSize);

  if (pre_key_id) {
    COFFRE_ASSIGN_OR_RETURN(std::optional<SecretBytes> record,
                            impl_->bridge.stores.pre_key->LoadPreKey(*pre_key_id));
    if (!record) return Fail(ErrorCode::kNotFound, "prekey not found");
    SignalRef<session_pre_key> pre_key;
    const int rc =
        session_pre_key_deserialize(Out(pre_key), record->data(), record->size(), impl_->context());
    if (rc != SG_SUCCESS || pre_key == nullptr) {
      return Fail(ErrorCode::kCorrupt, "stored prekey does not parse");
    }
    PublicPreKey published;
    published.id = *pre_key_id;
    COFFRE_ASSIGN_OR_RETURN(published.public_key,
                            internal::EncodePublicKey(ec_key_pair_get_public(
                                session_pre_key_get_key_pair(pre_key.get()))));
    bundle.one_time_pre_key = published;
  }
  return bundle;
}

// --- Pairwise sessions --------------------------------------------------------------------

Status SignalDevice::ProcessPreKeyBundle(const SignalAddress& remote, const PreKeyBundle& bundle) {
  COFFRE_RETURN_IF_ERROR(ValidateRemote(*impl_, remote));
  if (bundle.device_id != remote.device_id) {
    return Fail(ErrorCode::kInvalidArgument, "prekey bundle is for another device");
  }
  auto lock = impl_->Lock();
  signal_context* context = impl_->context();
  COFFRE_ASSIGN_OR_RETURN(SignalRef<ec_public_key> identity_key,
                          internal::DecodePublicKey(bundle.identity_key, context));
  COFFRE_ASSIGN_OR_RETURN(SignalRef<ec_public_key> signed_pre_key,
                          internal::DecodePublicKey(bundle.signed_pre_key, context));
  SignalRef<ec_public_key> one_time_pre_key;
  if (bundle.one_time_pre_key) {
    COFFRE_ASSIGN_OR_RETURN(
        one_time_pre_key, internal::DecodePublicKey(bundle.one_time_pre_key->public_key, context));
  }

  SignalRef<session_pre_key_bundle> library_bundle;
  if (session_pre_key_bundle_create(
          Out(library_bundle), bundle.registration_id, bundle.device_id,
          bundle.one_time_pre_key ? bundle.one_time_pre_key->id : 0, one_time_pre_key.get(),
          bundle.signed_pre_key_id, signed_pre_key.get(), bundle.signed_pre_key_signature.data(),
          bundle.signed_pre_key_signature.size(), identity_key.get()) != SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "prekey bundle could not be created");
  }

  const signal_protocol_address address = LibraryAddress(remote);
  internal::SessionBuilderHandle builder;
  if (session_builder_create(Out(builder), impl_->store_context.get(), &address, context) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "session builder could not be created");
  }
  impl_->bridge.BeginCall();
  const int rc = session_builder_process_pre_key_bundle(builder.get(), library_bundle.get());
  if (rc == SG_SUCCESS) return Ok();
  if (rc == SG_ERR_INVALID_KEY) {
    // The library's answer for a signed prekey whose signature does not verify.
    return impl_->Failure(
        Error(ErrorCode::kAuthenticationFailed, "prekey bundle signature does not verify"));
  }
  return impl_->Failure(internal::OperationError(rc, "signal session could not be built"));
}

Result<bool> SignalDevice::HasSession(const SignalAddress& remote) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateAddress(remote));
  auto lock = impl_->Lock();
  return impl_->bridge.stores.session->ContainsSession(remote);
}

Result<SignalCiphertext> SignalDevice::Encrypt(const SignalAddress& remote,
                                               std::span<const std::uint8_t> plaintext) {
  COFFRE_RETURN_IF_ERROR(ValidateRemote(*impl_, remote));
  if (plaintext.size() > kMaxSignalMessageSize - kMessageOverheadAllowance) {
    return Fail(ErrorCode::kInvalidArgument, "plaintext too large for a signal message");
  }
  auto lock = impl_->Lock();
  COFFRE_RETURN_IF_ERROR(CheckSessionTrusted(*impl_, remote));

  const signal_protocol_address address = LibraryAddress(remote);
  internal::SessionCipherHandle cipher;
  if (session_cipher_create(Out(cipher), impl_->store_context.get(), &address, impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "session cipher could not be created");
  }
  impl_->bridge.BeginCall();
  SignalRef<ciphertext_message> message;
  if (const int rc =
          session_cipher_encrypt(cipher.get(), plaintext.data(), plaintext.size(), Out(message));
      rc != SG_SUCCESS) {
    return impl_->Failure(internal::OperationError(rc, "signal encryption failed"));
  }

  SignalCiphertext out{};
  switch (ciphertext_message_get_type(message.get())) {
    case CIPHERTEXT_PREKEY_TYPE:
      out.type = SignalMessageType::kPreKey;
      break;
    case CIPHERTEXT_SIGNAL_TYPE:
      out.type = SignalMessageType::kWhisper;
      break;
    default:
      return Fail(ErrorCode::kInternal, "signal produced an unexpected message type");
  }
  // Borrowed from the message: copy it before the message goes.
  const std::span<const std::uint8_t> bytes =
      View(ciphertext_message_get_serialized(message.get()));
  out.bytes.assign(bytes.begin(), bytes.end());
  return out;
}

Result<SecretBytes> SignalDevice::Decrypt(const SignalAddress& remote, SignalMessageType type,
                                          std::span<const std::uint8_t> ciphertext,
                                          const PlaintextSink& sink) {
  COFFRE_RETURN_IF_ERROR(ValidateRemote(*impl_, remote));
  if (type != SignalMessageType::kPreKey && type != SignalMessageType::kWhisper) {
    return Fail(ErrorCode::kInvalidArgument, "not a pairwise signal message type");
  }
  if (ciphertext.empty() || ciphertext.size() > kMaxSignalMessageSize) {
    return Fail(ErrorCode::kInvalidArgument, "signal message size out of range");
  }
  auto lock = impl_->Lock();
  signal_context* context = impl_->context();

  const signal_protocol_address address = LibraryAddress(remote);
  internal::SessionCipherHandle cipher;
  if (session_cipher_create(Out(cipher), impl_->store_context.get(), &address, context) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "session cipher could not be created");
  }
  session_cipher_set_decryption_callback(cipher.get(), PairwiseDecryptCallback);
  PairwiseDecryptCall call{&impl_->bridge, &sink};

  SignalBuffer plaintext;
  int rc = SG_SUCCESS;
  if (type == SignalMessageType::kPreKey) {
    SignalRef<pre_key_signal_message> message;
    rc = pre_key_signal_message_deserialize(Out(message), ciphertext.data(), ciphertext.size(),
                                            context);
    if (rc != SG_SUCCESS || message == nullptr) {
      return Fail(ErrorCode::kAuthenticationFailed, internal::kMessageRejected);
    }
    // The library checks the identity carried by the message against IsTrusted itself.
    DeferIdentitySaves defer(impl_->bridge);
    impl_->bridge.BeginCall();
    rc = session_cipher_decrypt_pre_key_signal_message(cipher.get(), message.get(), &call,
                                                       Out(plaintext));
  } else {
    COFFRE_RETURN_IF_ERROR(CheckSessionTrusted(*impl_, remote));
    SignalRef<signal_message> message;
    rc = signal_message_deserialize(Out(message), ciphertext.data(), ciphertext.size(), context);
    if (rc != SG_SUCCESS || message == nullptr) {
      return Fail(ErrorCode::kAuthenticationFailed, internal::kMessageRejected);
    }
    impl_->bridge.BeginCall();
    rc = session_cipher_decrypt_signal_message(cipher.get(), message.get(), &call, Out(plaintext));
  }
  if (rc != SG_SUCCESS) return impl_->Failure(internal::MessageError(rc));
  if (plaintext == nullptr) return Fail(ErrorCode::kInternal, "signal returned no plaintext");
  return SecretBytes::CopyOf(View(plaintext.get()));
}

// --- Safety numbers -----------------------------------------------------------------------

Result<SafetyNumber> SignalDevice::SafetyNumberWith(const SignalAddress& remote) {
  COFFRE_RETURN_IF_ERROR(ValidateRemote(*impl_, remote));
  auto lock = impl_->Lock();
  COFFRE_ASSIGN_OR_RETURN(LocalIdentity local, LoadLocalIdentity(*impl_));
  COFFRE_ASSIGN_OR_RETURN(std::optional<std::vector<std::uint8_t>> remote_identity,
                          impl_->bridge.stores.identity->LoadIdentity(remote));
  if (!remote_identity) return Fail(ErrorCode::kNotFound, "no identity recorded for this device");
  return ComputeSafetyNumber(impl_->local.name, local.public_key, remote.name, *remote_identity);
}

}  // namespace coffre::crypto
