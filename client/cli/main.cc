// coffre: the command line of libcoffre-client.
//
//   coffre [--profile DIR] [--passphrase-file FILE] COMMAND ...
//   coffre init --relay https://HOST:PORT [--relay-fingerprint SHA256] --enrol CODE
//               --user LOGIN --name "Full Name"
//   coffre team create|add|remove|role|rotate|show|list ...
//   coffre channel create TEAM CHANNEL
//   coffre post TEAM/CHANNEL TEXT [--reply-to POST]
//   coffre read TEAM/CHANNEL [--thread POST] [--since WHEN] | coffre read @USER
//   coffre send USER TEXT
//   coffre doc put|get|list|versions ...
//   coffre sync | coffre watch
//   coffre device list|revoke|link ...
//   coffre verify USER [--confirm]
//
// Every argument is checked before the passphrase is asked for, so a typing mistake costs
// no prompt. stdout carries what the command produced (plain lines, or one JSON document
// with --json); stderr carries the one error line, notices and the progress bar. Exit
// codes: cli/errors.h. Passphrase sources and their precedence: cli/passphrase.h.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/args.h"
#include "cli/errors.h"
#include "cli/output.h"
#include "cli/passphrase.h"
#include "coffre/client/audit_bundle.h"
#include "coffre/client/client.h"
#include "coffre/client/device_link.h"
#include "coffre/client/relay_address.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::cli {
namespace {

constexpr std::size_t kMaxDisplayNameLength = 128;

// Set by SIGINT and SIGTERM while `coffre watch` runs.
std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void RequestStop(int) { g_stop_requested.store(true); }

// Commands that wait (watch, device link) end cleanly on Ctrl-C or SIGTERM.
void StopOnSignals() {
  struct sigaction action {};
  action.sa_handler = RequestStop;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

bool KeepGoing() { return !g_stop_requested.load(); }

void PrintLine(std::FILE* stream, const std::string& line) {
  std::fputs(line.c_str(), stream);
  std::fputc('\n', stream);
}

// Prints the error line and returns `exit_code`.
int Fail(int exit_code, std::string_view what, std::string_view reason,
         std::string_view argument = {}) {
  std::fflush(stdout);
  PrintLine(stderr, ErrorLine(what, reason, argument));
  return exit_code;
}

int Usage(std::string_view what, const Error& error, std::string_view argument = {}) {
  return Fail(kExitUsage, what, error.context(), argument);
}

int Failed(std::string_view what, const Error& error, std::string_view argument = {}) {
  return Fail(ExitCodeFor(error.code()), what, error.context(), argument);
}

std::uint64_t NowMs() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

void Print(const std::string& text) { std::fputs(text.c_str(), stdout); }

// The pieces as one string. Messages are built this way rather than with chains of
// operator+ ("x" + s + "y"), which g++ 12 flags with a false -Wrestrict. The size is
// reserved first: one allocation, so a message that holds a secret (a link code) leaves no
// partial copy in freed memory.
std::string Concat(std::initializer_list<std::string_view> pieces) {
  std::size_t size = 0;
  for (const std::string_view piece : pieces) size += piece.size();
  std::string text;
  text.reserve(size);
  for (const std::string_view piece : pieces) text.append(piece);
  return text;
}

std::optional<std::string_view> OptionalView(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return std::string_view(text);
}

// Every value the command line can carry. Only one command runs, so commands share them.
struct Args {
  std::string profile;
  std::string passphrase_file;
  bool json = false;

  std::string relay;
  std::string relay_fingerprint;
  std::string enrol;
  std::string user;
  std::string name;
  std::string link;

  std::string team;
  std::string channel;
  std::string role;
  std::string target;
  std::string text;
  std::string reply_to;
  std::string thread;
  std::string since;

  std::string file;
  std::string document_name;
  std::string replace;
  std::string document;
  std::string output;
  std::string version;

  std::string device;
  bool confirm = false;

  std::string audit_type;
  std::string audit_object;
  std::string audit_from;
  std::string audit_to;
  std::string bundle;
  std::string log_key;
  std::string auditor_key;
  std::vector<std::string> hold_months;
  std::string hold_reason;
};

// What every command needs besides its own arguments: where the profile is and the
// passphrase sources.
class Session {
 public:
  Session(const Args& args, std::optional<crypto::SecretBytes> environment_passphrase)
      : args_(args), environment_passphrase_(std::move(environment_passphrase)) {}

  // The profile folder, or nullopt after printing a usage error.
  std::optional<std::filesystem::path> ProfileDir(std::string_view what, int& exit_code) const {
    auto dir = ResolveProfileDir(args_.profile, std::getenv("COFFRE_PROFILE"),
                                 std::getenv("XDG_DATA_HOME"), std::getenv("HOME"));
    if (!dir) {
      exit_code = Usage(what, dir.error());
      return std::nullopt;
    }
    return std::move(*dir);
  }

  // The passphrase, or nullopt after printing an error. A source that cannot be used
  // (missing file, empty value, no terminal) is a usage error.
  std::optional<crypto::SecretBytes> Passphrase(std::string_view what, bool confirm,
                                                int& exit_code) {
    PassphraseSources sources;
    if (!args_.passphrase_file.empty()) sources.file = args_.passphrase_file;
    sources.environment = std::move(environment_passphrase_);
    environment_passphrase_.reset();
    sources.confirm = confirm;
    auto passphrase = ObtainPassphrase(std::move(sources));
    if (!passphrase) {
      exit_code = Fail(kExitUsage, what, passphrase.error().context(),
                       passphrase.error().code() == ErrorCode::kIo ? args_.passphrase_file : "");
      return std::nullopt;
    }
    return std::move(*passphrase);
  }

  // The opened profile, or nullptr after printing an error.
  std::unique_ptr<client::Client> Open(std::string_view what, int& exit_code) {
    const auto dir = ProfileDir(what, exit_code);
    if (!dir) return nullptr;
    auto passphrase = Passphrase(what, /*confirm=*/false, exit_code);
    if (!passphrase) return nullptr;
    auto opened = client::Client::Open(*dir, *passphrase);
    if (!opened) {
      exit_code = Failed(what, opened.error(), dir->string());
      return nullptr;
    }
    return std::move(*opened);
  }

 private:
  const Args& args_;
  std::optional<crypto::SecretBytes> environment_passphrase_;
};

// Every command that works on the profile has the same frame: its arguments are checked
// first (a typing mistake costs no prompt), then the profile is opened, which asks for the
// passphrase, then one call to the library is made and its outcome printed. These helpers
// are that frame, so that each handler below shows only what is its own.

// Opens the profile and runs `command` on it. Returns the exit code of `command`, or that
// of the open after its error line was printed (no profile, no passphrase, wrong one).
template <typename Command>
int WithClient(std::string_view what, Session& session, Command&& command) {
  int exit_code = kExitOk;
  auto client = session.Open(what, exit_code);
  if (!client) return exit_code;
  return std::forward<Command>(command)(*client);
}

// For `init`: finds the profile folder and asks for a new passphrase (twice at a prompt),
// then runs `command(dir, passphrase)`. Returns its exit code, or that of the step that
// failed after its error line was printed.
template <typename Command>
int WithNewProfile(std::string_view what, Session& session, Command&& command) {
  int exit_code = kExitOk;
  const auto dir = session.ProfileDir(what, exit_code);
  if (!dir) return exit_code;
  auto passphrase = session.Passphrase(what, /*confirm=*/true, exit_code);
  if (!passphrase) return exit_code;
  return std::forward<Command>(command)(*dir, *passphrase);
}

// Prints `value` on stdout: one JSON document with --json, else the lines `format` makes.
template <typename T, typename Format>
void PrintAs(bool json, const T& value, Format format) {
  Print(json ? DumpJson(ToJson(value)) : format(value));
}

// What a query returned, printed as PrintAs does. Returns kExitOk, or the failure's exit
// code after its error line, which names `argument`.
template <typename T, typename Format>
int PrintOrFail(std::string_view what, const Result<T>& result, std::string_view argument,
                bool json, Format format) {
  if (!result) return Failed(what, result.error(), argument);
  PrintAs(json, *result, format);
  return kExitOk;
}

// For a change that returns nothing: prints `message` (what was done) if `done` holds,
// else the error line, which names `argument`. Returns the exit code.
int PrintIfDone(std::string_view what, const Status& done, std::string_view argument,
                const std::string& message) {
  if (!done) return Failed(what, done.error(), argument);
  Print(message);
  return kExitOk;
}

// Ids of a channel's posts, for resolving a short id typed by a person. Empty when the
// channel cannot be read: the library then reports the id it is given.
std::vector<std::string> PostIds(client::Client& client, const ChannelRef& ref) {
  std::vector<std::string> ids;
  auto posts = client.ReadChannel(ref.team, ref.channel, std::nullopt, std::nullopt);
  if (posts) {
    for (const auto& post : *posts) ids.push_back(post.post_id);
  }
  return ids;
}

std::vector<std::string> DocumentIds(const std::vector<client::DocumentView>& documents) {
  std::vector<std::string> ids;
  for (const auto& document : documents) ids.push_back(document.document_id);
  return ids;
}

// --- init -------------------------------------------------------------------------------

// The relay, its fingerprint and the login, as both kinds of `init` take them; exit code
// on bad input.
int CheckInitArgs(std::string_view what, const Args& args, std::string& relay_url,
                  std::optional<std::string>& relay_fingerprint) {
  if (args.relay.empty()) return Fail(kExitUsage, what, "--relay https://HOST:PORT is required");
  if (args.user.empty()) return Fail(kExitUsage, what, "--user LOGIN is required");
  if (auto address = client::ParseRelayUrl(args.relay); !address) {
    return Usage(what, address.error(), args.relay);
  }
  relay_url = args.relay;
  if (!args.relay_fingerprint.empty()) {
    auto fingerprint = client::ParseFingerprint(args.relay_fingerprint);
    if (!fingerprint) return Usage(what, fingerprint.error(), args.relay_fingerprint);
    relay_fingerprint = client::FormatFingerprint(*fingerprint);
  }
  if (auto valid = CheckLogin(args.user); !valid) return Usage(what, valid.error(), args.user);
  return kExitOk;
}

// A one-time secret from argv: copied into SecretBytes, and argv's copy wiped.
crypto::SecretBytes TakeSecretArg(std::string& arg) {
  auto secret = crypto::SecretBytes::CopyOf(
      {reinterpret_cast<const std::uint8_t*>(arg.data()), arg.size()});
  crypto::Wipe({reinterpret_cast<std::uint8_t*>(arg.data()), arg.size()});
  return secret;
}

// What both kinds of `init` print once the profile exists.
void PrintInitReport(const client::InitReport& report, const std::filesystem::path& dir,
                     std::string_view name, std::string_view relay) {
  std::string out = "profile created in ";
  out += dir.string();
  out += "\nuser:   ";
  out += report.user_id;
  out += " (";
  out += name;
  out += report.admin ? "), administrator of the organisation" : ")";
  out += "\ndevice: ";
  out += std::to_string(report.device_id);
  out += "\nrelay:  ";
  out += relay;
  out += "\nrelay certificate SHA-256: ";
  out += report.relay_fingerprint;
  out += '\n';
  Print(out);
  std::fflush(stdout);
  if (!report.fingerprint_was_given) {
    std::string notice =
        "coffre: init: no --relay-fingerprint was given, so the relay's certificate was "
        "pinned on first use: SHA-256 ";
    notice += report.relay_fingerprint;
    notice +=
        "; compare it with the fingerprint your operator gave you, and if they differ, delete "
        "the profile and stop";
    PrintLine(stderr, notice);
  }
}

// Both kinds of `init` failed: a profile already there is named by its folder, anything
// else happened at the relay.
int InitFailed(std::string_view what, const Error& error, const std::filesystem::path& dir,
               std::string_view relay) {
  if (error.code() == ErrorCode::kAlreadyExists) return Failed(what, error, dir.string());
  return Failed(what, error, relay);
}

int RunInitLinked(Args& args, Session& session) {
  constexpr std::string_view kWhat = "init --link";
  if (!args.enrol.empty() || !args.name.empty()) {
    return Fail(kExitUsage, kWhat,
                "--link joins an existing account: --enrol and --name come from the other device");
  }
  client::LinkInitOptions options;
  if (int code = CheckInitArgs(kWhat, args, options.relay_url, options.relay_fingerprint);
      code != kExitOk) {
    return code;
  }
  options.user_id = args.user;
  options.link_code = TakeSecretArg(args.link);
  if (auto code = client::NormalizeLinkCode(options.link_code.span()); !code) {
    return Usage(kWhat, code.error(), "");
  }
  return WithNewProfile(
      kWhat, session, [&](const std::filesystem::path& dir, const crypto::SecretBytes& passphrase) {
        StopOnSignals();
        PrintLine(stderr,
                  "coffre: init: waiting for your other device to confirm the link (Ctrl-C stops)");
        client::InitReport report;
        auto created = client::Client::InitLinked(dir, passphrase, options, &report, KeepGoing);
        if (!created) return InitFailed(kWhat, created.error(), dir, args.relay);
        PrintInitReport(report, dir, (*created)->display_name(), args.relay);
        // The team items (posts, documents) come with the first sync, as on any device.
        auto synced = (*created)->Sync();
        if (!synced) return Failed(kWhat, synced.error());
        return kExitOk;
      });
}

int RunInit(Args& args, Session& session) {
  if (!args.link.empty()) return RunInitLinked(args, session);
  constexpr std::string_view kWhat = "init";
  client::InitOptions options;
  if (int code = CheckInitArgs(kWhat, args, options.relay_url, options.relay_fingerprint);
      code != kExitOk) {
    return code;
  }
  if (args.enrol.empty()) return Fail(kExitUsage, kWhat, "--enrol CODE is required");
  if (args.name.empty()) return Fail(kExitUsage, kWhat, "--name \"Full Name\" is required");
  if (args.name.size() > kMaxDisplayNameLength || SanitizeForTerminal(args.name) != args.name ||
      args.name.front() == ' ' || args.name.back() == ' ') {
    return Fail(kExitUsage, kWhat,
                "--name is 1 to 128 bytes, without control characters or surrounding spaces");
  }
  options.user_id = args.user;
  options.display_name = args.name;
  options.enrolment_code = TakeSecretArg(args.enrol);

  return WithNewProfile(
      kWhat, session, [&](const std::filesystem::path& dir, const crypto::SecretBytes& passphrase) {
        client::InitReport report;
        auto created = client::Client::Init(dir, passphrase, options, &report);
        if (!created) return InitFailed(kWhat, created.error(), dir, args.relay);
        PrintInitReport(report, dir, args.name, args.relay);
        return kExitOk;
      });
}

// --- teams and channels -----------------------------------------------------------------

int RunTeam(const std::string& command, const Args& args, Session& session) {
  const std::string what = "team " + command;
  if (command != "list") {
    if (auto valid = CheckName(args.team); !valid) return Usage(what, valid.error(), args.team);
  }
  if (command == "add" || command == "remove" || command == "role") {
    if (auto valid = CheckLogin(args.user); !valid) return Usage(what, valid.error(), args.user);
  }
  client::Role role = client::Role::kMember;
  if (command == "add" || command == "role") {
    auto parsed = client::ParseRole(args.role);
    if (!parsed) return Usage(what, parsed.error(), args.role);
    role = *parsed;
  }

  return WithClient(what, session, [&](client::Client& client) {
    if (command == "create") {
      auto team = client.CreateTeam(args.team);
      if (!team) return Failed(what, team.error(), args.team);
      Print(Concat(
          {"created team ", SanitizeForTerminal(team->name), " (id ", team->team_id, ")\n"}));
      return kExitOk;
    }
    if (command == "add") {
      return PrintIfDone(
          what, client.AddMember(args.team, args.user, role), args.user,
          Concat({"added ", args.user, " to ", args.team, " as ", client::RoleName(role), "\n"}));
    }
    if (command == "remove") {
      return PrintIfDone(
          what, client.RemoveMember(args.team, args.user), args.user,
          Concat({"removed ", args.user, " from ", args.team, "; the team key was rotated\n"}));
    }
    if (command == "role") {
      return PrintIfDone(
          what, client.ChangeRole(args.team, args.user, role), args.user,
          Concat({args.user, " is now ", client::RoleName(role), " in ", args.team, "\n"}));
    }
    if (command == "rotate") {
      return PrintIfDone(what, client.RotateTeamKey(args.team), args.team,
                         Concat({"rotated the key of ", args.team, "\n"}));
    }
    if (command == "show") {
      return PrintOrFail(what, client.ShowTeam(args.team), args.team, args.json, FormatTeam);
    }
    return PrintOrFail(what, client.ListTeams(), {}, args.json, FormatTeamList);
  });
}

int RunChannelCreate(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "channel create";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  if (auto valid = CheckName(args.channel); !valid) {
    return Usage(kWhat, valid.error(), args.channel);
  }
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintIfDone(kWhat, client.CreateChannel(args.team, args.channel), args.channel,
                       Concat({"created channel ", args.team, "/", args.channel, "\n"}));
  });
}

// --- posts and direct messages ----------------------------------------------------------

int RunPost(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "post";
  auto ref = ParseChannelRef(args.target);
  if (!ref) return Usage(kWhat, ref.error(), args.target);
  if (args.text.empty()) return Fail(kExitUsage, kWhat, "an empty post is refused");
  return WithClient(kWhat, session, [&](client::Client& client) {
    std::optional<std::string> reply_to;
    if (!args.reply_to.empty()) {
      const auto ids = PostIds(client, *ref);
      auto resolved = ResolveIdPrefix(ids, args.reply_to);
      if (!resolved) return Usage(kWhat, resolved.error(), args.reply_to);
      reply_to = std::move(*resolved);
    }
    auto posted = client.Post(ref->team, ref->channel, args.text,
                              reply_to ? std::optional<std::string_view>(*reply_to) : std::nullopt);
    if (!posted) return Failed(kWhat, posted.error(), args.target);
    // The id is the last word, for scripts and for --reply-to.
    Print(Concat({"posted to ", args.target, reply_to ? " in reply to " : "",
                  reply_to ? ShortId(*reply_to) : "", " as ", *posted, "\n"}));
    return kExitOk;
  });
}

int RunRead(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "read";
  auto target = ParseReadTarget(args.target);
  if (!target) return Usage(kWhat, target.error(), args.target);
  std::optional<std::uint64_t> since_ms;
  if (!args.since.empty()) {
    auto since = ParseSince(args.since, NowMs());
    if (!since) return Usage(kWhat, since.error(), args.since);
    since_ms = *since;
  }
  if (!target->channel && !args.thread.empty()) {
    return Fail(kExitUsage, kWhat, "--thread applies to TEAM/CHANNEL, not to @USER");
  }
  return WithClient(kWhat, session, [&](client::Client& client) {
    if (target->channel) {
      const ChannelRef& ref = *target->channel;
      std::optional<std::string> thread;
      if (!args.thread.empty()) {
        const auto ids = PostIds(client, ref);
        auto resolved = ResolveIdPrefix(ids, args.thread);
        if (!resolved) return Usage(kWhat, resolved.error(), args.thread);
        thread = std::move(*resolved);
      }
      return PrintOrFail(
          kWhat,
          client.ReadChannel(ref.team, ref.channel,
                             thread ? std::optional<std::string_view>(*thread) : std::nullopt,
                             since_ms),
          args.target, args.json, FormatPosts);
    }

    auto messages = client.ReadDirect(target->user);
    if (!messages) return Failed(kWhat, messages.error(), args.target);
    if (since_ms) {
      std::erase_if(*messages, [&](const client::DirectMessageView& message) {
        return message.sent_ms < *since_ms;
      });
    }
    PrintAs(args.json, *messages, FormatDirectMessages);
    return kExitOk;
  });
}

int RunSend(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "send";
  if (auto valid = CheckLogin(args.user); !valid) return Usage(kWhat, valid.error(), args.user);
  if (args.text.empty()) return Fail(kExitUsage, kWhat, "an empty message is refused");
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto sent = client.SendDirect(args.user, args.text);
    if (!sent && sent.error().code() == ErrorCode::kUntrustedIdentity) {
      return Failed(
          kWhat, sent.error(),
          Concat({args.user, " (their key changed: compare safety numbers with `coffre verify ",
                  args.user, "`, then run `coffre verify ", args.user, " --confirm`)"}));
    }
    return PrintIfDone(kWhat, sent, args.user, Concat({"sent to ", args.user, "\n"}));
  });
}

// --- documents --------------------------------------------------------------------------

bool IsReadableFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  return ::access(path.c_str(), R_OK) == 0;
}

int RunDocPut(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "doc put";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  // Checked here so that a kIo from the library means the relay, not this file.
  if (!IsReadableFile(args.file)) {
    return Fail(kExitFailed, kWhat, "not a readable file", args.file);
  }
  if (!args.document_name.empty() &&
      SanitizeForTerminal(args.document_name) != args.document_name) {
    return Fail(kExitUsage, kWhat, "--name must not contain control characters");
  }
  return WithClient(kWhat, session, [&](client::Client& client) {
    std::optional<std::string> replace;
    if (!args.replace.empty()) {
      auto documents = client.ListDocuments(args.team);
      const auto ids = documents ? DocumentIds(*documents) : std::vector<std::string>{};
      auto resolved = ResolveIdPrefix(ids, args.replace);
      if (!resolved) return Usage(kWhat, resolved.error(), args.replace);
      replace = std::move(*resolved);
    }
    ProgressBar bar("upload", ::isatty(STDERR_FILENO) != 0);
    auto put = client.PutDocument(
        args.team, args.file, OptionalView(args.document_name),
        replace ? std::optional<std::string_view>(*replace) : std::nullopt,
        [&bar](std::uint64_t done, std::uint64_t total) { bar.Update(done, total); });
    bar.Finish();
    if (!put) return Failed(kWhat, put.error(), args.file);
    // The full id is the last word of the output, for scripts (`... | awk '{print $NF}'`).
    Print(Concat({"uploaded ", SanitizeForTerminal(put->name), " (version ",
                  std::to_string(put->version), ", ", FormatSize(put->size), ") to ", args.team,
                  " as document ", put->document_id, "\n"}));
    return kExitOk;
  });
}

int RunDocGet(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "doc get";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  std::optional<std::uint64_t> version;
  if (!args.version.empty()) {
    auto parsed = ParseVersion(args.version);
    if (!parsed) return Usage(kWhat, parsed.error(), args.version);
    version = *parsed;
  }
  std::filesystem::path output = args.output;
  if (!output.empty()) {
    const std::filesystem::path folder =
        output.has_parent_path() ? output.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec) || ::access(folder.c_str(), W_OK) != 0) {
      return Fail(kExitFailed, kWhat, "cannot write in the folder of", args.output);
    }
    if (std::filesystem::is_directory(output, ec)) {
      return Fail(kExitFailed, kWhat, "-o names a folder, give a file name", args.output);
    }
  }
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto documents = client.ListDocuments(args.team);
    const auto ids = documents ? DocumentIds(*documents) : std::vector<std::string>{};
    auto resolved = ResolveIdPrefix(ids, args.document);
    if (!resolved) return Usage(kWhat, resolved.error(), args.document);
    const std::string document_id = std::move(*resolved);

    if (output.empty()) {
      // Without -o, the document's own name in the current folder, never over a file.
      std::string name;
      if (documents) {
        for (const auto& document : *documents) {
          if (document.document_id == document_id) name = document.name;
        }
      }
      output = SafeFileName(name);
      std::error_code ec;
      if (std::filesystem::exists(std::filesystem::symlink_status(output, ec))) {
        return Fail(kExitFailed, kWhat, "a file of that name is already here; choose one with -o",
                    output.string());
      }
      if (::access(".", W_OK) != 0) {
        return Fail(kExitFailed, kWhat, "cannot write in the current folder; choose one with -o");
      }
    }

    ProgressBar bar("download", ::isatty(STDERR_FILENO) != 0);
    auto got = client.GetDocument(
        args.team, document_id, output, version,
        [&bar](std::uint64_t done, std::uint64_t total) { bar.Update(done, total); });
    bar.Finish();
    if (!got) return Failed(kWhat, got.error(), args.document);
    Print(Concat({"saved ", SanitizeForTerminal(got->name), " (version ",
                  std::to_string(got->version), ", ", FormatSize(got->size), ") to ",
                  SanitizeForTerminal(output.string()), "\n"}));
    return kExitOk;
  });
}

int RunDocList(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "doc list";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintOrFail(kWhat, client.ListDocuments(args.team), args.team, args.json,
                       FormatDocuments);
  });
}

int RunDocVersions(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "doc versions";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto documents = client.ListDocuments(args.team);
    const auto ids = documents ? DocumentIds(*documents) : std::vector<std::string>{};
    auto resolved = ResolveIdPrefix(ids, args.document);
    if (!resolved) return Usage(kWhat, resolved.error(), args.document);
    return PrintOrFail(kWhat, client.DocumentVersions(args.team, *resolved), args.document,
                       args.json, FormatDocuments);
  });
}

// --- sync and watch ---------------------------------------------------------------------

int RunSync(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "sync";
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto report = client.Sync();
    if (!report) return Failed(kWhat, report.error());
    PrintAs(args.json, *report, FormatSyncReport);
    std::fflush(stdout);
    if (!args.json) {
      for (const auto& warning : report->warnings) {
        PrintLine(stderr, ErrorLine(kWhat, "warning", warning));
      }
    }
    return kExitOk;
  });
}

int RunWatch(Session& session) {
  constexpr std::string_view kWhat = "watch";
  return WithClient(kWhat, session, [&](client::Client& client) {
    StopOnSignals();
    auto watched = client.Watch(
        [](std::string_view line) {
          std::string clean = SanitizeForTerminal(line);
          clean += '\n';
          std::fputs(clean.c_str(), stdout);
          std::fflush(stdout);
        },
        KeepGoing);
    if (!watched) return Failed(kWhat, watched.error());
    return kExitOk;
  });
}

// --- devices and safety numbers ---------------------------------------------------------

int RunDeviceList(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "device list";
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintOrFail(kWhat, client.ListDevices(), {}, args.json, FormatDevices);
  });
}

int RunDeviceLink(Session& session) {
  constexpr std::string_view kWhat = "device link";
  return WithClient(kWhat, session, [&](client::Client& client) {
    StopOnSignals();
    const std::string user = client.user_id();
    auto linked = client.LinkDevice(
        [&](std::string_view code, std::uint64_t expires_ms) {
          const std::uint64_t now = NowMs();
          const std::uint64_t minutes = expires_ms > now ? (expires_ms - now) / 60000 : 0;
          std::string out =
              Concat({"link code: ", code, "\non the new device, within ", std::to_string(minutes),
                      " minutes, run:\n  coffre init --relay URL --user ", user, " --link ", code,
                      "\nwaiting for the new device (Ctrl-C stops)...\n"});
          Print(out);
          std::fflush(stdout);
          // The line held the one-time code: not left in freed memory.
          crypto::Wipe({reinterpret_cast<std::uint8_t*>(out.data()), out.size()});
        },
        KeepGoing);
    if (!linked) return Failed(kWhat, linked.error());
    Print(Concat({"linked device ", std::to_string(linked->device_id), "; handed over the keys of ",
                  std::to_string(linked->teams), linked->teams == 1 ? " team\n" : " teams\n"}));
    return kExitOk;
  });
}

int RunDeviceRevoke(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "device revoke";
  auto device = ParseDeviceId(args.device);
  if (!device) return Usage(kWhat, device.error(), args.device);
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintIfDone(kWhat, client.RevokeDevice(*device), args.device,
                       Concat({"revoked device ", std::to_string(*device),
                               "; the key of every team you are in was rotated\n"}));
  });
}

// --- the audit log -----------------------------------------------------------------------

// The filters of `audit show` and `audit export`; an exit code on bad input.
int ParseAuditFilter(std::string_view what, const Args& args, client::AuditFilter& filter) {
  if (!args.team.empty()) {
    if (auto valid = CheckName(args.team); !valid) return Usage(what, valid.error(), args.team);
    filter.team = args.team;
  }
  if (!args.audit_object.empty()) filter.object = args.audit_object;
  if (!args.user.empty()) {
    if (auto valid = CheckLogin(args.user); !valid) return Usage(what, valid.error(), args.user);
    filter.user = args.user;
  }
  if (!args.audit_type.empty()) filter.type = args.audit_type;
  const std::uint64_t now = NowMs();
  if (!args.audit_from.empty()) {
    auto from = ParseSince(args.audit_from, now);
    if (!from) return Usage(what, from.error(), args.audit_from);
    filter.from_ms = *from;
  }
  if (!args.audit_to.empty()) {
    auto to = ParseSince(args.audit_to, now);
    if (!to) return Usage(what, to.error(), args.audit_to);
    filter.to_ms = *to;
  }
  return kExitOk;
}

int RunAuditShow(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "audit show";
  client::AuditFilter filter;
  if (int code = ParseAuditFilter(kWhat, args, filter); code != kExitOk) return code;
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintOrFail(kWhat, client.AuditEntries(filter), args.audit_type, args.json,
                       FormatAuditEntries);
  });
}

int RunAuditExport(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "audit export";
  client::AuditFilter filter;
  if (int code = ParseAuditFilter(kWhat, args, filter); code != kExitOk) return code;
  if (args.output.empty()) return Fail(kExitUsage, kWhat, "-o BUNDLE (a new folder) is required");
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto exported = client.ExportAudit(filter, args.output);
    if (!exported) return Failed(kWhat, exported.error(), args.output);
    Print(Concat({"exported ", std::to_string(exported->records),
                  exported->records == 1 ? " record" : " records",
                  ", each with its inclusion proof in the signed log of ",
                  std::to_string(exported->tree_size), " entries, into ", args.output, "\n"}));
    return kExitOk;
  });
}

// Needs no profile and no relay: a bundle verifies anywhere.
int RunAuditVerifyBundle(const Args& args) {
  constexpr std::string_view kWhat = "audit verify-bundle";
  std::optional<std::string> pinned;
  if (!args.log_key.empty()) pinned = args.log_key;
  auto report = client::VerifyAuditBundle(args.bundle, pinned);
  if (!report) return Failed(kWhat, report.error(), args.bundle);
  PrintAs(args.json, *report, FormatAuditBundleReport);
  return report->ok ? kExitOk : kExitFailed;
}

int RunAuditHold(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "audit hold";
  if (args.output.empty()) return Fail(kExitUsage, kWhat, "-o FILE (a new file) is required");
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto hold = client.StartLegalHold(args.hold_months, args.hold_reason, args.output);
    if (!hold) return Failed(kWhat, hold.error(), args.output);
    Print(Concat({FormatLegalHold(*hold), "hand ", args.output,
                  " to the other party (an organisation admin and an auditor sign a hold): it "
                  "takes effect once\nthey run `coffre audit hold-sign ",
                  args.output, "`\n"}));
    return kExitOk;
  });
}

int RunAuditHoldSign(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "audit hold-sign";
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto hold = client.CompleteLegalHold(args.file);
    if (!hold) return Failed(kWhat, hold.error(), args.file);
    Print(FormatLegalHold(*hold));
    return kExitOk;
  });
}

int RunAuditKey(Session& session) {
  constexpr std::string_view kWhat = "audit key";
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto key = client.AuditorKey();
    if (!key) return Failed(kWhat, key.error());
    Print(
        Concat({"auditor key (public): ", *key,
                "\nan admin sets it on a team with `coffre team auditor-key TEAM ", *key, "`\n"}));
    return kExitOk;
  });
}

int RunTeamAuditorKey(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "team auditor-key";
  if (auto valid = CheckName(args.team); !valid) return Usage(kWhat, valid.error(), args.team);
  return WithClient(kWhat, session, [&](client::Client& client) {
    return PrintIfDone(kWhat, client.SetTeamAuditorKey(args.team, args.auditor_key),
                       args.auditor_key,
                       Concat({"details of the audit log about ", args.team,
                               " are now sealed to auditor key ", args.auditor_key, "\n"}));
  });
}

int RunAuditVerify(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "audit verify";
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto report = client.VerifyAuditLog();
    if (!report) return Failed(kWhat, report.error());
    PrintAs(args.json, *report, FormatAuditVerify);
    return report->ok ? kExitOk : kExitFailed;
  });
}

int RunVerify(const Args& args, Session& session) {
  constexpr std::string_view kWhat = "verify";
  if (auto valid = CheckLogin(args.user); !valid) return Usage(kWhat, valid.error(), args.user);
  return WithClient(kWhat, session, [&](client::Client& client) {
    auto view = client.SafetyNumber(args.user);
    if (!view) return Failed(kWhat, view.error(), args.user);
    if (args.confirm) {
      if (auto done = client.ConfirmIdentity(args.user); !done) {
        return Failed(kWhat, done.error(), args.user);
      }
      view->confirmed = true;
    }
    PrintAs(args.json, *view, FormatSafetyNumber);
    return kExitOk;
  });
}

// --- the command line -------------------------------------------------------------------

// The deepest subcommand CLI11 had entered when it stopped, and its path ("doc put").
CLI::App* DeepestCommand(CLI::App& app, std::string& path) {
  CLI::App* current = &app;
  while (true) {
    const auto subcommands = current->get_subcommands();
    if (subcommands.empty()) break;
    current = subcommands.front();
    if (!path.empty()) path += ' ';
    path += current->get_name();
  }
  return current;
}

// CLI11's message on one line.
std::string OneLine(std::string_view message) {
  std::string line;
  for (const char c : message) {
    if (c == '\n') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line.push_back(c);
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  return line;
}

// A required positional argument, shown in help as its name alone ("TEAM", not "TEAM TEXT").
void AddPositional(CLI::App* command, const std::string& name, std::string& into,
                   const std::string& help) {
  command->add_option(name, into, help)->required()->type_name("");
}

void AddJsonFlag(CLI::App* command, Args& args) {
  command->add_flag("--json", args.json, "Print one JSON document instead of lines");
}

int Main(int argc, char** argv) {
  // Taken before anything else runs, so that the variable is gone from the environment
  // whatever happens next.
  std::optional<crypto::SecretBytes> environment_passphrase = TakePassphraseFromEnvironment();

  Args args;
  CLI::App app{
      "coffre: end-to-end encrypted teams, channels, direct messages and documents.\n"
      "The relay only ever sees ciphertext.",
      "coffre"};
  app.set_version_flag("--version", COFFRE_VERSION);
  app.require_subcommand(1);
  // Global options may also follow the command: `coffre team list --profile DIR`.
  app.fallthrough();
  app.add_option("--profile", args.profile,
                 "Profile folder (default: $COFFRE_PROFILE, else $XDG_DATA_HOME/coffre, else "
                 "~/.local/share/coffre)")
      ->type_name("DIR");
  app.add_option("--passphrase-file", args.passphrase_file,
                 "Read the passphrase from the first line of FILE (wins over "
                 "$COFFRE_PASSPHRASE, which wins over the prompt)")
      ->type_name("FILE");
  app.footer(
      "Exit codes: 0 success, 1 failure, 2 usage error, 3 wrong passphrase, 4 relay "
      "unreachable.");

  CLI::App* init = app.add_subcommand("init", "Create this device's profile and register it");
  init->add_option("--relay", args.relay, "Relay URL, https://HOST:PORT (required)")
      ->type_name("URL");
  init->add_option("--relay-fingerprint", args.relay_fingerprint,
                   "SHA-256 of the relay certificate, from the operator (else pinned on first "
                   "use)")
      ->type_name("SHA256");
  init->add_option("--enrol", args.enrol, "Enrolment code from the operator (required)")
      ->type_name("CODE");
  init->add_option("--user", args.user, "Your login: 1-64 of a-z 0-9 . _ - (required)")
      ->type_name("LOGIN");
  init->add_option("--name", args.name, "Your full name, as others see it (required)")
      ->type_name("NAME");
  init->add_option("--link", args.link,
                   "Join your existing account with the code `coffre device link` shows on "
                   "one of your devices (instead of --enrol and --name)")
      ->type_name("CODE");

  CLI::App* team = app.add_subcommand("team", "Teams, their members and keys");
  team->require_subcommand(1);
  CLI::App* team_create = team->add_subcommand("create", "Create a team with you as admin");
  AddPositional(team_create, "TEAM", args.team, "Team name");
  CLI::App* team_add = team->add_subcommand("add", "Add a member");
  AddPositional(team_add, "TEAM", args.team, "Team name");
  AddPositional(team_add, "USER", args.user, "Login of the new member");
  args.role = "member";
  team_add->add_option("--role", args.role, "member, admin, guest or auditor (default member)")
      ->type_name("ROLE");
  CLI::App* team_remove =
      team->add_subcommand("remove", "Remove a member (the team key is rotated)");
  AddPositional(team_remove, "TEAM", args.team, "Team name");
  AddPositional(team_remove, "USER", args.user, "Login of the member");
  CLI::App* team_role = team->add_subcommand("role", "Change a member's role");
  AddPositional(team_role, "TEAM", args.team, "Team name");
  AddPositional(team_role, "USER", args.user, "Login of the member");
  AddPositional(team_role, "ROLE", args.role, "member, admin, guest or auditor");
  CLI::App* team_rotate = team->add_subcommand("rotate", "Rotate the team key now");
  AddPositional(team_rotate, "TEAM", args.team, "Team name");
  CLI::App* team_show =
      team->add_subcommand("show", "Members, devices, roles, chain head and key generation");
  AddPositional(team_show, "TEAM", args.team, "Team name");
  AddJsonFlag(team_show, args);
  CLI::App* team_list = team->add_subcommand("list", "The teams you are in");
  AddJsonFlag(team_list, args);
  CLI::App* team_auditor_key = team->add_subcommand(
      "auditor-key", "Seal the details of this team's audit entries to an auditor's key");
  AddPositional(team_auditor_key, "TEAM", args.team, "Team name");
  AddPositional(team_auditor_key, "KEY", args.auditor_key, "The key `coffre audit key` showed");
  const std::vector<std::pair<CLI::App*, std::string>> team_commands = {
      {team_create, "create"}, {team_add, "add"},   {team_remove, "remove"}, {team_role, "role"},
      {team_rotate, "rotate"}, {team_show, "show"}, {team_list, "list"}};

  CLI::App* channel = app.add_subcommand("channel", "Channels of a team");
  channel->require_subcommand(1);
  CLI::App* channel_create = channel->add_subcommand("create", "Create a channel");
  AddPositional(channel_create, "TEAM", args.team, "Team name");
  AddPositional(channel_create, "CHANNEL", args.channel, "Channel name");

  CLI::App* post = app.add_subcommand("post", "Post in a channel (or reply in a thread)");
  AddPositional(post, "TEAM/CHANNEL", args.target, "Where to post");
  AddPositional(post, "TEXT", args.text, "The post (use -- before text that starts with '-')");
  post->add_option("--reply-to", args.reply_to, "Id of the post to reply to (a thread)")
      ->type_name("POST");

  CLI::App* read = app.add_subcommand("read", "Read a channel, or direct messages with @USER");
  AddPositional(read, "TARGET", args.target, "TEAM/CHANNEL or @USER");
  read->add_option("--thread", args.thread, "Only this post and its replies")->type_name("POST");
  read->add_option("--since", args.since,
                   "Only from WHEN: 2026-11-28, 2026-11-28T14:00Z (UTC unless an offset is "
                   "given) or 30m, 2h, 7d ago")
      ->type_name("WHEN");
  AddJsonFlag(read, args);

  CLI::App* send = app.add_subcommand("send", "Send a direct message");
  AddPositional(send, "USER", args.user, "Login of the recipient");
  AddPositional(send, "TEXT", args.text, "The message");

  CLI::App* doc = app.add_subcommand("doc", "Encrypted documents of a team");
  doc->require_subcommand(1);
  CLI::App* doc_put = doc->add_subcommand(
      "put", "Upload a file (a new version with --replace); prints the document id last");
  AddPositional(doc_put, "TEAM", args.team, "Team name");
  AddPositional(doc_put, "FILE", args.file, "File to upload");
  doc_put->add_option("--name", args.document_name, "Document name (default: the file's name)")
      ->type_name("NAME");
  doc_put->add_option("--replace", args.replace, "Id of the document this is a new version of")
      ->type_name("DOC");
  CLI::App* doc_get = doc->add_subcommand("get", "Download and verify a document");
  AddPositional(doc_get, "TEAM", args.team, "Team name");
  AddPositional(doc_get, "DOC", args.document, "Document id");
  doc_get
      ->add_option("-o,--output", args.output,
                   "Where to write it (default: its name, in the current folder)")
      ->type_name("FILE");
  doc_get->add_option("--version", args.version, "Version number (default: the current one)")
      ->type_name("N");
  CLI::App* doc_list = doc->add_subcommand("list", "Documents of a team");
  AddPositional(doc_list, "TEAM", args.team, "Team name");
  AddJsonFlag(doc_list, args);
  CLI::App* doc_versions = doc->add_subcommand("versions", "Versions of a document");
  AddPositional(doc_versions, "TEAM", args.team, "Team name");
  AddPositional(doc_versions, "DOC", args.document, "Document id");
  AddJsonFlag(doc_versions, args);

  CLI::App* sync = app.add_subcommand("sync", "Send the outbox, fetch and apply what waits");
  AddJsonFlag(sync, args);
  CLI::App* watch =
      app.add_subcommand("watch", "Stay connected and print what arrives, until Ctrl-C");

  CLI::App* device = app.add_subcommand("device", "Devices of your account");
  device->require_subcommand(1);
  CLI::App* device_list = device->add_subcommand("list", "Your devices");
  AddJsonFlag(device_list, args);
  CLI::App* device_link = device->add_subcommand(
      "link", "Show a code to set up a new device of yours with `coffre init --link`");
  CLI::App* device_revoke =
      device->add_subcommand("revoke", "Revoke a device (every team key is rotated)");
  AddPositional(device_revoke, "DEVICE", args.device, "Device id, as `device list` shows");

  CLI::App* audit = app.add_subcommand("audit", "The relay's audit log (auditors)");
  audit->require_subcommand(1);
  CLI::App* audit_show = audit->add_subcommand("show", "Entries of the relay's audit log");
  audit_show->add_option("--team", args.team, "Only entries about this team")->type_name("TEAM");
  audit_show->add_option("--object", args.audit_object, "Only entries about this item or blob (id prefix)")
      ->type_name("ID");
  audit_show->add_option("--user", args.user, "Only entries by or about this login (needs the auditor key)")
      ->type_name("LOGIN");
  audit_show->add_option("--type", args.audit_type, "Only this event (login, item_fetched, blob_fetched, ...)")
      ->type_name("EVENT");
  audit_show->add_option("--from", args.audit_from, "From this time (as --since of read)")->type_name("WHEN");
  audit_show->add_option("--to", args.audit_to, "Before this time")->type_name("WHEN");
  AddJsonFlag(audit_show, args);
  CLI::App* audit_verify = audit->add_subcommand(
      "verify", "Check the log from the first entry to a fresh signed checkpoint");
  AddJsonFlag(audit_verify, args);
  CLI::App* audit_export = audit->add_subcommand(
      "export", "Write selected entries, a checkpoint and their proofs into a signed bundle");
  audit_export->add_option("--team", args.team, "Only entries about this team")->type_name("TEAM");
  audit_export->add_option("--object", args.audit_object, "Only entries about this item or blob")
      ->type_name("ID");
  audit_export->add_option("--type", args.audit_type, "Only this event")->type_name("EVENT");
  audit_export->add_option("--user", args.user, "Only entries by or about this login")->type_name("LOGIN");
  audit_export->add_option("--from", args.audit_from, "From this time")->type_name("WHEN");
  audit_export->add_option("--to", args.audit_to, "Before this time")->type_name("WHEN");
  audit_export->add_option("-o,--output", args.output, "The bundle folder to create (required)")
      ->type_name("BUNDLE");
  CLI::App* audit_key = audit->add_subcommand(
      "key", "Show this profile's auditor key (made on first use), for an admin to set");
  CLI::App* audit_hold = audit->add_subcommand(
      "hold", "Sign a legal hold (details of these months kept past retention) into a file");
  audit_hold->add_option("--month", args.hold_months, "A month to hold, YYYY-MM (repeat, or separate with commas)")
      ->required()
      ->delimiter(',')
      ->type_name("YYYY-MM");
  audit_hold->add_option("--reason", args.hold_reason, "Why: the case or request reference (required)")
      ->required()
      ->type_name("TEXT");
  audit_hold->add_option("-o,--output", args.output, "The hold file to create (required)")->type_name("FILE");
  CLI::App* audit_hold_sign = audit->add_subcommand(
      "hold-sign", "Check a legal hold signed by the other party, sign it and place it on the relay");
  AddPositional(audit_hold_sign, "FILE", args.file, "The hold file `coffre audit hold` wrote");
  CLI::App* audit_verify_bundle = audit->add_subcommand(
      "verify-bundle", "Verify an export bundle offline (no profile, no relay)");
  AddPositional(audit_verify_bundle, "BUNDLE", args.bundle, "The bundle folder");
  audit_verify_bundle->add_option("--log-key", args.log_key,
                                  "The log's verifier key, as `coffre-relay admin status` prints it")
      ->type_name("KEY");
  AddJsonFlag(audit_verify_bundle, args);

  CLI::App* verify = app.add_subcommand("verify", "Show the safety number shared with USER");
  AddPositional(verify, "USER", args.user, "Login");
  verify->add_flag("--confirm", args.confirm,
                   "You compared the number with USER: trust their current key");
  AddJsonFlag(verify, args);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help or --version: printed on stdout, exit 0
  } catch (const CLI::ParseError& e) {
    std::string path;
    CLI::App* command = DeepestCommand(app, path);
    const std::string what = path.empty() ? "usage" : path;
    std::string help = "(see `coffre ";
    help += path.empty() ? "" : path + " ";
    help += "--help`)";
    // CLI11 checks what is required before what is left over; a person who mistyped a
    // command or an option wants to hear about that word first.
    const auto left = app.remaining(/*recurse=*/true);
    if (!left.empty() && !left.front().empty()) {
      std::string argument = left.front();
      argument += ' ';
      argument += help;
      const char* reason = left.front().front() == '-'                 ? "unknown option"
                           : command->get_require_subcommand_min() > 0 ? "unknown command"
                                                                       : "unexpected argument";
      return Fail(kExitUsage, what, reason, argument);
    }
    std::string reason = OneLine(e.what());
    reason += ' ';
    reason += help;
    return Fail(kExitUsage, what, reason);
  }

  Session session(args, std::move(environment_passphrase));
  if (init->parsed()) return RunInit(args, session);
  for (const auto& [command, name] : team_commands) {
    if (command->parsed()) return RunTeam(name, args, session);
  }
  if (channel_create->parsed()) return RunChannelCreate(args, session);
  if (post->parsed()) return RunPost(args, session);
  if (read->parsed()) return RunRead(args, session);
  if (send->parsed()) return RunSend(args, session);
  if (doc_put->parsed()) return RunDocPut(args, session);
  if (doc_get->parsed()) return RunDocGet(args, session);
  if (doc_list->parsed()) return RunDocList(args, session);
  if (doc_versions->parsed()) return RunDocVersions(args, session);
  if (sync->parsed()) return RunSync(args, session);
  if (watch->parsed()) return RunWatch(session);
  if (device_list->parsed()) return RunDeviceList(args, session);
  if (device_link->parsed()) return RunDeviceLink(session);
  if (device_revoke->parsed()) return RunDeviceRevoke(args, session);
  if (verify->parsed()) return RunVerify(args, session);
  if (audit_show->parsed()) return RunAuditShow(args, session);
  if (audit_verify->parsed()) return RunAuditVerify(args, session);
  if (audit_export->parsed()) return RunAuditExport(args, session);
  if (audit_key->parsed()) return RunAuditKey(session);
  if (audit_hold->parsed()) return RunAuditHold(args, session);
  if (audit_hold_sign->parsed()) return RunAuditHoldSign(args, session);
  if (team_auditor_key->parsed()) return RunTeamAuditorKey(args, session);
  if (audit_verify_bundle->parsed()) return RunAuditVerifyBundle(args);
  return Fail(kExitUsage, "usage", "no command given (see `coffre --help`)");
}

}  // namespace
}  // namespace coffre::cli

int main(int argc, char** argv) {
  // A relay that closes its socket must give the library an error (EPIPE), not kill the
  // program; the same goes for `coffre read ... | head`.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return coffre::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fputs(coffre::cli::ErrorLine("internal error", e.what()).c_str(), stderr);
    std::fputc('\n', stderr);
  } catch (...) {
    std::fflush(stdout);
    std::fputs("coffre: internal error: unexpected failure\n", stderr);
  }
  return coffre::cli::kExitFailed;
}
