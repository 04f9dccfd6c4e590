#include "coffre/storage/sqlite_handle.h"

#include <sqlite3.h>

namespace coffre::storage::internal {

void CloseConnection(sqlite3* db) {
  // sqlite3_close_v2 only fails on a bad handle; there is nothing to do about it here.
  (void)sqlite3_close_v2(db);
}

void FinalizeStatement(sqlite3_stmt* statement) {
  // The return value repeats the last step's error, already reported by Statement::Step.
  (void)sqlite3_finalize(statement);
}

Error SqliteError(int result_code, const char* context) {
  switch (result_code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Error(ErrorCode::kAlreadyExists, "database: UNIQUE constraint violated");
    default:
      break;
  }
  switch (result_code & 0xff) {
    case SQLITE_CONSTRAINT:
      return Error(ErrorCode::kInvalidArgument,
                   "database: NOT NULL, CHECK or FOREIGN KEY constraint violated");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error(ErrorCode::kCorrupt, "database: file is corrupt");
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return Error(ErrorCode::kIo, "database: I/O error, disk full or file not writable");
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return Error(ErrorCode::kResourceExhausted, "database: out of memory or value too big");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(ErrorCode::kDatabase,
                   "database: locked by another connection beyond the busy timeout");
    default:
      return Error(ErrorCode::kDatabase, context);
  }
}

}  // namespace coffre::storage::internal
