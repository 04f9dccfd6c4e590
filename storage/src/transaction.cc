#include "coffre/storage/transaction.h"

#include <sqlite3.h>

#include <utility>

namespace coffre::storage {
namespace {

constexpr const char* kFinished = "database: transaction already finished";

// ROLLBACK when SQLite still has a transaction open. SQLite rolls back by itself after some
// errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM); a second ROLLBACK would then only fail.
int RollbackIfOpen(sqlite3* db) {
  if (sqlite3_get_autocommit(db) != 0) return SQLITE_OK;
  return sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
}

}  // namespace

Transaction::Transaction(sqlite3* db) : db_(db) {}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) (void)RollbackIfOpen(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Transaction::~Transaction() {
  // A destructor cannot report a failure; a ROLLBACK that fails leaves SQLite to roll back
  // when the connection closes, and the change was never committed either way.
  if (db_ != nullptr) (void)RollbackIfOpen(db_);
}

Status Transaction::Commit() {
  if (db_ == nullptr) return Fail(ErrorCode::kInvalidArgument, kFinished);
  const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    // Still open (e.g. SQLITE_BUSY): keep db_ so the destructor rolls back. Already rolled
    // back by SQLite: nothing is left to do.
    if (sqlite3_get_autocommit(db_) != 0) db_ = nullptr;
    return internal::SqliteError(rc, "database: COMMIT failed");
  }
  db_ = nullptr;
  return Ok();
}

Status Transaction::Rollback() {
  if (db_ == nullptr) return Fail(ErrorCode::kInvalidArgument, kFinished);
  const int rc = RollbackIfOpen(std::exchange(db_, nullptr));
  if (rc != SQLITE_OK) return internal::SqliteError(rc, "database: ROLLBACK failed");
  return Ok();
}

}  // namespace coffre::storage
