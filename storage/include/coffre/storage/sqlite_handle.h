// Owners for SQLCipher's C handles, shared by Database, Statement and Transaction.
//
// SQLCipher's <sqlite3.h> stays private to storage/ (it must never meet a plain SQLite
// header in another module, PITFALLS §1), so the handle types are only forward declared
// here and the functions that free them are defined in storage/src/sqlite_handle.cc.
// Everything in namespace internal is not API: other modules use Database, Statement and
// Transaction.
#ifndef COFFRE_STORAGE_SQLITE_HANDLE_H_
#define COFFRE_STORAGE_SQLITE_HANDLE_H_

#include "coffre/base/result.h"
#include "coffre/base/unique_handle.h"

// The same incomplete types that <sqlite3.h> declares with `typedef struct sqlite3 sqlite3`.
struct sqlite3;
struct sqlite3_stmt;

namespace coffre::storage::internal {

// Closes a connection with sqlite3_close_v2: if a Statement still exists the connection
// becomes a zombie that SQLite frees with the last statement, so a forgotten Statement
// cannot turn into a use-after-free. Also used for a handle from a failed sqlite3_open_v2,
// which SQLite requires to be closed too.
void CloseConnection(sqlite3* db);
// Finalizes a prepared statement. Safe on a statement whose last step failed.
void FinalizeStatement(sqlite3_stmt* statement);

using ConnectionHandle = UniqueHandle<sqlite3, CloseConnection>;
using StatementHandle = UniqueHandle<sqlite3_stmt, FinalizeStatement>;

// Maps an SQLite result code (extended codes accepted) to our Error. `context` must be a
// string literal; it is used for the codes that have no mapping of their own:
//   UNIQUE or PRIMARY KEY constraint      -> kAlreadyExists
//   other constraints (NOT NULL, CHECK, FOREIGN KEY) -> kInvalidArgument
//   CORRUPT, NOTADB (after a successful open) -> kCorrupt
//   IOERR, FULL, CANTOPEN, PERM, READONLY  -> kIo
//   NOMEM, TOOBIG                           -> kResourceExhausted
//   BUSY, LOCKED (busy timeout expired)     -> kDatabase, context says "locked"
//   anything else                           -> kDatabase with `context`
// The SQLite message text is deliberately dropped: it can quote SQL and, through
// constraint messages, schema names; Error contexts must be safe to log.
Error SqliteError(int result_code, const char* context);

}  // namespace coffre::storage::internal

#endif  // COFFRE_STORAGE_SQLITE_HANDLE_H_
