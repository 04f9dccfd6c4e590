// A small synchronous client for the relay's transport tests: HTTPS requests, bare TLS
// probes, plain-TCP probes and a WebSocket client, each with a bounded wait. Free of Beast
// so that only test_client.cc pays its compile time.
#ifndef COFFRE_TESTS_SERVER_TEST_CLIENT_H_
#define COFFRE_TESTS_SERVER_TEST_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::server::testing {

using Millis = std::chrono::milliseconds;
inline constexpr Millis kDefaultWait{5000};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool chunked = false;          // send the body chunked instead of with Content-Length
  bool expect_continue = false;  // send the header alone with Expect: 100-continue first
};

struct HttpResponse {
  unsigned status = 0;  // 0 when no final response was read
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;                           // empty when a response was read

  // The header's value, or "" if absent; `name` in lower case.
  std::string Header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One request over a new TLS connection to 127.0.0.1:port (TLS 1.3, certificate not
// verified: tests compare fingerprints instead).
HttpResponse HttpsRequest(std::uint16_t port, const HttpRequest& request,
                          Millis timeout = kDefaultWait);
inline HttpResponse HttpsGet(std::uint16_t port, std::string target) {
  HttpRequest request;
  request.target = std::move(target);
  return HttpsRequest(port, request);
}

struct TlsProbe {
  bool handshake_ok = false;
  std::string protocol;          // e.g. "TLSv1.3"
  std::string peer_fingerprint;  // SHA-256 of the server certificate, lowercase hex
  std::string error;
};
// A bare TLS handshake; `max_tls12` caps the client at TLS 1.2.
TlsProbe ProbeTls(std::uint16_t port, bool max_tls12, Millis timeout = kDefaultWait);

// Sends a plain-text HTTP request on the TLS port and returns whatever comes back before
// the server closes (or the timeout).
std::string PlainHttpExchange(std::uint16_t port, Millis timeout = kDefaultWait);

// Connects (TCP only, or TCP and a TLS handshake), sends nothing and waits for the server
// to close. Returns how long that took, or nullopt if the connection was still open after
// `timeout`.
std::optional<Millis> IdleUntilClosed(std::uint16_t port, bool tls, Millis timeout);

// True if a TCP connection to 127.0.0.1:port is accepted by the kernel.
bool CanConnect(std::uint16_t port, Millis timeout = Millis(1000));

class WsClient {
 public:
  struct Event {
    enum class Kind { kMessage, kClosed, kError, kTimeout };
    Kind kind = Kind::kTimeout;
    std::string data;              // kMessage
    std::uint16_t close_code = 0;  // kClosed: the code the server sent
    std::string error;             // kError
  };

  // Connects (TCP, TLS 1.3, WebSocket upgrade on `target`). nullptr on failure, with the
  // reason in `error`.
  static std::unique_ptr<WsClient> Connect(std::uint16_t port, std::string* error,
                                           Millis timeout = kDefaultWait,
                                           std::string target = "/v1/ws");
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Sends one binary (or text) message. False on error or timeout (the socket is then
  // closed).
  bool Send(std::string_view data, Millis timeout = kDefaultWait, bool text = false);
  // The next message or the end of the connection. The client reads only inside Send and
  // Read calls, so between calls it behaves like a peer that stops reading. On kTimeout the
  // read stays pending and the next Read continues it.
  Event Read(Millis timeout = kDefaultWait);

 private:
  struct Impl;
  explicit WsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::server::testing

#endif  // COFFRE_TESTS_SERVER_TEST_CLIENT_H_
