// A prepared SQL statement with bound parameters: the only way storage/ passes values to
// SQL. SQL text is always a fixed string in the program; values go through Bind, so no
// value can ever change the meaning of a statement (STYLE.md, habit 6).
#ifndef COFFRE_STORAGE_STATEMENT_H_
#define COFFRE_STORAGE_STATEMENT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/storage/sqlite_handle.h"

namespace coffre::storage {

class Database;

// Owns one sqlite3_stmt. Move-only; a moved-from Statement is empty and every call on it
// fails with kInvalidArgument (getters return zero values).
//
// Threading and lifetime: a Statement belongs to the Database that prepared it, is used by
// the same single thread as that Database, and must not be used after the Database is
// destroyed. Destroying it afterwards is safe: SQLite keeps the closed connection
// allocated until its last statement is finalized.
//
// Parameter indexes start at 1 and column indexes at 0, as in SQLite.
class Statement {
 public:
  Statement(Statement&& other) noexcept = default;
  Statement& operator=(Statement&& other) noexcept = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() = default;

  // Bind a value to parameter `index`. The bytes are copied (SQLITE_TRANSIENT), so the
  // argument may be destroyed right after the call. Fail with kDatabase (SQLITE_RANGE) for
  // an index the statement does not have, or kResourceExhausted for an oversized value.
  // An empty blob or text binds an empty value, never NULL.
  Status Bind(int index, std::int64_t value);
  // Plain `int` so that integer literals (Bind(1, 0)) are not ambiguous with nullptr.
  Status Bind(int index, int value);
  Status Bind(int index, std::span<const std::uint8_t> blob);
  Status Bind(int index, std::string_view text);
  Status Bind(int index, std::nullptr_t);
  // Binds a secret as a blob. SQLite keeps its own copy until the statement is reset or
  // finalized; that copy is not wiped, which is acceptable only because the database pages
  // on disk are encrypted. Prefer short-lived statements for secrets.
  Status BindSecret(int index, const crypto::SecretBytes& secret);

  // Runs the statement one step. Returns true when a row is available through the column
  // getters, false when the statement has finished. Fails with an error from
  // internal::SqliteError (kAlreadyExists for a UNIQUE violation); after a failure, call
  // Reset before using the statement again.
  Result<bool> Step();

  // Number of columns in the result rows (0 for statements that return none).
  int ColumnCount() const;
  // Column getters read the current row (only valid after Step returned true). SQLite
  // converts between types as it documents: NULL reads as 0, an empty blob or "".
  std::int64_t ColumnInt64(int column) const;
  bool ColumnIsNull(int column) const;
  std::vector<std::uint8_t> ColumnBlob(int column) const;
  // The column's bytes copied straight into a SecretBytes, never through a plain buffer.
  crypto::SecretBytes ColumnSecret(int column) const;
  std::string ColumnText(int column) const;

  // Rewinds the statement so it can run again and clears every binding, so a value from
  // one use can never leak into the next. Any error of the last step was already reported
  // by Step and is not repeated.
  void Reset();

 private:
  friend class Database;
  explicit Statement(internal::StatementHandle statement);

  internal::StatementHandle statement_;
};

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_STATEMENT_H_
