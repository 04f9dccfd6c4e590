// Validation of everything that arrives over the wire, before any other code looks at it.
//
// ParseFrame is the one entry point for received bytes: size first (before protobuf sees
// them), then protobuf parsing, the version, and a full check of every field of the
// request, response or push it holds. A frame that passes can be used without further
// format checks: ids have their size, user ids their alphabet, keys their size (Ed25519
// keys are valid points), counts are within limits, enums are known and oneofs are set.
//
// What validation does NOT do: verify signatures (that needs keys the caller holds: see
// signed_objects.h and team_chain.h), or check anything against state (authentication,
// membership, compare-and-swap). Signed bodies nested in a frame (certificates, chain
// statements, manifests) are parsed and their fields checked here too, so that a relay
// never stores a signed object it could not later parse.
//
// Unknown fields are refused (Failure::kUnknownField), in frames and in signed bodies.
// Protocol version 1 has no optional extensions: a field this code does not know means a
// peer speaking another version, which must say so in Frame.version. Refusing also keeps
// a relay from storing, and a signature from covering, bytes nobody has checked.
#ifndef COFFRE_PROTOCOL_VALIDATION_H_
#define COFFRE_PROTOCOL_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/protocol/errors.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::protocol {

// Parses and validates one received frame of any kind (request, response or push).
// Returns the frame on success. Fails, with the Failure named, when the input is larger
// than kMaxFrameSize (kFrameTooLarge, checked before parsing), is not a Frame
// (kFrameUnparsable), carries unknown fields (kUnknownField), has a version other than
// kProtocolVersion (kUnsupportedVersion), carries nothing (kFrameKindMissing), or when
// ValidateRequest / ValidateResponse / ValidatePush refuses its content. Never throws,
// never aborts on any input.
Result<wire::v1::Frame> ParseFrame(std::span<const std::uint8_t> bytes);

// ParseFrame, then refuses any frame that is not a request (kUnexpectedFrameKind). What a
// relay calls on every WebSocket message.
Result<wire::v1::Frame> ParseRequestFrame(std::span<const std::uint8_t> bytes);

// ParseFrame, then refuses a request frame (kUnexpectedFrameKind). What a client calls on
// every WebSocket message from the relay.
Result<wire::v1::Frame> ParseRelayFrame(std::span<const std::uint8_t> bytes);

// The request id of `bytes` if they parse as a Frame holding a Request with a non-zero id,
// whether or not the rest is valid; nullopt otherwise. Lets a relay echo the id in the
// error response to a request that failed validation. Bytes over kMaxFrameSize give
// nullopt without being parsed.
std::optional<std::uint64_t> PeekRequestId(std::span<const std::uint8_t> bytes);

// Checks every field of a request (id non-zero, method set, each field of the method).
// Ok() or the first failure found. Does not look for unknown fields (ParseFrame does, on
// the whole frame at once); use HasUnknownFields for a request built some other way.
Status ValidateRequest(const wire::v1::Request& request);

// Checks every field of a response (id non-zero unless it is an error, result set, each
// field of the result). Ok() or the first failure found.
Status ValidateResponse(const wire::v1::Response& response);

// Checks every field of a push. Ok() or the first failure found.
Status ValidatePush(const wire::v1::Push& push);

// True when `message` or any message nested in it holds fields unknown to this schema.
bool HasUnknownFields(const google::protobuf::Message& message);

// Field checks, exposed for callers that take these values from elsewhere (command line,
// configuration, HTTP paths). Each returns Ok() or the Failure named.
//
// 1..kMaxUserIdLength bytes of [a-z0-9._-] (kInvalidUserId).
Status ValidateUserId(std::string_view user_id);
// 1..kMaxOrgIdLength bytes of [a-z0-9._-] (kInvalidOrgId).
Status ValidateOrgId(std::string_view org_id);
// 1..kMaxEnrolmentCodeLength bytes of [A-Za-z0-9_-] (kInvalidEnrolmentCode).
Status ValidateEnrolmentCode(std::string_view code);
// 1..kMaxDeviceId (kInvalidDeviceId).
Status ValidateDeviceId(std::uint32_t device_id);
// Exactly kIdSize bytes (kInvalidTeamId, kInvalidItemId, kInvalidBlobId).
Status ValidateTeamId(std::string_view team_id);
Status ValidateItemId(std::string_view item_id);
Status ValidateBlobId(std::string_view blob_id);
// kEd25519KeySize bytes that crypto::VerifyKey accepts (kInvalidEd25519Key).
Status ValidateEd25519Key(std::string_view key);
// kSignalKeySize bytes starting with kSignalKeyType (kInvalidSignalKey).
Status ValidateSignalKey(std::string_view key);
// Known and not ROLE_UNSPECIFIED (kInvalidRole).
Status ValidateRole(int role);

// Structure of the signed objects: signature size, body size limit, body parses without
// unknown fields, every body field valid. No signature is checked. Used by ValidateRequest
// and by the Verify functions of signed_objects.h / team_chain.h, which return the body.
Result<wire::v1::DeviceCertificateBody> ParseDeviceCertificateBody(
    const wire::v1::DeviceCertificate& certificate);
Result<wire::v1::ChainStatementBody> ParseChainStatementBody(
    const wire::v1::ChainStatement& statement);
Result<wire::v1::ItemManifestBody> ParseItemManifestBody(const wire::v1::ItemManifest& manifest);

// Field checks of a body built locally, before it is signed. Ok() or the first failure.
Status ValidateDeviceCertificateBody(const wire::v1::DeviceCertificateBody& body);
Status ValidateChainStatementBody(const wire::v1::ChainStatementBody& body);
Status ValidateItemManifestBody(const wire::v1::ItemManifestBody& body);

}  // namespace coffre::protocol

#endif  // COFFRE_PROTOCOL_VALIDATION_H_
