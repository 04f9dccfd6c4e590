// Error values shared by every module: no exception crosses a module edge.
//
// Result<T> follows the member names of C++23 std::expected (has_value, value, error,
// value_or, operator*, operator->) so it can be replaced by it once the toolchain has it.
#ifndef COFFRE_BASE_RESULT_H_
#define COFFRE_BASE_RESULT_H_

#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace coffre {

// Stable error codes. A code says what kind of failure happened, never which secret check
// failed: every decryption or verification failure is kAuthenticationFailed.
enum class ErrorCode : std::uint16_t {
  kInvalidArgument = 1,        // caller passed something malformed (size, format, range)
  kAuthenticationFailed = 2,   // a MAC, AEAD tag or signature did not verify
  kWrongPassphrase = 3,        // wrong passphrase or not a Coffre store
  kNotFound = 4,               // the record asked for does not exist
  kAlreadyExists = 5,          // a record with that identity is already there
  kReplay = 6,                 // a message already seen, or older than one seen
  kUntrustedIdentity = 7,      // a peer identity key that is not the trusted one
  kCorrupt = 8,                // stored data that fails its own format checks
  kIo = 9,                     // the operating system refused a file operation
  kDatabase = 10,              // the database engine reported an error
  kUnsupported = 11,           // a format version or feature we do not handle
  kInternal = 12,              // a library failed in a way that is our bug or theirs
  kConflict = 13,              // compare-and-swap lost: someone else wrote first
  kResourceExhausted = 14,     // a limit, quota or memory allocation failed
};

// Returns the stable spelling of a code, for logs and error lines.
constexpr std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kAuthenticationFailed: return "authentication_failed";
    case ErrorCode::kWrongPassphrase: return "wrong_passphrase";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kReplay: return "replay";
    case ErrorCode::kUntrustedIdentity: return "untrusted_identity";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kDatabase: return "database";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kResourceExhausted: return "resource_exhausted";
  }
  return "unknown";
}

// An error: a code and a static context sentence. The context is a string literal (or
// other storage with static lifetime) so an Error is cheap, cannot carry user data by
// accident, and is safe to log.
class Error {
 public:
  constexpr Error(ErrorCode code, const char* context) : code_(code), context_(context) {}

  constexpr ErrorCode code() const { return code_; }
  constexpr std::string_view context() const { return context_; }

 private:
  ErrorCode code_;
  const char* context_;
};

// Marker used to build a failed Result from an Error without ambiguity.
struct Unexpected {
  Error error;
};
constexpr Unexpected Fail(ErrorCode code, const char* context) {
  return Unexpected{Error(code, context)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Unexpected failure) : state_(std::in_place_index<1>, failure.error) {}  // NOLINT
  Result(Error error) : state_(std::in_place_index<1>, error) {}  // NOLINT

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  // value(), operator* and operator-> require has_value(); calling them on an error is a
  // programming error and aborts rather than reading garbage.
  T& value() & { return *Checked(); }
  const T& value() const& { return *Checked(); }
  T&& value() && { return std::move(*Checked()); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*Checked()); }
  T* operator->() { return Checked(); }
  const T* operator->() const { return Checked(); }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
  }

  // Requires !has_value().
  const Error& error() const {
    if (has_value()) std::abort();
    return std::get<1>(state_);
  }

 private:
  T* Checked() {
    if (!has_value()) std::abort();
    return &std::get<0>(state_);
  }
  const T* Checked() const {
    if (!has_value()) std::abort();
    return &std::get<0>(state_);
  }

  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  Result() = default;
  Result(Unexpected failure) : error_(failure.error), ok_(false) {}  // NOLINT
  Result(Error error) : error_(error), ok_(false) {}  // NOLINT

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {
    if (!ok_) std::abort();
  }
  const Error& error() const {
    if (ok_) std::abort();
    return error_;
  }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;
inline Status Ok() { return {}; }

}  // namespace coffre

// Evaluates a Result-returning expression and returns its error from the enclosing
// function when it failed.
#define COFFRE_RETURN_IF_ERROR(expr)                      \
  do {                                                    \
    if (auto coffre_status_ = (expr); !coffre_status_) {  \
      return coffre_status_.error();                      \
    }                                                     \
  } while (false)

#define COFFRE_CONCAT_INNER_(a, b) a##b
#define COFFRE_CONCAT_(a, b) COFFRE_CONCAT_INNER_(a, b)

// COFFRE_ASSIGN_OR_RETURN(auto x, Expr()): binds the value or returns the error.
#define COFFRE_ASSIGN_OR_RETURN(lhs, expr) \
  COFFRE_ASSIGN_OR_RETURN_IMPL_(COFFRE_CONCAT_(coffre_result_, __LINE__), lhs, expr)
#define COFFRE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp) return tmp.error();                       \
  lhs = std::move(tmp).value()

#endif  // COFFRE_BASE_RESULT_H_
