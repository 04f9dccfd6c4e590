// Behaviour of the encrypted store: creation, opening, refusal of wrong keys and foreign
// files, passphrase change, and that nothing readable ever reaches the disk.
#include "coffre/storage/database.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::storage {
namespace {

using Bytes = std::vector<std::uint8_t>;

// The cheapest parameters the KDF accepts, so each test derives a key in tens of ms.
constexpr crypto::Argon2Params kFast = crypto::kMinimumArgon2Params;
constexpr std::string_view kPassphrase = "correct horse battery staple";
constexpr std::string_view kOtherPassphrase = "correct horse battery stapler";
constexpr const char* kWrongMessage = "wrong passphrase or not a Coffre store";
// Distinctive enough that finding it in a file can only mean a plaintext leak.
constexpr std::string_view kCanary = "CANARY-coffre-7f3a9c1e-plaintext-must-never-reach-disk";

std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::filesystem::path Suffixed(const std::filesystem::path& path, const char* suffix) {
  return std::filesystem::path(path.native() + suffix);
}

std::optional<Bytes> ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFileBytes(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

bool Contains(const Bytes& haystack, std::string_view needle) {
  const auto bytes = AsBytes(needle);
  return std::search(haystack.begin(), haystack.end(), bytes.begin(), bytes.end()) !=
         haystack.end();
}

// Every file of a store, with its bytes (nullopt when absent), to prove that a failed open
// changed nothing. PATH-shm is left out: it is SQLite's shared-memory index, rebuilt from
// the WAL, and holds no data.
std::map<std::string, std::optional<Bytes>> Snapshot(const std::filesystem::path& path) {
  std::map<std::string, std::optional<Bytes>> files;
  for (const char* suffix : {"", "-wal", "-journal", ".kdf", ".kdf.new"}) {
    files[suffix] = ReadFileBytes(Suffixed(path, suffix));
  }
  return files;
}

unsigned FileMode(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return 0;
  return info.st_mode & 0777;
}

std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string directory = ::testing::TempDir() + "coffre-database-XXXXXX";
    ASSERT_NE(::mkdtemp(directory.data()), nullptr);
    dir_ = directory;
    path_ = dir_ / "store.db";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<Database> CreateStore(std::string_view passphrase = kPassphrase) {
    auto db = Database::Create(path_, AsBytes(passphrase), kFast);
    EXPECT_TRUE(db.has_value()) << (db ? "" : db.error().context());
    return db ? std::move(db).value() : nullptr;
  }
  std::unique_ptr<Database> OpenStore(std::string_view passphrase = kPassphrase) {
    auto db = Database::Open(path_, AsBytes(passphrase));
    EXPECT_TRUE(db.has_value()) << (db ? "" : db.error().context());
    return db ? std::move(db).value() : nullptr;
  }

  static void InsertNote(Database& db, std::string_view note) {
    auto insert = db.Prepare("INSERT INTO notes (body) VALUES (?1)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->Bind(1, note));
    auto done = insert->Step();
    ASSERT_TRUE(done.has_value()) << done.error().context();
  }
  static std::vector<std::string> ReadNotes(Database& db) {
    std::vector<std::string> notes;
    auto select = db.Prepare("SELECT body FROM notes ORDER BY id");
    EXPECT_TRUE(select.has_value());
    if (!select) return notes;
    while (true) {
      auto row = select->Step();
      EXPECT_TRUE(row.has_value());
      if (!row || !*row) break;
      notes.push_back(select->ColumnText(0));
    }
    return notes;
  }
  void CreateStoreWithNotes() {
    auto db = CreateStore();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"));
    InsertNote(*db, "first");
    InsertNote(*db, "second");
  }
  void ExpectWrongPassphrase(std::string_view passphrase) {
    auto db = Database::Open(path_, AsBytes(passphrase));
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error().code(), ErrorCode::kWrongPassphrase);
    EXPECT_EQ(db.error().context(), kWrongMessage);
  }
  // A header that parses, so the refusal has to come from the database file itself.
  void WriteValidHeader() {
    auto record = crypto::PassphraseKdfRecord::Create(kFast);
    ASSERT_TRUE(record.has_value());
    WriteFileBytes(Suffixed(path_, ".kdf"), record->Serialize());
  }
  // The raw SQLCipher key, derived the way the store does from its header file: no test
  // hook in the product code.
  crypto::SecretBytes DeriveRawKey(std::string_view passphrase) {
    const auto header = ReadFileBytes(Suffixed(path_, ".kdf"));
    EXPECT_TRUE(header.has_value());
    if (!header) return {};
    auto record = crypto::PassphraseKdfRecord::Parse(*header);
    EXPECT_TRUE(record.has_value());
    if (!record) return {};
    auto key = crypto::DeriveKeyFromPassphrase(AsBytes(passphrase), *record, kRawKeySize);
    EXPECT_TRUE(key.has_value());
    return key ? std::move(key).value() : crypto::SecretBytes();
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
};

TEST_F(DatabaseTest, ReopenWithRightPassphraseFindsCommittedData) {
  CreateStoreWithNotes();
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(ReadNotes(*db), (std::vector<std::string>{"first", "second"}));
}

TEST_F(DatabaseTest, CreateFailsIfTheStoreExists) {
  CreateStoreWithNotes();
  const auto before = Snapshot(path_);
  auto again = Database::Create(path_, AsBytes(kOtherPassphrase), kFast);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(Snapshot(path_), before);
  ASSERT_NE(OpenStore(), nullptr);
}

TEST_F(DatabaseTest, CreateFailsIfOnlyTheHeaderExists) {
  WriteValidHeader();
  auto db = Database::Create(path_, AsBytes(kPassphrase), kFast);
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(DatabaseTest, CreateWithWeakArgon2ParamsFailsAndLeavesNoFile) {
  const crypto::Argon2Params weak{1024, 1, 1};
  auto db = Database::Create(path_, AsBytes(kPassphrase), weak);
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(DatabaseTest, CreateWritesAPrivateHeaderHoldingTheKdfRecord) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  const auto header = ReadFileBytes(Suffixed(path_, ".kdf"));
  ASSERT_TRUE(header.has_value());
  ASSERT_EQ(header->size(), crypto::kPassphraseKdfRecordSize);
  auto record = crypto::PassphraseKdfRecord::Parse(*header);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->params.memory_kib, kFast.memory_kib);
  EXPECT_EQ(record->params.iterations, kFast.iterations);
  EXPECT_EQ(record->params.parallelism, kFast.parallelism);
  EXPECT_EQ(FileMode(Suffixed(path_, ".kdf")), 0600u);
  EXPECT_EQ(FileMode(path_), 0600u);
  // SQLite gives its side files the database's mode.
  ASSERT_TRUE(db->Execute("CREATE TABLE t (x)"));
  EXPECT_EQ(FileMode(Suffixed(path_, "-wal")), 0600u);
  // No temporary or pending header is left behind.
  EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, ".kdf.tmp")));
  EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, ".kdf.new")));
  // The database file already holds its first page, so it is never a zero-page file whose
  // WAL SQLite would discard.
  EXPECT_GT(std::filesystem::file_size(path_), 0u);
}

TEST_F(DatabaseTest, OpenOfAMissingStoreIsNotFoundAndCreatesNothing) {
  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(DatabaseTest, WrongPassphraseIsRefusedAndChangesNoFile) {
  CreateStoreWithNotes();
  const auto before = Snapshot(path_);
  ExpectWrongPassphrase(kOtherPassphrase);
  ExpectWrongPassphrase("");
  EXPECT_EQ(Snapshot(path_), before);
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(ReadNotes(*db).size(), 2u);
}

TEST_F(DatabaseTest, WrongPassphraseWhileTheStoreIsOpenChangesNoFile) {
  CreateStoreWithNotes();
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  InsertNote(*db, "third");  // lives only in the WAL for now
  const auto before = Snapshot(path_);
  ASSERT_TRUE(before.at("-wal").has_value());
  ExpectWrongPassphrase(kOtherPassphrase);
  EXPECT_EQ(Snapshot(path_), before);
  EXPECT_EQ(ReadNotes(*db).size(), 3u);
}

TEST_F(DatabaseTest, RandomFileIsRefusedAsNotACoffreStore) {
  for (const std::size_t size : {std::size_t{100}, std::size_t{1024}, std::size_t{8192}}) {
    SCOPED_TRACE(size);
    const auto random = crypto::RandomBytes(size);
    WriteFileBytes(path_, random);
    std::filesystem::remove(Suffixed(path_, ".kdf"));
    ExpectWrongPassphrase(kPassphrase);  // no header at all
    WriteValidHeader();
    const auto before = Snapshot(path_);
    ExpectWrongPassphrase(kPassphrase);  // a header, but the file is noise
    EXPECT_EQ(Snapshot(path_), before);
    EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, "-wal")));
  }
}

TEST_F(DatabaseTest, PlainSqliteFileIsRefusedAsNotACoffreStore) {
  {
    // Made through the SQLite API without a key: a plain, unencrypted database.
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> plain(raw, &sqlite3_close_v2);
    ASSERT_EQ(rc, SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(plain.get(),
                           "CREATE TABLE coffre_store_format (id, sqlcipher_major, format);"
                           "INSERT INTO coffre_store_format VALUES (1, 3, 1);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  const auto file = ReadFileBytes(path_);
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE(Contains(*file, std::string_view("SQLite format 3\0", 16)));
  ExpectWrongPassphrase(kPassphrase);
  WriteValidHeader();
  const auto before = Snapshot(path_);
  ExpectWrongPassphrase(kPassphrase);
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(DatabaseTest, EmptyFileIsRefusedAndStaysEmpty) {
  WriteFileBytes(path_, {});
  WriteValidHeader();
  ExpectWrongPassphrase(kPassphrase);
  EXPECT_EQ(std::filesystem::file_size(path_), 0u);
  EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, "-wal")));
}

TEST_F(DatabaseTest, MissingOrDamagedHeaderIsRefused) {
  CreateStoreWithNotes();
  const auto header_path = Suffixed(path_, ".kdf");
  const auto header = ReadFileBytes(header_path);
  ASSERT_TRUE(header.has_value());

  std::filesystem::remove(header_path);
  ExpectWrongPassphrase(kPassphrase);

  WriteFileBytes(header_path, std::span(*header).first(header->size() - 1));
  ExpectWrongPassphrase(kPassphrase);

  Bytes longer = *header;
  longer.push_back(0);
  WriteFileBytes(header_path, longer);
  ExpectWrongPassphrase(kPassphrase);

  Bytes other_salt = *header;
  other_salt.back() ^= 0x01;
  WriteFileBytes(header_path, other_salt);
  ExpectWrongPassphrase(kPassphrase);

  WriteFileBytes(header_path, *header);
  EXPECT_NE(OpenStore(), nullptr);
}

TEST_F(DatabaseTest, ChangePassphraseRefusesTheOldAndAcceptsTheNew) {
  CreateStoreWithNotes();
  const auto old_header = ReadFileBytes(Suffixed(path_, ".kdf"));
  {
    auto db = OpenStore();
    ASSERT_NE(db, nullptr);
    auto changed = db->ChangePassphrase(AsBytes(kOtherPassphrase), kFast);
    ASSERT_TRUE(changed.has_value()) << changed.error().context();
    InsertNote(*db, "after rekey");  // the same connection keeps working
  }
  EXPECT_NE(ReadFileBytes(Suffixed(path_, ".kdf")), old_header);  // fresh salt
  EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, ".kdf.new")));
  ExpectWrongPassphrase(kPassphrase);
  auto db = OpenStore(kOtherPassphrase);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(ReadNotes(*db), (std::vector<std::string>{"first", "second", "after rekey"}));
  auto check = db->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.has_value());
  ASSERT_TRUE(check->Step().value_or(false));
  EXPECT_EQ(check->ColumnText(0), "ok");
}

TEST_F(DatabaseTest, OpenFinishesAPassphraseChangeInterruptedBeforeTheHeaderRename) {
  CreateStoreWithNotes();
  const auto header_path = Suffixed(path_, ".kdf");
  const auto pending_path = Suffixed(path_, ".kdf.new");
  const auto old_header = ReadFileBytes(header_path);
  {
    auto db = OpenStore();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->ChangePassphrase(AsBytes(kOtherPassphrase), kFast));
  }
  // Recreate the state of a crash after the rekey committed but before the rename: the
  // new header is still pending and the main header is the old one.
  const auto new_header = ReadFileBytes(header_path);
  std::filesystem::rename(header_path, pending_path);
  WriteFileBytes(header_path, *old_header);

  ExpectWrongPassphrase(kPassphrase);
  auto db = OpenStore(kOtherPassphrase);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(ReadNotes(*db).size(), 2u);
  EXPECT_EQ(ReadFileBytes(header_path), new_header);
  EXPECT_FALSE(std::filesystem::exists(pending_path));
}

TEST_F(DatabaseTest, StalePendingHeaderDoesNotStopTheStoreFromOpening) {
  CreateStoreWithNotes();
  // A crash after the pending header was written but before the rekey committed.
  auto stale = crypto::PassphraseKdfRecord::Create(kFast);
  ASSERT_TRUE(stale.has_value());
  WriteFileBytes(Suffixed(path_, ".kdf.new"), stale->Serialize());
  ExpectWrongPassphrase(kOtherPassphrase);
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(ReadNotes(*db).size(), 2u);
  // And a later change replaces the stale header instead of tripping over it.
  ASSERT_TRUE(db->ChangePassphrase(AsBytes(kOtherPassphrase), kFast));
  db.reset();
  EXPECT_NE(OpenStore(kOtherPassphrase), nullptr);
}

TEST_F(DatabaseTest, ChangePassphraseIsRefusedWhileAStatementOrTransactionIsOpen) {
  CreateStoreWithNotes();
  auto db = OpenStore();
  ASSERT_NE(db, nullptr);
  {
    auto statement = db->Prepare("SELECT 1");
    ASSERT_TRUE(statement.has_value());
    auto changed = db->ChangePassphrase(AsBytes(kOtherPassphrase), kFast);
    ASSERT_FALSE(changed.has_value());
    EXPECT_EQ(changed.error().code(), ErrorCode::kInvalidArgument);
  }
  {
    auto transaction = db->Begin();
    ASSERT_TRUE(transaction.has_value());
    auto changed = db->ChangePassphrase(AsBytes(kOtherPassphrase), kFast);
    ASSERT_FALSE(changed.has_value());
    EXPECT_EQ(changed.error().code(), ErrorCode::kInvalidArgument);
  }
  db.reset();
  EXPECT_NE(OpenStore(), nullptr);  // nothing changed
}

TEST_F(DatabaseTest, ChangePassphraseIsRefusedForARawKeyStore) {
  auto db = Database::OpenWithRawKey(path_, crypto::RandomSecret(kRawKeySize), true);
  ASSERT_TRUE(db.has_value());
  auto changed = (*db)->ChangePassphrase(AsBytes(kOtherPassphrase), kFast);
  ASSERT_FALSE(changed.has_value());
  EXPECT_EQ(changed.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(DatabaseTest, CanaryNeverAppearsInTheFilesOnDisk) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Execute("CREATE TABLE canary (id INTEGER PRIMARY KEY, note TEXT, data BLOB)"));
  Bytes blob;
  for (int i = 0; i < 50; ++i) blob.insert(blob.end(), kCanary.begin(), kCanary.end());
  for (int i = 0; i < 20; ++i) {
    auto insert = db->Prepare("INSERT INTO canary (note, data) VALUES (?1, ?2)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->Bind(1, kCanary));
    ASSERT_TRUE(insert->Bind(2, blob));
    ASSERT_TRUE(insert->Step().has_value());
  }
  // Still open: the rows sit in the WAL, not yet checkpointed into the database file.
  const auto wal = ReadFileBytes(Suffixed(path_, "-wal"));
  ASSERT_TRUE(wal.has_value());
  ASSERT_GT(wal->size(), blob.size());
  for (const char* suffix : {"", "-wal", "-shm", ".kdf"}) {
    SCOPED_TRACE(suffix);
    const auto file = ReadFileBytes(Suffixed(path_, suffix));
    ASSERT_TRUE(file.has_value());
    EXPECT_FALSE(Contains(*file, kCanary));
    EXPECT_FALSE(Contains(*file, std::string_view("SQLite format 3")));
  }
  db.reset();  // the last connection checkpoints into the database file
  for (const char* suffix : {"", "-wal", "-shm"}) {
    SCOPED_TRACE(suffix);
    const auto file = ReadFileBytes(Suffixed(path_, suffix));
    if (file) {
      EXPECT_FALSE(Contains(*file, kCanary));
    }
  }
  const auto file = ReadFileBytes(path_);
  ASSERT_TRUE(file.has_value());
  EXPECT_GT(file->size(), 20 * blob.size());  // the data did reach the file, encrypted
}

// Runs the `sqlcipher` command-line program on the store with `script` on its standard
// input and returns everything it printed.
std::string RunSqlcipher(const std::filesystem::path& store, const std::filesystem::path& output,
                         const std::string& script) {
  const std::string command = "sqlcipher '" + store.string() + "' > '" + output.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "w");
  if (pipe == nullptr) return "popen failed";
  std::fwrite(script.data(), 1, script.size(), pipe);
  ::pclose(pipe);
  const auto printed = ReadFileBytes(output);
  return printed ? std::string(printed->begin(), printed->end()) : std::string();
}

TEST_F(DatabaseTest, SqlcipherProgramReadsTheStoreOnlyWithTheRightRawKey) {
  if (std::system("command -v sqlcipher > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "the sqlcipher program is not installed";
  }
  {
    auto db = CreateStore();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("CREATE TABLE canary (note TEXT)"));
    auto insert = db->Prepare("INSERT INTO canary (note) VALUES (?1)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->Bind(1, kCanary));
    ASSERT_TRUE(insert->Step().has_value());
  }
  const auto output = dir_ / "sqlcipher.out";
  const auto key = DeriveRawKey(kPassphrase);
  ASSERT_EQ(key.size(), kRawKeySize);
  // A test key for a throwaway store, so a plain std::string is acceptable here.
  // Store format 2: the page size is not readable from the encrypted file and must follow
  // the key.
  const auto query = [](std::span<const std::uint8_t> raw_key) {
    return "PRAGMA key = \"x'" + Hex(raw_key) +
           "'\";\nPRAGMA cipher_page_size = 4096;\nSELECT note FROM canary;\n";
  };
  const std::string right = RunSqlcipher(path_, output, query(key.span()));
  EXPECT_NE(right.find(kCanary), std::string::npos) << right;

  // The right key with SQLCipher 3's default page size fails like a wrong key.
  const std::string default_page_size = RunSqlcipher(
      path_, output, "PRAGMA key = \"x'" + Hex(key.span()) + "'\";\nSELECT note FROM canary;\n");
  EXPECT_EQ(default_page_size.find(kCanary), std::string::npos) << default_page_size;
  EXPECT_NE(default_page_size.find("file is encrypted or is not a database"), std::string::npos)
      << default_page_size;

  auto wrong_key = key.Clone();
  wrong_key.data()[0] ^= 0x01;
  const std::string wrong = RunSqlcipher(path_, output, query(wrong_key.span()));
  EXPECT_EQ(wrong.find(kCanary), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("file is encrypted or is not a database"), std::string::npos) << wrong;

  // The key derived with the wrong passphrase fails the same way.
  const std::string wrong_passphrase =
      RunSqlcipher(path_, output, query(DeriveRawKey(kOtherPassphrase).span()));
  EXPECT_NE(wrong_passphrase.find("file is encrypted or is not a database"), std::string::npos);
  EXPECT_NE(OpenStore(), nullptr);
}

TEST_F(DatabaseTest, CipherVersionShowsSqlcipherIsLinked) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  auto version = db->Prepare("PRAGMA cipher_version");
  ASSERT_TRUE(version.has_value());
  ASSERT_TRUE(version->Step().value_or(false));
  EXPECT_TRUE(version->ColumnText(0).starts_with("3.")) << version->ColumnText(0);

  // The test binary itself: the same pragma on a bare in-memory connection.
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> memory(raw, &sqlite3_close_v2);
  std::string reported;
  ASSERT_EQ(sqlite3_exec(
                memory.get(), "PRAGMA cipher_version",
                [](void* out, int, char** values, char**) {
                  if (values[0] != nullptr) *static_cast<std::string*>(out) = values[0];
                  return 0;
                },
                &reported, nullptr),
            SQLITE_OK);
  EXPECT_FALSE(reported.empty());
}

TEST_F(DatabaseTest, ConnectionSettingsAreApplied) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  const auto pragma = [&](const char* sql) {
    auto statement = db->Prepare(sql);
    EXPECT_TRUE(statement.has_value());
    if (!statement || !statement->Step().value_or(false)) return std::string("<no row>");
    return statement->ColumnText(0);
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(pragma("PRAGMA foreign_keys"), "1");
  EXPECT_EQ(pragma("PRAGMA secure_delete"), "1");
  EXPECT_EQ(pragma("PRAGMA busy_timeout"), std::to_string(kBusyTimeoutMs));
  EXPECT_EQ(pragma("PRAGMA page_size"), "4096");  // store format 2
}

TEST_F(DatabaseTest, StoreRecordsItsSqlcipherMajorAndFormat) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  auto format = db->Prepare("SELECT sqlcipher_major, format FROM coffre_store_format");
  ASSERT_TRUE(format.has_value());
  ASSERT_TRUE(format->Step().value_or(false));
  EXPECT_EQ(format->ColumnInt64(0), kSqlcipherMajorVersion);
  EXPECT_EQ(format->ColumnInt64(1), kStoreFormatVersion);
  auto user_version = db->UserVersion();
  ASSERT_TRUE(user_version.has_value());
  EXPECT_EQ(*user_version, 0);  // user_version is left to the schema migrations
}

TEST_F(DatabaseTest, StoreInANewerFormatIsRefused) {
  {
    auto db = CreateStore();
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Execute("UPDATE coffre_store_format SET format = 99"));
  }
  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_FALSE(db.has_value());
  EXPECT_EQ(db.error().code(), ErrorCode::kUnsupported);
}

TEST_F(DatabaseTest, StoreInFormatOneIsRefusedAsUnsupportedAndLeftUnchanged) {
  // A format 1 store as this code wrote it before format 2: SQLCipher 3's default 1 KiB
  // pages, made here through the SQLite API with a raw key.
  const auto key = crypto::RandomSecret(kRawKeySize);
  {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> legacy(raw, &sqlite3_close_v2);
    ASSERT_EQ(rc, SQLITE_OK);
    // A test key for a throwaway store, so a plain std::string is acceptable here.
    const std::string setup = "PRAGMA key = \"x'" + Hex(key.span()) +
                              "'\";"
                              "PRAGMA cipher_page_size = 1024;"
                              "PRAGMA journal_mode = WAL;"
                              "CREATE TABLE coffre_store_format (id INTEGER PRIMARY KEY,"
                              " sqlcipher_major INTEGER NOT NULL, format INTEGER NOT NULL);"
                              "INSERT INTO coffre_store_format VALUES (1, 3, 1);";
    ASSERT_EQ(sqlite3_exec(legacy.get(), setup.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  }
  const auto before = Snapshot(path_);
  for (const bool create : {false, true}) {
    auto db = Database::OpenWithRawKey(path_, key, create);
    ASSERT_FALSE(db.has_value());
    EXPECT_EQ(db.error().code(), ErrorCode::kUnsupported);
    EXPECT_NE(db.error().context().find("format 1"), std::string_view::npos)
        << db.error().context();
  }
  // Another key still reads as a wrong key, not as an old store.
  auto wrong = Database::OpenWithRawKey(path_, crypto::RandomSecret(kRawKeySize), false);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kWrongPassphrase);
  // Nothing was written. Reading the format record on a read-only connection may leave an
  // empty PATH-wal behind (SQLite creates it to read a WAL-mode file), which holds nothing.
  auto after = Snapshot(path_);
  if (!before.at("-wal").has_value() && after.at("-wal").has_value()) {
    EXPECT_TRUE(after.at("-wal")->empty());
    after["-wal"].reset();
  }
  EXPECT_EQ(after, before);
}

TEST_F(DatabaseTest, RawKeyStoreReopensWithItsKeyOnly) {
  const auto key = crypto::RandomSecret(kRawKeySize);
  {
    auto db = Database::OpenWithRawKey(path_, key, /*create_if_missing=*/true);
    ASSERT_TRUE(db.has_value()) << db.error().context();
    ASSERT_TRUE((*db)->Execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"));
    InsertNote(**db, "relay");
  }
  EXPECT_FALSE(std::filesystem::exists(Suffixed(path_, ".kdf")));
  EXPECT_EQ(FileMode(path_), 0600u);
  {
    auto db = Database::OpenWithRawKey(path_, key, /*create_if_missing=*/false);
    ASSERT_TRUE(db.has_value()) << db.error().context();
    EXPECT_EQ(ReadNotes(**db), std::vector<std::string>{"relay"});
  }
  const auto before = Snapshot(path_);
  for (const bool create : {false, true}) {
    auto wrong = Database::OpenWithRawKey(path_, crypto::RandomSecret(kRawKeySize), create);
    ASSERT_FALSE(wrong.has_value());
    EXPECT_EQ(wrong.error().code(), ErrorCode::kWrongPassphrase);
    EXPECT_EQ(wrong.error().context(), kWrongMessage);
  }
  EXPECT_EQ(Snapshot(path_), before);
}

TEST_F(DatabaseTest, RawKeyOpenRejectsBadKeysAndMissingStores) {
  auto short_key = Database::OpenWithRawKey(path_, crypto::RandomSecret(16), true);
  ASSERT_FALSE(short_key.has_value());
  EXPECT_EQ(short_key.error().code(), ErrorCode::kInvalidArgument);
  auto missing = Database::OpenWithRawKey(path_, crypto::RandomSecret(kRawKeySize), false);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(DatabaseTest, RawKeyCreateInitialisesAnEmptyFileLeftByACrash) {
  WriteFileBytes(path_, {});
  const auto key = crypto::RandomSecret(kRawKeySize);
  auto refused = Database::OpenWithRawKey(path_, key, /*create_if_missing=*/false);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kWrongPassphrase);
  auto db = Database::OpenWithRawKey(path_, key, /*create_if_missing=*/true);
  ASSERT_TRUE(db.has_value()) << db.error().context();
  EXPECT_TRUE((*db)->Execute("CREATE TABLE t (x)"));
}

TEST_F(DatabaseTest, StatementDestroyedAfterItsDatabaseIsSafe) {
  auto db = CreateStore();
  ASSERT_NE(db, nullptr);
  auto statement = db->Prepare("SELECT 1");
  ASSERT_TRUE(statement.has_value());
  // The connection stays allocated (a zombie) until the statement is finalized, so this
  // order frees everything without a use-after-free; AddressSanitizer builds check it.
  db.reset();
}

}  // namespace
}  // namespace coffre::storage
