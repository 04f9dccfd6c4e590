#include "cli/passphrase.h"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <span>

namespace coffre::cli {
namespace {

constexpr const char* kEmptyPassphrase = "an empty passphrase is refused";
constexpr const char* kTooLong = "the passphrase is longer than 1024 bytes";

// Owns a file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The first `length` bytes of `buffer` as their own SecretBytes; `buffer` is wiped when
// the caller drops it.
crypto::SecretBytes Prefix(const crypto::SecretBytes& buffer, std::size_t length) {
  return crypto::SecretBytes::CopyOf(buffer.span().first(length));
}

// Terminal state to restore if a signal arrives while echo is off. Written before the
// handlers are installed and only read by them.
struct termios g_saved_terminal;

extern "C" void RestoreTerminalAndReraise(int signal_number) {
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_terminal);
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

constexpr int kPromptSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};

// Echo off on stdin for as long as it lives, restored on every exit path and on the
// signals above.
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &g_saved_terminal) != 0) return;
    struct sigaction action {};
    action.sa_handler = RestoreTerminalAndReraise;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kPromptSignals); ++i) {
      ::sigaction(kPromptSignals[i], &action, &previous_[i]);
    }
    struct termios quiet = g_saved_terminal;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= static_cast<tcflag_t>(ECHONL);
    active_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    if (!active_) RestoreHandlers();
  }
  ~EchoOff() {
    if (!active_) return;
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_terminal);
    RestoreHandlers();
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  void RestoreHandlers() {
    for (std::size_t i = 0; i < std::size(kPromptSignals); ++i) {
      ::sigaction(kPromptSignals[i], &previous_[i], nullptr);
    }
  }

  struct sigaction previous_[std::size(kPromptSignals)] = {};
  bool active_ = false;
};

void WriteToTerminal(std::string_view text) {
  // The prompt goes to stderr: stdout may be piped into another program.
  while (!text.empty()) {
    const ssize_t written = ::write(STDERR_FILENO, text.data(), text.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(written));
  }
}

// One line from the terminal on stdin, echo off.
Result<crypto::SecretBytes> Prompt(std::string_view prompt) {
  crypto::SecretBytes buffer(kMaxPassphraseLength);
  std::size_t length = 0;
  bool too_long = false;
  bool got_newline = false;
  {
    EchoOff echo_off;
    WriteToTerminal(prompt);
    std::uint8_t byte = 0;
    while (true) {
      const ssize_t got = ::read(STDIN_FILENO, &byte, 1);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      if (byte == '\n') {
        got_newline = true;
        break;
      }
      if (length < buffer.size()) {
        buffer.data()[length++] = byte;
      } else {
        too_long = true;
      }
    }
    byte = 0;
  }
  if (!got_newline) WriteToTerminal("\n");
  if (too_long) return Fail(ErrorCode::kInvalidArgument, kTooLong);
  if (length > 0 && buffer.data()[length - 1] == '\r') --length;
  if (length == 0) return Fail(ErrorCode::kInvalidArgument, kEmptyPassphrase);
  return Prefix(buffer, length);
}

}  // namespace

Result<crypto::SecretBytes> ReadPassphraseFile(const std::filesystem::path& path) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return Fail(ErrorCode::kIo, "cannot open the passphrase file");
  // One byte more than the longest line plus its "\r\n" tells a long line from a full one.
  crypto::SecretBytes buffer(kMaxPassphraseLength + 3);
  std::size_t filled = 0;
  while (filled < buffer.size()) {
    const ssize_t got = ::read(fd.get(), buffer.data() + filled, buffer.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Fail(ErrorCode::kIo, "cannot read the passphrase file");
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  const std::span<const std::uint8_t> bytes = buffer.span().first(filled);
  std::size_t length = filled;
  for (std::size_t i = 0; i < filled; ++i) {
    if (bytes[i] == '\n') {
      length = i;
      break;
    }
  }
  if (length == filled && filled == buffer.size()) {
    return Fail(ErrorCode::kInvalidArgument, kTooLong);
  }
  if (length > 0 && bytes[length - 1] == '\r') --length;
  if (length == 0) return Fail(ErrorCode::kInvalidArgument, kEmptyPassphrase);
  if (length > kMaxPassphraseLength) return Fail(ErrorCode::kInvalidArgument, kTooLong);
  return Prefix(buffer, length);
}

std::optional<crypto::SecretBytes> TakePassphraseFromEnvironment() {
  char* value = std::getenv(kPassphraseEnvironmentVariable);
  if (value == nullptr) return std::nullopt;
  const std::size_t length = std::strlen(value);
  auto* bytes = reinterpret_cast<std::uint8_t*>(value);
  crypto::SecretBytes secret = crypto::SecretBytes::CopyOf({bytes, length});
  // The value sits in the process's environment block; POSIX lets a program write there
  // (putenv hands out such pointers), and wiping it keeps it out of /proc/PID/environ.
  crypto::Wipe({bytes, length});
  ::unsetenv(kPassphraseEnvironmentVariable);
  return secret;
}

Result<crypto::SecretBytes> ObtainPassphrase(PassphraseSources sources) {
  if (sources.file) return ReadPassphraseFile(*sources.file);
  if (sources.environment) {
    if (sources.environment->empty()) {
      return Fail(ErrorCode::kInvalidArgument, "COFFRE_PASSPHRASE is set but empty");
    }
    if (sources.environment->size() > kMaxPassphraseLength) {
      return Fail(ErrorCode::kInvalidArgument, kTooLong);
    }
    return std::move(*sources.environment);
  }
  if (::isatty(STDIN_FILENO) == 0) {
    return Fail(ErrorCode::kInvalidArgument,
                "no passphrase: stdin is not a terminal; set COFFRE_PASSPHRASE or give "
                "--passphrase-file");
  }
  auto first = Prompt(sources.confirm ? "New passphrase for this profile: " : "Passphrase: ");
  if (!first || !sources.confirm) return first;
  auto second = Prompt("Same passphrase again: ");
  if (!second) return second;
  if (!crypto::ConstantTimeEquals(first->span(), second->span())) {
    return Fail(ErrorCode::kInvalidArgument, "the two passphrases differ");
  }
  return first;
}

}  // namespace coffre::cli
