// Device linking: how an existing device hands a user's identity to a new device through a
// relay that must learn nothing and be unable to slip in a device of its own
// (docs/protocol.md "Device linking", decision 0014).
//
// The existing device shows a short code; the user types it on the new device. Both derive,
// with Argon2id over the code salted by the user id, the link id (the relay's slot) and two
// AEAD keys. The new device posts its certificate body and an ephemeral X25519 key under
// the request key; the existing device opens it, signs the certificate with the user key
// and posts the handover (user key, team keys, pinned peers) sealed to the ephemeral key and
// then under the reply key. The relay sees the link id and ciphertext only. Guessing the
// code offline costs one Argon2id per guess over 60 bits, far beyond a link's ten-minute
// life; online, the request side is written once, so a wrong guess spoils the link and
// the existing device says so.
//
// Pure functions; the flows that use the relay are Client::LinkDevice and Client::InitLinked.
#ifndef COFFRE_CLIENT_DEVICE_LINK_H_
#define COFFRE_CLIENT_DEVICE_LINK_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/x25519.h"
#include "coffre/protocol/team_chain.h"

namespace coffre::client {

// 12 symbols of Crockford's base32 (0-9, A-Z without I, L, O, U): 60 bits, shown as
// XXXX-XXXX-XXXX.
inline constexpr std::size_t kLinkCodeSymbols = 12;
// Argon2id cost per guess of the code; both devices pay it once per link.
inline constexpr crypto::Argon2Params kLinkArgon2Params{64 * 1024, 3, 1};

// A fresh code, as shown: "XXXX-XXXX-XXXX".
crypto::SecretBytes GenerateLinkCode();
// The code as typed: case, spaces and dashes do not matter, and O, I and L read as 0, 1, 1
// (Crockford's rule). kInvalidArgument for anything else or the wrong length. Returns the
// 12 canonical symbols.
Result<crypto::SecretBytes> NormalizeLinkCode(std::span<const std::uint8_t> typed);

struct LinkKeys {
  std::array<std::uint8_t, 16> link_id{};
  crypto::SecretBytes request_key;  // 32 bytes
  crypto::SecretBytes reply_key;    // 32 bytes
};

// Derives the link id and keys from a normalized code and the user id.
Result<LinkKeys> DeriveLinkKeys(const crypto::SecretBytes& normalized_code,
                                std::string_view user_id,
                                const crypto::Argon2Params& params = kLinkArgon2Params);

// The new device's request: its certificate body (serialized DeviceCertificateBody, not
// yet signed) and the ephemeral key the handover is sealed to.
struct LinkRequestContent {
  std::string certificate_body;
  std::array<std::uint8_t, crypto::kX25519KeySize> ephemeral_key{};
};

std::vector<std::uint8_t> SealLinkRequest(const LinkKeys& keys, const LinkRequestContent& request);
// kAuthenticationFailed when the bytes were not sealed under this code's request key (a
// wrong code typed on the new device, or a forgery), kCorrupt when they decrypt but are
// malformed.
Result<LinkRequestContent> OpenLinkRequest(const LinkKeys& keys, std::span<const std::uint8_t> sealed);

struct LinkedTeamKey {
  std::uint64_t generation = 0;
  crypto::SecretBytes key;  // 32 bytes
};

struct LinkedTeam {
  protocol::TeamId team_id{};
  std::string name;
  std::uint64_t head_sequence = 0;
  protocol::Hash head_hash{};
  std::vector<LinkedTeamKey> keys;
};

struct LinkedPeer {
  std::string user_id;
  std::array<std::uint8_t, 32> identity_key{};
  bool confirmed = false;
};

struct LinkHandover {
  std::string certificate;        // serialized DeviceCertificate, signed by the user key
  crypto::SecretBytes user_key_seed;  // 32 bytes
  std::string display_name;
  std::vector<LinkedTeam> teams;
  std::vector<LinkedPeer> peers;
};

// kInvalidArgument when the handover does not fit in one link message.
Result<std::vector<std::uint8_t>> SealLinkHandover(const LinkKeys& keys,
                                                   const crypto::X25519PublicKey& ephemeral,
                                                   const LinkHandover& handover);
// kAuthenticationFailed unless sealed under this code's reply key and to `ephemeral`;
// kCorrupt when it opens but is malformed.
Result<LinkHandover> OpenLinkHandover(const LinkKeys& keys, const crypto::X25519KeyPair& ephemeral,
                                      std::span<const std::uint8_t> sealed);

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_DEVICE_LINK_H_
