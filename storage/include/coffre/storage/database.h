// The encrypted local store: one SQLCipher 3 database keyed with a raw 256-bit key.
//
// Files of a store at PATH:
//   PATH          the SQLCipher database (every page encrypted, AES-256-CBC + HMAC-SHA1,
//                 SQLCipher 3 defaults), mode 0600
//   PATH-wal      its write-ahead log (pages encrypted the same way), PATH-shm its index
//   PATH.kdf      the passphrase header: the 32-byte PassphraseKdfRecord ("CFK1", Argon2id
//                 parameters, salt; docs/protocol.md), mode 0600. Not secret.
//   PATH.kdf.new  present only while a passphrase change is in progress (or after a crash
//                 during one); see ChangePassphrase.
// The raw key is Argon2id(passphrase, header) and is handed to SQLCipher as a raw key, so
// SQLCipher's own PBKDF2-SHA1 is never used (DESIGN.md, Local store; PITFALLS §4). The relay
// keys its store with an operator key instead and has no header (OpenWithRawKey).
//
// Store format: the table coffre_store_format holds (sqlcipher_major = 3, format = 2).
// Every store written by this code is in SQLCipher 3 format with 4096-byte pages (format 2;
// format 1 had SQLCipher 3's default of 1024, see decision 0012). A build on SQLCipher 4
// must open it with `PRAGMA cipher_compatibility = 3` and then `PRAGMA cipher_page_size =
// 4096` (PITFALLS §6). This code refuses to run on a SQLCipher whose major version is not
// 3, and refuses a store whose format is newer or older than its own. PRAGMA user_version
// is left to the schema migrations (Migrate).
//
// Threading: a Database, and every Statement and Transaction made from it, is used by one
// thread at a time. It holds no lock of its own: callers that share one across threads
// serialise access themselves. Several processes or connections may open the same store;
// SQLite's locks and a busy timeout (kBusyTimeoutMs) arbitrate between them.
#ifndef COFFRE_STORAGE_DATABASE_H_
#define COFFRE_STORAGE_DATABASE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "coffre/base/result.h"
#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/storage/sqlite_handle.h"
#include "coffre/storage/statement.h"
#include "coffre/storage/transaction.h"

namespace coffre::storage {

// Size of the raw SQLCipher key: AES-256.
inline constexpr std::size_t kRawKeySize = 32;
// How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
inline constexpr int kBusyTimeoutMs = 5000;
// The layout of our own tables that hold the store's identity (coffre_store_format). Not
// the application schema, which Migrate versions through user_version.
inline constexpr std::int64_t kStoreFormatVersion = 2;
inline constexpr std::int64_t kSqlcipherMajorVersion = 3;

// One schema step. `sql` is fixed DDL/DML (one or more statements, no BEGIN/COMMIT of its
// own) that takes the schema from version - 1 (or the previous migration) to `version`.
struct Migration {
  int version;
  const char* sql;
};

class Database {
 public:
  // Creates a new store at `path` protected by `passphrase`. Fails with kAlreadyExists if
  // PATH, PATH.kdf, PATH.kdf.new or PATH-wal exists; kInvalidArgument if `params` is out
  // of bounds; kUnsupported if the process is not linked against SQLCipher 3; kIo when a
  // file cannot be written. On failure every file this call created is removed. A crash
  // during Create can leave a partial store that Open refuses and Create reports as
  // existing: remove PATH* by hand. The caller keeps ownership of (and wipes) `passphrase`.
  static Result<std::unique_ptr<Database>> Create(
      const std::filesystem::path& path, std::span<const std::uint8_t> passphrase,
      crypto::Argon2Params params = crypto::kDefaultArgon2Params);

  // Opens an existing store. Fails with kNotFound if PATH does not exist, and with
  // kWrongPassphrase ("wrong passphrase or not a Coffre store") when the passphrase is
  // wrong, the header is missing or malformed, or PATH is not a Coffre store (a plain
  // SQLite file, random bytes, an empty file). A failed attempt writes nothing: the key is
  // first checked on a read-only connection, so the database file, its WAL and the header
  // stay byte-identical (SQLite may create or refresh PATH-shm, which holds no data).
  // Fails with kUnsupported for a store in a newer format, or in format 1 (see above: no
  // store of that format was ever deployed, so none is converted). Takes the pending header
  // (PATH.kdf.new) into account after a crash during ChangePassphrase.
  static Result<std::unique_ptr<Database>> Open(const std::filesystem::path& path,
                                                std::span<const std::uint8_t> passphrase);

  // Opens (or, with `create_if_missing`, creates) a store keyed directly with a 32-byte
  // `key` and no passphrase header, for the relay's operator key. Same failures as Open
  // and Create; kInvalidArgument if `key` is not kRawKeySize bytes. An existing empty file
  // with no WAL (left by a crash during creation) is initialised as new when
  // `create_if_missing` is set. The caller keeps ownership of `key`.
  static Result<std::unique_ptr<Database>> OpenWithRawKey(const std::filesystem::path& path,
                                                          const crypto::SecretBytes& key,
                                                          bool create_if_missing);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  // Closes the connection. The last connection to close checkpoints the WAL into PATH.
  ~Database();

  // Re-encrypts every page under a key derived from `new_passphrase` with a fresh salt and
  // replaces the header. Crash-safe: after a crash at any point exactly one of the old and
  // the new passphrase opens the store (see the order in database.cc).
  // Preconditions, checked (kInvalidArgument): the store was opened with a passphrase, no
  // Transaction is open and no Statement of this Database exists. Also required, not
  // checkable: no other connection has the store open.
  // Failures: kIo if the new header cannot be written (nothing changed); kIo if the final
  // rename of the header fails (the change has taken effect: this Database keeps working
  // and the next Open completes the rename). If SQLCipher's rekey itself fails, the
  // connection is closed, because SQLCipher would otherwise write further pages under the
  // new key, and every later call on this Database fails: reopen the store (Open tries
  // both headers, so whichever passphrase the disk now needs will work).
  Status ChangePassphrase(std::span<const std::uint8_t> new_passphrase,
                          crypto::Argon2Params params = crypto::kDefaultArgon2Params);

  // Runs fixed SQL (DDL, PRAGMAs, several statements separated by ';'). Never pass SQL that
  // contains a value: use Prepare and Bind. Fails with an error from internal::SqliteError.
  Status Execute(const char* sql);

  // Prepares exactly one statement. Fails with kInvalidArgument if `sql` holds no statement
  // or more than one (a second one would otherwise be silently ignored), or with an error
  // from internal::SqliteError (kDatabase for a syntax error or an unknown table).
  Result<Statement> Prepare(const char* sql);

  // Starts a write transaction (BEGIN IMMEDIATE). Fails with kDatabase if one is already
  // open on this Database, or if another connection holds the write lock for longer than
  // kBusyTimeoutMs.
  Result<Transaction> Begin();

  // Applies every migration whose version is above PRAGMA user_version, in order, each in
  // its own transaction that also sets user_version to its version, so a failure (or a
  // crash) leaves the store at the last migration that succeeded. Fails with
  // kInvalidArgument unless versions are positive and strictly increasing, kUnsupported if
  // the store's user_version is above the last version given (written by newer code), and
  // with the failing migration's error (its transaction is rolled back).
  Status Migrate(std::span<const Migration> migrations);

  // PRAGMA user_version: the schema version reached by Migrate (0 for a new store).
  Result<std::int64_t> UserVersion();

  // sqlite3_total_changes: rows inserted, updated or deleted by the statements that have
  // completed on this connection (a statement that failed counts none: SQLite undoes it).
  // Only meaningful compared for equality around a piece of work (the count may wrap); 0
  // once the connection is closed.
  std::int64_t TotalChanges();

  // Whether a transaction is open on this connection. False after SQLite rolled one back by
  // itself (it does after SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) and once the connection
  // is closed.
  bool InTransaction();

  const std::filesystem::path& path() const { return path_; }

 private:
  struct ConstructorTag {};

 public:
  // Only reachable through the factories (the tag is private).
  Database(ConstructorTag, std::filesystem::path path, internal::ConnectionHandle db,
           bool has_passphrase_header);

 private:
  // Fails with kInternal once the connection was closed by a failed ChangePassphrase.
  Result<sqlite3*> Connection();

  std::filesystem::path path_;
  internal::ConnectionHandle db_;
  bool has_passphrase_header_;
};

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_DATABASE_H_
