// Persistent Signal protocol stores: the six store interfaces of coffre/crypto/signal_stores.h
// kept in the device's encrypted local store (a storage::Database).
//
// Why this exists. A SignalDevice keeps no protocol state between calls; every ratchet
// step, prekey use, identity and sender key lives in its stores. Kept here, a device closed
// and reopened from disk continues every session where it stopped (DESIGN.md, Local store).
//
// Semantics. Each store behaves exactly as its in-memory twin (signal_memory_stores.h):
// "absent" is a value, StoreX creates or replaces, RemoveX / DeleteX of an absent record
// succeeds, IsTrusted trusts on first use and then only the recorded key. Records (session,
// prekey, signed prekey, sender key, local private key) are secrets: they are bound with
// Statement::BindSecret and read back with Statement::ColumnSecret, and the database pages
// that hold them are encrypted by SQLCipher.
//
// Atomicity contract (DESIGN.md: "every state change that libsignal makes is committed in
// the same transaction as the message it produced or consumed"):
//   - Outside a transaction every store call is a single SQL statement (or a statement and
//     a read of its own change count) in autocommit mode: it commits on its own. A
//     SignalDevice call made there is therefore not atomic; keep that for calls whose
//     partial effect is harmless (GenerateIdentity, GeneratePreKeys, reads).
//   - Inside RunInTransaction / InTransaction the store calls join one BEGIN IMMEDIATE
//     transaction that commits only when the body succeeds. Run each SignalDevice call that
//     changes state (Encrypt, Decrypt, ProcessPreKeyBundle, the group calls) in its own
//     transaction together with what it produced or consumed:
//       Encrypt:  write the ciphertext to your outbox inside the same body, and never
//                 send a ciphertext whose transaction did not commit: the sending chain
//                 was not saved, so the next Encrypt uses the same message key again
//                 (InTransaction hands the ciphertext out only after the commit);
//       Decrypt:  write the plaintext from the PlaintextSink (it runs before the new state
//                 is written) into your own table through database(), in the same body.
//     If the body fails, or the process dies before the commit, neither the new ratchet
//     state nor the plaintext (nor the outbox row) exists afterwards, so the same message
//     can be decrypted again and the ratchet never runs ahead of what was saved.
//   - The stores also join a transaction the caller opened with Database::Begin; then the
//     caller decides when it commits, and must itself abandon the transaction when a
//     store call fails (RunInTransaction does that on its own, see there).
//   - Durability: the Database runs with synchronous = FULL (checked by New), so once a
//     transaction (or a single autocommit call) has returned success it survives a crash
//     or a power loss. That costs one fsync of the write-ahead log per commit: batch many
//     Decrypt calls of one mailbox fetch in one transaction where latency allows.
//
// Schema. The tables are created by this class's own numbered migrations, versioned in
// its own table (coffre_signal_schema) rather than in PRAGMA user_version, so that the
// application keeps Database::Migrate and user_version for its own schema in the same
// file. A store whose Signal schema is newer than this program is refused (kUnsupported).
//
// Threading and lifetime: like the Database, one thread at a time. The object caches
// prepared statements; they belong to the Database and must be released
// (ReleaseStatements) before Database::ChangePassphrase, which refuses to run while a
// Statement exists.
#ifndef COFFRE_STORAGE_SIGNAL_STORE_H_
#define COFFRE_STORAGE_SIGNAL_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "coffre/base/result.h"
#include "coffre/crypto/signal_stores.h"
#include "coffre/storage/database.h"

namespace coffre::storage {

// The latest schema version of the Signal tables written by this code.
inline constexpr std::int64_t kSignalStoreSchemaVersion = 1;

class SqlCipherSignalStores {
 public:
  // Stores on `database`, which the object takes over and closes when it is destroyed.
  // Applies the Signal schema migrations (each in its own transaction, so a crash leaves
  // the schema at the last completed one). Must be called outside any open transaction.
  // Fails with kInvalidArgument for a null database, kUnsupported if the connection does
  // not run with synchronous = FULL or the Signal schema is newer than this program, and
  // with the database's error if a migration fails.
  static Result<std::unique_ptr<SqlCipherSignalStores>> New(std::unique_ptr<Database> database);
  // As above, but `database` is borrowed: it must outlive the returned object, and the
  // caller keeps using it for its own tables (the plaintext a PlaintextSink writes).
  static Result<std::unique_ptr<SqlCipherSignalStores>> New(Database& database);

  SqlCipherSignalStores(const SqlCipherSignalStores&) = delete;
  SqlCipherSignalStores& operator=(const SqlCipherSignalStores&) = delete;
  // Finalizes the cached statements, then closes the Database if it is owned. Must not be
  // called from inside RunInTransaction's body.
  ~SqlCipherSignalStores();

  // Pointers to the six stores, for SignalDevice::Create. Valid as long as this object.
  crypto::SignalStores stores();

  // The database the stores write to, for the caller's own statements inside a
  // transaction body (the plaintext or outbox table).
  Database& database();

  // Runs `body` inside one BEGIN IMMEDIATE transaction and commits only if it returns
  // success. Every store call made meanwhile (by a SignalDevice over stores()) and every
  // statement the body runs on database() belong to that transaction.
  // Returns the body's error if it fails (everything rolled back); the first error any
  // store reported during the body, even if the protocol library swallowed it (rolled
  // back too: a failed SQL statement can make SQLite roll the transaction back on its
  // own, after which later writes would no longer be atomic, so a store that failed
  // refuses every later call of the same body); kInvalidArgument if called again from
  // inside a body (transactions do not nest) or with an empty body; kDatabase if BEGIN
  // or COMMIT fails (another connection held the write lock beyond kBusyTimeoutMs, ...).
  // After success the changes are durable (synchronous = FULL).
  Status RunInTransaction(const std::function<Status()>& body);

  // RunInTransaction for a body that returns a Result<T> (for example the Result of
  // SignalDevice::Encrypt or Decrypt). Returns the body's value only once the transaction
  // has committed; any failure, including a failed COMMIT, returns an error and drops the
  // value (nothing was saved, so the message can be processed again).
  template <typename Body>
  std::invoke_result_t<Body&> InTransaction(Body&& body);

  // Finalizes every cached statement (they are prepared again on next use). Required
  // before Database::ChangePassphrase. Must not be called from inside a transaction body.
  void ReleaseStatements();

  // Defined in signal_store.cc; opaque everywhere else.
  struct Impl;

 private:
  explicit SqlCipherSignalStores(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

template <typename Body>
std::invoke_result_t<Body&> SqlCipherSignalStores::InTransaction(Body&& body) {
  using Returned = std::invoke_result_t<Body&>;
  if constexpr (std::is_same_v<Returned, Status>) {
    return RunInTransaction([&body]() -> Status { return body(); });
  } else {
    // The value is held outside the transaction body so it can be handed out only once the
    // commit has succeeded.
    std::optional<typename Returned::value_type> value;
    COFFRE_RETURN_IF_ERROR(RunInTransaction([&body, &value]() -> Status {
      Returned result = body();
      if (!result) return result.error();
      value.emplace(std::move(result).value());
      return Ok();
    }));
    return std::move(*value);
  }
}

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_SIGNAL_STORE_H_
