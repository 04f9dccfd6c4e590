// SignalDevice: group sender keys, with our own binding of group id and sender and the
// distribution replay guard (see signal_protocol.h for the layouts and the reasons).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "coffre/crypto/signal_protocol.h"
#include "signal_device_impl.h"
#include "signal_library.h"
#include "signal_store_bridge.h"

namespace coffre::crypto {

using internal::LibraryAddress;
using internal::Out;
using internal::SignalBuffer;
using internal::SignalRef;
using internal::View;

namespace {

constexpr std::uint8_t kDistributionMagic[4] = {'C', 'F', 'D', '1'};
constexpr std::uint8_t kGroupMessageMagic[4] = {'C', 'F', 'G', '1'};
// The library's distribution message is about 90 bytes (ids, 32-byte chain key, 33-byte
// signing key, protobuf framing); anything far larger is not one.
constexpr std::size_t kMaxLibraryDistributionSize = 1024;
constexpr std::size_t kMaxDistributionPayloadSize =
    4 + 2 + kMaxSignalGroupIdSize + 2 + kMaxSignalNameSize + 4 + 4 + kMaxLibraryDistributionSize;
constexpr std::size_t kGroupHeaderAllowance = 4 + 2 + kMaxSignalGroupIdSize;
// Room for the library's own fields around the encrypted group plaintext.
constexpr std::size_t kGroupMessageOverheadAllowance = 1024;

// The library's view of (group, sender). Keeps pointers into `group_id` and `sender`,
// which must outlive every builder or cipher created with it.
signal_protocol_sender_key_name SenderKeyName(const std::string& group_id,
                                              const SignalAddress& sender) {
  return signal_protocol_sender_key_name{group_id.c_str(), group_id.size(), LibraryAddress(sender)};
}

void AppendText(internal::ByteWriter& writer, std::string_view text) {
  writer.U16(static_cast<std::uint16_t>(text.size()));
  writer.Bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()),
                                             text.size()));
}

bool ReadText(internal::ByteReader& reader, std::size_t max_size, std::string& text) {
  std::uint16_t size = 0;
  std::span<const std::uint8_t> bytes;
  if (!reader.U16(size) || size == 0 || size > max_size || !reader.Bytes(size, bytes)) {
    return false;
  }
  text.assign(bytes.begin(), bytes.end());
  return true;
}

// "CFG1" | u16 group id length | group id. Not secret by itself; the plaintext follows it.
std::vector<std::uint8_t> GroupMessageHeader(std::string_view group_id) {
  std::vector<std::uint8_t> header;
  internal::ByteWriter writer(header);
  writer.Bytes(kGroupMessageMagic);
  AppendText(writer, group_id);
  return header;
}

// The length of the header at the start of `plaintext` if it names `group_id`.
bool CheckGroupMessageHeader(std::span<const std::uint8_t> plaintext, std::string_view group_id,
                             std::size_t& header_size) {
  internal::ByteReader reader(plaintext);
  std::span<const std::uint8_t> magic;
  std::string named_group;
  if (!reader.Bytes(sizeof kGroupMessageMagic, magic) ||
      !std::equal(magic.begin(), magic.end(), kGroupMessageMagic) ||
      !ReadText(reader, kMaxSignalGroupIdSize, named_group) || named_group != group_id) {
    return false;
  }
  header_size = plaintext.size() - reader.remaining();
  return true;
}

struct DistributionPayload {
  std::string group_id;
  SignalAddress sender;
  std::span<const std::uint8_t> message;  // into the parsed bytes
};

bool ParseDistribution(std::span<const std::uint8_t> bytes, DistributionPayload& out) {
  internal::ByteReader reader(bytes);
  std::span<const std::uint8_t> magic;
  std::uint32_t device_id = 0;
  std::uint32_t message_size = 0;
  if (!reader.Bytes(sizeof kDistributionMagic, magic) ||
      !std::equal(magic.begin(), magic.end(), kDistributionMagic) ||
      !ReadText(reader, kMaxSignalGroupIdSize, out.group_id) ||
      !ReadText(reader, kMaxSignalNameSize, out.sender.name) || !reader.U32(device_id) ||
      device_id == 0 || device_id > 0x7FFFFFFFu || !reader.U32(message_size) || message_size == 0 ||
      message_size > kMaxLibraryDistributionSize || !reader.Bytes(message_size, out.message) ||
      reader.remaining() != 0) {
    return false;
  }
  out.sender.device_id = static_cast<std::int32_t>(device_id);
  return true;
}

// Carried through the library to the group decryption callback.
struct GroupDecryptCall {
  internal::StoreBridge* bridge;
  std::string_view group_id;
  const SignalAddress* sender;
  std::uint32_t key_id;
  std::uint32_t iteration;
  const PlaintextSink* sink;
  std::size_t header_size = 0;
};

// Runs after decryption, before the sender's chain is committed. Refusing here (wrong group
// header) leaves the chain untouched, so the message key is not consumed by a message we
// reject. The replay guard is raised in the same step as the chain advances.
int GroupDecryptCallback(group_cipher* /*cipher*/, signal_buffer* plaintext,
                         void* decrypt_context) {
  auto* call = static_cast<GroupDecryptCall*>(decrypt_context);
  internal::StoreBridge& bridge = *call->bridge;
  try {
    const std::span<const std::uint8_t> bytes = View(plaintext);
    if (!CheckGroupMessageHeader(bytes, call->group_id, call->header_size)) {
      return bridge.Failed(Error(ErrorCode::kAuthenticationFailed, internal::kMessageRejected));
    }
    GroupReplayGuardStore& guard = *bridge.stores.group_replay;
    auto highest = guard.LoadHighestIteration(call->group_id, *call->sender, call->key_id);
    if (!highest) return bridge.Failed(highest.error());
    if (!highest->has_value() || **highest < call->iteration) {
      if (Status raised = guard.StoreHighestIteration(call->group_id, *call->sender, call->key_id,
                                                      call->iteration);
          !raised) {
        return bridge.Failed(raised.error());
      }
    }
    if (call->sink != nullptr && *call->sink) {
      if (Status sunk = (*call->sink)(bytes.subspan(call->header_size)); !sunk) {
        return bridge.Failed(sunk.error());
      }
    }
    return SG_SUCCESS;
  } catch (...) {
    return bridge.Failed(Error(ErrorCode::kResourceExhausted, "out of memory"));
  }
}

}  // namespace

Result<SecretBytes> SignalDevice::CreateGroupDistribution(std::string_view group_id) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateGroupId(group_id));
  auto lock = impl_->Lock();
  const std::string group(group_id);
  const signal_protocol_sender_key_name name = SenderKeyName(group, impl_->local);

  internal::GroupBuilderHandle builder;
  if (group_session_builder_create(Out(builder), impl_->store_context.get(), impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "group session builder could not be created");
  }
  impl_->bridge.BeginCall();
  SignalRef<sender_key_distribution_message> message;
  if (const int rc = group_session_builder_create_session(builder.get(), Out(message), &name);
      rc != SG_SUCCESS) {
    return impl_->Failure(internal::OperationError(rc, "group sender key could not be created"));
  }
  // A distribution message is a ciphertext message underneath; its bytes are borrowed.
  const std::span<const std::uint8_t> library_bytes = View(ciphertext_message_get_serialized(
      reinterpret_cast<const ciphertext_message*>(message.get())));
  if (library_bytes.empty() || library_bytes.size() > kMaxLibraryDistributionSize) {
    return Fail(ErrorCode::kInternal, "group distribution message has an unexpected size");
  }

  std::vector<std::uint8_t> header;  // identifiers only: not secret
  internal::ByteWriter writer(header);
  writer.Bytes(kDistributionMagic);
  AppendText(writer, group);
  AppendText(writer, impl_->local.name);
  writer.U32(static_cast<std::uint32_t>(impl_->local.device_id));
  writer.U32(static_cast<std::uint32_t>(library_bytes.size()));

  SecretBytes payload(header.size() + library_bytes.size());
  std::memcpy(payload.data(), header.data(), header.size());
  std::memcpy(payload.data() + header.size(), library_bytes.data(), library_bytes.size());
  return payload;
}

Status SignalDevice::ProcessGroupDistribution(std::string_view group_id,
                                              const SignalAddress& sender,
                                              std::span<const std::uint8_t> distribution) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateGroupId(group_id));
  COFFRE_RETURN_IF_ERROR(internal::ValidateAddress(sender));
  if (sender == impl_->local) {
    return Fail(ErrorCode::kInvalidArgument, "distribution message from our own address");
  }
  DistributionPayload payload;
  if (distribution.size() > kMaxDistributionPayloadSize ||
      !ParseDistribution(distribution, payload)) {
    return Fail(ErrorCode::kInvalidArgument, "malformed group distribution message");
  }
  if (payload.group_id != group_id || payload.sender != sender) {
    return Fail(ErrorCode::kAuthenticationFailed,
                "distribution message bound to another group or sender");
  }

  auto lock = impl_->Lock();
  signal_context* context = impl_->context();
  SignalRef<sender_key_distribution_message> message;
  const int parsed = sender_key_distribution_message_deserialize(
      Out(message), payload.message.data(), payload.message.size(), context);
  if (parsed != SG_SUCCESS || message == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "malformed group distribution message");
  }
  const std::uint32_t key_id = sender_key_distribution_message_get_id(message.get());
  const std::uint32_t iteration = sender_key_distribution_message_get_iteration(message.get());

  // The library would accept this message again and rewind the sender's chain to
  // `iteration`, making old group messages decrypt a second time: only a key id never
  // seen, or a later iteration of a known one, gets through.
  GroupReplayGuardStore& guard = *impl_->bridge.stores.group_replay;
  COFFRE_ASSIGN_OR_RETURN(std::optional<std::uint32_t> highest,
                          guard.LoadHighestIteration(group_id, sender, key_id));
  if (highest && iteration <= *highest) {
    return Fail(ErrorCode::kReplay, "group distribution message already seen");
  }
  // Recorded before installing: if what follows fails or the process dies in between, a
  // retransmission is refused (the sender must rotate) rather than a replay accepted.
  COFFRE_RETURN_IF_ERROR(guard.StoreHighestIteration(group_id, sender, key_id, iteration));

  const std::string group(group_id);
  const signal_protocol_sender_key_name name = SenderKeyName(group, sender);
  internal::GroupBuilderHandle builder;
  if (group_session_builder_create(Out(builder), impl_->store_context.get(), context) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "group session builder could not be created");
  }
  impl_->bridge.BeginCall();
  if (const int rc = group_session_builder_process_session(builder.get(), &name, message.get());
      rc != SG_SUCCESS) {
    return impl_->Failure(
        internal::OperationError(rc, "group distribution message could not be installed"));
  }
  return Ok();
}

Result<SignalCiphertext> SignalDevice::GroupEncrypt(std::string_view group_id,
                                                    std::span<const std::uint8_t> plaintext) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateGroupId(group_id));
  if (plaintext.size() >
      kMaxSignalMessageSize - kGroupMessageOverheadAllowance - kGroupHeaderAllowance) {
    return Fail(ErrorCode::kInvalidArgument, "plaintext too large for a group message");
  }
  auto lock = impl_->Lock();
  const std::string group(group_id);
  const signal_protocol_sender_key_name name = SenderKeyName(group, impl_->local);

  const std::vector<std::uint8_t> header = GroupMessageHeader(group);
  SecretBytes inner(header.size() + plaintext.size());
  std::memcpy(inner.data(), header.data(), header.size());
  if (!plaintext.empty()) {
    std::memcpy(inner.data() + header.size(), plaintext.data(), plaintext.size());
  }

  internal::GroupCipherHandle cipher;
  if (group_cipher_create(Out(cipher), impl_->store_context.get(), &name, impl_->context()) !=
      SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "group cipher could not be created");
  }
  impl_->bridge.BeginCall();
  SignalRef<ciphertext_message> message;
  if (const int rc = group_cipher_encrypt(cipher.get(), inner.data(), inner.size(), Out(message));
      rc != SG_SUCCESS) {
    if (rc == SG_ERR_NO_SESSION) {
      return impl_->Failure(Error(ErrorCode::kNotFound, "no sending key for this group"));
    }
    return impl_->Failure(internal::OperationError(rc, "group encryption failed"));
  }
  const std::span<const std::uint8_t> bytes =
      View(ciphertext_message_get_serialized(message.get()));
  return SignalCiphertext{SignalMessageType::kSenderKey,
                          std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
}

Result<SecretBytes> SignalDevice::GroupDecrypt(std::string_view group_id,
                                               const SignalAddress& sender,
                                               std::span<const std::uint8_t> ciphertext,
                                               const PlaintextSink& sink) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateGroupId(group_id));
  COFFRE_RETURN_IF_ERROR(internal::ValidateAddress(sender));
  if (sender == impl_->local) {
    return Fail(ErrorCode::kInvalidArgument, "group message from our own address");
  }
  if (ciphertext.empty() || ciphertext.size() > kMaxSignalMessageSize) {
    return Fail(ErrorCode::kInvalidArgument, "signal message size out of range");
  }
  auto lock = impl_->Lock();
  signal_context* context = impl_->context();
  SignalRef<sender_key_message> message;
  const int parsed =
      sender_key_message_deserialize(Out(message), ciphertext.data(), ciphertext.size(), context);
  if (parsed != SG_SUCCESS || message == nullptr) {
    return Fail(ErrorCode::kAuthenticationFailed, internal::kMessageRejected);
  }

  const std::string group(group_id);
  const signal_protocol_sender_key_name name = SenderKeyName(group, sender);
  internal::GroupCipherHandle cipher;
  if (group_cipher_create(Out(cipher), impl_->store_context.get(), &name, context) != SG_SUCCESS) {
    return Fail(ErrorCode::kResourceExhausted, "group cipher could not be created");
  }
  group_cipher_set_decryption_callback(cipher.get(), GroupDecryptCallback);
  // Key id and iteration are read from the message before it is verified; the callback
  // only runs (and only records them) once the signature and decryption succeeded.
  GroupDecryptCall call{&impl_->bridge,
                        group,
                        &sender,
                        sender_key_message_get_key_id(message.get()),
                        sender_key_message_get_iteration(message.get()),
                        &sink};

  impl_->bridge.BeginCall();
  SignalBuffer plaintext;
  if (const int rc = group_cipher_decrypt(cipher.get(), message.get(), &call, Out(plaintext));
      rc != SG_SUCCESS) {
    return impl_->Failure(internal::MessageError(rc));
  }
  const std::span<const std::uint8_t> bytes = View(plaintext.get());
  if (plaintext == nullptr || call.header_size > bytes.size()) {
    return Fail(ErrorCode::kInternal, "signal returned no plaintext");
  }
  return SecretBytes::CopyOf(bytes.subspan(call.header_size));
}

Status SignalDevice::RotateGroupSenderKey(std::string_view group_id) {
  COFFRE_RETURN_IF_ERROR(internal::ValidateGroupId(group_id));
  auto lock = impl_->Lock();
  return impl_->bridge.stores.sender_key->DeleteSenderKey(group_id, impl_->local);
}

}  // namespace coffre::crypto
