#include "server/test_client.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cctype>
#include <deque>
#include <optional>

namespace coffre::server::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = beast::error_code;
using Clock = std::chrono::steady_clock;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

tcp::endpoint Loopback(std::uint16_t port) {
  return tcp::endpoint(net::ip::make_address_v4("127.0.0.1"), port);
}

// Starts an operation with a handler that records its error code, runs `ioc` until it
// completes or `timeout` passes; on timeout calls `cancel` (closes the socket) and waits for
// the aborted operation so that nothing refers to this frame afterwards.
template <class Start, class Cancel>
error_code Await(net::io_context& ioc, Millis timeout, Start&& start, Cancel&& cancel) {
  std::optional<error_code> result;
  start([&result](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  const auto deadline = Clock::now() + timeout;
  while (!result && Clock::now() < deadline) ioc.run_one_until(deadline);
  if (result) return *result;
  cancel();
  ioc.restart();
  while (!result) {
    if (ioc.run_one_for(std::chrono::seconds(2)) == 0) break;
  }
  return net::error::timed_out;
}

std::unique_ptr<ssl::context> ClientContext(bool max_tls12) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->set_verify_mode(ssl::verify_none);
  if (max_tls12) {
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  }
  return ctx;
}

std::string Fingerprint(SSL* ssl) {
  X509* certificate = SSL_get1_peer_certificate(ssl);
  if (certificate == nullptr) return {};
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned length = 0;
  const bool ok = X509_digest(certificate, EVP_sha256(), digest.data(), &length) == 1;
  X509_free(certificate);
  if (!ok) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

void CloseSocket(tcp::socket& socket) {
  error_code ec;
  socket.close(ec);
}

// TCP connect + TLS handshake on `stream`.
error_code ConnectTls(net::io_context& ioc, TlsStream& stream, std::uint16_t port, Millis timeout) {
  auto& socket = beast::get_lowest_layer(stream).socket();
  auto cancel = [&socket] { CloseSocket(socket); };
  error_code ec = Await(
      ioc, timeout,
      [&](auto handler) { beast::get_lowest_layer(stream).async_connect(Loopback(port), handler); },
      cancel);
  if (ec) return ec;
  // As real clients do (browsers set it on every socket): with Nagle's algorithm on, the
  // second TLS record of a message larger than 16 KiB waits for the relay's delayed ACK
  // (40 ms on Linux), which would be measured as relay latency.
  socket.set_option(tcp::no_delay(true), ec);
  if (ec) return ec;
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
  return Await(
      ioc, timeout,
      [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); }, cancel);
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Reads one response into `out`; false with out.error set on failure.
bool ReadResponse(net::io_context& ioc, TlsStream& stream, beast::flat_buffer& buffer, bool head,
                  Millis timeout, HttpResponse& out) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  parser.skip(head);
  auto& socket = beast::get_lowest_layer(stream).socket();
  const error_code ec = Await(
      ioc, timeout, [&](auto handler) { http::async_read(stream, buffer, parser, handler); },
      [&socket] { CloseSocket(socket); });
  if (ec) {
    out.error = ec.message();
    return false;
  }
  const auto& response = parser.get();
  out.status = response.result_int();
  out.body = response.body();
  out.headers.clear();
  for (const auto& field : response) {
    out.headers[Lower(std::string_view(field.name_string().data(), field.name_string().size()))] =
        std::string(field.value().data(), field.value().size());
  }
  out.error.clear();
  return true;
}

}  // namespace

HttpResponse HttpsRequest(std::uint16_t port, const HttpRequest& request, Millis timeout) {
  HttpResponse out;
  net::io_context ioc;
  auto ctx = ClientContext(false);
  TlsStream stream(ioc, *ctx);
  auto& socket = beast::get_lowest_layer(stream).socket();
  if (const error_code ec = ConnectTls(ioc, stream, port, timeout)) {
    out.error = "connect/handshake: " + ec.message();
    return out;
  }

  std::string head = request.method + " " + request.target + " HTTP/1.1\r\nHost: localhost\r\n";
  for (const auto& [name, value] : request.headers) head += name + ": " + value + "\r\n";
  std::string body_wire;
  if (request.chunked) {
    head += "Transfer-Encoding: chunked\r\n";
    char size[32];
    std::snprintf(size, sizeof(size), "%zx", request.body.size());
    if (!request.body.empty()) body_wire = std::string(size) + "\r\n" + request.body + "\r\n";
    body_wire += "0\r\n\r\n";
  } else if (!request.body.empty() || request.method == "PUT" || request.method == "POST") {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
    body_wire = request.body;
  }
  if (request.expect_continue) head += "Expect: 100-continue\r\n";
  head += "\r\n";

  beast::flat_buffer buffer;
  const bool is_head = request.method == "HEAD";
  if (request.expect_continue) {
    const error_code ec = Await(
        ioc, timeout, [&](auto handler) { net::async_write(stream, net::buffer(head), handler); },
        [&socket] { CloseSocket(socket); });
    if (ec) {
      out.error = "write header: " + ec.message();
      return out;
    }
    if (!ReadResponse(ioc, stream, buffer, is_head, timeout, out)) return out;
    if (out.status != 100) return out;
    head.clear();
  }

  // Write and read at once: a server that answers early (413) and closes must not leave
  // the client stuck in a write.
  const std::string wire = head + body_wire;
  std::optional<error_code> write_result;
  net::async_write(stream, net::buffer(wire),
                   [&write_result](error_code ec, std::size_t) { write_result = ec; });
  const bool read_ok = ReadResponse(ioc, stream, buffer, is_head, timeout, out);
  if (!write_result) {
    CloseSocket(socket);
    ioc.restart();
    while (!write_result && ioc.run_one_for(std::chrono::seconds(2)) > 0) {
    }
  }
  if (!read_ok && write_result && *write_result) {
    out.error += " (write: " + write_result->message() + ")";
  }
  return out;
}

TlsProbe ProbeTls(std::uint16_t port, bool max_tls12, Millis timeout) {
  TlsProbe probe;
  net::io_context ioc;
  auto ctx = ClientContext(max_tls12);
  TlsStream stream(ioc, *ctx);
  const error_code ec = ConnectTls(ioc, stream, port, timeout);
  if (ec) {
    probe.error = ec.message();
    return probe;
  }
  probe.handshake_ok = true;
  probe.protocol = SSL_get_version(stream.native_handle());
  probe.peer_fingerprint = Fingerprint(stream.native_handle());
  return probe;
}

std::string PlainHttpExchange(std::uint16_t port, Millis timeout) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  auto cancel = [&socket] { CloseSocket(socket); };
  if (Await(
          ioc, timeout, [&](auto handler) { socket.async_connect(Loopback(port), handler); },
          cancel)) {
    return {};
  }
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (Await(
          ioc, timeout,
          [&](auto handler) { net::async_write(socket, net::buffer(request), handler); }, cancel)) {
    return {};
  }
  std::string received;
  std::array<char, 4096> chunk{};
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::size_t n = 0;
    const error_code ec = Await(
        ioc, std::chrono::duration_cast<Millis>(deadline - Clock::now()) + Millis(1),
        [&](auto handler) {
          socket.async_read_some(net::buffer(chunk), [&n, handler](error_code e, std::size_t k) {
            n = k;
            handler(e);
          });
        },
        cancel);
    received.append(chunk.data(), n);
    if (ec) break;
  }
  return received;
}

std::optional<Millis> IdleUntilClosed(std::uint16_t port, bool tls, Millis timeout) {
  net::io_context ioc;
  auto ctx = ClientContext(false);
  TlsStream stream(ioc, *ctx);
  auto& socket = beast::get_lowest_layer(stream).socket();
  auto cancel = [&socket] { CloseSocket(socket); };
  const auto start = Clock::now();
  if (tls) {
    if (ConnectTls(ioc, stream, port, timeout)) return std::nullopt;
  } else if (Await(
                 ioc, timeout, [&](auto handler) { socket.async_connect(Loopback(port), handler); },
                 cancel)) {
    return std::nullopt;
  }
  std::array<char, 256> chunk{};
  const error_code ec = Await(
      ioc, timeout,
      [&](auto handler) {
        if (tls) {
          stream.async_read_some(net::buffer(chunk), handler);
        } else {
          socket.async_read_some(net::buffer(chunk), handler);
        }
      },
      cancel);
  if (ec == net::error::timed_out) return std::nullopt;
  return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

bool CanConnect(std::uint16_t port, Millis timeout) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  const error_code ec = Await(
      ioc, timeout, [&](auto handler) { socket.async_connect(Loopback(port), handler); },
      [&socket] { CloseSocket(socket); });
  return !ec;
}

struct WsClient::Impl {
  net::io_context ioc;
  std::unique_ptr<ssl::context> ctx = ClientContext(false);
  websocket::stream<TlsStream> ws{ioc, *ctx};
  beast::flat_buffer buffer;
  bool read_pending = false;
  bool ended = false;
  std::deque<Event> events;
  Event terminal;

  tcp::socket& socket() { return beast::get_lowest_layer(ws).socket(); }

  void StartRead() {
    if (read_pending || ended) return;
    read_pending = true;
    ws.async_read(buffer, [this](error_code ec, std::size_t) {
      read_pending = false;
      Event event;
      if (ec) {
        ended = true;
        if (ec == websocket::error::closed) {
          event.kind = Event::Kind::kClosed;
          event.close_code = ws.reason().code;
        } else {
          event.kind = Event::Kind::kError;
          event.error = ec.message();
        }
        terminal = event;
        events.push_back(std::move(event));
        return;
      }
      event.kind = Event::Kind::kMessage;
      event.data = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      events.push_back(std::move(event));
      StartRead();
    });
  }

  ~Impl() {
    CloseSocket(socket());
    ioc.restart();
    // Let aborted handlers run while this object still exists.
    ioc.run_for(std::chrono::milliseconds(200));
  }
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WsClient::~WsClient() = default;

std::unique_ptr<WsClient> WsClient::Connect(std::uint16_t port, std::string* error, Millis timeout,
                                            std::string target) {
  auto impl = std::make_unique<Impl>();
  error_code ec = ConnectTls(impl->ioc, impl->ws.next_layer(), port, timeout);
  if (!ec) {
    impl->ws.read_message_max(64 * 1024 * 1024);
    ec = Await(
        impl->ioc, timeout,
        [&](auto handler) { impl->ws.async_handshake("localhost", target, handler); },
        [&] { CloseSocket(impl->socket()); });
  }
  if (ec) {
    if (error != nullptr) *error = ec.message();
    return nullptr;
  }
  return std::unique_ptr<WsClient>(new WsClient(std::move(impl)));
}

bool WsClient::Send(std::string_view data, Millis timeout, bool text) {
  Impl& impl = *impl_;
  if (impl.ended) return false;
  impl.ws.text(text);
  const error_code ec = Await(
      impl.ioc, timeout,
      [&](auto handler) { impl.ws.async_write(net::buffer(data.data(), data.size()), handler); },
      [&] { CloseSocket(impl.socket()); });
  return !ec;
}

WsClient::Event WsClient::Read(Millis timeout) {
  Impl& impl = *impl_;
  impl.StartRead();
  impl.ioc.restart();
  const auto deadline = Clock::now() + timeout;
  while (impl.events.empty() && Clock::now() < deadline) impl.ioc.run_one_until(deadline);
  if (impl.events.empty()) {
    return impl.ended ? impl.terminal : Event{};
  }
  Event event = std::move(impl.events.front());
  impl.events.pop_front();
  return event;
}

}  // namespace coffre::server::testing
