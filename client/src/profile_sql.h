// Small helpers over storage::Statement for the profile's own tables: bind a list of
// values in order, run, read rows. Private to the client library.
#ifndef COFFRE_CLIENT_SRC_PROFILE_SQL_H_
#define COFFRE_CLIENT_SRC_PROFILE_SQL_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/storage/database.h"
#include "coffre/storage/statement.h"

namespace coffre::client::sql {

inline Status BindOne(storage::Statement& s, int index, std::int64_t v) { return s.Bind(index, v); }
inline Status BindOne(storage::Statement& s, int index, std::uint64_t v) {
  if (v > static_cast<std::uint64_t>(INT64_MAX)) {
    return Fail(ErrorCode::kInvalidArgument, "profile: value out of range");
  }
  return s.Bind(index, static_cast<std::int64_t>(v));
}
inline Status BindOne(storage::Statement& s, int index, std::uint32_t v) {
  return s.Bind(index, std::int64_t{v});
}
inline Status BindOne(storage::Statement& s, int index, int v) { return s.Bind(index, v); }
inline Status BindOne(storage::Statement& s, int index, bool v) { return s.Bind(index, v ? 1 : 0); }
inline Status BindOne(storage::Statement& s, int index, std::string_view v) {
  return s.Bind(index, v);
}
inline Status BindOne(storage::Statement& s, int index, const std::string& v) {
  return s.Bind(index, std::string_view(v));
}
inline Status BindOne(storage::Statement& s, int index, const char* v) {
  return s.Bind(index, std::string_view(v));
}
inline Status BindOne(storage::Statement& s, int index, std::span<const std::uint8_t> v) {
  return s.Bind(index, v);
}
inline Status BindOne(storage::Statement& s, int index, const std::vector<std::uint8_t>& v) {
  return s.Bind(index, std::span<const std::uint8_t>(v));
}
template <std::size_t N>
Status BindOne(storage::Statement& s, int index, const std::array<std::uint8_t, N>& v) {
  return s.Bind(index, std::span<const std::uint8_t>(v));
}
inline Status BindOne(storage::Statement& s, int index, const crypto::SecretBytes& v) {
  return s.BindSecret(index, v);
}
inline Status BindOne(storage::Statement& s, int index, std::nullptr_t) {
  return s.Bind(index, nullptr);
}
template <typename T>
Status BindOne(storage::Statement& s, int index, const std::optional<T>& v) {
  if (!v) return s.Bind(index, nullptr);
  return BindOne(s, index, *v);
}

template <typename... Args>
Result<storage::Statement> Prepared(storage::Database& db, const char* text, const Args&... args) {
  COFFRE_ASSIGN_OR_RETURN(storage::Statement statement, db.Prepare(text));
  int index = 0;
  Status status = Ok();
  ((status = status ? BindOne(statement, ++index, args) : status), ...);
  if (!status) return status.error();
  return statement;
}

// Runs a statement that returns no rows.
template <typename... Args>
Status Run(storage::Database& db, const char* text, const Args&... args) {
  COFFRE_ASSIGN_OR_RETURN(storage::Statement statement, Prepared(db, text, args...));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, statement.Step());
    if (!row) return Ok();
  }
}

// The first column of the first row as an integer, or nullopt without a row.
template <typename... Args>
Result<std::optional<std::int64_t>> QueryInt(storage::Database& db, const char* text,
                                             const Args&... args) {
  COFFRE_ASSIGN_OR_RETURN(storage::Statement statement, Prepared(db, text, args...));
  COFFRE_ASSIGN_OR_RETURN(const bool row, statement.Step());
  if (!row || statement.ColumnIsNull(0)) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(statement.ColumnInt64(0));
}

inline std::uint64_t AsU64(std::int64_t v) { return v < 0 ? 0 : static_cast<std::uint64_t>(v); }
inline std::uint32_t AsU32(std::int64_t v) {
  return v < 0 || v > INT64_C(0xFFFFFFFF) ? 0 : static_cast<std::uint32_t>(v);
}

}  // namespace coffre::client::sql

#endif  // COFFRE_CLIENT_SRC_PROFILE_SQL_H_
