// The failures of the protocol module, each with its coffre::ErrorCode, the stable wire
// ErrorCode a relay answers with, and a fixed English message without user data.
//
// Every function of this module fails with Error(code, message) taken from this table, so
// a caller can (a) test which check failed with FailureOf(), (b) turn any failure into the
// wire Error to send with ToWireError(). The messages are part of the table, not the
// protocol: peers act on the wire code only.
#ifndef COFFRE_PROTOCOL_ERRORS_H_
#define COFFRE_PROTOCOL_ERRORS_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "coffre/base/result.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::protocol {

enum class Failure : std::uint16_t {
  // Framing.
  kFrameTooLarge,
  kFrameUnparsable,
  kUnsupportedVersion,
  kFrameKindMissing,
  kUnexpectedFrameKind,
  kUnknownField,
  kRequestIdMissing,
  kMethodMissing,
  kResultMissing,
  kResponseIdMissing,
  kPushKindMissing,
  kFieldMissing,
  // Identifiers and fixed-size fields.
  kInvalidUserId,
  kInvalidOrgId,
  kInvalidEnrolmentCode,
  kInvalidDeviceId,
  kInvalidTeamId,
  kInvalidItemId,
  kInvalidBlobId,
  kInvalidClientId,
  kInvalidEd25519Key,
  kInvalidSignalKey,
  kInvalidSignatureSize,
  kInvalidHash,
  kInvalidNonce,
  kInvalidRelayIdentity,
  kInvalidToken,
  // Prekeys.
  kInvalidRegistrationId,
  kInvalidPreKeyId,
  kDuplicatePreKeyId,
  kTooManyPreKeys,
  kEmptyPreKeyUpload,
  // Mailboxes.
  kNoEnvelopes,
  kTooManyEnvelopes,
  kInvalidEnvelopeType,
  kEmptyCiphertext,
  kCiphertextTooLarge,
  kInvalidFetchLimit,
  kNoAcks,
  kTooManyAcks,
  // Device links.
  kInvalidLinkId,
  kInvalidLinkSide,
  kInvalidLinkMessage,
  // Audit log.
  kInvalidAuditRange,
  kInvalidAuditProofRequest,
  kInvalidAuditRecord,
  // Lists in replies.
  kListTooLong,
  kInvalidErrorCode,
  kInvalidErrorMessage,
  // Items and blobs.
  kInvalidListLimit,
  kEmptyBlob,
  kBlobTooLarge,
  kBlobProgressBeyondSize,
  kInvalidItemVersion,
  kInvalidItemKind,
  kInvalidBlobFields,
  kInvalidKeyGeneration,
  kInvalidWrappedKey,
  kMetadataTooLarge,
  // Signed objects.
  kSignedBodyTooLarge,
  kSignedBodyUnparsable,
  kBadSignature,
  kCertificateUserMismatch,
  kAuthorUnknown,
  // Chain statement bodies.
  kStatementChangeMissing,
  kInvalidRole,
  kInvalidCommitment,
  kInvalidAuditorKey,
  kInvalidEncryptedName,
  kInvalidPreviousHash,
  // Chain rules.
  kChainEmpty,
  kChainFirstNotCreate,
  kChainCreateAfterGenesis,
  kChainTeamMismatch,
  kChainStaleSequence,
  kChainSequenceGap,
  kChainPreviousHashMismatch,
  kChainSignerUnknown,
  kChainSignerNotAdmin,
  kChainMemberExists,
  kChainNotMember,
  kChainLastAdmin,
  kChainRoleUnchanged,
  kChainGenerationNotNext,
  // Remembered head (client).
  kHeadRollback,
  kHeadFork,
  kCount,  // not a failure: the size of the table
};

struct FailureInfo {
  Failure failure;
  ErrorCode code;
  wire::v1::ErrorCode wire_code;
  const char* message;
};

namespace internal {
using enum Failure;
using enum ErrorCode;
inline constexpr wire::v1::ErrorCode kMalformed = wire::v1::ERROR_CODE_MALFORMED;
inline constexpr wire::v1::ErrorCode kTooLarge = wire::v1::ERROR_CODE_TOO_LARGE;
inline constexpr wire::v1::ErrorCode kChainRejected = wire::v1::ERROR_CODE_CHAIN_REJECTED;
inline constexpr wire::v1::ErrorCode kWireConflict = wire::v1::ERROR_CODE_CONFLICT;
}  // namespace internal

// Indexed by Failure; the static_assert below keeps the order honest.
inline constexpr FailureInfo kFailures[] = {
    {internal::kFrameTooLarge, internal::kResourceExhausted, internal::kTooLarge,
     "frame is larger than the frame size limit"},
    {internal::kFrameUnparsable, internal::kInvalidArgument, internal::kMalformed,
     "frame is not a valid protobuf message"},
    {internal::kUnsupportedVersion, internal::kUnsupported,
     wire::v1::ERROR_CODE_UNSUPPORTED_VERSION, "unsupported protocol version"},
    {internal::kFrameKindMissing, internal::kInvalidArgument, internal::kMalformed,
     "frame carries no request, response or push"},
    {internal::kUnexpectedFrameKind, internal::kInvalidArgument, internal::kMalformed,
     "frame kind is not accepted from this peer"},
    {internal::kUnknownField, internal::kInvalidArgument, internal::kMalformed,
     "message carries fields unknown to protocol version 1"},
    {internal::kRequestIdMissing, internal::kInvalidArgument, internal::kMalformed,
     "request id must not be zero"},
    {internal::kMethodMissing, internal::kInvalidArgument, internal::kMalformed,
     "request carries no method"},
    {internal::kResultMissing, internal::kInvalidArgument, internal::kMalformed,
     "response carries no result"},
    {internal::kResponseIdMissing, internal::kInvalidArgument, internal::kMalformed,
     "response id may be zero only on an error"},
    {internal::kPushKindMissing, internal::kInvalidArgument, internal::kMalformed,
     "push carries no content"},
    {internal::kFieldMissing, internal::kInvalidArgument, internal::kMalformed,
     "a required field is absent"},
    {internal::kInvalidUserId, internal::kInvalidArgument, internal::kMalformed,
     "user id is not 1..64 characters of [a-z0-9._-]"},
    {internal::kInvalidOrgId, internal::kInvalidArgument, internal::kMalformed,
     "organisation id is not 1..64 characters of [a-z0-9._-]"},
    {internal::kInvalidEnrolmentCode, internal::kInvalidArgument, internal::kMalformed,
     "enrolment code is not 1..64 characters of [A-Za-z0-9_-]"},
    {internal::kInvalidDeviceId, internal::kInvalidArgument, internal::kMalformed,
     "device id is not in 1..2^31-1"},
    {internal::kInvalidTeamId, internal::kInvalidArgument, internal::kMalformed,
     "team id is not 16 bytes"},
    {internal::kInvalidItemId, internal::kInvalidArgument, internal::kMalformed,
     "item id is not 16 bytes"},
    {internal::kInvalidBlobId, internal::kInvalidArgument, internal::kMalformed,
     "blob id is not 16 bytes"},
    {internal::kInvalidClientId, internal::kInvalidArgument, internal::kMalformed,
     "envelope client id is not 16 bytes"},
    {internal::kInvalidEd25519Key, internal::kInvalidArgument, internal::kMalformed,
     "public key is not a valid Ed25519 key"},
    {internal::kInvalidSignalKey, internal::kInvalidArgument, internal::kMalformed,
     "libsignal public key is not 33 bytes starting with 0x05"},
    {internal::kInvalidSignatureSize, internal::kInvalidArgument, internal::kMalformed,
     "signature is not 64 bytes"},
    {internal::kInvalidHash, internal::kInvalidArgument, internal::kMalformed,
     "hash is not 32 bytes"},
    {internal::kInvalidNonce, internal::kInvalidArgument, internal::kMalformed,
     "challenge nonce is not 32 bytes"},
    {internal::kInvalidRelayIdentity, internal::kInvalidArgument, internal::kMalformed,
     "relay identity is not 32 bytes"},
    {internal::kInvalidToken, internal::kInvalidArgument, internal::kMalformed,
     "session token is not 32 bytes"},
    {internal::kInvalidRegistrationId, internal::kInvalidArgument, internal::kMalformed,
     "registration id is not in 1..2^31-1"},
    {internal::kInvalidPreKeyId, internal::kInvalidArgument, internal::kMalformed,
     "prekey id is out of range"},
    {internal::kDuplicatePreKeyId, internal::kInvalidArgument, internal::kMalformed,
     "one-time prekey id appears twice"},
    {internal::kTooManyPreKeys, internal::kResourceExhausted, internal::kTooLarge,
     "more than 200 one-time prekeys in one upload"},
    {internal::kEmptyPreKeyUpload, internal::kInvalidArgument, internal::kMalformed,
     "prekey upload carries no prekey"},
    {internal::kNoEnvelopes, internal::kInvalidArgument, internal::kMalformed,
     "send carries no envelope"},
    {internal::kTooManyEnvelopes, internal::kResourceExhausted, internal::kTooLarge,
     "more than 100 envelopes in one send"},
    {internal::kInvalidEnvelopeType, internal::kInvalidArgument, internal::kMalformed,
     "envelope type must not be zero"},
    {internal::kEmptyCiphertext, internal::kInvalidArgument, internal::kMalformed,
     "envelope ciphertext is empty"},
    {internal::kCiphertextTooLarge, internal::kResourceExhausted, internal::kTooLarge,
     "envelope ciphertext is larger than 256 KiB"},
    {internal::kInvalidFetchLimit, internal::kInvalidArgument, internal::kMalformed,
     "fetch limit is not in 1..500"},
    {internal::kNoAcks, internal::kInvalidArgument, internal::kMalformed,
     "acknowledgement carries no sequence"},
    {internal::kTooManyAcks, internal::kResourceExhausted, internal::kTooLarge,
     "more than 500 sequences in one acknowledgement"},
    {internal::kInvalidLinkId, internal::kInvalidArgument, internal::kMalformed,
     "link id is not 16 bytes"},
    {internal::kInvalidLinkSide, internal::kInvalidArgument, internal::kMalformed,
     "link side is not request or reply"},
    {internal::kInvalidLinkMessage, internal::kResourceExhausted, internal::kTooLarge,
     "link message is empty or larger than 256 KiB"},
    {internal::kInvalidAuditRange, internal::kInvalidArgument, internal::kMalformed,
     "audit entry page limit is not 1..500"},
    {internal::kInvalidAuditProofRequest, internal::kInvalidArgument, internal::kMalformed,
     "audit proof request names no proof, or sizes out of order"},
    {internal::kInvalidAuditRecord, internal::kInvalidArgument, internal::kMalformed,
     "audit checkpoint, entry, details or proof is over its size limit"},
    {internal::kListTooLong, internal::kResourceExhausted, internal::kTooLarge,
     "list is longer than its limit"},
    {internal::kInvalidErrorCode, internal::kInvalidArgument, internal::kMalformed,
     "error code is not a known error code"},
    {internal::kInvalidErrorMessage, internal::kInvalidArgument, internal::kMalformed,
     "error message is not at most 256 printable ASCII characters"},
    {internal::kInvalidListLimit, internal::kInvalidArgument, internal::kMalformed,
     "list limit is not in 0..500"},
    {internal::kEmptyBlob, internal::kInvalidArgument, internal::kMalformed,
     "blob size must not be zero"},
    {internal::kBlobTooLarge, internal::kResourceExhausted, internal::kTooLarge,
     "blob size is larger than 4 GiB"},
    {internal::kBlobProgressBeyondSize, internal::kInvalidArgument, internal::kMalformed,
     "blob bytes received exceed its size"},
    {internal::kInvalidItemVersion, internal::kInvalidArgument, internal::kMalformed,
     "item version must be at least 1 and above its parent version"},
    {internal::kInvalidItemKind, internal::kInvalidArgument, internal::kMalformed,
     "item kind is not a known kind or record:<type> within 64 bytes"},
    {internal::kInvalidBlobFields, internal::kInvalidArgument, internal::kMalformed,
     "blob id, size and hash must be all set or all empty"},
    {internal::kInvalidKeyGeneration, internal::kInvalidArgument, internal::kMalformed,
     "key generation must be at least 1"},
    {internal::kInvalidWrappedKey, internal::kInvalidArgument, internal::kMalformed,
     "wrapped key is missing for a blob or longer than 256 bytes"},
    {internal::kMetadataTooLarge, internal::kResourceExhausted, internal::kTooLarge,
     "encrypted metadata is larger than 64 KiB"},
    {internal::kSignedBodyTooLarge, internal::kResourceExhausted, internal::kTooLarge,
     "signed body is larger than its limit"},
    {internal::kSignedBodyUnparsable, internal::kInvalidArgument, internal::kMalformed,
     "signed body is not a valid protobuf message"},
    {internal::kBadSignature, internal::kAuthenticationFailed,
     wire::v1::ERROR_CODE_INVALID_SIGNATURE, "signature does not verify"},
    {internal::kCertificateUserMismatch, internal::kInvalidArgument, internal::kMalformed,
     "device certificate names another user"},
    {internal::kAuthorUnknown, internal::kUntrustedIdentity,
     wire::v1::ERROR_CODE_AUTHENTICATION_FAILED, "author device is unknown or revoked"},
    {internal::kStatementChangeMissing, internal::kInvalidArgument, internal::kMalformed,
     "chain statement carries no change"},
    {internal::kInvalidRole, internal::kInvalidArgument, internal::kMalformed,
     "role is not admin, member, guest or auditor"},
    {internal::kInvalidCommitment, internal::kInvalidArgument, internal::kMalformed,
     "key commitment is not 32 bytes"},
    {internal::kInvalidAuditorKey, internal::kInvalidArgument, internal::kMalformed,
     "auditor key is not a valid X25519 public key"},
    {internal::kInvalidEncryptedName, internal::kInvalidArgument, internal::kMalformed,
     "encrypted team name is not 1..1024 bytes"},
    {internal::kInvalidPreviousHash, internal::kInvalidArgument, internal::kMalformed,
     "previous hash must be empty at sequence 0 and 32 bytes after"},
    {internal::kChainEmpty, internal::kInvalidArgument, internal::kChainRejected,
     "chain has no statement"},
    {internal::kChainFirstNotCreate, internal::kInvalidArgument, internal::kChainRejected,
     "sequence 0 must create the team"},
    {internal::kChainCreateAfterGenesis, internal::kInvalidArgument, internal::kChainRejected,
     "a team is created only at sequence 0"},
    {internal::kChainTeamMismatch, internal::kInvalidArgument, internal::kChainRejected,
     "statement belongs to another team"},
    {internal::kChainStaleSequence, internal::kConflict, internal::kWireConflict,
     "statement sequence is at or before the head: stale head or fork"},
    {internal::kChainSequenceGap, internal::kInvalidArgument, internal::kChainRejected,
     "statement sequence skips past the next one"},
    {internal::kChainPreviousHashMismatch, internal::kConflict, internal::kWireConflict,
     "previous hash is not the head hash: fork"},
    {internal::kChainSignerUnknown, internal::kUntrustedIdentity, internal::kChainRejected,
     "signer device is unknown or revoked"},
    {internal::kChainSignerNotAdmin, internal::kInvalidArgument, internal::kChainRejected,
     "signer is not an admin of the team"},
    {internal::kChainMemberExists, internal::kInvalidArgument, internal::kChainRejected,
     "user is already a member of the team"},
    {internal::kChainNotMember, internal::kInvalidArgument, internal::kChainRejected,
     "user is not a member of the team"},
    {internal::kChainLastAdmin, internal::kInvalidArgument, internal::kChainRejected,
     "the last admin cannot be removed or demoted"},
    {internal::kChainRoleUnchanged, internal::kInvalidArgument, internal::kChainRejected,
     "member already has this role"},
    {internal::kChainGenerationNotNext, internal::kInvalidArgument, internal::kChainRejected,
     "key generation is not the current one plus one"},
    {internal::kHeadRollback, internal::kReplay, internal::kChainRejected,
     "chain ends before the remembered head: rollback"},
    {internal::kHeadFork, internal::kConflict, internal::kChainRejected,
     "chain differs from the remembered head: fork"},
};

namespace internal {
constexpr bool FailureTableIsIndexed() {
  std::size_t index = 0;
  for (const FailureInfo& info : kFailures) {
    if (static_cast<std::size_t>(info.failure) != index++) return false;
  }
  return index == static_cast<std::size_t>(Failure::kCount);
}
}  // namespace internal
static_assert(internal::FailureTableIsIndexed(), "kFailures must list every Failure in order");

// The table entry of `failure`. `failure` must not be kCount.
constexpr const FailureInfo& InfoOf(Failure failure) {
  return kFailures[static_cast<std::size_t>(failure)];
}

// The error value of `failure`, for `return Fail(Failure::kX);` in any Result function.
constexpr Unexpected Fail(Failure failure) {
  return coffre::Fail(InfoOf(failure).code, InfoOf(failure).message);
}

// Which protocol check produced `error`, found by its message; nullopt for an error that
// did not come from this module (storage, crypto).
std::optional<Failure> FailureOf(const Error& error);

// True when `status` failed with exactly `failure`. For tests and for callers that branch
// on one specific check (a relay answering CONFLICT with the current head).
template <typename T>
bool FailedWith(const Result<T>& result, Failure failure) {
  return !result.has_value() && FailureOf(result.error()) == failure;
}

// The wire code for `error`: the table's for a protocol failure; otherwise by its
// coffre::ErrorCode (invalid argument -> MALFORMED, not found -> NOT_FOUND, already
// exists -> ALREADY_EXISTS, conflict -> CONFLICT, resource exhausted -> TOO_LARGE,
// unsupported -> UNSUPPORTED_VERSION, authentication failed -> AUTHENTICATION_FAILED,
// everything else -> INTERNAL).
wire::v1::ErrorCode WireCodeOf(const Error& error);

// The wire Error to send for `error`: its wire code and, for a protocol failure, the
// table's message. Errors from outside this module carry a generic message for their code
// so that no internal context reaches a peer.
wire::v1::Error ToWireError(const Error& error);

// A Frame (version 1) holding a Response with `request_id` and ToWireError(error). Use 0
// when the request's id is unknown (see PeekRequestId in validation.h).
wire::v1::Frame ErrorFrame(std::uint64_t request_id, const Error& error);

}  // namespace coffre::protocol

#endif  // COFFRE_PROTOCOL_ERRORS_H_
