#include "coffre/storage/database.h"

#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::storage {
namespace {

using crypto::PassphraseKdfRecord;
using crypto::SecretBytes;
using internal::ConnectionHandle;
using internal::SqliteError;
using internal::StatementHandle;

constexpr const char* kWrongPassphraseMessage = "wrong passphrase or not a Coffre store";
constexpr const char* kNoCipherMessage = "SQLCipher not linked: refusing to write a plain database";

Unexpected WrongPassphrase() { return Fail(ErrorCode::kWrongPassphrase, kWrongPassphraseMessage); }

// ---------------------------------------------------------------------------------------
// Files beside the database.

std::filesystem::path WithSuffix(const std::filesystem::path& path, const char* suffix) {
  return std::filesystem::path(path.native() + suffix);
}
std::filesystem::path HeaderPath(const std::filesystem::path& p) { return WithSuffix(p, ".kdf"); }
std::filesystem::path PendingHeaderPath(const std::filesystem::path& p) {
  return WithSuffix(p, ".kdf.new");
}
// SQLite names its side files by appending to the database name.
std::filesystem::path WalPath(const std::filesystem::path& p) { return WithSuffix(p, "-wal"); }
std::filesystem::path ShmPath(const std::filesystem::path& p) { return WithSuffix(p, "-shm"); }
std::filesystem::path JournalPath(const std::filesystem::path& p) {
  return WithSuffix(p, "-journal");
}

std::filesystem::path DirectoryOf(const std::filesystem::path& path) {
  const auto parent = path.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

// Owns a POSIX file descriptor (UniqueHandle is for pointers).
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) (void)::close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now and reports the result: close can be where a deferred write error shows up.
  bool Close() { return ::close(std::exchange(fd_, -1)) == 0; }

 private:
  int fd_;
};

// Removes the listed files when destroyed unless released: a failed Create or
// OpenWithRawKey leaves nothing behind. Declared before the connection that writes them so
// that the connection is closed first.
class RemoveOnFailure {
 public:
  RemoveOnFailure() = default;
  RemoveOnFailure(const RemoveOnFailure&) = delete;
  RemoveOnFailure& operator=(const RemoveOnFailure&) = delete;
  ~RemoveOnFailure() {
    for (const auto& path : paths_) (void)::unlink(path.c_str());
  }
  void Add(std::filesystem::path path) { paths_.push_back(std::move(path)); }
  void Release() { paths_.clear(); }

 private:
  std::vector<std::filesystem::path> paths_;
};

Result<bool> PathExists(const std::filesystem::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) return true;
  if (errno == ENOENT) return false;
  return Fail(ErrorCode::kIo, "cannot inspect the store's files");
}

Result<off_t> FileSize(const std::filesystem::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return Fail(ErrorCode::kIo, "cannot inspect the store");
  return info.st_size;
}

// A rename or a new file is only durable once the directory entry is: fsync the directory.
Status FsyncDirectoryOf(const std::filesystem::path& path) {
  FileDescriptor dir(::open(DirectoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid() || ::fsync(dir.get()) != 0 || !dir.Close()) {
    return Fail(ErrorCode::kIo, "cannot sync the store's directory");
  }
  return Ok();
}

// Creates `path` empty with mode 0600 and fails if anything is already there. SQLite gives
// the -wal, -shm and -journal files the mode of the database file, so they are 0600 too.
Status CreateEmptyPrivateFile(const std::filesystem::path& path) {
  FileDescriptor fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) {
    if (errno == EEXIST) return Fail(ErrorCode::kAlreadyExists, "a store already exists here");
    return Fail(ErrorCode::kIo, "cannot create the store file");
  }
  if (!fd.Close()) return Fail(ErrorCode::kIo, "cannot create the store file");
  return FsyncDirectoryOf(path);
}

// Replaces `target` with `bytes` so that a crash leaves either the old or the new content,
// never a mix: write a temporary file, fsync it, rename it over the target (atomic in
// POSIX), fsync the directory so the rename itself survives power loss. Mode 0600.
Status WriteFileAtomically(const std::filesystem::path& target,
                           std::span<const std::uint8_t> bytes) {
  const auto temporary = WithSuffix(target, ".tmp");
  // A leftover from a crash during an earlier write; it never holds anything needed.
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrorCode::kIo, "cannot replace a leftover temporary header file");
  }
  RemoveOnFailure cleanup;
  FileDescriptor fd(
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return Fail(ErrorCode::kIo, "cannot create the header file");
  cleanup.Add(temporary);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail(ErrorCode::kIo, "cannot write the header file");
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || !fd.Close()) {
    return Fail(ErrorCode::kIo, "cannot write the header file");
  }
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    return Fail(ErrorCode::kIo, "cannot install the header file");
  }
  cleanup.Release();
  return FsyncDirectoryOf(target);
}

Status RenameDurably(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return Fail(ErrorCode::kIo, "cannot install the new header file");
  }
  return FsyncDirectoryOf(to);
}

// Reads a passphrase header. A missing, truncated, oversized or malformed header is not an
// I/O problem but "not a Coffre store" for the caller: it returns nullopt.
Result<std::optional<PassphraseKdfRecord>> ReadHeader(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    // ELOOP: a symbolic link where the header should be; we never follow one.
    if (errno == ENOENT || errno == ELOOP) return std::optional<PassphraseKdfRecord>();
    return Fail(ErrorCode::kIo, "cannot read the store header");
  }
  // One byte more than a record, so an oversized file is seen as such.
  std::uint8_t buffer[crypto::kPassphraseKdfRecordSize + 1];
  std::size_t size = 0;
  while (size < sizeof buffer) {
    const ssize_t n = ::read(fd.get(), buffer + size, sizeof buffer - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorCode::kIo, "cannot read the store header");
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  auto record = PassphraseKdfRecord::Parse(std::span<const std::uint8_t>(buffer, size));
  if (!record) return std::optional<PassphraseKdfRecord>();
  return std::optional<PassphraseKdfRecord>(*record);
}

// ---------------------------------------------------------------------------------------
// SQLCipher connections.

// SQLCipher 3 takes a raw key as the 67 characters x'<64 hex digits>' (PITFALLS §4). The
// key goes through sqlite3_key_v2 rather than a `PRAGMA key = "..."` statement so that it
// never passes through the SQL parser's unwiped buffers; the literal itself lives in a
// SecretBytes and is wiped when it goes out of scope. sodium_bin2hex runs in constant time.
SecretBytes RawKeyLiteral(const SecretBytes& key) {
  constexpr std::size_t kHexSize = 2 * kRawKeySize;
  SecretBytes literal(2 + kHexSize + 1 + 1);  // x' hex ' and the NUL sodium_bin2hex writes
  literal.data()[0] = 'x';
  literal.data()[1] = '\'';
  sodium_bin2hex(reinterpret_cast<char*>(literal.data() + 2), kHexSize + 1, key.data(), key.size());
  literal.data()[2 + kHexSize] = '\'';
  return literal;
}
constexpr int kRawKeyLiteralSize = static_cast<int>(2 + 2 * kRawKeySize + 1);

Status ExecFixed(sqlite3* db, const char* sql, const char* context) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, context);
  return Ok();
}

// The first column of the first row of a fixed query, or nullopt when there is no row.
Result<std::optional<std::string>> QueryText(sqlite3* db, const char* sql, const char* context) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  StatementHandle statement(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, context);
  rc = sqlite3_step(statement.get());
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return SqliteError(rc, context);
  const unsigned char* text = sqlite3_column_text(statement.get(), 0);
  const int size = sqlite3_column_bytes(statement.get(), 0);
  if (text == nullptr || size <= 0) return std::optional<std::string>(std::string());
  return std::optional<std::string>(
      std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)));
}

// PITFALLS §1: if plain SQLite were linked in SQLCipher's place, the key would be silently
// ignored and everything written in clear. SQLCipher answers PRAGMA cipher_version with a
// row; plain SQLite ignores the unknown pragma and returns none. Our store format is
// SQLCipher 3's; a SQLCipher 4 would need cipher_compatibility = 3, which this code does
// not set, so it refuses to run rather than report every store as a wrong passphrase.
Status CheckCipher(sqlite3* db) {
  COFFRE_ASSIGN_OR_RETURN(auto version,
                          QueryText(db, "PRAGMA cipher_version", "database: cipher check"));
  if (!version || version->empty()) return Fail(ErrorCode::kUnsupported, kNoCipherMessage);
  if (!version->starts_with("3.")) {
    return Fail(ErrorCode::kUnsupported,
                "SQLCipher major version is not 3: this store format needs "
                "cipher_compatibility = 3");
  }
  return Ok();
}

// Page sizes. SQLCipher 3 keeps the page size nowhere it can read before decrypting (page 1
// is encrypted whole), so every connection sets it right after keying, before anything is
// read: with the wrong size the first read fails like a wrong key. Format 2 stores use
// 4 KiB pages: a commit costs one AES-256-CBC encryption, one HMAC-SHA1 and one WAL frame
// per page it dirties, and the part of that cost paid per page whatever its size (cipher
// and HMAC set-up, the random IV, two writes) exceeds that of encrypting 1 KiB, so fewer,
// larger pages write the same rows for less (docs/PERFORMANCE.md, decision 0012). Format 1
// stores used SQLCipher 3's default of 1 KiB; no deployed store has that format, and this
// code only recognises it to refuse it clearly.
enum class PageSize { kFormat2, kFormat1 };

const char* PageSizePragma(PageSize size) {
  return size == PageSize::kFormat2 ? "PRAGMA cipher_page_size = 4096"
                                    : "PRAGMA cipher_page_size = 1024";
}

// Opens a connection and keys it. `flags` never includes SQLITE_OPEN_CREATE: the store
// file is either created beforehand by us (mode 0600) or must already exist, so opening a
// wrong path can never leave a new empty file behind.
Result<ConnectionHandle> OpenConnection(const std::filesystem::path& path, const SecretBytes& key,
                                        int flags, PageSize page_size = PageSize::kFormat2) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  // Owned at once: SQLite hands back a handle even when the open fails, and it must be
  // closed in that case too.
  ConnectionHandle db(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, "database: cannot open the store file");
  (void)sqlite3_extended_result_codes(db.get(), 1);
  (void)sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  const SecretBytes literal = RawKeyLiteral(key);
  rc = sqlite3_key_v2(db.get(), "main", literal.data(), kRawKeyLiteralSize);
  if (rc != SQLITE_OK) return Fail(ErrorCode::kInternal, "SQLCipher refused to set the key");
  COFFRE_RETURN_IF_ERROR(CheckCipher(db.get()));
  COFFRE_RETURN_IF_ERROR(
      ExecFixed(db.get(), PageSizePragma(page_size), "database: cannot set the page size"));
  return db;
}

// PITFALLS §3: a wrong key is only noticed when the first page is read, as SQLITE_NOTADB.
// Reading sqlite_master right after keying turns it into kWrongPassphrase before anything
// else happens. A database without our format table (an empty file, any other SQLCipher
// database that this key happens to open) is not a Coffre store either.
Status VerifyStore(sqlite3* db) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT count(*) FROM sqlite_master "
                              "WHERE type = 'table' AND name = 'coffre_store_format'",
                              -1, &raw, nullptr);
  StatementHandle probe(raw);
  if ((rc & 0xff) == SQLITE_NOTADB) return WrongPassphrase();
  if (rc != SQLITE_OK) return SqliteError(rc, "database: cannot read the schema");
  rc = sqlite3_step(probe.get());
  if ((rc & 0xff) == SQLITE_NOTADB) return WrongPassphrase();
  if (rc != SQLITE_ROW) return SqliteError(rc, "database: cannot read the schema");
  if (sqlite3_column_int64(probe.get(), 0) != 1) return WrongPassphrase();

  raw = nullptr;
  rc =
      sqlite3_prepare_v2(db, "SELECT sqlcipher_major, format FROM coffre_store_format WHERE id = 1",
                         -1, &raw, nullptr);
  StatementHandle format(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, "database: cannot read the store format");
  rc = sqlite3_step(format.get());
  if (rc == SQLITE_DONE) return Fail(ErrorCode::kCorrupt, "store format record is missing");
  if (rc != SQLITE_ROW) return SqliteError(rc, "database: cannot read the store format");
  const std::int64_t sqlcipher_major = sqlite3_column_int64(format.get(), 0);
  const std::int64_t store_format = sqlite3_column_int64(format.get(), 1);
  if (sqlcipher_major != kSqlcipherMajorVersion) {
    return Fail(ErrorCode::kUnsupported, "store was written by another SQLCipher major version");
  }
  if (store_format > kStoreFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "store format is newer than this program");
  }
  if (store_format < 1) return Fail(ErrorCode::kCorrupt, "store format record is invalid");
  if (store_format < kStoreFormatVersion) {
    return Fail(ErrorCode::kUnsupported,
                "store is in format 1 (1 KiB pages), which this program no longer opens");
  }
  return Ok();
}

// Called when a store does not open with format 2's page size: tells a format 1 store
// (right key, 1 KiB pages) from a wrong key, on a read-only connection so that nothing is
// written either way. Always an error.
Error ExplainUnopenedStore(const std::filesystem::path& path, const SecretBytes& key) {
  auto legacy = OpenConnection(path, key, SQLITE_OPEN_READONLY, PageSize::kFormat1);
  if (!legacy) return WrongPassphrase().error;
  auto verified = VerifyStore(legacy->get());
  if (!verified && verified.error().code() == ErrorCode::kUnsupported) return verified.error();
  return WrongPassphrase().error;
}

// Per-connection settings, applied to every read-write connection before it writes.
Status ConfigureConnection(sqlite3* db) {
  // Freed pages and deleted rows are overwritten with zeros instead of lingering in free
  // pages (they are encrypted either way; this shortens how long deleted data survives).
  COFFRE_RETURN_IF_ERROR(
      ExecFixed(db, "PRAGMA secure_delete = ON", "database: cannot enable secure_delete"));
  COFFRE_RETURN_IF_ERROR(
      ExecFixed(db, "PRAGMA foreign_keys = ON", "database: cannot enable foreign keys"));
  // Durability: in WAL mode, synchronous = NORMAL only fsyncs at checkpoints, so a power
  // loss can roll back transactions that COMMIT already reported as done. FULL fsyncs the
  // WAL at every commit: once Commit returns, the change survives a crash or power loss.
  // The cost is one fsync per transaction, which is why callers batch their writes.
  COFFRE_RETURN_IF_ERROR(
      ExecFixed(db, "PRAGMA synchronous = FULL", "database: cannot set synchronous = FULL"));
  // WAL: readers do not block the writer, and a commit is a single append. On a new store
  // this writes page 1 to the database file at once (through a rollback journal), so the
  // file is never left at zero pages with a WAL beside it, a state SQLite resolves by
  // deleting the WAL.
  COFFRE_ASSIGN_OR_RETURN(auto mode, QueryText(db, "PRAGMA journal_mode = WAL",
                                               "database: cannot set the journal mode"));
  if (!mode || *mode != "wal") {
    return Fail(ErrorCode::kDatabase, "database: store could not switch to WAL journal mode");
  }
  return Ok();
}

// Opens an existing store. The key is checked first on a read-only connection: a read-write
// connection that fails to decrypt would still, when it closes as the last connection,
// checkpoint a WAL left by a crash into the database file and delete the WAL, changing the
// files of a store whose passphrase the user merely mistyped.
Result<ConnectionHandle> OpenExisting(const std::filesystem::path& path, const SecretBytes& key) {
  {
    COFFRE_ASSIGN_OR_RETURN(auto probe, OpenConnection(path, key, SQLITE_OPEN_READONLY));
    auto verified = VerifyStore(probe.get());
    if (!verified && verified.error().code() == ErrorCode::kWrongPassphrase) {
      return ExplainUnopenedStore(path, key);
    }
    COFFRE_RETURN_IF_ERROR(verified);
  }
  COFFRE_ASSIGN_OR_RETURN(auto db, OpenConnection(path, key, SQLITE_OPEN_READWRITE));
  COFFRE_RETURN_IF_ERROR(VerifyStore(db.get()));
  COFFRE_RETURN_IF_ERROR(ConfigureConnection(db.get()));
  return db;
}

// Turns the empty file at `path` into an empty Coffre store.
Result<ConnectionHandle> InitialiseNewStore(const std::filesystem::path& path,
                                            const SecretBytes& key) {
  COFFRE_ASSIGN_OR_RETURN(auto db, OpenConnection(path, key, SQLITE_OPEN_READWRITE));
  COFFRE_RETURN_IF_ERROR(ConfigureConnection(db.get()));
  COFFRE_RETURN_IF_ERROR(ExecFixed(db.get(),
                                   "BEGIN IMMEDIATE;"
                                   "CREATE TABLE coffre_store_format ("
                                   "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                                   "  sqlcipher_major INTEGER NOT NULL,"
                                   "  format INTEGER NOT NULL)",
                                   "database: cannot create the store format table"));
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db.get(),
                              "INSERT INTO coffre_store_format (id, sqlcipher_major, format) "
                              "VALUES (1, ?1, ?2)",
                              -1, &raw, nullptr);
  StatementHandle insert(raw);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(insert.get(), 1, kSqlcipherMajorVersion);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(insert.get(), 2, kStoreFormatVersion);
  if (rc == SQLITE_OK) rc = sqlite3_step(insert.get());
  if (rc != SQLITE_DONE) {
    // The connection is discarded with the files on this path; closing it rolls back.
    return SqliteError(rc, "database: cannot record the store format");
  }
  COFFRE_RETURN_IF_ERROR(ExecFixed(db.get(), "COMMIT", "database: cannot record the store format"));
  COFFRE_RETURN_IF_ERROR(VerifyStore(db.get()));
  return db;
}

}  // namespace

// ---------------------------------------------------------------------------------------

Database::Database(ConstructorTag, std::filesystem::path path, internal::ConnectionHandle db,
                   bool has_passphrase_header)
    : path_(std::move(path)), db_(std::move(db)), has_passphrase_header_(has_passphrase_header) {}

Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::Create(const std::filesystem::path& path,
                                                   std::span<const std::uint8_t> passphrase,
                                                   crypto::Argon2Params params) {
  // Validates the parameters before anything touches the disk.
  COFFRE_ASSIGN_OR_RETURN(auto record, PassphraseKdfRecord::Create(params));
  const auto header_path = HeaderPath(path);
  for (const auto& existing : {header_path, PendingHeaderPath(path), WalPath(path)}) {
    COFFRE_ASSIGN_OR_RETURN(const bool exists, PathExists(existing));
    if (exists) return Fail(ErrorCode::kAlreadyExists, "a store already exists here");
  }
  // O_EXCL creation of the database file is what makes two concurrent Creates of one path
  // safe: exactly one of them gets past this line.
  COFFRE_RETURN_IF_ERROR(CreateEmptyPrivateFile(path));
  RemoveOnFailure cleanup;
  for (const auto& file : {path, WalPath(path), ShmPath(path), JournalPath(path)}) {
    cleanup.Add(file);
  }
  COFFRE_ASSIGN_OR_RETURN(auto key,
                          crypto::DeriveKeyFromPassphrase(passphrase, record, kRawKeySize));
  const auto header = record.Serialize();
  COFFRE_RETURN_IF_ERROR(WriteFileAtomically(header_path, header));
  cleanup.Add(header_path);
  COFFRE_ASSIGN_OR_RETURN(auto db, InitialiseNewStore(path, key));
  cleanup.Release();
  return std::make_unique<Database>(ConstructorTag{}, path, std::move(db), true);
}

Result<std::unique_ptr<Database>> Database::Open(const std::filesystem::path& path,
                                                 std::span<const std::uint8_t> passphrase) {
  COFFRE_ASSIGN_OR_RETURN(const bool exists, PathExists(path));
  if (!exists) return Fail(ErrorCode::kNotFound, "no Coffre store at this path");
  const auto header_path = HeaderPath(path);
  const auto pending_path = PendingHeaderPath(path);
  COFFRE_ASSIGN_OR_RETURN(auto header, ReadHeader(header_path));
  COFFRE_ASSIGN_OR_RETURN(auto pending, ReadHeader(pending_path));

  // The main header first; the pending one only matters after a crash in ChangePassphrase
  // between the rekey and the rename of the header (see there). A pending header whose
  // rekey never committed is harmless: the key it yields opens nothing, and the next
  // ChangePassphrase replaces it. It is not deleted here: a concurrent ChangePassphrase in
  // another process could be about to rekey with it.
  for (const auto* candidate : {&header, &pending}) {
    if (!candidate->has_value()) continue;
    COFFRE_ASSIGN_OR_RETURN(auto key,
                            crypto::DeriveKeyFromPassphrase(passphrase, **candidate, kRawKeySize));
    auto db = OpenExisting(path, key);
    if (!db) {
      if (db.error().code() == ErrorCode::kWrongPassphrase) continue;
      return db.error();
    }
    if (candidate == &pending) {
      // Finish the interrupted passphrase change. If this fails the store still opens (the
      // next Open retries), so the failure is not reported.
      (void)RenameDurably(pending_path, header_path);
    }
    return std::make_unique<Database>(ConstructorTag{}, path, std::move(db).value(), true);
  }
  return WrongPassphrase();
}

Result<std::unique_ptr<Database>> Database::OpenWithRawKey(const std::filesystem::path& path,
                                                           const crypto::SecretBytes& key,
                                                           bool create_if_missing) {
  if (key.size() != kRawKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "raw store key must be 32 bytes");
  }
  RemoveOnFailure cleanup;
  bool initialise = false;
  COFFRE_ASSIGN_OR_RETURN(const bool exists, PathExists(path));
  if (!exists) {
    if (!create_if_missing) return Fail(ErrorCode::kNotFound, "no Coffre store at this path");
    auto created = CreateEmptyPrivateFile(path);
    if (!created && created.error().code() != ErrorCode::kAlreadyExists) return created.error();
    if (created) {
      initialise = true;
      for (const auto& file : {path, WalPath(path), ShmPath(path), JournalPath(path)}) {
        cleanup.Add(file);
      }
    }
  }
  if (!initialise && create_if_missing) {
    // An empty file with no WAL or journal holds no data at all: what a crash during an
    // earlier creation leaves. Initialising it loses nothing.
    COFFRE_ASSIGN_OR_RETURN(const off_t size, FileSize(path));
    COFFRE_ASSIGN_OR_RETURN(const bool has_wal, PathExists(WalPath(path)));
    COFFRE_ASSIGN_OR_RETURN(const bool has_journal, PathExists(JournalPath(path)));
    initialise = size == 0 && !has_wal && !has_journal;
  }
  COFFRE_ASSIGN_OR_RETURN(auto db,
                          initialise ? InitialiseNewStore(path, key) : OpenExisting(path, key));
  cleanup.Release();
  return std::make_unique<Database>(ConstructorTag{}, path, std::move(db), false);
}

Result<sqlite3*> Database::Connection() {
  if (!db_) {
    return Fail(ErrorCode::kInternal,
                "database connection closed after a failed passphrase change: reopen the store");
  }
  return db_.get();
}

// Order, and what a crash at each point leaves (H = PATH.kdf, N = PATH.kdf.new):
//   1. derive the new key            nothing changed on disk
//   2. write N atomically            H still matches the database; N is ignored by Open
//                                    (its key opens nothing) and replaced next time
//   3. rekey (one WAL transaction)   before its commit frame is synced: as in 2; after:
//                                    only N's key opens the database, and Open, which
//                                    tries H and then N, opens with N and renames N to H
//   4. rename N over H, fsync dir    H matches again
//   5. checkpoint (TRUNCATE)         moves the re-encrypted pages into PATH and empties the
//                                    WAL, so no frame under the old key stays in it
// The rekey is atomic because SQLCipher rewrites every page inside one write transaction,
// and in WAL mode a transaction exists on disk only once its commit frame is synced
// (synchronous = FULL).
Status Database::ChangePassphrase(std::span<const std::uint8_t> new_passphrase,
                                  crypto::Argon2Params params) {
  COFFRE_ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  if (!has_passphrase_header_) {
    return Fail(ErrorCode::kInvalidArgument, "store opened with a raw key has no passphrase");
  }
  if (sqlite3_get_autocommit(db) == 0) {
    return Fail(ErrorCode::kInvalidArgument, "finish the open transaction before a rekey");
  }
  if (sqlite3_next_stmt(db, nullptr) != nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "destroy every Statement before a rekey");
  }
  COFFRE_ASSIGN_OR_RETURN(auto record, PassphraseKdfRecord::Create(params));
  COFFRE_ASSIGN_OR_RETURN(auto key,
                          crypto::DeriveKeyFromPassphrase(new_passphrase, record, kRawKeySize));
  const auto header_path = HeaderPath(path_);
  const auto pending_path = PendingHeaderPath(path_);
  const auto header = record.Serialize();
  COFFRE_RETURN_IF_ERROR(WriteFileAtomically(pending_path, header));

  const SecretBytes literal = RawKeyLiteral(key);
  const int rc = sqlite3_rekey_v2(db, "main", literal.data(), kRawKeyLiteralSize);
  if (rc != SQLITE_OK) {
    // SQLCipher has already switched its write key when the rekey fails and does not switch
    // it back: this connection would write new pages under a key that nothing can derive.
    // Close it. The pending header stays: if the failure came after the commit frame was
    // written, it is the only header that opens the store.
    db_.reset();
    return SqliteError(rc, "database: passphrase change failed");
  }
  COFFRE_RETURN_IF_ERROR(RenameDurably(pending_path, header_path));
  // Best effort: if a reader blocks it, the old-key frames are overwritten by later
  // checkpoints instead. The passphrase change itself is already complete and durable.
  (void)sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  return Ok();
}

Status Database::Execute(const char* sql) {
  if (sql == nullptr) return Fail(ErrorCode::kInvalidArgument, "database: no SQL given");
  COFFRE_ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  return ExecFixed(db, sql, "database: SQL failed");
}

Result<Statement> Database::Prepare(const char* sql) {
  if (sql == nullptr) return Fail(ErrorCode::kInvalidArgument, "database: no SQL given");
  COFFRE_ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql, -1, &raw, &tail);
  internal::StatementHandle statement(raw);
  if (rc != SQLITE_OK) return SqliteError(rc, "database: cannot prepare the statement");
  if (!statement) return Fail(ErrorCode::kInvalidArgument, "database: SQL holds no statement");
  for (; tail != nullptr && *tail != '\0'; ++tail) {
    const char c = *tail;
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ';') {
      return Fail(ErrorCode::kInvalidArgument, "database: Prepare takes exactly one statement");
    }
  }
  return Statement(std::move(statement));
}

Result<Transaction> Database::Begin() {
  COFFRE_ASSIGN_OR_RETURN(sqlite3 * db, Connection());
  COFFRE_RETURN_IF_ERROR(ExecFixed(db, "BEGIN IMMEDIATE", "database: cannot begin a transaction"));
  return Transaction(db);
}

Result<std::int64_t> Database::UserVersion() {
  COFFRE_ASSIGN_OR_RETURN(auto statement, Prepare("PRAGMA user_version"));
  COFFRE_ASSIGN_OR_RETURN(const bool has_row, statement.Step());
  if (!has_row) return Fail(ErrorCode::kDatabase, "database: user_version returned no row");
  return statement.ColumnInt64(0);
}

std::int64_t Database::TotalChanges() {
  return db_ ? std::int64_t{sqlite3_total_changes(db_.get())} : 0;
}

bool Database::InTransaction() { return db_ && sqlite3_get_autocommit(db_.get()) == 0; }

Status Database::Migrate(std::span<const Migration> migrations) {
  int previous = 0;
  for (const auto& migration : migrations) {
    if (migration.version <= previous || migration.sql == nullptr) {
      return Fail(ErrorCode::kInvalidArgument,
                  "migrations need SQL and positive, strictly increasing versions");
    }
    previous = migration.version;
  }
  const std::int64_t latest = previous;
  COFFRE_ASSIGN_OR_RETURN(std::int64_t current, UserVersion());
  if (current > latest) {
    return Fail(ErrorCode::kUnsupported, "store schema is newer than this program");
  }
  for (const auto& migration : migrations) {
    if (migration.version <= current) continue;
    COFFRE_ASSIGN_OR_RETURN(auto transaction, Begin());
    // Read again under the write lock: another process may have migrated in the meantime.
    COFFRE_ASSIGN_OR_RETURN(current, UserVersion());
    if (current > latest) {
      return Fail(ErrorCode::kUnsupported, "store schema is newer than this program");
    }
    if (migration.version <= current) continue;  // the empty transaction rolls back
    COFFRE_RETURN_IF_ERROR(Execute(migration.sql));
    // PRAGMA takes no bound parameters. The number comes from the program's own migration
    // table (an int), never from data, so building this one statement is safe.
    const std::string set_version = "PRAGMA user_version = " + std::to_string(migration.version);
    COFFRE_RETURN_IF_ERROR(Execute(set_version.c_str()));
    COFFRE_RETURN_IF_ERROR(transaction.Commit());
    current = migration.version;
  }
  return Ok();
}

}  // namespace coffre::storage
