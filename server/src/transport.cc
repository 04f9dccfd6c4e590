// The Beast session pattern (STYLE.md): one session object per connection, kept alive by
// shared_from_this and run on its own strand; do_x/on_x method pairs (here DoX/OnX);
// handlers take an error_code and never throw; every limit comes from TransportLimits.
//
// Threads: io_threads run the io_context (sockets, TLS, timers). Service calls run on a
// separate thread pool (`workers_`), each connection on its own strand of that pool, so a
// blocking fsync never stalls I/O and one connection's calls stay in order.
//
// Lifetimes: sessions hold a ConnectionSlot (counts against max_connections) and are
// registered by weak_ptr for drain. The service sees a ConnectionHandle that holds only a
// weak_ptr to its WebSocket session, so the service keeping a handle never keeps a socket
// open or outlives the io_context.
#include "transport.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <csignal>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "log.h"
#include "tls_socket.h"

namespace coffre::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = beast::error_code;
using Clock = std::chrono::steady_clock;
// No permessage-deflate, not even compiled in (deflateSupported = false): compressing
// attacker-influenced data costs memory and CPU and buys nothing on ciphertext.
using WsStream = websocket::stream<TlsSocket, /*deflateSupported=*/false>;
using WorkerStrand = net::strand<net::thread_pool::executor_type>;
using Request = http::request<http::vector_body<std::uint8_t>>;
using RequestParser = http::request_parser<http::vector_body<std::uint8_t>>;

// Beast 1.81 uses boost::core::string_view; the rest of the relay uses the standard one.
std::string_view StdView(beast::string_view view) { return {view.data(), view.size()}; }

// RFC 6455 §5.5: a control frame payload is at most 125 bytes, 2 of them the code.
constexpr std::size_t kMaxCloseReasonBytes = 120;
constexpr std::size_t kFileChunkBytes = 64 * 1024;
// What a WebSocket session's read prepares while it waits for the next message: most
// requests fit, and an idle connection holds no more (see WsSession::DoRead).
constexpr std::size_t kIdleReadBytes = 256;
// After accept() fails (e.g. out of file descriptors), wait before trying again rather
// than spinning on the error.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

std::int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Streams [offset, offset + length) of an open file: Beast's file_body in Boost 1.81 has no
// seek, and a Range reply must never load the blob into memory.
struct FileRangeBody {
  struct value_type {
    beast::file file;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
  };

  static std::uint64_t size(const value_type& body) { return body.length; }

  class writer {
   public:
    using const_buffers_type = net::const_buffer;

    template <bool isRequest, class Fields>
    writer(http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(error_code& ec) {
      remaining_ = body_.length;
      body_.file.seek(body_.offset, ec);
    }

    boost::optional<std::pair<const_buffers_type, bool>> get(error_code& ec) {
      ec = {};
      if (remaining_ == 0) return boost::none;
      const auto amount =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, buffer_.size()));
      const std::size_t n = body_.file.read(buffer_.data(), amount, ec);
      if (ec) return boost::none;
      if (n == 0) {
        // The file shrank under us: end the connection rather than send short content.
        ec = net::error::eof;
        return boost::none;
      }
      remaining_ -= n;
      return std::make_pair(net::const_buffer(buffer_.data(), n), remaining_ > 0);
    }

   private:
    value_type& body_;
    std::uint64_t remaining_ = 0;
    std::array<char, kFileChunkBytes> buffer_{};
  };
};

struct TransportMetrics {
  explicit TransportMetrics(MetricsRegistry& r)
      : connections_open(r.AddGauge("coffre_relay_connections_open",
                                    "TCP connections currently open (TLS, HTTP or WebSocket).")),
        connections_total(
            r.AddCounter("coffre_relay_connections_total", "TCP connections accepted.")),
        connections_rejected(
            r.AddCounter("coffre_relay_connections_rejected_total",
                         "TCP connections closed at once: connection limit reached or draining.")),
        tls_failures(r.AddCounter("coffre_relay_tls_handshake_failures_total",
                                  "TLS handshakes that failed or timed out.")),
        websockets_open(
            r.AddGauge("coffre_relay_websockets_open", "WebSocket connections currently open.")),
        websockets_total(
            r.AddCounter("coffre_relay_websockets_total", "WebSocket handshakes completed.")),
        frames(r.AddCounterFamily("coffre_relay_websocket_frames_total",
                                  "WebSocket messages received (in) and sent (out).",
                                  {"direction"})),
        bytes(r.AddCounterFamily("coffre_relay_websocket_bytes_total",
                                 "WebSocket message payload bytes received (in) and sent (out).",
                                 {"direction"})),
        frames_in(frames.WithLabels({"in"})),
        frames_out(frames.WithLabels({"out"})),
        bytes_in(bytes.WithLabels({"in"})),
        bytes_out(bytes.WithLabels({"out"})),
        closes(r.AddCounterFamily("coffre_relay_websocket_closes_total",
                                  "WebSocket closes started by the relay, by close code.",
                                  {"code"})),
        queue_overflows(r.AddCounter(
            "coffre_relay_websocket_queue_overflows_total",
            "WebSocket connections closed because their write queue was full (slow reader).")),
        http_requests(r.AddCounterFamily("coffre_relay_http_requests_total",
                                         "HTTP responses sent, by status code.", {"status"})),
        http_latency(r.AddHistogram("coffre_relay_http_request_duration_seconds",
                                    "Time from a request's header to its response being sent.",
                                    LatencyBucketsSeconds())),
        service_errors(r.AddCounter("coffre_relay_service_exceptions_total",
                                    "Exceptions that escaped a service call.")),
        draining(r.AddGauge("coffre_relay_draining", "1 while the relay is draining.")) {}

  Gauge& connections_open;
  Counter& connections_total;
  Counter& connections_rejected;
  Counter& tls_failures;
  Gauge& websockets_open;
  Counter& websockets_total;
  CounterFamily& frames;
  CounterFamily& bytes;
  Counter& frames_in;
  Counter& frames_out;
  Counter& bytes_in;
  Counter& bytes_out;
  CounterFamily& closes;
  Counter& queue_overflows;
  CounterFamily& http_requests;
  Histogram& http_latency;
  Counter& service_errors;
  Gauge& draining;
};

class Server;

// What the server can ask of any live session, from any thread.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Finish what is in flight, then close (HTTP: after the current response; WebSocket:
  // after queued frames, with 1001).
  virtual void BeginDrain() = 0;
  // Cut the connection now.
  virtual void Abort() = 0;
};

// One unit of TransportLimits::max_connections, held by the session that owns the socket
// and handed from the HTTP session to the WebSocket session on upgrade.
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  explicit ConnectionSlot(Server* server) : server_(server) {}
  ConnectionSlot(ConnectionSlot&& other) noexcept
      : server_(std::exchange(other.server_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&& other) noexcept {
    if (this != &other) {
      Release();
      server_ = std::exchange(other.server_, nullptr);
    }
    return *this;
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ~ConnectionSlot() { Release(); }

 private:
  void Release();
  Server* server_ = nullptr;
};

class Listener;

class Server final : public Transport {
 public:
  Server(TransportOptions options, Service& service, MetricsRegistry& registry);
  ~Server() override;

  Status Init();

  std::string local_address() const override { return local_address_; }
  std::uint16_t local_port() const override { return local_port_; }
  void Run() override;
  void Drain() override;

  // --- For sessions and the listener --------------------------------------------------
  const TransportLimits& limits() const { return limits_; }
  Service& service() { return service_; }
  TransportMetrics& metrics() { return metrics_; }
  ssl::context& tls() { return tls_; }
  net::io_context& io() { return ioc_; }
  net::thread_pool& workers() { return workers_; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // Connection ids appear in logs and in Connection::id(); registry keys only index the
  // drain list (a connection keeps its id across the upgrade, its sessions do not share a
  // key).
  std::uint64_t NextConnectionId() {
    return next_connection_id_.fetch_add(1, std::memory_order_relaxed);
  }
  std::uint64_t NextRegistryKey() {
    return next_registry_key_.fetch_add(1, std::memory_order_relaxed);
  }

  // A slot if fewer than max_connections are open; nullopt otherwise.
  std::optional<ConnectionSlot> TryReserveConnection();
  void ReleaseConnection();

  // Adds a session to the drain list under `key`. Returns true if the drain already reached
  // the sessions: the caller must then drain itself.
  bool RegisterSession(std::uint64_t key, std::weak_ptr<SessionBase> session);
  void UnregisterSession(std::uint64_t key);

  // Runs `call` (a service call, on a worker thread), catching anything it throws: the
  // service must not throw, and if it does the relay logs it and carries on. Returns false
  // if it threw.
  template <class Call>
  bool CallService(const char* what, Call&& call) {
    try {
      call();
      return true;
    } catch (const std::exception& e) {
      metrics_.service_errors.Increment();
      Log(LogLevel::kError, "service_exception", {{"call", what}, {"what", e.what()}});
    } catch (...) {
      metrics_.service_errors.Increment();
      Log(LogLevel::kError, "service_exception", {{"call", what}});
    }
    return false;
  }

  std::string RenderMetrics();

 private:
  void RunIoLoop();
  void WaitForSignal();
  void StartDrain();
  void DrainSessions();
  void MaybeFinishDrain();
  void OnDrainTimeout();
  void FinishDrain();
  std::vector<std::shared_ptr<SessionBase>> LiveSessions();

  TransportOptions options_;
  const TransportLimits limits_;
  Service& service_;
  MetricsRegistry& registry_;
  TransportMetrics metrics_;
  ssl::context tls_{ssl::context::tls_server};
  std::string local_address_;
  std::uint16_t local_port_ = 0;
  unsigned io_threads_;

  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::uint64_t> next_registry_key_{1};
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> ran_{false};
  std::atomic<bool> destroying_{false};

  std::mutex sessions_mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<SessionBase>> sessions_;
  bool sessions_draining_ = false;  // guarded by sessions_mutex_

  // Declared in this order so that destruction runs io objects first, then the io_context
  // (destroying handlers still queued, and with them their sessions, while the worker pool
  // their strands point into still exists), then the worker pool.
  net::thread_pool workers_;
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> control_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::shared_ptr<Listener> listener_;
  std::optional<net::signal_set> signals_;
  net::steady_timer drain_timer_;
  net::steady_timer stop_timer_;
  // Touched only on control_.
  bool drain_started_ = false;
  bool drain_sessions_started_ = false;
  bool drain_timed_out_ = false;
  bool drain_finished_ = false;
};

void ConnectionSlot::Release() {
  if (server_ != nullptr) std::exchange(server_, nullptr)->ReleaseConnection();
}

// --- HTTP responses built by the transport ---------------------------------------------

http::message_generator TextResponse(http::status status, unsigned version, bool keep_alive,
                                     std::string body, std::string_view content_type,
                                     bool head = false) {
  http::response<http::string_body> response{status, version};
  response.set(http::field::content_type, content_type);
  response.set(http::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
  response.keep_alive(keep_alive);
  const std::size_t length = body.size();
  if (!head) response.body() = std::move(body);
  response.content_length(length);
  return http::message_generator(std::move(response));
}

// A header name is an RFC 9110 token; a value has no control characters except tab. This
// keeps a service bug from splitting a response.
bool ValidHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7f) return false;
  }
  return true;
}

bool TransportOwnsHeader(std::string_view name) {
  return beast::iequals(name, "content-length") || beast::iequals(name, "connection") ||
         beast::iequals(name, "transfer-encoding") || beast::iequals(name, "content-type");
}

template <class Body>
void ApplyReplyHeaders(http::response<Body>& response, const HttpReply& reply) {
  if (!reply.content_type.empty() && ValidHeader("content-type", reply.content_type)) {
    response.set(http::field::content_type, reply.content_type);
  }
  response.set("X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : reply.headers) {
    if (!TransportOwnsHeader(name) && ValidHeader(name, value)) response.set(name, value);
  }
}

// A service reply made ready on a worker thread: the status checked and the file opened
// (a blocking call). The message itself is built on the session's strand, where the
// keep-alive decision (which a drain can change) is made.
struct PreparedReply {
  HttpReply reply;
  std::optional<FileRangeBody::value_type> file;
  bool failed = false;  // answer 500 instead
};

PreparedReply PrepareServiceReply(HttpReply reply) {
  PreparedReply prepared;
  if (reply.status < 100 || reply.status > 599) {
    Log(LogLevel::kError, "service_bad_status", {{"status", reply.status}});
    prepared.failed = true;
    return prepared;
  }
  if (reply.file) {
    prepared.file.emplace();
    error_code ec;
    prepared.file->file.open(reply.file->c_str(), beast::file_mode::scan, ec);
    std::uint64_t file_size = 0;
    if (!ec) file_size = prepared.file->file.size(ec);
    if (ec || reply.file_offset > file_size || reply.file_length > file_size - reply.file_offset) {
      Log(LogLevel::kError, "reply_file_unusable", {{"error", ec ? ec.message() : "range"}});
      prepared.file.reset();
      prepared.failed = true;
      return prepared;
    }
    prepared.file->offset = reply.file_offset;
    prepared.file->length = reply.file_length;
  }
  prepared.reply = std::move(reply);
  return prepared;
}

// `status` receives the status actually sent.
http::message_generator BuildServiceResponse(PreparedReply prepared, unsigned version,
                                             bool keep_alive, bool head, unsigned& status) {
  if (prepared.failed) {
    status = 500;
    return TextResponse(http::status::internal_server_error, version, keep_alive,
                        "internal error\n", "text/plain; charset=utf-8", head);
  }
  HttpReply& reply = prepared.reply;
  status = reply.status;
  const std::uint64_t length = prepared.file ? prepared.file->length : reply.body.size();
  if (head) {
    http::response<http::empty_body> response;
    response.version(version);
    response.result(status);
    ApplyReplyHeaders(response, reply);
    response.keep_alive(keep_alive);
    response.content_length(length);
    return http::message_generator(std::move(response));
  }
  if (prepared.file) {
    http::response<FileRangeBody> response;
    response.version(version);
    response.result(status);
    ApplyReplyHeaders(response, reply);
    response.keep_alive(keep_alive);
    response.body() = std::move(*prepared.file);
    response.content_length(length);
    return http::message_generator(std::move(response));
  }
  http::response<http::vector_body<std::uint8_t>> response;
  response.version(version);
  response.result(status);
  ApplyReplyHeaders(response, reply);
  response.keep_alive(keep_alive);
  response.body() = std::move(reply.body);
  response.content_length(length);
  return http::message_generator(std::move(response));
}

// --- WebSocket session ------------------------------------------------------------------

class WsSession;

// What the service holds for a WebSocket: a weak reference (see the file comment).
class ConnectionHandle final : public Connection {
 public:
  ConnectionHandle(std::weak_ptr<WsSession> session, std::uint64_t id, std::string peer)
      : session_(std::move(session)), id_(id), peer_(std::move(peer)) {}

  bool SendFrame(std::vector<std::uint8_t> frame) override;
  void Close(std::uint16_t code, std::string reason) override;
  const std::string& peer_address() const override { return peer_; }
  std::uint64_t id() const override { return id_; }

 private:
  std::weak_ptr<WsSession> session_;
  const std::uint64_t id_;
  const std::string peer_;
};

class WsSession final : public SessionBase, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(Server& server, TlsSocket&& stream, ConnectionSlot slot, std::uint64_t id,
            std::string peer, net::any_io_executor executor, Clock::time_point opened_at)
      : server_(server),
        limits_(server.limits()),
        executor_(std::move(executor)),
        ws_(std::move(stream)),
        worker_(net::make_strand(server.workers())),
        close_timer_(executor_),
        slot_(std::move(slot)),
        id_(id),
        registry_key_(server.NextRegistryKey()),
        peer_(std::move(peer)),
        opened_at_(opened_at) {}

  ~WsSession() override {
    server_.UnregisterSession(registry_key_);
    if (accepted_) server_.metrics().websockets_open.Sub(1);
    Log(LogLevel::kInfo, "connection_close",
        {{"connection", id_},
         {"kind", "websocket"},
         {"duration_ms", MillisSince(opened_at_)},
         {"close_code", static_cast<unsigned>(close_code_)},
         {"reason", end_reason_}});
  }

  WsSession(const WsSession&) = delete;
  WsSession& operator=(const WsSession&) = delete;

  // Takes over from the HTTP session that read the upgrade request.
  void Start(Request request) {
    request_ = std::move(request);
    if (server_.RegisterSession(registry_key_, weak_from_this())) BeginDrain();
    net::dispatch(executor_, [self = shared_from_this()] { self->DoAccept(); });
  }

  void BeginDrain() override {
    net::post(executor_, [self = shared_from_this()] {
      self->drain_requested_ = true;
      self->MaybeCloseAfterFlush();
    });
  }

  void Abort() override {
    net::post(executor_, [self = shared_from_this()] {
      self->end_reason_ = "aborted";
      self->CloseSocket();
    });
  }

  // Connection::SendFrame, from any thread.
  bool Enqueue(std::vector<std::uint8_t>&& frame) {
    const std::size_t size = frame.size();
    bool overflow = false;
    bool start_write = false;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      if (closing_) return false;
      const std::size_t frames = queue_.size() + (writing_ ? 1 : 0);
      if (frames >= limits_.max_queued_frames || queued_bytes_ + size > limits_.max_queued_bytes) {
        closing_ = true;
        overflow = true;
      } else {
        queue_.push_back(std::move(frame));
        queued_bytes_ += size;
        if (!writing_) {
          writing_ = true;
          start_write = true;
        }
      }
    }
    if (overflow) {
      server_.metrics().queue_overflows.Increment();
      net::post(executor_, [self = shared_from_this()] {
        self->end_reason_ = "write_queue_full";
        self->StartClose(static_cast<std::uint16_t>(websocket::close_code::policy_error),
                         "write queue full", /*drop_queue=*/true);
      });
      return false;
    }
    if (start_write) net::post(executor_, [self = shared_from_this()] { self->DoWrite(); });
    return true;
  }

  // Connection::Close, from any thread: queued frames go first.
  void RequestClose(std::uint16_t code, std::string reason) {
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      closing_ = true;
    }
    if (reason.size() > kMaxCloseReasonBytes) reason.resize(kMaxCloseReasonBytes);
    net::post(executor_, [self = shared_from_this(), code, reason = std::move(reason)]() mutable {
      if (!self->requested_close_) self->requested_close_.emplace(code, std::move(reason));
      self->MaybeCloseAfterFlush();
    });
  }

 private:
  void DoAccept() {
    ws_.set_option(websocket::stream_base::timeout{
        limits_.handshake_timeout, limits_.websocket_idle_timeout, /*keep_alive_pings=*/true});
    ws_.read_message_max(limits_.max_frame_bytes);
    ws_.binary(true);
    ws_.async_accept(request_, beast::bind_front_handler(&WsSession::OnAccept, shared_from_this()));
  }

  void OnAccept(error_code ec) {
    request_ = {};
    if (ec) {
      end_reason_ = "upgrade_failed";
      Log(LogLevel::kDebug, "websocket_upgrade_failed",
          {{"connection", id_}, {"error", ec.message()}});
      CloseSocket();
      return;
    }
    accepted_ = true;
    server_.metrics().websockets_open.Add(1);
    server_.metrics().websockets_total.Increment();
    Log(LogLevel::kDebug, "websocket_open", {{"connection", id_}});
    handle_ = std::make_shared<ConnectionHandle>(weak_from_this(), id_, peer_);
    PostServiceCall("OnOpen",
                    [self = shared_from_this()] { self->server_.service().OnOpen(self->handle_); });
    if (drain_requested_) MaybeCloseAfterFlush();
    DoRead();
  }

  void DoRead() {
    if (read_pending_ || read_done_ || close_started_) return;
    if (pending_frames_ >= limits_.max_pending_frames) {
      // Back-pressure: stop reading until the service catches up.
      read_paused_ = true;
      return;
    }
    read_pending_ = true;
    // A message is read in parts. Beast prepares the buffer when a read starts, not when
    // data arrives, so the read that waits for the next message asks for kIdleReadBytes only
    // (Beast's own first size is 1536): that is all an idle connection holds. The rest of a
    // message is read with Beast's sizing (limit 0).
    const std::size_t limit = buffer_.size() == 0 ? kIdleReadBytes : 0;
    ws_.async_read_some(buffer_, limit,
                        beast::bind_front_handler(&WsSession::OnRead, shared_from_this()));
  }

  void OnRead(error_code ec, std::size_t) {
    read_pending_ = false;
    if (ec) {
      read_done_ = true;
      if (ec == websocket::error::closed) {
        if (close_code_ == 0) close_code_ = ws_.reason().code;
        if (end_reason_.empty()) end_reason_ = "closed";
      } else if (ec == websocket::error::message_too_big) {
        // Beast has already sent close 1009 and torn the connection down.
        close_code_ = static_cast<std::uint16_t>(websocket::close_code::too_big);
        server_.metrics().closes.WithLabels({"1009"}).Increment();
        end_reason_ = "frame_too_big";
      } else if (ec == beast::error::timeout) {
        end_reason_ = "idle_timeout";
      } else if (end_reason_.empty()) {
        end_reason_ = "read_error";
      }
      Finish();
      return;
    }
    if (!ws_.got_binary()) {
      // Refused at its first part: a text message is never read to its end.
      server_.metrics().frames_in.Increment();
      server_.metrics().bytes_in.Increment(buffer_.size());
      ClearReadBuffer();
      end_reason_ = "text_frame";
      RequestClose(static_cast<std::uint16_t>(websocket::close_code::unknown_data),
                   "binary frames only");
      return;
    }
    if (!ws_.is_message_done()) {
      DoRead();
      return;
    }
    server_.metrics().frames_in.Increment();
    server_.metrics().bytes_in.Increment(buffer_.size());
    if (drain_requested_) {
      // Draining: a frame that arrives now is not handed to the service. The client resends
      // it after reconnecting (operations carry idempotent ids), so nothing is lost.
      ClearReadBuffer();
      DoRead();
      return;
    }
    const auto data = buffer_.cdata();
    std::vector<std::uint8_t> frame(static_cast<const std::uint8_t*>(data.data()),
                                    static_cast<const std::uint8_t*>(data.data()) + data.size());
    ClearReadBuffer();
    ++pending_frames_;
    PostServiceCall(
        "OnFrame",
        [self = shared_from_this(), frame = std::move(frame)] {
          self->server_.service().OnFrame(self->handle_, frame);
        },
        /*frame_done=*/true);
    DoRead();
  }

  // A message has been taken out: empty the buffer, and free it if the message grew it
  // past what the wait for the next message prepares (see DoRead).
  void ClearReadBuffer() {
    buffer_.consume(buffer_.size());
    if (buffer_.capacity() > kIdleReadBytes) buffer_.shrink_to_fit();
  }

  void OnFrameDone() {
    --pending_frames_;
    if (read_paused_) {
      read_paused_ = false;
      DoRead();
    }
    MaybeCloseAfterFlush();
  }

  // Frees the last frame sent (clear() would keep its capacity, up to max_frame_bytes, for
  // as long as the connection stays idle). Requires: no write in flight, queue_mutex_ held.
  void ReleaseInFlight() { in_flight_ = std::vector<std::uint8_t>(); }

  // Requires: no write in flight (called when one completes, or to start the first).
  void DoWrite() {
    bool idle = false;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      if (queue_.empty() || close_started_ || write_failed_) {
        writing_ = false;
        queued_bytes_ = 0;
        queue_.clear();
        ReleaseInFlight();
        idle = true;
      } else {
        in_flight_ = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (idle) {
      // Nothing left to send: perhaps a close was waiting for the queue to empty.
      MaybeCloseAfterFlush();
      return;
    }
    ws_.binary(true);
    ws_.async_write(net::buffer(in_flight_),
                    beast::bind_front_handler(&WsSession::OnWrite, shared_from_this()));
  }

  void OnWrite(error_code ec, std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      queued_bytes_ -= std::min(queued_bytes_, in_flight_.size());
      ReleaseInFlight();
      if (ec) {
        write_failed_ = true;
        closing_ = true;
        writing_ = false;
        queue_.clear();
        queued_bytes_ = 0;
      }
    }
    if (ec) {
      if (end_reason_.empty()) end_reason_ = "write_error";
      if (!close_started_) CloseSocket();
      return;
    }
    server_.metrics().frames_out.Increment();
    server_.metrics().bytes_out.Increment(bytes);
    DoWrite();
  }

  // Starts the close a caller asked for (service Close or drain) once every queued frame
  // has been sent and, for a drain, every frame in the service has been handled.
  void MaybeCloseAfterFlush() {
    if (close_started_ || finished_ || !accepted_) return;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      if (writing_ || !queue_.empty()) return;
    }
    if (requested_close_) {
      auto [code, reason] = std::move(*requested_close_);
      requested_close_.reset();
      if (end_reason_.empty()) end_reason_ = "service_close";
      StartClose(code, std::move(reason), /*drop_queue=*/false);
    } else if (drain_requested_ && pending_frames_ == 0) {
      if (end_reason_.empty()) end_reason_ = "drain";
      StartClose(static_cast<std::uint16_t>(websocket::close_code::going_away), "going away",
                 /*drop_queue=*/false);
    }
  }

  void StartClose(std::uint16_t code, std::string reason, bool drop_queue) {
    if (close_started_ || finished_) return;
    if (!accepted_) {
      CloseSocket();
      return;
    }
    close_started_ = true;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      closing_ = true;
      if (drop_queue) {
        // Keep only the frame being written (its buffer is in use); the rest is dropped.
        queue_.clear();
        queued_bytes_ = in_flight_.size();
      }
    }
    close_code_ = code;
    server_.metrics().closes.WithLabels({std::to_string(code)}).Increment();
    // A peer that does not read cannot receive the close frame either: cut it after
    // close_timeout whatever happens.
    close_timer_.expires_after(limits_.close_timeout);
    close_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) {
        if (self->end_reason_.empty()) self->end_reason_ = "close_timeout";
        self->CloseSocket();
      }
    });
    websocket::close_reason close_reason(code);
    close_reason.reason = std::move(reason);
    ws_.async_close(close_reason,
                    beast::bind_front_handler(&WsSession::OnClose, shared_from_this()));
  }

  void OnClose(error_code ec) {
    close_timer_.cancel();
    if (ec && end_reason_.empty()) end_reason_ = "close_error";
    // The close handshake is over (or failed): nothing more will be sent or read.
    CloseSocket();
    if (!read_pending_) Finish();
  }

  // The connection is down: tell the service (after any OnFrame still queued for it).
  void Finish() {
    if (finished_) return;
    finished_ = true;
    {
      std::lock_guard<std::mutex> lock(queue_mutex_);
      closing_ = true;
      queue_.clear();
      queued_bytes_ = in_flight_.size();
    }
    if (!close_started_) CloseSocket();
    if (accepted_) {
      PostServiceCall("OnClose", [self = shared_from_this()] {
        self->server_.service().OnClose(self->handle_);
      });
    }
  }

  void CloseSocket() {
    error_code ec;
    auto& socket = beast::get_lowest_layer(ws_);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  // Runs `call` on this connection's worker strand; a call that throws closes the
  // connection with 1011. With `frame_done`, OnFrameDone follows on the I/O strand either
  // way, releasing the frame's place in max_pending_frames.
  template <class Call>
  void PostServiceCall(const char* what, Call call, bool frame_done = false) {
    net::post(
        worker_, [self = shared_from_this(), what, frame_done, call = std::move(call)]() mutable {
          if (!self->server_.CallService(what, call)) {
            self->RequestClose(static_cast<std::uint16_t>(websocket::close_code::internal_error),
                               "internal error");
          }
          if (frame_done) net::post(self->executor_, [self] { self->OnFrameDone(); });
        });
  }

  Server& server_;
  const TransportLimits& limits_;
  const net::any_io_executor executor_;
  WsStream ws_;
  WorkerStrand worker_;
  net::steady_timer close_timer_;
  ConnectionSlot slot_;
  const std::uint64_t id_;
  const std::uint64_t registry_key_;
  const std::string peer_;
  const Clock::time_point opened_at_;
  Request request_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ConnectionHandle> handle_;  // set on the strand before any service call

  // Write queue: shared with Enqueue on service threads.
  std::mutex queue_mutex_;
  // A list, not a deque: an empty list allocates nothing, a deque keeps a 512-byte block.
  std::list<std::vector<std::uint8_t>> queue_;
  std::vector<std::uint8_t> in_flight_;  // the frame being written, out of the queue
  std::size_t queued_bytes_ = 0;         // queue_ plus in_flight_
  bool writing_ = false;
  bool closing_ = false;  // SendFrame refused from now on
  bool write_failed_ = false;

  // Strand-only state.
  bool accepted_ = false;
  bool read_pending_ = false;
  bool read_paused_ = false;
  bool read_done_ = false;
  bool close_started_ = false;
  bool finished_ = false;
  bool drain_requested_ = false;
  std::size_t pending_frames_ = 0;
  std::optional<std::pair<std::uint16_t, std::string>> requested_close_;
  std::uint16_t close_code_ = 0;
  std::string end_reason_;
};

bool ConnectionHandle::SendFrame(std::vector<std::uint8_t> frame) {
  const std::shared_ptr<WsSession> session = session_.lock();
  return session != nullptr && session->Enqueue(std::move(frame));
}

void ConnectionHandle::Close(std::uint16_t code, std::string reason) {
  if (const std::shared_ptr<WsSession> session = session_.lock()) {
    session->RequestClose(code, std::move(reason));
  }
}

// --- HTTP session -----------------------------------------------------------------------

class HttpSession final : public SessionBase, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Server& server, tcp::socket&& socket, ConnectionSlot slot, std::uint64_t id,
              std::string peer)
      : server_(server),
        limits_(server.limits()),
        executor_(socket.get_executor()),
        stream_(std::move(socket), server.tls().native_handle()),
        deadline_(executor_),
        worker_(net::make_strand(server.workers())),
        slot_(std::move(slot)),
        id_(id),
        registry_key_(server.NextRegistryKey()),
        peer_(std::move(peer)),
        opened_at_(Clock::now()) {}

  ~HttpSession() override {
    server_.UnregisterSession(registry_key_);
    if (state_ != State::kUpgraded) {
      Log(LogLevel::kInfo, "connection_close",
          {{"connection", id_},
           {"kind", "http"},
           {"duration_ms", MillisSince(opened_at_)},
           {"requests", requests_},
           {"reason", end_reason_}});
    }
  }

  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  void Start() {
    if (server_.RegisterSession(registry_key_, weak_from_this())) BeginDrain();
    net::dispatch(executor_, [self = shared_from_this()] { self->DoHandshake(); });
  }

  void BeginDrain() override {
    net::post(executor_, [self = shared_from_this()] { self->OnDrain(); });
  }

  void Abort() override {
    net::post(executor_, [self = shared_from_this()] {
      if (self->state_ == State::kUpgraded) return;
      self->end_reason_ = "aborted";
      self->CloseSocket();
    });
  }

 private:
  enum class State { kHandshake, kReading, kProcessing, kWriting, kClosing, kUpgraded, kClosed };

  // Replaces the current deadline. The handler holds a weak reference: a pending deadline
  // never keeps a finished session alive.
  void SetDeadline(Clock::duration timeout) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([weak = weak_from_this()](error_code ec) {
      const std::shared_ptr<HttpSession> self = weak.lock();
      // A deadline replaced after it fired but before this ran has a later expiry.
      if (ec || !self || self->deadline_.expiry() > Clock::now()) return;
      self->timed_out_ = true;
      self->CloseSocket();
    });
  }

  void ClearDeadline() { deadline_.expires_at(net::steady_timer::time_point::max()); }

  void DoHandshake() {
    // One deadline for the TLS handshake and the first request header (and so for the
    // WebSocket upgrade): a client that connects and stalls costs at most this long.
    SetDeadline(limits_.handshake_timeout);
    stream_.async_handshake(
        beast::bind_front_handler(&HttpSession::OnHandshake, shared_from_this()));
  }

  void OnHandshake(error_code ec) {
    if (ec) {
      server_.metrics().tls_failures.Increment();
      end_reason_ = timed_out_ ? "handshake_timeout" : "tls_handshake_failed";
      Log(LogLevel::kDebug, "tls_handshake_failed", {{"connection", id_}, {"error", ec.message()}});
      CloseSocket();
      return;
    }
    DoReadHeader();
  }

  void DoReadHeader() {
    if (drain_requested_ && requests_ > 0) {
      DoShutdown();
      return;
    }
    state_ = State::kReading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    // With the limit set before the header is read, a Content-Length over it fails at the
    // header (body_limit) and is answered 413 before any of the body is read.
    parser_->body_limit(limits_.max_body_bytes);
    if (requests_ > 0) {
      SetDeadline(limits_.http_request_timeout);
    }
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::OnReadHeader, shared_from_this()));
  }

  void OnReadHeader(error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    request_start_ = Clock::now();
    const auto& request = parser_->get();
    if (websocket::is_upgrade(request)) return Upgrade();
    if (parser_->is_done()) return HandleRequest();
    if (beast::iequals(request[http::field::expect], "100-continue")) {
      continue_.emplace(http::status::continue_, request.version());
      SetDeadline(limits_.http_request_timeout);
      http::async_write(
          stream_, *continue_,
          beast::bind_front_handler(&HttpSession::OnContinueSent, shared_from_this()));
      return;
    }
    DoReadBody();
  }

  void OnContinueSent(error_code ec, std::size_t) {
    continue_.reset();
    if (ec) {
      end_reason_ = "write_error";
      CloseSocket();
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    SetDeadline(limits_.http_body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnReadBody, shared_from_this()));
  }

  void OnReadBody(error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    HandleRequest();
  }

  void OnReadError(error_code ec) {
    const unsigned version = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == ssl::error::stream_truncated) {
      end_reason_ = "peer_closed";
      if (ec == http::error::end_of_stream) return DoShutdown();
      return CloseSocket();
    }
    if (ec == http::error::header_limit) {
      end_reason_ = "header_too_large";
      return SendTransportResponse(http::status::request_header_fields_too_large, version,
                                   "header too large\n", /*close=*/true);
    }
    if (ec == http::error::body_limit) {
      end_reason_ = "body_too_large";
      return SendTransportResponse(http::status::payload_too_large, version, "body too large\n",
                                   /*close=*/true);
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
      end_reason_ = "bad_request";
      return SendTransportResponse(http::status::bad_request, version, "bad request\n",
                                   /*close=*/true);
    }
    end_reason_ = timed_out_ ? "read_timeout" : "read_error";
    CloseSocket();
  }

  void Upgrade() {
    const auto& request = parser_->get();
    const unsigned version = request.version();
    if (StdView(request.target()) != kWebSocketPath) {
      end_reason_ = "upgrade_not_found";
      return SendTransportResponse(http::status::not_found, version, "not found\n", true);
    }
    if (drain_requested_ || server_.draining()) {
      end_reason_ = "draining";
      return SendTransportResponse(http::status::service_unavailable, version, "draining\n", true);
    }
    state_ = State::kUpgraded;
    // The WebSocket's own timeouts take over from the TCP deadline. Bytes read past the
    // upgrade request are dropped: a client must wait for the 101 before sending frames
    // (RFC 6455 §4.1).
    ClearDeadline();
    Request upgrade = parser_->release();
    parser_.reset();
    std::make_shared<WsSession>(server_, std::move(stream_), std::move(slot_), id_, peer_,
                                executor_, opened_at_)
        ->Start(std::move(upgrade));
  }

  void HandleRequest() {
    state_ = State::kProcessing;
    ++requests_;
    // A service call may block on the store: no read deadline while it runs.
    ClearDeadline();
    Request request = parser_->release();
    parser_.reset();
    const unsigned version = request.version();
    keep_alive_ = request.keep_alive() && !drain_requested_;
    const bool head = request.method() == http::verb::head;
    const std::string_view target = StdView(request.target());
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get = request.method() == http::verb::get || head;

    if (path == kHealthPath && get) {
      status_ = 200;
      return DoWrite(
          TextResponse(http::status::ok, version, keep_alive_, "ok", "text/plain", head));
    }
    if (path == kMetricsPath && get) {
      // The service's part of /metrics may read the store: render on the worker pool.
      net::post(worker_, [self = shared_from_this(), version, head] {
        std::string text;
        if (!self->server_.CallService("MetricsText",
                                       [&] { text = self->server_.RenderMetrics(); })) {
          text.clear();
        }
        net::post(self->executor_, [self, version, head, text = std::move(text)]() mutable {
          self->status_ = 200;
          self->DoWrite(TextResponse(http::status::ok, version, self->keep_alive_, std::move(text),
                                     "text/plain; version=0.0.4; charset=utf-8", head));
        });
      });
      return;
    }
    if (path == kWebSocketPath) {
      status_ = 426;
      http::response<http::string_body> response{http::status::upgrade_required, version};
      response.set(http::field::upgrade, "websocket");
      response.set(http::field::content_type, "text/plain");
      response.keep_alive(keep_alive_);
      response.body() = "websocket upgrade required\n";
      response.prepare_payload();
      return DoWrite(http::message_generator(std::move(response)));
    }

    HttpRequestInfo info;
    info.method = std::string(StdView(request.method_string()));
    info.target = std::string(target);
    info.authorization = std::string(StdView(request[http::field::authorization]));
    if (const auto range = request.find(http::field::range); range != request.end()) {
      info.range = std::string(StdView(range->value()));
    }
    info.content_type = std::string(StdView(request[http::field::content_type]));
    info.peer_address = peer_;
    net::post(worker_, [self = shared_from_this(), info = std::move(info),
                        body = std::move(request.body()), version, head]() mutable {
      HttpReply reply;
      if (!self->server_.CallService("OnHttp",
                                     [&] { reply = self->server_.service().OnHttp(info, body); })) {
        reply = HttpReply{};
        reply.status = 500;
        reply.content_type = "text/plain; charset=utf-8";
        const std::string_view text = "internal error\n";
        reply.body.assign(text.begin(), text.end());
      }
      net::post(self->executor_,
                [self, version, head, prepared = PrepareServiceReply(std::move(reply))]() mutable {
                  unsigned status = 500;
                  auto response = BuildServiceResponse(std::move(prepared), version,
                                                       self->keep_alive_, head, status);
                  self->status_ = status;
                  self->DoWrite(std::move(response));
                });
    });
  }

  void SendTransportResponse(http::status status, unsigned version, std::string body, bool close) {
    if (request_start_ == Clock::time_point{}) request_start_ = Clock::now();
    parser_.reset();
    if (close) keep_alive_ = false;
    status_ = static_cast<unsigned>(status);
    DoWrite(
        TextResponse(status, version, keep_alive_, std::move(body), "text/plain; charset=utf-8"));
  }

  void DoWrite(http::message_generator response) {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    SetDeadline(limits_.http_write_timeout);
    beast::async_write(stream_, std::move(response),
                       beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this()));
  }

  void OnWrite(error_code ec, std::size_t) {
    TransportMetrics& metrics = server_.metrics();
    metrics.http_requests.WithLabels({std::to_string(status_)}).Increment();
    const auto elapsed = std::chrono::duration<double>(Clock::now() - request_start_).count();
    metrics.http_latency.Observe(elapsed);
    Log(LogLevel::kDebug, "http_response",
        {{"connection", id_}, {"status", status_}, {"duration_ms", elapsed * 1000}});
    request_start_ = {};
    if (ec) {
      end_reason_ = "write_error";
      CloseSocket();
      return;
    }
    if (!keep_alive_ || drain_requested_) {
      if (end_reason_.empty()) end_reason_ = drain_requested_ ? "drain" : "done";
      DoShutdown();
      return;
    }
    DoReadHeader();
  }

  void DoShutdown() {
    state_ = State::kClosing;
    SetDeadline(limits_.close_timeout);
    stream_.async_shutdown(beast::bind_front_handler(&HttpSession::OnShutdown, shared_from_this()));
  }

  void OnShutdown(error_code) { CloseSocket(); }

  void OnDrain() {
    drain_requested_ = true;
    keep_alive_ = false;
    switch (state_) {
      case State::kHandshake:
        end_reason_ = "drain";
        CloseSocket();
        break;
      case State::kReading:
        // Between requests (nothing of the next one received yet): close now. A request
        // partly received is let finish; its response carries Connection: close.
        if (parser_ && !parser_->got_some() && buffer_.size() == 0) {
          end_reason_ = "drain";
          CloseSocket();
        }
        break;
      default:
        break;
    }
  }

  void CloseSocket() {
    if (state_ == State::kUpgraded) return;
    state_ = State::kClosed;
    error_code ec;
    auto& socket = stream_.next_layer();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  Server& server_;
  const TransportLimits& limits_;
  const net::any_io_executor executor_;  // kept apart: stream_ is moved out on upgrade
  TlsSocket stream_;
  // The deadline of the current step (TLS handshake and first header, request, body,
  // write, shutdown): on expiry the socket is closed and what is pending fails.
  net::steady_timer deadline_;
  bool timed_out_ = false;
  WorkerStrand worker_;
  ConnectionSlot slot_;
  const std::uint64_t id_;
  const std::uint64_t registry_key_;
  const std::string peer_;
  const Clock::time_point opened_at_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  State state_ = State::kHandshake;
  bool keep_alive_ = true;
  bool drain_requested_ = false;
  unsigned status_ = 0;
  std::uint64_t requests_ = 0;
  Clock::time_point request_start_{};
  std::string end_reason_;
};

// --- Listener ---------------------------------------------------------------------------

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  explicit Listener(Server& server)
      : server_(server),
        acceptor_(net::make_strand(server.io())),
        retry_timer_(acceptor_.get_executor()) {}

  Status Open(const tcp::endpoint& endpoint) {
    error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      Log(LogLevel::kError, "listen_failed", {{"error", ec.message()}});
      return Fail(ErrorCode::kIo, "cannot listen on the configured address");
    }
    return Ok();
  }

  tcp::endpoint local_endpoint() const {
    error_code ec;
    return acceptor_.local_endpoint(ec);
  }

  void Start() {
    net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->DoAccept(); });
  }

  // Closes the listening socket: new connections are refused by the kernel from now on.
  void Stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      error_code ec;
      self->stopped_ = true;
      self->acceptor_.close(ec);
      self->retry_timer_.cancel();
    });
  }

 private:
  void DoAccept() {
    if (stopped_) return;
    acceptor_.async_accept(net::make_strand(server_.io()),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void OnAccept(error_code ec, tcp::socket socket) {
    if (stopped_ || ec == net::error::operation_aborted) return;
    if (ec) {
      Log(LogLevel::kWarn, "accept_failed", {{"error", ec.message()}});
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait([self = shared_from_this()](error_code wait_ec) {
        if (!wait_ec) self->DoAccept();
      });
      return;
    }
    server_.metrics().connections_total.Increment();
    std::optional<ConnectionSlot> slot;
    if (!server_.draining()) slot = server_.TryReserveConnection();
    if (!slot) {
      server_.metrics().connections_rejected.Increment();
      Log(LogLevel::kWarn, "connection_rejected",
          {{"reason", server_.draining() ? "draining" : "connection_limit"}});
      error_code close_ec;
      socket.close(close_ec);
      DoAccept();
      return;
    }
    const std::uint64_t id = server_.NextConnectionId();
    error_code peer_ec;
    const tcp::endpoint peer = socket.remote_endpoint(peer_ec);
    std::string peer_address;
    if (!peer_ec) {
      try {
        peer_address = peer.address().to_string();
      } catch (...) {
        // Unprintable address: per-address limits then treat it as unknown.
      }
    }
    // Small writes (frames, acks) should leave at once.
    socket.set_option(tcp::no_delay(true), peer_ec);
    Log(LogLevel::kInfo, "connection_open", {{"connection", id}});
    std::make_shared<HttpSession>(server_, std::move(socket), std::move(*slot), id,
                                  std::move(peer_address))
        ->Start();
    DoAccept();
  }

  Server& server_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  bool stopped_ = false;
};

// --- Server -----------------------------------------------------------------------------

unsigned ThreadsOr(unsigned configured) {
  if (configured > 0) return configured;
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 0 ? cores : 1;
}

Server::Server(TransportOptions options, Service& service, MetricsRegistry& registry)
    : options_(std::move(options)),
      limits_(options_.limits),
      service_(service),
      registry_(registry),
      metrics_(registry),
      io_threads_(ThreadsOr(options_.limits.io_threads)),
      workers_(ThreadsOr(options_.limits.worker_threads)),
      ioc_(static_cast<int>(io_threads_)),
      control_(net::make_strand(ioc_)),
      drain_timer_(control_),
      stop_timer_(control_) {
  work_.emplace(ioc_.get_executor());
}

Server::~Server() {
  destroying_.store(true, std::memory_order_release);
  // Run() was never called or has returned: stop whatever is left so that the worker pool
  // and io_context destructors do not wait on work.
  workers_.stop();
  workers_.join();
  ioc_.stop();
}

Status Server::Init() {
  error_code ec;
  SSL_CTX* ctx = tls_.native_handle();
  // TLS 1.3 only: no downgrade to suites without forward secrecy or with CBC padding.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return Fail(ErrorCode::kInternal, "OpenSSL refused TLS 1.3 as the minimum version");
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  tls_.use_certificate_chain(
      net::buffer(options_.certificate_pem.data(), options_.certificate_pem.size()), ec);
  if (ec) return Fail(ErrorCode::kInvalidArgument, "the TLS certificate is not usable");
  tls_.use_private_key(
      net::buffer(options_.private_key_pem.data(), options_.private_key_pem.size()),
      ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "the TLS private key is not usable");
  }
  // OpenSSL now holds its own copy of the key.
  options_.private_key_pem = crypto::SecretBytes();

  const net::ip::address address = net::ip::make_address(options_.listen.host, ec);
  if (ec) return Fail(ErrorCode::kInvalidArgument, "the listen host must be an IP address");
  listener_ = std::make_shared<Listener>(*this);
  COFFRE_RETURN_IF_ERROR(listener_->Open(tcp::endpoint(address, options_.listen.port)));
  const tcp::endpoint bound = listener_->local_endpoint();
  local_port_ = bound.port();
  local_address_ = bound.address().is_v6()
                       ? "[" + bound.address().to_string() + "]:" + std::to_string(local_port_)
                       : bound.address().to_string() + ":" + std::to_string(local_port_);

  if (options_.handle_signals) {
    signals_.emplace(ioc_);
    signals_->add(SIGTERM, ec);
    if (!ec) signals_->add(SIGINT, ec);
    if (ec) return Fail(ErrorCode::kInternal, "cannot install the signal handlers");
  }
  return Ok();
}

void Server::Run() {
  if (ran_.exchange(true)) return;
  listener_->Start();
  if (signals_) net::dispatch(control_, [this] { WaitForSignal(); });
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < io_threads_; ++i) {
    try {
      threads.emplace_back([this] { RunIoLoop(); });
    } catch (...) {
      Log(LogLevel::kWarn, "io_thread_not_started", {{"started", i}});
      break;
    }
  }
  RunIoLoop();
  for (std::thread& thread : threads) thread.join();
  // Service calls in flight finish; their results are posted to a stopped io_context and
  // dropped with it.
  workers_.join();
  Log(LogLevel::kInfo, "transport_stopped");
}

void Server::RunIoLoop() {
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      // Handlers do not throw by design; if one does, log it and keep serving.
      Log(LogLevel::kError, "io_handler_exception", {{"what", e.what()}});
    } catch (...) {
      Log(LogLevel::kError, "io_handler_exception");
    }
  }
}

void Server::WaitForSignal() {
  signals_->async_wait(net::bind_executor(control_, [this](error_code ec, int signal_number) {
    if (ec) return;
    Log(LogLevel::kInfo, "signal", {{"signal", signal_number}});
    if (drain_started_) {
      // A second signal while draining: stop waiting for stragglers.
      OnDrainTimeout();
      return;
    }
    StartDrain();
    WaitForSignal();
  }));
}

void Server::Drain() {
  net::post(control_, [this] { StartDrain(); });
}

void Server::StartDrain() {
  if (drain_started_) return;
  drain_started_ = true;
  draining_.store(true, std::memory_order_release);
  metrics_.draining.Set(1);
  Log(LogLevel::kInfo, "drain_start",
      {{"connections", open_connections_.load(std::memory_order_relaxed)}});
  listener_->Stop();
  drain_timer_.expires_after(limits_.drain_timeout);
  drain_timer_.async_wait([this](error_code ec) {
    if (!ec) OnDrainTimeout();
  });
  net::post(workers_, [this] {
    CallService("OnDrain", [this] { service_.OnDrain(); });
    net::post(control_, [this] { DrainSessions(); });
  });
}

std::vector<std::shared_ptr<SessionBase>> Server::LiveSessions() {
  std::vector<std::shared_ptr<SessionBase>> live;
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  live.reserve(sessions_.size());
  for (const auto& [key, weak] : sessions_) {
    if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  return live;
}

void Server::DrainSessions() {
  if (drain_finished_) return;
  drain_sessions_started_ = true;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    sessions_draining_ = true;
  }
  for (const auto& session : LiveSessions()) session->BeginDrain();
  MaybeFinishDrain();
}

void Server::MaybeFinishDrain() {
  if (drain_finished_ || !(drain_sessions_started_ || drain_timed_out_)) return;
  if (open_connections_.load(std::memory_order_acquire) == 0) FinishDrain();
}

void Server::OnDrainTimeout() {
  if (drain_finished_) return;
  drain_timed_out_ = true;
  Log(LogLevel::kWarn, "drain_timeout",
      {{"connections", open_connections_.load(std::memory_order_relaxed)}});
  for (const auto& session : LiveSessions()) session->Abort();
  // Sessions whose sockets are now closed finish within a few handler runs; a service call
  // that never returns must not keep the process up, so stop the loop after a grace period.
  stop_timer_.expires_after(limits_.close_timeout);
  stop_timer_.async_wait([this](error_code ec) {
    if (ec || drain_finished_) return;
    Log(LogLevel::kWarn, "drain_forced_stop",
        {{"connections", open_connections_.load(std::memory_order_relaxed)}});
    FinishDrain();
  });
  MaybeFinishDrain();
}

void Server::FinishDrain() {
  drain_finished_ = true;
  drain_timer_.cancel();
  stop_timer_.cancel();
  if (signals_) {
    error_code ec;
    signals_->cancel(ec);
  }
  Log(LogLevel::kInfo, "drain_complete");
  work_.reset();
  ioc_.stop();
}

std::optional<ConnectionSlot> Server::TryReserveConnection() {
  const std::size_t before = open_connections_.fetch_add(1, std::memory_order_acq_rel);
  if (before >= limits_.max_connections) {
    open_connections_.fetch_sub(1, std::memory_order_acq_rel);
    return std::nullopt;
  }
  metrics_.connections_open.Add(1);
  return ConnectionSlot(this);
}

void Server::ReleaseConnection() {
  metrics_.connections_open.Sub(1);
  const std::size_t before = open_connections_.fetch_sub(1, std::memory_order_acq_rel);
  // Sessions destroyed with the io_context (in ~Server) must not post to it.
  if (before == 1 && draining() && !destroying_.load(std::memory_order_acquire)) {
    net::post(control_, [this] { MaybeFinishDrain(); });
  }
}

bool Server::RegisterSession(std::uint64_t key, std::weak_ptr<SessionBase> session) {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  sessions_.emplace(key, std::move(session));
  return sessions_draining_;
}

void Server::UnregisterSession(std::uint64_t key) {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  sessions_.erase(key);
}

std::string Server::RenderMetrics() {
  std::string text = registry_.Render();
  std::string service_text = service_.MetricsText();
  if (!service_text.empty()) {
    text += service_text;
    if (text.back() != '\n') text += '\n';
  }
  return text;
}

}  // namespace

Result<std::unique_ptr<Transport>> Transport::New(TransportOptions options, Service& service,
                                                  MetricsRegistry& metrics) {
  try {
    auto server = std::make_unique<Server>(std::move(options), service, metrics);
    COFFRE_RETURN_IF_ERROR(server->Init());
    return std::unique_ptr<Transport>(std::move(server));
  } catch (const std::exception& e) {
    // Asio constructors throw on resource exhaustion (threads, epoll descriptors).
    Log(LogLevel::kError, "transport_setup_failed", {{"what", e.what()}});
    return Fail(ErrorCode::kInternal, "cannot set up the network transport");
  }
}

}  // namespace coffre::server
