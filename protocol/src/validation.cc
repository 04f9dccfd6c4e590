#include "coffre/protocol/validation.h"

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"
#include "coffre/protocol/limits.h"
#include "encoding.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;

using internal::AsBytes;

bool IsLowerIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool IsCodeChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

template <typename Predicate>
bool IsTokenOf(std::string_view text, std::size_t max_length, Predicate allowed) {
  if (text.empty() || text.size() > max_length) return false;
  for (char c : text) {
    if (!allowed(c)) return false;
  }
  return true;
}

Status Check(bool condition, Failure failure) {
  if (!condition) return Fail(failure);
  return Ok();
}

template <typename T>
Status StatusOf(const Result<T>& result) {
  if (!result) return result.error();
  return Ok();
}

Status ValidateExactSize(std::string_view bytes, std::size_t size, Failure failure) {
  return Check(bytes.size() == size, failure);
}

// Parses untrusted bytes into `message`. protobuf reports malformed input by returning
// false; the only exception it can raise is std::bad_alloc, caught here so that nothing
// crosses the API. Callers have bounded `bytes` by a limit well below INT_MAX.
bool ParseBounded(std::string_view bytes, google::protobuf::Message& message) {
  try {
    return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  } catch (...) {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Shared pieces

Status ValidateSignedPreKey(const v1::SignedPreKey& key) {
  COFFRE_RETURN_IF_ERROR(Check(key.id() <= kMaxSignedPreKeyId, Failure::kInvalidPreKeyId));
  COFFRE_RETURN_IF_ERROR(ValidateSignalKey(key.public_key()));
  return ValidateExactSize(key.signature(), kSignatureSize, Failure::kInvalidSignatureSize);
}

Status ValidateOneTimePreKey(const v1::OneTimePreKey& key) {
  COFFRE_RETURN_IF_ERROR(
      Check(key.id() >= 1 && key.id() <= kMaxOneTimePreKeyId, Failure::kInvalidPreKeyId));
  return ValidateSignalKey(key.public_key());
}

Status ValidateRegistrationId(std::uint32_t id) {
  return Check(id >= 1 && id <= kMaxRegistrationId, Failure::kInvalidRegistrationId);
}

Status ValidateCiphertext(std::string_view ciphertext) {
  COFFRE_RETURN_IF_ERROR(Check(!ciphertext.empty(), Failure::kEmptyCiphertext));
  return Check(ciphertext.size() <= kMaxEnvelopeCiphertext, Failure::kCiphertextTooLarge);
}

Status ValidateCertificateFor(const v1::DeviceCertificate& certificate, std::string_view user_id) {
  COFFRE_ASSIGN_OR_RETURN(v1::DeviceCertificateBody body, ParseDeviceCertificateBody(certificate));
  return Check(body.user_id() == user_id, Failure::kCertificateUserMismatch);
}

Status ValidateDeviceList(const v1::DeviceList& list) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(list.user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateEd25519Key(list.user_identity_key()));
  COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(list.devices_size()) <= kMaxDevicesPerUser,
                               Failure::kListTooLong));
  for (const v1::DeviceEntry& entry : list.devices()) {
    COFFRE_RETURN_IF_ERROR(Check(entry.has_certificate(), Failure::kFieldMissing));
    COFFRE_RETURN_IF_ERROR(ValidateCertificateFor(entry.certificate(), list.user_id()));
  }
  return Ok();
}

Status ValidateEnvelope(const v1::Envelope& envelope) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(envelope.sender_user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(envelope.sender_device_id()));
  COFFRE_RETURN_IF_ERROR(
      ValidateExactSize(envelope.client_id(), kIdSize, Failure::kInvalidClientId));
  COFFRE_RETURN_IF_ERROR(Check(envelope.type() != 0, Failure::kInvalidEnvelopeType));
  return ValidateCiphertext(envelope.ciphertext());
}

Status ValidateEnvelopeBatch(const v1::EnvelopeBatch& batch) {
  COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(batch.envelopes_size()) <= kMaxFetchLimit,
                               Failure::kListTooLong));
  for (const v1::Envelope& envelope : batch.envelopes()) {
    COFFRE_RETURN_IF_ERROR(ValidateEnvelope(envelope));
  }
  return Ok();
}

Status ValidateChainAdvanced(const v1::ChainAdvanced& advanced) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamId(advanced.team_id()));
  return ValidateExactSize(advanced.head(), kHashSize, Failure::kInvalidHash);
}

Status ValidateBlobSize(std::uint64_t size) {
  COFFRE_RETURN_IF_ERROR(Check(size != 0, Failure::kEmptyBlob));
  return Check(size <= kMaxBlobSize, Failure::kBlobTooLarge);
}

Status ValidateItemReply(const v1::ItemReply& reply) {
  COFFRE_RETURN_IF_ERROR(Check(reply.has_manifest(), Failure::kFieldMissing));
  COFFRE_ASSIGN_OR_RETURN(v1::ItemManifestBody body, ParseItemManifestBody(reply.manifest()));
  return Check(reply.current_version() >= body.version(), Failure::kInvalidItemVersion);
}

// ---------------------------------------------------------------------------------------
// Requests

Status ValidateRegister(const v1::Register& request) {
  COFFRE_RETURN_IF_ERROR(ValidateEnrolmentCode(request.enrolment_code()));
  COFFRE_RETURN_IF_ERROR(ValidateUserId(request.user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateEd25519Key(request.user_identity_key()));
  COFFRE_RETURN_IF_ERROR(Check(request.has_first_device(), Failure::kFieldMissing));
  return ValidateCertificateFor(request.first_device(), request.user_id());
}

Status ValidateAuthenticate(const v1::Authenticate& request) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(request.user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(request.device_id()));
  COFFRE_RETURN_IF_ERROR(ValidateExactSize(request.nonce(), kNonceSize, Failure::kInvalidNonce));
  return ValidateExactSize(request.signature(), kSignatureSize, Failure::kInvalidSignatureSize);
}

Status ValidateAddDevice(const v1::AddDevice& request) {
  COFFRE_RETURN_IF_ERROR(Check(request.has_certificate(), Failure::kFieldMissing));
  // Which user the certificate must name is known only from the session: the relay checks.
  return StatusOf(ParseDeviceCertificateBody(request.certificate()));
}

Status ValidateAuditProofRequest(const v1::GetAuditProof& request) {
  switch (request.kind_case()) {
    case v1::GetAuditProof::kInclusion:
      return Check(request.inclusion().index() < request.inclusion().tree_size(),
                   Failure::kInvalidAuditProofRequest);
    case v1::GetAuditProof::kConsistency:
      return Check(request.consistency().first_size() >= 1 &&
                       request.consistency().first_size() <= request.consistency().second_size(),
                   Failure::kInvalidAuditProofRequest);
    case v1::GetAuditProof::KIND_NOT_SET:
      break;
  }
  return Fail(Failure::kInvalidAuditProofRequest);
}

Status ValidateAuditEntries(const v1::AuditEntries& page) {
  COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(page.entries_size()) <= kMaxAuditEntriesPerPage,
                               Failure::kListTooLong));
  for (const v1::AuditLogEntry& entry : page.entries()) {
    COFFRE_RETURN_IF_ERROR(Check(!entry.entry().empty() && entry.entry().size() <= kMaxAuditEntry &&
                                     entry.sealed_details().size() <= kMaxSealedDetails,
                                 Failure::kInvalidAuditRecord));
  }
  // Each month key serves at least one entry of the page, and is sent once.
  COFFRE_RETURN_IF_ERROR(
      Check(page.month_keys_size() <= page.entries_size(), Failure::kListTooLong));
  std::set<std::uint64_t> key_ids;
  for (const v1::AuditMonthKey& key : page.month_keys()) {
    COFFRE_RETURN_IF_ERROR(Check(
        key.key_id() >= 1 && key.key_id() <= kMaxAuditMonthKeyId &&
            key.auditor_key().size() == kX25519KeySize && !key.sealed_key().empty() &&
            key.sealed_key().size() <= kMaxSealedMonthKey && key_ids.insert(key.key_id()).second,
        Failure::kInvalidAuditRecord));
  }
  return Ok();
}

Status ValidateLinkSide(v1::LinkSide side) {
  return Check(side == v1::LINK_SIDE_REQUEST || side == v1::LINK_SIDE_REPLY,
               Failure::kInvalidLinkSide);
}

Status ValidateRevokeDevice(const v1::RevokeDevice& request) {
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(request.device_id()));
  return ValidateExactSize(request.signature(), kSignatureSize, Failure::kInvalidSignatureSize);
}

Status ValidateUploadPreKeys(const v1::UploadPreKeys& request) {
  COFFRE_RETURN_IF_ERROR(ValidateRegistrationId(request.registration_id()));
  COFFRE_RETURN_IF_ERROR(Check(request.has_signed_pre_key() || request.one_time_pre_keys_size() > 0,
                               Failure::kEmptyPreKeyUpload));
  if (request.has_signed_pre_key()) {
    COFFRE_RETURN_IF_ERROR(ValidateSignedPreKey(request.signed_pre_key()));
  }
  COFFRE_RETURN_IF_ERROR(Check(
      static_cast<std::size_t>(request.one_time_pre_keys_size()) <= kMaxOneTimePreKeysPerUpload,
      Failure::kTooManyPreKeys));
  std::set<std::uint32_t> ids;
  for (const v1::OneTimePreKey& key : request.one_time_pre_keys()) {
    COFFRE_RETURN_IF_ERROR(ValidateOneTimePreKey(key));
    COFFRE_RETURN_IF_ERROR(Check(ids.insert(key.id()).second, Failure::kDuplicatePreKeyId));
  }
  return Ok();
}

Status ValidateSendEnvelopes(const v1::SendEnvelopes& request) {
  COFFRE_RETURN_IF_ERROR(Check(request.envelopes_size() > 0, Failure::kNoEnvelopes));
  COFFRE_RETURN_IF_ERROR(
      Check(static_cast<std::size_t>(request.envelopes_size()) <= kMaxEnvelopesPerSend,
            Failure::kTooManyEnvelopes));
  for (const v1::OutgoingEnvelope& envelope : request.envelopes()) {
    COFFRE_RETURN_IF_ERROR(ValidateUserId(envelope.recipient_user_id()));
    COFFRE_RETURN_IF_ERROR(ValidateDeviceId(envelope.recipient_device_id()));
    COFFRE_RETURN_IF_ERROR(
        ValidateExactSize(envelope.client_id(), kIdSize, Failure::kInvalidClientId));
    COFFRE_RETURN_IF_ERROR(Check(envelope.type() != 0, Failure::kInvalidEnvelopeType));
    COFFRE_RETURN_IF_ERROR(ValidateCiphertext(envelope.ciphertext()));
  }
  return Ok();
}

Status ValidateAckEnvelopes(const v1::AckEnvelopes& request) {
  COFFRE_RETURN_IF_ERROR(Check(request.sequences_size() > 0, Failure::kNoAcks));
  return Check(static_cast<std::size_t>(request.sequences_size()) <= kMaxAckBatch,
               Failure::kTooManyAcks);
}

Status ValidateListItems(const v1::ListItems& request) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamId(request.team_id()));
  if (!request.after_item_id().empty()) {
    COFFRE_RETURN_IF_ERROR(ValidateItemId(request.after_item_id()));
  }
  return Check(request.limit() <= kMaxItemsPerList, Failure::kInvalidListLimit);
}

// ---------------------------------------------------------------------------------------
// Responses

Status ValidateError(const v1::Error& error) {
  COFFRE_RETURN_IF_ERROR(
      Check(v1::ErrorCode_IsValid(error.code()) && error.code() != v1::ERROR_CODE_UNSPECIFIED,
            Failure::kInvalidErrorCode));
  COFFRE_RETURN_IF_ERROR(Check(error.message().size() <= kMaxErrorMessage &&
                                   std::all_of(error.message().begin(), error.message().end(),
                                               [](char c) { return c >= 0x20 && c <= 0x7E; }),
                               Failure::kInvalidErrorMessage));
  if (!error.current_head().empty()) {
    COFFRE_RETURN_IF_ERROR(
        ValidateExactSize(error.current_head(), kHashSize, Failure::kInvalidHash));
  }
  return Ok();
}

Status ValidatePreKeyBundleReply(const v1::PreKeyBundleReply& reply) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(reply.user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(reply.device_id()));
  COFFRE_RETURN_IF_ERROR(ValidateRegistrationId(reply.registration_id()));
  COFFRE_RETURN_IF_ERROR(ValidateSignalKey(reply.signal_identity_key()));
  COFFRE_RETURN_IF_ERROR(Check(reply.has_signed_pre_key(), Failure::kFieldMissing));
  COFFRE_RETURN_IF_ERROR(ValidateSignedPreKey(reply.signed_pre_key()));
  if (reply.has_one_time_pre_key()) {
    COFFRE_RETURN_IF_ERROR(ValidateOneTimePreKey(reply.one_time_pre_key()));
  }
  return Ok();
}

Status ValidateChain(const v1::Chain& chain) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamId(chain.team_id()));
  COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(chain.statements_size()) <= kMaxChainFetch,
                               Failure::kListTooLong));
  for (const v1::ChainStatement& statement : chain.statements()) {
    COFFRE_ASSIGN_OR_RETURN(v1::ChainStatementBody body, ParseChainStatementBody(statement));
    COFFRE_RETURN_IF_ERROR(Check(body.team_id() == chain.team_id(), Failure::kChainTeamMismatch));
  }
  COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(chain.signers_size()) <= kMaxChainFetch,
                               Failure::kListTooLong));
  for (const v1::DeviceList& signer : chain.signers()) {
    COFFRE_RETURN_IF_ERROR(ValidateDeviceList(signer));
  }
  return Ok();
}

Status ValidateBlobInfo(const v1::BlobInfo& info) {
  COFFRE_RETURN_IF_ERROR(ValidateBlobId(info.blob_id()));
  COFFRE_RETURN_IF_ERROR(ValidateBlobSize(info.size()));
  return Check(info.received() <= info.size(), Failure::kBlobProgressBeyondSize);
}

}  // namespace

// -----------------------------------------------------------------------------------------
// Field checks

Status ValidateUserId(std::string_view user_id) {
  return Check(IsTokenOf(user_id, kMaxUserIdLength, IsLowerIdChar), Failure::kInvalidUserId);
}

Status ValidateOrgId(std::string_view org_id) {
  return Check(IsTokenOf(org_id, kMaxOrgIdLength, IsLowerIdChar), Failure::kInvalidOrgId);
}

Status ValidateEnrolmentCode(std::string_view code) {
  return Check(IsTokenOf(code, kMaxEnrolmentCodeLength, IsCodeChar),
               Failure::kInvalidEnrolmentCode);
}

Status ValidateDeviceId(std::uint32_t device_id) {
  return Check(device_id >= 1 && device_id <= kMaxDeviceId, Failure::kInvalidDeviceId);
}

Status ValidateTeamId(std::string_view team_id) {
  return ValidateExactSize(team_id, kIdSize, Failure::kInvalidTeamId);
}

Status ValidateItemId(std::string_view item_id) {
  return ValidateExactSize(item_id, kIdSize, Failure::kInvalidItemId);
}

Status ValidateBlobId(std::string_view blob_id) {
  return ValidateExactSize(blob_id, kIdSize, Failure::kInvalidBlobId);
}

Status ValidateEd25519Key(std::string_view key) {
  // Parsed, not only sized: a small-order or non-canonical key is refused at the edge, so
  // nothing stores a key that could never verify anything.
  return Check(crypto::VerifyKey::FromBytes(AsBytes(key)).has_value(), Failure::kInvalidEd25519Key);
}

Status ValidateSignalKey(std::string_view key) {
  return Check(
      key.size() == kSignalKeySize && static_cast<std::uint8_t>(key.front()) == kSignalKeyType,
      Failure::kInvalidSignalKey);
}

Status ValidateRole(int role) {
  return Check(v1::Role_IsValid(role) && role != v1::ROLE_UNSPECIFIED, Failure::kInvalidRole);
}

bool HasUnknownFields(const google::protobuf::Message& message) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  if (!reflection->GetUnknownFields(message).empty()) return true;
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      const int count = reflection->FieldSize(message, field);
      for (int i = 0; i < count; ++i) {
        if (HasUnknownFields(reflection->GetRepeatedMessage(message, field, i))) return true;
      }
    } else if (HasUnknownFields(reflection->GetMessage(message, field))) {
      return true;
    }
  }
  return false;
}

// -----------------------------------------------------------------------------------------
// Signed bodies

Status ValidateDeviceCertificateBody(const v1::DeviceCertificateBody& body) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(body.user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(body.device_id()));
  COFFRE_RETURN_IF_ERROR(ValidateEd25519Key(body.device_signing_key()));
  return ValidateSignalKey(body.signal_identity_key());
}

Status ValidateChainStatementBody(const v1::ChainStatementBody& body) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamId(body.team_id()));
  COFFRE_RETURN_IF_ERROR(Check(body.sequence() == 0 ? body.previous_hash().empty()
                                                    : body.previous_hash().size() == kHashSize,
                               Failure::kInvalidPreviousHash));
  COFFRE_RETURN_IF_ERROR(ValidateUserId(body.signer_user_id()));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(body.signer_device_id()));
  switch (body.change_case()) {
    case v1::ChainStatementBody::kCreate:
      return Ok();
    case v1::ChainStatementBody::kAddMember:
      COFFRE_RETURN_IF_ERROR(ValidateUserId(body.add_member().user_id()));
      return ValidateRole(body.add_member().role());
    case v1::ChainStatementBody::kRemoveMember:
      return ValidateUserId(body.remove_member().user_id());
    case v1::ChainStatementBody::kChangeRole:
      COFFRE_RETURN_IF_ERROR(ValidateUserId(body.change_role().user_id()));
      return ValidateRole(body.change_role().role());
    case v1::ChainStatementBody::kRotateKey:
      COFFRE_RETURN_IF_ERROR(
          Check(body.rotate_key().generation() >= 1, Failure::kInvalidKeyGeneration));
      return ValidateExactSize(body.rotate_key().commitment(), kHashSize,
                               Failure::kInvalidCommitment);
    case v1::ChainStatementBody::kSetAuditorKey:
      return Check(crypto::X25519PublicKey::FromBytes(AsBytes(body.set_auditor_key().auditor_key()))
                       .has_value(),
                   Failure::kInvalidAuditorKey);
    case v1::ChainStatementBody::kRename: {
      const std::size_t size = body.rename().encrypted_name().size();
      return Check(size >= 1 && size <= kMaxEncryptedTeamName, Failure::kInvalidEncryptedName);
    }
    case v1::ChainStatementBody::CHANGE_NOT_SET:
      break;
  }
  return Fail(Failure::kStatementChangeMissing);
}

namespace {

bool IsValidItemKind(std::string_view kind) {
  // The client's kinds (docs/protocol.md, "Item kinds"): the relay sees only which is which.
  if (kind == "document" || kind == "note" || kind == "channel" || kind == "post" ||
      kind == "key-history") {
    return true;
  }
  constexpr std::string_view kRecordPrefix = "record:";
  if (!kind.starts_with(kRecordPrefix)) return false;
  return IsTokenOf(kind.substr(kRecordPrefix.size()), kMaxItemKindLength - kRecordPrefix.size(),
                   IsLowerIdChar);
}

}  // namespace

Status ValidateItemManifestBody(const v1::ItemManifestBody& body) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamId(body.team_id()));
  COFFRE_RETURN_IF_ERROR(ValidateItemId(body.item_id()));
  COFFRE_RETURN_IF_ERROR(Check(body.version() >= 1 && body.parent_version() < body.version(),
                               Failure::kInvalidItemVersion));
  COFFRE_RETURN_IF_ERROR(Check(IsValidItemKind(body.kind()), Failure::kInvalidItemKind));
  if (body.blob_id().empty()) {
    COFFRE_RETURN_IF_ERROR(
        Check(body.blob_size() == 0 && body.blob_hash().empty(), Failure::kInvalidBlobFields));
  } else {
    COFFRE_RETURN_IF_ERROR(ValidateBlobId(body.blob_id()));
    COFFRE_RETURN_IF_ERROR(Check(body.blob_size() != 0, Failure::kInvalidBlobFields));
    COFFRE_RETURN_IF_ERROR(Check(body.blob_size() <= kMaxBlobSize, Failure::kBlobTooLarge));
    COFFRE_RETURN_IF_ERROR(ValidateExactSize(body.blob_hash(), kHashSize, Failure::kInvalidHash));
  }
  COFFRE_RETURN_IF_ERROR(Check(body.key_generation() >= 1, Failure::kInvalidKeyGeneration));
  // A wrapped key goes with a blob (its content key); items held whole in their encrypted
  // metadata (channels, posts, key history) carry none.
  COFFRE_RETURN_IF_ERROR(
      Check(body.wrapped_key().size() <= kMaxWrappedKey &&
                (body.blob_id().empty() || !body.wrapped_key().empty()),
            Failure::kInvalidWrappedKey));
  COFFRE_RETURN_IF_ERROR(
      Check(body.encrypted_metadata().size() <= kMaxItemMetadata, Failure::kMetadataTooLarge));
  COFFRE_RETURN_IF_ERROR(ValidateUserId(body.author_user_id()));
  return ValidateDeviceId(body.author_device_id());
}

namespace {

// The common structure of every signed object: signature size, body size limit (before
// parsing), parse, no unknown fields, then the body's own field checks.
template <typename Body>
Result<Body> ParseSignedBody(std::string_view body_bytes, std::string_view signature,
                             std::size_t max_body, Status (*validate)(const Body&)) {
  COFFRE_RETURN_IF_ERROR(
      ValidateExactSize(signature, kSignatureSize, Failure::kInvalidSignatureSize));
  COFFRE_RETURN_IF_ERROR(Check(body_bytes.size() <= max_body, Failure::kSignedBodyTooLarge));
  Body body;
  COFFRE_RETURN_IF_ERROR(Check(ParseBounded(body_bytes, body), Failure::kSignedBodyUnparsable));
  COFFRE_RETURN_IF_ERROR(Check(!HasUnknownFields(body), Failure::kUnknownField));
  COFFRE_RETURN_IF_ERROR(validate(body));
  return body;
}

}  // namespace

Result<v1::DeviceCertificateBody> ParseDeviceCertificateBody(
    const v1::DeviceCertificate& certificate) {
  return ParseSignedBody<v1::DeviceCertificateBody>(certificate.body(), certificate.signature(),
                                                    kMaxCertificateBody,
                                                    &ValidateDeviceCertificateBody);
}

Result<v1::ChainStatementBody> ParseChainStatementBody(const v1::ChainStatement& statement) {
  return ParseSignedBody<v1::ChainStatementBody>(
      statement.body(), statement.signature(), kMaxChainStatementBody, &ValidateChainStatementBody);
}

Result<v1::ItemManifestBody> ParseItemManifestBody(const v1::ItemManifest& manifest) {
  return ParseSignedBody<v1::ItemManifestBody>(manifest.body(), manifest.signature(),
                                               kMaxManifestBody, &ValidateItemManifestBody);
}

// -----------------------------------------------------------------------------------------
// Requests, responses, pushes

Status ValidateRequest(const v1::Request& request) {
  COFFRE_RETURN_IF_ERROR(Check(request.id() != 0, Failure::kRequestIdMissing));
  switch (request.method_case()) {
    case v1::Request::kRegister:
      return ValidateRegister(request.register_());
    case v1::Request::kChallenge:
      return Ok();
    case v1::Request::kAuthenticate:
      return ValidateAuthenticate(request.authenticate());
    case v1::Request::kResume:
      return ValidateExactSize(request.resume().token(), kTokenSize, Failure::kInvalidToken);
    case v1::Request::kAddDevice:
      return ValidateAddDevice(request.add_device());
    case v1::Request::kRevokeDevice:
      return ValidateRevokeDevice(request.revoke_device());
    case v1::Request::kListDevices:
      return ValidateUserId(request.list_devices().user_id());
    case v1::Request::kOpenLink:
      return ValidateExactSize(request.open_link().link_id(), kIdSize, Failure::kInvalidLinkId);
    case v1::Request::kPostLinkMessage: {
      const v1::PostLinkMessage& post = request.post_link_message();
      COFFRE_RETURN_IF_ERROR(ValidateExactSize(post.link_id(), kIdSize, Failure::kInvalidLinkId));
      COFFRE_RETURN_IF_ERROR(ValidateLinkSide(post.side()));
      return Check(!post.sealed().empty() && post.sealed().size() <= kMaxLinkMessage,
                   Failure::kInvalidLinkMessage);
    }
    case v1::Request::kFetchLinkMessage:
      COFFRE_RETURN_IF_ERROR(ValidateExactSize(request.fetch_link_message().link_id(), kIdSize,
                                               Failure::kInvalidLinkId));
      return ValidateLinkSide(request.fetch_link_message().side());
    case v1::Request::kUploadPreKeys:
      return ValidateUploadPreKeys(request.upload_pre_keys());
    case v1::Request::kFetchPreKeyBundle:
      COFFRE_RETURN_IF_ERROR(ValidateUserId(request.fetch_pre_key_bundle().user_id()));
      return ValidateDeviceId(request.fetch_pre_key_bundle().device_id());
    case v1::Request::kSendEnvelopes:
      return ValidateSendEnvelopes(request.send_envelopes());
    case v1::Request::kFetchMailbox:
      return Check(
          request.fetch_mailbox().limit() >= 1 && request.fetch_mailbox().limit() <= kMaxFetchLimit,
          Failure::kInvalidFetchLimit);
    case v1::Request::kAckEnvelopes:
      return ValidateAckEnvelopes(request.ack_envelopes());
    case v1::Request::kAppendChainStatement: {
      COFFRE_RETURN_IF_ERROR(
          Check(request.append_chain_statement().has_statement(), Failure::kFieldMissing));
      return StatusOf(ParseChainStatementBody(request.append_chain_statement().statement()));
    }
    case v1::Request::kFetchChain:
      return ValidateTeamId(request.fetch_chain().team_id());
    case v1::Request::kListTeams:
      return Ok();
    case v1::Request::kPutItemVersion: {
      COFFRE_RETURN_IF_ERROR(
          Check(request.put_item_version().has_manifest(), Failure::kFieldMissing));
      return StatusOf(ParseItemManifestBody(request.put_item_version().manifest()));
    }
    case v1::Request::kGetItem:
      COFFRE_RETURN_IF_ERROR(ValidateTeamId(request.get_item().team_id()));
      return ValidateItemId(request.get_item().item_id());
    case v1::Request::kListItems:
      return ValidateListItems(request.list_items());
    case v1::Request::kCreateBlob:
      COFFRE_RETURN_IF_ERROR(ValidateTeamId(request.create_blob().team_id()));
      COFFRE_RETURN_IF_ERROR(ValidateBlobId(request.create_blob().blob_id()));
      return ValidateBlobSize(request.create_blob().size());
    case v1::Request::kBlobStatus:
      COFFRE_RETURN_IF_ERROR(ValidateTeamId(request.blob_status().team_id()));
      return ValidateBlobId(request.blob_status().blob_id());
    case v1::Request::kGetAuditCheckpoint:
      return Ok();
    case v1::Request::kGetAuditEntries: {
      const std::uint32_t limit = request.get_audit_entries().limit();
      return Check(limit >= 1 && limit <= kMaxAuditEntriesPerPage, Failure::kInvalidAuditRange);
    }
    case v1::Request::kGetAuditProof:
      return ValidateAuditProofRequest(request.get_audit_proof());
    case v1::Request::kRecordClientEvent:
      return ValidateExactSize(request.record_client_event().event(), kAuditClientEventSize,
                               Failure::kInvalidAuditRecord);
    case v1::Request::kPlaceLegalHold:
      return Check(!request.place_legal_hold().hold().empty() &&
                       request.place_legal_hold().hold().size() <= kMaxAuditLegalHold,
                   Failure::kInvalidAuditRecord);
    case v1::Request::METHOD_NOT_SET:
      break;
  }
  return Fail(Failure::kMethodMissing);
}

Status ValidateResponse(const v1::Response& response) {
  COFFRE_RETURN_IF_ERROR(
      Check(response.id() != 0 || response.has_error(), Failure::kResponseIdMissing));
  switch (response.result_case()) {
    case v1::Response::kError:
      return ValidateError(response.error());
    case v1::Response::kRegistered:
      COFFRE_RETURN_IF_ERROR(ValidateUserId(response.registered().user_id()));
      return ValidateOrgId(response.registered().org_id());
    case v1::Response::kChallenge:
      COFFRE_RETURN_IF_ERROR(
          ValidateExactSize(response.challenge().nonce(), kNonceSize, Failure::kInvalidNonce));
      return ValidateExactSize(response.challenge().relay_identity(), kRelayIdentitySize,
                               Failure::kInvalidRelayIdentity);
    case v1::Response::kSession:
      return ValidateExactSize(response.session().token(), kTokenSize, Failure::kInvalidToken);
    case v1::Response::kDevices:
      return ValidateDeviceList(response.devices());
    case v1::Response::kLinkOpened:
      return Ok();
    case v1::Response::kLinkMessage:
      return Check(response.link_message().sealed().size() <= kMaxLinkMessage,
                   Failure::kInvalidLinkMessage);
    case v1::Response::kPreKeyBundle:
      return ValidatePreKeyBundleReply(response.pre_key_bundle());
    case v1::Response::kSendResult: {
      const std::size_t count = static_cast<std::size_t>(response.send_result().sequence_size());
      return Check(count >= 1 && count <= kMaxEnvelopesPerSend, Failure::kListTooLong);
    }
    case v1::Response::kEnvelopes:
      return ValidateEnvelopeBatch(response.envelopes());
    case v1::Response::kChainAppended:
      return ValidateExactSize(response.chain_appended().head(), kHashSize, Failure::kInvalidHash);
    case v1::Response::kChain:
      return ValidateChain(response.chain());
    case v1::Response::kTeams: {
      COFFRE_RETURN_IF_ERROR(
          Check(static_cast<std::size_t>(response.teams().teams_size()) <= kMaxTeamsPerList,
                Failure::kListTooLong));
      for (const v1::ChainAdvanced& team : response.teams().teams()) {
        COFFRE_RETURN_IF_ERROR(ValidateChainAdvanced(team));
      }
      return Ok();
    }
    case v1::Response::kItemAccepted:
      return Check(response.item_accepted().version() >= 1, Failure::kInvalidItemVersion);
    case v1::Response::kItem:
      return ValidateItemReply(response.item());
    case v1::Response::kItems: {
      COFFRE_RETURN_IF_ERROR(
          Check(static_cast<std::size_t>(response.items().items_size()) <= kMaxItemsPerList,
                Failure::kListTooLong));
      for (const v1::ItemReply& item : response.items().items()) {
        COFFRE_RETURN_IF_ERROR(ValidateItemReply(item));
      }
      return Ok();
    }
    case v1::Response::kBlob:
      return ValidateBlobInfo(response.blob());
    case v1::Response::kAuditCheckpoint:
      return Check(response.audit_checkpoint().note().size() <= kMaxCheckpointNote &&
                       response.audit_checkpoint().log_key().size() <= kMaxLogKeyLength,
                   Failure::kInvalidAuditRecord);
    case v1::Response::kAuditEntries:
      return ValidateAuditEntries(response.audit_entries());
    case v1::Response::kAuditProof: {
      const auto& hashes = response.audit_proof().hashes();
      COFFRE_RETURN_IF_ERROR(Check(static_cast<std::size_t>(hashes.size()) <= kMaxAuditProofHashes,
                                   Failure::kInvalidAuditRecord));
      for (const std::string& hash : hashes) {
        COFFRE_RETURN_IF_ERROR(ValidateExactSize(hash, kHashSize, Failure::kInvalidHash));
      }
      return Ok();
    }
    case v1::Response::kClientEventRecorded:
    case v1::Response::kLegalHoldPlaced:
      return Ok();
    case v1::Response::kOk:
      return Ok();
    case v1::Response::RESULT_NOT_SET:
      break;
  }
  return Fail(Failure::kResultMissing);
}

Status ValidatePush(const v1::Push& push) {
  switch (push.kind_case()) {
    case v1::Push::kEnvelopes:
      return ValidateEnvelopeBatch(push.envelopes());
    case v1::Push::kPreKeysLow:
    case v1::Push::kGoingAway:
      return Ok();
    case v1::Push::kChainAdvanced:
      return ValidateChainAdvanced(push.chain_advanced());
    case v1::Push::KIND_NOT_SET:
      break;
  }
  return Fail(Failure::kPushKindMissing);
}

// -----------------------------------------------------------------------------------------
// Frames

Result<v1::Frame> ParseFrame(std::span<const std::uint8_t> bytes) {
  // Before protobuf sees a byte: the size bound also keeps the int conversion below exact.
  COFFRE_RETURN_IF_ERROR(Check(bytes.size() <= kMaxFrameSize, Failure::kFrameTooLarge));
  v1::Frame frame;
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  COFFRE_RETURN_IF_ERROR(Check(ParseBounded(view, frame), Failure::kFrameUnparsable));
  COFFRE_RETURN_IF_ERROR(Check(frame.version() == kProtocolVersion, Failure::kUnsupportedVersion));
  COFFRE_RETURN_IF_ERROR(Check(!HasUnknownFields(frame), Failure::kUnknownField));
  switch (frame.kind_case()) {
    case v1::Frame::kRequest:
      COFFRE_RETURN_IF_ERROR(ValidateRequest(frame.request()));
      return frame;
    case v1::Frame::kResponse:
      COFFRE_RETURN_IF_ERROR(ValidateResponse(frame.response()));
      return frame;
    case v1::Frame::kPush:
      COFFRE_RETURN_IF_ERROR(ValidatePush(frame.push()));
      return frame;
    case v1::Frame::KIND_NOT_SET:
      break;
  }
  return Fail(Failure::kFrameKindMissing);
}

Result<v1::Frame> ParseRequestFrame(std::span<const std::uint8_t> bytes) {
  COFFRE_ASSIGN_OR_RETURN(v1::Frame frame, ParseFrame(bytes));
  COFFRE_RETURN_IF_ERROR(Check(frame.has_request(), Failure::kUnexpectedFrameKind));
  return frame;
}

Result<v1::Frame> ParseRelayFrame(std::span<const std::uint8_t> bytes) {
  COFFRE_ASSIGN_OR_RETURN(v1::Frame frame, ParseFrame(bytes));
  COFFRE_RETURN_IF_ERROR(Check(!frame.has_request(), Failure::kUnexpectedFrameKind));
  return frame;
}

std::optional<std::uint64_t> PeekRequestId(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxFrameSize) return std::nullopt;
  v1::Frame frame;
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!ParseBounded(view, frame) || !frame.has_request() || frame.request().id() == 0) {
    return std::nullopt;
  }
  return frame.request().id();
}

}  // namespace coffre::protocol
