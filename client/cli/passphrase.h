// Where the `coffre` program gets the passphrase that opens a profile.
//
// Precedence, the explicit one first:
//   1. --passphrase-file FILE: its first line, without the line ending;
//   2. the COFFRE_PASSPHRASE environment variable;
//   3. a prompt with echo off, when stdin is a terminal (asked twice by `init`).
// The flag wins over the environment because it was typed for this very command, while an
// exported variable may be left over from another one; both win over the prompt so that a
// script run from a terminal never stops to ask.
//
// The passphrase only ever lives in crypto::SecretBytes: never in a std::string, never
// echoed, never logged. An empty passphrase is refused.
#ifndef COFFRE_CLIENT_CLI_PASSPHRASE_H_
#define COFFRE_CLIENT_CLI_PASSPHRASE_H_

#include <filesystem>
#include <optional>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::cli {

inline constexpr const char* kPassphraseEnvironmentVariable = "COFFRE_PASSPHRASE";

// Longest passphrase accepted from any source, in bytes.
inline constexpr std::size_t kMaxPassphraseLength = 1024;

// The first line of `path`, without its "\n" or "\r\n". Fails with kIo when the file
// cannot be read, kInvalidArgument when the line is empty or longer than
// kMaxPassphraseLength. Whatever was read is wiped before returning.
Result<crypto::SecretBytes> ReadPassphraseFile(const std::filesystem::path& path);

// Takes COFFRE_PASSPHRASE out of the environment: copies its value into SecretBytes, then
// overwrites the value in place (so it no longer shows in /proc/PID/environ) and unsets the
// variable (so no child process inherits it). Returns nullopt when it is not set; an empty
// SecretBytes when it is set but empty. Call it once, early in main, before any thread runs.
std::optional<crypto::SecretBytes> TakePassphraseFromEnvironment();

struct PassphraseSources {
  std::optional<std::filesystem::path> file;       // --passphrase-file
  std::optional<crypto::SecretBytes> environment;  // from TakePassphraseFromEnvironment
  bool confirm = false;  // prompt twice and require the same answer (a new profile)
};

// Applies the precedence above. Fails with kInvalidArgument for an empty passphrase, a
// mismatch on confirmation, or when there is no source at all (stdin is not a terminal
// and neither the flag nor the variable is given); kIo as ReadPassphraseFile.
Result<crypto::SecretBytes> ObtainPassphrase(PassphraseSources sources);

}  // namespace coffre::cli

#endif  // COFFRE_CLIENT_CLI_PASSPHRASE_H_
