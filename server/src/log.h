// Structured logs: one JSON object per line on stderr, {"time","level","event",...fields}.
//
// Logs are read by operators and shipped to log stores the relay does not control, so they
// carry only operational facts: event names, connection ids, error codes, sizes, durations.
// Never keys, tokens, content, user names, team names, document names or client addresses
// (DESIGN.md "Relay", STYLE.md habit 10). Field values are therefore numbers, booleans and
// short strings chosen by the relay's own code, not copied from requests.
#ifndef COFFRE_SERVER_SRC_LOG_H_
#define COFFRE_SERVER_SRC_LOG_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace coffre::server {

enum class LogLevel : std::uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error" -> level; anything else -> nullopt.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
std::string_view LogLevelName(LogLevel level);

// Lines below `level` are dropped. Thread-safe; the default is kInfo.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// One field of a log line. The string alternative is escaped as JSON; it must not hold
// user data (see the file comment).
struct LogField {
  using Value = std::variant<std::int64_t, std::uint64_t, double, bool, std::string_view>;

  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, int v) : key(k), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view k, long v) : key(k), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view k, long long v) : key(k), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view k, unsigned v) : key(k), value(static_cast<std::uint64_t>(v)) {}
  LogField(std::string_view k, unsigned long v) : key(k), value(static_cast<std::uint64_t>(v)) {}
  LogField(std::string_view k, unsigned long long v)
      : key(k), value(static_cast<std::uint64_t>(v)) {}

  std::string_view key;
  Value value;
};

// Writes one line if `level` is enabled. Thread-safe: lines from different threads never
// interleave. Never throws; a failed write to stderr is ignored (logging must not take the
// relay down).
void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});

// Formats the line Log would write (without the trailing newline), for tests and sinks.
std::string FormatLogLine(LogLevel level, std::string_view event,
                          std::initializer_list<LogField> fields);

// Replaces stderr as the destination of log lines (each without its newline); an empty
// function restores stderr. For tests.
void SetLogSink(std::function<void(std::string_view line)> sink);

// Appends `text` to `out` as the inside of a JSON string (quotes not included).
void AppendJsonEscaped(std::string& out, std::string_view text);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_LOG_H_
