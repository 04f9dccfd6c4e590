// Other users as this profile knows them: identity keys pinned on first sight, device
// certificates verified under them, pairwise libsignal sessions, safety numbers.
#include <sodium.h>

#include <algorithm>

#include "client_impl.h"
#include "coffre/crypto/safety_number.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// The 33-byte Curve25519 form of an Ed25519 user identity key, which the safety-number
// computation takes: it binds exactly the user identity key, whatever devices come and go.
Result<std::array<std::uint8_t, 33>> SafetyKey(std::span<const std::uint8_t> ed25519) {
  std::array<std::uint8_t, 33> key{};
  key[0] = crypto::kSignalKeyType;
  if (ed25519.size() != 32 || crypto_sign_ed25519_pk_to_curve25519(key.data() + 1, ed25519.data()) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "identity key is not a valid Ed25519 key");
  }
  return key;
}

}  // namespace

// Verifies a DeviceList from the relay and records it: the identity key is pinned the first
// time; afterwards a different one is kept aside (offered_key) and the peer is marked
// changed until the person confirms the new safety number.
static Result<Peer> RecordDeviceList(Client::Impl& impl, const wire::DeviceList& list) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(list.user_id()));
  if (list.user_identity_key().size() != protocol::kEd25519KeySize) {
    return Fail(ErrorCode::kAuthenticationFailed, "the relay sent a malformed identity key");
  }
  COFFRE_ASSIGN_OR_RETURN(const auto identity, crypto::VerifyKey::FromBytes(AsBytes(list.user_identity_key())));
  Peer peer;
  peer.user_id = list.user_id();
  std::copy(identity.bytes().begin(), identity.bytes().end(), peer.identity_key.begin());

  // Our own user: the key must be ours, never a pin.
  if (peer.user_id == impl.user_id &&
      !crypto::ConstantTimeEquals(identity.bytes(), impl.user_key->verify_key().bytes())) {
    return Fail(ErrorCode::kUntrustedIdentity, "the relay shows another identity key for this user");
  }
  COFFRE_ASSIGN_OR_RETURN(auto pinned_row,
                          sql::Prepared(*impl.db, "SELECT identity_key FROM peers WHERE user_id = ?",
                                        peer.user_id));
  COFFRE_ASSIGN_OR_RETURN(const bool known, pinned_row.Step());
  if (known) {
    const std::vector<std::uint8_t> pinned = pinned_row.ColumnBlob(0);
    if (!crypto::ConstantTimeEquals(pinned, identity.bytes())) {
      COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db,
                                      "UPDATE peers SET offered_key = ?, confirmed = 0 "
                                      "WHERE user_id = ?",
                                      identity.bytes(), peer.user_id));
      // Devices under the new key are not recorded: nothing is encrypted to them until the
      // person confirms.
      return impl.StoredPeer(peer.user_id);
    }
  } else {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db,
                                    "INSERT INTO peers (user_id, identity_key, first_seen_ms) "
                                    "VALUES (?, ?, ?)",
                                    peer.user_id, identity.bytes(), NowMs()));
  }
  for (const auto& entry : list.devices()) {
    COFFRE_ASSIGN_OR_RETURN(auto device, protocol::VerifyDeviceCertificate(entry.certificate(), identity));
    if (device.user_id != peer.user_id) {
      return Fail(ErrorCode::kAuthenticationFailed, "the relay sent a certificate of another user");
    }
    // A device, once revoked, stays revoked whatever the relay says later.
    // (SQLCipher 3's SQLite predates UPSERT: insert, then raise the flag.)
    COFFRE_RETURN_IF_ERROR(sql::Run(
        *impl.db,
        "INSERT OR IGNORE INTO peer_devices (user_id, device_id, signing_key, signal_identity, revoked, "
        "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
        peer.user_id, device.device_id, device.signing_key.bytes(),
        std::span<const std::uint8_t>(device.signal_identity_key), entry.revoked(), device.created_ms));
    // A row recorded before its certificate's time was kept gets it now, from the
    // certificate of the same signing key only.
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db,
                                    "UPDATE peer_devices SET created_ms = ? WHERE user_id = ? AND device_id = ? "
                                    "AND created_ms = 0 AND signing_key = ?",
                                    device.created_ms, peer.user_id, device.device_id,
                                    device.signing_key.bytes()));
    if (entry.revoked()) {
      COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db,
                                      "UPDATE peer_devices SET revoked = 1 WHERE user_id = ? AND device_id = ?",
                                      peer.user_id, device.device_id));
    }
    if (!(peer.user_id == impl.user_id && device.device_id == impl.device_id)) {
      COFFRE_RETURN_IF_ERROR(impl.signal_stores->stores().identity->SaveIdentity(
          crypto::SignalAddress{peer.user_id, static_cast<std::int32_t>(device.device_id)},
          device.signal_identity_key));
    }
  }
  return impl.StoredPeer(peer.user_id);
}

Result<Peer> Client::Impl::FetchPeer(std::string_view peer_user) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(peer_user));
  wire::Request request;
  request.mutable_list_devices()->set_user_id(std::string(peer_user));
  COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
  if (!response.has_devices() || response.devices().user_id() != peer_user) {
    return Fail(ErrorCode::kAuthenticationFailed, "the relay answered for another user");
  }
  return signal_stores->InTransaction(
      [&]() -> Result<Peer> { return RecordDeviceList(*this, response.devices()); });
}

Status RecordSigners(Client::Impl& impl, const google::protobuf::RepeatedPtrField<wire::DeviceList>& lists) {
  return impl.signal_stores->RunInTransaction([&]() -> Status {
    for (const auto& list : lists) {
      COFFRE_ASSIGN_OR_RETURN(auto peer, RecordDeviceList(impl, list));
      (void)peer;
    }
    return Ok();
  });
}

Result<Peer> Client::Impl::StoredPeer(std::string_view peer_user) {
  Peer peer;
  peer.user_id = std::string(peer_user);
  if (peer_user == user_id) {
    const auto& own = user_key->verify_key().bytes();
    std::copy(own.begin(), own.end(), peer.identity_key.begin());
  } else {
    COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db,
                                                    "SELECT identity_key, offered_key FROM peers "
                                                    "WHERE user_id = ?",
                                                    peer.user_id));
    COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
    if (!found) return Fail(ErrorCode::kNotFound, "this user is not known to this profile yet");
    const auto key = row.ColumnBlob(0);
    if (key.size() != peer.identity_key.size()) return Fail(ErrorCode::kCorrupt, "stored key damaged");
    std::copy(key.begin(), key.end(), peer.identity_key.begin());
    peer.key_changed = !row.ColumnIsNull(1);
  }
  COFFRE_ASSIGN_OR_RETURN(auto devices, sql::Prepared(*db,
                                                      "SELECT device_id, signing_key, signal_identity, "
                                                      "revoked, created_ms FROM peer_devices WHERE user_id = ? "
                                                      "ORDER BY device_id",
                                                      peer.user_id));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, devices.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(auto signing, crypto::VerifyKey::FromBytes(devices.ColumnBlob(1)));
    peer.devices.push_back(PeerDevice{sql::AsU32(devices.ColumnInt64(0)), signing,
                                      devices.ColumnBlob(2), devices.ColumnInt64(3) != 0,
                                      sql::AsU64(devices.ColumnInt64(4))});
  }
  return peer;
}

protocol::DeviceKeyLookup Client::Impl::KeyLookup() {
  return [this](std::string_view lookup_user, std::uint32_t lookup_device) -> Result<crypto::VerifyKey> {
    if (lookup_user == user_id && lookup_device == device_id) return device_key->verify_key();
    COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db,
                                                    "SELECT signing_key FROM peer_devices "
                                                    "WHERE user_id = ? AND device_id = ?",
                                                    lookup_user, lookup_device));
    COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
    if (!found) return Fail(ErrorCode::kNotFound, "unknown device");
    return crypto::VerifyKey::FromBytes(row.ColumnBlob(0));
  };
}

Result<bool> Client::Impl::EnsureSession(std::string_view peer_user, const PeerDevice& device) {
  const crypto::SignalAddress address{std::string(peer_user), static_cast<std::int32_t>(device.device_id)};
  COFFRE_ASSIGN_OR_RETURN(const bool has, signal->HasSession(address));
  if (has) return true;
  wire::Request request;
  request.mutable_fetch_pre_key_bundle()->set_user_id(std::string(peer_user));
  request.mutable_fetch_pre_key_bundle()->set_device_id(device.device_id);
  COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
  if (!response.has_pre_key_bundle()) return Fail(ErrorCode::kCorrupt, "the relay sent no prekey bundle");
  const auto& reply = response.pre_key_bundle();
  if (reply.user_id() != peer_user || reply.device_id() != device.device_id ||
      reply.signal_identity_key().size() != crypto::kSignalPublicKeySize ||
      reply.signed_pre_key().public_key().size() != crypto::kSignalPublicKeySize ||
      reply.signed_pre_key().signature().size() != crypto::kSignalSignatureSize) {
    return Fail(ErrorCode::kAuthenticationFailed, "the relay sent a malformed prekey bundle");
  }
  // The bundle's identity must be the one the device certificate vouches for: otherwise
  // the relay could put itself in the middle.
  if (!crypto::ConstantTimeEquals(AsBytes(reply.signal_identity_key()), device.signal_identity)) {
    return Fail(ErrorCode::kUntrustedIdentity, "the relay sent a prekey bundle under another identity key");
  }
  crypto::PreKeyBundle bundle;
  bundle.registration_id = reply.registration_id();
  bundle.device_id = static_cast<std::int32_t>(reply.device_id());
  bundle.signed_pre_key_id = reply.signed_pre_key().id();
  std::copy_n(reply.signed_pre_key().public_key().begin(), crypto::kSignalPublicKeySize, bundle.signed_pre_key.begin());
  std::copy_n(reply.signed_pre_key().signature().begin(), crypto::kSignalSignatureSize,
              bundle.signed_pre_key_signature.begin());
  std::copy_n(reply.signal_identity_key().begin(), crypto::kSignalPublicKeySize, bundle.identity_key.begin());
  if (reply.has_one_time_pre_key()) {
    if (reply.one_time_pre_key().public_key().size() != crypto::kSignalPublicKeySize) {
      return Fail(ErrorCode::kAuthenticationFailed, "the relay sent a malformed prekey bundle");
    }
    crypto::PublicPreKey one;
    one.id = reply.one_time_pre_key().id();
    std::copy_n(reply.one_time_pre_key().public_key().begin(), crypto::kSignalPublicKeySize, one.public_key.begin());
    bundle.one_time_pre_key = one;
  }
  const Status transaction_status = signal_stores->RunInTransaction(
      [&]() -> Status { return signal->ProcessPreKeyBundle(address, bundle); });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  return false;
}

namespace {

// The devices a message to `peer` goes to: every active one, but never this device.
std::vector<const PeerDevice*> Targets(const Client::Impl& impl, const Peer& peer) {
  std::vector<const PeerDevice*> targets;
  for (const auto& device : peer.devices) {
    if (device.revoked) continue;
    if (peer.user_id == impl.user_id && device.device_id == impl.device_id) continue;
    targets.push_back(&device);
  }
  return targets;
}

}  // namespace

Status Client::Impl::EnsureSessions(const Peer& peer) {
  if (peer.key_changed) {
    return Fail(ErrorCode::kUntrustedIdentity,
                "this person's identity key changed: compare safety numbers, then `coffre verify "
                "USER --confirm`");
  }
  for (const PeerDevice* device : Targets(*this, peer)) {
    COFFRE_ASSIGN_OR_RETURN(const bool had, EnsureSession(peer.user_id, *device));
    (void)had;
  }
  return Ok();
}

Status Client::Impl::QueuePeerMessage(const Peer& peer, std::span<const std::uint8_t> plaintext) {
  COFFRE_RETURN_IF_ERROR(EnsureSessions(peer));
  if (Targets(*this, peer).empty()) return Ok();
  // Encrypting advances the ratchets; the ciphertexts go to the outbox in the same
  // transaction, so a crash either keeps both or neither.
  return signal_stores->RunInTransaction([&]() -> Status { return EncryptToDevices(peer, plaintext); });
}

Status Client::Impl::EncryptToDevices(const Peer& peer, std::span<const std::uint8_t> plaintext) {
  if (peer.key_changed) {
    return Fail(ErrorCode::kUntrustedIdentity,
                "this person's identity key changed: compare safety numbers, then `coffre verify "
                "USER --confirm`");
  }
  const std::vector<const PeerDevice*> targets = Targets(*this, peer);
  for (std::size_t start = 0; start < targets.size(); start += protocol::kMaxEnvelopesPerSend) {
    wire::Request request;
    auto* send = request.mutable_send_envelopes();
    const std::size_t end = std::min(targets.size(), start + protocol::kMaxEnvelopesPerSend);
    for (std::size_t i = start; i < end; ++i) {
      const crypto::SignalAddress address{peer.user_id, static_cast<std::int32_t>(targets[i]->device_id)};
      COFFRE_ASSIGN_OR_RETURN(auto ciphertext, signal->Encrypt(address, plaintext));
      auto* envelope = send->add_envelopes();
      envelope->set_recipient_user_id(peer.user_id);
      envelope->set_recipient_device_id(targets[i]->device_id);
      const auto client_id = NewId();
      envelope->set_client_id(client_id.data(), client_id.size());
      envelope->set_type(static_cast<std::uint32_t>(ciphertext.type));
      envelope->set_ciphertext(ciphertext.bytes.data(), ciphertext.bytes.size());
    }
    const std::string bytes = request.SerializeAsString();
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "INSERT INTO outbox (request, created_ms) VALUES (?, ?)",
                                    AsBytes(bytes), NowMs()));
  }
  return Ok();
}

Result<SafetyNumberView> Client::SafetyNumber(std::string_view peer_user) {
  auto fetched = impl_->FetchPeer(peer_user);
  COFFRE_ASSIGN_OR_RETURN(Peer peer, fetched ? std::move(fetched) : impl_->StoredPeer(peer_user));
  COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*impl_->db,
                                                  "SELECT identity_key, offered_key, confirmed FROM peers "
                                                  "WHERE user_id = ?",
                                                  peer.user_id));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return Fail(ErrorCode::kNotFound, "this user is not known to this profile yet");
  // After a change, the number shown is the one of the NEW key: that is what the person
  // must compare before confirming.
  const std::vector<std::uint8_t> key = row.ColumnIsNull(1) ? row.ColumnBlob(0) : row.ColumnBlob(1);
  COFFRE_ASSIGN_OR_RETURN(const auto theirs, SafetyKey(key));
  COFFRE_ASSIGN_OR_RETURN(const auto ours, SafetyKey(impl_->user_key->verify_key().bytes()));
  COFFRE_ASSIGN_OR_RETURN(auto number, crypto::ComputeSafetyNumber(impl_->user_id, ours, peer.user_id, theirs));
  SafetyNumberView view;
  view.user_id = peer.user_id;
  view.safety_number = number.Grouped();
  view.confirmed = row.ColumnInt64(2) != 0 && row.ColumnIsNull(1);
  view.key_changed = !row.ColumnIsNull(1);
  return view;
}

Status Client::ConfirmIdentity(std::string_view peer_user) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(peer_user));
  COFFRE_ASSIGN_OR_RETURN(auto changed, sql::QueryInt(*impl_->db,
                                                      "SELECT offered_key IS NOT NULL FROM peers "
                                                      "WHERE user_id = ?",
                                                      peer_user));
  if (!changed) return Fail(ErrorCode::kNotFound, "this user is not known to this profile yet");
  const Status transaction_status = impl_->signal_stores->RunInTransaction([&]() -> Status {
    if (*changed != 0) {
      // The new key replaces the old one; devices certified by the old key are dropped and
      // the new ones are fetched below.
      COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db,
                                      "UPDATE peers SET identity_key = offered_key, offered_key = NULL "
                                      "WHERE user_id = ?",
                                      peer_user));
      COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "DELETE FROM peer_devices WHERE user_id = ?", peer_user));
    }
    return sql::Run(*impl_->db, "UPDATE peers SET confirmed = 1 WHERE user_id = ?", peer_user);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  if (*changed != 0) {
    COFFRE_ASSIGN_OR_RETURN(auto peer, impl_->FetchPeer(peer_user));
    (void)peer;
  }
  return Ok();
}

Result<std::vector<DeviceView>> Client::ListDevices() {
  auto fetched = impl_->FetchPeer(impl_->user_id);
  COFFRE_ASSIGN_OR_RETURN(Peer self, fetched ? std::move(fetched) : impl_->StoredPeer(impl_->user_id));
  std::vector<DeviceView> views;
  for (const auto& device : self.devices) {
    DeviceView view;
    view.device_id = device.device_id;
    view.this_device = device.device_id == impl_->device_id;
    view.revoked = device.revoked;
    view.created_ms = device.created_ms;
    views.push_back(view);
  }
  return views;
}

}  // namespace coffre::client
