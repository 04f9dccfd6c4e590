#include "coffre/protocol/errors.h"

#include <string_view>

#include "coffre/protocol/limits.h"

namespace coffre::protocol {

std::optional<Failure> FailureOf(const Error& error) {
  // By message text, not pointer: a string literal may have one address per translation
  // unit, and the messages are unique (tests/protocol/errors_test.cc checks it).
  for (const FailureInfo& info : kFailures) {
    if (error.code() == info.code && error.context() == std::string_view(info.message)) {
      return info.failure;
    }
  }
  return std::nullopt;
}

wire::v1::ErrorCode WireCodeOf(const Error& error) {
  if (std::optional<Failure> failure = FailureOf(error)) return InfoOf(*failure).wire_code;
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
      return wire::v1::ERROR_CODE_MALFORMED;
    case ErrorCode::kNotFound:
      return wire::v1::ERROR_CODE_NOT_FOUND;
    case ErrorCode::kAlreadyExists:
      return wire::v1::ERROR_CODE_ALREADY_EXISTS;
    case ErrorCode::kConflict:
      return wire::v1::ERROR_CODE_CONFLICT;
    case ErrorCode::kResourceExhausted:
      return wire::v1::ERROR_CODE_TOO_LARGE;
    case ErrorCode::kUnsupported:
      return wire::v1::ERROR_CODE_UNSUPPORTED_VERSION;
    case ErrorCode::kAuthenticationFailed:
    case ErrorCode::kUntrustedIdentity:
    case ErrorCode::kReplay:
      return wire::v1::ERROR_CODE_AUTHENTICATION_FAILED;
    case ErrorCode::kWrongPassphrase:
    case ErrorCode::kIo:
    case ErrorCode::kDatabase:
    case ErrorCode::kInternal:
      return wire::v1::ERROR_CODE_INTERNAL;
  }
  return wire::v1::ERROR_CODE_INTERNAL;
}

namespace {

// Messages for errors from outside this module: their context may describe internals
// (a database or file failure), so a peer only learns the class of failure.
const char* GenericMessage(wire::v1::ErrorCode code) {
  switch (code) {
    case wire::v1::ERROR_CODE_MALFORMED:
      return "malformed request";
    case wire::v1::ERROR_CODE_UNSUPPORTED_VERSION:
      return "unsupported protocol version";
    case wire::v1::ERROR_CODE_UNAUTHENTICATED:
      return "not authenticated";
    case wire::v1::ERROR_CODE_AUTHENTICATION_FAILED:
      return "authentication failed";
    case wire::v1::ERROR_CODE_FORBIDDEN:
      return "forbidden";
    case wire::v1::ERROR_CODE_NOT_FOUND:
      return "not found";
    case wire::v1::ERROR_CODE_CONFLICT:
      return "conflict";
    case wire::v1::ERROR_CODE_ENROLMENT_INVALID:
      return "enrolment code invalid";
    case wire::v1::ERROR_CODE_ALREADY_EXISTS:
      return "already exists";
    case wire::v1::ERROR_CODE_INVALID_SIGNATURE:
      return "invalid signature";
    case wire::v1::ERROR_CODE_CHAIN_REJECTED:
      return "chain statement rejected";
    case wire::v1::ERROR_CODE_TOO_LARGE:
      return "too large";
    case wire::v1::ERROR_CODE_QUOTA_EXCEEDED:
      return "quota exceeded";
    case wire::v1::ERROR_CODE_RATE_LIMITED:
      return "rate limited";
    case wire::v1::ERROR_CODE_SIZE_MISMATCH:
      return "size mismatch";
    case wire::v1::ERROR_CODE_UNAVAILABLE:
      return "unavailable";
    default:
      return "internal error";
  }
}

}  // namespace

wire::v1::Error ToWireError(const Error& error) {
  wire::v1::Error out;
  std::optional<Failure> failure = FailureOf(error);
  const wire::v1::ErrorCode code = WireCodeOf(error);
  out.set_code(code);
  out.set_message(failure ? InfoOf(*failure).message : GenericMessage(code));
  return out;
}

wire::v1::Frame ErrorFrame(std::uint64_t request_id, const Error& error) {
  wire::v1::Frame frame;
  frame.set_version(kProtocolVersion);
  wire::v1::Response* response = frame.mutable_response();
  response->set_id(request_id);
  *response->mutable_error() = ToWireError(error);
  return frame;
}

}  // namespace coffre::protocol
