// Statement binding and reading, transactions and numbered migrations. These tests key
// their stores with a random raw key (OpenWithRawKey) to skip Argon2id.
#include "coffre/storage/statement.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/storage/database.h"
#include "coffre/storage/transaction.h"

namespace coffre::storage {
namespace {

using Bytes = std::vector<std::uint8_t>;

class StatementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string directory = ::testing::TempDir() + "coffre-statement-XXXXXX";
    ASSERT_NE(::mkdtemp(directory.data()), nullptr);
    dir_ = directory;
    path_ = dir_ / "store.db";
    key_ = crypto::RandomSecret(kRawKeySize);
    Reopen();
    ASSERT_NE(db_, nullptr);
    ASSERT_TRUE(
        db_->Execute("CREATE TABLE items ("
                     "  id INTEGER PRIMARY KEY,"
                     "  name TEXT UNIQUE,"
                     "  number INTEGER,"
                     "  data BLOB)"));
  }
  void TearDown() override {
    db_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  void Reopen() {
    db_.reset();
    auto db = Database::OpenWithRawKey(path_, key_, /*create_if_missing=*/true);
    ASSERT_TRUE(db.has_value()) << db.error().context();
    db_ = std::move(db).value();
  }

  std::int64_t Count(const char* sql) {
    auto statement = db_->Prepare(sql);
    EXPECT_TRUE(statement.has_value());
    if (!statement) return -1;
    auto row = statement->Step();
    EXPECT_TRUE(row.has_value() && *row);
    return statement->ColumnInt64(0);
  }
  std::int64_t ItemCount() { return Count("SELECT count(*) FROM items"); }

  Status InsertName(std::string_view name) {
    COFFRE_ASSIGN_OR_RETURN(auto insert, db_->Prepare("INSERT INTO items (name) VALUES (?1)"));
    COFFRE_RETURN_IF_ERROR(insert.Bind(1, name));
    COFFRE_ASSIGN_OR_RETURN(const bool row, insert.Step());
    (void)row;
    return Ok();
  }

  std::int64_t UserVersion() {
    auto version = db_->UserVersion();
    EXPECT_TRUE(version.has_value());
    return version.value_or(-1);
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
  crypto::SecretBytes key_;
  std::unique_ptr<Database> db_;
};

TEST_F(StatementTest, BindsAndReadsBackIntegersTextBlobsAndNull) {
  struct Row {
    std::int64_t number;
    std::string name;
    Bytes data;
  };
  const Bytes with_zeros = {0x00, 0xff, 0x00, 0x10, 0x00};
  const std::vector<Row> rows = {
      {std::numeric_limits<std::int64_t>::min(), "min", with_zeros},
      {std::numeric_limits<std::int64_t>::max(), "h\xc3\xa9llo w\xc3\xb6rld", {0x01}},
      {0, "", {}},
  };
  for (const auto& row : rows) {
    auto insert = db_->Prepare("INSERT INTO items (number, name, data) VALUES (?1, ?2, ?3)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->Bind(1, row.number));
    ASSERT_TRUE(insert->Bind(2, row.name));
    ASSERT_TRUE(insert->Bind(3, row.data));
    auto done = insert->Step();
    ASSERT_TRUE(done.has_value());
    EXPECT_FALSE(*done);
  }
  {
    auto insert = db_->Prepare("INSERT INTO items (number, name, data) VALUES (?1, ?2, ?3)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->Bind(1, nullptr));
    ASSERT_TRUE(insert->Bind(2, nullptr));
    ASSERT_TRUE(insert->Bind(3, nullptr));
    ASSERT_TRUE(insert->Step().has_value());
  }

  auto select = db_->Prepare("SELECT number, name, data FROM items ORDER BY id");
  ASSERT_TRUE(select.has_value());
  EXPECT_EQ(select->ColumnCount(), 3);
  for (const auto& row : rows) {
    auto has_row = select->Step();
    ASSERT_TRUE(has_row.has_value());
    ASSERT_TRUE(*has_row);
    EXPECT_EQ(select->ColumnInt64(0), row.number);
    EXPECT_EQ(select->ColumnText(1), row.name);
    EXPECT_EQ(select->ColumnBlob(2), row.data);
    // An empty text or blob is stored as empty, never as NULL.
    EXPECT_FALSE(select->ColumnIsNull(1));
    EXPECT_FALSE(select->ColumnIsNull(2));
  }
  auto null_row = select->Step();
  ASSERT_TRUE(null_row.has_value() && *null_row);
  EXPECT_TRUE(select->ColumnIsNull(0));
  EXPECT_TRUE(select->ColumnIsNull(1));
  EXPECT_TRUE(select->ColumnIsNull(2));
  EXPECT_EQ(select->ColumnInt64(0), 0);
  EXPECT_TRUE(select->ColumnBlob(2).empty());
  auto end = select->Step();
  ASSERT_TRUE(end.has_value());
  EXPECT_FALSE(*end);
}

TEST_F(StatementTest, IntegerLiteralsBindWithoutAmbiguity) {
  auto statement = db_->Prepare("SELECT ?1 + ?2");
  ASSERT_TRUE(statement.has_value());
  ASSERT_TRUE(statement->Bind(1, 0));
  ASSERT_TRUE(statement->Bind(2, 41));
  ASSERT_TRUE(statement->Step().value_or(false));
  EXPECT_EQ(statement->ColumnInt64(0), 41);
}

TEST_F(StatementTest, SecretRoundTripsThroughABlobColumn) {
  const auto secret = crypto::RandomSecret(32);
  {
    auto insert = db_->Prepare("INSERT INTO items (name, data) VALUES ('key', ?1)");
    ASSERT_TRUE(insert.has_value());
    ASSERT_TRUE(insert->BindSecret(1, secret));
    ASSERT_TRUE(insert->Step().has_value());
  }
  auto select = db_->Prepare("SELECT data FROM items WHERE name = 'key'");
  ASSERT_TRUE(select.has_value());
  ASSERT_TRUE(select->Step().value_or(false));
  const crypto::SecretBytes read = select->ColumnSecret(0);
  EXPECT_TRUE(crypto::ConstantTimeEquals(read.span(), secret.span()));
}

TEST_F(StatementTest, ResetClearsBindingsForTheNextUse) {
  auto insert = db_->Prepare("INSERT INTO items (name, number) VALUES (?1, ?2)");
  ASSERT_TRUE(insert.has_value());
  ASSERT_TRUE(insert->Bind(1, std::string_view("one")));
  ASSERT_TRUE(insert->Bind(2, 1));
  ASSERT_TRUE(insert->Step().has_value());
  insert->Reset();
  ASSERT_TRUE(insert->Bind(1, std::string_view("two")));  // ?2 deliberately left unbound
  ASSERT_TRUE(insert->Step().has_value());
  auto select = db_->Prepare("SELECT number FROM items WHERE name = 'two'");
  ASSERT_TRUE(select.has_value());
  ASSERT_TRUE(select->Step().value_or(false));
  EXPECT_TRUE(select->ColumnIsNull(0));
}

TEST_F(StatementTest, UniqueViolationIsAlreadyExists) {
  ASSERT_TRUE(InsertName("same"));
  auto second = InsertName("same");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ItemCount(), 1);
}

TEST_F(StatementTest, ForeignKeysAreEnforced) {
  ASSERT_TRUE(
      db_->Execute("CREATE TABLE children (id INTEGER PRIMARY KEY,"
                   "  item_id INTEGER NOT NULL REFERENCES items (id))"));
  auto insert = db_->Prepare("INSERT INTO children (item_id) VALUES (?1)");
  ASSERT_TRUE(insert.has_value());
  ASSERT_TRUE(insert->Bind(1, std::int64_t{12345}));
  auto result = insert->Step();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(StatementTest, PrepareRejectsEmptyMultipleAndInvalidSql) {
  auto empty = db_->Prepare("  ");
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  auto two = db_->Prepare("SELECT 1; DELETE FROM items");
  ASSERT_FALSE(two.has_value());
  EXPECT_EQ(two.error().code(), ErrorCode::kInvalidArgument);
  auto unknown_table = db_->Prepare("SELECT * FROM no_such_table");
  ASSERT_FALSE(unknown_table.has_value());
  EXPECT_EQ(unknown_table.error().code(), ErrorCode::kDatabase);
  EXPECT_TRUE(db_->Prepare("SELECT 1;  ").has_value());
}

TEST_F(StatementTest, BindingAMissingParameterFails) {
  auto statement = db_->Prepare("SELECT ?1");
  ASSERT_TRUE(statement.has_value());
  EXPECT_FALSE(statement->Bind(2, 7).has_value());
}

TEST_F(StatementTest, MovedFromStatementFailsInsteadOfCrashing) {
  auto statement = db_->Prepare("SELECT 1");
  ASSERT_TRUE(statement.has_value());
  Statement moved = std::move(statement).value();
  Statement& empty = *statement;  // NOLINT(bugprone-use-after-move): testing exactly that
  EXPECT_FALSE(empty.Bind(1, 1).has_value());
  EXPECT_FALSE(empty.Step().has_value());
  EXPECT_EQ(empty.ColumnCount(), 0);
  EXPECT_TRUE(moved.Step().value_or(false));
}

TEST_F(StatementTest, TransactionRollsBackWhenNotCommitted) {
  {
    auto transaction = db_->Begin();
    ASSERT_TRUE(transaction.has_value());
    ASSERT_TRUE(InsertName("lost"));
    EXPECT_EQ(ItemCount(), 1);
  }
  EXPECT_EQ(ItemCount(), 0);
  Reopen();
  EXPECT_EQ(ItemCount(), 0);
}

TEST_F(StatementTest, CommittedTransactionSurvivesReopen) {
  {
    auto transaction = db_->Begin();
    ASSERT_TRUE(transaction.has_value());
    ASSERT_TRUE(InsertName("kept"));
    ASSERT_TRUE(transaction->Commit());
    auto again = transaction->Commit();
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code(), ErrorCode::kInvalidArgument);
  }
  Reopen();
  EXPECT_EQ(ItemCount(), 1);
}

TEST_F(StatementTest, ExplicitRollbackDiscardsTheChanges) {
  auto transaction = db_->Begin();
  ASSERT_TRUE(transaction.has_value());
  ASSERT_TRUE(InsertName("discarded"));
  ASSERT_TRUE(transaction->Rollback());
  EXPECT_FALSE(transaction->Commit().has_value());
  EXPECT_EQ(ItemCount(), 0);
}

TEST_F(StatementTest, MovedTransactionRollsBackOnlyOnce) {
  {
    auto begun = db_->Begin();
    ASSERT_TRUE(begun.has_value());
    Transaction outer = std::move(begun).value();
    ASSERT_TRUE(InsertName("moved"));
    Transaction inner = std::move(outer);
    ASSERT_TRUE(inner.Commit());
  }  // the moved-from `outer` must not roll anything back
  EXPECT_EQ(ItemCount(), 1);
}

TEST_F(StatementTest, SecondBeginWhileATransactionIsOpenFails) {
  auto first = db_->Begin();
  ASSERT_TRUE(first.has_value());
  auto second = db_->Begin();
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kDatabase);
  EXPECT_TRUE(first->Commit());
}

// Migrations that only work in order: each one needs the table of the one before.
constexpr Migration kMigrations[] = {
    {1, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
    {2,
     "ALTER TABLE people ADD COLUMN email TEXT;"
     "INSERT INTO people (name) VALUES ('seeded by migration 2')"},
    {3, "CREATE INDEX people_by_email ON people (email)"},
};

TEST_F(StatementTest, MigrationsApplyOnceInOrder) {
  ASSERT_EQ(UserVersion(), 0);
  auto migrated = db_->Migrate(kMigrations);
  ASSERT_TRUE(migrated.has_value()) << migrated.error().context();
  EXPECT_EQ(UserVersion(), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM people"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name = 'people_by_email'"), 1);

  ASSERT_TRUE(db_->Migrate(kMigrations));  // again on the same connection: nothing to do
  Reopen();
  ASSERT_TRUE(db_->Migrate(kMigrations));  // and after reopening
  EXPECT_EQ(UserVersion(), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM people"), 1);
}

TEST_F(StatementTest, MigrationsResumeFromTheStoredVersion) {
  ASSERT_TRUE(db_->Migrate(std::span(kMigrations).first(1)));
  EXPECT_EQ(UserVersion(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM people"), 0);
  ASSERT_TRUE(db_->Migrate(kMigrations));
  EXPECT_EQ(UserVersion(), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM people"), 1);
}

TEST_F(StatementTest, StoreFromTheFutureIsRefused) {
  ASSERT_TRUE(db_->Migrate(kMigrations));
  auto older_code = db_->Migrate(std::span(kMigrations).first(2));
  ASSERT_FALSE(older_code.has_value());
  EXPECT_EQ(older_code.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(UserVersion(), 3);
}

TEST_F(StatementTest, FailingMigrationLeavesUserVersionAndSchemaUnchanged) {
  const Migration broken[] = {
      kMigrations[0],
      {2,
       "CREATE TABLE half_done (x);"
       "INSERT INTO no_such_table VALUES (1)"},
      {3, "CREATE TABLE never (x)"},
  };
  auto migrated = db_->Migrate(broken);
  ASSERT_FALSE(migrated.has_value());
  EXPECT_EQ(UserVersion(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name = 'people'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM sqlite_master WHERE name = 'never'"), 0);
  // A fixed list then applies from where the broken one stopped.
  ASSERT_TRUE(db_->Migrate(kMigrations));
  EXPECT_EQ(UserVersion(), 3);
}

TEST_F(StatementTest, MigrationListMustBeStrictlyIncreasing) {
  const Migration unordered[] = {kMigrations[1], kMigrations[0]};
  const Migration duplicated[] = {kMigrations[0], kMigrations[0]};
  const Migration zero[] = {{0, "CREATE TABLE z (x)"}};
  for (const auto list :
       {std::span<const Migration>(unordered), std::span<const Migration>(duplicated),
        std::span<const Migration>(zero)}) {
    auto migrated = db_->Migrate(list);
    ASSERT_FALSE(migrated.has_value());
    EXPECT_EQ(migrated.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(UserVersion(), 0);
}

}  // namespace
}  // namespace coffre::storage
