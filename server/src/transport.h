// The relay's network transport: one TLS 1.3 port serving HTTP/1.1 and WebSocket (wss),
// built on Boost.Beast. This header is free of Asio and Beast so that only transport.cc pays
// their compile time (PITFALLS.md §17).
//
// Routes: GET /healthz, GET /metrics, the WebSocket upgrade on /v1/ws; every other request
// goes to Service::OnHttp. Every limit is in TransportLimits (config.h). Service calls run on
// a worker pool, never on an I/O thread, and the calls for one connection run one at a time
// in arrival order.
#ifndef COFFRE_SERVER_SRC_TRANSPORT_H_
#define COFFRE_SERVER_SRC_TRANSPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "config.h"
#include "metrics.h"
#include "service.h"

namespace coffre::server {

inline constexpr std::string_view kWebSocketPath = "/v1/ws";
inline constexpr std::string_view kHealthPath = "/healthz";
inline constexpr std::string_view kMetricsPath = "/metrics";

struct TransportOptions {
  ListenAddress listen;
  std::string certificate_pem;
  crypto::SecretBytes private_key_pem;
  TransportLimits limits;
  // SIGTERM and SIGINT start the drain. Off for in-process tests.
  bool handle_signals = false;
};

class Transport {
 public:
  // Sets up TLS (TLS 1.3 only), binds and listens, and registers the transport's metrics in
  // `metrics`. Nothing is served until Run(). `service` and `metrics` must outlive the
  // Transport. kInvalidArgument if the address or TLS identity is unusable, kIo if the
  // address cannot be bound.
  static Result<std::unique_ptr<Transport>> New(TransportOptions options, Service& service,
                                                MetricsRegistry& metrics);
  virtual ~Transport() = default;

  // The bound address as HOST:PORT ([HOST]:PORT for IPv6), with the real port when port 0
  // was asked.
  virtual std::string local_address() const = 0;
  virtual std::uint16_t local_port() const = 0;

  // Serves on the calling thread plus io_threads - 1 more until a drain completes, then
  // waits for every service call in flight and returns. Call once.
  virtual void Run() = 0;

  // Starts the graceful drain, from any thread, any number of times: stop accepting, call
  // Service::OnDrain, let requests and frames in flight finish and their responses flush,
  // close WebSockets with 1001 "going away". After limits.drain_timeout whatever is left is
  // cut. Run() then returns.
  virtual void Drain() = 0;

 protected:
  Transport() = default;
};

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_TRANSPORT_H_
