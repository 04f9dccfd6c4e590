// Every size, count and range limit of the wire protocol, in one place (STYLE.md habit 7).
//
// The relay enforces these on everything it receives and the client on everything the
// relay sends; docs/protocol.md ("Wire protocol", "Limits") lists them with their reasons.
// Changing one is a protocol change: a peer with a smaller limit refuses what a peer with
// a larger one sends.
#ifndef COFFRE_PROTOCOL_LIMITS_H_
#define COFFRE_PROTOCOL_LIMITS_H_

#include <cstddef>
#include <cstdint>

namespace coffre::protocol {

// Frame.version of this protocol.
inline constexpr std::uint32_t kProtocolVersion = 1;

// One WebSocket binary message. Every other limit below is also bounded by this one: a
// sender splits batches and pages so that each frame fits.
inline constexpr std::size_t kMaxFrameSize = std::size_t{1} << 20;  // 1 MiB

// Fixed sizes.
inline constexpr std::size_t kIdSize = 16;             // team, item, blob, client ids
inline constexpr std::size_t kHashSize = 32;           // BLAKE2b-256 / SHA-256 outputs
inline constexpr std::size_t kNonceSize = 32;          // authentication challenge nonce
inline constexpr std::size_t kRelayIdentitySize = 32;  // SHA-256 of the relay certificate
inline constexpr std::size_t kTokenSize = 32;          // session token
inline constexpr std::size_t kSignatureSize = 64;      // Ed25519 and libsignal XEdDSA
inline constexpr std::size_t kEd25519KeySize = 32;     // user identity, device signing keys
inline constexpr std::size_t kX25519KeySize = 32;      // auditor key
inline constexpr std::size_t kSignalKeySize = 33;      // libsignal public key: type || 32
inline constexpr std::uint8_t kSignalKeyType = 0x05;   // libsignal DJB_TYPE (Curve25519)

// Identifiers and their ranges.
inline constexpr std::size_t kMaxUserIdLength = 64;              // [a-z0-9._-]
inline constexpr std::size_t kMaxOrgIdLength = 64;               // [a-z0-9._-]
inline constexpr std::size_t kMaxEnrolmentCodeLength = 64;       // [A-Za-z0-9_-]
inline constexpr std::uint32_t kMaxDeviceId = 0x7FFFFFFF;        // device ids are 1..2^31-1
inline constexpr std::uint32_t kMaxRegistrationId = 0x7FFFFFFF;  // 1..2^31-1
inline constexpr std::uint32_t kMaxSignedPreKeyId = 0xFFFFFF;    // 0..2^24-1
inline constexpr std::uint32_t kMaxOneTimePreKeyId = 0xFFFFFE;   // 1..2^24-2

// Accounts and prekeys.
inline constexpr std::size_t kMaxDevicesPerUser = 100;  // entries of one DeviceList

// Device linking: one sealed message per side of a link (a handover carries the user key,
// the current key of each team and the pinned identities of peers).
inline constexpr std::size_t kMaxLinkMessage = std::size_t{256} << 10;  // 256 KiB
inline constexpr std::uint64_t kLinkLifetimeMs = 10 * 60 * 1000;       // 10 minutes
inline constexpr std::size_t kMaxOneTimePreKeysPerUpload = 200;

// Mailboxes.
inline constexpr std::size_t kMaxEnvelopeCiphertext = std::size_t{256} << 10;  // 256 KiB
inline constexpr std::size_t kMaxEnvelopesPerSend = 100;
inline constexpr std::uint32_t kMaxFetchLimit = 500;  // envelopes per FetchMailbox / batch
inline constexpr std::size_t kMaxAckBatch = 500;

// Team chains.
inline constexpr std::size_t kMaxChainFetch = 500;          // statements per Chain reply
inline constexpr std::size_t kMaxEncryptedTeamName = 1024;  // Rename.encrypted_name
inline constexpr std::size_t kMaxTeamsPerList = 1000;       // entries of one TeamList

// Items and blobs.
inline constexpr std::size_t kMaxItemMetadata = std::size_t{64} << 10;  // 64 KiB
inline constexpr std::size_t kMaxItemKindLength = 64;
inline constexpr std::size_t kMaxWrappedKey = 256;      // an AEAD-sealed 32-byte key is 72 bytes
inline constexpr std::uint32_t kMaxItemsPerList = 500;  // ListItems.limit and ItemList size
inline constexpr std::size_t kMaxBlobChunk = std::size_t{4} << 20;     // one HTTP PUT body
inline constexpr std::uint64_t kMaxBlobSize = std::uint64_t{4} << 30;  // 4 GiB

// Audit log.
inline constexpr std::size_t kMaxCheckpointNote = std::size_t{16} << 10;  // 16 KiB
inline constexpr std::size_t kMaxAuditEntry = 4096;         // one entry's encoding
inline constexpr std::size_t kAuditClientEventSize = 191;   // audit::kClientEventSize
inline constexpr std::size_t kMaxAuditLegalHold = 2048;     // audit::kMaxLegalHoldSize
inline constexpr std::size_t kMaxSealedDetails = 8192;      // one entry's sealed details
inline constexpr std::uint32_t kMaxAuditEntriesPerPage = 500;
// One month key sealed to an auditor key: 107 bytes today (sealed box of 32 bytes under
// the label coffre/audit-month-key/v1); at most one per entry of a page.
inline constexpr std::size_t kMaxSealedMonthKey = 256;
inline constexpr std::uint64_t kMaxAuditMonthKeyId = (std::uint64_t{1} << 63) - 1;
inline constexpr std::size_t kMaxAuditProofHashes = 64;     // trees of up to 2^63 entries
inline constexpr std::size_t kMaxLogKeyLength = 256;        // verifier key string

// Signed bodies, checked before they are parsed. Each is well above the largest valid
// body (every field at its own limit) and far below the frame size.
inline constexpr std::size_t kMaxCertificateBody = 512;
inline constexpr std::size_t kMaxChainStatementBody = 2048;
inline constexpr std::size_t kMaxManifestBody = kMaxItemMetadata + 2048;

// Error.message: short English, no user data.
inline constexpr std::size_t kMaxErrorMessage = 256;

}  // namespace coffre::protocol

#endif  // COFFRE_PROTOCOL_LIMITS_H_
