#include "coffre/storage/statement.h"

#include <sqlite3.h>

#include <cstring>
#include <utility>

namespace coffre::storage {
namespace {

constexpr const char* kEmptyStatement = "database: statement is empty (moved from)";

// SQLITE_TRANSIENT is a macro that casts -1 to a function pointer; naming it once keeps
// that cast in one place.
sqlite3_destructor_type Transient() { return SQLITE_TRANSIENT; }

// A column's bytes: SQLite returns a null pointer for NULL and for an empty value.
std::span<const std::uint8_t> ColumnBytes(sqlite3_stmt* statement, int column) {
  // sqlite3_column_blob must come before sqlite3_column_bytes (SQLite's documented order),
  // so the size is that of the blob form.
  const void* data = sqlite3_column_blob(statement, column);
  const int size = sqlite3_column_bytes(statement, column);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const std::uint8_t*>(data), static_cast<std::size_t>(size)};
}

}  // namespace

Statement::Statement(internal::StatementHandle statement) : statement_(std::move(statement)) {}

Status Statement::Bind(int index, std::int64_t value) {
  if (!statement_) return Fail(ErrorCode::kInvalidArgument, kEmptyStatement);
  const int rc = sqlite3_bind_int64(statement_.get(), index, value);
  if (rc != SQLITE_OK) return internal::SqliteError(rc, "database: cannot bind an integer");
  return Ok();
}

Status Statement::Bind(int index, int value) { return Bind(index, std::int64_t{value}); }

Status Statement::Bind(int index, std::span<const std::uint8_t> blob) {
  if (!statement_) return Fail(ErrorCode::kInvalidArgument, kEmptyStatement);
  // A null data pointer would bind NULL rather than an empty blob.
  const int rc = blob.empty() ? sqlite3_bind_zeroblob(statement_.get(), index, 0)
                              : sqlite3_bind_blob64(statement_.get(), index, blob.data(),
                                                    blob.size(), Transient());
  if (rc != SQLITE_OK) return internal::SqliteError(rc, "database: cannot bind a blob");
  return Ok();
}

Status Statement::Bind(int index, std::string_view text) {
  if (!statement_) return Fail(ErrorCode::kInvalidArgument, kEmptyStatement);
  // Same reason as for blobs: "" must stay an empty text, not NULL.
  const char* data = text.empty() ? "" : text.data();
  const int rc =
      sqlite3_bind_text64(statement_.get(), index, data, text.size(), Transient(), SQLITE_UTF8);
  if (rc != SQLITE_OK) return internal::SqliteError(rc, "database: cannot bind a text");
  return Ok();
}

Status Statement::Bind(int index, std::nullptr_t) {
  if (!statement_) return Fail(ErrorCode::kInvalidArgument, kEmptyStatement);
  const int rc = sqlite3_bind_null(statement_.get(), index);
  if (rc != SQLITE_OK) return internal::SqliteError(rc, "database: cannot bind NULL");
  return Ok();
}

Status Statement::BindSecret(int index, const crypto::SecretBytes& secret) {
  return Bind(index, secret.span());
}

Result<bool> Statement::Step() {
  if (!statement_) return Fail(ErrorCode::kInvalidArgument, kEmptyStatement);
  const int rc = sqlite3_step(statement_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return internal::SqliteError(rc, "database: statement failed");
}

int Statement::ColumnCount() const {
  return statement_ ? sqlite3_column_count(statement_.get()) : 0;
}

std::int64_t Statement::ColumnInt64(int column) const {
  return statement_ ? sqlite3_column_int64(statement_.get(), column) : 0;
}

bool Statement::ColumnIsNull(int column) const {
  return !statement_ || sqlite3_column_type(statement_.get(), column) == SQLITE_NULL;
}

std::vector<std::uint8_t> Statement::ColumnBlob(int column) const {
  if (!statement_) return {};
  const auto bytes = ColumnBytes(statement_.get(), column);
  return {bytes.begin(), bytes.end()};
}

crypto::SecretBytes Statement::ColumnSecret(int column) const {
  if (!statement_) return {};
  return crypto::SecretBytes::CopyOf(ColumnBytes(statement_.get(), column));
}

std::string Statement::ColumnText(int column) const {
  if (!statement_) return {};
  // sqlite3_column_text before sqlite3_column_bytes, so the size is that of the UTF-8 form.
  const unsigned char* data = sqlite3_column_text(statement_.get(), column);
  const int size = sqlite3_column_bytes(statement_.get(), column);
  if (data == nullptr || size <= 0) return {};
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
}

void Statement::Reset() {
  if (!statement_) return;
  // sqlite3_reset returns the last step's error again; Step already reported it.
  (void)sqlite3_reset(statement_.get());
  (void)sqlite3_clear_bindings(statement_.get());
}

}  // namespace coffre::storage
