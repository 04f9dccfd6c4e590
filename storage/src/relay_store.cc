// The relay's store on SQLCipher, with group commit.
//
// Design
// ------
// One store file in WAL mode with synchronous = FULL, so a COMMIT returns only after the
// WAL is fsynced. An fsync costs milliseconds, far more than the writes themselves, so the
// store pays one fsync per group of writes rather than one per write:
//
//   * Writes. Every write method builds an operation (a closure over the caller's
//     arguments and result slots), puts a request on one queue and sleeps on the future of
//     the request's own promise. A single writer thread owns the only connection that
//     writes. It takes every queued request (at most max_group_size), runs BEGIN
//     IMMEDIATE, then each operation as if inside its own SAVEPOINT: an operation that
//     fails (a compare-and-swap conflict, a duplicate, a missing row) leaves no change
//     behind and keeps its own error, and the others go on (RunGroup: the group runs
//     without savepoints first, and again with them only if an operation failed after
//     changing rows, since savepoints cost SQLCipher page encryptions). One COMMIT then
//     makes the whole group durable with one fsync, and only then is every caller of the
//     group woken with its own result. A caller therefore never returns before the commit
//     that holds its write, and "returned OK" always means "durable". If BEGIN or COMMIT
//     fails, every operation of the group that had succeeded reports that failure instead.
//   * Group forming. Requests that arrive while a group is being committed wait for the
//     next group, which is how the grouping arises by itself. After a group of several
//     callers, the writer also waits a short window for those callers to come back before
//     it commits a smaller group, like PostgreSQL's commit_delay: until they are all back,
//     for at most 300 us (RelayStoreOptions, a tenth of one fsync on our disks) and at most
//     half the last COMMIT's time (so a disk with fast fsyncs does not pay for it). A
//     group of one never waits, so a lone caller keeps the latency of a plain commit.
//   * Serialisation. Because one thread runs every write, each operation's
//     read-check-write (TakePreKeyBundle's choice of a one-time prekey, the compare-and-swap
//     of chains and items, the dedupe of client ids, the mailbox counters) runs alone and
//     needs no further locking; a write sees the effects of the writes before it in its
//     group, since they share one transaction.
//   * Reads. A small pool of separate connections, each used under its own mutex, serves
//     the read methods. WAL gives each read statement a snapshot of the last commit while
//     the writer works, so reads never wait for an unrelated fsync, and a caller that just
//     got OK from a write sees that write in its next read (its commit came first). Read
//     connections run with query_only = 1: nothing but the writer ever writes.
//   * Shutdown. The destructor lets the writer drain the queue, then joins it.
//
// Nothing throws out of this file: std::thread, std::mutex, std::promise and allocations
// are the only sources of exceptions, and each public method turns them into an Error
// (the writer thread, which cannot report one, is written so that none can arise there).
#include "coffre/storage/relay_store.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "coffre/storage/database.h"
#include "relay_store_internal.h"

namespace coffre::storage {
namespace {

using internal::RelayStoreOptions;
using internal::RelayStoreStats;

// ---------------------------------------------------------------------------------------
// Schema.

// Identifiers chosen by clients (team, item, blob, client ids) and hashes are BLOBs;
// user ids are TEXT (ASCII logins, compared byte for byte by the default BINARY collation).
// Small tables whose rows are only keys and numbers are WITHOUT ROWID; tables with
// ciphertext, certificates or statements (kilobytes per row) keep their rowid, as SQLite
// recommends.
//
// Envelopes: the mailbox (`envelopes`) holds only what is still queued, keyed by
// recipient device and sequence. Dedupe lives in `envelope_ids`, keyed (so UNIQUE) on
// (sender user, sender device, client id) with the sequence first given; WITHOUT ROWID,
// so each enqueue updates one b-tree there, not a table and its unique index. It outlives
// the envelope, so a retry that arrives after the acknowledgement is answered with the
// first sequence instead of being delivered again, and it is pruned by age once the
// envelope is gone (kEnvelopeIdRetentionMs). `mailbox_counters` holds the last sequence given per
// device; it only grows, so a sequence is never reused, even after every envelope is acknowledged.
// Its row exists exactly while the device is active: it doubles as the "may receive"
// check of EnqueueEnvelopes.
constexpr Migration kRelayMigrations[] = {
    {1,
     "CREATE TABLE enrolments ("
     "  code_hash BLOB PRIMARY KEY,"
     "  org_id TEXT NOT NULL,"
     "  admin INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL,"
     "  used INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE users ("
     "  user_id TEXT PRIMARY KEY,"
     "  org_id TEXT NOT NULL,"
     "  admin INTEGER NOT NULL,"
     "  identity_key BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE devices ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  certificate BLOB NOT NULL,"
     "  signing_key BLOB NOT NULL,"
     "  signal_identity_key BLOB NOT NULL,"
     "  revoked INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, device_id));"
     "CREATE TABLE sessions ("
     "  token_hash BLOB PRIMARY KEY,"
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX sessions_by_device ON sessions (user_id, device_id);"
     "CREATE TABLE registration_ids ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  registration_id INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;"
     "CREATE TABLE signed_pre_keys ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  key_id INTEGER NOT NULL,"
     "  public_key BLOB NOT NULL,"
     "  signature BLOB NOT NULL,"
     "  timestamp_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;"
     "CREATE TABLE one_time_pre_keys ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  key_id INTEGER NOT NULL,"
     "  public_key BLOB NOT NULL,"
     "  PRIMARY KEY (user_id, device_id, key_id)) WITHOUT ROWID;"
     "CREATE TABLE mailbox_counters ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  last_sequence INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, device_id)) WITHOUT ROWID;"
     "CREATE TABLE envelopes ("
     "  recipient_user_id TEXT NOT NULL,"
     "  recipient_device_id INTEGER NOT NULL,"
     "  sequence INTEGER NOT NULL,"
     "  sender_user_id TEXT NOT NULL,"
     "  sender_device_id INTEGER NOT NULL,"
     "  client_id BLOB NOT NULL,"
     "  type INTEGER NOT NULL,"
     "  ciphertext BLOB NOT NULL,"
     "  received_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (recipient_user_id, recipient_device_id, sequence));"
     "CREATE TABLE envelope_ids ("
     "  sender_user_id TEXT NOT NULL,"
     "  sender_device_id INTEGER NOT NULL,"
     "  client_id BLOB NOT NULL,"
     "  recipient_user_id TEXT NOT NULL,"
     "  recipient_device_id INTEGER NOT NULL,"
     "  sequence INTEGER NOT NULL,"
     "  received_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (sender_user_id, sender_device_id, client_id)) WITHOUT ROWID;"
     "CREATE INDEX envelope_ids_by_age ON envelope_ids (received_ms);"
     "CREATE TABLE chain_statements ("
     "  team_id BLOB NOT NULL,"
     "  sequence INTEGER NOT NULL,"
     "  hash BLOB NOT NULL,"
     "  statement BLOB NOT NULL,"
     "  PRIMARY KEY (team_id, sequence));"
     "CREATE TABLE chain_heads ("
     "  team_id BLOB PRIMARY KEY,"
     "  sequence INTEGER NOT NULL,"
     "  hash BLOB NOT NULL) WITHOUT ROWID;"
     "CREATE TABLE team_members ("
     "  team_id BLOB NOT NULL,"
     "  user_id TEXT NOT NULL,"
     "  role INTEGER NOT NULL,"
     "  PRIMARY KEY (team_id, user_id)) WITHOUT ROWID;"
     "CREATE INDEX team_members_by_user ON team_members (user_id);"
     "CREATE TABLE items ("
     "  team_id BLOB NOT NULL,"
     "  item_id BLOB NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  manifest BLOB NOT NULL,"
     "  blob_id BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (team_id, item_id, version));"
     "CREATE TABLE item_heads ("
     "  team_id BLOB NOT NULL,"
     "  item_id BLOB NOT NULL,"
     "  current_version INTEGER NOT NULL,"
     "  PRIMARY KEY (team_id, item_id)) WITHOUT ROWID;"
     "CREATE TABLE blobs ("
     "  team_id BLOB NOT NULL,"
     "  blob_id BLOB NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  received INTEGER NOT NULL,"
     "  complete INTEGER NOT NULL,"
     "  uploader_user_id TEXT NOT NULL,"
     "  uploader_device_id INTEGER NOT NULL,"
     "  PRIMARY KEY (team_id, blob_id)) WITHOUT ROWID"},
};

// Every statement the store runs, prepared once per connection and cached. Fixed SQL only
// (SQLite 3.15: no UPSERT, no RETURNING); every value is bound.
//
// The UPDATEs of one row by its key say OR FAIL. A plain UPDATE of a NOT NULL column
// runs in a statement journal inside a transaction (SQLite must be able to undo the
// statement alone on ABORT), and SQLCipher encrypts each page it saves there: one more
// page encryption and HMAC per UPDATE. With one row and bound non-null values, FAIL and
// ABORT end the same way.
enum Query : std::size_t {
  kChanges,
  kSavepoint,
  kReleaseSavepoint,
  kRollbackToSavepoint,
  kBeginRead,
  kEndRead,
  kAbortRead,
  kInsertEnrolment,
  kSelectEnrolment,
  kMarkEnrolmentUsed,
  kInsertUser,
  kSelectUser,
  kSelectUserExists,
  kInsertDevice,
  kSelectDevice,
  kSelectDeviceState,
  kListDevices,
  kRevokeDevice,
  kInsertMailboxCounter,
  kSelectMailboxCounter,
  kUpdateMailboxCounter,
  kDeleteMailboxCounter,
  kInsertSession,
  kSelectSession,
  kDeleteExpiredSession,
  kDeleteDeviceSessions,
  kReplaceRegistrationId,
  kSelectRegistrationId,
  kDeleteRegistrationId,
  kReplaceSignedPreKey,
  kSelectSignedPreKey,
  kDeleteSignedPreKey,
  kReplaceOneTimePreKey,
  kSelectLowestOneTimePreKey,
  kDeleteOneTimePreKey,
  kCountOneTimePreKeys,
  kDeleteDeviceOneTimePreKeys,
  kSelectEnvelopeId,
  kInsertEnvelopeId,
  kInsertEnvelope,
  kFetchEnvelopes,
  kSelectMailboxUsage,
  kSelectActiveMailboxUsage,
  kDeleteEnvelope,
  kDeleteDeviceEnvelopes,
  kPruneEnvelopeIds,
  kSelectChainHead,
  kReplaceChainHead,
  kInsertChainStatement,
  kFetchChain,
  kDeleteTeamMembers,
  kInsertTeamMember,
  kSelectTeamMembers,
  kSelectTeamsOfUser,
  kSelectItemHead,
  kReplaceItemHead,
  kInsertItem,
  kSelectItemVersion,
  kSelectCurrentItem,
  kListCurrentItems,
  kInsertBlob,
  kSelectBlob,
  kUpdateBlob,
  kSumTeamBlobs,
  kSumDeviceBlobs,
  kCountUsers,
  kCountActiveDevices,
  kCountTeams,
  kCountEnvelopes,
  kSumBlobBytes,
  kQueryCount,
};

constexpr std::array<const char*, kQueryCount> kQueries = {
    // kChanges: rows changed by the last write statement of this connection, which only
    // the writer thread uses.
    "SELECT changes()",
    "SAVEPOINT relay_write",
    "RELEASE relay_write",
    "ROLLBACK TO relay_write",
    // kBeginRead, kEndRead, kAbortRead: a read transaction on a read connection (deferred:
    // it takes its snapshot at its first SELECT), see ReadSnapshot.
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "INSERT INTO enrolments (code_hash, org_id, admin, expires_ms, used)"
    " VALUES (?1, ?2, ?3, ?4, 0)",
    "SELECT org_id, admin, expires_ms, used FROM enrolments WHERE code_hash = ?1",
    "UPDATE OR FAIL enrolments SET used = 1 WHERE code_hash = ?1",
    "INSERT INTO users (user_id, org_id, admin, identity_key, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    "SELECT user_id, org_id, admin, identity_key, created_ms FROM users WHERE user_id = ?1",
    "SELECT 1 FROM users WHERE user_id = ?1",
    "INSERT INTO devices (user_id, device_id, certificate, signing_key, signal_identity_key,"
    " revoked, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
    "SELECT user_id, device_id, certificate, signing_key, signal_identity_key, revoked,"
    " created_ms FROM devices WHERE user_id = ?1 AND device_id = ?2",
    "SELECT revoked, signal_identity_key FROM devices WHERE user_id = ?1 AND device_id = ?2",
    "SELECT user_id, device_id, certificate, signing_key, signal_identity_key, revoked,"
    " created_ms FROM devices WHERE user_id = ?1 ORDER BY device_id",
    "UPDATE OR FAIL devices SET revoked = 1 WHERE user_id = ?1 AND device_id = ?2",
    "INSERT INTO mailbox_counters (user_id, device_id, last_sequence) VALUES (?1, ?2, 0)",
    "SELECT last_sequence FROM mailbox_counters WHERE user_id = ?1 AND device_id = ?2",
    "UPDATE OR FAIL mailbox_counters SET last_sequence = ?3"
    " WHERE user_id = ?1 AND device_id = ?2",
    "DELETE FROM mailbox_counters WHERE user_id = ?1 AND device_id = ?2",
    "INSERT INTO sessions (token_hash, user_id, device_id, expires_ms) VALUES (?1, ?2, ?3, ?4)",
    "SELECT user_id, device_id, expires_ms FROM sessions WHERE token_hash = ?1",
    "DELETE FROM sessions WHERE token_hash = ?1 AND expires_ms <= ?2",
    "DELETE FROM sessions WHERE user_id = ?1 AND device_id = ?2",
    "INSERT OR REPLACE INTO registration_ids (user_id, device_id, registration_id)"
    " VALUES (?1, ?2, ?3)",
    "SELECT registration_id FROM registration_ids WHERE user_id = ?1 AND device_id = ?2",
    "DELETE FROM registration_ids WHERE user_id = ?1 AND device_id = ?2",
    "INSERT OR REPLACE INTO signed_pre_keys (user_id, device_id, key_id, public_key, signature,"
    " timestamp_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "SELECT key_id, public_key, signature, timestamp_ms FROM signed_pre_keys"
    " WHERE user_id = ?1 AND device_id = ?2",
    "DELETE FROM signed_pre_keys WHERE user_id = ?1 AND device_id = ?2",
    "INSERT OR REPLACE INTO one_time_pre_keys (user_id, device_id, key_id, public_key)"
    " VALUES (?1, ?2, ?3, ?4)",
    "SELECT key_id, public_key FROM one_time_pre_keys WHERE user_id = ?1 AND device_id = ?2"
    " ORDER BY key_id LIMIT 1",
    "DELETE FROM one_time_pre_keys WHERE user_id = ?1 AND device_id = ?2 AND key_id = ?3",
    "SELECT count(*) FROM one_time_pre_keys WHERE user_id = ?1 AND device_id = ?2",
    "DELETE FROM one_time_pre_keys WHERE user_id = ?1 AND device_id = ?2",
    "SELECT sequence FROM envelope_ids"
    " WHERE sender_user_id = ?1 AND sender_device_id = ?2 AND client_id = ?3",
    "INSERT INTO envelope_ids (sender_user_id, sender_device_id, client_id, recipient_user_id,"
    " recipient_device_id, sequence, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT INTO envelopes (recipient_user_id, recipient_device_id, sequence, sender_user_id,"
    " sender_device_id, client_id, type, ciphertext, received_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    "SELECT sequence, sender_user_id, sender_device_id, client_id, type, ciphertext,"
    " received_ms FROM envelopes"
    " WHERE recipient_user_id = ?1 AND recipient_device_id = ?2 AND sequence > ?3"
    " ORDER BY sequence LIMIT ?4",
    // length() of a BLOB reads its size from the record header, not its bytes.
    "SELECT count(*), coalesce(sum(length(ciphertext)), 0) FROM envelopes"
    " WHERE recipient_user_id = ?1 AND recipient_device_id = ?2",
    // The same with the device's revoked flag, in one statement: NULL when the device does
    // not exist.
    "SELECT min(d.revoked), count(e.sequence), coalesce(sum(length(e.ciphertext)), 0)"
    " FROM devices AS d LEFT JOIN envelopes AS e ON e.recipient_user_id = d.user_id"
    " AND e.recipient_device_id = d.device_id WHERE d.user_id = ?1 AND d.device_id = ?2",
    "DELETE FROM envelopes"
    " WHERE recipient_user_id = ?1 AND recipient_device_id = ?2 AND sequence = ?3",
    "DELETE FROM envelopes WHERE recipient_user_id = ?1 AND recipient_device_id = ?2",
    // Bounded, so one pruning never holds the write lock for long.
    "DELETE FROM envelope_ids WHERE (sender_user_id, sender_device_id, client_id) IN ("
    " SELECT i.sender_user_id, i.sender_device_id, i.client_id FROM envelope_ids AS i"
    " WHERE i.received_ms < ?1 AND NOT EXISTS ("
    "  SELECT 1 FROM envelopes AS e WHERE e.recipient_user_id = i.recipient_user_id"
    "  AND e.recipient_device_id = i.recipient_device_id AND e.sequence = i.sequence)"
    " LIMIT ?2)",
    "SELECT sequence, hash FROM chain_heads WHERE team_id = ?1",
    "INSERT OR REPLACE INTO chain_heads (team_id, sequence, hash) VALUES (?1, ?2, ?3)",
    "INSERT INTO chain_statements (team_id, sequence, hash, statement) VALUES (?1, ?2, ?3, ?4)",
    "SELECT statement FROM chain_statements WHERE team_id = ?1 AND sequence >= ?2"
    " ORDER BY sequence",
    "DELETE FROM team_members WHERE team_id = ?1",
    "INSERT INTO team_members (team_id, user_id, role) VALUES (?1, ?2, ?3)",
    "SELECT user_id, role FROM team_members WHERE team_id = ?1 ORDER BY user_id",
    "SELECT h.team_id, h.sequence, h.hash FROM team_members AS m"
    " JOIN chain_heads AS h ON h.team_id = m.team_id WHERE m.user_id = ?1 ORDER BY h.team_id",
    "SELECT current_version FROM item_heads WHERE team_id = ?1 AND item_id = ?2",
    "INSERT OR REPLACE INTO item_heads (team_id, item_id, current_version) VALUES (?1, ?2, ?3)",
    "INSERT INTO items (team_id, item_id, version, manifest, blob_id, created_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "SELECT team_id, item_id, version, manifest, blob_id, created_ms FROM items"
    " WHERE team_id = ?1 AND item_id = ?2 AND version = ?3",
    "SELECT i.team_id, i.item_id, i.version, i.manifest, i.blob_id, i.created_ms"
    " FROM item_heads AS h JOIN items AS i ON i.team_id = h.team_id"
    " AND i.item_id = h.item_id AND i.version = h.current_version"
    " WHERE h.team_id = ?1 AND h.item_id = ?2",
    "SELECT i.team_id, i.item_id, i.version, i.manifest, i.blob_id, i.created_ms"
    " FROM item_heads AS h JOIN items AS i ON i.team_id = h.team_id"
    " AND i.item_id = h.item_id AND i.version = h.current_version"
    " WHERE h.team_id = ?1 AND h.item_id > ?2 ORDER BY h.item_id LIMIT ?3",
    "INSERT INTO blobs (team_id, blob_id, size, received, complete, uploader_user_id,"
    " uploader_device_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "SELECT team_id, blob_id, size, received, complete, uploader_user_id, uploader_device_id"
    " FROM blobs WHERE team_id = ?1 AND blob_id = ?2",
    "UPDATE OR FAIL blobs SET received = ?3, complete = ?4"
    " WHERE team_id = ?1 AND blob_id = ?2",
    "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(received), 0) FROM blobs"
    " WHERE team_id = ?1",
    // No index on the uploader: this scans the blobs table (keys and numbers only, no
    // bytes), which is read only when a device creates a blob.
    "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(received), 0) FROM blobs"
    " WHERE uploader_user_id = ?1 AND uploader_device_id = ?2",
    "SELECT count(*) FROM users",
    "SELECT count(*) FROM devices WHERE revoked = 0",
    "SELECT count(*) FROM chain_heads",
    "SELECT count(*) FROM envelopes",
    "SELECT coalesce(sum(received), 0) FROM blobs",
};
static_assert(
    [] {
      for (const char* sql : kQueries) {
        if (sql == nullptr) return false;
      }
      return true;
    }(),
    "every Query needs its SQL in kQueries");

// ---------------------------------------------------------------------------------------
// Sizes (relay_store.h, "Identifiers").

constexpr std::size_t kMaxUserIdSize = 64;
constexpr std::size_t kHashSize = 32;
constexpr std::size_t kRandomIdSize = 16;  // team, item, blob and client ids
constexpr std::size_t kEd25519PublicKeySize = 32;
constexpr std::size_t kSignalPublicKeySize = 33;  // type byte + X25519 key
constexpr std::size_t kSignatureSize = 64;
constexpr std::uint64_t kMaxStoredUnsigned =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
// Client ids pruned per run; the rest wait for the next run.
constexpr std::int64_t kPruneBatch = 10000;
constexpr std::chrono::minutes kPruneInterval{1};

Status CheckUserId(std::string_view user_id) {
  if (user_id.empty() || user_id.size() > kMaxUserIdSize) {
    return Fail(ErrorCode::kInvalidArgument, "relay store: user id must be 1 to 64 bytes");
  }
  return Ok();
}

Status CheckSize(ByteView bytes, std::size_t size, const char* context) {
  if (bytes.size() != size) return Fail(ErrorCode::kInvalidArgument, context);
  return Ok();
}

Status CheckHash(ByteView hash) {
  return CheckSize(hash, kHashSize, "relay store: hashes must be 32 bytes");
}

Status CheckRandomId(ByteView id) {
  return CheckSize(id, kRandomIdSize, "relay store: team, item, blob and client ids are 16 bytes");
}

Status CheckStorable(std::uint64_t value) {
  if (value > kMaxStoredUnsigned) {
    return Fail(ErrorCode::kInvalidArgument, "relay store: value above INT64_MAX");
  }
  return Ok();
}

Status CheckDevice(const DeviceRecord& device) {
  COFFRE_RETURN_IF_ERROR(CheckUserId(device.user_id));
  COFFRE_RETURN_IF_ERROR(CheckSize(device.signing_key, kEd25519PublicKeySize,
                                   "relay store: device signing key must be 32 bytes"));
  if (!device.signal_identity_key.empty()) {
    COFFRE_RETURN_IF_ERROR(CheckSize(device.signal_identity_key, kSignalPublicKeySize,
                                     "relay store: signal identity key must be 33 bytes"));
  }
  return Ok();
}

Status CheckBlobProgress(std::uint64_t size, std::uint64_t received, bool complete) {
  COFFRE_RETURN_IF_ERROR(CheckStorable(size));
  if (received > size) {
    return Fail(ErrorCode::kInvalidArgument, "relay store: blob received beyond its size");
  }
  if (complete && received != size) {
    return Fail(ErrorCode::kInvalidArgument, "relay store: blob complete before its size");
  }
  return Ok();
}

// Checked by the callers above: the value fits.
std::int64_t Stored(std::uint64_t value) { return static_cast<std::int64_t>(value); }
std::int64_t Stored(bool value) { return value ? 1 : 0; }

// ---------------------------------------------------------------------------------------
// Connections and statements.

// A cached statement in use. Resets it on every path out of the operation: a statement
// left mid-result would keep a read snapshot open on its connection (stale reads, and a
// WAL that checkpoints cannot shrink), and Reset also drops the bound values.
class ActiveStatement {
 public:
  explicit ActiveStatement(Statement* statement) : statement_(statement) {}
  ActiveStatement(ActiveStatement&& other) noexcept
      : statement_(std::exchange(other.statement_, nullptr)) {}
  ActiveStatement& operator=(ActiveStatement&&) = delete;
  ActiveStatement(const ActiveStatement&) = delete;
  ActiveStatement& operator=(const ActiveStatement&) = delete;
  ~ActiveStatement() {
    if (statement_ != nullptr) statement_->Reset();
  }

  Statement* operator->() const { return statement_; }
  Statement& operator*() const { return *statement_; }

 private:
  Statement* statement_;
};

Status BindOne(Statement& statement, int index, std::int64_t value) {
  return statement.Bind(index, value);
}
Status BindOne(Statement& statement, int index, std::string_view text) {
  return statement.Bind(index, text);
}
Status BindOne(Statement& statement, int index, ByteView blob) {
  return statement.Bind(index, blob);
}

// One database connection and its statement cache. Used by one thread at a time: the
// writer's by the writer thread only, a reader's under its slot's mutex.
class Connection {
 public:
  explicit Connection(std::unique_ptr<Database> database) : database_(std::move(database)) {}

  Database& database() { return *database_; }

  // The cached statement for `query` (prepared on first use) with `args` bound to ?1, ?2...
  // Integers must be passed as std::int64_t, text as std::string_view, blobs as ByteView.
  template <typename... Args>
  Result<ActiveStatement> Use(Query query, const Args&... args) {
    std::optional<Statement>& slot = cache_[query];
    if (!slot) {
      COFFRE_ASSIGN_OR_RETURN(Statement statement, database_->Prepare(kQueries[query]));
      slot.emplace(std::move(statement));
    }
    ActiveStatement active(&*slot);
    int index = 0;
    Status bound;
    ((bound = bound ? BindOne(*active, ++index, args) : bound), ...);
    if (!bound) return bound.error();
    return active;
  }

  // Runs a statement that returns no rows.
  template <typename... Args>
  Status Run(Query query, const Args&... args) {
    COFFRE_ASSIGN_OR_RETURN(auto statement, Use(query, args...));
    COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
    (void)has_row;
    return Ok();
  }

  // The first column of the first row as an integer; nullopt when there is no row.
  template <typename... Args>
  Result<std::optional<std::int64_t>> QueryInt(Query query, const Args&... args) {
    COFFRE_ASSIGN_OR_RETURN(auto statement, Use(query, args...));
    COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement->Step());
    if (!has_row) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(statement->ColumnInt64(0));
  }

  // Rows changed by the last write statement.
  Result<std::int64_t> Changes() {
    COFFRE_ASSIGN_OR_RETURN(auto changes, QueryInt(kChanges));
    if (!changes) return Fail(ErrorCode::kDatabase, "relay store: changes() returned no row");
    return *changes;
  }

 private:
  // Declared first so that it is destroyed last, after every statement of the cache.
  std::unique_ptr<Database> database_;
  std::array<std::optional<Statement>, kQueryCount> cache_;
};

// Reads an integer column that must fit in T; anything else was not written by this code.
template <typename T>
Result<T> ColumnAs(const Statement& statement, int column) {
  const std::int64_t value = statement.ColumnInt64(column);
  if constexpr (std::is_same_v<T, bool>) {
    if (value != 0 && value != 1) {
      return Fail(ErrorCode::kCorrupt, "relay store: stored flag out of range");
    }
    return value == 1;
  } else {
    static_assert(std::is_unsigned_v<T> && sizeof(T) <= sizeof(std::int64_t));
    bool fits = value >= 0;
    if constexpr (sizeof(T) < sizeof(std::int64_t)) {
      fits = fits && value <= std::int64_t{std::numeric_limits<T>::max()};
    }
    if (!fits) return Fail(ErrorCode::kCorrupt, "relay store: stored integer out of range");
    return static_cast<T>(value);
  }
}

Result<DeviceRecord> ReadDevice(const Statement& row) {
  DeviceRecord device;
  device.user_id = row.ColumnText(0);
  COFFRE_ASSIGN_OR_RETURN(device.device_id, ColumnAs<std::uint32_t>(row, 1));
  device.certificate = row.ColumnBlob(2);
  device.signing_key = row.ColumnBlob(3);
  device.signal_identity_key = row.ColumnBlob(4);
  COFFRE_ASSIGN_OR_RETURN(device.revoked, ColumnAs<bool>(row, 5));
  device.created_ms = row.ColumnInt64(6);
  return device;
}

Result<ItemRecord> ReadItem(const Statement& row) {
  ItemRecord item;
  item.team_id = row.ColumnBlob(0);
  item.item_id = row.ColumnBlob(1);
  COFFRE_ASSIGN_OR_RETURN(item.version, ColumnAs<std::uint64_t>(row, 2));
  item.manifest = row.ColumnBlob(3);
  item.blob_id = row.ColumnBlob(4);
  item.created_ms = row.ColumnInt64(5);
  return item;
}

// A read transaction on a read connection, so that several statements read one snapshot
// (and SQLite checks once, not per statement, whether the writer has moved on). The
// transaction ends on every path out: a connection left inside one would serve every later
// read from this old snapshot.
class ReadSnapshot {
 public:
  static Result<ReadSnapshot> Begin(Connection& c) {
    COFFRE_RETURN_IF_ERROR(c.Run(kBeginRead));
    return ReadSnapshot(c);
  }
  ReadSnapshot(ReadSnapshot&& other) noexcept : c_(std::exchange(other.c_, nullptr)) {}
  ReadSnapshot& operator=(ReadSnapshot&&) = delete;
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;
  // A read transaction has nothing to commit; ROLLBACK ends it if COMMIT did not.
  ~ReadSnapshot() {
    if (c_ != nullptr && !c_->Run(kEndRead)) (void)c_->Run(kAbortRead);
  }

 private:
  explicit ReadSnapshot(Connection& c) : c_(&c) {}
  Connection* c_;
};

Result<MailboxUsageRecord> ReadMailboxUsage(Connection& c, std::string_view user_id,
                                            std::int64_t device_id) {
  COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectMailboxUsage, user_id, device_id));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
  if (!found) return Fail(ErrorCode::kDatabase, "relay store: count returned no row");
  MailboxUsageRecord usage;
  COFFRE_ASSIGN_OR_RETURN(usage.count, ColumnAs<std::uint64_t>(*row, 0));
  COFFRE_ASSIGN_OR_RETURN(usage.bytes, ColumnAs<std::uint64_t>(*row, 1));
  return usage;
}

// kSumTeamBlobs or kSumDeviceBlobs with its arguments bound.
template <typename... Args>
Result<BlobUsageRecord> ReadBlobUsage(Connection& c, Query query, const Args&... args) {
  COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(query, args...));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
  if (!found) return Fail(ErrorCode::kDatabase, "relay store: sum returned no row");
  BlobUsageRecord usage;
  COFFRE_ASSIGN_OR_RETURN(usage.blobs, ColumnAs<std::uint64_t>(*row, 0));
  COFFRE_ASSIGN_OR_RETURN(usage.size_bytes, ColumnAs<std::uint64_t>(*row, 1));
  COFFRE_ASSIGN_OR_RETURN(usage.received_bytes, ColumnAs<std::uint64_t>(*row, 2));
  return usage;
}

// CPU time of the calling thread (0 if the clock is unavailable): the writer's own cost per
// group, which unlike wall time does not depend on how long the disk takes to sync.
std::int64_t ThreadCpuNanoseconds() noexcept {
  timespec now{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return 0;
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// Turns an exception from the standard library into an Error, so none leaves the API.
Error ErrorFromException() {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return Error(ErrorCode::kResourceExhausted, "relay store: out of memory");
  } catch (const std::system_error&) {
    return Error(ErrorCode::kInternal, "relay store: thread or lock failure");
  } catch (...) {
    return Error(ErrorCode::kInternal, "relay store: unexpected exception");
  }
}

template <typename F>
auto Guarded(F&& function) noexcept -> decltype(function()) {
  try {
    return function();
  } catch (...) {
    return ErrorFromException();
  }
}

// ---------------------------------------------------------------------------------------
// The store.

// A write waiting for its group. Lives on the caller's stack; the caller sleeps on the
// future of `done` until the writer has set `status` and made it ready.
struct WriteRequest {
  std::function<Status(Connection&)> operation;
  Status status = Fail(ErrorCode::kInternal, "relay store: write not run");
  // The writer moves the promise out of the request before it sets it: the caller may
  // destroy the request as soon as the future is ready, while set_value is still returning
  // on the writer's side, and the moved promise keeps the shared state alive until then.
  // Waking through the future rather than a condition variable under the queue mutex also
  // spares each woken caller a second sleep on that mutex.
  std::promise<void> done;
};

class SqlCipherRelayStore final : public RelayStore {
  struct ConstructorTag {};

 public:
  SqlCipherRelayStore(ConstructorTag, std::unique_ptr<Database> writer,
                      std::vector<std::unique_ptr<Database>> readers,
                      const RelayStoreOptions& options)
      : options_(options), writer_(std::move(writer)), reader_slots_(readers.size()) {
    for (std::size_t i = 0; i < readers.size(); ++i) {
      reader_slots_[i].connection.emplace(std::move(readers[i]));
    }
    queue_.reserve(options_.max_group_size);
  }

  SqlCipherRelayStore(const SqlCipherRelayStore&) = delete;
  SqlCipherRelayStore& operator=(const SqlCipherRelayStore&) = delete;

  // Drains the queue and joins the writer. Callers must have returned from every method
  // (the usual rule for destroying an object); writes still queued are committed first.
  ~SqlCipherRelayStore() override {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
      paused_ = false;
    }
    writer_wake_.notify_one();
    if (writer_thread_.joinable()) writer_thread_.join();
  }

  // --- RelayStore -------------------------------------------------------------------------

  Status CreateEnrolment(ByteView code_hash, std::string_view org_id, bool admin,
                         std::int64_t expires_ms) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckHash(code_hash));
      return Write([&](Connection& c) {
        return c.Run(kInsertEnrolment, code_hash, org_id, Stored(admin), expires_ms);
      });
    });
  }

  Result<EnrolmentGrant> RegisterUser(ByteView code_hash, std::int64_t now_ms,
                                      const UserRecord& user,
                                      const DeviceRecord& first_device) override {
    return Guarded([&]() -> Result<EnrolmentGrant> {
      COFFRE_RETURN_IF_ERROR(CheckHash(code_hash));
      COFFRE_RETURN_IF_ERROR(CheckUserId(user.user_id));
      COFFRE_RETURN_IF_ERROR(CheckSize(user.identity_key, kEd25519PublicKeySize,
                                       "relay store: user identity key must be 32 bytes"));
      COFFRE_RETURN_IF_ERROR(CheckDevice(first_device));
      if (first_device.user_id != user.user_id) {
        return Fail(ErrorCode::kInvalidArgument, "relay store: first device of another user");
      }
      EnrolmentGrant grant;
      const Status written = Write([&](Connection& c) -> Status {
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectEnrolment, code_hash));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found || row->ColumnInt64(3) != 0 || row->ColumnInt64(2) <= now_ms) {
            return Fail(ErrorCode::kNotFound, "relay store: no usable enrolment code");
          }
          grant.org_id = row->ColumnText(0);
          COFFRE_ASSIGN_OR_RETURN(grant.admin, ColumnAs<bool>(*row, 1));
        }
        COFFRE_RETURN_IF_ERROR(c.Run(kInsertUser, std::string_view(user.user_id),
                                     std::string_view(grant.org_id), Stored(grant.admin),
                                     ByteView(user.identity_key), user.created_ms));
        COFFRE_RETURN_IF_ERROR(InsertDevice(c, first_device));
        return c.Run(kMarkEnrolmentUsed, code_hash);
      });
      if (!written) return written.error();
      return grant;
    });
  }

  Result<std::optional<UserRecord>> GetUser(std::string_view user_id) override {
    return Guarded([&]() -> Result<std::optional<UserRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) -> Result<std::optional<UserRecord>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectUser, user_id));
        COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
        if (!found) return std::optional<UserRecord>();
        UserRecord user;
        user.user_id = row->ColumnText(0);
        user.org_id = row->ColumnText(1);
        COFFRE_ASSIGN_OR_RETURN(user.admin, ColumnAs<bool>(*row, 2));
        user.identity_key = row->ColumnBlob(3);
        user.created_ms = row->ColumnInt64(4);
        return std::optional<UserRecord>(std::move(user));
      });
    });
  }

  Status AddDevice(const DeviceRecord& device) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckDevice(device));
      return Write([&](Connection& c) -> Status {
        COFFRE_ASSIGN_OR_RETURN(auto user,
                                c.QueryInt(kSelectUserExists, std::string_view(device.user_id)));
        if (!user) return Fail(ErrorCode::kNotFound, "relay store: no such user");
        return InsertDevice(c, device);
      });
    });
  }

  Status RevokeDevice(std::string_view user_id, std::uint32_t device_id) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      const std::int64_t device = device_id;
      return Write([&](Connection& c) -> Status {
        COFFRE_RETURN_IF_ERROR(c.Run(kRevokeDevice, user_id, device));
        COFFRE_ASSIGN_OR_RETURN(const std::int64_t changed, c.Changes());
        if (changed == 0) return Fail(ErrorCode::kNotFound, "relay store: no such device");
        for (const Query query :
             {kDeleteDeviceSessions, kDeleteRegistrationId, kDeleteSignedPreKey,
              kDeleteDeviceOneTimePreKeys, kDeleteDeviceEnvelopes, kDeleteMailboxCounter}) {
          COFFRE_RETURN_IF_ERROR(c.Run(query, user_id, device));
        }
        return Ok();
      });
    });
  }

  Result<std::optional<DeviceRecord>> GetDevice(std::string_view user_id,
                                                std::uint32_t device_id) override {
    return Guarded([&]() -> Result<std::optional<DeviceRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) -> Result<std::optional<DeviceRecord>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectDevice, user_id, std::int64_t{device_id}));
        COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
        if (!found) return std::optional<DeviceRecord>();
        COFFRE_ASSIGN_OR_RETURN(auto device, ReadDevice(*row));
        return std::optional<DeviceRecord>(std::move(device));
      });
    });
  }

  Result<std::vector<DeviceRecord>> ListDevices(std::string_view user_id) override {
    return Guarded([&]() -> Result<std::vector<DeviceRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) -> Result<std::vector<DeviceRecord>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kListDevices, user_id));
        std::vector<DeviceRecord> devices;
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          COFFRE_ASSIGN_OR_RETURN(auto device, ReadDevice(*row));
          devices.push_back(std::move(device));
        }
        return devices;
      });
    });
  }

  Status StoreSession(ByteView token_hash, const SessionRecord& session) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckHash(token_hash));
      COFFRE_RETURN_IF_ERROR(CheckUserId(session.user_id));
      const std::string_view user_id = session.user_id;
      const std::int64_t device = session.device_id;
      return Write([&](Connection& c) -> Status {
        COFFRE_RETURN_IF_ERROR(RequireActiveDevice(c, user_id, device));
        return c.Run(kInsertSession, token_hash, user_id, device, session.expires_ms);
      });
    });
  }

  Result<std::optional<SessionRecord>> LookupSession(ByteView token_hash,
                                                     std::int64_t now_ms) override {
    return Guarded([&]() -> Result<std::optional<SessionRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckHash(token_hash));
      COFFRE_ASSIGN_OR_RETURN(
          auto found, Read([&](Connection& c) -> Result<std::optional<SessionRecord>> {
            COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectSession, token_hash));
            COFFRE_ASSIGN_OR_RETURN(const bool has_row, row->Step());
            if (!has_row) return std::optional<SessionRecord>();
            SessionRecord session;
            session.user_id = row->ColumnText(0);
            COFFRE_ASSIGN_OR_RETURN(session.device_id, ColumnAs<std::uint32_t>(*row, 1));
            session.expires_ms = row->ColumnInt64(2);
            return std::optional<SessionRecord>(std::move(session));
          }));
      if (!found || found->expires_ms > now_ms) return found;
      // Expired: deleted through the writer (after the read connection is released). The
      // condition is repeated in the DELETE, so a session stored again meanwhile under the
      // same hash with a later expiry would survive.
      const Status written =
          Write([&](Connection& c) { return c.Run(kDeleteExpiredSession, token_hash, now_ms); });
      if (!written) return written.error();
      return std::optional<SessionRecord>();
    });
  }

  Status StorePreKeys(std::string_view user_id, std::uint32_t device_id,
                      std::uint32_t registration_id,
                      const std::optional<SignedPreKeyRecord>& signed_pre_key,
                      std::span<const OneTimePreKeyRecord> one_time_pre_keys) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      if (signed_pre_key) {
        COFFRE_RETURN_IF_ERROR(CheckSize(signed_pre_key->public_key, kSignalPublicKeySize,
                                         "relay store: prekeys must be 33 bytes"));
        COFFRE_RETURN_IF_ERROR(CheckSize(signed_pre_key->signature, kSignatureSize,
                                         "relay store: prekey signatures must be 64 bytes"));
      }
      for (const auto& one_time : one_time_pre_keys) {
        COFFRE_RETURN_IF_ERROR(CheckSize(one_time.public_key, kSignalPublicKeySize,
                                         "relay store: prekeys must be 33 bytes"));
      }
      const std::int64_t device = device_id;
      return Write([&](Connection& c) -> Status {
        COFFRE_RETURN_IF_ERROR(RequireActiveDevice(c, user_id, device));
        COFFRE_RETURN_IF_ERROR(
            c.Run(kReplaceRegistrationId, user_id, device, std::int64_t{registration_id}));
        if (signed_pre_key) {
          COFFRE_RETURN_IF_ERROR(
              c.Run(kReplaceSignedPreKey, user_id, device, std::int64_t{signed_pre_key->id},
                    ByteView(signed_pre_key->public_key), ByteView(signed_pre_key->signature),
                    signed_pre_key->timestamp_ms));
        }
        for (const auto& one_time : one_time_pre_keys) {
          COFFRE_RETURN_IF_ERROR(c.Run(kReplaceOneTimePreKey, user_id, device,
                                       std::int64_t{one_time.id}, ByteView(one_time.public_key)));
        }
        return Ok();
      });
    });
  }

  Result<PreKeyBundleRecord> TakePreKeyBundle(std::string_view user_id,
                                              std::uint32_t device_id) override {
    return Guarded([&]() -> Result<PreKeyBundleRecord> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      const std::int64_t device = device_id;
      PreKeyBundleRecord bundle;
      // A write even when no one-time prekey is left: the choice and the deletion of the
      // lowest one must run alone (on the writer) so no two fetches get the same key.
      const Status written = Write([&](Connection& c) -> Status {
        bundle = PreKeyBundleRecord();
        constexpr const char* kNoBundle = "relay store: no prekey bundle for this device";
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectDeviceState, user_id, device));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found || row->ColumnInt64(0) != 0) return Fail(ErrorCode::kNotFound, kNoBundle);
          bundle.signal_identity_key = row->ColumnBlob(1);
        }
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectRegistrationId, user_id, device));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) return Fail(ErrorCode::kNotFound, kNoBundle);
          COFFRE_ASSIGN_OR_RETURN(bundle.registration_id, ColumnAs<std::uint32_t>(*row, 0));
        }
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectSignedPreKey, user_id, device));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) return Fail(ErrorCode::kNotFound, kNoBundle);
          COFFRE_ASSIGN_OR_RETURN(bundle.signed_pre_key.id, ColumnAs<std::uint32_t>(*row, 0));
          bundle.signed_pre_key.public_key = row->ColumnBlob(1);
          bundle.signed_pre_key.signature = row->ColumnBlob(2);
          bundle.signed_pre_key.timestamp_ms = row->ColumnInt64(3);
        }
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectLowestOneTimePreKey, user_id, device));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (found) {
            OneTimePreKeyRecord one_time;
            COFFRE_ASSIGN_OR_RETURN(one_time.id, ColumnAs<std::uint32_t>(*row, 0));
            one_time.public_key = row->ColumnBlob(1);
            bundle.one_time_pre_key = std::move(one_time);
          }
        }
        if (bundle.one_time_pre_key) {
          COFFRE_RETURN_IF_ERROR(c.Run(kDeleteOneTimePreKey, user_id, device,
                                       std::int64_t{bundle.one_time_pre_key->id}));
        }
        COFFRE_ASSIGN_OR_RETURN(auto left, c.QueryInt(kCountOneTimePreKeys, user_id, device));
        if (!left || *left < 0 || *left > std::int64_t{std::numeric_limits<std::uint32_t>::max()}) {
          return Fail(ErrorCode::kCorrupt, "relay store: prekey count out of range");
        }
        bundle.one_time_pre_keys_left = static_cast<std::uint32_t>(*left);
        return Ok();
      });
      if (!written) return written.error();
      return bundle;
    });
  }

  Result<std::uint64_t> OneTimePreKeyCount(std::string_view user_id,
                                           std::uint32_t device_id) override {
    return Guarded([&]() -> Result<std::uint64_t> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) -> Result<std::uint64_t> {
        COFFRE_ASSIGN_OR_RETURN(const auto count,
                                c.QueryInt(kCountOneTimePreKeys, user_id, std::int64_t{device_id}));
        if (!count) return Fail(ErrorCode::kDatabase, "relay store: count returned no row");
        return NonNegative(*count);
      });
    });
  }

  Result<std::vector<std::uint64_t>> EnqueueEnvelopes(
      std::span<const NewEnvelope> envelopes) override {
    return Guarded([&]() -> Result<std::vector<std::uint64_t>> {
      for (const auto& envelope : envelopes) {
        COFFRE_RETURN_IF_ERROR(CheckUserId(envelope.recipient_user_id));
        COFFRE_RETURN_IF_ERROR(CheckUserId(envelope.sender_user_id));
        COFFRE_RETURN_IF_ERROR(CheckRandomId(envelope.client_id));
      }
      std::vector<std::uint64_t> sequences;
      if (envelopes.empty()) return sequences;
      sequences.reserve(envelopes.size());
      const Status written = Write([&](Connection& c) -> Status {
        // A failed attempt is rolled back to its savepoint; its partial list must go too.
        sequences.clear();
        for (const auto& envelope : envelopes) {
          COFFRE_ASSIGN_OR_RETURN(const std::uint64_t sequence, EnqueueOne(c, envelope));
          sequences.push_back(sequence);
        }
        return Ok();
      });
      if (!written) return written.error();
      return sequences;
    });
  }

  Result<std::vector<EnvelopeRecord>> FetchEnvelopes(std::string_view user_id,
                                                     std::uint32_t device_id,
                                                     std::uint64_t after_sequence,
                                                     std::uint32_t limit) override {
    return Guarded([&]() -> Result<std::vector<EnvelopeRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      std::vector<EnvelopeRecord> envelopes;
      // Sequences never exceed INT64_MAX, so nothing comes after a larger one.
      if (limit == 0 || after_sequence >= kMaxStoredUnsigned) return envelopes;
      return Read([&](Connection& c) -> Result<std::vector<EnvelopeRecord>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kFetchEnvelopes, user_id, std::int64_t{device_id},
                                                Stored(after_sequence), std::int64_t{limit}));
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          EnvelopeRecord envelope;
          COFFRE_ASSIGN_OR_RETURN(envelope.sequence, ColumnAs<std::uint64_t>(*row, 0));
          envelope.sender_user_id = row->ColumnText(1);
          COFFRE_ASSIGN_OR_RETURN(envelope.sender_device_id, ColumnAs<std::uint32_t>(*row, 2));
          envelope.client_id = row->ColumnBlob(3);
          COFFRE_ASSIGN_OR_RETURN(envelope.type, ColumnAs<std::uint32_t>(*row, 4));
          envelope.ciphertext = row->ColumnBlob(5);
          envelope.received_ms = row->ColumnInt64(6);
          envelopes.push_back(std::move(envelope));
        }
        return std::move(envelopes);
      });
    });
  }

  Result<std::uint64_t> AckEnvelopes(std::string_view user_id, std::uint32_t device_id,
                                     std::span<const std::uint64_t> sequences) override {
    return Guarded([&]() -> Result<std::uint64_t> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      std::uint64_t deleted = 0;
      if (sequences.empty()) return deleted;
      const std::int64_t device = device_id;
      const Status written = Write([&](Connection& c) -> Status {
        deleted = 0;
        for (const std::uint64_t sequence : sequences) {
          if (sequence > kMaxStoredUnsigned) continue;  // never given out
          COFFRE_RETURN_IF_ERROR(c.Run(kDeleteEnvelope, user_id, device, Stored(sequence)));
          COFFRE_ASSIGN_OR_RETURN(const std::int64_t changed, c.Changes());
          deleted += static_cast<std::uint64_t>(changed);
        }
        return Ok();
      });
      if (!written) return written.error();
      return deleted;
    });
  }

  Result<MailboxUsageRecord> MailboxUsage(std::string_view user_id,
                                          std::uint32_t device_id) override {
    return Guarded([&]() -> Result<MailboxUsageRecord> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read(
          [&](Connection& c) { return ReadMailboxUsage(c, user_id, std::int64_t{device_id}); });
    });
  }

  Result<std::vector<std::optional<MailboxUsageRecord>>> ActiveMailboxUsage(
      std::span<const DeviceAddress> devices) override {
    using Usages = std::vector<std::optional<MailboxUsageRecord>>;
    return Guarded([&]() -> Result<Usages> {
      for (const auto& device : devices) COFFRE_RETURN_IF_ERROR(CheckUserId(device.user_id));
      Usages usages;
      if (devices.empty()) return usages;
      usages.reserve(devices.size());
      return Read([&](Connection& c) -> Result<Usages> {
        COFFRE_ASSIGN_OR_RETURN(const ReadSnapshot snapshot, ReadSnapshot::Begin(c));
        for (const auto& device : devices) {
          COFFRE_ASSIGN_OR_RETURN(auto row,
                                  c.Use(kSelectActiveMailboxUsage, std::string_view(device.user_id),
                                        std::int64_t{device.device_id}));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) return Fail(ErrorCode::kDatabase, "relay store: count returned no row");
          if (row->ColumnIsNull(0) || row->ColumnInt64(0) != 0) {
            usages.emplace_back();  // unknown or revoked
            continue;
          }
          MailboxUsageRecord usage;
          COFFRE_ASSIGN_OR_RETURN(usage.count, ColumnAs<std::uint64_t>(*row, 1));
          COFFRE_ASSIGN_OR_RETURN(usage.bytes, ColumnAs<std::uint64_t>(*row, 2));
          usages.push_back(usage);
        }
        return std::move(usages);
      });
    });
  }

  Result<std::optional<ChainHead>> GetChainHead(ByteView team_id) override {
    return Guarded([&]() -> Result<std::optional<ChainHead>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      return Read([&](Connection& c) { return ReadChainHead(c, team_id); });
    });
  }

  Status AppendChainStatement(ByteView team_id, const std::optional<ChainHead>& expected_head,
                              const ChainHead& new_head, ByteView statement,
                              std::span<const TeamMember> members_after) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      COFFRE_RETURN_IF_ERROR(CheckHash(new_head.hash));
      COFFRE_RETURN_IF_ERROR(CheckStorable(new_head.sequence));
      if (expected_head) {
        COFFRE_RETURN_IF_ERROR(CheckHash(expected_head->hash));
        if (expected_head->sequence >= kMaxStoredUnsigned ||
            new_head.sequence != expected_head->sequence + 1) {
          return Fail(ErrorCode::kInvalidArgument,
                      "relay store: a statement must follow the expected head");
        }
      }
      std::set<std::string_view> users;
      for (const auto& member : members_after) {
        COFFRE_RETURN_IF_ERROR(CheckUserId(member.user_id));
        if (!users.insert(member.user_id).second) {
          return Fail(ErrorCode::kInvalidArgument, "relay store: member listed twice");
        }
      }
      return Write([&](Connection& c) -> Status {
        COFFRE_ASSIGN_OR_RETURN(const auto head, ReadChainHead(c, team_id));
        const bool matches = expected_head ? head && head->sequence == expected_head->sequence &&
                                                 head->hash == expected_head->hash
                                           : !head;
        if (!matches) return Fail(ErrorCode::kConflict, "relay store: the chain head moved");
        COFFRE_RETURN_IF_ERROR(c.Run(kInsertChainStatement, team_id, Stored(new_head.sequence),
                                     ByteView(new_head.hash), statement));
        COFFRE_RETURN_IF_ERROR(
            c.Run(kReplaceChainHead, team_id, Stored(new_head.sequence), ByteView(new_head.hash)));
        COFFRE_RETURN_IF_ERROR(c.Run(kDeleteTeamMembers, team_id));
        for (const auto& member : members_after) {
          COFFRE_RETURN_IF_ERROR(c.Run(kInsertTeamMember, team_id, std::string_view(member.user_id),
                                       std::int64_t{member.role}));
        }
        return Ok();
      });
    });
  }

  Result<std::vector<Bytes>> FetchChain(ByteView team_id, std::uint64_t from_sequence) override {
    return Guarded([&]() -> Result<std::vector<Bytes>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      std::vector<Bytes> statements;
      if (from_sequence > kMaxStoredUnsigned) return statements;
      return Read([&](Connection& c) -> Result<std::vector<Bytes>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kFetchChain, team_id, Stored(from_sequence)));
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          statements.push_back(row->ColumnBlob(0));
        }
        return std::move(statements);
      });
    });
  }

  Result<std::vector<TeamMember>> TeamMembers(ByteView team_id) override {
    return Guarded([&]() -> Result<std::vector<TeamMember>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      return Read([&](Connection& c) -> Result<std::vector<TeamMember>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectTeamMembers, team_id));
        std::vector<TeamMember> members;
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          TeamMember member;
          member.user_id = row->ColumnText(0);
          COFFRE_ASSIGN_OR_RETURN(member.role, ColumnAs<std::uint32_t>(*row, 1));
          members.push_back(std::move(member));
        }
        return members;
      });
    });
  }

  Result<std::vector<std::pair<Bytes, ChainHead>>> TeamsOfUser(std::string_view user_id) override {
    using Teams = std::vector<std::pair<Bytes, ChainHead>>;
    return Guarded([&]() -> Result<Teams> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) -> Result<Teams> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectTeamsOfUser, user_id));
        Teams teams;
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          ChainHead head;
          COFFRE_ASSIGN_OR_RETURN(head.sequence, ColumnAs<std::uint64_t>(*row, 1));
          head.hash = row->ColumnBlob(2);
          teams.emplace_back(row->ColumnBlob(0), std::move(head));
        }
        return teams;
      });
    });
  }

  Status PutItemVersion(const ItemRecord& item, std::uint64_t parent_version,
                        std::uint64_t* current_version) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(item.team_id));
      COFFRE_RETURN_IF_ERROR(CheckRandomId(item.item_id));
      if (!item.blob_id.empty()) COFFRE_RETURN_IF_ERROR(CheckRandomId(item.blob_id));
      COFFRE_RETURN_IF_ERROR(CheckStorable(item.version));
      if (item.version <= parent_version) {
        return Fail(ErrorCode::kInvalidArgument, "relay store: version must follow its parent");
      }
      std::uint64_t current = 0;
      const Status status = Write([&](Connection& c) -> Status {
        COFFRE_ASSIGN_OR_RETURN(const auto head, c.QueryInt(kSelectItemHead, ByteView(item.team_id),
                                                            ByteView(item.item_id)));
        current = 0;
        if (head) {
          COFFRE_ASSIGN_OR_RETURN(current, NonNegative(*head));
        }
        if (current != parent_version) {
          return Fail(ErrorCode::kConflict, "relay store: the item has a newer version");
        }
        COFFRE_RETURN_IF_ERROR(c.Run(kInsertItem, ByteView(item.team_id), ByteView(item.item_id),
                                     Stored(item.version), ByteView(item.manifest),
                                     ByteView(item.blob_id), item.created_ms));
        COFFRE_RETURN_IF_ERROR(c.Run(kReplaceItemHead, ByteView(item.team_id),
                                     ByteView(item.item_id), Stored(item.version)));
        current = item.version;
        return Ok();
      });
      // The version seen by the compare-and-swap is only worth reporting when the CAS ran.
      const bool cas_ran = status || status.error().code() == ErrorCode::kConflict;
      if (cas_ran && current_version != nullptr) *current_version = current;
      return status;
    });
  }

  Result<std::optional<ItemRecord>> GetItem(ByteView team_id, ByteView item_id,
                                            std::uint64_t version) override {
    return Guarded([&]() -> Result<std::optional<ItemRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      COFFRE_RETURN_IF_ERROR(CheckRandomId(item_id));
      if (version > kMaxStoredUnsigned) return std::optional<ItemRecord>();
      return Read([&](Connection& c) -> Result<std::optional<ItemRecord>> {
        auto used = version == 0 ? c.Use(kSelectCurrentItem, team_id, item_id)
                                 : c.Use(kSelectItemVersion, team_id, item_id, Stored(version));
        if (!used) return used.error();
        ActiveStatement row = std::move(used).value();
        COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
        if (!found) return std::optional<ItemRecord>();
        COFFRE_ASSIGN_OR_RETURN(auto item, ReadItem(*row));
        return std::optional<ItemRecord>(std::move(item));
      });
    });
  }

  Result<std::vector<ItemRecord>> ListItems(ByteView team_id, ByteView after_item_id,
                                            std::uint32_t limit) override {
    return Guarded([&]() -> Result<std::vector<ItemRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      if (!after_item_id.empty()) COFFRE_RETURN_IF_ERROR(CheckRandomId(after_item_id));
      std::vector<ItemRecord> items;
      if (limit == 0) return items;
      return Read([&](Connection& c) -> Result<std::vector<ItemRecord>> {
        // An empty cursor binds an empty BLOB, which sorts before every id.
        COFFRE_ASSIGN_OR_RETURN(
            auto row, c.Use(kListCurrentItems, team_id, after_item_id, std::int64_t{limit}));
        for (;;) {
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) break;
          COFFRE_ASSIGN_OR_RETURN(auto item, ReadItem(*row));
          items.push_back(std::move(item));
        }
        return std::move(items);
      });
    });
  }

  Status CreateBlob(const BlobRecord& blob) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(blob.team_id));
      COFFRE_RETURN_IF_ERROR(CheckRandomId(blob.blob_id));
      COFFRE_RETURN_IF_ERROR(CheckUserId(blob.uploader_user_id));
      COFFRE_RETURN_IF_ERROR(CheckBlobProgress(blob.size, blob.received, blob.complete));
      return Write([&](Connection& c) {
        return c.Run(kInsertBlob, ByteView(blob.team_id), ByteView(blob.blob_id), Stored(blob.size),
                     Stored(blob.received), Stored(blob.complete),
                     std::string_view(blob.uploader_user_id),
                     std::int64_t{blob.uploader_device_id});
      });
    });
  }

  Result<std::optional<BlobRecord>> GetBlob(ByteView team_id, ByteView blob_id) override {
    return Guarded([&]() -> Result<std::optional<BlobRecord>> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      COFFRE_RETURN_IF_ERROR(CheckRandomId(blob_id));
      return Read([&](Connection& c) -> Result<std::optional<BlobRecord>> {
        COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectBlob, team_id, blob_id));
        COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
        if (!found) return std::optional<BlobRecord>();
        BlobRecord blob;
        blob.team_id = row->ColumnBlob(0);
        blob.blob_id = row->ColumnBlob(1);
        COFFRE_ASSIGN_OR_RETURN(blob.size, ColumnAs<std::uint64_t>(*row, 2));
        COFFRE_ASSIGN_OR_RETURN(blob.received, ColumnAs<std::uint64_t>(*row, 3));
        COFFRE_ASSIGN_OR_RETURN(blob.complete, ColumnAs<bool>(*row, 4));
        blob.uploader_user_id = row->ColumnText(5);
        COFFRE_ASSIGN_OR_RETURN(blob.uploader_device_id, ColumnAs<std::uint32_t>(*row, 6));
        return std::optional<BlobRecord>(std::move(blob));
      });
    });
  }

  Status UpdateBlobProgress(ByteView team_id, ByteView blob_id, std::uint64_t received,
                            bool complete) override {
    return Guarded([&]() -> Status {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      COFFRE_RETURN_IF_ERROR(CheckRandomId(blob_id));
      COFFRE_RETURN_IF_ERROR(CheckStorable(received));
      return Write([&](Connection& c) -> Status {
        std::uint64_t size = 0;
        {
          COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectBlob, team_id, blob_id));
          COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
          if (!found) return Fail(ErrorCode::kNotFound, "relay store: no such blob");
          COFFRE_ASSIGN_OR_RETURN(size, ColumnAs<std::uint64_t>(*row, 2));
        }
        COFFRE_RETURN_IF_ERROR(CheckBlobProgress(size, received, complete));
        return c.Run(kUpdateBlob, team_id, blob_id, Stored(received), Stored(complete));
      });
    });
  }

  Result<BlobUsageRecord> TeamBlobUsage(ByteView team_id) override {
    return Guarded([&]() -> Result<BlobUsageRecord> {
      COFFRE_RETURN_IF_ERROR(CheckRandomId(team_id));
      return Read([&](Connection& c) { return ReadBlobUsage(c, kSumTeamBlobs, team_id); });
    });
  }

  Result<BlobUsageRecord> DeviceBlobUsage(std::string_view user_id,
                                          std::uint32_t device_id) override {
    return Guarded([&]() -> Result<BlobUsageRecord> {
      COFFRE_RETURN_IF_ERROR(CheckUserId(user_id));
      return Read([&](Connection& c) {
        return ReadBlobUsage(c, kSumDeviceBlobs, user_id, std::int64_t{device_id});
      });
    });
  }

  Result<RelayCounts> Counts() override {
    return Guarded([&]() -> Result<RelayCounts> {
      return Read([&](Connection& c) -> Result<RelayCounts> {
        RelayCounts counts;
        const std::pair<Query, std::uint64_t*> fields[] = {
            {kCountUsers, &counts.users},        {kCountActiveDevices, &counts.devices},
            {kCountTeams, &counts.teams},        {kCountEnvelopes, &counts.queued_envelopes},
            {kSumBlobBytes, &counts.blob_bytes},
        };
        for (const auto& [query, field] : fields) {
          COFFRE_ASSIGN_OR_RETURN(const auto value, c.QueryInt(query));
          if (!value) return Fail(ErrorCode::kDatabase, "relay store: count returned no row");
          COFFRE_ASSIGN_OR_RETURN(*field, NonNegative(*value));
        }
        return counts;
      });
    });
  }

  // --- internal:: -------------------------------------------------------------------------

  RelayStoreStats Stats() const {
    RelayStoreStats stats;
    stats.writes = writes_.load();
    stats.commits = commits_.load();
    stats.failed_groups = failed_groups_.load();
    stats.redone_groups = redone_groups_.load();
    stats.writer_cpu_nanoseconds = writer_cpu_nanoseconds_.load();
    stats.largest_group = largest_group_.load();
    stats.commit_nanoseconds = commit_nanoseconds_.load();
    return stats;
  }

  std::size_t QueuedWrites() {
    std::lock_guard lock(queue_mutex_);
    return queue_.size();
  }

  void SetPaused(bool paused) {
    {
      std::lock_guard lock(queue_mutex_);
      paused_ = paused;
    }
    writer_wake_.notify_one();
  }

  Result<std::uint64_t> PruneEnvelopeIds(std::int64_t received_before_ms) {
    return Guarded([&]() -> Result<std::uint64_t> {
      std::uint64_t pruned = 0;
      const Status written = Write([&](Connection& c) -> Status {
        COFFRE_ASSIGN_OR_RETURN(pruned, PruneOnce(c, received_before_ms));
        return Ok();
      });
      if (!written) return written.error();
      return pruned;
    });
  }

 private:
  struct ReaderSlot {
    std::mutex mutex;
    std::optional<Connection> connection;
  };

  static Result<std::uint64_t> NonNegative(std::int64_t value) {
    if (value < 0) return Fail(ErrorCode::kCorrupt, "relay store: negative stored count");
    return static_cast<std::uint64_t>(value);
  }

  static Status InsertDevice(Connection& c, const DeviceRecord& device) {
    const std::string_view user_id = device.user_id;
    const std::int64_t device_id = device.device_id;
    COFFRE_RETURN_IF_ERROR(c.Run(kInsertDevice, user_id, device_id, ByteView(device.certificate),
                                 ByteView(device.signing_key), ByteView(device.signal_identity_key),
                                 device.created_ms));
    return c.Run(kInsertMailboxCounter, user_id, device_id);
  }

  static Status RequireActiveDevice(Connection& c, std::string_view user_id,
                                    std::int64_t device_id) {
    COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectDeviceState, user_id, device_id));
    COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
    if (!found || row->ColumnInt64(0) != 0) {
      return Fail(ErrorCode::kNotFound, "relay store: no such active device");
    }
    return Ok();
  }

  static Result<std::optional<ChainHead>> ReadChainHead(Connection& c, ByteView team_id) {
    COFFRE_ASSIGN_OR_RETURN(auto row, c.Use(kSelectChainHead, team_id));
    COFFRE_ASSIGN_OR_RETURN(const bool found, row->Step());
    if (!found) return std::optional<ChainHead>();
    ChainHead head;
    COFFRE_ASSIGN_OR_RETURN(head.sequence, ColumnAs<std::uint64_t>(*row, 0));
    head.hash = row->ColumnBlob(1);
    return std::optional<ChainHead>(std::move(head));
  }

  // One envelope inside EnqueueEnvelopes' savepoint: its first sequence if its client id is
  // known, else a new sequence from the recipient's counter.
  static Result<std::uint64_t> EnqueueOne(Connection& c, const NewEnvelope& envelope) {
    const std::string_view sender = envelope.sender_user_id;
    const std::int64_t sender_device = envelope.sender_device_id;
    const ByteView client_id = envelope.client_id;
    COFFRE_ASSIGN_OR_RETURN(const auto known,
                            c.QueryInt(kSelectEnvelopeId, sender, sender_device, client_id));
    if (known) return NonNegative(*known);

    const std::string_view recipient = envelope.recipient_user_id;
    const std::int64_t recipient_device = envelope.recipient_device_id;
    COFFRE_ASSIGN_OR_RETURN(const auto last,
                            c.QueryInt(kSelectMailboxCounter, recipient, recipient_device));
    if (!last) return Fail(ErrorCode::kNotFound, "relay store: no such active recipient device");
    if (*last < 0 || *last == std::numeric_limits<std::int64_t>::max()) {
      return Fail(ErrorCode::kCorrupt, "relay store: mailbox counter out of range");
    }
    const std::int64_t sequence = *last + 1;
    COFFRE_RETURN_IF_ERROR(c.Run(kUpdateMailboxCounter, recipient, recipient_device, sequence));
    COFFRE_RETURN_IF_ERROR(c.Run(kInsertEnvelope, recipient, recipient_device, sequence, sender,
                                 sender_device, client_id, std::int64_t{envelope.type},
                                 ByteView(envelope.ciphertext), envelope.received_ms));
    COFFRE_RETURN_IF_ERROR(c.Run(kInsertEnvelopeId, sender, sender_device, client_id, recipient,
                                 recipient_device, sequence, envelope.received_ms));
    return static_cast<std::uint64_t>(sequence);
  }

  static Result<std::uint64_t> PruneOnce(Connection& c, std::int64_t received_before_ms) {
    COFFRE_RETURN_IF_ERROR(c.Run(kPruneEnvelopeIds, received_before_ms, kPruneBatch));
    COFFRE_ASSIGN_OR_RETURN(const std::int64_t changed, c.Changes());
    return NonNegative(changed);
  }

  // Runs `operation` on a read connection: the first free one, or else the one this call's
  // turn points at. Never waits for the writer.
  template <typename Operation>
  auto Read(Operation&& operation) -> decltype(operation(std::declval<Connection&>())) {
    const std::size_t count = reader_slots_.size();
    const std::size_t start = next_reader_.fetch_add(1, std::memory_order_relaxed) % count;
    for (std::size_t i = 0; i < count; ++i) {
      ReaderSlot& slot = reader_slots_[(start + i) % count];
      std::unique_lock lock(slot.mutex, std::try_to_lock);
      if (lock.owns_lock()) return operation(*slot.connection);
    }
    ReaderSlot& slot = reader_slots_[start];
    std::lock_guard lock(slot.mutex);
    return operation(*slot.connection);
  }

  // Queues `operation` for the writer and returns its result once the group that ran it
  // has committed (or failed). Nothing that can throw runs between the enqueue and the
  // wake-up, so the request on this stack cannot be abandoned while the writer holds it.
  // `operation` may run twice, the first run rolled back (RunGroup): it must set whatever
  // it reports to the caller afresh on each run.
  Status Write(std::function<Status(Connection&)> operation) {
    WriteRequest request;
    request.operation = std::move(operation);
    std::future<void> done = request.done.get_future();
    {
      std::lock_guard lock(queue_mutex_);
      if (stopping_) return Fail(ErrorCode::kInternal, "relay store: closing");
      queue_.push_back(&request);
    }
    writer_wake_.notify_one();
    done.wait();
    return request.status;
  }

  // Starts the writer thread. std::thread reports a failure to start as std::system_error.
  Status Start() {
    return Guarded([&]() -> Status {
      writer_thread_ = std::thread([this] { WriterLoop(); });
      return Ok();
    });
  }

  // noexcept: the only operations here that could throw are the locking of queue_mutex_,
  // waits on it and set_value on a promise this loop owns, which fail only in a broken
  // process; terminating is then the honest outcome (callers would otherwise wait forever).
  // The group vector is reserved up front, so taking a group never allocates.
  void WriterLoop() noexcept {
    std::vector<WriteRequest*> group;
    group.reserve(options_.max_group_size);
    std::size_t last_group_size = 0;
    std::size_t queued_at_last_wake = 0;
    std::chrono::nanoseconds last_commit_time{0};
    auto next_prune = std::chrono::steady_clock::now() + kPruneInterval;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex_);
        writer_wake_.wait(lock, [&] { return stopping_ || (!paused_ && !queue_.empty()); });
        if (queue_.empty()) return;  // stopping, and the queue is drained
        // The callers just served by a group of several are likely to come straight back:
        // wait a little for them rather than commit a small group and make them wait a
        // whole commit for the next one. The wait stops as soon as they are all back, and
        // never exceeds half the last commit's time: waiting only pays while it is short
        // next to the fsync it saves (on a disk with a write cache it would cost more).
        const std::size_t target =
            std::min(options_.max_group_size, last_group_size + queued_at_last_wake);
        const auto window =
            std::min<std::chrono::nanoseconds>(options_.group_commit_window, last_commit_time / 2);
        if (last_group_size > 1 && queue_.size() < target && window.count() > 0) {
          writer_wake_.wait_for(lock, window, [&] { return stopping_ || queue_.size() >= target; });
        }
        const std::size_t taken = std::min(queue_.size(), options_.max_group_size);
        group.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
      }
      const auto now = std::chrono::steady_clock::now();
      const bool prune = now >= next_prune;
      if (prune) next_prune = now + kPruneInterval;
      const std::int64_t cpu_start = ThreadCpuNanoseconds();
      last_commit_time = RunGroup(group, prune);
      {
        // Before any caller of this group is woken, so none of them is counted twice.
        std::lock_guard lock(queue_mutex_);
        queued_at_last_wake = queue_.size();
      }
      for (WriteRequest* request : group) {
        std::promise<void> done = std::move(request->done);
        done.set_value();  // from here on the caller may destroy *request
      }
      const std::int64_t cpu_used = std::max<std::int64_t>(0, ThreadCpuNanoseconds() - cpu_start);
      writer_cpu_nanoseconds_.fetch_add(static_cast<std::uint64_t>(cpu_used));
      last_group_size = group.size();
      group.clear();
    }
  }

  // Runs one group in one transaction and commits once, with the outcome of running each
  // request in its own savepoint. Returns how long the COMMIT took (zero if there was none).
  //
  // A savepoint is not free here: inside one, SQLCipher encrypts (AES + HMAC) every page the
  // request modifies into the statement journal before it modifies it, which about doubled
  // the writer's work per envelope. So the group first runs without savepoints. A request
  // that fails without having changed a row (nearly every failure: a duplicate, a compare-
  // and-swap conflict, an unknown device, all found before writing) needs nothing undone.
  // Only a request that fails after changing rows makes the writer roll the whole
  // transaction back and run the group again, this time each request in its own savepoint,
  // except that one, which keeps its error. Each request is a function of the store's state
  // and its arguments, and only this thread writes, so the second run sees what the first
  // saw: the results are those of savepoints from the start, for at most twice the work.
  std::chrono::nanoseconds RunGroup(const std::vector<WriteRequest*>& group, bool prune) noexcept {
    writes_.fetch_add(group.size());
    std::uint64_t largest = largest_group_.load();
    while (group.size() > largest && !largest_group_.compare_exchange_weak(largest, group.size())) {
    }
    auto transaction = writer_.database().Begin();
    if (!transaction) {
      for (WriteRequest* request : group) request->status = transaction.error();
      failed_groups_.fetch_add(1);
      return {};
    }
    // Set when SQLite may have abandoned the transaction (a savepoint statement failed, or
    // the transaction is gone, as after SQLITE_FULL or SQLITE_IOERR): nothing more runs in
    // this group.
    std::optional<Error> broken;
    const WriteRequest* undo = RunWithoutSavepoints(group, broken);
    if (undo != nullptr) {
      redone_groups_.fetch_add(1);
      // If the rollback fails, the BEGIN below fails too and the group reports it.
      (void)transaction->Rollback();
      transaction = writer_.database().Begin();
      if (!transaction) {
        for (WriteRequest* request : group) request->status = transaction.error();
        failed_groups_.fetch_add(1);
        return {};
      }
      for (WriteRequest* request : group) {
        if (request == undo) continue;  // keeps the error of its first run
        if (broken) {
          request->status = *broken;
          continue;
        }
        request->status = RunInSavepoint(request->operation, broken);
      }
    }
    if (prune && !broken) {
      // Housekeeping rides along with a group that commits anyway; its failure only delays
      // the pruning to the next run.
      const auto cutoff = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count() -
                          kEnvelopeIdRetentionMs;
      (void)RunInSavepoint(
          [cutoff](Connection& c) -> Status {
            COFFRE_ASSIGN_OR_RETURN(const std::uint64_t pruned, PruneOnce(c, cutoff));
            (void)pruned;
            return Ok();
          },
          broken);
    }
    const auto commit_start = std::chrono::steady_clock::now();
    Status committed = broken ? Status(*broken) : transaction->Commit();
    const auto commit_time = std::chrono::steady_clock::now() - commit_start;
    if (!committed) {
      // Every write of the group is lost with the transaction, including those that had
      // succeeded on their own: they report the group's failure.
      for (WriteRequest* request : group) {
        if (request->status) request->status = committed.error();
      }
      failed_groups_.fetch_add(1);
      return {};  // the Transaction's destructor rolls back if anything is still open
    }
    const auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(commit_time);
    commits_.fetch_add(1);
    commit_nanoseconds_.fetch_add(static_cast<std::uint64_t>(nanoseconds.count()));
    return nanoseconds;
  }

  // The optimistic run of RunGroup: every request in order, no savepoints. Returns the
  // first request that failed after changing rows (its status set), or null when none did.
  // Sets `broken`, and the status of every request from there on, when the transaction is
  // gone.
  const WriteRequest* RunWithoutSavepoints(const std::vector<WriteRequest*>& group,
                                           std::optional<Error>& broken) noexcept {
    Database& database = writer_.database();
    for (WriteRequest* request : group) {
      if (broken) {
        request->status = *broken;
        continue;
      }
      const std::int64_t changes_before = database.TotalChanges();
      request->status = Guarded([&]() -> Status { return request->operation(writer_); });
      if (!database.InTransaction()) {
        broken = request->status ? Error(ErrorCode::kDatabase,
                                         "relay store: the group's transaction was rolled back")
                                 : request->status.error();
        request->status = *broken;
        continue;
      }
      if (!request->status && database.TotalChanges() != changes_before) return request;
    }
    return nullptr;
  }

  // One operation inside SAVEPOINT ... RELEASE, rolled back to its savepoint when it fails.
  // Sets `broken` when the savepoint statements themselves fail.
  template <typename Operation>
  Status RunInSavepoint(const Operation& operation, std::optional<Error>& broken) noexcept {
    if (auto opened = writer_.Run(kSavepoint); !opened) {
      broken = opened.error();
      return opened.error();
    }
    Status status = Guarded([&]() -> Status { return operation(writer_); });
    if (status) {
      if (auto released = writer_.Run(kReleaseSavepoint); !released) {
        broken = released.error();
        return released.error();
      }
      return status;
    }
    auto rolled_back = writer_.Run(kRollbackToSavepoint);
    auto released = rolled_back ? writer_.Run(kReleaseSavepoint) : rolled_back;
    if (!released) broken = released.error();
    return status;
  }

  const RelayStoreOptions options_;
  // Used by the writer thread only (and by Open before the thread starts).
  Connection writer_;
  std::vector<ReaderSlot> reader_slots_;
  std::atomic<std::size_t> next_reader_{0};

  std::mutex queue_mutex_;
  std::condition_variable writer_wake_;
  std::vector<WriteRequest*> queue_;  // guarded by queue_mutex_
  bool stopping_ = false;             // guarded by queue_mutex_
  bool paused_ = false;               // guarded by queue_mutex_

  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> failed_groups_{0};
  std::atomic<std::uint64_t> redone_groups_{0};
  std::atomic<std::uint64_t> writer_cpu_nanoseconds_{0};
  std::atomic<std::uint64_t> largest_group_{0};
  std::atomic<std::uint64_t> commit_nanoseconds_{0};

  // Last member: started once everything it uses exists, joined in the destructor.
  std::thread writer_thread_;

  friend Result<std::unique_ptr<RelayStore>> internal::OpenSqlCipherRelayStoreWithOptions(
      const std::filesystem::path&, const crypto::SecretBytes&, const RelayStoreOptions&);
};

}  // namespace

namespace internal {

Result<std::unique_ptr<RelayStore>> OpenSqlCipherRelayStoreWithOptions(
    const std::filesystem::path& path, const crypto::SecretBytes& key,
    const RelayStoreOptions& options) {
  return Guarded([&]() -> Result<std::unique_ptr<RelayStore>> {
    if (options.read_connections == 0 || options.max_group_size == 0) {
      return Fail(ErrorCode::kInvalidArgument,
                  "relay store: needs a read connection and a group size of at least 1");
    }
    COFFRE_ASSIGN_OR_RETURN(auto writer, Database::OpenWithRawKey(path, key, true));
    COFFRE_RETURN_IF_ERROR(writer->Migrate(kRelayMigrations));
    std::vector<std::unique_ptr<Database>> readers;
    for (std::size_t i = 0; i < options.read_connections; ++i) {
      COFFRE_ASSIGN_OR_RETURN(auto reader, Database::OpenWithRawKey(path, key, false));
      // Only the writer thread writes; a read connection that tried would contend for the
      // write lock and escape group commit.
      COFFRE_RETURN_IF_ERROR(reader->Execute("PRAGMA query_only = 1"));
      readers.push_back(std::move(reader));
    }
    auto store = std::make_unique<SqlCipherRelayStore>(
        SqlCipherRelayStore::ConstructorTag{}, std::move(writer), std::move(readers), options);
    COFFRE_RETURN_IF_ERROR(store->Start());
    return std::unique_ptr<RelayStore>(std::move(store));
  });
}

std::optional<RelayStoreStats> StatsOf(RelayStore& store) {
  auto* sqlcipher = dynamic_cast<SqlCipherRelayStore*>(&store);
  if (sqlcipher == nullptr) return std::nullopt;
  return sqlcipher->Stats();
}

std::size_t QueuedWrites(RelayStore& store) {
  auto* sqlcipher = dynamic_cast<SqlCipherRelayStore*>(&store);
  return sqlcipher == nullptr ? 0 : sqlcipher->QueuedWrites();
}

void PauseWriter(RelayStore& store) {
  if (auto* sqlcipher = dynamic_cast<SqlCipherRelayStore*>(&store)) sqlcipher->SetPaused(true);
}

void ResumeWriter(RelayStore& store) {
  if (auto* sqlcipher = dynamic_cast<SqlCipherRelayStore*>(&store)) sqlcipher->SetPaused(false);
}

Result<std::uint64_t> PruneEnvelopeIds(RelayStore& store, std::int64_t received_before_ms) {
  auto* sqlcipher = dynamic_cast<SqlCipherRelayStore*>(&store);
  if (sqlcipher == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "relay store: not a SQLCipher relay store");
  }
  return sqlcipher->PruneEnvelopeIds(received_before_ms);
}

}  // namespace internal

Result<std::unique_ptr<RelayStore>> OpenSqlCipherRelayStore(const std::filesystem::path& path,
                                                            const crypto::SecretBytes& key) {
  return internal::OpenSqlCipherRelayStoreWithOptions(path, key, internal::RelayStoreOptions());
}

}  // namespace coffre::storage
