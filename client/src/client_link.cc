// Device linking (device_link.h): `coffre device link` on an existing device
// (Client::LinkDevice) and `coffre init --link` on the new one (Client::InitLinked, whose
// relay-facing half is RequestLink / AdoptHandover here).
#include <chrono>
#include <thread>

#include "client_impl.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// How often each side asks the relay whether the other side has written.
constexpr auto kLinkPoll = std::chrono::milliseconds(500);

wire::Request FetchLinkRequest(const LinkKeys& keys, wire::LinkSide side) {
  wire::Request request;
  request.mutable_fetch_link_message()->set_link_id(keys.link_id.data(), keys.link_id.size());
  request.mutable_fetch_link_message()->set_side(side);
  return request;
}

// Waits for the other side's message: `fetch` asks the relay once. Ends when a message is
// there, the link is gone, or `keep_going` says stop.
Result<std::string> WaitForLinkMessage(const std::function<Result<wire::Response>()>& fetch,
                                       const std::function<bool()>& keep_going,
                                       const char* gone) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(protocol::kLinkLifetimeMs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (keep_going && !keep_going()) return Fail(ErrorCode::kNotFound, "device link cancelled");
    COFFRE_ASSIGN_OR_RETURN(auto response, fetch());
    if (response.has_error()) {
      if (response.error().code() == wire::ERROR_CODE_NOT_FOUND) {
        return Fail(ErrorCode::kNotFound, gone);
      }
      if (response.error().code() != wire::ERROR_CODE_RATE_LIMITED &&
          response.error().code() != wire::ERROR_CODE_UNAVAILABLE) {
        return Fail(ErrorCode::kAuthenticationFailed, "the relay refused the device link");
      }
    } else if (!response.has_link_message()) {
      return Fail(ErrorCode::kCorrupt, "the relay answered a link fetch with something else");
    } else if (!response.link_message().sealed().empty()) {
      return std::move(*response.mutable_link_message()->mutable_sealed());
    }
    std::this_thread::sleep_for(kLinkPoll);
  }
  return Fail(ErrorCode::kNotFound, gone);
}

}  // namespace

// --- The existing device ---------------------------------------------------------------

Result<LinkedDeviceView> Client::LinkDevice(
    const std::function<void(std::string_view code, std::uint64_t expires_ms)>& show_code,
    const std::function<bool()>& keep_going) {
  Impl& impl = *impl_;
  const crypto::SecretBytes code = GenerateLinkCode();
  COFFRE_ASSIGN_OR_RETURN(const auto normalized, NormalizeLinkCode(code.span()));
  COFFRE_ASSIGN_OR_RETURN(const LinkKeys keys, DeriveLinkKeys(normalized, impl.user_id));

  wire::Request open;
  open.mutable_open_link()->set_link_id(keys.link_id.data(), keys.link_id.size());
  COFFRE_ASSIGN_OR_RETURN(const auto opened, impl.Call(open));
  if (!opened.has_link_opened()) return Fail(ErrorCode::kCorrupt, "the relay did not open the link");
  show_code(std::string_view(reinterpret_cast<const char*>(code.data()), code.size()),
            opened.link_opened().expires_ms());

  COFFRE_ASSIGN_OR_RETURN(
      const std::string sealed_request,
      WaitForLinkMessage([&] { return impl.RawCall(FetchLinkRequest(keys, wire::LINK_SIDE_REQUEST)); },
                         keep_going,
                         "the link expired before the new device answered: run `coffre device link` again"));
  // The request side is written once: whoever wrote it, this link is spent either way.
  COFFRE_ASSIGN_OR_RETURN(const auto request, OpenLinkRequest(keys, AsBytes(sealed_request)));

  // The new device's keys, checked before the user key signs anything.
  wire::DeviceCertificateBody body;
  if (!body.ParseFromString(request.certificate_body) || protocol::HasUnknownFields(body) ||
      !protocol::ValidateDeviceCertificateBody(body)) {
    return Fail(ErrorCode::kCorrupt, "the new device sent a malformed certificate request");
  }
  if (body.user_id() != impl.user_id) {
    return Fail(ErrorCode::kAuthenticationFailed, "the new device was set up for another login");
  }
  COFFRE_ASSIGN_OR_RETURN(const Peer self, impl.FetchPeer(impl.user_id));
  for (const PeerDevice& device : self.devices) {
    if (device.device_id == body.device_id()) {
      return Fail(ErrorCode::kAlreadyExists, "the new device chose a device id already in use: link again");
    }
  }
  COFFRE_ASSIGN_OR_RETURN(const auto ephemeral, crypto::X25519PublicKey::FromBytes(request.ephemeral_key));
  COFFRE_ASSIGN_OR_RETURN(const auto certificate,
                          protocol::SignDeviceCertificate(body, *impl.user_key));

  // What the new device needs to act as this user: the user key, the keys of every team
  // the user is in now, and the identities this profile has pinned.
  LinkHandover handover;
  handover.certificate = certificate.SerializeAsString();
  handover.user_key_seed = impl.user_key->Seed();
  handover.display_name = impl.display_name;
  COFFRE_ASSIGN_OR_RETURN(auto teams, sql::Prepared(*impl.db, "SELECT team_id, name FROM teams ORDER BY name"));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, teams.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(const auto team_id, IdFrom(teams.ColumnBlob(0)));
    auto chain = impl.StoredChain(team_id);
    if (!chain) {
      if (chain.error().code() == ErrorCode::kNotFound) continue;
      return chain.error();
    }
    if (!chain->IsMember(impl.user_id)) continue;
    LinkedTeam team;
    team.team_id = team_id;
    team.name = teams.ColumnText(1);
    team.head_sequence = chain->head().sequence;
    team.head_hash = chain->head().hash;
    COFFRE_ASSIGN_OR_RETURN(auto keys_of_team,
                            sql::Prepared(*impl.db,
                                          "SELECT generation, key FROM team_keys WHERE team_id = ? "
                                          "ORDER BY generation",
                                          team_id));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(const bool key_row, keys_of_team.Step());
      if (!key_row) break;
      team.keys.push_back(LinkedTeamKey{sql::AsU64(keys_of_team.ColumnInt64(0)),
                                        keys_of_team.ColumnSecret(1)});
    }
    handover.teams.push_back(std::move(team));
  }
  COFFRE_ASSIGN_OR_RETURN(auto peers, sql::Prepared(*impl.db,
                                                    "SELECT user_id, identity_key, confirmed FROM peers "
                                                    "ORDER BY user_id"));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, peers.Step());
    if (!row) break;
    LinkedPeer peer;
    peer.user_id = peers.ColumnText(0);
    const auto key = peers.ColumnBlob(1);
    if (key.size() != peer.identity_key.size()) return Fail(ErrorCode::kCorrupt, "stored key damaged");
    std::copy(key.begin(), key.end(), peer.identity_key.begin());
    peer.confirmed = peers.ColumnInt64(2) != 0;
    handover.peers.push_back(std::move(peer));
  }
  COFFRE_ASSIGN_OR_RETURN(const auto sealed_handover, SealLinkHandover(keys, ephemeral, handover));

  // The account learns the device first: the new device authenticates with it as soon as
  // it has the handover.
  wire::Request add;
  *add.mutable_add_device()->mutable_certificate() = certificate;
  COFFRE_ASSIGN_OR_RETURN(const auto added, impl.Call(add));
  (void)added;
  wire::Request reply;
  auto* post = reply.mutable_post_link_message();
  post->set_link_id(keys.link_id.data(), keys.link_id.size());
  post->set_side(wire::LINK_SIDE_REPLY);
  post->set_sealed(sealed_handover.data(), sealed_handover.size());
  COFFRE_ASSIGN_OR_RETURN(const auto posted, impl.Call(reply));
  (void)posted;
  // Peers learn the new device from the relay's device list, checked against the user key.
  COFFRE_ASSIGN_OR_RETURN(const Peer refreshed, impl.FetchPeer(impl.user_id));
  (void)refreshed;
  return LinkedDeviceView{body.device_id(), handover.teams.size()};
}

// --- The new device --------------------------------------------------------------------

Result<LinkHandover> Client::Impl::RequestLink(RelayConnection& link_connection,
                                               const LinkKeys& keys,
                                               const wire::DeviceCertificateBody& body,
                                               const std::function<bool()>& keep_going) {
  const crypto::X25519KeyPair ephemeral = crypto::X25519KeyPair::Generate();
  LinkRequestContent content;
  content.certificate_body = body.SerializeAsString();
  content.ephemeral_key = ephemeral.public_key().bytes();
  const std::vector<std::uint8_t> sealed = SealLinkRequest(keys, content);

  wire::Request post;
  post.mutable_post_link_message()->set_link_id(keys.link_id.data(), keys.link_id.size());
  post.mutable_post_link_message()->set_side(wire::LINK_SIDE_REQUEST);
  post.mutable_post_link_message()->set_sealed(sealed.data(), sealed.size());
  COFFRE_ASSIGN_OR_RETURN(const auto posted, link_connection.Call(post));
  if (posted.has_error()) {
    switch (posted.error().code()) {
      case wire::ERROR_CODE_NOT_FOUND:
        return Fail(ErrorCode::kNotFound,
                    "no open link for this code and login: check both, or run `coffre device link` again");
      case wire::ERROR_CODE_CONFLICT:
        return Fail(ErrorCode::kConflict, "this link was already used: run `coffre device link` again");
      default:
        return Fail(ErrorCode::kAuthenticationFailed, "the relay refused the device link");
    }
  }
  COFFRE_ASSIGN_OR_RETURN(
      const std::string sealed_handover,
      WaitForLinkMessage([&] { return link_connection.Call(FetchLinkRequest(keys, wire::LINK_SIDE_REPLY)); },
                         keep_going,
                         "the link expired before the existing device answered"));
  return OpenLinkHandover(keys, ephemeral, AsBytes(sealed_handover));
}

Status Client::Impl::AdoptHandover(const LinkHandover& handover) {
  COFFRE_ASSIGN_OR_RETURN(auto user, crypto::SigningKey::FromSeed(handover.user_key_seed.span()));
  wire::DeviceCertificate certificate;
  if (!certificate.ParseFromString(handover.certificate)) {
    return Fail(ErrorCode::kCorrupt, "device link: the handover's certificate is malformed");
  }
  // The certificate must be for exactly this device's keys, signed by the user key handed
  // over: the handover is for this device and its user key is the user's.
  COFFRE_ASSIGN_OR_RETURN(const auto device,
                          protocol::VerifyDeviceCertificate(certificate, user.verify_key()));
  COFFRE_ASSIGN_OR_RETURN(const auto signal_identity, signal->IdentityPublicKey());
  if (device.user_id != user_id || device.device_id != device_id ||
      device.signing_key.bytes() != device_key->verify_key().bytes() ||
      !std::equal(device.signal_identity_key.begin(), device.signal_identity_key.end(),
                  signal_identity.begin(), signal_identity.end())) {
    return Fail(ErrorCode::kAuthenticationFailed, "device link: the certificate is not for this device");
  }
  user_key.emplace(std::move(user));
  display_name = handover.display_name;
  return signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(SaveIdentity(certificate));
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE identity SET registered = 1 WHERE id = 1"));
    for (const LinkedPeer& peer : handover.peers) {
      if (peer.user_id == user_id) continue;
      COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                      "INSERT OR IGNORE INTO peers (user_id, identity_key, confirmed, "
                                      "first_seen_ms) VALUES (?, ?, ?, ?)",
                                      peer.user_id, peer.identity_key, peer.confirmed ? 1 : 0, NowMs()));
    }
    return Ok();
  });
}

}  // namespace coffre::client
