// Checks and parsers for the `coffre` command line's arguments, kept apart from main.cc so
// that they are unit-tested (tests/client/cli_test.cc).
//
// Every failure is kInvalidArgument with a static sentence; the caller adds the argument
// itself to the error line, so the sentence never carries user data.
#ifndef COFFRE_CLIENT_CLI_ARGS_H_
#define COFFRE_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "coffre/base/result.h"

namespace coffre::cli {

// A login: 1..64 characters of [a-z0-9._-] (the rule of client.h's InitOptions::user_id).
bool IsValidLogin(std::string_view login);
Status CheckLogin(std::string_view login);

// A team or channel name as this profile knows it: 1..64 bytes, no '/' (it separates team
// and channel), no control character, no leading '@' (it marks a user in `read @USER`),
// no leading '-' (it would read as an option) and no leading or trailing space. Bytes of
// UTF-8 sequences are allowed: "équipe-nord" is a fine name.
bool IsValidName(std::string_view name);
Status CheckName(std::string_view name);

struct ChannelRef {
  std::string team;
  std::string channel;
};

// "TEAM/CHANNEL", both parts valid names.
Result<ChannelRef> ParseChannelRef(std::string_view text);

// What `coffre read` reads: a channel ("TEAM/CHANNEL") or a conversation ("@USER").
struct ReadTarget {
  std::optional<ChannelRef> channel;  // set for TEAM/CHANNEL
  std::string user;                   // set for @USER
};
Result<ReadTarget> ParseReadTarget(std::string_view text);

// `--since WHEN` in Unix milliseconds. WHEN is
//  - a UTC date "2026-11-28" (midnight) or date-time "2026-11-28T14:00[:05]" ('T' or a
//    space between them), optionally followed by 'Z' or an offset "+01:00" / "-05:00";
//  - or a duration back from `now_ms`: a whole number then s, m, h, d or w ("30m", "2h",
//    "7d").
// Times before 1970 and years past 9999 are refused.
Result<std::uint64_t> ParseSince(std::string_view text, std::uint64_t now_ms);

// A device id as `device list` prints it: a decimal number that fits 32 bits.
Result<std::uint32_t> ParseDeviceId(std::string_view text);

// A document version for `doc get --version N`: a decimal number from 1.
Result<std::uint64_t> ParseVersion(std::string_view text);

// People type the short ids the listings print. Returns the id of `known` that `given`
// names: the exact match, else the only one that starts with `given` (case-insensitive
// hex). When none matches, `given` comes back unchanged, for the library to report as not
// found; when several match, kInvalidArgument ("ambiguous").
Result<std::string> ResolveIdPrefix(std::span<const std::string> known, std::string_view given);

// The profile folder: `flag` when given, else $COFFRE_PROFILE, else $XDG_DATA_HOME/coffre
// (only if absolute, as the XDG base directory specification requires), else
// $HOME/.local/share/coffre. Null or empty values count as unset. kInvalidArgument when
// none of them gives a folder.
Result<std::filesystem::path> ResolveProfileDir(std::string_view flag, const char* coffre_profile,
                                                const char* xdg_data_home, const char* home);

// A document name made safe to use as a file name in the current folder: the last path
// component, with control characters and '\' replaced by '_', a leading '.' replaced by
// '_' (no hidden file), at most 200 bytes; "document" when nothing usable is left (empty,
// ".", "..").
std::string SafeFileName(std::string_view name);

}  // namespace coffre::cli

#endif  // COFFRE_CLIENT_CLI_ARGS_H_
