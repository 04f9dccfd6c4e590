// Error translation, key encoding and the byte codec shared by the Signal glue.
#include "signal_library.h"

#include <cstring>

namespace coffre::crypto::internal {

Error MessageError(int code) {
  switch (code) {
    case SG_ERR_DUPLICATE_MESSAGE:
      return Error(ErrorCode::kReplay, "signal message already received");
    case SG_ERR_UNTRUSTED_IDENTITY:
      return Error(ErrorCode::kUntrustedIdentity, "signal identity not trusted");
    case SG_ERR_NO_SESSION:
      return Error(ErrorCode::kNotFound, "no signal session with this sender");
    case SG_ERR_NOMEM:
      return Error(ErrorCode::kResourceExhausted, "out of memory");
    // Everything that says "this message is not a valid message for us": altered,
    // forged, malformed, for an unknown or used prekey, from another protocol version.
    case SG_ERR_INVAL:
    case SG_ERR_INVALID_KEY:
    case SG_ERR_INVALID_KEY_ID:
    case SG_ERR_INVALID_MAC:
    case SG_ERR_INVALID_MESSAGE:
    case SG_ERR_INVALID_VERSION:
    case SG_ERR_LEGACY_MESSAGE:
    case SG_ERR_STALE_KEY_EXCHANGE:
    case SG_ERR_VRF_SIG_VERIF_FAILED:
    case SG_ERR_INVALID_PROTO_BUF:
    case SG_ERR_UNKNOWN:
      return Error(ErrorCode::kAuthenticationFailed, kMessageRejected);
    default:
      return Error(ErrorCode::kInternal, "signal library failed");
  }
}

Error OperationError(int code, const char* context) {
  switch (code) {
    case SG_ERR_NOMEM:
      return Error(ErrorCode::kResourceExhausted, "out of memory");
    case SG_ERR_UNTRUSTED_IDENTITY:
      return Error(ErrorCode::kUntrustedIdentity, "signal identity not trusted");
    case SG_ERR_NO_SESSION:
      return Error(ErrorCode::kNotFound, "no signal session");
    case SG_ERR_INVALID_KEY_ID:
      return Error(ErrorCode::kNotFound, "signal key id not found");
    default:
      return Error(ErrorCode::kInternal, context);
  }
}

Result<SignalRef<ec_public_key>> DecodePublicKey(std::span<const std::uint8_t> bytes,
                                                 signal_context* context) {
  // Checked here so the library only ever sees well-sized input.
  if (bytes.size() != kSignalPublicKeySize || bytes[0] != kSignalKeyType) {
    return Fail(ErrorCode::kInvalidArgument, "public key must be 33 bytes of type 0x05");
  }
  SignalRef<ec_public_key> key;
  const int rc = curve_decode_point(Out(key), bytes.data(), bytes.size(), context);
  if (rc != SG_SUCCESS || key == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "public key rejected");
  }
  return key;
}

Result<SignalPublicKey> EncodePublicKey(const ec_public_key* key) {
  SignalBuffer buffer;
  if (key == nullptr || ec_public_key_serialize(Out(buffer), key) != SG_SUCCESS) {
    return Fail(ErrorCode::kInternal, "public key could not be serialized");
  }
  const std::span<const std::uint8_t> bytes = View(buffer.get());
  if (bytes.size() != kSignalPublicKeySize) {
    return Fail(ErrorCode::kInternal, "public key has an unexpected size");
  }
  SignalPublicKey out{};
  std::memcpy(out.data(), bytes.data(), out.size());
  return out;
}

void ByteWriter::U16(std::uint16_t value) {
  out_.push_back(static_cast<std::uint8_t>(value >> 8));
  out_.push_back(static_cast<std::uint8_t>(value));
}

void ByteWriter::U32(std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out_.push_back(static_cast<std::uint8_t>(value >> shift));
  }
}

// Out of line on purpose: inlined into small fixed-size writers, g++ 12 reports a
// false -Wstringop-overflow inside std::vector::insert.
void ByteWriter::Bytes(std::span<const std::uint8_t> bytes) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
}

bool ByteReader::U8(std::uint8_t& value) {
  if (remaining() < 1) return false;
  value = in_[offset_++];
  return true;
}

bool ByteReader::U16(std::uint16_t& value) {
  if (remaining() < 2) return false;
  value = static_cast<std::uint16_t>((in_[offset_] << 8) | in_[offset_ + 1]);
  offset_ += 2;
  return true;
}

bool ByteReader::U32(std::uint32_t& value) {
  if (remaining() < 4) return false;
  value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | in_[offset_ + static_cast<std::size_t>(i)];
  offset_ += 4;
  return true;
}

bool ByteReader::Bytes(std::size_t size, std::span<const std::uint8_t>& bytes) {
  if (remaining() < size) return false;
  bytes = in_.subspan(offset_, size);
  offset_ += size;
  return true;
}

}  // namespace coffre::crypto::internal
