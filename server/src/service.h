// The seam between the network transport (transport.cc: Boost.Beast, TLS, HTTP,
// WebSocket, limits) and what the relay does with what arrives (relay_service.cc).
//
// The transport owns sockets, strands and timers and knows nothing of the protocol; the
// service owns the protocol and the store and knows nothing of Asio. Service calls may
// block (durable writes take an fsync), so the transport never makes them on an I/O
// thread: it runs them on its worker pool and posts the results back.
#ifndef COFFRE_SERVER_SRC_SERVICE_H_
#define COFFRE_SERVER_SRC_SERVICE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace coffre::server {

// One WebSocket connection, as the service sees it. Implemented by the transport as a
// handle: holding it does not keep the socket open, and once the connection is down every
// call is a harmless no-op. The same shared_ptr is passed to OnOpen, every OnFrame and
// OnClose, so the service may key maps by it or by id().
class Connection {
 public:
  virtual ~Connection() = default;
  // Queues one binary frame for sending, from any thread. If the connection's bounded
  // write queue is full the transport closes the connection (a slow reader must not make
  // the relay buffer without limit) and returns false; also false once closed or closing.
  virtual bool SendFrame(std::vector<std::uint8_t> frame) = 0;
  // Closes with a WebSocket close code (1000 normal, 1001 going away, 1008 policy, 1009
  // too big, 1011 internal) and a short reason without user data (at most 120 bytes, longer
  // is cut). From any thread. Frames queued before the call are sent first; later SendFrame
  // calls return false. OnClose follows once the connection is down.
  virtual void Close(std::uint16_t code, std::string reason) = 0;
  // Peer IP address as text, for per-address rate limits. Never logged.
  virtual const std::string& peer_address() const = 0;
  // Unique for the process lifetime.
  virtual std::uint64_t id() const = 0;
};

struct HttpRequestInfo {
  std::string method;                // "GET", "PUT", "HEAD"
  std::string target;                // path and query, e.g. /v1/blobs/<team>/<blob>?offset=0
  std::string authorization;         // value of the Authorization header, may be empty
  std::optional<std::string> range;  // value of the Range header
  std::string content_type;          // value of the Content-Type header, may be empty
  std::string peer_address;
};

// The transport sets Content-Length and Connection itself (a service header of either
// name, or one holding CR or LF, is dropped) and answers HEAD with the headers only. A
// status outside 100..599 is sent as 500. For a range, the service sets status 206 and its
// own Content-Range header, and file_offset/file_length to the range.
struct HttpReply {
  unsigned status = 200;
  std::string content_type = "application/octet-stream";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::vector<std::uint8_t> body;                            // small bodies (errors, JSON)
  // For file downloads: the transport streams [file_offset, file_offset + file_length)
  // of this file instead of `body` (Beast file_body), so a 1 GiB blob never sits in memory.
  std::optional<std::filesystem::path> file;
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

// Threading: calls for one connection (OnOpen, OnFrame..., OnClose) and for one HTTP
// connection's requests are made one at a time, in order, on a worker thread; calls for
// different connections run concurrently, so the service is thread-safe. Calls may block.
// They must not throw: the transport catches anything that escapes, answers 500 or closes
// the WebSocket with 1011, and logs it.
class Service {
 public:
  virtual ~Service() = default;
  // A WebSocket on /v1/ws completed its handshake.
  virtual void OnOpen(const std::shared_ptr<Connection>& connection) = 0;
  // One complete binary WebSocket message, already checked against the frame size limit.
  virtual void OnFrame(const std::shared_ptr<Connection>& connection,
                       std::span<const std::uint8_t> frame) = 0;
  // The connection is down; called once per OnOpen, after its last OnFrame.
  virtual void OnClose(const std::shared_ptr<Connection>& connection) = 0;
  // Any HTTP request other than /healthz, /metrics and the WebSocket upgrade. `body` is
  // complete and already checked against the body size limit.
  virtual HttpReply OnHttp(const HttpRequestInfo& request, std::span<const std::uint8_t> body) = 0;
  // Lines appended to /metrics (Prometheus text format), after the transport's own.
  virtual std::string MetricsText() = 0;
  // Called once when draining starts: push GoingAway, stop accepting new work. The
  // transport sends what is queued before it closes each WebSocket with 1001.
  virtual void OnDrain() = 0;
};

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_SERVICE_H_
