// coffre-relay's configuration: one struct with safe defaults, read from a TOML file and
// then overridden by command-line flags.
//
// Every limit the transport enforces is a named field of TransportLimits, with its default
// as a named constant below: one place to read what a connection may cost the relay.
#ifndef COFFRE_SERVER_SRC_CONFIG_H_
#define COFFRE_SERVER_SRC_CONFIG_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/x25519.h"
#include "log.h"

namespace coffre::server {

using Milliseconds = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;

// --- Transport limits: defaults -------------------------------------------------------------
// TLS handshake plus the first HTTP request header (and so the WebSocket upgrade).
inline constexpr Milliseconds kDefaultHandshakeTimeout{10'000};
// Waiting for and reading the header of each request after the first (keep-alive idling).
inline constexpr Milliseconds kDefaultHttpRequestTimeout{30'000};
// Reading one request body: a 4 MiB chunk at 35 KB/s, a poor mobile link in the field.
inline constexpr Milliseconds kDefaultHttpBodyTimeout{120'000};
// Writing one HTTP response (a 4 MiB chunk on a slow field link takes a while).
inline constexpr Milliseconds kDefaultHttpWriteTimeout{60'000};
// A WebSocket with no traffic at all is closed after this; a ping goes out at half of it.
inline constexpr Milliseconds kDefaultWebSocketIdleTimeout{60'000};
// After a close frame is queued, how long the peer has before the socket is cut.
inline constexpr Milliseconds kDefaultCloseTimeout{5'000};
// Graceful drain: how long in-flight work may take to finish before connections are cut.
inline constexpr Milliseconds kDefaultDrainTimeout{5'000};
inline constexpr std::size_t kDefaultMaxHeaderBytes = 16 * 1024;
// One blob chunk per request: 4 MiB of ciphertext plus framing.
inline constexpr std::uint64_t kDefaultMaxBodyBytes = 4 * 1024 * 1024;
inline constexpr std::uint64_t kDefaultMaxFrameBytes = 1024 * 1024;
// Bounded write queue per WebSocket: whichever bound is reached first closes with 1008.
inline constexpr std::size_t kDefaultMaxQueuedFrames = 64;
inline constexpr std::size_t kDefaultMaxQueuedBytes = 8 * 1024 * 1024;
// Frames read from one WebSocket and not yet handled by the service: reading pauses at
// this many, so a fast sender meets TCP back-pressure instead of growing relay memory.
inline constexpr std::size_t kDefaultMaxPendingFrames = 8;
inline constexpr std::size_t kDefaultMaxConnections = 10'000;

struct TransportLimits {
  Milliseconds handshake_timeout = kDefaultHandshakeTimeout;
  Milliseconds http_request_timeout = kDefaultHttpRequestTimeout;
  Milliseconds http_body_timeout = kDefaultHttpBodyTimeout;
  Milliseconds http_write_timeout = kDefaultHttpWriteTimeout;
  Milliseconds websocket_idle_timeout = kDefaultWebSocketIdleTimeout;
  Milliseconds close_timeout = kDefaultCloseTimeout;
  Milliseconds drain_timeout = kDefaultDrainTimeout;
  std::size_t max_header_bytes = kDefaultMaxHeaderBytes;
  std::uint64_t max_body_bytes = kDefaultMaxBodyBytes;
  std::uint64_t max_frame_bytes = kDefaultMaxFrameBytes;
  std::size_t max_queued_frames = kDefaultMaxQueuedFrames;
  std::size_t max_queued_bytes = kDefaultMaxQueuedBytes;
  std::size_t max_pending_frames = kDefaultMaxPendingFrames;
  std::size_t max_connections = kDefaultMaxConnections;
  // 0 means one thread per core.
  unsigned io_threads = 0;
  unsigned worker_threads = 0;
};

// --- What the service reads ---------------------------------------------------------------
struct AuthConfig {
  Seconds session_token_lifetime{24 * 3600};
  Seconds challenge_lifetime{60};
  Seconds enrolment_code_lifetime{7 * 24 * 3600};
};

struct QuotaConfig {
  std::uint64_t max_blob_bytes = 2ull * 1024 * 1024 * 1024;           // one document version
  std::uint64_t max_team_storage_bytes = 50ull * 1024 * 1024 * 1024;  // blobs of one team
  std::uint64_t max_mailbox_messages = 10'000;                        // per device, unacked
  std::uint64_t max_mailbox_bytes = 256ull * 1024 * 1024;             // per device, unacked
  std::uint32_t max_devices_per_user = 10;
  std::uint32_t max_one_time_prekeys = 200;  // per device upload
  // Blobs created by one device, in all teams: one device cannot fill every team it is in.
  std::uint64_t max_device_storage_bytes = 20ull * 1024 * 1024 * 1024;
  // Stored per device, so that repeated uploads cannot grow the store without end.
  std::uint32_t max_stored_one_time_prekeys = 1000;
};

// Token buckets: `*_per_second` is the refill rate, `*_burst` the bucket size.
struct RateLimitConfig {
  double requests_per_second_per_device = 50;
  std::uint32_t requests_burst_per_device = 200;
  double auth_attempts_per_minute_per_address = 30;
  std::uint32_t auth_burst_per_address = 10;
  double upload_bytes_per_second_per_device = 50.0 * 1024 * 1024;
};

// Fields of the audit log entries this relay writes (DESIGN.md "Audit").
struct AuditConfig {
  std::string origin = "coffre-relay.invalid/log";  // log origin in checkpoints
  std::string node = "relay-1";                     // this relay node
  std::string jurisdiction = "FR";                  // where the node runs
  // The organisation's auditor key (X25519, 64 hex digits in the file): details of events that
  // concern no team with an auditor key of its own are sealed to it. None: such events
  // keep no details.
  std::optional<crypto::X25519PublicKey> auditor_key;
  // Retention (decision 0016): sealed details are erased once older than this many months
  // (6 at least, as access-log rules ask), except in the months under legal hold. The
  // entries themselves, and every proof, stay.
  std::uint32_t retention_months = 12;
  std::vector<std::int64_t> legal_hold_months;  // months since 1970-01 ("YYYY-MM" in the file)
};

struct ListenAddress {
  std::string host;  // IPv4 dotted or IPv6 without brackets
  std::uint16_t port = 0;
};

struct RelayConfig {
  std::filesystem::path data_dir;
  std::string listen = "127.0.0.1:8443";
  // Both or neither: without them a self-signed certificate is kept in data_dir.
  std::optional<std::filesystem::path> tls_certificate;
  std::optional<std::filesystem::path> tls_private_key;
  LogLevel log_level = LogLevel::kInfo;
  TransportLimits limits;
  AuthConfig auth;
  QuotaConfig quotas;
  RateLimitConfig rate_limits;
  AuditConfig audit;
};

// Parses TOML text over `base` (fields absent from the text keep base's values). Unknown
// keys, wrong types and out-of-range values are refused (a typo must not silently keep a
// default). On failure `detail`, if given, receives one line naming the key or the TOML
// syntax error; the Error itself is kInvalidArgument.
Result<RelayConfig> ParseRelayConfig(std::string_view toml_text, RelayConfig base,
                                     std::string* detail = nullptr);
// Reads `path` and parses it as above; kIo if the file cannot be read.
Result<RelayConfig> LoadRelayConfigFile(const std::filesystem::path& path, RelayConfig base,
                                        std::string* detail = nullptr);
// Checks cross-field rules (data_dir set, certificate and key both or neither, limits
// non-zero, listen address parses). Same `detail` convention.
Status ValidateRelayConfig(const RelayConfig& config, std::string* detail = nullptr);

// "127.0.0.1:8443", "[::1]:8443", "0.0.0.0:0" (port 0: the system picks one).
Result<ListenAddress> ParseListenAddress(std::string_view text);

// Creates `dir` (and parents) with mode 0700 if missing. kIo on failure.
Status EnsureDataDirectory(const std::filesystem::path& dir);

// Small files of the data directory (keys, certificates).
// Writes `bytes` to `path` so that a crash leaves either the old file or the new one: a
// temporary file created with `mode` (e.g. 0600), fsync'd, renamed over `path`, then the
// directory fsync'd. kIo on failure.
Status WriteFileAtomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                           unsigned mode);
// Reads a regular file of at most `max_bytes` into wiped-on-free memory. kNotFound if it does
// not exist, kIo if it cannot be read, kInvalidArgument if it is larger than `max_bytes`.
Result<crypto::SecretBytes> ReadSmallFile(const std::filesystem::path& path,
                                          std::size_t max_bytes = 1024 * 1024);

// The operator key that encrypts the relay store at rest: 32 bytes.
//   - COFFRE_RELAY_KEY set: exactly 64 hex digits, used as is (nothing written to disk);
//     anything else is kInvalidArgument.
//   - else `dir`/operator.key: read if present (exactly 32 bytes, else kCorrupt), otherwise
//     32 random bytes are written there with mode 0600 and fsync'd before returning.
// kIo if the file cannot be read or written. Never logs the key.
inline constexpr std::string_view kOperatorKeyEnv = "COFFRE_RELAY_KEY";
inline constexpr std::string_view kOperatorKeyFile = "operator.key";
inline constexpr std::size_t kOperatorKeyBytes = 32;
Result<crypto::SecretBytes> LoadOrCreateOperatorKey(const std::filesystem::path& dir);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_CONFIG_H_
