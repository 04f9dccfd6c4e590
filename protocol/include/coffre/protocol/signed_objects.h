// Signed objects shared by the relay and the client: device certificates, the
// authentication and revocation messages, and item manifests. Chain statements are in
// team_chain.h.
//
// A signed object travels as the exact serialized body bytes next to a labelled Ed25519
// signature over those bytes (crypto/signature.h), so nothing is re-serialised before it
// is verified. Each purpose has its own label, listed in docs/protocol.md ("Labels").
#ifndef COFFRE_PROTOCOL_SIGNED_OBJECTS_H_
#define COFFRE_PROTOCOL_SIGNED_OBJECTS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/limits.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::protocol {

inline constexpr std::string_view kDeviceCertificateLabel = "coffre/device-certificate/v1";
inline constexpr std::string_view kDeviceRevocationLabel = "coffre/device-revocation/v1";
inline constexpr std::string_view kAuthLabel = "coffre/auth/v1";
inline constexpr std::string_view kChainStatementLabel = "coffre/chain-statement/v1";
inline constexpr std::string_view kItemManifestLabel = "coffre/item-manifest/v1";

// The signing key of device (user_id, device_id), as the caller knows it: the relay from
// its device table, a client from device certificates it has verified against the user's
// pinned identity key. Must fail (any error) for an unknown or revoked device; the
// protocol functions turn every failure into their own "unknown or revoked" failure.
// Revocations are not part of the team chain: TeamChain::Apply takes the lookup per
// statement so that a client can re-verify statements it accepted before a revocation
// with a lookup that still knows the revoked device (docs/protocol.md, "Team chain").
using DeviceKeyLookup =
    std::function<Result<crypto::VerifyKey>(std::string_view user_id, std::uint32_t device_id)>;

// ---------------------------------------------------------------------------------------
// Device certificates

// A device certificate whose signature verified under its user's identity key.
struct VerifiedDevice {
  std::string user_id;
  std::uint32_t device_id = 0;
  crypto::VerifyKey signing_key;
  std::array<std::uint8_t, kSignalKeySize> signal_identity_key{};
  std::uint64_t created_ms = 0;
};

// Serializes `body` and signs it with the user identity key under
// kDeviceCertificateLabel. Fails (ValidateDeviceCertificateBody's failures) if a field is
// invalid, so that no client ever publishes a certificate a relay would refuse.
Result<wire::v1::DeviceCertificate> SignDeviceCertificate(
    const wire::v1::DeviceCertificateBody& body, const crypto::SigningKey& user_key);

// Checks the signature of `certificate` under `user_identity_key`, then parses and
// validates its body. Every signature failure is kBadSignature, whatever the cause (wrong
// key, flipped bit, altered body); a signed body that does not parse or has an invalid
// field fails with that field's failure; kSignedBodyTooLarge for an oversized body.
// The caller checks that the user id is the one it expected.
Result<VerifiedDevice> VerifyDeviceCertificate(const wire::v1::DeviceCertificate& certificate,
                                               const crypto::VerifyKey& user_identity_key);

// ---------------------------------------------------------------------------------------
// Authentication and revocation

// The bytes a device signs (kAuthLabel) to answer a challenge:
//   u16be(len(user_id)) || user_id || u32be(device_id) || nonce (32) || relay_identity (32)
// Fails with kInvalidUserId, kInvalidDeviceId, kInvalidNonce or kInvalidRelayIdentity when
// an input has the wrong format, so both sides build the same unambiguous bytes.
Result<std::vector<std::uint8_t>> AuthChallengeMessage(
    std::string_view user_id, std::uint32_t device_id, std::span<const std::uint8_t> nonce,
    std::span<const std::uint8_t> relay_identity);

// Signs AuthChallengeMessage(...) with the device key under kAuthLabel; fails as
// AuthChallengeMessage does.
Result<std::array<std::uint8_t, kSignatureSize>> SignAuthChallenge(
    const crypto::SigningKey& device_key, std::string_view user_id, std::uint32_t device_id,
    std::span<const std::uint8_t> nonce, std::span<const std::uint8_t> relay_identity);

// Ok() when `signature` is the device's signature of AuthChallengeMessage(...). Fails with
// kBadSignature for any signature failure, or as AuthChallengeMessage does. The relay
// must still check that `nonce` is a challenge it issued, unused and not expired.
Status VerifyAuthChallenge(const crypto::VerifyKey& device_key, std::string_view user_id,
                           std::uint32_t device_id, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> relay_identity,
                           std::span<const std::uint8_t> signature);

// The bytes a user identity key signs (kDeviceRevocationLabel) to revoke a device:
//   u16be(len(user_id)) || user_id || u32be(device_id)
// Fails with kInvalidUserId or kInvalidDeviceId.
Result<std::vector<std::uint8_t>> RevocationMessage(std::string_view user_id,
                                                    std::uint32_t device_id);

// Signs RevocationMessage(user_id, device_id) with the user identity key.
Result<std::array<std::uint8_t, kSignatureSize>> SignRevocation(const crypto::SigningKey& user_key,
                                                                std::string_view user_id,
                                                                std::uint32_t device_id);

// Ok() when `signature` is the user's signature of RevocationMessage(user_id, device_id);
// kBadSignature otherwise, or as RevocationMessage fails.
Status VerifyRevocation(const crypto::VerifyKey& user_identity_key, std::string_view user_id,
                        std::uint32_t device_id, std::span<const std::uint8_t> signature);

// ---------------------------------------------------------------------------------------
// Item manifests

// A manifest whose signature verified under its author device's key.
struct VerifiedManifest {
  wire::v1::ItemManifestBody body;
};

// Serializes `body` and signs it with the author device key under kItemManifestLabel.
// Fails (ValidateItemManifestBody's failures) if a field is invalid.
Result<wire::v1::ItemManifest> SignItemManifest(const wire::v1::ItemManifestBody& body,
                                                const crypto::SigningKey& device_key);

// Parses and validates the body of `manifest` (structure first: the author's key is found
// from the body), asks `lookup` for the author device's key (kAuthorUnknown when it
// fails), and checks the signature (kBadSignature). Whether the author may write in the
// team is the caller's check, against the team chain.
Result<VerifiedManifest> VerifyItemManifest(const wire::v1::ItemManifest& manifest,
                                            const DeviceKeyLookup& lookup);

}  // namespace coffre::protocol

#endif  // COFFRE_PROTOCOL_SIGNED_OBJECTS_H_
