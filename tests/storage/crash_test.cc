// A process killed with SIGKILL in the middle of its work: the store must come back intact
// with exactly the committed transactions, and a mistyped passphrase afterwards must not
// touch what the crash left behind.
//
// The writer runs in a forked child that opens its own Database (a SQLite connection must
// never cross a fork), tells the parent through a pipe how far it got, and keeps writing
// until the parent kills it.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/storage/database.h"

namespace coffre::storage {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr crypto::Argon2Params kFast = crypto::kMinimumArgon2Params;
constexpr std::string_view kPassphrase = "correct horse battery staple";
constexpr std::int64_t kCommittedRows = 300;
// 4 KiB rows: a few hundred of them exceed SQLite's page cache (2000 pages of 1 KiB), so
// uncommitted pages spill into the WAL before the kill, the case recovery must ignore.
constexpr std::size_t kRowSize = 4096;
constexpr std::int64_t kRowsBeforeSignal = 1000;

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

// Inserts rows (batch, payload) until `count` is reached; false on any error.
bool InsertRows(Database& db, std::int64_t batch, std::int64_t count) {
  auto insert = db.Prepare("INSERT INTO rows (batch, payload) VALUES (?1, ?2)");
  if (!insert) return false;
  const Bytes payload = crypto::RandomBytes(kRowSize);
  for (std::int64_t i = 0; i < count; ++i) {
    if (!insert->Bind(1, batch) || !insert->Bind(2, payload) || !insert->Step()) return false;
    insert->Reset();
  }
  return true;
}

enum class ChildPlan {
  kKilledInFirstTransaction,   // nothing committed when the kill comes
  kKilledInSecondTransaction,  // one transaction committed, the next one in progress
  kKilledAfterCommit,          // killed right after a commit, nothing in progress
};

// Runs in the child: never returns. Writes one byte to `ready` when the parent may kill.
[[noreturn]] void RunChild(const std::filesystem::path& path, ChildPlan plan, int ready) {
  auto opened = Database::Open(path, AsBytes(kPassphrase));
  if (!opened) ::_exit(10);
  Database& db = **opened;
  if (plan != ChildPlan::kKilledInFirstTransaction) {
    auto first = db.Begin();
    if (!first || !InsertRows(db, 1, kCommittedRows) || !first->Commit()) ::_exit(11);
  }
  if (plan == ChildPlan::kKilledAfterCommit) {
    const char byte = 'r';
    if (::write(ready, &byte, 1) != 1) ::_exit(12);
    ::pause();
    ::_exit(13);
  }
  auto second = db.Begin();
  if (!second || !InsertRows(db, 2, kRowsBeforeSignal)) ::_exit(14);
  const char byte = 'r';
  if (::write(ready, &byte, 1) != 1) ::_exit(15);
  // Keep writing so the kill lands in the middle of page writes, not in a quiet moment.
  while (InsertRows(db, 2, 10)) {
  }
  ::_exit(16);
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string directory = ::testing::TempDir() + "coffre-crash-XXXXXX";
    ASSERT_NE(::mkdtemp(directory.data()), nullptr);
    dir_ = directory;
    path_ = dir_ / "store.db";
    auto db = Database::Create(path_, AsBytes(kPassphrase), kFast);
    ASSERT_TRUE(db.has_value()) << db.error().context();
    ASSERT_TRUE(
        (*db)->Execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL,"
                       "  payload BLOB NOT NULL)"));
  }  // the parent's connection is closed before any fork
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Forks a writer following `plan`, waits until it is ready and kills it with SIGKILL.
  // Returns the size of the WAL at the moment of the kill.
  std::uintmax_t RunAndKill(ChildPlan plan) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      RunChild(path_, plan, fds[1]);
    }
    ::close(fds[1]);
    EXPECT_GT(pid, 0);
    char byte = 0;
    const ssize_t n = ::read(fds[0], &byte, 1);
    ::close(fds[0]);
    EXPECT_EQ(n, 1) << "the writer exited before it was ready";
    if (plan != ChildPlan::kKilledAfterCommit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::error_code ignored;
    const auto wal_size = std::filesystem::file_size(Suffixed(path_, "-wal"), ignored);
    EXPECT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer exited with code " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return wal_size == static_cast<std::uintmax_t>(-1) ? 0 : wal_size;
  }

  static std::string IntegrityCheck(Database& db) {
    auto check = db.Prepare("PRAGMA integrity_check");
    if (!check || !check->Step().value_or(false)) return "<no answer>";
    return check->ColumnText(0);
  }
  static std::int64_t RowsInBatch(Database& db, std::int64_t batch) {
    auto count = db.Prepare("SELECT count(*) FROM rows WHERE batch = ?1");
    if (!count || !count->Bind(1, batch) || !count->Step().value_or(false)) return -1;
    return count->ColumnInt64(0);
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
};

TEST_F(CrashTest, KillBeforeCommitLosesOnlyTheUncommittedTransaction) {
  const auto wal_size = RunAndKill(ChildPlan::kKilledInFirstTransaction);
  // Uncommitted pages really were in the WAL when the process died.
  EXPECT_GT(wal_size, std::uintmax_t{1} << 20);
  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_TRUE(db.has_value()) << db.error().context();
  EXPECT_EQ(IntegrityCheck(**db), "ok");
  EXPECT_EQ(RowsInBatch(**db, 2), 0);
  // The store is writable again.
  EXPECT_TRUE(InsertRows(**db, 3, 1));
}

TEST_F(CrashTest, KillDuringASecondTransactionKeepsTheFirst) {
  RunAndKill(ChildPlan::kKilledInSecondTransaction);
  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_TRUE(db.has_value()) << db.error().context();
  EXPECT_EQ(IntegrityCheck(**db), "ok");
  EXPECT_EQ(RowsInBatch(**db, 1), kCommittedRows);
  EXPECT_EQ(RowsInBatch(**db, 2), 0);
}

TEST_F(CrashTest, KillRightAfterCommitKeepsTheCommit) {
  RunAndKill(ChildPlan::kKilledAfterCommit);
  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_TRUE(db.has_value()) << db.error().context();
  EXPECT_EQ(IntegrityCheck(**db), "ok");
  EXPECT_EQ(RowsInBatch(**db, 1), kCommittedRows);
}

TEST_F(CrashTest, WrongPassphraseAfterACrashLeavesTheFilesByteIdentical) {
  RunAndKill(ChildPlan::kKilledInSecondTransaction);
  // The crash left a WAL holding the committed first transaction and nobody has the store
  // open: the situation in which a careless failed open would checkpoint and delete it.
  const auto db_before = ReadFileBytes(path_);
  const auto wal_before = ReadFileBytes(Suffixed(path_, "-wal"));
  const auto header_before = ReadFileBytes(Suffixed(path_, ".kdf"));
  ASSERT_TRUE(wal_before.has_value());
  ASSERT_FALSE(wal_before->empty());

  auto wrong = Database::Open(path_, AsBytes("not the passphrase"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kWrongPassphrase);
  EXPECT_EQ(wrong.error().context(), "wrong passphrase or not a Coffre store");

  EXPECT_EQ(ReadFileBytes(path_), db_before);
  EXPECT_EQ(ReadFileBytes(Suffixed(path_, "-wal")), wal_before);
  EXPECT_EQ(ReadFileBytes(Suffixed(path_, ".kdf")), header_before);

  auto db = Database::Open(path_, AsBytes(kPassphrase));
  ASSERT_TRUE(db.has_value()) << db.error().context();
  EXPECT_EQ(IntegrityCheck(**db), "ok");
  EXPECT_EQ(RowsInBatch(**db, 1), kCommittedRows);
}

}  // namespace
}  // namespace coffre::storage
