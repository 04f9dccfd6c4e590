// Store interfaces for the Signal protocol state of one device.
//
// The double ratchet, the prekeys, the identities and the group sender keys all live in
// these stores and nowhere else: a SignalDevice keeps no protocol state of its own between
// calls, so a device rebuilt over the same stores (for example after closing and reopening
// the local SQLCipher database) continues every session where it stopped.
//
// The interfaces are meant to be implemented on a database (storage/) and, for tests and
// the demonstration program, in memory (signal_memory_stores.h). Conventions:
//   - every function returns a Result or a Status and never throws;
//   - records are opaque bytes produced by the protocol library; session, prekey, signed
//     prekey and sender-key records hold private keys, so they are handed in as borrowed
//     spans (copy them) and handed back as SecretBytes;
//   - "absent" is a value (std::nullopt / false), not an error: an error means the store
//     itself failed, and the protocol operation that asked is then abandoned without
//     committing anything;
//   - names (user ids), device ids and group ids are identifiers, not secrets.
// A SignalDevice calls its stores from one thread at a time (it holds its lock around every
// operation), so an implementation needs no locking of its own unless it is shared.
#ifndef COFFRE_CRYPTO_SIGNAL_STORES_H_
#define COFFRE_CRYPTO_SIGNAL_STORES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::crypto {

// A remote or local device: the user id and the device number under that user.
struct SignalAddress {
  std::string name;
  std::int32_t device_id = 0;

  friend bool operator==(const SignalAddress&, const SignalAddress&) = default;
};

// Pairwise (1:1) double-ratchet sessions, one record per remote device.
class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // The session record for `address`, or std::nullopt when there is none.
  virtual Result<std::optional<SecretBytes>> LoadSession(const SignalAddress& address) = 0;
  // Creates or replaces the record for `address` with a copy of `record`.
  virtual Status StoreSession(const SignalAddress& address,
                              std::span<const std::uint8_t> record) = 0;
  // Whether a record exists for `address`.
  virtual Result<bool> ContainsSession(const SignalAddress& address) = 0;
  // Deletes the record for `address`; true if there was one.
  virtual Result<bool> DeleteSession(const SignalAddress& address) = 0;
  // Deletes the records of every device of user `name`; returns how many were deleted.
  virtual Result<std::size_t> DeleteAllSessions(std::string_view name) = 0;
  // The device ids of user `name` that have a session record, in any order.
  virtual Result<std::vector<std::int32_t>> SubDeviceSessions(std::string_view name) = 0;
};

// Local one-time prekeys (private halves), by id. A prekey is removed by the protocol once
// a session has been built from it.
class PreKeyStore {
 public:
  virtual ~PreKeyStore() = default;

  // The prekey record with `id`, or std::nullopt when there is none.
  virtual Result<std::optional<SecretBytes>> LoadPreKey(std::uint32_t id) = 0;
  // Creates or replaces the record with `id` with a copy of `record`.
  virtual Status StorePreKey(std::uint32_t id, std::span<const std::uint8_t> record) = 0;
  virtual Result<bool> ContainsPreKey(std::uint32_t id) = 0;
  // Removes the record with `id`; removing an absent id succeeds.
  virtual Status RemovePreKey(std::uint32_t id) = 0;
};

// Local signed prekeys (private halves and signatures), by id.
class SignedPreKeyStore {
 public:
  virtual ~SignedPreKeyStore() = default;

  // The signed prekey record with `id`, or std::nullopt when there is none.
  virtual Result<std::optional<SecretBytes>> LoadSignedPreKey(std::uint32_t id) = 0;
  // Creates or replaces the record with `id` with a copy of `record`.
  virtual Status StoreSignedPreKey(std::uint32_t id, std::span<const std::uint8_t> record) = 0;
  virtual Result<bool> ContainsSignedPreKey(std::uint32_t id) = 0;
  // Removes the record with `id`; removing an absent id succeeds.
  virtual Status RemoveSignedPreKey(std::uint32_t id) = 0;
};

// The local device's long-term identity, as stored.
struct LocalIdentity {
  std::vector<std::uint8_t> public_key;  // 33 bytes: type byte 0x05 and the Curve25519 key
  SecretBytes private_key;               // 32 bytes
  std::uint32_t registration_id = 0;
};

// The local identity key pair and the identities of remote devices.
class IdentityKeyStore {
 public:
  virtual ~IdentityKeyStore() = default;

  // The local identity, or std::nullopt before one was stored.
  virtual Result<std::optional<LocalIdentity>> LoadLocalIdentity() = 0;
  // Stores the local identity (copies of the keys). Called once per device.
  virtual Status StoreLocalIdentity(std::span<const std::uint8_t> public_key,
                                    std::span<const std::uint8_t> private_key,
                                    std::uint32_t registration_id) = 0;

  // Records `identity_key` (33 bytes) as the identity of `address`, replacing any previous
  // one. Called when a session is built, and by the application when it learns a device's
  // identity from a verified source (a device certificate, a compared safety number).
  virtual Status SaveIdentity(const SignalAddress& address,
                              std::span<const std::uint8_t> identity_key) = 0;
  // The identity recorded for `address`, or std::nullopt.
  virtual Result<std::optional<std::vector<std::uint8_t>>> LoadIdentity(
      const SignalAddress& address) = 0;
  // Whether `identity_key` may be used for `address`. This is the trust hook: SignalDevice
  // asks it before every encryption and decryption, not only when a session is built. The
  // in-memory store trusts on first use (no record, or an equal record); a production store
  // should also require a valid device certificate for the key.
  virtual Result<bool> IsTrusted(const SignalAddress& address,
                                 std::span<const std::uint8_t> identity_key) = 0;
};

// Group sender keys, one record per (group, sender device). The record of our own address
// holds our sending chain and signing private key; the others hold what we received.
class SenderKeyStore {
 public:
  virtual ~SenderKeyStore() = default;

  // The record for (`group_id`, `sender`), or std::nullopt.
  virtual Result<std::optional<SecretBytes>> LoadSenderKey(std::string_view group_id,
                                                           const SignalAddress& sender) = 0;
  // Creates or replaces the record for (`group_id`, `sender`) with a copy of `record`.
  virtual Status StoreSenderKey(std::string_view group_id, const SignalAddress& sender,
                                std::span<const std::uint8_t> record) = 0;
  // Deletes the record for (`group_id`, `sender`); deleting an absent record succeeds.
  virtual Status DeleteSenderKey(std::string_view group_id, const SignalAddress& sender) = 0;
};

// Replay guard for group sender keys: the highest chain iteration seen (from a distribution
// message or a decrypted group message) for each (group, sender device, sender key id).
//
// The protocol library accepts a distribution message it has already processed and then
// rewinds that sender's chain, so an old group message decrypts a second time. SignalDevice
// therefore drops a distribution message whose iteration is not above the one recorded
// here. It is keyed by key id as well because key ids are random (not ordered): after a
// sender rotates, a replay of the distribution message of the previous key must still be
// recognised. Rows are never removed while the group exists.
class GroupReplayGuardStore {
 public:
  virtual ~GroupReplayGuardStore() = default;

  // The highest iteration recorded for the triple, or std::nullopt if the key id was never
  // seen from that sender in that group.
  virtual Result<std::optional<std::uint32_t>> LoadHighestIteration(std::string_view group_id,
                                                                    const SignalAddress& sender,
                                                                    std::uint32_t key_id) = 0;
  // Records `iteration` for the triple (the caller only ever raises it).
  virtual Status StoreHighestIteration(std::string_view group_id, const SignalAddress& sender,
                                       std::uint32_t key_id, std::uint32_t iteration) = 0;
};

// The stores of one device. Not owned: each must outlive the SignalDevice given them.
struct SignalStores {
  SessionStore* session = nullptr;
  PreKeyStore* pre_key = nullptr;
  SignedPreKeyStore* signed_pre_key = nullptr;
  IdentityKeyStore* identity = nullptr;
  SenderKeyStore* sender_key = nullptr;
  GroupReplayGuardStore* group_replay = nullptr;
};

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SIGNAL_STORES_H_
