// The Signal stores on the encrypted local store: the same semantics as the in-memory
// stores (every semantic test runs against both), sessions and group state that survive
// closing and reopening the store, and the atomicity contract: a decryption whose
// transaction fails, or whose process dies before the commit, leaves the ratchet as it was.
#include "coffre/storage/signal_store.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/storage/database.h"

namespace coffre::storage {
namespace {

using crypto::SecretBytes;
using crypto::SignalAddress;
using crypto::SignalCiphertext;
using crypto::SignalDevice;
using crypto::SignalMessageType;
using Bytes = std::vector<std::uint8_t>;

// The cheapest parameters the KDF accepts, so each store is created in tens of ms.
constexpr crypto::Argon2Params kFast = crypto::kMinimumArgon2Params;
constexpr std::string_view kPassphrase = "correct horse battery staple";
constexpr std::string_view kGroup = "sdis-nord/colonne-feux-de-foret";
// Distinctive enough that finding it in a file can only mean a plaintext leak.
constexpr std::string_view kCanary = "CANARY-coffre-signal-store-record-must-never-reach-disk";

std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
std::string Text(const SecretBytes& bytes) { return {bytes.span().begin(), bytes.span().end()}; }
bool SameBytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

std::filesystem::path Suffixed(const std::filesystem::path& path, const char* suffix) {
  return std::filesystem::path(path.native() + suffix);
}

std::optional<Bytes> ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh directory per test, removed afterwards.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string directory = ::testing::TempDir() + "coffre-signal-store-XXXXXX";
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

Result<std::unique_ptr<SqlCipherSignalStores>> CreateStores(const std::filesystem::path& path) {
  COFFRE_ASSIGN_OR_RETURN(auto database, Database::Create(path, AsBytes(kPassphrase), kFast));
  return SqlCipherSignalStores::New(std::move(database));
}

Result<std::unique_ptr<SqlCipherSignalStores>> OpenStores(const std::filesystem::path& path) {
  COFFRE_ASSIGN_OR_RETURN(auto database, Database::Open(path, AsBytes(kPassphrase)));
  return SqlCipherSignalStores::New(std::move(database));
}

// ---------------------------------------------------------------------------------------
// Semantics, run against the in-memory stores and the SQLCipher ones alike.

enum class Backend { kInMemory, kSqlCipher };

class SignalStoreSemanticsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kInMemory) {
      stores_ = memory_.stores();
      return;
    }
    ASSERT_TRUE(directory_.ok());
    auto created = CreateStores(directory_ / "device.db");
    ASSERT_TRUE(created) << created.error().context();
    persistent_ = std::move(*created);
    stores_ = persistent_->stores();
  }

  crypto::InMemorySignalStores memory_;
  ScratchDirectory directory_;
  std::unique_ptr<SqlCipherSignalStores> persistent_;
  crypto::SignalStores stores_;
};

INSTANTIATE_TEST_SUITE_P(Backends, SignalStoreSemanticsTest,
                         ::testing::Values(Backend::kInMemory, Backend::kSqlCipher),
                         [](const ::testing::TestParamInfo<Backend>& backend) {
                           return backend.param == Backend::kInMemory ? "InMemory" : "SqlCipher";
                         });

TEST_P(SignalStoreSemanticsTest, SessionIsAbsentThenStoredThenReplaced) {
  const SignalAddress bob{"bob", 1};
  auto absent = stores_.session->LoadSession(bob);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
  EXPECT_FALSE(*stores_.session->ContainsSession(bob));

  const Bytes first = crypto::RandomBytes(1200);
  ASSERT_TRUE(stores_.session->StoreSession(bob, first));
  auto loaded = stores_.session->LoadSession(bob);
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_TRUE(SameBytes((*loaded)->span(), first));
  EXPECT_TRUE(*stores_.session->ContainsSession(bob));
  // Another device of the same user is another session.
  EXPECT_FALSE(*stores_.session->ContainsSession(SignalAddress{"bob", 2}));

  const Bytes second = crypto::RandomBytes(900);
  ASSERT_TRUE(stores_.session->StoreSession(bob, second));
  loaded = stores_.session->LoadSession(bob);
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_TRUE(SameBytes((*loaded)->span(), second));
}

TEST_P(SignalStoreSemanticsTest, DeleteSessionReportsWhetherOneExisted) {
  const SignalAddress bob{"bob", 1};
  auto deleted = stores_.session->DeleteSession(bob);
  ASSERT_TRUE(deleted);
  EXPECT_FALSE(*deleted);
  ASSERT_TRUE(stores_.session->StoreSession(bob, crypto::RandomBytes(64)));
  deleted = stores_.session->DeleteSession(bob);
  ASSERT_TRUE(deleted);
  EXPECT_TRUE(*deleted);
  EXPECT_FALSE(*stores_.session->ContainsSession(bob));
  EXPECT_FALSE(stores_.session->LoadSession(bob)->has_value());
}

TEST_P(SignalStoreSemanticsTest, DeleteAllSessionsRemovesEveryDeviceOfThatNameOnly) {
  for (const std::int32_t device : {1, 2, 7}) {
    ASSERT_TRUE(stores_.session->StoreSession({"alice", device}, crypto::RandomBytes(64)));
  }
  ASSERT_TRUE(stores_.session->StoreSession({"bob", 1}, crypto::RandomBytes(64)));
  ASSERT_TRUE(stores_.session->StoreSession({"alicia", 1}, crypto::RandomBytes(64)));

  auto deleted = stores_.session->DeleteAllSessions("alice");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 3u);
  EXPECT_TRUE(stores_.session->SubDeviceSessions("alice")->empty());
  EXPECT_TRUE(*stores_.session->ContainsSession({"bob", 1}));
  EXPECT_TRUE(*stores_.session->ContainsSession({"alicia", 1}));

  deleted = stores_.session->DeleteAllSessions("alice");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(*deleted, 0u);
}

TEST_P(SignalStoreSemanticsTest, SubDeviceSessionsListsTheDevicesOfOneName) {
  for (const std::int32_t device : {7, 1, 2}) {
    ASSERT_TRUE(stores_.session->StoreSession({"alice", device}, crypto::RandomBytes(64)));
  }
  ASSERT_TRUE(stores_.session->StoreSession({"bob", 3}, crypto::RandomBytes(64)));
  auto devices = stores_.session->SubDeviceSessions("alice");
  ASSERT_TRUE(devices);
  std::sort(devices->begin(), devices->end());  // "in any order"
  EXPECT_EQ(*devices, (std::vector<std::int32_t>{1, 2, 7}));
  // Names match exactly, not by prefix.
  EXPECT_TRUE(stores_.session->SubDeviceSessions("ali")->empty());
  EXPECT_TRUE(stores_.session->SubDeviceSessions("nobody")->empty());
}

TEST_P(SignalStoreSemanticsTest, PreKeysStoreReplaceAndRemove) {
  constexpr std::uint32_t kId = 42;
  EXPECT_FALSE(stores_.pre_key->LoadPreKey(kId)->has_value());
  EXPECT_FALSE(*stores_.pre_key->ContainsPreKey(kId));
  // Removing an absent prekey succeeds.
  EXPECT_TRUE(stores_.pre_key->RemovePreKey(kId));

  const Bytes first = crypto::RandomBytes(100);
  const Bytes second = crypto::RandomBytes(100);
  ASSERT_TRUE(stores_.pre_key->StorePreKey(kId, first));
  EXPECT_TRUE(*stores_.pre_key->ContainsPreKey(kId));
  EXPECT_TRUE(SameBytes((*stores_.pre_key->LoadPreKey(kId))->span(), first));
  ASSERT_TRUE(stores_.pre_key->StorePreKey(kId, second));
  EXPECT_TRUE(SameBytes((*stores_.pre_key->LoadPreKey(kId))->span(), second));
  EXPECT_FALSE(*stores_.pre_key->ContainsPreKey(kId + 1));

  // The whole unsigned range round-trips (ids are bound as 64-bit integers).
  constexpr std::uint32_t kLargest = 0xFFFFFFFF;
  ASSERT_TRUE(stores_.pre_key->StorePreKey(kLargest, first));
  EXPECT_TRUE(SameBytes((*stores_.pre_key->LoadPreKey(kLargest))->span(), first));

  ASSERT_TRUE(stores_.pre_key->RemovePreKey(kId));
  EXPECT_FALSE(*stores_.pre_key->ContainsPreKey(kId));
  EXPECT_TRUE(*stores_.pre_key->ContainsPreKey(kLargest));
}

TEST_P(SignalStoreSemanticsTest, SignedPreKeysStoreReplaceAndRemove) {
  constexpr std::uint32_t kId = 7;
  EXPECT_FALSE(stores_.signed_pre_key->LoadSignedPreKey(kId)->has_value());
  EXPECT_FALSE(*stores_.signed_pre_key->ContainsSignedPreKey(kId));
  EXPECT_TRUE(stores_.signed_pre_key->RemoveSignedPreKey(kId));

  const Bytes first = crypto::RandomBytes(180);
  const Bytes second = crypto::RandomBytes(180);
  ASSERT_TRUE(stores_.signed_pre_key->StoreSignedPreKey(kId, first));
  EXPECT_TRUE(*stores_.signed_pre_key->ContainsSignedPreKey(kId));
  EXPECT_TRUE(SameBytes((*stores_.signed_pre_key->LoadSignedPreKey(kId))->span(), first));
  ASSERT_TRUE(stores_.signed_pre_key->StoreSignedPreKey(kId, second));
  EXPECT_TRUE(SameBytes((*stores_.signed_pre_key->LoadSignedPreKey(kId))->span(), second));
  // Prekeys and signed prekeys are separate id spaces.
  EXPECT_FALSE(*stores_.pre_key->ContainsPreKey(kId));

  ASSERT_TRUE(stores_.signed_pre_key->RemoveSignedPreKey(kId));
  EXPECT_FALSE(*stores_.signed_pre_key->ContainsSignedPreKey(kId));
}

TEST_P(SignalStoreSemanticsTest, LocalIdentityIsAbsentThenStoredThenReplaced) {
  auto absent = stores_.identity->LoadLocalIdentity();
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());

  const Bytes public_key = crypto::RandomBytes(33);
  const Bytes private_key = crypto::RandomBytes(32);
  ASSERT_TRUE(stores_.identity->StoreLocalIdentity(public_key, private_key, 0xFFFFFFFF));
  auto loaded = stores_.identity->LoadLocalIdentity();
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ((*loaded)->public_key, public_key);
  EXPECT_TRUE(SameBytes((*loaded)->private_key.span(), private_key));
  EXPECT_EQ((*loaded)->registration_id, 0xFFFFFFFFu);

  const Bytes other_public = crypto::RandomBytes(33);
  const Bytes other_private = crypto::RandomBytes(32);
  ASSERT_TRUE(stores_.identity->StoreLocalIdentity(other_public, other_private, 1234));
  loaded = stores_.identity->LoadLocalIdentity();
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ((*loaded)->public_key, other_public);
  EXPECT_TRUE(SameBytes((*loaded)->private_key.span(), other_private));
  EXPECT_EQ((*loaded)->registration_id, 1234u);
}

TEST_P(SignalStoreSemanticsTest, RemoteIdentityIsTrustedOnFirstUseThenChangedKeyIsRefused) {
  const SignalAddress bob{"bob", 1};
  const Bytes key = crypto::RandomBytes(33);
  const Bytes changed = crypto::RandomBytes(33);

  EXPECT_FALSE(stores_.identity->LoadIdentity(bob)->has_value());
  EXPECT_TRUE(*stores_.identity->IsTrusted(bob, key));  // first use

  ASSERT_TRUE(stores_.identity->SaveIdentity(bob, key));
  EXPECT_EQ(**stores_.identity->LoadIdentity(bob), key);
  EXPECT_TRUE(*stores_.identity->IsTrusted(bob, key));
  EXPECT_FALSE(*stores_.identity->IsTrusted(bob, changed));
  // A prefix of the recorded key is not the recorded key.
  EXPECT_FALSE(*stores_.identity->IsTrusted(bob, std::span(key).first(32)));
  // Another device of the same user has its own identity.
  EXPECT_TRUE(*stores_.identity->IsTrusted(SignalAddress{"bob", 2}, changed));

  // An explicit save (a verified certificate) replaces the recorded key.
  ASSERT_TRUE(stores_.identity->SaveIdentity(bob, changed));
  EXPECT_TRUE(*stores_.identity->IsTrusted(bob, changed));
  EXPECT_FALSE(*stores_.identity->IsTrusted(bob, key));
}

TEST_P(SignalStoreSemanticsTest, SenderKeysAreKeyedByGroupNameAndDevice) {
  // Group ids are bytes, not text: a NUL and a non-UTF-8 byte must round-trip.
  const std::string group("g\0\xff-1", 5);
  const std::string other_group("g\0\xff-2", 5);
  const SignalAddress alice{"alice", 1};
  const Bytes first = crypto::RandomBytes(300);
  const Bytes second = crypto::RandomBytes(300);

  EXPECT_FALSE(stores_.sender_key->LoadSenderKey(group, alice)->has_value());
  EXPECT_TRUE(stores_.sender_key->DeleteSenderKey(group, alice));  // absent: succeeds

  ASSERT_TRUE(stores_.sender_key->StoreSenderKey(group, alice, first));
  EXPECT_TRUE(SameBytes((*stores_.sender_key->LoadSenderKey(group, alice))->span(), first));
  EXPECT_FALSE(stores_.sender_key->LoadSenderKey(other_group, alice)->has_value());
  EXPECT_FALSE(stores_.sender_key->LoadSenderKey(group, {"alice", 2})->has_value());
  EXPECT_FALSE(stores_.sender_key->LoadSenderKey(group, {"bob", 1})->has_value());

  ASSERT_TRUE(stores_.sender_key->StoreSenderKey(group, alice, second));
  EXPECT_TRUE(SameBytes((*stores_.sender_key->LoadSenderKey(group, alice))->span(), second));

  ASSERT_TRUE(stores_.sender_key->StoreSenderKey(other_group, alice, first));
  ASSERT_TRUE(stores_.sender_key->DeleteSenderKey(group, alice));
  EXPECT_FALSE(stores_.sender_key->LoadSenderKey(group, alice)->has_value());
  EXPECT_TRUE(stores_.sender_key->LoadSenderKey(other_group, alice)->has_value());
}

TEST_P(SignalStoreSemanticsTest, ReplayGuardKeepsTheHighestIterationPerKeyId) {
  const SignalAddress alice{"alice", 1};
  EXPECT_FALSE(stores_.group_replay->LoadHighestIteration(kGroup, alice, 7)->has_value());

  ASSERT_TRUE(stores_.group_replay->StoreHighestIteration(kGroup, alice, 7, 5));
  EXPECT_EQ(**stores_.group_replay->LoadHighestIteration(kGroup, alice, 7), 5u);
  ASSERT_TRUE(stores_.group_replay->StoreHighestIteration(kGroup, alice, 7, 9));
  EXPECT_EQ(**stores_.group_replay->LoadHighestIteration(kGroup, alice, 7), 9u);

  // Each part of the key counts: key id, sender device, sender name, group.
  EXPECT_FALSE(stores_.group_replay->LoadHighestIteration(kGroup, alice, 8)->has_value());
  EXPECT_FALSE(stores_.group_replay->LoadHighestIteration(kGroup, {"alice", 2}, 7)->has_value());
  EXPECT_FALSE(stores_.group_replay->LoadHighestIteration(kGroup, {"bob", 1}, 7)->has_value());
  EXPECT_FALSE(stores_.group_replay->LoadHighestIteration("other", alice, 7)->has_value());

  // Key ids are random 32-bit values and iterations are 32-bit: both ends of the range.
  ASSERT_TRUE(stores_.group_replay->StoreHighestIteration(kGroup, alice, 0xFFFFFFFF, 0xFFFFFFFF));
  EXPECT_EQ(**stores_.group_replay->LoadHighestIteration(kGroup, alice, 0xFFFFFFFF), 0xFFFFFFFFu);
  ASSERT_TRUE(stores_.group_replay->StoreHighestIteration(kGroup, alice, 0, 0));
  EXPECT_EQ(**stores_.group_replay->LoadHighestIteration(kGroup, alice, 0), 0u);
}

// ---------------------------------------------------------------------------------------
// The store itself: persistence, encryption at rest, schema, transactions.

class SqlCipherSignalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(directory_.ok());
    path_ = directory_ / "device.db";
  }

  std::unique_ptr<SqlCipherSignalStores> MustCreate() {
    auto created = CreateStores(path_);
    EXPECT_TRUE(created) << created.error().context();
    return created ? std::move(*created) : nullptr;
  }
  std::unique_ptr<SqlCipherSignalStores> MustOpen() {
    auto opened = OpenStores(path_);
    EXPECT_TRUE(opened) << opened.error().context();
    return opened ? std::move(*opened) : nullptr;
  }

  ScratchDirectory directory_;
  std::filesystem::path path_;
};

TEST_F(SqlCipherSignalStoreTest, CallsOutsideATransactionCommitOnTheirOwn) {
  const Bytes session = crypto::RandomBytes(1000);
  const Bytes pre_key = crypto::RandomBytes(100);
  const Bytes sender_key = crypto::RandomBytes(200);
  const Bytes identity = crypto::RandomBytes(33);
  {
    auto store = MustCreate();
    ASSERT_NE(store, nullptr);
    const auto stores = store->stores();
    ASSERT_TRUE(stores.session->StoreSession({"bob", 1}, session));
    ASSERT_TRUE(stores.pre_key->StorePreKey(5, pre_key));
    ASSERT_TRUE(stores.sender_key->StoreSenderKey(kGroup, {"bob", 1}, sender_key));
    ASSERT_TRUE(stores.identity->SaveIdentity({"bob", 1}, identity));
    ASSERT_TRUE(stores.group_replay->StoreHighestIteration(kGroup, {"bob", 1}, 3, 4));
  }
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  const auto stores = store->stores();
  EXPECT_TRUE(SameBytes((*stores.session->LoadSession({"bob", 1}))->span(), session));
  EXPECT_TRUE(SameBytes((*stores.pre_key->LoadPreKey(5))->span(), pre_key));
  EXPECT_TRUE(
      SameBytes((*stores.sender_key->LoadSenderKey(kGroup, {"bob", 1}))->span(), sender_key));
  EXPECT_FALSE(*stores.identity->IsTrusted({"bob", 1}, crypto::RandomBytes(33)));
  EXPECT_EQ(**stores.group_replay->LoadHighestIteration(kGroup, {"bob", 1}, 3), 4u);
}

TEST_F(SqlCipherSignalStoreTest, RecordsNeverReachTheDiskInClear) {
  {
    auto store = MustCreate();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->stores().session->StoreSession({"bob", 1}, AsBytes(kCanary)));
    ASSERT_TRUE(store->stores().sender_key->StoreSenderKey(kGroup, {"bob", 1}, AsBytes(kCanary)));
  }
  for (const char* suffix : {"", "-wal"}) {
    const auto contents = ReadFileBytes(Suffixed(path_, suffix));
    if (!contents) continue;  // the WAL is removed when the last connection closes
    EXPECT_EQ(std::search(contents->begin(), contents->end(), kCanary.begin(), kCanary.end()),
              contents->end())
        << "record found in clear in " << suffix;
  }
}

TEST_F(SqlCipherSignalStoreTest, TransactionCommitsOnSuccessAndRollsBackOnFailure) {
  auto store = MustCreate();
  ASSERT_NE(store, nullptr);
  const auto stores = store->stores();

  const Status failed = store->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(stores.session->StoreSession({"bob", 1}, crypto::RandomBytes(64)));
    COFFRE_RETURN_IF_ERROR(stores.pre_key->RemovePreKey(1));
    return Fail(ErrorCode::kIo, "test: the application could not save the plaintext");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), ErrorCode::kIo);
  EXPECT_FALSE(*stores.session->ContainsSession({"bob", 1}));

  auto value = store->InTransaction([&]() -> Result<int> {
    COFFRE_RETURN_IF_ERROR(stores.session->StoreSession({"bob", 1}, crypto::RandomBytes(64)));
    return 42;
  });
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, 42);
  store.reset();
  store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(*store->stores().session->ContainsSession({"bob", 1}));
}

TEST_F(SqlCipherSignalStoreTest, TransactionsDoNotNest) {
  auto store = MustCreate();
  ASSERT_NE(store, nullptr);
  Status inner = Ok();
  ASSERT_TRUE(store->RunInTransaction([&]() -> Status {
    inner = store->RunInTransaction([] { return Ok(); });
    return Ok();
  }));
  ASSERT_FALSE(inner);
  EXPECT_EQ(inner.error().code(), ErrorCode::kInvalidArgument);
  // The outer transaction is over: a new one can start.
  EXPECT_TRUE(store->RunInTransaction([] { return Ok(); }));
  EXPECT_FALSE(store->RunInTransaction(nullptr));
}

TEST_F(SqlCipherSignalStoreTest, StoreFailureVoidsTheTransactionEvenIfTheBodyIgnoresIt) {
  auto store = MustCreate();
  ASSERT_NE(store, nullptr);
  const auto stores = store->stores();
  Status later_write = Ok();
  const Status result = store->RunInTransaction([&]() -> Status {
    // Make the next store statement fail inside the transaction.
    COFFRE_RETURN_IF_ERROR(store->database().Execute("DROP TABLE signal_pre_keys"));
    EXPECT_FALSE(stores.pre_key->LoadPreKey(1));  // the error a library might swallow
    later_write = stores.session->StoreSession({"bob", 1}, crypto::RandomBytes(64));
    return Ok();
  });
  ASSERT_FALSE(result);
  // Once a store failed, the rest of the body could no longer be trusted to be atomic.
  EXPECT_FALSE(later_write);
  // Everything was rolled back, including the DROP, and the stores work again.
  EXPECT_FALSE(*stores.session->ContainsSession({"bob", 1}));
  EXPECT_TRUE(stores.pre_key->StorePreKey(1, crypto::RandomBytes(32)));
  EXPECT_TRUE(*stores.pre_key->ContainsPreKey(1));
}

TEST_F(SqlCipherSignalStoreTest, SchemaIsVersionedApartFromUserVersion) {
  {
    auto store = MustCreate();
    ASSERT_NE(store, nullptr);
    // user_version stays the application's, for Database::Migrate.
    EXPECT_EQ(*store->database().UserVersion(), 0);
    const Migration app[] = {{1, "CREATE TABLE inbox (id INTEGER PRIMARY KEY, body BLOB)"}};
    ASSERT_TRUE(store->database().Migrate(app));
    ASSERT_TRUE(store->stores().pre_key->StorePreKey(1, crypto::RandomBytes(32)));
  }
  // Reopening runs no migration twice and keeps the data.
  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->database().UserVersion(), 1);
  EXPECT_TRUE(*store->stores().pre_key->ContainsPreKey(1));
}

TEST_F(SqlCipherSignalStoreTest, NewerSchemaIsRefused) {
  {
    auto store = MustCreate();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->database().Execute("UPDATE coffre_signal_schema SET version = 99"));
  }
  auto opened = OpenStores(path_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code(), ErrorCode::kUnsupported);
}

TEST_F(SqlCipherSignalStoreTest, LoweredDurabilityIsRefused) {
  auto database = Database::Create(path_, AsBytes(kPassphrase), kFast);
  ASSERT_TRUE(database);
  ASSERT_TRUE((*database)->Execute("PRAGMA synchronous = NORMAL"));
  auto store = SqlCipherSignalStores::New(**database);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::kUnsupported);
}

TEST_F(SqlCipherSignalStoreTest, ReleasedStatementsLetThePassphraseChange) {
  auto database = Database::Create(path_, AsBytes(kPassphrase), kFast);
  ASSERT_TRUE(database);
  auto store = SqlCipherSignalStores::New(**database);
  ASSERT_TRUE(store);
  ASSERT_TRUE((*store)->stores().pre_key->StorePreKey(1, crypto::RandomBytes(32)));
  // Cached statements block a rekey until released.
  EXPECT_FALSE((*database)->ChangePassphrase(AsBytes("another passphrase"), kFast));
  (*store)->ReleaseStatements();
  ASSERT_TRUE((*database)->ChangePassphrase(AsBytes("another passphrase"), kFast));
  EXPECT_TRUE(*(*store)->stores().pre_key->ContainsPreKey(1));  // prepared again
}

// ---------------------------------------------------------------------------------------
// Two devices, each on its own store file, talking through serialized bundles and messages.

// One device over its own SQLCipher store, with an application table for the plaintext it
// receives, written by the PlaintextSink in the same transaction as the ratchet state.
class PersistentParty {
 public:
  PersistentParty(SignalAddress address, std::filesystem::path path)
      : address_(std::move(address)), path_(std::move(path)) {}

  const SignalAddress& address() const { return address_; }
  SignalDevice& device() { return *device_; }
  SqlCipherSignalStores& store() { return *store_; }

  // Creates the store and the device's keys.
  void Create() {
    auto created = CreateStores(path_);
    ASSERT_TRUE(created) << created.error().context();
    store_ = std::move(*created);
    ASSERT_TRUE(store_->database().Execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, sender BLOB NOT NULL, body BLOB NOT NULL)"));
    OpenDevice();
    ASSERT_TRUE(device_->GenerateIdentity());
    ASSERT_TRUE(device_->GeneratePreKeys(1, 10));
    ASSERT_TRUE(device_->GenerateSignedPreKey(1, 1'700'000'000'000));
  }
  // Destroys the device and the store object: everything it knows is now only on disk.
  void Close() {
    device_.reset();
    store_.reset();
  }
  // Reopens the store from disk with the passphrase and builds a new device over it.
  void Reopen() {
    auto opened = OpenStores(path_);
    ASSERT_TRUE(opened) << opened.error().context();
    store_ = std::move(*opened);
    OpenDevice();
  }

  std::vector<std::uint8_t> PublishedBundle(std::uint32_t pre_key_id) {
    auto bundle = device_->CreatePreKeyBundle(pre_key_id, 1);
    EXPECT_TRUE(bundle);
    return bundle ? bundle->Serialize() : std::vector<std::uint8_t>();
  }

  // Encrypts in its own committed transaction, as a client filling its outbox would.
  SignalCiphertext Send(const PersistentParty& to, std::string_view text) {
    return Send(to, AsBytes(text));
  }
  SignalCiphertext Send(const PersistentParty& to, std::span<const std::uint8_t> payload) {
    auto sent = store_->InTransaction([&] { return device_->Encrypt(to.address(), payload); });
    EXPECT_TRUE(sent) << (sent ? "" : sent.error().context());
    return sent ? std::move(*sent) : SignalCiphertext{SignalMessageType::kWhisper, {}};
  }

  // Decrypts in its own transaction; the sink records the plaintext in the inbox.
  Result<SecretBytes> Receive(const PersistentParty& from, const SignalCiphertext& message) {
    return store_->InTransaction([&] {
      return device_->Decrypt(from.address(), message.type, message.bytes,
                              [&](std::span<const std::uint8_t> plaintext) {
                                return SaveToInbox(*store_, from.address(), plaintext);
                              });
    });
  }
  std::string MustReceive(const PersistentParty& from, const SignalCiphertext& message) {
    auto received = Receive(from, message);
    EXPECT_TRUE(received) << (received ? "" : received.error().context());
    return received ? Text(*received) : std::string();
  }

  std::int64_t InboxSize() {
    auto count = store_->database().Prepare("SELECT count(*) FROM inbox");
    EXPECT_TRUE(count && *count->Step());
    return count ? count->ColumnInt64(0) : -1;
  }

  static Status SaveToInbox(SqlCipherSignalStores& store, const SignalAddress& from,
                            std::span<const std::uint8_t> plaintext) {
    COFFRE_ASSIGN_OR_RETURN(
        Statement insert,
        store.database().Prepare("INSERT INTO inbox (sender, body) VALUES (?1, ?2)"));
    COFFRE_RETURN_IF_ERROR(insert.Bind(1, AsBytes(from.name)));
    COFFRE_RETURN_IF_ERROR(insert.BindSecret(2, SecretBytes::CopyOf(plaintext)));
    COFFRE_ASSIGN_OR_RETURN(const bool row, insert.Step());
    (void)row;
    return Ok();
  }

 private:
  void OpenDevice() {
    auto created = SignalDevice::Create(address_, store_->stores());
    ASSERT_TRUE(created) << created.error().context();
    device_ = std::move(*created);
  }

  SignalAddress address_;
  std::filesystem::path path_;
  std::unique_ptr<SqlCipherSignalStores> store_;
  std::unique_ptr<SignalDevice> device_;
};

class PersistentSignalSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(directory_.ok());
    alice_ = std::make_unique<PersistentParty>(SignalAddress{"alice", 1}, directory_ / "alice.db");
    bob_ = std::make_unique<PersistentParty>(SignalAddress{"bob", 1}, directory_ / "bob.db");
    ASSERT_NO_FATAL_FAILURE(alice_->Create());
    ASSERT_NO_FATAL_FAILURE(bob_->Create());
  }

  // Alice builds her session with Bob from his serialized bundle.
  void Connect() {
    auto parsed = crypto::PreKeyBundle::Parse(bob_->PublishedBundle(1));
    ASSERT_TRUE(parsed);
    ASSERT_TRUE(alice_->store().RunInTransaction(
        [&] { return alice_->device().ProcessPreKeyBundle(bob_->address(), *parsed); }));
  }

  // Connect, then one message each way, so both sides hold an established session.
  void Establish() {
    ASSERT_NO_FATAL_FAILURE(Connect());
    ASSERT_EQ(bob_->MustReceive(*alice_, alice_->Send(*bob_, "hello")), "hello");
    ASSERT_EQ(alice_->MustReceive(*bob_, bob_->Send(*alice_, "hi")), "hi");
  }

  ScratchDirectory directory_;
  std::unique_ptr<PersistentParty> alice_;
  std::unique_ptr<PersistentParty> bob_;
};

TEST_F(PersistentSignalSessionTest, SessionSurvivesClosingAndReopeningBothStores) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  for (int i = 0; i < 2; ++i) {
    const std::string text = "alice " + std::to_string(i);
    const SignalCiphertext message = alice_->Send(*bob_, text);
    EXPECT_EQ(message.type, SignalMessageType::kPreKey);
    EXPECT_EQ(bob_->MustReceive(*alice_, message), text);
  }
  EXPECT_EQ(alice_->MustReceive(*bob_, bob_->Send(*alice_, "bob 0")), "bob 0");
  // A message in flight across the restart.
  const SignalCiphertext in_flight = alice_->Send(*bob_, "sent before the restart");

  alice_->Close();
  bob_->Close();
  ASSERT_NO_FATAL_FAILURE(alice_->Reopen());
  ASSERT_NO_FATAL_FAILURE(bob_->Reopen());

  EXPECT_EQ(bob_->MustReceive(*alice_, in_flight), "sent before the restart");
  for (int round = 0; round < 3; ++round) {
    const std::string from_bob = "bob after restart " + std::to_string(round);
    const SignalCiphertext to_alice = bob_->Send(*alice_, from_bob);
    EXPECT_EQ(to_alice.type, SignalMessageType::kWhisper);
    EXPECT_EQ(alice_->MustReceive(*bob_, to_alice), from_bob);
    const std::string from_alice = "alice after restart " + std::to_string(round);
    const SignalCiphertext to_bob = alice_->Send(*bob_, from_alice);
    EXPECT_EQ(to_bob.type, SignalMessageType::kWhisper);
    EXPECT_EQ(bob_->MustReceive(*alice_, to_bob), from_alice);
  }
  // Every plaintext was saved with its ratchet step; the one-time prekey was used up.
  EXPECT_EQ(bob_->InboxSize(), 2 + 1 + 3);
  EXPECT_EQ(alice_->InboxSize(), 1 + 3);
  EXPECT_FALSE(*bob_->store().stores().pre_key->ContainsPreKey(1));
}

TEST_F(PersistentSignalSessionTest, FailedPlaintextSinkLeavesTheSessionAsBefore) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  // The very first message: a failed sink must also undo building Bob's session and using
  // his one-time prekey.
  const SignalCiphertext first = alice_->Send(*bob_, "first");
  ASSERT_EQ(first.type, SignalMessageType::kPreKey);
  auto refused = bob_->store().InTransaction([&] {
    return bob_->device().Decrypt(alice_->address(), first.type, first.bytes,
                                  [](std::span<const std::uint8_t>) -> Status {
                                    return Fail(ErrorCode::kIo, "test: disk full");
                                  });
  });
  ASSERT_FALSE(refused);
  EXPECT_FALSE(*bob_->device().HasSession(alice_->address()));
  EXPECT_TRUE(*bob_->store().stores().pre_key->ContainsPreKey(1));
  EXPECT_EQ(bob_->InboxSize(), 0);

  EXPECT_EQ(bob_->MustReceive(*alice_, first), "first");
  EXPECT_EQ(bob_->InboxSize(), 1);
  // Once committed, the message is spent.
  auto replayed = bob_->Receive(*alice_, first);
  ASSERT_FALSE(replayed);
}

TEST_F(PersistentSignalSessionTest, RolledBackDecryptionDecryptsAgainAfterARatchetStep) {
  ASSERT_NO_FATAL_FAILURE(Establish());
  const SignalCiphertext message = alice_->Send(*bob_, "after a ratchet step");
  ASSERT_EQ(message.type, SignalMessageType::kWhisper);

  // The decryption succeeds, then the application fails before the commit.
  std::string seen;
  const Status rolled_back = bob_->store().RunInTransaction([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(SecretBytes plaintext,
                            bob_->device().Decrypt(alice_->address(), message.type, message.bytes));
    seen = Text(plaintext);
    return Fail(ErrorCode::kIo, "test: crash before commit");
  });
  ASSERT_FALSE(rolled_back);
  EXPECT_EQ(seen, "after a ratchet step");

  EXPECT_EQ(bob_->MustReceive(*alice_, message), "after a ratchet step");
  auto replayed = bob_->Receive(*alice_, message);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().code(), ErrorCode::kReplay);
  // And the conversation goes on both ways.
  EXPECT_EQ(alice_->MustReceive(*bob_, bob_->Send(*alice_, "ok")), "ok");
  EXPECT_EQ(bob_->MustReceive(*alice_, alice_->Send(*bob_, "ok too")), "ok too");
}

// What the child reports through the pipe, or its exit status when it cannot get there.
constexpr char kChildReady = 'r';
constexpr int kChildCannotOpen = 10;
constexpr int kChildCannotDecrypt = 11;
constexpr int kChildCannotReport = 12;
constexpr int kChildNotKilled = 13;
// Bounds the wait for the child: opening the store (Argon2id at the minimum parameters) and
// one decryption take well under a second.
constexpr int kChildTimeoutMs = 30'000;

// Runs in the forked child: opens Bob's store itself (an SQLite connection must never
// cross a fork), decrypts `message` inside a transaction and, with the new state and the
// plaintext written but not committed, reports and waits to be killed.
[[noreturn]] void DecryptAndWaitForKill(const std::filesystem::path& path, const SignalAddress& bob,
                                        const SignalAddress& alice, const SignalCiphertext& message,
                                        int ready) {
  auto store = OpenStores(path);
  if (!store) ::_exit(kChildCannotOpen);
  auto device = SignalDevice::Create(bob, (*store)->stores());
  if (!device) ::_exit(kChildCannotOpen);
  (void)(*store)->RunInTransaction([&]() -> Status {
    auto plaintext = (*device)->Decrypt(
        alice, message.type, message.bytes, [&](std::span<const std::uint8_t> bytes) {
          return PersistentParty::SaveToInbox(**store, alice, bytes);
        });
    if (!plaintext) ::_exit(kChildCannotDecrypt);
    if (::write(ready, &kChildReady, 1) != 1) ::_exit(kChildCannotReport);
    ::pause();
    ::_exit(kChildNotKilled);
  });
  ::_exit(kChildNotKilled);
}

TEST_F(PersistentSignalSessionTest, ProcessKilledBeforeCommitLeavesTheMessageDecryptableOnce) {
  ASSERT_NO_FATAL_FAILURE(Establish());
  const SignalCiphertext message = alice_->Send(*bob_, "Départ en intervention");
  ASSERT_EQ(message.type, SignalMessageType::kWhisper);
  bob_->Close();  // the child opens its own connection

  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    DecryptAndWaitForKill(directory_ / "bob.db", bob_->address(), alice_->address(), message,
                          pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  pollfd ready{pipe_fds[0], POLLIN, 0};
  const int polled = ::poll(&ready, 1, kChildTimeoutMs);
  char byte = 0;
  const bool child_ready = polled == 1 && ::read(pipe_fds[0], &byte, 1) == 1 && byte == kChildReady;
  ::close(pipe_fds[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(child_ready) << "child exited with "
                           << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  // The killed transaction left nothing: no plaintext, no advanced ratchet.
  ASSERT_NO_FATAL_FAILURE(bob_->Reopen());
  EXPECT_EQ(bob_->InboxSize(), 1);  // only "hello" from Establish
  EXPECT_EQ(bob_->MustReceive(*alice_, message), "Départ en intervention");
  EXPECT_EQ(bob_->InboxSize(), 2);
  auto replayed = bob_->Receive(*alice_, message);
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().code(), ErrorCode::kReplay);
  EXPECT_EQ(alice_->MustReceive(*bob_, bob_->Send(*alice_, "reçu")), "reçu");
  EXPECT_EQ(bob_->MustReceive(*alice_, alice_->Send(*bob_, "bien")), "bien");
}

TEST_F(PersistentSignalSessionTest, SenderKeysAndReplayGuardSurviveReopen) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  auto distribution = alice_->store().InTransaction(
      [&] { return alice_->device().CreateGroupDistribution(kGroup); });
  ASSERT_TRUE(distribution);
  // The distribution travels inside the pairwise session, as it must.
  const SignalCiphertext carried = alice_->Send(*bob_, distribution->span());
  auto received = bob_->Receive(*alice_, carried);
  ASSERT_TRUE(received);
  const SecretBytes delivered = std::move(*received);
  ASSERT_TRUE(bob_->store().RunInTransaction([&] {
    return bob_->device().ProcessGroupDistribution(kGroup, alice_->address(), delivered.span());
  }));

  auto old_message = alice_->store().InTransaction(
      [&] { return alice_->device().GroupEncrypt(kGroup, AsBytes("avant")); });
  ASSERT_TRUE(old_message);
  auto first = bob_->store().InTransaction(
      [&] { return bob_->device().GroupDecrypt(kGroup, alice_->address(), old_message->bytes); });
  ASSERT_TRUE(first);
  EXPECT_EQ(Text(*first), "avant");

  alice_->Close();
  bob_->Close();
  ASSERT_NO_FATAL_FAILURE(alice_->Reopen());
  ASSERT_NO_FATAL_FAILURE(bob_->Reopen());

  // The replay guard remembered the distribution: replaying it is still refused.
  const Status replayed = bob_->store().RunInTransaction([&] {
    return bob_->device().ProcessGroupDistribution(kGroup, alice_->address(), delivered.span());
  });
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().code(), ErrorCode::kReplay);
  // So the old group message, whose key was used and erased, does not decrypt again.
  auto again = bob_->store().InTransaction(
      [&] { return bob_->device().GroupDecrypt(kGroup, alice_->address(), old_message->bytes); });
  EXPECT_FALSE(again);

  // Alice's sending chain and Bob's copy of it both survived.
  auto new_message = alice_->store().InTransaction(
      [&] { return alice_->device().GroupEncrypt(kGroup, AsBytes("après")); });
  ASSERT_TRUE(new_message);
  auto second = bob_->store().InTransaction(
      [&] { return bob_->device().GroupDecrypt(kGroup, alice_->address(), new_message->bytes); });
  ASSERT_TRUE(second) << second.error().context();
  EXPECT_EQ(Text(*second), "après");
}

}  // namespace
}  // namespace coffre::storage
