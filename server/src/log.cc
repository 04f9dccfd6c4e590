#include "log.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace coffre::server {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};

std::mutex& SinkMutex() {
  static std::mutex mutex;
  return mutex;
}

std::function<void(std::string_view)>& Sink() {
  static std::function<void(std::string_view)> sink;
  return sink;
}

// RFC 3339 UTC with milliseconds: sortable, and the same in every time zone.
void AppendTime(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  const int n = std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                              utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                              utc.tm_min, utc.tm_sec, static_cast<int>(millis % 1000));
  if (n > 0) out.append(buffer, static_cast<std::size_t>(n));
}

void AppendValue(std::string& out, const LogField::Value& value) {
  char buffer[40];
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    const int n = std::snprintf(buffer, sizeof(buffer), "%lld", static_cast<long long>(*i));
    out.append(buffer, static_cast<std::size_t>(n));
  } else if (const auto* u = std::get_if<std::uint64_t>(&value)) {
    const int n =
        std::snprintf(buffer, sizeof(buffer), "%llu", static_cast<unsigned long long>(*u));
    out.append(buffer, static_cast<std::size_t>(n));
  } else if (const auto* d = std::get_if<double>(&value)) {
    // JSON has no NaN or infinity.
    if (!std::isfinite(*d)) {
      out += "null";
    } else {
      const int n = std::snprintf(buffer, sizeof(buffer), "%.6g", *d);
      out.append(buffer, static_cast<std::size_t>(n));
    }
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out += *b ? "true" : "false";
  } else if (const auto* s = std::get_if<std::string_view>(&value)) {
    out += '"';
    AppendJsonEscaped(out, *s);
    out += '"';
  }
}

}  // namespace

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return std::nullopt;
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }

bool LogEnabled(LogLevel level) {
  return static_cast<std::uint8_t>(level) >=
         static_cast<std::uint8_t>(g_level.load(std::memory_order_relaxed));
}

void AppendJsonEscaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0x0f];
        } else {
          out += c;
        }
    }
  }
}

std::string FormatLogLine(LogLevel level, std::string_view event,
                          std::initializer_list<LogField> fields) {
  std::string line;
  line.reserve(128);
  line += "{\"time\":\"";
  AppendTime(line);
  line += "\",\"level\":\"";
  line += LogLevelName(level);
  line += "\",\"event\":\"";
  AppendJsonEscaped(line, event);
  line += '"';
  for (const LogField& field : fields) {
    line += ",\"";
    AppendJsonEscaped(line, field.key);
    line += "\":";
    AppendValue(line, field.value);
  }
  line += '}';
  return line;
}

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  try {
    std::string line = FormatLogLine(level, event, fields);
    std::lock_guard<std::mutex> lock(SinkMutex());
    if (Sink()) {
      Sink()(line);
      return;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  } catch (...) {
    // Out of memory while logging: drop the line rather than the process.
  }
}

void SetLogSink(std::function<void(std::string_view line)> sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  Sink() = std::move(sink);
}

}  // namespace coffre::server
