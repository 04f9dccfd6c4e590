#include "coffre/protocol/signed_objects.h"

#include <algorithm>
#include <string>
#include <utility>

#include "coffre/protocol/errors.h"
#include "coffre/protocol/validation.h"
#include "encoding.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;
using internal::AppendBytes;
using internal::AppendU16;
using internal::AppendU32;
using internal::AsBytes;

// Serializes a body that passed its validation. proto3 without maps serializes each field
// once, in field-number order, so the signer's bytes do not depend on the build; the
// receiver never re-serializes anyway (it verifies the bytes it was given).
template <typename Body>
Result<std::string> SerializeBody(const Body& body, Status (*validate)(const Body&)) {
  COFFRE_RETURN_IF_ERROR(validate(body));
  if (HasUnknownFields(body)) return Fail(Failure::kUnknownField);
  std::string bytes;
  if (!body.SerializeToString(&bytes)) {
    return coffre::Fail(ErrorCode::kInternal, "protobuf failed to serialize a signed body");
  }
  return bytes;
}

Status CheckSignature(const crypto::VerifyKey& key, std::string_view label,
                      std::string_view message, std::string_view signature) {
  // One failure for every cause (size, key, message): no oracle on what was wrong.
  if (signature.size() != kSignatureSize ||
      !key.Verify(label, AsBytes(message), AsBytes(signature))) {
    return Fail(Failure::kBadSignature);
  }
  return Ok();
}

Status CheckSignature(const crypto::VerifyKey& key, std::string_view label,
                      std::span<const std::uint8_t> message,
                      std::span<const std::uint8_t> signature) {
  if (signature.size() != kSignatureSize || !key.Verify(label, message, signature)) {
    return Fail(Failure::kBadSignature);
  }
  return Ok();
}

// u16be(len(user_id)) || user_id || u32be(device_id): the prefix of the authentication and
// revocation messages. The user id format bounds its length to 64, so the u16 is exact.
Result<std::vector<std::uint8_t>> DevicePrefix(std::string_view user_id, std::uint32_t device_id) {
  COFFRE_RETURN_IF_ERROR(ValidateUserId(user_id));
  COFFRE_RETURN_IF_ERROR(ValidateDeviceId(device_id));
  std::vector<std::uint8_t> out;
  out.reserve(2 + user_id.size() + 4 + kNonceSize + kRelayIdentitySize);
  AppendU16(out, static_cast<std::uint16_t>(user_id.size()));
  AppendBytes(out, user_id);
  AppendU32(out, device_id);
  return out;
}

}  // namespace

// -----------------------------------------------------------------------------------------
// Device certificates

Result<v1::DeviceCertificate> SignDeviceCertificate(const v1::DeviceCertificateBody& body,
                                                    const crypto::SigningKey& user_key) {
  COFFRE_ASSIGN_OR_RETURN(std::string bytes, SerializeBody(body, &ValidateDeviceCertificateBody));
  const auto signature = user_key.Sign(kDeviceCertificateLabel, AsBytes(bytes));
  v1::DeviceCertificate certificate;
  certificate.set_body(std::move(bytes));
  certificate.set_signature(signature.data(), signature.size());
  return certificate;
}

Result<VerifiedDevice> VerifyDeviceCertificate(const v1::DeviceCertificate& certificate,
                                               const crypto::VerifyKey& user_identity_key) {
  // Sizes first (cheap, and keep oversized input away from the signature code), then the
  // signature, and only then the body: only authenticated bytes are parsed.
  if (certificate.signature().size() != kSignatureSize) {
    return Fail(Failure::kInvalidSignatureSize);
  }
  if (certificate.body().size() > kMaxCertificateBody) return Fail(Failure::kSignedBodyTooLarge);
  COFFRE_RETURN_IF_ERROR(CheckSignature(user_identity_key, kDeviceCertificateLabel,
                                        certificate.body(), certificate.signature()));
  COFFRE_ASSIGN_OR_RETURN(v1::DeviceCertificateBody body, ParseDeviceCertificateBody(certificate));
  COFFRE_ASSIGN_OR_RETURN(crypto::VerifyKey signing_key,
                          crypto::VerifyKey::FromBytes(AsBytes(body.device_signing_key())));
  VerifiedDevice device{.user_id = body.user_id(),
                        .device_id = body.device_id(),
                        .signing_key = signing_key,
                        .signal_identity_key = {},
                        .created_ms = body.created_ms()};
  std::copy_n(body.signal_identity_key().begin(), kSignalKeySize,
              device.signal_identity_key.begin());
  return device;
}

// -----------------------------------------------------------------------------------------
// Authentication and revocation

Result<std::vector<std::uint8_t>> AuthChallengeMessage(
    std::string_view user_id, std::uint32_t device_id, std::span<const std::uint8_t> nonce,
    std::span<const std::uint8_t> relay_identity) {
  // Fixed sizes for the two trailing fields make the concatenation unambiguous.
  if (nonce.size() != kNonceSize) return Fail(Failure::kInvalidNonce);
  if (relay_identity.size() != kRelayIdentitySize) return Fail(Failure::kInvalidRelayIdentity);
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::uint8_t> out, DevicePrefix(user_id, device_id));
  AppendBytes(out, nonce);
  AppendBytes(out, relay_identity);
  return out;
}

Result<std::array<std::uint8_t, kSignatureSize>> SignAuthChallenge(
    const crypto::SigningKey& device_key, std::string_view user_id, std::uint32_t device_id,
    std::span<const std::uint8_t> nonce, std::span<const std::uint8_t> relay_identity) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::uint8_t> message,
                          AuthChallengeMessage(user_id, device_id, nonce, relay_identity));
  return device_key.Sign(kAuthLabel, message);
}

Status VerifyAuthChallenge(const crypto::VerifyKey& device_key, std::string_view user_id,
                           std::uint32_t device_id, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> relay_identity,
                           std::span<const std::uint8_t> signature) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::uint8_t> message,
                          AuthChallengeMessage(user_id, device_id, nonce, relay_identity));
  return CheckSignature(device_key, kAuthLabel, message, signature);
}

Result<std::vector<std::uint8_t>> RevocationMessage(std::string_view user_id,
                                                    std::uint32_t device_id) {
  return DevicePrefix(user_id, device_id);
}

Result<std::array<std::uint8_t, kSignatureSize>> SignRevocation(const crypto::SigningKey& user_key,
                                                                std::string_view user_id,
                                                                std::uint32_t device_id) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::uint8_t> message, RevocationMessage(user_id, device_id));
  return user_key.Sign(kDeviceRevocationLabel, message);
}

Status VerifyRevocation(const crypto::VerifyKey& user_identity_key, std::string_view user_id,
                        std::uint32_t device_id, std::span<const std::uint8_t> signature) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<std::uint8_t> message, RevocationMessage(user_id, device_id));
  return CheckSignature(user_identity_key, kDeviceRevocationLabel, message, signature);
}

// -----------------------------------------------------------------------------------------
// Item manifests

Result<v1::ItemManifest> SignItemManifest(const v1::ItemManifestBody& body,
                                          const crypto::SigningKey& device_key) {
  COFFRE_ASSIGN_OR_RETURN(std::string bytes, SerializeBody(body, &ValidateItemManifestBody));
  const auto signature = device_key.Sign(kItemManifestLabel, AsBytes(bytes));
  v1::ItemManifest manifest;
  manifest.set_body(std::move(bytes));
  manifest.set_signature(signature.data(), signature.size());
  return manifest;
}

Result<VerifiedManifest> VerifyItemManifest(const v1::ItemManifest& manifest,
                                            const DeviceKeyLookup& lookup) {
  // The body names its author, so it is parsed (size-bounded, fully validated) before the
  // signature can be checked.
  COFFRE_ASSIGN_OR_RETURN(v1::ItemManifestBody body, ParseItemManifestBody(manifest));
  if (!lookup) return Fail(Failure::kAuthorUnknown);
  Result<crypto::VerifyKey> key = lookup(body.author_user_id(), body.author_device_id());
  if (!key) return Fail(Failure::kAuthorUnknown);
  COFFRE_RETURN_IF_ERROR(
      CheckSignature(*key, kItemManifestLabel, manifest.body(), manifest.signature()));
  return VerifiedManifest{.body = std::move(body)};
}

}  // namespace coffre::protocol
