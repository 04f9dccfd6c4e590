// Behaviour of the relay's SQLCipher store: each method's contract, restarts, concurrency
// and group commit (relay_store.h, storage/src/relay_store.cc).
#include "coffre/storage/relay_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "../../storage/src/relay_store_internal.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::storage {
namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr std::int64_t kHour = 60 * 60 * 1000;

// A fresh directory per test, removed afterwards.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string directory = ::testing::TempDir() + "coffre-relay-store-XXXXXX";
    if (::mkdtemp(directory.data()) != nullptr) path_ = directory;
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  bool ok() const { return !path_.empty(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

Bytes Filled(std::size_t size, std::uint8_t value) { return Bytes(size, value); }
Bytes NewId() { return crypto::RandomBytes(16); }
Bytes NewHash() { return crypto::RandomBytes(32); }

DeviceRecord Device(std::string user_id, std::uint32_t device_id) {
  DeviceRecord device;
  device.user_id = std::move(user_id);
  device.device_id = device_id;
  device.certificate = Filled(120, static_cast<std::uint8_t>(device_id));
  device.signing_key = Filled(32, 0x51);
  device.signal_identity_key = Filled(33, 0x05);
  device.created_ms = kNow;
  return device;
}

UserRecord User(std::string user_id) {
  UserRecord user;
  user.user_id = std::move(user_id);
  user.identity_key = Filled(32, 0x1d);
  user.created_ms = kNow;
  return user;
}

NewEnvelope Envelope(std::string recipient, std::uint32_t recipient_device, std::string sender,
                     std::uint32_t sender_device, Bytes client_id, std::uint8_t fill = 0xee) {
  NewEnvelope envelope;
  envelope.recipient_user_id = std::move(recipient);
  envelope.recipient_device_id = recipient_device;
  envelope.sender_user_id = std::move(sender);
  envelope.sender_device_id = sender_device;
  envelope.client_id = std::move(client_id);
  envelope.type = 3;
  envelope.ciphertext = Filled(200, fill);
  envelope.received_ms = kNow;
  return envelope;
}

SignedPreKeyRecord SignedPreKey(std::uint32_t id) {
  SignedPreKeyRecord key;
  key.id = id;
  key.public_key = Filled(33, static_cast<std::uint8_t>(id));
  key.signature = Filled(64, 0x5e);
  key.timestamp_ms = kNow;
  return key;
}

std::vector<OneTimePreKeyRecord> OneTimePreKeys(std::uint32_t first, std::uint32_t count) {
  std::vector<OneTimePreKeyRecord> keys;
  for (std::uint32_t id = first; id < first + count; ++id) {
    keys.push_back({id, Filled(33, static_cast<std::uint8_t>(id))});
  }
  return keys;
}

ItemRecord Item(const Bytes& team, const Bytes& item, std::uint64_t version) {
  ItemRecord record;
  record.team_id = team;
  record.item_id = item;
  record.version = version;
  record.manifest = Filled(80, static_cast<std::uint8_t>(version));
  record.created_ms = kNow;
  return record;
}

std::vector<std::uint64_t> SequencesOf(const std::vector<EnvelopeRecord>& envelopes) {
  std::vector<std::uint64_t> sequences;
  for (const auto& envelope : envelopes) sequences.push_back(envelope.sequence);
  return sequences;
}

// Waits (bounded) until `count` writes are queued behind a paused writer.
bool WaitForQueued(RelayStore& store, std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (internal::QueuedWrites(store) < count) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

using RelayStoreStats = internal::RelayStoreStats;

class RelayStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(directory_.ok());
    Open();
  }

  void Open() {
    auto opened = OpenSqlCipherRelayStore(path(), key_);
    ASSERT_TRUE(opened) << opened.error().context();
    store_ = std::move(opened).value();
  }

  // Closes the store (draining its writer) and opens the files again.
  void Reopen() {
    store_.reset();
    Open();
  }

  std::filesystem::path path() const { return directory_ / "relay.db"; }

  // Registers `user_id` through an enrolment, with device 1.
  void Register(const std::string& user_id, bool admin = false) {
    const Bytes code = NewHash();
    ASSERT_TRUE(store_->CreateEnrolment(code, "sdis-13", admin, kNow + kHour));
    auto grant = store_->RegisterUser(code, kNow, User(user_id), Device(user_id, 1));
    ASSERT_TRUE(grant) << grant.error().context();
  }

  RelayStoreStats Stats() { return internal::StatsOf(*store_).value(); }

  ScratchDirectory directory_;
  crypto::SecretBytes key_ = crypto::RandomSecret(32);
  std::unique_ptr<RelayStore> store_;
};

// --- Opening --------------------------------------------------------------------------------

TEST(RelayStoreOpenTest, WrongKeyIsRefusedWithWrongPassphrase) {
  ScratchDirectory directory;
  ASSERT_TRUE(directory.ok());
  const auto path = directory / "relay.db";
  {
    auto store = OpenSqlCipherRelayStore(path, crypto::RandomSecret(32));
    ASSERT_TRUE(store) << store.error().context();
    ASSERT_TRUE((*store)->CreateEnrolment(NewHash(), "org", false, kNow));
  }
  auto reopened = OpenSqlCipherRelayStore(path, crypto::RandomSecret(32));
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().code(), ErrorCode::kWrongPassphrase);
  EXPECT_EQ(reopened.error().context(), "wrong passphrase or not a Coffre store");
}

TEST(RelayStoreOpenTest, KeyOfWrongSizeIsRefused) {
  ScratchDirectory directory;
  ASSERT_TRUE(directory.ok());
  auto store = OpenSqlCipherRelayStore(directory / "relay.db", crypto::RandomSecret(16));
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
}

TEST(RelayStoreOpenTest, InvalidOptionsAreRefused) {
  ScratchDirectory directory;
  ASSERT_TRUE(directory.ok());
  internal::RelayStoreOptions options;
  options.read_connections = 0;
  auto store = internal::OpenSqlCipherRelayStoreWithOptions(directory / "relay.db",
                                                            crypto::RandomSecret(32), options);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
}

// --- Enrolment and accounts -----------------------------------------------------------------

TEST_F(RelayStoreTest, EnrolmentCodeHashIsUnique) {
  const Bytes code = NewHash();
  ASSERT_TRUE(store_->CreateEnrolment(code, "org", false, kNow + kHour));
  auto again = store_->CreateEnrolment(code, "org", true, kNow + kHour);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
}

TEST_F(RelayStoreTest, EnrolmentRefusesWrongHashSize) {
  auto status = store_->CreateEnrolment(Filled(31, 1), "org", false, kNow);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, RegisterUserConsumesTheEnrolmentAndReturnsItsGrant) {
  const Bytes code = NewHash();
  ASSERT_TRUE(store_->CreateEnrolment(code, "city-of-lyon", true, kNow + kHour));
  UserRecord alice = User("alice");
  alice.org_id = "ignored";  // the enrolment decides
  auto grant = store_->RegisterUser(code, kNow, alice, Device("alice", 1));
  ASSERT_TRUE(grant) << grant.error().context();
  EXPECT_EQ(grant->org_id, "city-of-lyon");
  EXPECT_TRUE(grant->admin);

  auto user = store_->GetUser("alice");
  ASSERT_TRUE(user);
  ASSERT_TRUE(user->has_value());
  EXPECT_EQ((*user)->org_id, "city-of-lyon");
  EXPECT_TRUE((*user)->admin);
  EXPECT_EQ((*user)->identity_key, alice.identity_key);
  EXPECT_EQ((*user)->created_ms, kNow);

  auto device = store_->GetDevice("alice", 1);
  ASSERT_TRUE(device);
  ASSERT_TRUE(device->has_value());
  EXPECT_EQ((*device)->certificate, Device("alice", 1).certificate);
  EXPECT_FALSE((*device)->revoked);

  auto reused = store_->RegisterUser(code, kNow, User("bob"), Device("bob", 1));
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().code(), ErrorCode::kNotFound);
  auto bob = store_->GetUser("bob");
  ASSERT_TRUE(bob);
  EXPECT_FALSE(bob->has_value());
}

TEST_F(RelayStoreTest, RegisterUserRefusesExpiredAndUnknownCodes) {
  const Bytes code = NewHash();
  ASSERT_TRUE(store_->CreateEnrolment(code, "org", false, kNow));
  auto expired = store_->RegisterUser(code, kNow, User("alice"), Device("alice", 1));
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code(), ErrorCode::kNotFound);
  auto unknown = store_->RegisterUser(NewHash(), kNow, User("alice"), Device("alice", 1));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  auto device = store_->GetDevice("alice", 1);
  ASSERT_TRUE(device);
  EXPECT_FALSE(device->has_value());
}

TEST_F(RelayStoreTest, TakenUserIdLeavesTheCodeUnused) {
  Register("alice");
  const Bytes code = NewHash();
  ASSERT_TRUE(store_->CreateEnrolment(code, "org", false, kNow + kHour));
  auto taken = store_->RegisterUser(code, kNow, User("alice"), Device("alice", 2));
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
  auto device = store_->GetDevice("alice", 2);
  ASSERT_TRUE(device);
  EXPECT_FALSE(device->has_value());
  EXPECT_TRUE(store_->RegisterUser(code, kNow, User("bob"), Device("bob", 1)));
}

TEST_F(RelayStoreTest, RegisterUserRefusesAFirstDeviceOfAnotherUser) {
  const Bytes code = NewHash();
  ASSERT_TRUE(store_->CreateEnrolment(code, "org", false, kNow + kHour));
  auto mismatched = store_->RegisterUser(code, kNow, User("alice"), Device("bob", 1));
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(mismatched.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, DeviceIdsAreNeverReusedEvenAfterRevocation) {
  Register("alice");
  ASSERT_TRUE(store_->AddDevice(Device("alice", 2)));
  auto duplicate = store_->AddDevice(Device("alice", 2));
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store_->RevokeDevice("alice", 2));
  auto after_revocation = store_->AddDevice(Device("alice", 2));
  ASSERT_FALSE(after_revocation);
  EXPECT_EQ(after_revocation.error().code(), ErrorCode::kAlreadyExists);
}

TEST_F(RelayStoreTest, AddDeviceNeedsAnExistingUser) {
  auto status = store_->AddDevice(Device("nobody", 1));
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), ErrorCode::kNotFound);
}

TEST_F(RelayStoreTest, ListDevicesIncludesRevokedOnesByDeviceId) {
  Register("alice");
  ASSERT_TRUE(store_->AddDevice(Device("alice", 7)));
  ASSERT_TRUE(store_->AddDevice(Device("alice", 3)));
  ASSERT_TRUE(store_->RevokeDevice("alice", 3));
  auto devices = store_->ListDevices("alice");
  ASSERT_TRUE(devices);
  ASSERT_EQ(devices->size(), 3u);
  EXPECT_EQ((*devices)[0].device_id, 1u);
  EXPECT_EQ((*devices)[1].device_id, 3u);
  EXPECT_TRUE((*devices)[1].revoked);
  EXPECT_EQ((*devices)[2].device_id, 7u);
  EXPECT_FALSE((*devices)[2].revoked);
  EXPECT_EQ((*devices)[2].signal_identity_key, Device("alice", 7).signal_identity_key);
}

TEST_F(RelayStoreTest, RevokeUnknownDeviceIsNotFound) {
  auto status = store_->RevokeDevice("alice", 1);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code(), ErrorCode::kNotFound);
}

TEST_F(RelayStoreTest, RevokeDeviceDeletesSessionsPreKeysAndQueuedEnvelopes) {
  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  const Bytes token = NewHash();
  ASSERT_TRUE(store_->StoreSession(token, {"bob", 2, kNow + kHour}));
  ASSERT_TRUE(store_->StorePreKeys("bob", 2, 77, SignedPreKey(1), OneTimePreKeys(1, 5)));
  const std::vector<NewEnvelope> envelopes = {Envelope("bob", 2, "alice", 1, NewId()),
                                              Envelope("bob", 1, "alice", 1, NewId())};
  ASSERT_TRUE(store_->EnqueueEnvelopes(envelopes));

  ASSERT_TRUE(store_->RevokeDevice("bob", 2));

  auto device = store_->GetDevice("bob", 2);
  ASSERT_TRUE(device && device->has_value());
  EXPECT_TRUE((*device)->revoked);
  auto session = store_->LookupSession(token, kNow);
  ASSERT_TRUE(session);
  EXPECT_FALSE(session->has_value());
  auto bundle = store_->TakePreKeyBundle("bob", 2);
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().code(), ErrorCode::kNotFound);
  auto queued = store_->FetchEnvelopes("bob", 2, 0, 100);
  ASSERT_TRUE(queued);
  EXPECT_TRUE(queued->empty());
  // The other device of the same user keeps its mail.
  auto other = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->size(), 1u);
  // Nothing can be queued or authenticated behind the revocation.
  const std::vector<NewEnvelope> late = {Envelope("bob", 2, "alice", 1, NewId())};
  auto enqueued = store_->EnqueueEnvelopes(late);
  ASSERT_FALSE(enqueued);
  EXPECT_EQ(enqueued.error().code(), ErrorCode::kNotFound);
  auto stored = store_->StoreSession(NewHash(), {"bob", 2, kNow + kHour});
  ASSERT_FALSE(stored);
  EXPECT_EQ(stored.error().code(), ErrorCode::kNotFound);
  // Revoking again is harmless.
  EXPECT_TRUE(store_->RevokeDevice("bob", 2));
}

// --- Sessions -------------------------------------------------------------------------------

TEST_F(RelayStoreTest, SessionIsFoundUntilItExpiresThenDeleted) {
  Register("alice");
  const Bytes token = NewHash();
  ASSERT_TRUE(store_->StoreSession(token, {"alice", 1, kNow + kHour}));
  auto found = store_->LookupSession(token, kNow);
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->user_id, "alice");
  EXPECT_EQ((*found)->device_id, 1u);
  EXPECT_EQ((*found)->expires_ms, kNow + kHour);

  auto expired = store_->LookupSession(token, kNow + kHour);
  ASSERT_TRUE(expired);
  EXPECT_FALSE(expired->has_value());
  // Deleted, not merely hidden: an earlier clock does not bring it back.
  auto gone = store_->LookupSession(token, kNow);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  // And its hash is free again.
  EXPECT_TRUE(store_->StoreSession(token, {"alice", 1, kNow + 2 * kHour}));
}

TEST_F(RelayStoreTest, SessionRulesOnHashesAndDevices) {
  Register("alice");
  const Bytes token = NewHash();
  ASSERT_TRUE(store_->StoreSession(token, {"alice", 1, kNow + kHour}));
  auto duplicate = store_->StoreSession(token, {"alice", 1, kNow + kHour});
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code(), ErrorCode::kAlreadyExists);
  auto unknown_device = store_->StoreSession(NewHash(), {"alice", 9, kNow + kHour});
  ASSERT_FALSE(unknown_device);
  EXPECT_EQ(unknown_device.error().code(), ErrorCode::kNotFound);
  auto unknown = store_->LookupSession(NewHash(), kNow);
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(unknown->has_value());
}

// --- Prekeys --------------------------------------------------------------------------------

TEST_F(RelayStoreTest, PreKeyBundleNeedsASignedPreKey) {
  Register("alice");
  auto none = store_->TakePreKeyBundle("alice", 1);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1234, std::nullopt, OneTimePreKeys(1, 3)));
  auto still_none = store_->TakePreKeyBundle("alice", 1);
  ASSERT_FALSE(still_none);
  EXPECT_EQ(still_none.error().code(), ErrorCode::kNotFound);
  auto unknown = store_->TakePreKeyBundle("nobody", 1);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
}

TEST_F(RelayStoreTest, PreKeyBundleHandsOutLowestOneTimePreKeyOnce) {
  Register("alice");
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1234, SignedPreKey(9), OneTimePreKeys(10, 2)));
  // Added later but with a lower id: handed out first.
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1234, std::nullopt, OneTimePreKeys(5, 1)));

  auto first = store_->TakePreKeyBundle("alice", 1);
  ASSERT_TRUE(first) << first.error().context();
  EXPECT_EQ(first->registration_id, 1234u);
  EXPECT_EQ(first->signal_identity_key, Device("alice", 1).signal_identity_key);
  EXPECT_EQ(first->signed_pre_key.id, 9u);
  EXPECT_EQ(first->signed_pre_key.public_key, SignedPreKey(9).public_key);
  EXPECT_EQ(first->signed_pre_key.signature, SignedPreKey(9).signature);
  ASSERT_TRUE(first->one_time_pre_key.has_value());
  EXPECT_EQ(first->one_time_pre_key->id, 5u);
  EXPECT_EQ(first->one_time_pre_keys_left, 2u);

  auto second = store_->TakePreKeyBundle("alice", 1);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->one_time_pre_key->id, 10u);
  EXPECT_EQ(second->one_time_pre_keys_left, 1u);
  auto third = store_->TakePreKeyBundle("alice", 1);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->one_time_pre_key->id, 11u);
  EXPECT_EQ(third->one_time_pre_keys_left, 0u);
  auto exhausted = store_->TakePreKeyBundle("alice", 1);
  ASSERT_TRUE(exhausted);
  EXPECT_FALSE(exhausted->one_time_pre_key.has_value());
  EXPECT_EQ(exhausted->signed_pre_key.id, 9u);
}

TEST_F(RelayStoreTest, OneTimePreKeyCountFollowsUploadsFetchesAndRevocation) {
  Register("alice");
  EXPECT_EQ(store_->OneTimePreKeyCount("alice", 1).value(), 0u);
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1234, SignedPreKey(1), OneTimePreKeys(1, 5)));
  // Ids already stored are replaced, not added.
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1234, std::nullopt, OneTimePreKeys(4, 4)));
  EXPECT_EQ(store_->OneTimePreKeyCount("alice", 1).value(), 7u);
  ASSERT_TRUE(store_->TakePreKeyBundle("alice", 1));
  EXPECT_EQ(store_->OneTimePreKeyCount("alice", 1).value(), 6u);
  EXPECT_EQ(store_->OneTimePreKeyCount("alice", 2).value(), 0u);
  EXPECT_EQ(store_->OneTimePreKeyCount("nobody", 1).value(), 0u);
  ASSERT_TRUE(store_->RevokeDevice("alice", 1));
  EXPECT_EQ(store_->OneTimePreKeyCount("alice", 1).value(), 0u);
  auto invalid = store_->OneTimePreKeyCount("", 1);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, StorePreKeysReplacesSignedPreKeyAndRegistrationId) {
  Register("alice");
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1, SignedPreKey(1), {}));
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 2, SignedPreKey(2), {}));
  auto bundle = store_->TakePreKeyBundle("alice", 1);
  ASSERT_TRUE(bundle);
  EXPECT_EQ(bundle->registration_id, 2u);
  EXPECT_EQ(bundle->signed_pre_key.id, 2u);
  auto unknown = store_->StorePreKeys("alice", 4, 1, SignedPreKey(1), {});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  auto malformed = store_->StorePreKeys("alice", 1, 1, std::nullopt,
                                        std::vector<OneTimePreKeyRecord>{{1, Filled(32, 1)}});
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, ConcurrentBundleFetchesNeverShareAOneTimePreKey) {
  Register("alice");
  constexpr std::uint32_t kKeys = 200;
  constexpr int kThreads = 8;
  constexpr int kFetchesPerThread = 30;  // 240 fetches for 200 keys
  ASSERT_TRUE(store_->StorePreKeys("alice", 1, 1, SignedPreKey(1), OneTimePreKeys(1, kKeys)));

  std::mutex mutex;
  std::vector<std::uint32_t> handed_out;
  std::atomic<int> failures{0};
  std::atomic<int> without_key{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kFetchesPerThread; ++i) {
        auto bundle = store_->TakePreKeyBundle("alice", 1);
        if (!bundle) {
          ++failures;
          continue;
        }
        if (!bundle->one_time_pre_key) {
          ++without_key;
          continue;
        }
        std::lock_guard lock(mutex);
        handed_out.push_back(bundle->one_time_pre_key->id);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(handed_out.size(), kKeys);
  EXPECT_EQ(without_key.load(), kThreads * kFetchesPerThread - static_cast<int>(kKeys));
  const std::set<std::uint32_t> distinct(handed_out.begin(), handed_out.end());
  EXPECT_EQ(distinct.size(), handed_out.size()) << "a one-time prekey was handed out twice";
}

// --- Mailboxes ------------------------------------------------------------------------------

TEST_F(RelayStoreTest, EnvelopesComeBackInOrderPerDevice) {
  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  std::vector<NewEnvelope> batch;
  for (std::uint8_t i = 0; i < 5; ++i) {
    batch.push_back(Envelope("bob", 1, "alice", 1, NewId(), i));
    batch.push_back(Envelope("bob", 2, "alice", 1, NewId(), static_cast<std::uint8_t>(100 + i)));
  }
  auto sequences = store_->EnqueueEnvelopes(batch);
  ASSERT_TRUE(sequences) << sequences.error().context();
  ASSERT_EQ(sequences->size(), batch.size());
  // Each device counts on its own, from 1.
  EXPECT_EQ(*sequences, (std::vector<std::uint64_t>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));

  auto fetched = store_->FetchEnvelopes("bob", 2, 0, 100);
  ASSERT_TRUE(fetched);
  ASSERT_EQ(fetched->size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    const auto& envelope = (*fetched)[i];
    EXPECT_EQ(envelope.sequence, i + 1);
    EXPECT_EQ(envelope.ciphertext, batch[2 * i + 1].ciphertext);
    EXPECT_EQ(envelope.client_id, batch[2 * i + 1].client_id);
    EXPECT_EQ(envelope.sender_user_id, "alice");
    EXPECT_EQ(envelope.sender_device_id, 1u);
    EXPECT_EQ(envelope.type, 3u);
    EXPECT_EQ(envelope.received_ms, kNow);
  }
  auto page = store_->FetchEnvelopes("bob", 1, 2, 2);
  ASSERT_TRUE(page);
  EXPECT_EQ(SequencesOf(*page), (std::vector<std::uint64_t>{3, 4}));
  auto none = store_->FetchEnvelopes("bob", 1, 0, 0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(RelayStoreTest, AckDeletesOnlyTheListedEnvelopesOfThatDevice) {
  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  std::vector<NewEnvelope> batch;
  for (int i = 0; i < 4; ++i) {
    batch.push_back(Envelope("bob", 1, "alice", 1, NewId()));
    batch.push_back(Envelope("bob", 2, "alice", 1, NewId()));
  }
  ASSERT_TRUE(store_->EnqueueEnvelopes(batch));

  const std::vector<std::uint64_t> acked = {1, 3, 99};
  auto deleted = store_->AckEnvelopes("bob", 1, acked);
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 2u);  // 99 never existed
  auto left = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(left);
  EXPECT_EQ(SequencesOf(*left), (std::vector<std::uint64_t>{2, 4}));
  // The same sequence numbers on the other device are untouched.
  auto other = store_->FetchEnvelopes("bob", 2, 0, 100);
  ASSERT_TRUE(other);
  EXPECT_EQ(SequencesOf(*other), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  // Acknowledging again finds nothing.
  auto again = store_->AckEnvelopes("bob", 1, acked);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
}

TEST_F(RelayStoreTest, MailboxUsageCountsUnacknowledgedEnvelopesAndTheirBytes) {
  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  auto empty = store_->MailboxUsage("bob", 1);
  ASSERT_TRUE(empty) << empty.error().context();
  EXPECT_EQ(empty->count, 0u);
  EXPECT_EQ(empty->bytes, 0u);

  std::vector<NewEnvelope> batch;
  for (std::size_t size : {10u, 300u, 70'000u}) {
    NewEnvelope envelope = Envelope("bob", 1, "alice", 1, NewId());
    envelope.ciphertext = Filled(size, 0x42);  // the largest one spills onto overflow pages
    batch.push_back(std::move(envelope));
  }
  batch.push_back(Envelope("bob", 2, "alice", 1, NewId()));
  // A retry of the first: stored once, counted once.
  batch.push_back(batch.front());
  ASSERT_TRUE(store_->EnqueueEnvelopes(batch));
  auto usage = store_->MailboxUsage("bob", 1);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->count, 3u);
  EXPECT_EQ(usage->bytes, 10u + 300u + 70'000u);
  EXPECT_EQ(store_->MailboxUsage("bob", 2)->count, 1u);

  const std::vector<std::uint64_t> acked = {2};
  ASSERT_TRUE(store_->AckEnvelopes("bob", 1, acked));
  usage = store_->MailboxUsage("bob", 1);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->count, 2u);
  EXPECT_EQ(usage->bytes, 10u + 70'000u);
  // Revocation deletes the mailbox; unknown devices have none.
  ASSERT_TRUE(store_->RevokeDevice("bob", 1));
  EXPECT_EQ(store_->MailboxUsage("bob", 1)->count, 0u);
  EXPECT_EQ(store_->MailboxUsage("nobody", 1)->bytes, 0u);
}

TEST_F(RelayStoreTest, ActiveMailboxUsageAnswersEachDeviceInOrder) {
  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  ASSERT_TRUE(store_->AddDevice(Device("bob", 3)));
  ASSERT_TRUE(store_->RevokeDevice("bob", 3));
  ASSERT_TRUE(store_->EnqueueEnvelopes(std::vector<NewEnvelope>{
      Envelope("bob", 2, "alice", 1, NewId()), Envelope("bob", 2, "alice", 1, NewId()),
      Envelope("alice", 1, "bob", 1, NewId())}));

  const std::vector<DeviceAddress> devices = {{"bob", 2},   {"bob", 3}, {"nobody", 1},
                                              {"alice", 1}, {"bob", 1}, {"bob", 2}};
  auto usages = store_->ActiveMailboxUsage(devices);
  ASSERT_TRUE(usages) << usages.error().context();
  ASSERT_EQ(usages->size(), devices.size());
  ASSERT_TRUE((*usages)[0].has_value());
  EXPECT_EQ((*usages)[0]->count, 2u);
  EXPECT_EQ((*usages)[0]->bytes, 400u);
  EXPECT_FALSE((*usages)[1].has_value());  // revoked
  EXPECT_FALSE((*usages)[2].has_value());  // unknown
  ASSERT_TRUE((*usages)[3].has_value());
  EXPECT_EQ((*usages)[3]->count, 1u);
  ASSERT_TRUE((*usages)[4].has_value());  // active, empty mailbox
  EXPECT_EQ((*usages)[4]->count, 0u);
  ASSERT_TRUE((*usages)[5].has_value());
  EXPECT_EQ((*usages)[5]->count, 2u);

  auto none = store_->ActiveMailboxUsage({});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  const std::vector<DeviceAddress> invalid = {{"bob", 1}, {"", 1}};
  auto refused = store_->ActiveMailboxUsage(invalid);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, ReadsAfterABatchedReadSeeLaterWrites) {
  // The batched read runs in a read transaction on a pooled connection; none may keep its
  // snapshot for the reads that follow on that connection.
  Register("alice");
  Register("bob");
  const std::vector<DeviceAddress> bob = {{"bob", 1}};
  const std::size_t connections = internal::RelayStoreOptions().read_connections;
  for (std::size_t round = 1; round <= 3; ++round) {
    for (std::size_t i = 0; i < 2 * connections; ++i) {
      auto usages = store_->ActiveMailboxUsage(bob);
      ASSERT_TRUE(usages && (*usages)[0].has_value());
      EXPECT_EQ((*usages)[0]->count, round - 1);
    }
    ASSERT_TRUE(store_->EnqueueEnvelopes(
        std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, NewId())}));
    for (std::size_t i = 0; i < 2 * connections; ++i) {
      EXPECT_EQ(store_->MailboxUsage("bob", 1).value().count, round);
    }
  }
}

TEST_F(RelayStoreTest, DuplicateClientIdIsStoredOnceEvenAfterAck) {
  Register("alice");
  Register("bob");
  const Bytes client_id = NewId();
  const std::vector<NewEnvelope> twice = {Envelope("bob", 1, "alice", 1, client_id),
                                          Envelope("bob", 1, "alice", 1, client_id)};
  auto first = store_->EnqueueEnvelopes(twice);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (std::vector<std::uint64_t>{1, 1}));
  auto queued = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(queued);
  EXPECT_EQ(queued->size(), 1u);

  const std::vector<NewEnvelope> retry = {Envelope("bob", 1, "alice", 1, client_id)};
  auto retried = store_->EnqueueEnvelopes(retry);
  ASSERT_TRUE(retried);
  EXPECT_EQ(*retried, (std::vector<std::uint64_t>{1}));

  const std::vector<std::uint64_t> ack = {1};
  ASSERT_TRUE(store_->AckEnvelopes("bob", 1, ack));
  auto late = store_->EnqueueEnvelopes(retry);
  ASSERT_TRUE(late);
  EXPECT_EQ(*late, (std::vector<std::uint64_t>{1}));
  auto after_ack = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(after_ack);
  EXPECT_TRUE(after_ack->empty()) << "a retry after the ack was delivered again";

  // The same client id from another sender device is another message.
  ASSERT_TRUE(store_->AddDevice(Device("alice", 2)));
  const std::vector<NewEnvelope> other_device = {Envelope("bob", 1, "alice", 2, client_id)};
  auto other = store_->EnqueueEnvelopes(other_device);
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, (std::vector<std::uint64_t>{2}));
}

TEST_F(RelayStoreTest, SequencesAreNeverReusedAfterAck) {
  Register("alice");
  Register("bob");
  const std::vector<NewEnvelope> one = {Envelope("bob", 1, "alice", 1, NewId())};
  ASSERT_TRUE(store_->EnqueueEnvelopes(one));
  const std::vector<std::uint64_t> ack = {1};
  ASSERT_TRUE(store_->AckEnvelopes("bob", 1, ack));
  Reopen();
  const std::vector<NewEnvelope> next = {Envelope("bob", 1, "alice", 1, NewId())};
  auto sequences = store_->EnqueueEnvelopes(next);
  ASSERT_TRUE(sequences);
  EXPECT_EQ(*sequences, (std::vector<std::uint64_t>{2}));
}

TEST_F(RelayStoreTest, EnqueueIsAllOrNothing) {
  Register("alice");
  Register("bob");
  const Bytes client_id = NewId();
  const std::vector<NewEnvelope> batch = {Envelope("bob", 1, "alice", 1, client_id),
                                          Envelope("bob", 9, "alice", 1, NewId())};
  auto refused = store_->EnqueueEnvelopes(batch);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kNotFound);
  auto queued = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(queued);
  EXPECT_TRUE(queued->empty());
  // Neither the sequence nor the client id of the rolled-back envelope was kept.
  const std::vector<NewEnvelope> valid = {Envelope("bob", 1, "alice", 1, client_id)};
  auto stored = store_->EnqueueEnvelopes(valid);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, (std::vector<std::uint64_t>{1}));
  auto bad_id = store_->EnqueueEnvelopes(
      std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, Filled(15, 1))});
  ASSERT_FALSE(bad_id);
  EXPECT_EQ(bad_id.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, ClientIdsArePrunedOnlyOnceAcknowledgedAndOld) {
  Register("alice");
  Register("bob");
  const Bytes acked_id = NewId();
  const Bytes queued_id = NewId();
  const std::vector<NewEnvelope> batch = {Envelope("bob", 1, "alice", 1, acked_id),
                                          Envelope("bob", 1, "alice", 1, queued_id)};
  ASSERT_TRUE(store_->EnqueueEnvelopes(batch));
  const std::vector<std::uint64_t> ack = {1};
  ASSERT_TRUE(store_->AckEnvelopes("bob", 1, ack));

  auto too_recent = internal::PruneEnvelopeIds(*store_, kNow);
  ASSERT_TRUE(too_recent);
  EXPECT_EQ(*too_recent, 0u);
  auto pruned = internal::PruneEnvelopeIds(*store_, kNow + 1);
  ASSERT_TRUE(pruned);
  EXPECT_EQ(*pruned, 1u);  // the queued envelope's id stays

  auto queued_retry =
      store_->EnqueueEnvelopes(std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, queued_id)});
  ASSERT_TRUE(queued_retry);
  EXPECT_EQ(*queued_retry, (std::vector<std::uint64_t>{2}));
  // Past the retention, a retry of the acknowledged one is a new message.
  auto forgotten =
      store_->EnqueueEnvelopes(std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, acked_id)});
  ASSERT_TRUE(forgotten);
  EXPECT_EQ(*forgotten, (std::vector<std::uint64_t>{3}));
}

// --- Team chains ----------------------------------------------------------------------------

TEST_F(RelayStoreTest, ChainAppendsOnTheExpectedHeadAndRefusesForks) {
  const Bytes team = NewId();
  auto empty = store_->GetChainHead(team);
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->has_value());

  const ChainHead genesis{0, NewHash()};
  const std::vector<TeamMember> founders = {{"alice", 1}};
  ASSERT_TRUE(store_->AppendChainStatement(team, std::nullopt, genesis, Filled(50, 0), founders));
  auto recreate = store_->AppendChainStatement(team, std::nullopt, ChainHead{0, NewHash()},
                                               Filled(50, 9), founders);
  ASSERT_FALSE(recreate);
  EXPECT_EQ(recreate.error().code(), ErrorCode::kConflict);

  const ChainHead second{1, NewHash()};
  const std::vector<TeamMember> grown = {{"alice", 1}, {"bob", 2}};
  ASSERT_TRUE(store_->AppendChainStatement(team, genesis, second, Filled(50, 1), grown));

  // A fork: another statement on top of the head that is no longer current.
  auto fork =
      store_->AppendChainStatement(team, genesis, ChainHead{1, NewHash()}, Filled(50, 2), founders);
  ASSERT_FALSE(fork);
  EXPECT_EQ(fork.error().code(), ErrorCode::kConflict);
  // Same sequence as the head but another hash: also a fork.
  auto forged = store_->AppendChainStatement(team, ChainHead{1, NewHash()}, ChainHead{2, NewHash()},
                                             Filled(50, 3), founders);
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code(), ErrorCode::kConflict);
  auto skipping =
      store_->AppendChainStatement(team, second, ChainHead{5, NewHash()}, Filled(50, 4), founders);
  ASSERT_FALSE(skipping);
  EXPECT_EQ(skipping.error().code(), ErrorCode::kInvalidArgument);

  auto head = store_->GetChainHead(team);
  ASSERT_TRUE(head && head->has_value());
  EXPECT_EQ((*head)->sequence, 1u);
  EXPECT_EQ((*head)->hash, second.hash);
  auto chain = store_->FetchChain(team, 0);
  ASSERT_TRUE(chain);
  EXPECT_EQ(*chain, (std::vector<Bytes>{Filled(50, 0), Filled(50, 1)}));
  auto tail = store_->FetchChain(team, 1);
  ASSERT_TRUE(tail);
  EXPECT_EQ(*tail, (std::vector<Bytes>{Filled(50, 1)}));
  auto members = store_->TeamMembers(team);
  ASSERT_TRUE(members);
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[1].user_id, "bob");
  EXPECT_EQ((*members)[1].role, 2u);
}

TEST_F(RelayStoreTest, MembersAreReplacedAndTeamsOfUserFollow) {
  const Bytes team_a = NewId();
  const Bytes team_b = NewId();
  const ChainHead a0{0, NewHash()};
  const ChainHead b0{0, NewHash()};
  ASSERT_TRUE(store_->AppendChainStatement(team_a, std::nullopt, a0, Filled(10, 1),
                                           std::vector<TeamMember>{{"alice", 1}, {"bob", 2}}));
  ASSERT_TRUE(store_->AppendChainStatement(team_b, std::nullopt, b0, Filled(10, 2),
                                           std::vector<TeamMember>{{"bob", 1}}));
  auto bobs = store_->TeamsOfUser("bob");
  ASSERT_TRUE(bobs);
  EXPECT_EQ(bobs->size(), 2u);

  const ChainHead a1{1, NewHash()};
  ASSERT_TRUE(store_->AppendChainStatement(team_a, a0, a1, Filled(10, 3),
                                           std::vector<TeamMember>{{"alice", 1}}));
  auto after = store_->TeamsOfUser("bob");
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].first, team_b);
  auto alices = store_->TeamsOfUser("alice");
  ASSERT_TRUE(alices);
  ASSERT_EQ(alices->size(), 1u);
  EXPECT_EQ((*alices)[0].first, team_a);
  EXPECT_EQ((*alices)[0].second.sequence, 1u);
  EXPECT_EQ((*alices)[0].second.hash, a1.hash);

  auto twice = store_->AppendChainStatement(team_b, b0, ChainHead{1, NewHash()}, Filled(10, 4),
                                            std::vector<TeamMember>{{"bob", 1}, {"bob", 2}});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), ErrorCode::kInvalidArgument);
}

// --- Items ----------------------------------------------------------------------------------

TEST_F(RelayStoreTest, ItemVersionsAreCompareAndSwap) {
  const Bytes team = NewId();
  const Bytes item = NewId();
  std::uint64_t current = 12345;
  ASSERT_TRUE(store_->PutItemVersion(Item(team, item, 1), 0, &current));
  EXPECT_EQ(current, 1u);
  ASSERT_TRUE(store_->PutItemVersion(Item(team, item, 2), 1, &current));

  // Two editors started from version 1; the second loses and learns the current version.
  current = 0;
  auto lost = store_->PutItemVersion(Item(team, item, 2), 1, &current);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(current, 2u);
  auto recreate = store_->PutItemVersion(Item(team, item, 1), 0, &current);
  ASSERT_FALSE(recreate);
  EXPECT_EQ(recreate.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(current, 2u);
  auto missing = store_->PutItemVersion(Item(team, NewId(), 2), 1, &current);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(current, 0u);
  auto backwards = store_->PutItemVersion(Item(team, item, 2), 2, nullptr);
  ASSERT_FALSE(backwards);
  EXPECT_EQ(backwards.error().code(), ErrorCode::kInvalidArgument);

  auto latest = store_->GetItem(team, item, 0);
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ((*latest)->version, 2u);
  EXPECT_EQ((*latest)->manifest, Item(team, item, 2).manifest);
  auto old = store_->GetItem(team, item, 1);
  ASSERT_TRUE(old && old->has_value());
  EXPECT_EQ((*old)->version, 1u);
  auto absent = store_->GetItem(team, item, 3);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
}

TEST_F(RelayStoreTest, ListItemsGivesTheCurrentVersionOfEachItem) {
  const Bytes team = NewId();
  const Bytes first = NewId();
  const Bytes second = NewId();
  ItemRecord with_blob = Item(team, second, 1);
  with_blob.blob_id = NewId();
  ASSERT_TRUE(store_->PutItemVersion(Item(team, first, 1), 0, nullptr));
  ASSERT_TRUE(store_->PutItemVersion(Item(team, first, 4), 1, nullptr));
  ASSERT_TRUE(store_->PutItemVersion(with_blob, 0, nullptr));
  ASSERT_TRUE(store_->PutItemVersion(Item(NewId(), NewId(), 1), 0, nullptr));  // another team
  auto items = store_->ListItems(team, {}, 100);
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 2u);
  const auto find = [&](const Bytes& id) {
    return *std::find_if(items->begin(), items->end(),
                         [&](const ItemRecord& record) { return record.item_id == id; });
  };
  EXPECT_EQ(find(first).version, 4u);
  EXPECT_TRUE(find(first).blob_id.empty());
  EXPECT_EQ(find(second).blob_id, with_blob.blob_id);
}

TEST_F(RelayStoreTest, ListItemsPagesInIdOrderAfterACursor) {
  const Bytes team = NewId();
  std::vector<Bytes> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(NewId());
    ASSERT_TRUE(store_->PutItemVersion(Item(team, ids.back(), 1), 0, nullptr));
  }
  const Bytes bumped = ids[3];
  ASSERT_TRUE(store_->PutItemVersion(Item(team, bumped, 2), 1, nullptr));
  ASSERT_TRUE(store_->PutItemVersion(Item(NewId(), NewId(), 1), 0, nullptr));  // another team
  // Bytewise order; memcmp on the fixed 16 bytes (GCC 12 at -O3 misreports the bounds of
  // vector's own operator<).
  std::sort(ids.begin(), ids.end(),
            [](const Bytes& a, const Bytes& b) { return std::memcmp(a.data(), b.data(), 16) < 0; });

  std::vector<Bytes> seen;
  Bytes after;
  for (;;) {
    auto page = store_->ListItems(team, after, 3);
    ASSERT_TRUE(page) << page.error().context();
    ASSERT_LE(page->size(), 3u);
    for (const ItemRecord& item : *page) {
      EXPECT_EQ(item.team_id, team);
      seen.push_back(item.item_id);
    }
    if (page->size() < 3) break;
    after = page->back().item_id;
  }
  EXPECT_EQ(seen, ids);
  // The cursor need not be a stored id; one past the last gives nothing.
  const Bytes highest(16, 0xff);
  EXPECT_TRUE(store_->ListItems(team, highest, 10)->empty());
  EXPECT_EQ(store_->ListItems(team, Bytes(16, 0x00), 10)->size(), 7u);
  EXPECT_TRUE(store_->ListItems(team, {}, 0)->empty());
  // Only the current version of each item.
  auto current = store_->ListItems(team, {}, 10);
  ASSERT_TRUE(current);
  for (const ItemRecord& item : *current) {
    EXPECT_EQ(item.version, item.item_id == bumped ? 2u : 1u);
  }
  auto bad_cursor = store_->ListItems(team, Bytes(5, 1), 10);
  ASSERT_FALSE(bad_cursor);
  EXPECT_EQ(bad_cursor.error().code(), ErrorCode::kInvalidArgument);
}

// --- Blobs ----------------------------------------------------------------------------------

TEST_F(RelayStoreTest, BlobProgressIsRecordedAndChecked) {
  BlobRecord blob;
  blob.team_id = NewId();
  blob.blob_id = NewId();
  blob.size = 1000;
  blob.uploader_user_id = "alice";
  blob.uploader_device_id = 1;
  ASSERT_TRUE(store_->CreateBlob(blob));
  auto duplicate = store_->CreateBlob(blob);
  ASSERT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error().code(), ErrorCode::kAlreadyExists);

  ASSERT_TRUE(store_->UpdateBlobProgress(blob.team_id, blob.blob_id, 600, false));
  auto beyond = store_->UpdateBlobProgress(blob.team_id, blob.blob_id, 1001, false);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().code(), ErrorCode::kInvalidArgument);
  auto early = store_->UpdateBlobProgress(blob.team_id, blob.blob_id, 999, true);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code(), ErrorCode::kInvalidArgument);
  auto unknown = store_->UpdateBlobProgress(blob.team_id, NewId(), 1, false);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);

  auto partial = store_->GetBlob(blob.team_id, blob.blob_id);
  ASSERT_TRUE(partial && partial->has_value());
  EXPECT_EQ((*partial)->received, 600u);
  EXPECT_FALSE((*partial)->complete);
  ASSERT_TRUE(store_->UpdateBlobProgress(blob.team_id, blob.blob_id, 1000, true));
  auto done = store_->GetBlob(blob.team_id, blob.blob_id);
  ASSERT_TRUE(done && done->has_value());
  EXPECT_TRUE((*done)->complete);
  EXPECT_EQ((*done)->size, 1000u);
  EXPECT_EQ((*done)->uploader_user_id, "alice");
  EXPECT_EQ((*done)->uploader_device_id, 1u);
  // The same blob id in another team is another blob.
  auto elsewhere = store_->GetBlob(NewId(), blob.blob_id);
  ASSERT_TRUE(elsewhere);
  EXPECT_FALSE(elsewhere->has_value());
}

// --- Operations -----------------------------------------------------------------------------

TEST_F(RelayStoreTest, BlobUsageSumsDeclaredAndReceivedBytesPerTeamAndPerDevice) {
  const Bytes team = NewId();
  const Bytes other_team = NewId();
  const auto create = [&](const Bytes& team_id, const std::string& user, std::uint32_t device,
                          std::uint64_t size, std::uint64_t received) {
    BlobRecord blob;
    blob.team_id = team_id;
    blob.blob_id = NewId();
    blob.size = size;
    blob.received = received;
    blob.uploader_user_id = user;
    blob.uploader_device_id = device;
    EXPECT_TRUE(store_->CreateBlob(blob));
    return blob.blob_id;
  };
  auto empty = store_->TeamBlobUsage(team);
  ASSERT_TRUE(empty) << empty.error().context();
  EXPECT_EQ(empty->blobs, 0u);
  EXPECT_EQ(empty->size_bytes, 0u);

  const Bytes first = create(team, "alice", 1, 1000, 0);
  create(team, "alice", 2, 500, 500);
  create(team, "bob", 1, 4'000'000'000, 10);
  create(other_team, "alice", 1, 300, 100);
  ASSERT_TRUE(store_->UpdateBlobProgress(team, first, 250, false));

  auto usage = store_->TeamBlobUsage(team);
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->blobs, 3u);
  EXPECT_EQ(usage->size_bytes, 1000u + 500u + 4'000'000'000u);
  EXPECT_EQ(usage->received_bytes, 250u + 500u + 10u);
  // Per device: every team, and only that device of the user.
  auto alice = store_->DeviceBlobUsage("alice", 1);
  ASSERT_TRUE(alice) << alice.error().context();
  EXPECT_EQ(alice->blobs, 2u);
  EXPECT_EQ(alice->size_bytes, 1300u);
  EXPECT_EQ(alice->received_bytes, 350u);
  EXPECT_EQ(store_->DeviceBlobUsage("alice", 2)->size_bytes, 500u);
  EXPECT_EQ(store_->DeviceBlobUsage("carol", 1)->blobs, 0u);
  auto bad_team = store_->TeamBlobUsage(Bytes(3, 1));
  ASSERT_FALSE(bad_team);
  EXPECT_EQ(bad_team.error().code(), ErrorCode::kInvalidArgument);
  auto bad_user = store_->DeviceBlobUsage("", 1);
  ASSERT_FALSE(bad_user);
  EXPECT_EQ(bad_user.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(RelayStoreTest, CountsReflectTheStore) {
  auto empty = store_->Counts();
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->users, 0u);
  EXPECT_EQ(empty->blob_bytes, 0u);

  Register("alice");
  Register("bob");
  ASSERT_TRUE(store_->AddDevice(Device("bob", 2)));
  ASSERT_TRUE(store_->AddDevice(Device("bob", 3)));
  ASSERT_TRUE(store_->RevokeDevice("bob", 3));
  ASSERT_TRUE(store_->AppendChainStatement(NewId(), std::nullopt, ChainHead{0, NewHash()},
                                           Filled(10, 1), std::vector<TeamMember>{}));
  ASSERT_TRUE(store_->EnqueueEnvelopes(std::vector<NewEnvelope>{
      Envelope("bob", 1, "alice", 1, NewId()), Envelope("bob", 2, "alice", 1, NewId())}));
  for (std::uint64_t received : {300u, 45u}) {
    BlobRecord blob;
    blob.team_id = NewId();
    blob.blob_id = NewId();
    blob.size = 1000;
    blob.received = received;
    blob.uploader_user_id = "alice";
    ASSERT_TRUE(store_->CreateBlob(blob));
  }

  auto counts = store_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->users, 2u);
  EXPECT_EQ(counts->devices, 3u);  // alice 1, bob 1 and 2; bob 3 is revoked
  EXPECT_EQ(counts->teams, 1u);
  EXPECT_EQ(counts->queued_envelopes, 2u);
  EXPECT_EQ(counts->blob_bytes, 345u);
}

TEST_F(RelayStoreTest, EverythingAcknowledgedSurvivesARestart) {
  Register("alice", true);
  Register("bob");
  const Bytes token = NewHash();
  ASSERT_TRUE(store_->StoreSession(token, {"alice", 1, kNow + kHour}));
  ASSERT_TRUE(store_->StorePreKeys("bob", 1, 42, SignedPreKey(3), OneTimePreKeys(1, 3)));
  ASSERT_TRUE(store_->TakePreKeyBundle("bob", 1));  // takes prekey 1
  const Bytes client_id = NewId();
  ASSERT_TRUE(store_->EnqueueEnvelopes(std::vector<NewEnvelope>{
      Envelope("bob", 1, "alice", 1, client_id), Envelope("bob", 1, "alice", 1, NewId())}));
  ASSERT_TRUE(store_->AckEnvelopes("bob", 1, std::vector<std::uint64_t>{1}));
  const Bytes team = NewId();
  const ChainHead head{0, NewHash()};
  ASSERT_TRUE(store_->AppendChainStatement(team, std::nullopt, head, Filled(40, 7),
                                           std::vector<TeamMember>{{"alice", 1}}));
  const Bytes item = NewId();
  ASSERT_TRUE(store_->PutItemVersion(Item(team, item, 1), 0, nullptr));
  BlobRecord blob;
  blob.team_id = team;
  blob.blob_id = NewId();
  blob.size = 10;
  blob.received = 10;
  blob.complete = true;
  blob.uploader_user_id = "alice";
  ASSERT_TRUE(store_->CreateBlob(blob));

  Reopen();

  auto alice = store_->GetUser("alice");
  ASSERT_TRUE(alice && alice->has_value());
  EXPECT_TRUE((*alice)->admin);
  auto session = store_->LookupSession(token, kNow);
  ASSERT_TRUE(session && session->has_value());
  auto bundle = store_->TakePreKeyBundle("bob", 1);
  ASSERT_TRUE(bundle);
  EXPECT_EQ(bundle->registration_id, 42u);
  ASSERT_TRUE(bundle->one_time_pre_key.has_value());
  EXPECT_EQ(bundle->one_time_pre_key->id, 2u);
  auto mail = store_->FetchEnvelopes("bob", 1, 0, 10);
  ASSERT_TRUE(mail);
  EXPECT_EQ(SequencesOf(*mail), (std::vector<std::uint64_t>{2}));
  auto retry =
      store_->EnqueueEnvelopes(std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, client_id)});
  ASSERT_TRUE(retry);
  EXPECT_EQ(*retry, (std::vector<std::uint64_t>{1}));
  auto chain_head = store_->GetChainHead(team);
  ASSERT_TRUE(chain_head && chain_head->has_value());
  EXPECT_EQ((*chain_head)->hash, head.hash);
  auto members = store_->TeamMembers(team);
  ASSERT_TRUE(members);
  EXPECT_EQ(members->size(), 1u);
  auto stored_item = store_->GetItem(team, item, 0);
  ASSERT_TRUE(stored_item && stored_item->has_value());
  auto stored_blob = store_->GetBlob(team, blob.blob_id);
  ASSERT_TRUE(stored_blob && stored_blob->has_value());
  EXPECT_TRUE((*stored_blob)->complete);
}

// --- Concurrency and group commit -------------------------------------------------------------

TEST_F(RelayStoreTest, GroupCommitStoresEveryConcurrentEnvelopeWithFewCommits) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  Register("alice");
  for (int t = 0; t < kThreads; ++t) Register("user" + std::to_string(t));
  const RelayStoreStats before = Stats();

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string recipient = "user" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        const std::vector<NewEnvelope> one = {
            Envelope(recipient, 1, "alice", 1, NewId(), static_cast<std::uint8_t>(i))};
        auto sequences = store_->EnqueueEnvelopes(one);
        if (!sequences || *sequences != std::vector<std::uint64_t>{std::uint64_t(i) + 1}) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  const RelayStoreStats after = Stats();
  const std::uint64_t writes = after.writes - before.writes;
  const std::uint64_t commits = after.commits - before.commits;
  EXPECT_EQ(writes, std::uint64_t{kThreads * kPerThread});
  EXPECT_LE(commits * 2, writes) << commits << " commits for " << writes << " writes";
  EXPECT_GT(after.largest_group, 1u);
  RecordProperty("commits", static_cast<int>(commits));

  Reopen();
  for (int t = 0; t < kThreads; ++t) {
    auto mail = store_->FetchEnvelopes("user" + std::to_string(t), 1, 0, 1000);
    ASSERT_TRUE(mail);
    ASSERT_EQ(mail->size(), std::size_t{kPerThread});
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ((*mail)[static_cast<std::size_t>(i)].sequence, std::uint64_t(i) + 1);
      EXPECT_EQ((*mail)[static_cast<std::size_t>(i)].ciphertext[0], i);
    }
  }
  auto counts = store_->Counts();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->queued_envelopes, std::uint64_t{kThreads * kPerThread});
}

TEST_F(RelayStoreTest, WritesQueuedTogetherShareOneCommit) {
  constexpr int kThreads = 16;
  Register("alice");
  Register("bob");
  const RelayStoreStats before = Stats();
  internal::PauseWriter(*store_);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      auto sequences = store_->EnqueueEnvelopes(
          std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, NewId())});
      if (!sequences) ++failures;
    });
  }
  ASSERT_TRUE(WaitForQueued(*store_, kThreads));
  internal::ResumeWriter(*store_);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const RelayStoreStats after = Stats();
  EXPECT_EQ(after.writes - before.writes, std::uint64_t{kThreads});
  EXPECT_EQ(after.commits - before.commits, 1u);
  auto mail = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(mail);
  EXPECT_EQ(mail->size(), std::size_t{kThreads});
}

TEST_F(RelayStoreTest, AFailingWriteInAGroupFailsAloneWithItsOwnError) {
  Register("alice");
  Register("bob");
  const Bytes team = NewId();
  const Bytes item = NewId();
  const ChainHead genesis{0, NewHash()};
  ASSERT_TRUE(store_->AppendChainStatement(team, std::nullopt, genesis, Filled(10, 1),
                                           std::vector<TeamMember>{{"alice", 1}}));
  ASSERT_TRUE(store_->PutItemVersion(Item(team, item, 1), 0, nullptr));
  ASSERT_TRUE(store_->PutItemVersion(Item(team, item, 2), 1, nullptr));
  const RelayStoreStats before = Stats();

  internal::PauseWriter(*store_);
  constexpr int kEnvelopes = 6;
  std::atomic<int> envelope_failures{0};
  std::optional<Status> item_status;
  std::uint64_t item_current = 0;
  std::optional<Status> device_status;
  std::optional<Status> chain_status;
  std::optional<Status> chain_good_status;
  std::vector<std::thread> threads;
  for (int i = 0; i < kEnvelopes; ++i) {
    threads.emplace_back([&] {
      auto sequences = store_->EnqueueEnvelopes(
          std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, NewId())});
      if (!sequences) ++envelope_failures;
    });
  }
  threads.emplace_back(
      [&] { item_status = store_->PutItemVersion(Item(team, item, 2), 1, &item_current); });
  threads.emplace_back([&] { device_status = store_->AddDevice(Device("bob", 1)); });
  // Stores one envelope for bob, then fails on the unknown device: the savepoint must take
  // the stored one back.
  std::optional<Status> partial_status;
  threads.emplace_back([&] {
    auto sequences = store_->EnqueueEnvelopes(std::vector<NewEnvelope>{
        Envelope("bob", 1, "alice", 1, NewId()), Envelope("bob", 9, "alice", 1, NewId())});
    partial_status = sequences ? Status() : Status(sequences.error());
  });
  // Appended in the same group as the stale append below, in either order: exactly one of
  // them may win, and only the stale one can lose.
  const ChainHead next{1, NewHash()};
  threads.emplace_back([&] {
    chain_good_status = store_->AppendChainStatement(team, genesis, next, Filled(10, 2),
                                                     std::vector<TeamMember>{{"alice", 1}});
  });
  ASSERT_TRUE(WaitForQueued(*store_, kEnvelopes + 4));
  threads.emplace_back([&] {
    chain_status =
        store_->AppendChainStatement(team, ChainHead{5, NewHash()}, ChainHead{6, NewHash()},
                                     Filled(10, 3), std::vector<TeamMember>{});
  });
  ASSERT_TRUE(WaitForQueued(*store_, kEnvelopes + 5));
  internal::ResumeWriter(*store_);
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(envelope_failures.load(), 0);
  ASSERT_TRUE(item_status.has_value() && device_status.has_value() && chain_status.has_value());
  ASSERT_FALSE(*item_status);
  EXPECT_EQ(item_status->error().code(), ErrorCode::kConflict);
  EXPECT_EQ(item_current, 2u);
  ASSERT_FALSE(*device_status);
  EXPECT_EQ(device_status->error().code(), ErrorCode::kAlreadyExists);
  ASSERT_FALSE(*chain_status);
  EXPECT_EQ(chain_status->error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(chain_good_status.has_value());
  EXPECT_TRUE(*chain_good_status);
  ASSERT_TRUE(partial_status.has_value());
  ASSERT_FALSE(*partial_status);
  EXPECT_EQ(partial_status->error().code(), ErrorCode::kNotFound);

  const RelayStoreStats after = Stats();
  EXPECT_EQ(after.writes - before.writes, std::uint64_t{kEnvelopes + 5});
  EXPECT_EQ(after.commits - before.commits, 1u);
  // Only the partial enqueue failed after changing rows, which made the group run again.
  EXPECT_EQ(after.redone_groups - before.redone_groups, 1u);
  auto mail = store_->FetchEnvelopes("bob", 1, 0, 100);
  ASSERT_TRUE(mail);
  ASSERT_EQ(mail->size(), std::size_t{kEnvelopes});
  // The rolled-back envelope took no sequence: bob's mailbox counts on without a gap.
  EXPECT_EQ(mail->back().sequence, std::uint64_t{kEnvelopes});
  auto head = store_->GetChainHead(team);
  ASSERT_TRUE(head && head->has_value());
  EXPECT_EQ((*head)->hash, next.hash);
}

TEST_F(RelayStoreTest, FailuresFoundBeforeAnyChangeDoNotRunTheGroupAgain) {
  Register("alice");
  Register("bob");
  const RelayStoreStats before = Stats();
  internal::PauseWriter(*store_);
  std::optional<Status> device_status;
  std::optional<Status> unknown_status;
  std::vector<std::uint64_t> sequences;
  std::vector<std::thread> threads;
  threads.emplace_back([&] { device_status = store_->AddDevice(Device("bob", 1)); });
  threads.emplace_back([&] {
    auto enqueued =
        store_->EnqueueEnvelopes(std::vector<NewEnvelope>{Envelope("bob", 9, "alice", 1, NewId())});
    unknown_status = enqueued ? Status() : Status(enqueued.error());
  });
  ASSERT_TRUE(WaitForQueued(*store_, 2));
  threads.emplace_back([&] {
    auto enqueued =
        store_->EnqueueEnvelopes(std::vector<NewEnvelope>{Envelope("bob", 1, "alice", 1, NewId())});
    if (enqueued) sequences = *enqueued;
  });
  ASSERT_TRUE(WaitForQueued(*store_, 3));
  internal::ResumeWriter(*store_);
  for (auto& thread : threads) thread.join();

  ASSERT_TRUE(device_status.has_value() && unknown_status.has_value());
  ASSERT_FALSE(*device_status);
  EXPECT_EQ(device_status->error().code(), ErrorCode::kAlreadyExists);
  ASSERT_FALSE(*unknown_status);
  EXPECT_EQ(unknown_status->error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(sequences, std::vector<std::uint64_t>{1});
  const RelayStoreStats after = Stats();
  EXPECT_EQ(after.commits - before.commits, 1u);
  EXPECT_EQ(after.redone_groups - before.redone_groups, 0u);
}

TEST_F(RelayStoreTest, ReadsDoNotWaitForQueuedWrites) {
  Register("alice");
  internal::PauseWriter(*store_);
  std::optional<Status> added;
  std::thread writer([&] { added = store_->AddDevice(Device("alice", 2)); });
  ASSERT_TRUE(WaitForQueued(*store_, 1));
  // The writer is held: these reads would hang if they went through its queue.
  auto user = store_->GetUser("alice");
  ASSERT_TRUE(user && user->has_value());
  auto devices = store_->ListDevices("alice");
  ASSERT_TRUE(devices);
  EXPECT_EQ(devices->size(), 1u);  // the queued device is not visible before its commit
  EXPECT_EQ(internal::QueuedWrites(*store_), 1u);
  internal::ResumeWriter(*store_);
  writer.join();
  ASSERT_TRUE(added.has_value() && *added);
  auto after = store_->ListDevices("alice");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), 2u);
}

}  // namespace
}  // namespace coffre::storage
