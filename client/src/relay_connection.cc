// The client's only Beast/Asio translation unit (PITFALLS.md §17): everything that needs
// them stays behind RelayConnection::Impl.
//
// Every operation runs on one io_context owned by the connection, driven from the calling
// thread until the operation completes or its deadline passes (then the socket is closed
// and the aborted handler waited for, so no handler outlives the frame that started it).
// The WebSocket keeps one read outstanding; its handler validates each message and files it
// as the response awaited, a kept push, or a protocol failure that closes the connection.
#include "coffre/client/relay_connection.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <deque>
#include <exception>
#include <string>
#include <utility>

#include "coffre/crypto/secret_bytes.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"

namespace coffre::client {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
// ssl::stream directly rather than beast::ssl_stream: the latter coalesces small writes
// into a buffer of its own that is never wiped, and HTTP headers carry the session token.
using TlsStream = ssl::stream<tcp::socket>;

constexpr std::string_view kWebSocketPath = "/v1/ws";
constexpr std::string_view kBlobPathPrefix = "/v1/blobs/";
constexpr std::string_view kUserAgent = "coffre-client";
// Pushes read while waiting for something else, kept for NextPush. A relay that sends more
// without being read is misbehaving (its own write queue holds 64 frames, 8 MiB).
constexpr std::size_t kMaxKeptPushes = 1024;
constexpr std::size_t kMaxKeptPushBytes = std::size_t{32} << 20;
// Requests whose Call timed out and whose late response is still expected (and dropped).
constexpr std::size_t kMaxAbandonedCalls = 64;
// HTTP: header size, and the body of a reply that is not the blob bytes (JSON progress or
// error, a few hundred bytes).
constexpr std::uint32_t kMaxHttpHeader = 16 * 1024;
constexpr std::uint64_t kMaxHttpSmallBody = 64 * 1024;
// How long an aborted operation is given to report, and the wait for the relay's answer
// to our close frame.
constexpr Millis kAbortWait{2000};
constexpr Millis kCloseWait{2000};
// After an HTTP reply, how long a write still outstanding is given to finish.
constexpr Millis kWriteSettleWait{200};

std::span<std::uint8_t> MutableBytes(std::string& text) {
  return {reinterpret_cast<std::uint8_t*>(text.data()), text.size()};
}

ByteView AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string_view AsText(ByteView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void AppendHex(std::string& out, ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (const std::uint8_t byte : bytes) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
}

// Wipes a std::string holding secret bytes when it goes out of scope.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& text) : text_(text) {}
  ~WipeOnExit() { crypto::Wipe(MutableBytes(text_)); }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;

 private:
  std::string& text_;
};

// An allocator that wipes what it frees: HTTP request headers hold the bearer token, and
// WebSocket messages may hold a session token.
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT: rebinding
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    crypto::Wipe({reinterpret_cast<std::uint8_t*>(p), n * sizeof(T)});
    std::allocator<T>().deallocate(p, n);
  }
  friend bool operator==(const WipingAllocator&, const WipingAllocator&) { return true; }
  friend bool operator!=(const WipingAllocator&, const WipingAllocator&) { return false; }
};
using WipingFields = http::basic_fields<WipingAllocator<char>>;
// WebSocket messages from the relay (session tokens among them), wiped as the buffer grows.
using WipingBuffer = beast::basic_flat_buffer<WipingAllocator<char>>;
using BlobRequest = http::request<http::vector_body<std::uint8_t>, WipingFields>;
using BlobResponseParser = http::response_parser<http::vector_body<std::uint8_t>>;

// --- Running the io_context with deadlines --------------------------------------------------

// Runs handlers until `done()` holds or `deadline` passes; a deadline already past still
// runs what is ready. True when done() holds.
template <class Done>
bool RunUntil(net::io_context& ioc, Clock::time_point deadline, Done&& done) {
  ioc.restart();
  while (!done()) {
    if (Clock::now() >= deadline) {
      ioc.poll();
      return done();
    }
    if (ioc.run_one_until(deadline) == 0 && ioc.stopped()) return done();
  }
  return true;
}

// Starts an operation through `start(done)`, where `done(error_code)` must be called by its
// handler, and runs until it completes or `deadline` passes. On timeout `cancel()` (closing
// the socket) aborts it and the aborted handler is waited for; returns timed_out. The state
// the handler writes is shared, so even a handler that never reports cannot write into a
// dead frame; *stuck is set in that case and the caller must stop using the io_context.
template <class Start, class Cancel>
error_code Await(net::io_context& ioc, Clock::time_point deadline, bool* stuck, Start&& start,
                 Cancel&& cancel) {
  auto result = std::make_shared<std::optional<error_code>>();
  start([result](error_code ec) { *result = ec; });
  if (RunUntil(ioc, deadline, [&] { return result->has_value(); })) return **result;
  cancel();
  if (!RunUntil(ioc, Clock::now() + kAbortWait, [&] { return result->has_value(); })) {
    *stuck = true;
  }
  return net::error::timed_out;
}

void CloseSocket(tcp::socket& socket) {
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

// The TLS stream under the WebSocket, with a teardown of its own that Beast finds by
// argument-dependent lookup (only the asynchronous one is used). It closes the TCP
// connection without waiting for the relay's TLS close_notify: Beast's teardown for
// ssl::stream waits for it, and when that fails (a relay that answers our close frame after
// our close_notify, or never answers) Beast reports the teardown's failure instead of why it
// failed the connection, such as an oversized message. By then the WebSocket close
// handshake is over, or the connection is being failed: nothing is lost.
class WsTransport {
 public:
  using executor_type = TlsStream::executor_type;
  using next_layer_type = TlsStream;

  WsTransport(net::io_context& ioc, ssl::context& context) : tls_(ioc, context) {}

  executor_type get_executor() noexcept { return tls_.get_executor(); }
  TlsStream& next_layer() { return tls_; }
  const TlsStream& next_layer() const { return tls_; }

  template <class Buffers, class Handler>
  auto async_read_some(const Buffers& buffers, Handler&& handler) {
    return tls_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  auto async_write_some(const Buffers& buffers, Handler&& handler) {
    return tls_.async_write_some(buffers, std::forward<Handler>(handler));
  }

 private:
  TlsStream tls_;
};
using WsStream = websocket::stream<WsTransport>;

template <class Handler>
void async_teardown(beast::role_type, WsTransport& transport, Handler&& handler) {
  CloseSocket(transport.next_layer().next_layer());
  net::post(transport.get_executor(),
            beast::bind_front_handler(std::forward<Handler>(handler), error_code{}));
}

bool IsIpAddress(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// --- TLS with a pinned certificate ------------------------------------------------------------

// What the certificate check saw during one handshake; written by VerifyPinnedCertificate.
struct PinCheck {
  std::optional<CertificateFingerprint> expected;
  std::optional<CertificateFingerprint> seen;
  bool mismatch = false;
};

std::optional<CertificateFingerprint> CertificateSha256(X509* certificate) {
  if (certificate == nullptr) return std::nullopt;
  CertificateFingerprint digest{};
  unsigned length = 0;
  // X509_digest hashes the DER encoding of the certificate.
  if (X509_digest(certificate, EVP_sha256(), digest.data(), &length) != 1 ||
      length != digest.size()) {
    return std::nullopt;
  }
  return digest;
}

// Replaces OpenSSL's chain verification (SSL_CTX_set_cert_verify_callback): the relay is
// trusted by the fingerprint of its leaf certificate, not through a certificate authority.
// OpenSSL calls it when the server's Certificate message arrives, before the client sends
// its Finished, so a mismatch ends the handshake before any application byte is written.
int VerifyPinnedCertificate(X509_STORE_CTX* store, void* arg) {
  auto* check = static_cast<PinCheck*>(arg);
  const std::optional<CertificateFingerprint> digest =
      CertificateSha256(X509_STORE_CTX_get0_cert(store));
  if (!digest) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED);
    return 0;
  }
  check->seen = *digest;
  if (check->expected && !crypto::ConstantTimeEquals(*check->expected, *digest)) {
    check->mismatch = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
  }
  return 1;
}

// A TLS 1.3 client context whose certificate check is `check` (which must outlive it).
// Throws (boost::system::system_error) if OpenSSL cannot create the context.
std::unique_ptr<ssl::context> NewTlsContext(PinCheck* check) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  // Received plaintext (session tokens among it) is wiped from OpenSSL's buffers once read.
  SSL_CTX_set_options(native, SSL_OP_CLEANSE_PLAINTEXT);
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_cert_verify_callback(native, &VerifyPinnedCertificate, check);
  return context;
}

// After a completed handshake: TLS 1.3, and the certificate the session holds is the one
// the callback checked (a second look, so a skipped callback could never go unnoticed).
Status CheckEstablishedTls(SSL* ssl, const PinCheck& check) {
  if (SSL_version(ssl) != TLS1_3_VERSION) {
    return Fail(ErrorCode::kIo, "relay did not negotiate TLS 1.3");
  }
  const std::optional<CertificateFingerprint> digest =
      CertificateSha256(SSL_get0_peer_certificate(ssl));
  if (!digest || !check.seen || !crypto::ConstantTimeEquals(*digest, *check.seen) ||
      (check.expected && !crypto::ConstantTimeEquals(*digest, *check.expected))) {
    return Fail(ErrorCode::kUntrustedIdentity,
                "relay's TLS certificate does not match the pinned fingerprint");
  }
  return Ok();
}

// --- Blob HTTP helpers -----------------------------------------------------------------------

std::optional<std::uint64_t> ParseDecimal(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t total = 0;
};

// "bytes a-b/total" (RFC 9110 §14.4), the only form a 206 from the relay may carry.
std::optional<ContentRange> ParseContentRange(std::string_view text) {
  constexpr std::string_view kUnit = "bytes ";
  if (!text.starts_with(kUnit)) return std::nullopt;
  text.remove_prefix(kUnit.size());
  const std::size_t dash = text.find('-');
  const std::size_t slash = text.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  const auto first = ParseDecimal(text.substr(0, dash));
  const auto last = ParseDecimal(text.substr(dash + 1, slash - dash - 1));
  const auto total = ParseDecimal(text.substr(slash + 1));
  if (!first || !last || !total || *first > *last || *last >= *total) return std::nullopt;
  return ContentRange{*first, *last, *total};
}

// The wire code named by a blob error body {"code":"NAME",...}; nullopt if there is none.
std::optional<wire::v1::ErrorCode> JsonErrorCode(std::string_view body) {
  constexpr std::string_view kKey = "\"code\":\"";
  const std::size_t at = body.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view rest = body.substr(at + kKey.size());
  const std::size_t end = rest.find('"');
  if (end == std::string_view::npos || end == 0 || end > 32) return std::nullopt;
  const std::string_view name = rest.substr(0, end);
  if (!std::all_of(name.begin(), name.end(),
                   [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; })) {
    return std::nullopt;
  }
  std::string full = "ERROR_CODE_";
  full += name;
  wire::v1::ErrorCode code = wire::v1::ERROR_CODE_UNSPECIFIED;
  if (!wire::v1::ErrorCode_Parse(full, &code)) return std::nullopt;
  return code;
}

// The wire code a blob reply without a JSON error body stands for: the relay's transport
// answers some failures (oversized header or body, draining) in plain text.
std::optional<wire::v1::ErrorCode> CodeForStatus(unsigned status) {
  switch (status) {
    case 400:
      return wire::v1::ERROR_CODE_MALFORMED;
    case 401:
      return wire::v1::ERROR_CODE_UNAUTHENTICATED;
    case 403:
      return wire::v1::ERROR_CODE_FORBIDDEN;
    case 404:
      return wire::v1::ERROR_CODE_NOT_FOUND;
    case 409:
      return wire::v1::ERROR_CODE_CONFLICT;
    case 413:
      return wire::v1::ERROR_CODE_TOO_LARGE;
    case 429:
      return wire::v1::ERROR_CODE_RATE_LIMITED;
    case 503:
      return wire::v1::ERROR_CODE_UNAVAILABLE;
    default:
      break;
  }
  if (status >= 500 && status < 600) return wire::v1::ERROR_CODE_INTERNAL;
  return std::nullopt;
}

// The Error for a blob reply other than success (docs/protocol.md, "Blobs over HTTP"):
// by the JSON code when there is one, else by the status (transport replies are text).
Error BlobHttpError(unsigned status, std::string_view body, bool put) {
  if (status == 416) {
    return Error(ErrorCode::kInvalidArgument,
                 "relay cannot serve that byte range: it starts past the end of the blob");
  }
  std::optional<wire::v1::ErrorCode> code = JsonErrorCode(body);
  if (!code) code = CodeForStatus(status);
  if (!code) {
    return Error(ErrorCode::kCorrupt, "relay answered a blob request with an unexpected status");
  }
  switch (*code) {
    case wire::v1::ERROR_CODE_SIZE_MISMATCH:
      return Error(ErrorCode::kInvalidArgument,
                   "relay refused the chunk: it goes beyond the blob's declared size");
    case wire::v1::ERROR_CODE_CONFLICT:
      return put ? Error(ErrorCode::kConflict,
                         "relay refused the chunk: the offset is not the number of bytes "
                         "received, or the blob is already complete")
                 : Error(ErrorCode::kConflict, "blob upload is not complete yet");
    case wire::v1::ERROR_CODE_NOT_FOUND:
      return Error(ErrorCode::kNotFound, "relay has no such blob in this team");
    case wire::v1::ERROR_CODE_FORBIDDEN:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay refused the blob transfer: not a current member of the team with a "
                   "role that allows it");
    case wire::v1::ERROR_CODE_UNAUTHENTICATED:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay does not accept the session token (unknown or expired): "
                   "authenticate again");
    case wire::v1::ERROR_CODE_TOO_LARGE:
      return Error(ErrorCode::kResourceExhausted, "relay refused the chunk as too large");
    default:
      return ErrorFromWire(*code);
  }
}

Status CheckBlobIds(ByteView team_id, ByteView blob_id) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateTeamId(AsText(team_id)));
  return protocol::ValidateBlobId(AsText(blob_id));
}

std::string BlobTarget(ByteView team_id, ByteView blob_id) {
  std::string target(kBlobPathPrefix);
  AppendHex(target, team_id);
  target += '/';
  AppendHex(target, blob_id);
  return target;
}

// One HTTP exchange's outcome.
struct HttpReply {
  unsigned status = 0;
  bool keep_alive = false;
  std::string content_range;
  Bytes body;
};

}  // namespace

// --- The connection ---------------------------------------------------------------------------

struct RelayConnection::Impl {
  // The second TLS connection, for blob HTTP.
  struct HttpLink {
    explicit HttpLink(net::io_context& ioc, const CertificateFingerprint& identity)
        : check{identity, std::nullopt, false},
          context(NewTlsContext(&check)),
          stream(ioc, *context) {}
    PinCheck check;
    std::unique_ptr<ssl::context> context;
    TlsStream stream;
    beast::flat_buffer buffer;
  };

  explicit Impl(const ConnectOptions& connect_options)
      : options(connect_options),
        ws_check{connect_options.pinned, std::nullopt, false},
        ws_context(NewTlsContext(&ws_check)),
        ws(ioc, *ws_context) {
    // Host: host:port, an IPv6 address in brackets (RFC 9110 §7.2, RFC 3986 §3.2.2).
    const bool ipv6 = options.address.host.find(':') != std::string::npos;
    if (ipv6) host_header += '[';
    host_header += options.address.host;
    if (ipv6) host_header += ']';
    host_header += ':';
    host_header += std::to_string(options.address.port);
  }

  ~Impl() {
    // With `stuck`, handlers may still refer to buffers: they are destroyed with the
    // io_context, never run.
    if (stuck) return;
    try {
      Close();
    } catch (const std::exception&) {
      stuck = true;
    }
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  static Status CheckTimeout(std::optional<Millis> timeout) {
    if (timeout && *timeout <= Millis(0)) {
      return Fail(ErrorCode::kInvalidArgument, "a relay call's timeout must be positive");
    }
    return Ok();
  }

  Clock::time_point DeadlineFor(std::optional<Millis> timeout) const {
    return Clock::now() + timeout.value_or(options.timeout);
  }

  // Records the first failure and drops the WebSocket's TCP connection. Later failures keep
  // the first sentence, which names the cause.
  void FailWith(const Error& error) {
    if (!failure) failure = error;
    CloseSocket(beast::get_lowest_layer(ws));
  }

  // The io_context can no longer be driven safely (an aborted operation never reported).
  void MarkStuck() {
    stuck = true;
    FailWith(Error(ErrorCode::kInternal, "relay connection is in an unknown state and was closed"));
    if (http) CloseSocket(http->stream.next_layer());
  }

  // --- Connect ---

  Status Connect() {
    const Clock::time_point deadline = DeadlineFor(std::nullopt);
    // Name resolution, unless the host is an address already.
    std::vector<tcp::endpoint> endpoints;
    if (IsIpAddress(options.address.host)) {
      endpoints.emplace_back(net::ip::make_address(options.address.host), options.address.port);
    } else {
      tcp::resolver resolver(ioc);
      auto results = std::make_shared<tcp::resolver::results_type>();
      const error_code ec = Await(
          ioc, deadline, &stuck,
          [&](auto done) {
            resolver.async_resolve(options.address.host, std::to_string(options.address.port),
                                   [done, results](error_code e, tcp::resolver::results_type r) {
                                     *results = std::move(r);
                                     done(e);
                                   });
          },
          [&] { resolver.cancel(); });
      if (stuck) return Fail(ErrorCode::kIo, "timed out resolving the relay's host name");
      if (ec == net::error::timed_out) {
        return Fail(ErrorCode::kIo, "timed out resolving the relay's host name");
      }
      if (ec || results->empty()) {
        return Fail(ErrorCode::kIo, "could not resolve the relay's host name");
      }
      for (const auto& entry : *results) endpoints.push_back(entry.endpoint());
    }

    // TCP.
    tcp::socket& socket = beast::get_lowest_layer(ws);
    auto connected = std::make_shared<tcp::endpoint>();
    error_code ec = Await(
        ioc, deadline, &stuck,
        [&](auto done) {
          net::async_connect(socket, endpoints,
                             [done, connected](error_code e, const tcp::endpoint& endpoint) {
                               *connected = endpoint;
                               done(e);
                             });
        },
        [&] { CloseSocket(socket); });
    if (ec == net::error::timed_out) {
      return Fail(ErrorCode::kIo, "timed out connecting to the relay");
    }
    if (ec) return Fail(ErrorCode::kIo, "could not connect to the relay");
    relay_endpoint = *connected;
    // Requests span several TLS records: without this the second one waits for the relay's
    // delayed acknowledgement (about 40 ms per large request).
    error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);

    // TLS 1.3, certificate pinned inside the handshake.
    COFFRE_RETURN_IF_ERROR(HandshakeTls(ws.next_layer().next_layer(), ws_check, deadline));
    identity = *ws_check.seen;

    // WebSocket upgrade.
    ws.set_option(websocket::stream_base::decorator([](websocket::request_type& request) {
      request.set(http::field::user_agent, kUserAgent);
    }));
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options.timeout;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws.set_option(timeouts);
    // No permessage-deflate: compressing attacker-influenced data next to secrets is what
    // STYLE.md habit 5 forbids, and ciphertext does not compress.
    websocket::permessage_deflate deflate;
    deflate.client_enable = false;
    deflate.server_enable = false;
    ws.set_option(deflate);
    ws.read_message_max(protocol::kMaxFrameSize);
    ws.binary(true);
    auto upgrade_response = std::make_shared<websocket::response_type>();
    ec = Await(
        ioc, deadline, &stuck,
        [&](auto done) {
          ws.async_handshake(*upgrade_response, host_header, kWebSocketPath,
                             [done, upgrade_response](error_code e) { done(e); });
        },
        [&] { CloseSocket(socket); });
    if (ec == net::error::timed_out) {
      return Fail(ErrorCode::kIo, "timed out upgrading the relay connection to a WebSocket");
    }
    if (ec == websocket::error::upgrade_declined &&
        upgrade_response->result() == http::status::service_unavailable) {
      return Fail(ErrorCode::kIo, "relay is draining: connect again later");
    }
    if (ec) return Fail(ErrorCode::kIo, "relay refused the WebSocket upgrade on /v1/ws");
    ws_open = true;
    StartRead();
    return Ok();
  }

  // SNI, then the TLS handshake on `stream` within `deadline`, then the established-session
  // checks.
  Status HandshakeTls(TlsStream& stream, const PinCheck& check, Clock::time_point deadline) {
    // RFC 6066 §3: SNI carries DNS names only, never a literal address.
    if (!IsIpAddress(options.address.host) &&
        SSL_set_tlsext_host_name(stream.native_handle(), options.address.host.c_str()) != 1) {
      return Fail(ErrorCode::kInternal, "could not set the TLS server name");
    }
    tcp::socket& socket = stream.next_layer();
    const error_code ec = Await(
        ioc, deadline, &stuck,
        [&](auto done) {
          stream.async_handshake(ssl::stream_base::client, [done](error_code e) { done(e); });
        },
        [&] { CloseSocket(socket); });
    if (check.mismatch) {
      CloseSocket(socket);
      return Fail(ErrorCode::kUntrustedIdentity,
                  "relay's TLS certificate does not match the pinned fingerprint");
    }
    if (ec == net::error::timed_out) {
      return Fail(ErrorCode::kIo, "timed out in the TLS handshake with the relay");
    }
    if (ec) return Fail(ErrorCode::kIo, "TLS 1.3 handshake with the relay failed");
    if (auto established = CheckEstablishedTls(stream.native_handle(), check); !established) {
      CloseSocket(socket);
      return established.error();
    }
    return Ok();
  }

  // --- WebSocket reading ---

  void StartRead() {
    if (read_pending || failure || !ws_open) return;
    read_pending = true;
    ws.async_read(read_buffer, [this](error_code ec, std::size_t) {
      read_pending = false;
      OnRead(ec);
    });
  }

  void OnRead(error_code ec) {
    if (ec) {
      if (ec == websocket::error::closed) {
        FailWith(ws.reason().code == websocket::close_code::going_away
                     ? Error(ErrorCode::kIo, "relay closed the connection: it is going away")
                     : Error(ErrorCode::kIo, "relay closed the connection"));
      } else if (ec == websocket::error::message_too_big) {
        FailWith(Error(ErrorCode::kCorrupt,
                       "relay sent a message larger than the protocol's frame size limit"));
      } else {
        FailWith(Error(ErrorCode::kIo, "connection to the relay was lost"));
      }
      return;
    }
    const auto data = read_buffer.data();
    const std::span<std::uint8_t> bytes(static_cast<std::uint8_t*>(data.data()), data.size());
    const std::size_t size = bytes.size();
    // Responses carry session tokens: no copy of a message outlives its parsing.
    const auto discard = [&] {
      crypto::Wipe(bytes);
      read_buffer.consume(read_buffer.size());
    };
    if (!ws.got_binary()) {
      discard();
      FailWith(Error(ErrorCode::kCorrupt,
                     "relay sent a text message; the protocol uses binary messages only"));
      return;
    }
    Result<wire::v1::Frame> frame = protocol::ParseRelayFrame(bytes);
    discard();
    if (!frame) {
      FailWith(Error(ErrorCode::kCorrupt, "relay sent a frame that fails protocol validation"));
      return;
    }
    if (frame->has_push()) {
      if (pushes.size() >= kMaxKeptPushes || kept_push_bytes + size > kMaxKeptPushBytes) {
        FailWith(Error(ErrorCode::kResourceExhausted,
                       "relay sent more pushes than the client keeps unread"));
        return;
      }
      kept_push_bytes += size;
      pushes.emplace_back(std::move(*frame->mutable_push()), size);
    } else {
      // ParseRelayFrame refuses requests: this is a response.
      wire::v1::Response& response = *frame->mutable_response();
      const std::uint64_t id = response.id();
      // Id 0 answers bytes the relay could not parse at all; with one request in flight
      // at a time it can only be that one.
      if (awaited_id != 0 && (id == awaited_id || id == 0)) {
        awaited = std::move(response);
        awaited_id = 0;
      } else if (const auto it = std::find(abandoned.begin(), abandoned.end(), id);
                 id != 0 && it != abandoned.end()) {
        abandoned.erase(it);  // the late answer to a Call that timed out
      } else {
        FailWith(Error(ErrorCode::kCorrupt, "relay sent a response to no request in flight"));
        return;
      }
    }
    StartRead();
  }

  std::optional<wire::v1::Push> PopPush() {
    if (pushes.empty()) return std::nullopt;
    std::pair<wire::v1::Push, std::size_t> kept = std::move(pushes.front());
    pushes.pop_front();
    kept_push_bytes -= kept.second;
    return std::move(kept.first);
  }

  // --- Calls ---

  Result<wire::v1::Response> Call(wire::v1::Request request, std::optional<Millis> timeout) {
    COFFRE_RETURN_IF_ERROR(CheckTimeout(timeout));
    if (failure) return *failure;
    const std::uint64_t id = ++next_id;
    request.set_id(id);
    COFFRE_RETURN_IF_ERROR(protocol::ValidateRequest(request));
    wire::v1::Frame frame;
    frame.set_version(protocol::kProtocolVersion);
    *frame.mutable_request() = std::move(request);
    std::string bytes;
    WipeOnExit wipe(bytes);
    if (frame.ByteSizeLong() > protocol::kMaxFrameSize) {
      return Fail(ErrorCode::kResourceExhausted,
                  "request is larger than the protocol's frame size limit");
    }
    if (!frame.SerializeToString(&bytes)) {
      return Fail(ErrorCode::kInternal, "could not serialize the request");
    }
    const Clock::time_point deadline = DeadlineFor(timeout);
    awaited_id = id;
    awaited.reset();
    StartRead();
    const error_code ec = Await(
        ioc, deadline, &stuck,
        [&](auto done) {
          ws.async_write(net::buffer(bytes), [done](error_code e, std::size_t) { done(e); });
        },
        [&] { CloseSocket(beast::get_lowest_layer(ws)); });
    if (stuck) MarkStuck();
    if (ec == net::error::timed_out) {
      FailWith(Error(ErrorCode::kIo, "timed out sending to the relay"));
    } else if (ec) {
      FailWith(Error(ErrorCode::kIo, "could not send to the relay: connection lost"));
    }
    if (!failure)
      RunUntil(ioc, deadline, [&] { return awaited.has_value() || failure.has_value(); });
    if (awaited) {
      wire::v1::Response response = std::move(*awaited);
      awaited.reset();
      return response;
    }
    awaited_id = 0;
    if (failure) return *failure;
    // Timed out: the connection stays usable, and the answer, if it ever comes, is dropped.
    if (abandoned.size() >= kMaxAbandonedCalls) {
      FailWith(Error(ErrorCode::kIo, "too many requests went unanswered; connection closed"));
      return *failure;
    }
    abandoned.push_back(id);
    return Fail(ErrorCode::kIo, "timed out waiting for the relay's response");
  }

  Result<std::optional<wire::v1::Push>> NextPush(Millis timeout) {
    if (auto push = PopPush()) return push;
    if (failure) return *failure;
    StartRead();
    RunUntil(ioc, Clock::now() + timeout, [&] { return !pushes.empty() || failure.has_value(); });
    if (auto push = PopPush()) return push;
    if (failure) return *failure;
    return std::optional<wire::v1::Push>();
  }

  Result<SessionInfo> Authenticate(std::string_view user_id, std::uint32_t device_id,
                                   const crypto::SigningKey& device_key) {
    wire::v1::Request challenge_request;
    challenge_request.mutable_challenge();
    COFFRE_ASSIGN_OR_RETURN(const wire::v1::Response challenge,
                            Call(std::move(challenge_request), std::nullopt));
    if (challenge.has_error()) return ErrorFromWire(challenge.error().code());
    if (!challenge.has_challenge()) {
      return Fail(ErrorCode::kCorrupt, "relay answered a challenge request with something else");
    }
    // A relay that passes on another relay's challenge would name that relay's certificate.
    if (!crypto::ConstantTimeEquals(AsBytes(challenge.challenge().relay_identity()), identity)) {
      return Fail(ErrorCode::kUntrustedIdentity,
                  "relay's challenge names another certificate than the one this connection sees");
    }
    const std::string& nonce = challenge.challenge().nonce();
    COFFRE_ASSIGN_OR_RETURN(
        const auto signature,
        protocol::SignAuthChallenge(device_key, user_id, device_id, AsBytes(nonce), identity));
    wire::v1::Request request;
    wire::v1::Authenticate* authenticate = request.mutable_authenticate();
    authenticate->set_user_id(std::string(user_id));
    authenticate->set_device_id(device_id);
    authenticate->set_nonce(nonce);
    authenticate->set_signature(std::string(AsText(signature)));
    COFFRE_ASSIGN_OR_RETURN(wire::v1::Response reply, Call(std::move(request), std::nullopt));
    if (!reply.has_session()) {
      if (reply.has_error()) return ErrorFromWire(reply.error().code());
      return Fail(ErrorCode::kCorrupt, "relay answered an authentication with something else");
    }
    std::string& token = *reply.mutable_session()->mutable_token();
    WipeOnExit wipe(token);
    // "Bearer " and the token in hex (docs/protocol.md, "Blobs over HTTP"), built in place.
    static constexpr std::string_view kScheme = "Bearer ";
    static constexpr char kDigits[] = "0123456789abcdef";
    crypto::SecretBytes header(kScheme.size() + 2 * token.size());
    std::copy(kScheme.begin(), kScheme.end(), header.data());
    for (std::size_t i = 0; i < token.size(); ++i) {
      const auto byte = static_cast<std::uint8_t>(token[i]);
      header.data()[kScheme.size() + 2 * i] = static_cast<std::uint8_t>(kDigits[byte >> 4]);
      header.data()[kScheme.size() + 2 * i + 1] = static_cast<std::uint8_t>(kDigits[byte & 0x0f]);
    }
    bearer = std::move(header);
    return SessionInfo{reply.session().expires_ms()};
  }

  // --- Blob HTTP ---

  Status OpenHttp(Clock::time_point deadline) {
    auto link = std::make_unique<HttpLink>(ioc, identity);
    tcp::socket& socket = link->stream.next_layer();
    const error_code ec = Await(
        ioc, deadline, &stuck,
        [&](auto done) { socket.async_connect(relay_endpoint, [done](error_code e) { done(e); }); },
        [&] { CloseSocket(socket); });
    if (stuck) {
      // The link's socket may still have an operation: keep the link alive with the context.
      http = std::move(link);
      MarkStuck();
      return *failure;
    }
    if (ec == net::error::timed_out) {
      return Fail(ErrorCode::kIo, "timed out connecting to the relay for a blob transfer");
    }
    if (ec) return Fail(ErrorCode::kIo, "could not connect to the relay for a blob transfer");
    error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);  // see Connect
    if (auto shaken = HandshakeTls(link->stream, link->check, deadline); !shaken) {
      if (stuck) {
        http = std::move(link);
        MarkStuck();
      }
      if (shaken.error().code() == ErrorCode::kUntrustedIdentity) {
        return Fail(ErrorCode::kUntrustedIdentity,
                    "relay's TLS certificate on the blob connection differs from the one of "
                    "the WebSocket");
      }
      return shaken.error();
    }
    http = std::move(link);
    return Ok();
  }

  void DropHttp() {
    if (!http) return;
    CloseSocket(http->stream.next_layer());
    http.reset();
  }

  // One request on the open link: the write and the read run together, so that a reply
  // sent before the whole body was read (and the connection closed) is still seen.
  // *started is set once any byte of a reply was parsed.
  Result<HttpReply> ExchangeOnce(BlobRequest& request, std::uint64_t body_limit,
                                 Clock::time_point deadline, bool* started) {
    HttpLink& link = *http;
    tcp::socket& socket = link.stream.next_layer();
    auto parser = std::make_shared<BlobResponseParser>();
    parser->header_limit(kMaxHttpHeader);
    parser->body_limit(body_limit);
    auto write_result = std::make_shared<std::optional<error_code>>();
    auto read_result = std::make_shared<std::optional<error_code>>();
    http::async_write(link.stream, request,
                      [write_result](error_code ec, std::size_t) { *write_result = ec; });
    http::async_read(link.stream, link.buffer, *parser,
                     [read_result, parser](error_code ec, std::size_t) { *read_result = ec; });
    RunUntil(ioc, deadline, [&] { return read_result->has_value(); });
    if (read_result->has_value() && !write_result->has_value()) {
      // The write's completion may be ready but not yet run; a reply sent early (before the
      // whole body was read) comes with a close, which ends the write soon as well.
      RunUntil(ioc, std::min(deadline, Clock::now() + kWriteSettleWait),
               [&] { return write_result->has_value(); });
    }
    const bool complete = read_result->has_value() && !**read_result;
    if (!complete || !write_result->has_value()) {
      // Timed out, failed, or answered while the body was still going out: this connection
      // is done either way.
      CloseSocket(socket);
      if (!RunUntil(ioc, Clock::now() + kAbortWait,
                    [&] { return read_result->has_value() && write_result->has_value(); })) {
        MarkStuck();
        return *failure;
      }
    }
    *started = parser->got_some();
    if (!complete) {
      const error_code ec = **read_result;
      if (ec == http::error::body_limit) {
        return Fail(ErrorCode::kCorrupt, "relay sent a blob reply larger than was asked for");
      }
      if (ec == http::error::header_limit) {
        return Fail(ErrorCode::kCorrupt, "relay sent an oversized HTTP header");
      }
      if (Clock::now() >= deadline) {
        return Fail(ErrorCode::kIo, "timed out in a blob transfer with the relay");
      }
      if (*started && ec.category() == http::make_error_code(http::error::bad_target).category()) {
        return Fail(ErrorCode::kCorrupt, "relay sent a malformed HTTP reply");
      }
      return Fail(ErrorCode::kIo, "connection to the relay was lost during a blob transfer");
    }
    auto& response = parser->get();
    HttpReply reply;
    reply.status = response.result_int();
    reply.keep_alive = response.keep_alive() && write_result->has_value() && !**write_result;
    const auto range = response[http::field::content_range];
    reply.content_range.assign(range.data(), range.size());
    reply.body = std::move(response.body());
    return reply;
  }

  // Sends `request` on the kept-alive blob connection, opening it if needed. The relay
  // closes a connection idle for longer than its keep-alive timeout; a request that meets
  // such a connection before any reply byte is sent once more on a fresh one.
  Result<HttpReply> Exchange(BlobRequest& request, std::uint64_t body_limit,
                             Clock::time_point deadline) {
    if (stuck) return *failure;
    if (closed) return Fail(ErrorCode::kIo, "connection to the relay is closed");
    // Keep the WebSocket answering pings and keeping pushes while the bytes travel.
    StartRead();
    for (int attempt = 0;; ++attempt) {
      const bool reused = http != nullptr;
      if (!reused) COFFRE_RETURN_IF_ERROR(OpenHttp(deadline));
      bool started = false;
      Result<HttpReply> reply = ExchangeOnce(request, body_limit, deadline, &started);
      if (stuck) return *failure;
      if (reply && reply->keep_alive) return reply;
      DropHttp();
      if (reply || !reused || started || attempt > 0 || Clock::now() >= deadline) return reply;
    }
  }

  BlobRequest NewBlobRequest(http::verb method, std::string target) const {
    BlobRequest request{method, target, 11};
    request.set(http::field::host, host_header);
    request.set(http::field::user_agent, kUserAgent);
    request.set(http::field::authorization,
                std::string_view(reinterpret_cast<const char*>(bearer.data()), bearer.size()));
    request.keep_alive(true);
    return request;
  }

  Status PutBlobChunk(ByteView team_id, ByteView blob_id, std::uint64_t offset, ByteView bytes,
                      std::optional<Millis> timeout) {
    COFFRE_RETURN_IF_ERROR(CheckTimeout(timeout));
    COFFRE_RETURN_IF_ERROR(CheckBlobIds(team_id, blob_id));
    if (bytes.empty() || bytes.size() > protocol::kMaxBlobChunk) {
      return Fail(ErrorCode::kInvalidArgument, "a blob chunk holds 1 byte to 4 MiB");
    }
    if (offset > protocol::kMaxBlobSize || bytes.size() > protocol::kMaxBlobSize - offset) {
      return Fail(ErrorCode::kInvalidArgument, "blob chunk goes beyond the largest blob size");
    }
    if (bearer.empty()) {
      return Fail(ErrorCode::kInvalidArgument, "blob transfers need a session: authenticate first");
    }
    std::string target = BlobTarget(team_id, blob_id);
    target += "?offset=";
    target += std::to_string(offset);
    BlobRequest request = NewBlobRequest(http::verb::put, std::move(target));
    request.set(http::field::content_type, "application/octet-stream");
    request.body().assign(bytes.begin(), bytes.end());
    request.prepare_payload();
    COFFRE_ASSIGN_OR_RETURN(const HttpReply reply,
                            Exchange(request, kMaxHttpSmallBody, DeadlineFor(timeout)));
    if (reply.status == 200) return Ok();
    return BlobHttpError(reply.status, AsText(reply.body), /*put=*/true);
  }

  Result<Bytes> GetBlobRange(ByteView team_id, ByteView blob_id, std::uint64_t first,
                             std::uint64_t last, std::optional<Millis> timeout) {
    COFFRE_RETURN_IF_ERROR(CheckTimeout(timeout));
    COFFRE_RETURN_IF_ERROR(CheckBlobIds(team_id, blob_id));
    if (first > last || last >= protocol::kMaxBlobSize) {
      return Fail(ErrorCode::kInvalidArgument,
                  "blob range must have first <= last, within the largest blob size");
    }
    if (bearer.empty()) {
      return Fail(ErrorCode::kInvalidArgument, "blob transfers need a session: authenticate first");
    }
    const std::uint64_t length = last - first + 1;
    BlobRequest request = NewBlobRequest(http::verb::get, BlobTarget(team_id, blob_id));
    std::string range = "bytes=";
    range += std::to_string(first);
    range += '-';
    range += std::to_string(last);
    request.set(http::field::range, range);
    request.prepare_payload();
    COFFRE_ASSIGN_OR_RETURN(HttpReply reply, Exchange(request, std::max(length, kMaxHttpSmallBody),
                                                      DeadlineFor(timeout)));
    if (reply.status != 206) {
      if (reply.status >= 200 && reply.status < 300) {
        return Fail(ErrorCode::kCorrupt, "relay did not answer the range request with a range");
      }
      return BlobHttpError(reply.status, AsText(reply.body), /*put=*/false);
    }
    const std::optional<ContentRange> served = ParseContentRange(reply.content_range);
    if (!served || served->first != first || served->last > last ||
        served->last - served->first + 1 != reply.body.size()) {
      return Fail(ErrorCode::kCorrupt, "relay's range reply does not match the range asked for");
    }
    return std::move(reply.body);
  }

  // --- Close ---

  void Close() {
    if (closed) return;
    closed = true;
    const bool polite = ws_open && !failure && !stuck;
    if (!failure) failure = Error(ErrorCode::kIo, "connection to the relay is closed");
    DropHttp();
    if (!ws_open || stuck) return;
    tcp::socket& socket = beast::get_lowest_layer(ws);
    if (polite) {
      const Millis wait = std::min(options.timeout, kCloseWait);
      (void)Await(
          ioc, Clock::now() + wait, &stuck,
          [&](auto done) {
            ws.async_close(websocket::close_reason(websocket::close_code::normal),
                           [done](error_code e) { done(e); });
          },
          [&] { CloseSocket(socket); });
      if (stuck) return;
    }
    CloseSocket(socket);
    // Let the outstanding read report while its buffer still exists.
    if (!RunUntil(ioc, Clock::now() + kAbortWait, [&] { return !read_pending; })) stuck = true;
  }

  const ConnectOptions options;
  std::string host_header;
  net::io_context ioc;
  PinCheck ws_check;
  std::unique_ptr<ssl::context> ws_context;
  WsStream ws;
  WipingBuffer read_buffer;
  tcp::endpoint relay_endpoint;  // where the WebSocket connected; blob HTTP goes there too
  CertificateFingerprint identity{};
  bool ws_open = false;
  bool read_pending = false;
  bool closed = false;
  bool stuck = false;
  std::optional<Error> failure;

  std::uint64_t next_id = 0;
  std::uint64_t awaited_id = 0;
  std::optional<wire::v1::Response> awaited;
  std::deque<std::uint64_t> abandoned;
  std::deque<std::pair<wire::v1::Push, std::size_t>> pushes;
  std::size_t kept_push_bytes = 0;

  crypto::SecretBytes bearer;  // "Bearer <token hex>", empty before Authenticate
  std::unique_ptr<HttpLink> http;
};

// --- Public API: every entry point catches what the libraries may throw -------------------------

namespace {
constexpr const char* kUnexpected = "relay connection failed unexpectedly and was closed";
}  // namespace

RelayConnection::RelayConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RelayConnection::~RelayConnection() = default;

Result<std::unique_ptr<RelayConnection>> RelayConnection::Connect(const ConnectOptions& options) {
  if (options.address.host.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "relay address has no host");
  }
  if (options.timeout <= Millis(0)) {
    return Fail(ErrorCode::kInvalidArgument, "relay connection timeout must be positive");
  }
  try {
    auto impl = std::make_unique<Impl>(options);
    COFFRE_RETURN_IF_ERROR(impl->Connect());
    return std::unique_ptr<RelayConnection>(new RelayConnection(std::move(impl)));
  } catch (const std::exception&) {
    return Fail(ErrorCode::kInternal, "could not set up the relay connection");
  }
}

const CertificateFingerprint& RelayConnection::relay_identity() const { return impl_->identity; }

bool RelayConnection::is_open() const { return !impl_->failure.has_value(); }

Result<wire::v1::Response> RelayConnection::Call(wire::v1::Request request,
                                                 std::optional<std::chrono::milliseconds> timeout) {
  try {
    return impl_->Call(std::move(request), timeout);
  } catch (const std::exception&) {
    impl_->MarkStuck();
    return Fail(ErrorCode::kInternal, kUnexpected);
  }
}

Result<std::optional<wire::v1::Push>> RelayConnection::NextPush(std::chrono::milliseconds timeout) {
  try {
    return impl_->NextPush(timeout);
  } catch (const std::exception&) {
    impl_->MarkStuck();
    return Fail(ErrorCode::kInternal, kUnexpected);
  }
}

Result<SessionInfo> RelayConnection::Authenticate(std::string_view user_id, std::uint32_t device_id,
                                                  const crypto::SigningKey& device_key) {
  try {
    return impl_->Authenticate(user_id, device_id, device_key);
  } catch (const std::exception&) {
    impl_->MarkStuck();
    return Fail(ErrorCode::kInternal, kUnexpected);
  }
}

Status RelayConnection::PutBlobChunk(ByteView team_id, ByteView blob_id, std::uint64_t offset,
                                     ByteView bytes,
                                     std::optional<std::chrono::milliseconds> timeout) {
  try {
    return impl_->PutBlobChunk(team_id, blob_id, offset, bytes, timeout);
  } catch (const std::exception&) {
    impl_->MarkStuck();
    return Fail(ErrorCode::kInternal, kUnexpected);
  }
}

Result<Bytes> RelayConnection::GetBlobRange(ByteView team_id, ByteView blob_id, std::uint64_t first,
                                            std::uint64_t last_inclusive,
                                            std::optional<std::chrono::milliseconds> timeout) {
  try {
    return impl_->GetBlobRange(team_id, blob_id, first, last_inclusive, timeout);
  } catch (const std::exception&) {
    impl_->MarkStuck();
    return Fail(ErrorCode::kInternal, kUnexpected);
  }
}

void RelayConnection::Close() {
  try {
    impl_->Close();
  } catch (const std::exception&) {
    impl_->MarkStuck();
  }
}

Error ErrorFromWire(wire::v1::ErrorCode code) {
  switch (code) {
    case wire::v1::ERROR_CODE_MALFORMED:
      return Error(ErrorCode::kInvalidArgument, "relay refused the request as malformed");
    case wire::v1::ERROR_CODE_UNSUPPORTED_VERSION:
      return Error(ErrorCode::kUnsupported, "relay does not speak this protocol version");
    case wire::v1::ERROR_CODE_UNAUTHENTICATED:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay needs a valid session for this request: authenticate again");
    case wire::v1::ERROR_CODE_AUTHENTICATION_FAILED:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay refused the device: unknown or revoked device, wrong key or stale "
                   "challenge");
    case wire::v1::ERROR_CODE_FORBIDDEN:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay refused: not allowed (not a member of the team, or not with that role)");
    case wire::v1::ERROR_CODE_NOT_FOUND:
      return Error(ErrorCode::kNotFound, "relay has no such user, device, team, item or blob");
    case wire::v1::ERROR_CODE_CONFLICT:
      return Error(ErrorCode::kConflict,
                   "relay refused: someone else wrote first (stale version or chain head)");
    case wire::v1::ERROR_CODE_ENROLMENT_INVALID:
      return Error(ErrorCode::kInvalidArgument, "enrolment code is unknown, used or expired");
    case wire::v1::ERROR_CODE_ALREADY_EXISTS:
      return Error(ErrorCode::kAlreadyExists, "relay already has that user, device or blob");
    case wire::v1::ERROR_CODE_INVALID_SIGNATURE:
      return Error(ErrorCode::kAuthenticationFailed,
                   "relay found a signature that does not verify");
    case wire::v1::ERROR_CODE_CHAIN_REJECTED:
      return Error(ErrorCode::kInvalidArgument,
                   "relay rejected the team chain statement: fetch the chain first");
    case wire::v1::ERROR_CODE_TOO_LARGE:
      return Error(ErrorCode::kResourceExhausted, "relay refused: over a size or count limit");
    case wire::v1::ERROR_CODE_QUOTA_EXCEEDED:
      return Error(ErrorCode::kResourceExhausted, "relay refused: storage quota exceeded");
    case wire::v1::ERROR_CODE_RATE_LIMITED:
      return Error(ErrorCode::kResourceExhausted, "relay refused: too many requests, retry later");
    case wire::v1::ERROR_CODE_SIZE_MISMATCH:
      return Error(ErrorCode::kInvalidArgument,
                   "relay refused: blob bytes do not match the declared size");
    case wire::v1::ERROR_CODE_UNAVAILABLE:
      return Error(ErrorCode::kIo, "relay is draining or overloaded: retry later");
    case wire::v1::ERROR_CODE_INTERNAL:
      return Error(ErrorCode::kInternal, "relay failed internally: retry later");
    default:
      return Error(ErrorCode::kCorrupt, "relay answered with an unknown error code");
  }
}

}  // namespace coffre::client
