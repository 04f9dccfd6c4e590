#include "coffre/client/device_link.h"

#include <algorithm>
#include <utility>

#include "coffre/content/v1/content.pb.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/sealed_box.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/validation.h"
#include "protobuf_bytes.h"

namespace coffre::client {
namespace {

namespace pb = ::coffre::content::v1;
using crypto::SecretBytes;

constexpr std::string_view kCodeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford
static_assert(kCodeAlphabet.size() == 32);

constexpr std::string_view kSaltLabel = "coffre/device-link/salt/v1";
constexpr std::string_view kLinkIdLabel = "coffre/device-link/id/v1";
constexpr std::string_view kRequestKeyLabel = "coffre/device-link/request-key/v1";
constexpr std::string_view kReplyKeyLabel = "coffre/device-link/reply-key/v1";
constexpr std::string_view kRequestLabel = "coffre/device-link/request/v1";
constexpr std::string_view kReplyLabel = "coffre/device-link/reply/v1";
constexpr std::string_view kHandoverLabel = "coffre/device-link/handover/v1";

constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kMaxCertificate = protocol::kMaxCertificateBody + 128;
constexpr std::size_t kMaxTeamName = 64;
constexpr std::size_t kMaxDisplayName = 128;
constexpr std::size_t kKeySize = 32;

std::span<const std::uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

bool IsPrintableName(std::string_view name, std::size_t max) {
  return !name.empty() && name.size() <= max &&
         std::none_of(name.begin(), name.end(), [](char c) {
           const auto byte = static_cast<unsigned char>(c);
           return byte < 0x20 || byte == 0x7F;
         });
}

Result<crypto::AeadKey> AeadKeyOf(const SecretBytes& key) {
  return crypto::AeadKey::FromBytes(key.Clone());
}

// Serializes a message holding secrets straight into wiped memory.
Result<SecretBytes> SerializeSecret(const google::protobuf::Message& message) {
  SecretBytes out(message.ByteSizeLong());
  if (!out.empty() && !message.SerializeToArray(out.data(), static_cast<int>(out.size()))) {
    return Fail(ErrorCode::kInternal, "device link: protobuf serialization failed");
  }
  return out;
}

void WipeField(std::string* field) {
  crypto::Wipe({reinterpret_cast<std::uint8_t*>(field->data()), field->size()});
}

// Wipes every key a LinkHandover message holds before it frees them.
class HandoverWiper {
 public:
  explicit HandoverWiper(pb::LinkHandover* message) : message_(message) {}
  HandoverWiper(const HandoverWiper&) = delete;
  HandoverWiper& operator=(const HandoverWiper&) = delete;
  ~HandoverWiper() {
    WipeField(message_->mutable_user_key_seed());
    for (auto& team : *message_->mutable_teams()) {
      for (auto& key : *team.mutable_keys()) WipeField(key.mutable_key());
    }
  }

 private:
  pb::LinkHandover* message_;
};

Unexpected Malformed() { return Fail(ErrorCode::kCorrupt, "device link: the handover is malformed"); }

}  // namespace

SecretBytes GenerateLinkCode() {
  SecretBytes code(kLinkCodeSymbols + 2);
  std::size_t at = 0;
  for (std::size_t i = 0; i < kLinkCodeSymbols; ++i) {
    if (i == 4 || i == 8) code.data()[at++] = '-';
    code.data()[at++] = static_cast<std::uint8_t>(
        kCodeAlphabet[crypto::RandomUniform(static_cast<std::uint32_t>(kCodeAlphabet.size()))]);
  }
  return code;
}

Result<SecretBytes> NormalizeLinkCode(std::span<const std::uint8_t> typed) {
  constexpr const char* kBad = "the link code is 12 letters and digits, as `coffre device link` shows it";
  SecretBytes code(kLinkCodeSymbols);
  std::size_t count = 0;
  for (const std::uint8_t byte : typed) {
    char c = static_cast<char>(byte);
    if (c == '-' || c == ' ') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kCodeAlphabet.find(c) == std::string_view::npos || count == kLinkCodeSymbols) {
      return Fail(ErrorCode::kInvalidArgument, kBad);
    }
    code.data()[count++] = static_cast<std::uint8_t>(c);
  }
  if (count != kLinkCodeSymbols) return Fail(ErrorCode::kInvalidArgument, kBad);
  return code;
}

Result<LinkKeys> DeriveLinkKeys(const SecretBytes& normalized_code, std::string_view user_id,
                                const crypto::Argon2Params& params) {
  if (normalized_code.size() != kLinkCodeSymbols) {
    return Fail(ErrorCode::kInvalidArgument, "device link: the code is not normalized");
  }
  // The salt binds the code to the user: one code never opens another user's link.
  std::vector<std::uint8_t> salt_input(kSaltLabel.begin(), kSaltLabel.end());
  salt_input.push_back(0);
  salt_input.insert(salt_input.end(), user_id.begin(), user_id.end());
  const auto salt_hash = crypto::Blake2b256(salt_input);
  crypto::PassphraseKdfRecord record;
  record.params = params;
  std::copy_n(salt_hash.begin(), record.salt.size(), record.salt.begin());
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes root,
                          crypto::DeriveKeyFromPassphrase(normalized_code.span(), record, 32));
  LinkKeys keys;
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes id,
                          crypto::DeriveSubkey(root.span(), kLinkIdLabel, {}, keys.link_id.size()));
  std::copy_n(id.data(), keys.link_id.size(), keys.link_id.begin());
  COFFRE_ASSIGN_OR_RETURN(keys.request_key, crypto::DeriveSubkey(root.span(), kRequestKeyLabel));
  COFFRE_ASSIGN_OR_RETURN(keys.reply_key, crypto::DeriveSubkey(root.span(), kReplyKeyLabel));
  return keys;
}

std::vector<std::uint8_t> SealLinkRequest(const LinkKeys& keys, const LinkRequestContent& request) {
  pb::LinkRequest message;
  message.set_version(kFormatVersion);
  message.set_certificate_body(request.certificate_body);
  SetBytes(message.mutable_ephemeral_key(), request.ephemeral_key);
  const std::string encoded = message.SerializeAsString();
  auto key = AeadKeyOf(keys.request_key);
  // The request key is always 32 bytes (DeriveLinkKeys); a moved-from LinkKeys is a bug.
  if (!key) std::abort();
  return crypto::AeadSeal(*key, kRequestLabel, Bytes(encoded), keys.link_id);
}

Result<LinkRequestContent> OpenLinkRequest(const LinkKeys& keys,
                                           std::span<const std::uint8_t> sealed) {
  COFFRE_ASSIGN_OR_RETURN(const auto key, AeadKeyOf(keys.request_key));
  auto opened = crypto::AeadOpen(key, kRequestLabel, sealed, keys.link_id);
  if (!opened) {
    return Fail(ErrorCode::kAuthenticationFailed,
                "the new device did not type this link's code (mistyped, or another device): "
                "run `coffre device link` again");
  }
  pb::LinkRequest message;
  if (!ParseBounded(opened->span(), message) || protocol::HasUnknownFields(message) ||
      message.version() != kFormatVersion || message.certificate_body().empty() ||
      message.certificate_body().size() > protocol::kMaxCertificateBody ||
      message.ephemeral_key().size() != crypto::kX25519KeySize) {
    return Fail(ErrorCode::kCorrupt, "device link: the new device's request is malformed: run `coffre device link` again");
  }
  LinkRequestContent request;
  request.certificate_body = message.certificate_body();
  std::copy_n(message.ephemeral_key().begin(), crypto::kX25519KeySize, request.ephemeral_key.begin());
  return request;
}

Result<std::vector<std::uint8_t>> SealLinkHandover(const LinkKeys& keys,
                                                   const crypto::X25519PublicKey& ephemeral,
                                                   const LinkHandover& handover) {
  pb::LinkHandover message;
  const HandoverWiper wiper(&message);
  message.set_version(kFormatVersion);
  message.set_certificate(handover.certificate);
  SetBytes(message.mutable_user_key_seed(), handover.user_key_seed.span());
  message.set_display_name(handover.display_name);
  for (const LinkedTeam& team : handover.teams) {
    pb::LinkedTeam* out = message.add_teams();
    SetBytes(out->mutable_team_id(), team.team_id);
    out->set_name(team.name);
    out->set_head_sequence(team.head_sequence);
    SetBytes(out->mutable_head_hash(), team.head_hash);
    for (const LinkedTeamKey& key : team.keys) {
      pb::LinkedTeamKey* out_key = out->add_keys();
      out_key->set_generation(key.generation);
      SetBytes(out_key->mutable_key(), key.key.span());
    }
  }
  for (const LinkedPeer& peer : handover.peers) {
    pb::LinkedPeer* out = message.add_peers();
    out->set_user_id(peer.user_id);
    SetBytes(out->mutable_identity_key(), peer.identity_key);
    out->set_confirmed(peer.confirmed);
  }
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes encoded, SerializeSecret(message));
  const std::size_t sealed_size = encoded.size() + crypto::kSealedBoxOverhead + 2 +
                                  kHandoverLabel.size() + crypto::kAeadOverhead;
  if (sealed_size > protocol::kMaxLinkMessage) {
    return Fail(ErrorCode::kInvalidArgument,
                "this profile holds too many teams to hand over in one link");
  }
  const std::vector<std::uint8_t> boxed =
      crypto::SealToPublicKey(ephemeral, kHandoverLabel, encoded.span());
  COFFRE_ASSIGN_OR_RETURN(const auto key, AeadKeyOf(keys.reply_key));
  return crypto::AeadSeal(key, kReplyLabel, boxed, keys.link_id);
}

Result<LinkHandover> OpenLinkHandover(const LinkKeys& keys, const crypto::X25519KeyPair& ephemeral,
                                      std::span<const std::uint8_t> sealed) {
  constexpr const char* kNotFromLink =
      "the handover was not sealed by the device showing this code";
  COFFRE_ASSIGN_OR_RETURN(const auto key, AeadKeyOf(keys.reply_key));
  auto boxed = crypto::AeadOpen(key, kReplyLabel, sealed, keys.link_id);
  if (!boxed) return Fail(ErrorCode::kAuthenticationFailed, kNotFromLink);
  auto encoded = crypto::OpenSealedBox(ephemeral, kHandoverLabel, boxed->span());
  if (!encoded) return Fail(ErrorCode::kAuthenticationFailed, kNotFromLink);

  pb::LinkHandover message;
  const bool parsed = ParseBounded(encoded->span(), message);
  const HandoverWiper wiper(&message);
  if (!parsed || protocol::HasUnknownFields(message) || message.version() != kFormatVersion ||
      message.certificate().empty() || message.certificate().size() > kMaxCertificate ||
      message.user_key_seed().size() != kKeySize ||
      !IsPrintableName(message.display_name(), kMaxDisplayName)) {
    return Malformed();
  }
  LinkHandover handover;
  handover.certificate = message.certificate();
  handover.user_key_seed = SecretBytes::CopyOf(Bytes(message.user_key_seed()));
  handover.display_name = message.display_name();
  for (const pb::LinkedTeam& team : message.teams()) {
    if (protocol::HasUnknownFields(team) || team.team_id().size() != protocol::kIdSize ||
        !IsPrintableName(team.name(), kMaxTeamName) || team.head_hash().size() != protocol::kHashSize) {
      return Malformed();
    }
    LinkedTeam out;
    std::copy_n(team.team_id().begin(), protocol::kIdSize, out.team_id.begin());
    out.name = team.name();
    out.head_sequence = team.head_sequence();
    std::copy_n(team.head_hash().begin(), protocol::kHashSize, out.head_hash.begin());
    for (const pb::LinkedTeamKey& team_key : team.keys()) {
      if (protocol::HasUnknownFields(team_key) || team_key.generation() == 0 ||
          team_key.key().size() != kKeySize) {
        return Malformed();
      }
      out.keys.push_back(LinkedTeamKey{team_key.generation(),
                                       SecretBytes::CopyOf(Bytes(team_key.key()))});
    }
    handover.teams.push_back(std::move(out));
  }
  for (const pb::LinkedPeer& peer : message.peers()) {
    if (protocol::HasUnknownFields(peer) || !protocol::ValidateUserId(peer.user_id()) ||
        peer.identity_key().size() != kKeySize) {
      return Malformed();
    }
    LinkedPeer out;
    out.user_id = peer.user_id();
    std::copy_n(peer.identity_key().begin(), kKeySize, out.identity_key.begin());
    out.confirmed = peer.confirmed();
    handover.peers.push_back(std::move(out));
  }
  return handover;
}

}  // namespace coffre::client
