// In-memory implementations of the Signal store interfaces, for tests and the
// demonstration program. Records are kept as SecretBytes (wiped when replaced or when the
// store is destroyed) and copied on every load, exactly as a database would.
//
// Not thread-safe on their own: a SignalDevice serialises its calls. Everything is lost
// when the object is destroyed.
#ifndef COFFRE_CRYPTO_SIGNAL_MEMORY_STORES_H_
#define COFFRE_CRYPTO_SIGNAL_MEMORY_STORES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "coffre/crypto/signal_stores.h"

namespace coffre::crypto {

class InMemorySessionStore final : public SessionStore {
 public:
  Result<std::optional<SecretBytes>> LoadSession(const SignalAddress& address) override;
  Status StoreSession(const SignalAddress& address, std::span<const std::uint8_t> record) override;
  Result<bool> ContainsSession(const SignalAddress& address) override;
  Result<bool> DeleteSession(const SignalAddress& address) override;
  Result<std::size_t> DeleteAllSessions(std::string_view name) override;
  Result<std::vector<std::int32_t>> SubDeviceSessions(std::string_view name) override;

 private:
  std::map<std::pair<std::string, std::int32_t>, SecretBytes> records_;
};

class InMemoryPreKeyStore final : public PreKeyStore {
 public:
  Result<std::optional<SecretBytes>> LoadPreKey(std::uint32_t id) override;
  Status StorePreKey(std::uint32_t id, std::span<const std::uint8_t> record) override;
  Result<bool> ContainsPreKey(std::uint32_t id) override;
  Status RemovePreKey(std::uint32_t id) override;

 private:
  std::map<std::uint32_t, SecretBytes> records_;
};

class InMemorySignedPreKeyStore final : public SignedPreKeyStore {
 public:
  Result<std::optional<SecretBytes>> LoadSignedPreKey(std::uint32_t id) override;
  Status StoreSignedPreKey(std::uint32_t id, std::span<const std::uint8_t> record) override;
  Result<bool> ContainsSignedPreKey(std::uint32_t id) override;
  Status RemoveSignedPreKey(std::uint32_t id) override;

 private:
  std::map<std::uint32_t, SecretBytes> records_;
};

// Trust on first use: a key is trusted for an address that has no recorded identity, or
// when it equals the recorded one.
class InMemoryIdentityKeyStore final : public IdentityKeyStore {
 public:
  Result<std::optional<LocalIdentity>> LoadLocalIdentity() override;
  Status StoreLocalIdentity(std::span<const std::uint8_t> public_key,
                            std::span<const std::uint8_t> private_key,
                            std::uint32_t registration_id) override;
  Status SaveIdentity(const SignalAddress& address,
                      std::span<const std::uint8_t> identity_key) override;
  Result<std::optional<std::vector<std::uint8_t>>> LoadIdentity(
      const SignalAddress& address) override;
  Result<bool> IsTrusted(const SignalAddress& address,
                         std::span<const std::uint8_t> identity_key) override;

 private:
  std::optional<LocalIdentity> local_;
  std::map<std::pair<std::string, std::int32_t>, std::vector<std::uint8_t>> remote_;
};

class InMemorySenderKeyStore final : public SenderKeyStore {
 public:
  Result<std::optional<SecretBytes>> LoadSenderKey(std::string_view group_id,
                                                   const SignalAddress& sender) override;
  Status StoreSenderKey(std::string_view group_id, const SignalAddress& sender,
                        std::span<const std::uint8_t> record) override;
  Status DeleteSenderKey(std::string_view group_id, const SignalAddress& sender) override;

 private:
  std::map<std::tuple<std::string, std::string, std::int32_t>, SecretBytes> records_;
};

class InMemoryGroupReplayGuardStore final : public GroupReplayGuardStore {
 public:
  Result<std::optional<std::uint32_t>> LoadHighestIteration(std::string_view group_id,
                                                            const SignalAddress& sender,
                                                            std::uint32_t key_id) override;
  Status StoreHighestIteration(std::string_view group_id, const SignalAddress& sender,
                               std::uint32_t key_id, std::uint32_t iteration) override;

 private:
  std::map<std::tuple<std::string, std::string, std::int32_t, std::uint32_t>, std::uint32_t>
      highest_;
};

// Every store of one device in one object. Neither copyable nor movable, so the pointers
// returned by stores() stay valid for the object's whole life.
class InMemorySignalStores {
 public:
  InMemorySignalStores() = default;
  InMemorySignalStores(const InMemorySignalStores&) = delete;
  InMemorySignalStores& operator=(const InMemorySignalStores&) = delete;

  // Pointers to the members below, for SignalDevice::Create.
  SignalStores stores() {
    return SignalStores{&session, &pre_key, &signed_pre_key, &identity, &sender_key, &group_replay};
  }

  InMemorySessionStore session;
  InMemoryPreKeyStore pre_key;
  InMemorySignedPreKeyStore signed_pre_key;
  InMemoryIdentityKeyStore identity;
  InMemorySenderKeyStore sender_key;
  InMemoryGroupReplayGuardStore group_replay;
};

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SIGNAL_MEMORY_STORES_H_
