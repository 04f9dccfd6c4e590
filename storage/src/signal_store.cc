#include "coffre/storage/signal_store.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::storage {
namespace {

using crypto::LocalIdentity;
using crypto::SecretBytes;
using crypto::SignalAddress;

// ---------------------------------------------------------------------------------------
// Schema.

// Names, device ids and group ids are identifiers, kept as BLOB so they compare byte for
// byte (a group id may hold any bytes, and TEXT would invite collation or encoding
// surprises). Record columns hold secrets; SQLCipher encrypts the pages that hold them.
// Rowid tables, not WITHOUT ROWID: session records run to kilobytes, far above the size
// SQLite recommends for WITHOUT ROWID rows.
constexpr Migration kSignalMigrations[] = {
    {1,
     "CREATE TABLE signal_sessions ("
     "  name BLOB NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  record BLOB NOT NULL,"
     "  PRIMARY KEY (name, device_id));"
     "CREATE TABLE signal_pre_keys ("
     "  id INTEGER PRIMARY KEY,"
     "  record BLOB NOT NULL);"
     "CREATE TABLE signal_signed_pre_keys ("
     "  id INTEGER PRIMARY KEY,"
     "  record BLOB NOT NULL);"
     "CREATE TABLE signal_local_identity ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  public_key BLOB NOT NULL,"
     "  private_key BLOB NOT NULL,"
     "  registration_id INTEGER NOT NULL);"
     "CREATE TABLE signal_remote_identities ("
     "  name BLOB NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  identity_key BLOB NOT NULL,"
     "  PRIMARY KEY (name, device_id));"
     "CREATE TABLE signal_sender_keys ("
     "  group_id BLOB NOT NULL,"
     "  name BLOB NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  record BLOB NOT NULL,"
     "  PRIMARY KEY (group_id, name, device_id));"
     "CREATE TABLE signal_group_replay ("
     "  group_id BLOB NOT NULL,"
     "  name BLOB NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  key_id INTEGER NOT NULL,"
     "  iteration INTEGER NOT NULL,"
     "  PRIMARY KEY (group_id, name, device_id, key_id))"},
};
static_assert(static_cast<std::int64_t>(std::size(kSignalMigrations)) == kSignalStoreSchemaVersion,
              "kSignalStoreSchemaVersion must name the last migration");

// Every statement the stores run, prepared once per object and cached. Fixed SQL only;
// every value is bound.
enum Query : std::size_t {
  kChanges,
  kLoadSession,
  kStoreSession,
  kContainsSession,
  kDeleteSession,
  kDeleteAllSessions,
  kSubDeviceSessions,
  kLoadPreKey,
  kStorePreKey,
  kContainsPreKey,
  kRemovePreKey,
  kLoadSignedPreKey,
  kStoreSignedPreKey,
  kContainsSignedPreKey,
  kRemoveSignedPreKey,
  kLoadLocalIdentity,
  kStoreLocalIdentity,
  kSaveIdentity,
  kLoadIdentity,
  kLoadSenderKey,
  kStoreSenderKey,
  kDeleteSenderKey,
  kLoadHighestIteration,
  kStoreHighestIteration,
  kQueryCount,
};

constexpr std::array<const char*, kQueryCount> kQueries = {
    // kChanges: rows changed by the last INSERT/UPDATE/DELETE on this connection. Statement
    // has no accessor for it, and the connection is used by one thread, so no other write
    // can slip in between.
    "SELECT changes()",
    "SELECT record FROM signal_sessions WHERE name = ?1 AND device_id = ?2",
    "INSERT OR REPLACE INTO signal_sessions (name, device_id, record) VALUES (?1, ?2, ?3)",
    "SELECT 1 FROM signal_sessions WHERE name = ?1 AND device_id = ?2",
    "DELETE FROM signal_sessions WHERE name = ?1 AND device_id = ?2",
    "DELETE FROM signal_sessions WHERE name = ?1",
    "SELECT device_id FROM signal_sessions WHERE name = ?1",
    "SELECT record FROM signal_pre_keys WHERE id = ?1",
    "INSERT OR REPLACE INTO signal_pre_keys (id, record) VALUES (?1, ?2)",
    "SELECT 1 FROM signal_pre_keys WHERE id = ?1",
    "DELETE FROM signal_pre_keys WHERE id = ?1",
    "SELECT record FROM signal_signed_pre_keys WHERE id = ?1",
    "INSERT OR REPLACE INTO signal_signed_pre_keys (id, record) VALUES (?1, ?2)",
    "SELECT 1 FROM signal_signed_pre_keys WHERE id = ?1",
    "DELETE FROM signal_signed_pre_keys WHERE id = ?1",
    "SELECT public_key, private_key, registration_id FROM signal_local_identity WHERE id = 1",
    "INSERT OR REPLACE INTO signal_local_identity (id, public_key, private_key, registration_id)"
    " VALUES (1, ?1, ?2, ?3)",
    "INSERT OR REPLACE INTO signal_remote_identities (name, device_id, identity_key)"
    " VALUES (?1, ?2, ?3)",
    "SELECT identity_key FROM signal_remote_identities WHERE name = ?1 AND device_id = ?2",
    "SELECT record FROM signal_sender_keys WHERE group_id = ?1 AND name = ?2 AND device_id = ?3",
    "INSERT OR REPLACE INTO signal_sender_keys (group_id, name, device_id, record)"
    " VALUES (?1, ?2, ?3, ?4)",
    "DELETE FROM signal_sender_keys WHERE group_id = ?1 AND name = ?2 AND device_id = ?3",
    "SELECT iteration FROM signal_group_replay"
    " WHERE group_id = ?1 AND name = ?2 AND device_id = ?3 AND key_id = ?4",
    "INSERT OR REPLACE INTO signal_group_replay (group_id, name, device_id, key_id, iteration)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
};

std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// Resets a cached statement when the operation that used it ends, on every path: a
// statement left mid-result would keep a read transaction open on the connection, and
// Reset also drops the bound values (SQLite's copies of the records).
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& statement) : statement_(statement) {}
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;
  ~ResetOnExit() { statement_.Reset(); }

 private:
  Statement& statement_;
};

Status BindAddress(Statement& statement, int first, const SignalAddress& address) {
  COFFRE_RETURN_IF_ERROR(statement.Bind(first, AsBytes(address.name)));
  return statement.Bind(first + 1, address.device_id);
}

Status BindGroupSender(Statement& statement, std::string_view group_id,
                       const SignalAddress& sender) {
  COFFRE_RETURN_IF_ERROR(statement.Bind(1, AsBytes(group_id)));
  return BindAddress(statement, 2, sender);
}

// Runs a statement that returns no row the caller needs.
Status Run(Statement& statement) {
  COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement.Step());
  (void)has_row;
  return Ok();
}

// The first column of the first row as a secret, or nullopt when there is no row.
Result<std::optional<SecretBytes>> QuerySecret(Statement& statement) {
  COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement.Step());
  if (!has_row) return std::optional<SecretBytes>();
  return std::optional<SecretBytes>(statement.ColumnSecret(0));
}

// Reads an integer column that must fit in T; anything else was not written by this code.
template <typename T>
Result<T> ColumnAs(const Statement& statement, int column) {
  const std::int64_t value = statement.ColumnInt64(column);
  if (value < std::int64_t{std::numeric_limits<T>::min()} ||
      value > std::int64_t{std::numeric_limits<T>::max()}) {
    return Fail(ErrorCode::kCorrupt, "signal store: stored integer out of range");
  }
  return static_cast<T>(value);
}

// The state shared by the six stores: the connection, the statement cache and the
// transaction bookkeeping of RunInTransaction.
class StoreConnection {
 public:
  explicit StoreConnection(Database& database) : database_(database) {}

  Database& database() { return database_; }

  // The cached statement for `query`, prepared on first use.
  Result<Statement*> Get(Query query) {
    std::optional<Statement>& slot = cache_[query];
    if (!slot) {
      COFFRE_ASSIGN_OR_RETURN(Statement statement, database_.Prepare(kQueries[query]));
      slot.emplace(std::move(statement));
    }
    return &*slot;
  }

  // Rows changed by the last write statement.
  Result<std::int64_t> Changes() {
    COFFRE_ASSIGN_OR_RETURN(Statement * statement, Get(kChanges));
    ResetOnExit reset(*statement);
    COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
    if (!has_row) return Fail(ErrorCode::kDatabase, "signal store: changes() returned no row");
    return statement->ColumnInt64(0);
  }

  // Runs one store operation. Inside a transaction the first failure is remembered and
  // every later operation of the same transaction is refused with it: SQLite rolls a
  // transaction back by itself after some errors (SQLITE_FULL, SQLITE_IOERR, ...), and
  // writes made after that would each commit on their own, outside the transaction the
  // caller believes atomic. RunInTransaction then reports the failure and rolls back.
  template <typename Operation>
  auto Guarded(Operation&& operation) -> decltype(operation()) {
    if (failure_) return *failure_;
    auto result = operation();
    if (!result && in_transaction_) failure_ = result.error();
    return result;
  }

  void BeginTransaction() {
    in_transaction_ = true;
    failure_.reset();
  }
  void EndTransaction() {
    in_transaction_ = false;
    failure_.reset();
  }
  bool in_transaction() const { return in_transaction_; }
  const std::optional<Error>& failure() const { return failure_; }

  void ReleaseStatements() {
    for (auto& slot : cache_) slot.reset();
  }

 private:
  Database& database_;
  std::array<std::optional<Statement>, kQueryCount> cache_;
  bool in_transaction_ = false;
  std::optional<Error> failure_;
};

// Creates or replaces a record keyed by the statement's first parameters. The record is
// copied into a SecretBytes so that it is bound with BindSecret (the one binding path for
// secrets) and outlives the statement's use: `reset` is declared after it, so the
// bindings are cleared before the copy is wiped.
template <typename BindKey>
Status StoreRecord(StoreConnection& connection, Query query, int record_index,
                   std::span<const std::uint8_t> record, BindKey&& bind_key) {
  COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection.Get(query));
  const SecretBytes secret = SecretBytes::CopyOf(record);
  ResetOnExit reset(*statement);
  COFFRE_RETURN_IF_ERROR(bind_key(*statement));
  COFFRE_RETURN_IF_ERROR(statement->BindSecret(record_index, secret));
  return Run(*statement);
}

template <typename BindKey>
Result<std::optional<SecretBytes>> LoadRecord(StoreConnection& connection, Query query,
                                              BindKey&& bind_key) {
  COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection.Get(query));
  ResetOnExit reset(*statement);
  COFFRE_RETURN_IF_ERROR(bind_key(*statement));
  return QuerySecret(*statement);
}

template <typename BindKey>
Result<bool> Exists(StoreConnection& connection, Query query, BindKey&& bind_key) {
  COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection.Get(query));
  ResetOnExit reset(*statement);
  COFFRE_RETURN_IF_ERROR(bind_key(*statement));
  return statement->Step();
}

// Runs a DELETE (or other write) and returns how many rows it changed.
template <typename BindKey>
Result<std::int64_t> Write(StoreConnection& connection, Query query, BindKey&& bind_key) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection.Get(query));
    ResetOnExit reset(*statement);
    COFFRE_RETURN_IF_ERROR(bind_key(*statement));
    COFFRE_RETURN_IF_ERROR(Run(*statement));
  }
  return connection.Changes();
}

auto ById(std::uint32_t id) {
  return [id](Statement& statement) { return statement.Bind(1, std::int64_t{id}); };
}
auto ByAddress(const SignalAddress& address) {
  return [&address](Statement& statement) { return BindAddress(statement, 1, address); };
}
auto ByGroupSender(std::string_view group_id, const SignalAddress& sender) {
  return [group_id, &sender](Statement& statement) {
    return BindGroupSender(statement, group_id, sender);
  };
}

// ---------------------------------------------------------------------------------------
// The six stores. Each public call goes through StoreConnection::Guarded.

class SqlSessionStore final : public crypto::SessionStore {
 public:
  explicit SqlSessionStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<SecretBytes>> LoadSession(const SignalAddress& address) override {
    return connection_.Guarded(
        [&] { return LoadRecord(connection_, kLoadSession, ByAddress(address)); });
  }

  Status StoreSession(const SignalAddress& address, std::span<const std::uint8_t> record) override {
    return connection_.Guarded(
        [&] { return StoreRecord(connection_, kStoreSession, 3, record, ByAddress(address)); });
  }

  Result<bool> ContainsSession(const SignalAddress& address) override {
    return connection_.Guarded(
        [&] { return Exists(connection_, kContainsSession, ByAddress(address)); });
  }

  Result<bool> DeleteSession(const SignalAddress& address) override {
    return connection_.Guarded([&]() -> Result<bool> {
      COFFRE_ASSIGN_OR_RETURN(const std::int64_t deleted,
                              Write(connection_, kDeleteSession, ByAddress(address)));
      return deleted > 0;
    });
  }

  Result<std::size_t> DeleteAllSessions(std::string_view name) override {
    return connection_.Guarded([&]() -> Result<std::size_t> {
      COFFRE_ASSIGN_OR_RETURN(const std::int64_t deleted,
                              Write(connection_, kDeleteAllSessions,
                                    [name](Statement& s) { return s.Bind(1, AsBytes(name)); }));
      return static_cast<std::size_t>(std::max<std::int64_t>(deleted, 0));
    });
  }

  Result<std::vector<std::int32_t>> SubDeviceSessions(std::string_view name) override {
    return connection_.Guarded([&]() -> Result<std::vector<std::int32_t>> {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kSubDeviceSessions));
      ResetOnExit reset(*statement);
      COFFRE_RETURN_IF_ERROR(statement->Bind(1, AsBytes(name)));
      std::vector<std::int32_t> devices;
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
        if (!has_row) break;
        COFFRE_ASSIGN_OR_RETURN(const std::int32_t device, ColumnAs<std::int32_t>(*statement, 0));
        devices.push_back(device);
      }
      return devices;
    });
  }

 private:
  StoreConnection& connection_;
};

class SqlPreKeyStore final : public crypto::PreKeyStore {
 public:
  explicit SqlPreKeyStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<SecretBytes>> LoadPreKey(std::uint32_t id) override {
    return connection_.Guarded([&] { return LoadRecord(connection_, kLoadPreKey, ById(id)); });
  }
  Status StorePreKey(std::uint32_t id, std::span<const std::uint8_t> record) override {
    return connection_.Guarded(
        [&] { return StoreRecord(connection_, kStorePreKey, 2, record, ById(id)); });
  }
  Result<bool> ContainsPreKey(std::uint32_t id) override {
    return connection_.Guarded([&] { return Exists(connection_, kContainsPreKey, ById(id)); });
  }
  Status RemovePreKey(std::uint32_t id) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(const std::int64_t removed,
                              Write(connection_, kRemovePreKey, ById(id)));
      (void)removed;  // removing an absent id succeeds
      return Ok();
    });
  }

 private:
  StoreConnection& connection_;
};

class SqlSignedPreKeyStore final : public crypto::SignedPreKeyStore {
 public:
  explicit SqlSignedPreKeyStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<SecretBytes>> LoadSignedPreKey(std::uint32_t id) override {
    return connection_.Guarded(
        [&] { return LoadRecord(connection_, kLoadSignedPreKey, ById(id)); });
  }
  Status StoreSignedPreKey(std::uint32_t id, std::span<const std::uint8_t> record) override {
    return connection_.Guarded(
        [&] { return StoreRecord(connection_, kStoreSignedPreKey, 2, record, ById(id)); });
  }
  Result<bool> ContainsSignedPreKey(std::uint32_t id) override {
    return connection_.Guarded(
        [&] { return Exists(connection_, kContainsSignedPreKey, ById(id)); });
  }
  Status RemoveSignedPreKey(std::uint32_t id) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(const std::int64_t removed,
                              Write(connection_, kRemoveSignedPreKey, ById(id)));
      (void)removed;  // removing an absent id succeeds
      return Ok();
    });
  }

 private:
  StoreConnection& connection_;
};

class SqlIdentityKeyStore final : public crypto::IdentityKeyStore {
 public:
  explicit SqlIdentityKeyStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<LocalIdentity>> LoadLocalIdentity() override {
    return connection_.Guarded([&]() -> Result<std::optional<LocalIdentity>> {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kLoadLocalIdentity));
      ResetOnExit reset(*statement);
      COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
      if (!has_row) return std::optional<LocalIdentity>();
      COFFRE_ASSIGN_OR_RETURN(const std::uint32_t registration_id,
                              ColumnAs<std::uint32_t>(*statement, 2));
      return std::optional<LocalIdentity>(
          LocalIdentity{statement->ColumnBlob(0), statement->ColumnSecret(1), registration_id});
    });
  }

  Status StoreLocalIdentity(std::span<const std::uint8_t> public_key,
                            std::span<const std::uint8_t> private_key,
                            std::uint32_t registration_id) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kStoreLocalIdentity));
      // Kept alive until `reset` has cleared the bindings (see StoreRecord).
      const SecretBytes secret = SecretBytes::CopyOf(private_key);
      ResetOnExit reset(*statement);
      COFFRE_RETURN_IF_ERROR(statement->Bind(1, public_key));
      COFFRE_RETURN_IF_ERROR(statement->BindSecret(2, secret));
      COFFRE_RETURN_IF_ERROR(statement->Bind(3, std::int64_t{registration_id}));
      return Run(*statement);
    });
  }

  Status SaveIdentity(const SignalAddress& address,
                      std::span<const std::uint8_t> identity_key) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kSaveIdentity));
      ResetOnExit reset(*statement);
      COFFRE_RETURN_IF_ERROR(BindAddress(*statement, 1, address));
      // A public key: an ordinary blob.
      COFFRE_RETURN_IF_ERROR(statement->Bind(3, identity_key));
      return Run(*statement);
    });
  }

  Result<std::optional<std::vector<std::uint8_t>>> LoadIdentity(
      const SignalAddress& address) override {
    return connection_.Guarded([&] { return Load(address); });
  }

  // Trust on first use, as InMemoryIdentityKeyStore: no recorded key, or an equal one.
  Result<bool> IsTrusted(const SignalAddress& address,
                         std::span<const std::uint8_t> identity_key) override {
    return connection_.Guarded([&]() -> Result<bool> {
      COFFRE_ASSIGN_OR_RETURN(const auto recorded, Load(address));
      if (!recorded) return true;
      // Public keys: an ordinary comparison is fine.
      return std::equal(recorded->begin(), recorded->end(), identity_key.begin(),
                        identity_key.end());
    });
  }

 private:
  Result<std::optional<std::vector<std::uint8_t>>> Load(const SignalAddress& address) {
    COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kLoadIdentity));
    ResetOnExit reset(*statement);
    COFFRE_RETURN_IF_ERROR(BindAddress(*statement, 1, address));
    COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
    if (!has_row) return std::optional<std::vector<std::uint8_t>>();
    return std::optional<std::vector<std::uint8_t>>(statement->ColumnBlob(0));
  }

  StoreConnection& connection_;
};

class SqlSenderKeyStore final : public crypto::SenderKeyStore {
 public:
  explicit SqlSenderKeyStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<SecretBytes>> LoadSenderKey(std::string_view group_id,
                                                   const SignalAddress& sender) override {
    return connection_.Guarded(
        [&] { return LoadRecord(connection_, kLoadSenderKey, ByGroupSender(group_id, sender)); });
  }
  Status StoreSenderKey(std::string_view group_id, const SignalAddress& sender,
                        std::span<const std::uint8_t> record) override {
    return connection_.Guarded([&] {
      return StoreRecord(connection_, kStoreSenderKey, 4, record, ByGroupSender(group_id, sender));
    });
  }
  Status DeleteSenderKey(std::string_view group_id, const SignalAddress& sender) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(const std::int64_t deleted, Write(connection_, kDeleteSenderKey,
                                                                ByGroupSender(group_id, sender)));
      (void)deleted;  // deleting an absent record succeeds
      return Ok();
    });
  }

 private:
  StoreConnection& connection_;
};

class SqlGroupReplayGuardStore final : public crypto::GroupReplayGuardStore {
 public:
  explicit SqlGroupReplayGuardStore(StoreConnection& connection) : connection_(connection) {}

  Result<std::optional<std::uint32_t>> LoadHighestIteration(std::string_view group_id,
                                                            const SignalAddress& sender,
                                                            std::uint32_t key_id) override {
    return connection_.Guarded([&]() -> Result<std::optional<std::uint32_t>> {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kLoadHighestIteration));
      ResetOnExit reset(*statement);
      COFFRE_RETURN_IF_ERROR(BindGroupSender(*statement, group_id, sender));
      COFFRE_RETURN_IF_ERROR(statement->Bind(4, std::int64_t{key_id}));
      COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
      if (!has_row) return std::optional<std::uint32_t>();
      COFFRE_ASSIGN_OR_RETURN(const std::uint32_t iteration,
                              ColumnAs<std::uint32_t>(*statement, 0));
      return std::optional<std::uint32_t>(iteration);
    });
  }

  Status StoreHighestIteration(std::string_view group_id, const SignalAddress& sender,
                               std::uint32_t key_id, std::uint32_t iteration) override {
    return connection_.Guarded([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(Statement * statement, connection_.Get(kStoreHighestIteration));
      ResetOnExit reset(*statement);
      COFFRE_RETURN_IF_ERROR(BindGroupSender(*statement, group_id, sender));
      COFFRE_RETURN_IF_ERROR(statement->Bind(4, std::int64_t{key_id}));
      COFFRE_RETURN_IF_ERROR(statement->Bind(5, std::int64_t{iteration}));
      return Run(*statement);
    });
  }

 private:
  StoreConnection& connection_;
};

// ---------------------------------------------------------------------------------------
// Set-up checks.

Result<std::int64_t> QueryInteger(Database& database, const char* sql, const char* context) {
  COFFRE_ASSIGN_OR_RETURN(Statement statement, database.Prepare(sql));
  COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement.Step());
  if (!has_row) return Fail(ErrorCode::kDatabase, context);
  return statement.ColumnInt64(0);
}

// The atomicity contract promises that a committed ratchet step survives a power loss; in
// WAL mode that holds only with synchronous = FULL (2) or EXTRA (3). The Database sets
// FULL; this refuses a connection on which someone lowered it.
Status CheckDurability(Database& database) {
  COFFRE_ASSIGN_OR_RETURN(const std::int64_t level,
                          QueryInteger(database, "PRAGMA synchronous",
                                       "signal store: PRAGMA synchronous returned no row"));
  if (level < 2) {
    return Fail(ErrorCode::kUnsupported, "signal store needs PRAGMA synchronous = FULL");
  }
  return Ok();
}

// 0 when the Signal tables were never created.
Result<std::int64_t> SchemaVersion(Database& database) {
  COFFRE_ASSIGN_OR_RETURN(
      Statement statement,
      database.Prepare("SELECT version FROM coffre_signal_schema WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement.Step());
  return has_row ? statement.ColumnInt64(0) : std::int64_t{0};
}

// Database::Migrate's discipline (each step in its own transaction with its version, the
// version read again under the write lock, newer schemas refused), on a version table of
// our own: PRAGMA user_version stays the application's.
Status MigrateSignalSchema(Database& database) {
  // Idempotent, and a write only the first time; creating it inside each migration's
  // transaction instead would leave nothing to read the version from beforehand.
  COFFRE_RETURN_IF_ERROR(
      database.Execute("CREATE TABLE IF NOT EXISTS coffre_signal_schema ("
                       "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                       "  version INTEGER NOT NULL)"));
  COFFRE_ASSIGN_OR_RETURN(std::int64_t current, SchemaVersion(database));
  if (current > kSignalStoreSchemaVersion) {
    return Fail(ErrorCode::kUnsupported, "signal store schema is newer than this program");
  }
  for (const Migration& migration : kSignalMigrations) {
    if (migration.version <= current) continue;
    COFFRE_ASSIGN_OR_RETURN(Transaction transaction, database.Begin());
    // Another process may have migrated since the read above.
    COFFRE_ASSIGN_OR_RETURN(current, SchemaVersion(database));
    if (current > kSignalStoreSchemaVersion) {
      return Fail(ErrorCode::kUnsupported, "signal store schema is newer than this program");
    }
    if (migration.version <= current) continue;  // the empty transaction rolls back
    COFFRE_RETURN_IF_ERROR(database.Execute(migration.sql));
    COFFRE_ASSIGN_OR_RETURN(
        Statement record_version,
        database.Prepare("INSERT OR REPLACE INTO coffre_signal_schema (id, version) "
                         "VALUES (1, ?1)"));
    COFFRE_RETURN_IF_ERROR(record_version.Bind(1, migration.version));
    COFFRE_RETURN_IF_ERROR(Run(record_version));
    COFFRE_RETURN_IF_ERROR(transaction.Commit());
    current = migration.version;
  }
  return Ok();
}

}  // namespace

// Members are destroyed in reverse order: the stores, then the statement cache, then the
// owned Database, so no statement outlives the connection it belongs to.
struct SqlCipherSignalStores::Impl {
  Impl(std::unique_ptr<Database> owned_database, Database& database)
      : owned(std::move(owned_database)),
        connection(database),
        session(connection),
        pre_key(connection),
        signed_pre_key(connection),
        identity(connection),
        sender_key(connection),
        group_replay(connection) {}

  std::unique_ptr<Database> owned;
  StoreConnection connection;
  SqlSessionStore session;
  SqlPreKeyStore pre_key;
  SqlSignedPreKeyStore signed_pre_key;
  SqlIdentityKeyStore identity;
  SqlSenderKeyStore sender_key;
  SqlGroupReplayGuardStore group_replay;
};

namespace {

Result<std::unique_ptr<SqlCipherSignalStores::Impl>> MakeImpl(std::unique_ptr<Database> owned,
                                                              Database& database) {
  COFFRE_RETURN_IF_ERROR(CheckDurability(database));
  COFFRE_RETURN_IF_ERROR(MigrateSignalSchema(database));
  return std::make_unique<SqlCipherSignalStores::Impl>(std::move(owned), database);
}

}  // namespace

SqlCipherSignalStores::SqlCipherSignalStores(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqlCipherSignalStores::~SqlCipherSignalStores() = default;

Result<std::unique_ptr<SqlCipherSignalStores>> SqlCipherSignalStores::New(
    std::unique_ptr<Database> database) {
  if (database == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "signal store: no database given");
  }
  Database& borrowed = *database;
  COFFRE_ASSIGN_OR_RETURN(auto impl, MakeImpl(std::move(database), borrowed));
  return std::unique_ptr<SqlCipherSignalStores>(new SqlCipherSignalStores(std::move(impl)));
}

Result<std::unique_ptr<SqlCipherSignalStores>> SqlCipherSignalStores::New(Database& database) {
  COFFRE_ASSIGN_OR_RETURN(auto impl, MakeImpl(nullptr, database));
  return std::unique_ptr<SqlCipherSignalStores>(new SqlCipherSignalStores(std::move(impl)));
}

crypto::SignalStores SqlCipherSignalStores::stores() {
  return crypto::SignalStores{&impl_->session,  &impl_->pre_key,    &impl_->signed_pre_key,
                              &impl_->identity, &impl_->sender_key, &impl_->group_replay};
}

Database& SqlCipherSignalStores::database() { return impl_->connection.database(); }

Status SqlCipherSignalStores::RunInTransaction(const std::function<Status()>& body) {
  if (!body) return Fail(ErrorCode::kInvalidArgument, "signal store: empty transaction body");
  StoreConnection& connection = impl_->connection;
  if (connection.in_transaction()) {
    return Fail(ErrorCode::kInvalidArgument, "signal store: transactions do not nest");
  }
  COFFRE_ASSIGN_OR_RETURN(Transaction transaction, connection.database().Begin());
  connection.BeginTransaction();
  // Declared after `transaction`, so the bookkeeping ends first and the transaction then
  // rolls back unless it was committed, on every return path.
  struct EndOnExit {
    StoreConnection& connection;
    ~EndOnExit() { connection.EndTransaction(); }
  } end_on_exit{connection};

  COFFRE_RETURN_IF_ERROR(body());
  // A store failure the library did not pass on still voids the transaction.
  if (connection.failure()) return *connection.failure();
  return transaction.Commit();
}

void SqlCipherSignalStores::ReleaseStatements() { impl_->connection.ReleaseStatements(); }

}  // namespace coffre::storage
