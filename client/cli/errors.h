// Exit codes and the one error line of the `coffre` program.
//
//   0  success
//   1  the operation failed (not found, refused by the team chain, a local file, ...)
//   2  usage error: the command line is malformed (unknown command, missing or malformed
//      argument, TEAM/CHANNEL or @USER syntax, --since format, no passphrase source)
//   3  wrong passphrase, or the profile folder does not hold a Coffre store
//   4  the relay could not be reached, or refused or dropped the connection
//
// A failure prints exactly one line on stderr, "coffre: WHAT: REASON[: ARGUMENT]", where
// REASON is the library's static Error::context() sentence.
#ifndef COFFRE_CLIENT_CLI_ERRORS_H_
#define COFFRE_CLIENT_CLI_ERRORS_H_

#include <string>
#include <string_view>

#include "coffre/base/result.h"

namespace coffre::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitWrongPassphrase = 3;
inline constexpr int kExitRelayUnreachable = 4;

// The exit code for a failure the library reported:
//  - kWrongPassphrase: 3;
//  - kIo: 4. The relay connection reports every way of not getting through as kIo: name
//    resolution, connect, TLS handshake, upgrade refused, relay draining or unavailable,
//    lost connection, timeout. The local files the library is handed (doc put FILE,
//    doc get -o FILE) are checked by the program before the call, so a kIo from the
//    library is, in practice, the network;
//  - anything else: 1. That includes kInvalidArgument: the program checks the syntax of
//    what it is given itself (exit 2), so when the library still refuses an argument (an
//    enrolment code the relay does not know, a statement the chain rejects), the
//    operation failed.
int ExitCodeFor(ErrorCode code);

// Replaces what would break the line or drive the terminal (C0 and C1 control characters,
// DEL) with '?'; a tab becomes a space unless newlines are kept. Used for every argument
// echoed in an error line and for text that comes from other people (posts, messages,
// document names, sync warnings) in plain output.
std::string SanitizeForTerminal(std::string_view text, bool keep_newlines = false);

// "coffre: WHAT: REASON" or "coffre: WHAT: REASON: ARGUMENT", without the newline.
std::string ErrorLine(std::string_view what, std::string_view reason,
                      std::string_view argument = {});

}  // namespace coffre::cli

#endif  // COFFRE_CLIENT_CLI_ERRORS_H_
