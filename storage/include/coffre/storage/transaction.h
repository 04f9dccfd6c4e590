// A write transaction that rolls back unless it is committed.
#ifndef COFFRE_STORAGE_TRANSACTION_H_
#define COFFRE_STORAGE_TRANSACTION_H_

#include "coffre/base/result.h"
#include "coffre/storage/sqlite_handle.h"

namespace coffre::storage {

class Database;

// Made by Database::Begin, which has already run BEGIN IMMEDIATE: the write lock is taken
// at once, so a second writer waits (busy timeout) at Begin instead of failing half way
// through its work. Move-only. The destructor rolls back unless Commit succeeded, so an
// early return on an error path can never leave a half-written change behind.
//
// A Transaction must be used from the Database's thread and must not outlive it. Only one
// can be open per Database at a time (SQLite has no nested BEGIN).
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  // Rolls back the transaction this object held, if any, before taking over `other`'s.
  Transaction& operator=(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Commits. On success the transaction is finished and the destructor does nothing. On
  // failure, if SQLite still holds the transaction open the destructor (or Rollback) rolls
  // it back; if SQLite already rolled it back itself the object is finished. Fails with
  // kInvalidArgument if the transaction is already finished.
  Status Commit();
  // Rolls back now rather than at destruction. Fails with kInvalidArgument if the
  // transaction is already finished.
  Status Rollback();

 private:
  friend class Database;
  explicit Transaction(sqlite3* db);

  // Not owned: the connection of the Database that began the transaction. Null once the
  // transaction is finished or moved from.
  sqlite3* db_;
};

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_TRANSACTION_H_
