#include "coffre/crypto/signal_memory_stores.h"

#include <algorithm>
#include <string>
#include <utility>

namespace coffre::crypto {
namespace {

std::pair<std::string, std::int32_t> Key(const SignalAddress& address) {
  return {address.name, address.device_id};
}

// Copies a stored record for the caller: the store keeps its own copy.
std::optional<SecretBytes> CopyIfFound(const std::map<std::uint32_t, SecretBytes>& records,
                                       std::uint32_t id) {
  const auto it = records.find(id);
  if (it == records.end()) return std::nullopt;
  return it->second.Clone();
}

}  // namespace

// --- Sessions -----------------------------------------------------------------------------

Result<std::optional<SecretBytes>> InMemorySessionStore::LoadSession(const SignalAddress& address) {
  const auto it = records_.find(Key(address));
  if (it == records_.end()) return std::optional<SecretBytes>();
  return std::optional<SecretBytes>(it->second.Clone());
}

Status InMemorySessionStore::StoreSession(const SignalAddress& address,
                                          std::span<const std::uint8_t> record) {
  records_.insert_or_assign(Key(address), SecretBytes::CopyOf(record));
  return Ok();
}

Result<bool> InMemorySessionStore::ContainsSession(const SignalAddress& address) {
  return records_.contains(Key(address));
}

Result<bool> InMemorySessionStore::DeleteSession(const SignalAddress& address) {
  return records_.erase(Key(address)) > 0;
}

Result<std::size_t> InMemorySessionStore::DeleteAllSessions(std::string_view name) {
  return static_cast<std::size_t>(
      std::erase_if(records_, [&](const auto& entry) { return entry.first.first == name; }));
}

Result<std::vector<std::int32_t>> InMemorySessionStore::SubDeviceSessions(std::string_view name) {
  std::vector<std::int32_t> devices;
  for (const auto& [key, record] : records_) {
    if (key.first == name) devices.push_back(key.second);
  }
  return devices;
}

// --- Prekeys ------------------------------------------------------------------------------

Result<std::optional<SecretBytes>> InMemoryPreKeyStore::LoadPreKey(std::uint32_t id) {
  return CopyIfFound(records_, id);
}

Status InMemoryPreKeyStore::StorePreKey(std::uint32_t id, std::span<const std::uint8_t> record) {
  records_.insert_or_assign(id, SecretBytes::CopyOf(record));
  return Ok();
}

Result<bool> InMemoryPreKeyStore::ContainsPreKey(std::uint32_t id) { return records_.contains(id); }

Status InMemoryPreKeyStore::RemovePreKey(std::uint32_t id) {
  records_.erase(id);
  return Ok();
}

Result<std::optional<SecretBytes>> InMemorySignedPreKeyStore::LoadSignedPreKey(std::uint32_t id) {
  return CopyIfFound(records_, id);
}

Status InMemorySignedPreKeyStore::StoreSignedPreKey(std::uint32_t id,
                                                    std::span<const std::uint8_t> record) {
  records_.insert_or_assign(id, SecretBytes::CopyOf(record));
  return Ok();
}

Result<bool> InMemorySignedPreKeyStore::ContainsSignedPreKey(std::uint32_t id) {
  return records_.contains(id);
}

Status InMemorySignedPreKeyStore::RemoveSignedPreKey(std::uint32_t id) {
  records_.erase(id);
  return Ok();
}

// --- Identities ---------------------------------------------------------------------------

Result<std::optional<LocalIdentity>> InMemoryIdentityKeyStore::LoadLocalIdentity() {
  if (!local_) return std::optional<LocalIdentity>();
  return std::optional<LocalIdentity>(
      LocalIdentity{local_->public_key, local_->private_key.Clone(), local_->registration_id});
}

Status InMemoryIdentityKeyStore::StoreLocalIdentity(std::span<const std::uint8_t> public_key,
                                                    std::span<const std::uint8_t> private_key,
                                                    std::uint32_t registration_id) {
  local_ = LocalIdentity{std::vector<std::uint8_t>(public_key.begin(), public_key.end()),
                         SecretBytes::CopyOf(private_key), registration_id};
  return Ok();
}

Status InMemoryIdentityKeyStore::SaveIdentity(const SignalAddress& address,
                                              std::span<const std::uint8_t> identity_key) {
  remote_.insert_or_assign(Key(address),
                           std::vector<std::uint8_t>(identity_key.begin(), identity_key.end()));
  return Ok();
}

Result<std::optional<std::vector<std::uint8_t>>> InMemoryIdentityKeyStore::LoadIdentity(
    const SignalAddress& address) {
  const auto it = remote_.find(Key(address));
  if (it == remote_.end()) return std::optional<std::vector<std::uint8_t>>();
  return std::optional<std::vector<std::uint8_t>>(it->second);
}

Result<bool> InMemoryIdentityKeyStore::IsTrusted(const SignalAddress& address,
                                                 std::span<const std::uint8_t> identity_key) {
  const auto it = remote_.find(Key(address));
  if (it == remote_.end()) return true;  // first use
  // Public keys: an ordinary comparison is fine.
  return std::equal(it->second.begin(), it->second.end(), identity_key.begin(), identity_key.end());
}

// --- Sender keys --------------------------------------------------------------------------

Result<std::optional<SecretBytes>> InMemorySenderKeyStore::LoadSenderKey(
    std::string_view group_id, const SignalAddress& sender) {
  const auto it = records_.find({std::string(group_id), sender.name, sender.device_id});
  if (it == records_.end()) return std::optional<SecretBytes>();
  return std::optional<SecretBytes>(it->second.Clone());
}

Status InMemorySenderKeyStore::StoreSenderKey(std::string_view group_id,
                                              const SignalAddress& sender,
                                              std::span<const std::uint8_t> record) {
  records_.insert_or_assign({std::string(group_id), sender.name, sender.device_id},
                            SecretBytes::CopyOf(record));
  return Ok();
}

Status InMemorySenderKeyStore::DeleteSenderKey(std::string_view group_id,
                                               const SignalAddress& sender) {
  records_.erase({std::string(group_id), sender.name, sender.device_id});
  return Ok();
}

Result<std::optional<std::uint32_t>> InMemoryGroupReplayGuardStore::LoadHighestIteration(
    std::string_view group_id, const SignalAddress& sender, std::uint32_t key_id) {
  const auto it = highest_.find({std::string(group_id), sender.name, sender.device_id, key_id});
  if (it == highest_.end()) return std::optional<std::uint32_t>();
  return std::optional<std::uint32_t>(it->second);
}

Status InMemoryGroupReplayGuardStore::StoreHighestIteration(std::string_view group_id,
                                                            const SignalAddress& sender,
                                                            std::uint32_t key_id,
                                                            std::uint32_t iteration) {
  highest_.insert_or_assign({std::string(group_id), sender.name, sender.device_id, key_id},
                            iteration);
  return Ok();
}

}  // namespace coffre::crypto
