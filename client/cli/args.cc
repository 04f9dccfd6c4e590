#include "cli/args.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

namespace coffre::cli {
namespace {

constexpr std::size_t kMaxLoginLength = 64;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::size_t kMaxFileNameLength = 200;

constexpr const char* kBadSince =
    "expected a UTC date (2026-11-28), a date-time (2026-11-28T14:00Z) or a duration (30m, "
    "2h, 7d)";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Reads exactly `count` decimal digits at `pos`, advancing it.
std::optional<unsigned> ReadDigits(std::string_view text, std::size_t& pos, std::size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  unsigned value = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = text[pos + i];
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  pos += count;
  return value;
}

bool Expect(std::string_view text, std::size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

Result<std::uint64_t> ParseDuration(std::string_view text, std::uint64_t now_ms) {
  const char unit = text.back();
  std::uint64_t unit_ms = 0;
  switch (unit) {
    case 's':
      unit_ms = 1000;
      break;
    case 'm':
      unit_ms = 60 * 1000;
      break;
    case 'h':
      unit_ms = 60 * 60 * 1000;
      break;
    case 'd':
      unit_ms = 24 * 60 * 60 * 1000;
      break;
    case 'w':
      unit_ms = 7 * 24 * 60 * 60 * 1000;
      break;
    default:
      return Fail(ErrorCode::kInvalidArgument, kBadSince);
  }
  const std::string_view digits = text.substr(0, text.size() - 1);
  if (digits.empty() || digits.size() > 12) return Fail(ErrorCode::kInvalidArgument, kBadSince);
  std::uint64_t count = 0;
  for (const char c : digits) {
    if (!IsDigit(c)) return Fail(ErrorCode::kInvalidArgument, kBadSince);
    count = count * 10 + static_cast<std::uint64_t>(c - '0');
  }
  // 12 digits of weeks still fit 64 bits of milliseconds, but may reach before 1970.
  if (count > now_ms / unit_ms) {
    return Fail(ErrorCode::kInvalidArgument, "the duration reaches back before 1970");
  }
  return now_ms - count * unit_ms;
}

Result<std::uint64_t> ParseDateTime(std::string_view text) {
  using namespace std::chrono;
  std::size_t pos = 0;
  const auto year = ReadDigits(text, pos, 4);
  if (!year || !Expect(text, pos, '-')) return Fail(ErrorCode::kInvalidArgument, kBadSince);
  const auto month = ReadDigits(text, pos, 2);
  if (!month || !Expect(text, pos, '-')) return Fail(ErrorCode::kInvalidArgument, kBadSince);
  const auto day = ReadDigits(text, pos, 2);
  if (!day) return Fail(ErrorCode::kInvalidArgument, kBadSince);
  const year_month_day date{std::chrono::year{static_cast<int>(*year)}, std::chrono::month{*month},
                            std::chrono::day{*day}};
  if (!date.ok()) return Fail(ErrorCode::kInvalidArgument, "no such date");
  if (*year < 1970) return Fail(ErrorCode::kInvalidArgument, "dates before 1970 are refused");

  unsigned hour = 0;
  unsigned minute = 0;
  unsigned second = 0;
  long offset_minutes = 0;
  if (pos < text.size()) {
    if (text[pos] != 'T' && text[pos] != 't' && text[pos] != ' ') {
      return Fail(ErrorCode::kInvalidArgument, kBadSince);
    }
    ++pos;
    const auto h = ReadDigits(text, pos, 2);
    if (!h || !Expect(text, pos, ':')) return Fail(ErrorCode::kInvalidArgument, kBadSince);
    const auto m = ReadDigits(text, pos, 2);
    if (!m) return Fail(ErrorCode::kInvalidArgument, kBadSince);
    hour = *h;
    minute = *m;
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      const auto s = ReadDigits(text, pos, 2);
      if (!s) return Fail(ErrorCode::kInvalidArgument, kBadSince);
      second = *s;
    }
    if (hour > 23 || minute > 59 || second > 59) {
      return Fail(ErrorCode::kInvalidArgument, "no such time of day");
    }
    if (pos < text.size()) {
      const char zone = text[pos];
      if (zone == 'Z' || zone == 'z') {
        ++pos;
      } else if (zone == '+' || zone == '-') {
        ++pos;
        const auto oh = ReadDigits(text, pos, 2);
        if (!oh || !Expect(text, pos, ':')) return Fail(ErrorCode::kInvalidArgument, kBadSince);
        const auto om = ReadDigits(text, pos, 2);
        if (!om || *oh > 23 || *om > 59) return Fail(ErrorCode::kInvalidArgument, kBadSince);
        offset_minutes = static_cast<long>(*oh * 60 + *om);
        if (zone == '-') offset_minutes = -offset_minutes;
      } else {
        return Fail(ErrorCode::kInvalidArgument, kBadSince);
      }
    }
  }
  if (pos != text.size()) return Fail(ErrorCode::kInvalidArgument, kBadSince);

  // A local time of T at offset +HH:MM is T - offset in UTC.
  const auto instant =
      sys_days{date} + hours{hour} + minutes{minute} + seconds{second} - minutes{offset_minutes};
  const auto ms = duration_cast<milliseconds>(instant.time_since_epoch()).count();
  if (ms < 0) return Fail(ErrorCode::kInvalidArgument, "dates before 1970 are refused");
  return static_cast<std::uint64_t>(ms);
}

}  // namespace

bool IsValidLogin(std::string_view login) {
  if (login.empty() || login.size() > kMaxLoginLength) return false;
  return std::all_of(login.begin(), login.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || IsDigit(c) || c == '.' || c == '_' || c == '-';
  });
}

Status CheckLogin(std::string_view login) {
  if (IsValidLogin(login)) return Ok();
  return Fail(ErrorCode::kInvalidArgument,
              "a login is 1 to 64 characters among a-z, 0-9, '.', '_' and '-'");
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (name.front() == '@' || name.front() == '-' || name.front() == ' ' || name.back() == ' ') {
    return false;
  }
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return c == '/' || byte < 0x20 || byte == 0x7f;
  });
}

Status CheckName(std::string_view name) {
  if (IsValidName(name)) return Ok();
  return Fail(ErrorCode::kInvalidArgument,
              "a team or channel name is 1 to 64 bytes, without '/' or control characters, not "
              "starting with '@' or '-'");
}

Result<ChannelRef> ParseChannelRef(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || text.find('/', slash + 1) != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "expected TEAM/CHANNEL");
  }
  const std::string_view team = text.substr(0, slash);
  const std::string_view channel = text.substr(slash + 1);
  if (!IsValidName(team) || !IsValidName(channel)) {
    return Fail(ErrorCode::kInvalidArgument,
                "expected TEAM/CHANNEL, each 1 to 64 bytes without control characters");
  }
  return ChannelRef{std::string(team), std::string(channel)};
}

Result<ReadTarget> ParseReadTarget(std::string_view text) {
  ReadTarget target;
  if (!text.empty() && text.front() == '@') {
    const std::string_view login = text.substr(1);
    if (!IsValidLogin(login)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "expected @USER with a login of 1 to 64 characters among a-z, 0-9, '.', '_' "
                  "and '-'");
    }
    target.user = std::string(login);
    return target;
  }
  auto channel = ParseChannelRef(text);
  if (!channel) return Fail(ErrorCode::kInvalidArgument, "expected TEAM/CHANNEL or @USER");
  target.channel = std::move(*channel);
  return target;
}

Result<std::uint64_t> ParseSince(std::string_view text, std::uint64_t now_ms) {
  if (text.empty() || text.size() > 32) return Fail(ErrorCode::kInvalidArgument, kBadSince);
  // A date always has '-' at index 4; a duration is digits and one unit letter.
  if (text.size() >= 5 && text[4] == '-') return ParseDateTime(text);
  return ParseDuration(text, now_ms);
}

Result<std::uint32_t> ParseDeviceId(std::string_view text) {
  if (text.empty() || text.size() > 10 || !std::all_of(text.begin(), text.end(), IsDigit)) {
    return Fail(ErrorCode::kInvalidArgument, "a device id is a number, as `device list` shows");
  }
  std::uint64_t value = 0;
  for (const char c : text) value = value * 10 + static_cast<std::uint64_t>(c - '0');
  if (value > std::numeric_limits<std::uint32_t>::max()) {
    return Fail(ErrorCode::kInvalidArgument, "a device id is a number, as `device list` shows");
  }
  return static_cast<std::uint32_t>(value);
}

Result<std::uint64_t> ParseVersion(std::string_view text) {
  if (text.empty() || text.size() > 18 || !std::all_of(text.begin(), text.end(), IsDigit)) {
    return Fail(ErrorCode::kInvalidArgument, "a version is a number from 1");
  }
  std::uint64_t value = 0;
  for (const char c : text) value = value * 10 + static_cast<std::uint64_t>(c - '0');
  if (value == 0) return Fail(ErrorCode::kInvalidArgument, "a version is a number from 1");
  return value;
}

Result<std::string> ResolveIdPrefix(std::span<const std::string> known, std::string_view given) {
  if (given.empty() || !std::all_of(given.begin(), given.end(), IsHex)) {
    return std::string(given);
  }
  std::string lowered(given);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), LowerAscii);
  const std::string* found = nullptr;
  for (const std::string& id : known) {
    std::string candidate(id);
    std::transform(candidate.begin(), candidate.end(), candidate.begin(), LowerAscii);
    if (candidate == lowered) return id;
    if (candidate.size() > lowered.size() && candidate.compare(0, lowered.size(), lowered) == 0) {
      if (found != nullptr && *found != id) {
        return Fail(ErrorCode::kInvalidArgument, "ambiguous short id: give more digits");
      }
      found = &id;
    }
  }
  return found != nullptr ? *found : std::string(given);
}

Result<std::filesystem::path> ResolveProfileDir(std::string_view flag, const char* coffre_profile,
                                                const char* xdg_data_home, const char* home) {
  if (!flag.empty()) return std::filesystem::path(flag);
  if (coffre_profile != nullptr && *coffre_profile != '\0') {
    return std::filesystem::path(coffre_profile);
  }
  if (xdg_data_home != nullptr && *xdg_data_home == '/') {
    return std::filesystem::path(xdg_data_home) / "coffre";
  }
  if (home != nullptr && *home != '\0') {
    return std::filesystem::path(home) / ".local" / "share" / "coffre";
  }
  return Fail(ErrorCode::kInvalidArgument,
              "no profile folder: give --profile DIR or set COFFRE_PROFILE (HOME is not set)");
}

std::string SafeFileName(std::string_view name) {
  const auto slash = name.find_last_of('/');
  if (slash != std::string_view::npos) name = name.substr(slash + 1);
  std::string safe;
  safe.reserve(name.size());
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    safe.push_back((byte < 0x20 || byte == 0x7f || c == '\\') ? '_' : c);
  }
  if (safe.empty() || safe == "." || safe == "..") return "document";
  // A leading dot would make a hidden file, and a name chosen by someone else must not be
  // able to drop a .bashrc or .profile into the folder the command runs in.
  if (safe.front() == '.') safe.front() = '_';
  // File systems take 255 bytes; cut on a UTF-8 character boundary.
  if (safe.size() > kMaxFileNameLength) {
    std::size_t cut = kMaxFileNameLength;
    while (cut > 0 && (static_cast<unsigned char>(safe[cut]) & 0xc0) == 0x80) --cut;
    safe.resize(cut);
  }
  return safe;
}

}  // namespace coffre::cli
