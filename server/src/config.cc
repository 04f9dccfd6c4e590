#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "coffre/audit/legal_hold.h"
#include "coffre/crypto/random.h"

namespace coffre::server {
namespace {

// Reads the keys of one TOML table into typed fields and remembers which keys it knew, so
// that Finish() can refuse the rest. The first failure wins and is reported in `detail`.
class TableReader {
 public:
  TableReader(const toml::table* table, std::string prefix, std::string* detail)
      : table_(table), prefix_(std::move(prefix)), detail_(detail) {}

  bool ok() const { return ok_; }

  template <typename Integer>
  void Int(std::string_view key, Integer& out, std::int64_t min, std::int64_t max) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    const auto value = node->value_exact<std::int64_t>();
    if (!value) return Fail(key, "must be an integer");
    if (*value < min || *value > max) return Fail(key, "is out of range");
    out = static_cast<Integer>(*value);
  }

  void Real(std::string_view key, double& out, double min, double max) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    const auto value = node->value<double>();
    if (!value) return Fail(key, "must be a number");
    if (!(*value >= min && *value <= max)) return Fail(key, "is out of range");
    out = *value;
  }

  void Millis(std::string_view key, Milliseconds& out) {
    std::int64_t value = out.count();
    Int(key, value, 1, 24ll * 3600 * 1000);
    out = Milliseconds(value);
  }

  void Secs(std::string_view key, Seconds& out) {
    std::int64_t value = out.count();
    Int(key, value, 1, 366ll * 24 * 3600);
    out = Seconds(value);
  }

  void String(std::string_view key, std::string& out) {
    const toml::node* node = Find(key);
    if (node == nullptr) return;
    const auto value = node->value_exact<std::string>();
    if (!value) return Fail(key, "must be a string");
    out = *value;
  }

  // "YYYY-MM[,YYYY-MM...]": months, as months since January 1970.
  void Months(std::string_view key, std::vector<std::int64_t>& out) {
    std::string value;
    const bool present = Find(key) != nullptr;
    String(key, value);
    if (!present || !ok_) return;
    out.clear();
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find(',', start);
      if (end == std::string::npos) end = value.size();
      const auto month = audit::ParseMonth(std::string_view(value).substr(start, end - start));
      if (!month) return Fail(key, "must be months as YYYY-MM, separated by commas");
      out.push_back(*month);
      start = end + 1;
    }
  }

  // 32 bytes as 64 hex digits: a public X25519 key.
  void X25519Key(std::string_view key, std::optional<crypto::X25519PublicKey>& out) {
    std::string value;
    const bool present = Find(key) != nullptr;
    String(key, value);
    if (!present || !ok_) return;
    std::array<std::uint8_t, crypto::kX25519KeySize> bytes{};
    if (value.size() != 2 * bytes.size()) return Fail(key, "must be 64 hex digits");
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      const auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int high = digit(value[2 * i]);
      const int low = digit(value[2 * i + 1]);
      if (high < 0 || low < 0) return Fail(key, "must be 64 hex digits");
      bytes[i] = static_cast<std::uint8_t>(high * 16 + low);
    }
    auto parsed = crypto::X25519PublicKey::FromBytes(bytes);
    if (!parsed) return Fail(key, "is not a valid X25519 public key");
    out = *parsed;
  }

  void Path(std::string_view key, std::optional<std::filesystem::path>& out) {
    std::string value;
    const bool present = Find(key) != nullptr;
    String(key, value);
    if (present && ok_) {
      if (value.empty()) return Fail(key, "must not be empty");
      out = std::filesystem::path(value);
    }
  }

  void Level(std::string_view key, LogLevel& out) {
    std::string value;
    const bool present = Find(key) != nullptr;
    String(key, value);
    if (!present || !ok_) return;
    const auto level = ParseLogLevel(value);
    if (!level) return Fail(key, "must be debug, info, warn or error");
    out = *level;
  }

  // A sub-table; nullptr (and no error) if absent.
  const toml::table* Table(std::string_view key) {
    const toml::node* node = Find(key);
    if (node == nullptr) return nullptr;
    const toml::table* table = node->as_table();
    if (table == nullptr) Fail(key, "must be a table");
    return table;
  }

  std::string Prefixed(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  // Refuses keys that no reader asked for.
  void Finish() {
    if (!ok_ || table_ == nullptr) return;
    for (const auto& [key, node] : *table_) {
      (void)node;
      if (known_.count(std::string(key.str())) == 0) {
        return Fail(key.str(), "is not a known setting");
      }
    }
  }

  void Fail(std::string_view key, std::string_view why) {
    if (!ok_) return;
    ok_ = false;
    if (detail_ != nullptr) *detail_ = "config: " + Prefixed(key) + " " + std::string(why);
  }

 private:
  const toml::node* Find(std::string_view key) {
    known_.emplace(key);
    if (table_ == nullptr || !ok_) return nullptr;
    return table_->get(key);
  }

  const toml::table* table_;
  std::string prefix_;
  std::string* detail_;
  std::set<std::string, std::less<>> known_;
  bool ok_ = true;
};

constexpr std::int64_t kMaxSize = std::numeric_limits<std::int64_t>::max();

// Reads every section of the file; returns false on the first bad key.
bool ReadConfig(const toml::table& root, RelayConfig& config, std::string* detail) {
  TableReader top(&root, "", detail);
  std::optional<std::filesystem::path> data_dir;
  top.Path("data", data_dir);
  if (data_dir) config.data_dir = *data_dir;
  top.String("listen", config.listen);
  top.Level("log_level", config.log_level);
  const toml::table* tls = top.Table("tls");
  const toml::table* limits = top.Table("limits");
  const toml::table* auth = top.Table("auth");
  const toml::table* quotas = top.Table("quotas");
  const toml::table* rate_limits = top.Table("rate_limits");
  const toml::table* audit = top.Table("audit");
  top.Finish();
  if (!top.ok()) return false;

  TableReader t(tls, "tls", detail);
  t.Path("certificate", config.tls_certificate);
  t.Path("private_key", config.tls_private_key);
  t.Finish();
  if (!t.ok()) return false;

  TransportLimits& l = config.limits;
  TableReader r(limits, "limits", detail);
  r.Millis("handshake_timeout_ms", l.handshake_timeout);
  r.Millis("http_request_timeout_ms", l.http_request_timeout);
  r.Millis("http_body_timeout_ms", l.http_body_timeout);
  r.Millis("http_write_timeout_ms", l.http_write_timeout);
  r.Millis("websocket_idle_timeout_ms", l.websocket_idle_timeout);
  r.Millis("close_timeout_ms", l.close_timeout);
  r.Millis("drain_timeout_ms", l.drain_timeout);
  r.Int("max_header_bytes", l.max_header_bytes, 1024, 1024 * 1024);
  r.Int("max_body_bytes", l.max_body_bytes, 1, 1ll << 32);
  r.Int("max_frame_bytes", l.max_frame_bytes, 1024, 64ll << 20);
  r.Int("max_queued_frames", l.max_queued_frames, 1, 1 << 20);
  r.Int("max_queued_bytes", l.max_queued_bytes, 1024, 1ll << 32);
  r.Int("max_pending_frames", l.max_pending_frames, 1, 1024);
  r.Int("max_connections", l.max_connections, 1, 1 << 24);
  r.Int("io_threads", l.io_threads, 0, 1024);
  r.Int("worker_threads", l.worker_threads, 0, 1024);
  r.Finish();
  if (!r.ok()) return false;

  TableReader a(auth, "auth", detail);
  a.Secs("session_token_lifetime_s", config.auth.session_token_lifetime);
  a.Secs("challenge_lifetime_s", config.auth.challenge_lifetime);
  a.Secs("enrolment_code_lifetime_s", config.auth.enrolment_code_lifetime);
  a.Finish();
  if (!a.ok()) return false;

  QuotaConfig& q = config.quotas;
  TableReader qr(quotas, "quotas", detail);
  qr.Int("max_blob_bytes", q.max_blob_bytes, 1, kMaxSize);
  qr.Int("max_team_storage_bytes", q.max_team_storage_bytes, 1, kMaxSize);
  qr.Int("max_device_storage_bytes", q.max_device_storage_bytes, 1, kMaxSize);
  qr.Int("max_mailbox_messages", q.max_mailbox_messages, 1, kMaxSize);
  qr.Int("max_mailbox_bytes", q.max_mailbox_bytes, 1, kMaxSize);
  qr.Int("max_devices_per_user", q.max_devices_per_user, 1, 1000);
  qr.Int("max_one_time_prekeys", q.max_one_time_prekeys, 1, 10000);
  qr.Int("max_stored_one_time_prekeys", q.max_stored_one_time_prekeys, 1, 1'000'000);
  qr.Finish();
  if (!qr.ok()) return false;

  RateLimitConfig& rl = config.rate_limits;
  TableReader rr(rate_limits, "rate_limits", detail);
  rr.Real("requests_per_second_per_device", rl.requests_per_second_per_device, 0.001, 1e6);
  rr.Int("requests_burst_per_device", rl.requests_burst_per_device, 1, 1'000'000);
  rr.Real("auth_attempts_per_minute_per_address", rl.auth_attempts_per_minute_per_address, 0.001,
          1e6);
  rr.Int("auth_burst_per_address", rl.auth_burst_per_address, 1, 1'000'000);
  rr.Real("upload_bytes_per_second_per_device", rl.upload_bytes_per_second_per_device, 1, 1e12);
  rr.Finish();
  if (!rr.ok()) return false;

  TableReader au(audit, "audit", detail);
  au.String("origin", config.audit.origin);
  au.String("node", config.audit.node);
  au.String("jurisdiction", config.audit.jurisdiction);
  au.X25519Key("auditor_key", config.audit.auditor_key);
  au.Int("retention_months", config.audit.retention_months, 6, 1200);
  au.Months("legal_hold_months", config.audit.legal_hold_months);
  au.Finish();
  return au.ok();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Owns a file descriptor for the lifetime of one function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports whether close succeeded (it can report a deferred write error).
  bool Close() {
    const int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};

bool WriteAll(int fd, std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool FsyncDirectory(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return fd.get() >= 0 && ::fsync(fd.get()) == 0;
}

Result<crypto::SecretBytes> ReadKeyFile(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) return Fail(ErrorCode::kIo, "cannot open the operator key file");
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return Fail(ErrorCode::kIo, "cannot stat the operator key");
  if (!S_ISREG(info.st_mode) || info.st_size != static_cast<off_t>(kOperatorKeyBytes)) {
    return Fail(ErrorCode::kCorrupt, "the operator key file is not 32 bytes");
  }
  if ((info.st_mode & 077) != 0) {
    Log(LogLevel::kWarn, "operator_key_permissions",
        {{"detail", "operator.key is readable by group or others; chmod 600 it"}});
  }
  crypto::SecretBytes key(kOperatorKeyBytes);
  std::size_t done = 0;
  while (done < key.size()) {
    const ssize_t n = ::read(fd.get(), key.data() + done, key.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail(ErrorCode::kIo, "cannot read the operator key file");
    done += static_cast<std::size_t>(n);
  }
  return key;
}

// Writes a fresh key to a temporary file, fsyncs it, then links it into place: link()
// refuses to replace an existing key (two processes starting at once keep one key), and a
// crash never leaves a half-written operator.key behind.
Result<crypto::SecretBytes> CreateKeyFile(const std::filesystem::path& dir,
                                          const std::filesystem::path& path) {
  crypto::SecretBytes key = crypto::RandomSecret(kOperatorKeyBytes);
  const std::filesystem::path temp =
      dir / (std::string(kOperatorKeyFile) + ".tmp." + std::to_string(::getpid()));
  ::unlink(temp.c_str());
  {
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) return Fail(ErrorCode::kIo, "cannot create the operator key file");
    const bool written = WriteAll(fd.get(), key.span()) && ::fsync(fd.get()) == 0;
    if (!fd.Close() || !written) {
      ::unlink(temp.c_str());
      return Fail(ErrorCode::kIo, "cannot write the operator key file");
    }
  }
  const int linked = ::link(temp.c_str(), path.c_str());
  const int link_errno = errno;
  ::unlink(temp.c_str());
  if (linked != 0) {
    // Another process created it first: use theirs.
    if (link_errno == EEXIST) return ReadKeyFile(path);
    return Fail(ErrorCode::kIo, "cannot install the operator key file");
  }
  if (!FsyncDirectory(dir)) return Fail(ErrorCode::kIo, "cannot sync the data directory");
  return key;
}

}  // namespace

Status WriteFileAtomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                           unsigned mode) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::filesystem::path temp = path;
  temp += ".tmp." + std::to_string(::getpid());
  ::unlink(temp.c_str());
  {
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                 static_cast<mode_t>(mode)));
    if (fd.get() < 0) return Fail(ErrorCode::kIo, "cannot create a file in the data directory");
    const bool written = WriteAll(fd.get(), bytes) && ::fsync(fd.get()) == 0;
    if (!fd.Close() || !written) {
      ::unlink(temp.c_str());
      return Fail(ErrorCode::kIo, "cannot write a file in the data directory");
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return Fail(ErrorCode::kIo, "cannot rename a file in the data directory");
  }
  if (!FsyncDirectory(dir)) return Fail(ErrorCode::kIo, "cannot sync the data directory");
  return Ok();
}

Result<crypto::SecretBytes> ReadSmallFile(const std::filesystem::path& path,
                                          std::size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Fail(ErrorCode::kNotFound, "file does not exist");
    return Fail(ErrorCode::kIo, "cannot open a file");
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return Fail(ErrorCode::kIo, "not a regular file");
  }
  if (info.st_size < 0 || static_cast<std::uint64_t>(info.st_size) > max_bytes) {
    return Fail(ErrorCode::kInvalidArgument, "file is too large");
  }
  crypto::SecretBytes bytes(static_cast<std::size_t>(info.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorCode::kIo, "cannot read a file");
    if (n == 0) return Fail(ErrorCode::kIo, "file shrank while being read");
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

Result<RelayConfig> ParseRelayConfig(std::string_view toml_text, RelayConfig base,
                                     std::string* detail) {
  try {
#if TOML_EXCEPTIONS
    const toml::table root = toml::parse(toml_text);
#else
    toml::parse_result parsed = toml::parse(toml_text);
    if (!parsed) {
      if (detail != nullptr) *detail = "config: " + std::string(parsed.error().description());
      return Fail(ErrorCode::kInvalidArgument, "configuration is not valid TOML");
    }
    const toml::table root = std::move(parsed).table();
#endif
    if (!ReadConfig(root, base, detail)) {
      return Fail(ErrorCode::kInvalidArgument, "configuration has an invalid setting");
    }
    return base;
#if TOML_EXCEPTIONS
  } catch (const toml::parse_error& error) {
    if (detail != nullptr) {
      std::ostringstream line;
      line << "config: line " << error.source().begin.line << ": " << error.description();
      *detail = line.str();
    }
    return Fail(ErrorCode::kInvalidArgument, "configuration is not valid TOML");
#endif
  } catch (...) {
    return Fail(ErrorCode::kInternal, "configuration could not be read");
  }
}

Result<RelayConfig> LoadRelayConfigFile(const std::filesystem::path& path, RelayConfig base,
                                        std::string* detail) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (detail != nullptr) *detail = "config: cannot read " + path.string();
    return Fail(ErrorCode::kIo, "cannot read the configuration file");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return Fail(ErrorCode::kIo, "cannot read the configuration file");
  return ParseRelayConfig(text.str(), std::move(base), detail);
}

Status ValidateRelayConfig(const RelayConfig& config, std::string* detail) {
  auto fail = [detail](const char* why) {
    if (detail != nullptr) *detail = std::string("config: ") + why;
    return Fail(ErrorCode::kInvalidArgument, "configuration is inconsistent");
  };
  if (config.data_dir.empty()) return fail("a data directory is required (--data)");
  if (config.tls_certificate.has_value() != config.tls_private_key.has_value()) {
    return fail("tls.certificate and tls.private_key go together");
  }
  if (!ParseListenAddress(config.listen)) return fail("listen must be HOST:PORT");
  const TransportLimits& l = config.limits;
  if (l.max_queued_bytes < l.max_frame_bytes) {
    return fail("limits.max_queued_bytes must hold at least one frame");
  }
  if (l.handshake_timeout.count() <= 0 || l.websocket_idle_timeout.count() <= 0 ||
      l.http_request_timeout.count() <= 0 || l.http_body_timeout.count() <= 0 ||
      l.http_write_timeout.count() <= 0 || l.close_timeout.count() <= 0 ||
      l.drain_timeout.count() <= 0) {
    return fail("timeouts must be positive");
  }
  if (l.max_connections == 0 || l.max_queued_frames == 0 || l.max_pending_frames == 0 ||
      l.max_body_bytes == 0 || l.max_header_bytes == 0) {
    return fail("limits must be positive");
  }
  if (config.quotas.max_stored_one_time_prekeys < config.quotas.max_one_time_prekeys) {
    return fail("quotas.max_stored_one_time_prekeys must hold one upload (max_one_time_prekeys)");
  }
  return Ok();
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress address;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Fail(ErrorCode::kInvalidArgument, "listen address must be [IPv6]:PORT");
    }
    address.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return Fail(ErrorCode::kInvalidArgument, "listen address must be HOST:PORT");
    }
    address.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (address.host.empty() || port_text.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "listen address must be HOST:PORT");
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return Fail(ErrorCode::kInvalidArgument, "listen port must be 0..65535");
  }
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

Status EnsureDataDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return Ok();
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create the data directory");
  // Blobs, the store and keys live here: nobody else needs to list it.
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot set the data directory's permissions");
  return Ok();
}

Result<crypto::SecretBytes> LoadOrCreateOperatorKey(const std::filesystem::path& dir) {
  if (const char* env = std::getenv(std::string(kOperatorKeyEnv).c_str()); env != nullptr) {
    const std::string_view hex(env);
    if (hex.size() != 2 * kOperatorKeyBytes) {
      return Fail(ErrorCode::kInvalidArgument, "COFFRE_RELAY_KEY must be 64 hex digits");
    }
    crypto::SecretBytes key(kOperatorKeyBytes);
    for (std::size_t i = 0; i < kOperatorKeyBytes; ++i) {
      const int high = HexValue(hex[2 * i]);
      const int low = HexValue(hex[2 * i + 1]);
      if (high < 0 || low < 0) {
        return Fail(ErrorCode::kInvalidArgument, "COFFRE_RELAY_KEY must be 64 hex digits");
      }
      key.data()[i] = static_cast<std::uint8_t>((high << 4) | low);
    }
    return key;
  }
  const std::filesystem::path path = dir / kOperatorKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
    return ReadKeyFile(path);
  }
  return CreateKeyFile(dir, path);
}

}  // namespace coffre::server
