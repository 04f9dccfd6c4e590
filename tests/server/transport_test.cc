// The relay's transport over real TLS on 127.0.0.1, port 0, with a test service in place
// of the relay service. Limits are short so that every wait stays bounded.
#include "transport.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "server/temp_dir.h"
#include "server/test_client.h"
#include "tls.h"

namespace coffre::server {
namespace {

using testing::CanConnect;
using testing::HttpRequest;
using testing::HttpResponse;
using testing::HttpsGet;
using testing::HttpsRequest;
using testing::Millis;
using testing::TempDir;
using testing::WsClient;
using Kind = WsClient::Event::Kind;
using namespace std::chrono_literals;

constexpr std::size_t kTestFrameLimit = 64 * 1024;
constexpr std::uint64_t kTestBodyLimit = 64 * 1024;

TransportLimits TestLimits() {
  TransportLimits limits;
  limits.handshake_timeout = 2000ms;
  limits.http_request_timeout = 2000ms;
  limits.http_body_timeout = 2000ms;
  limits.http_write_timeout = 2000ms;
  limits.websocket_idle_timeout = 10'000ms;
  limits.close_timeout = 500ms;
  limits.drain_timeout = 3000ms;
  limits.max_header_bytes = 8 * 1024;
  limits.max_body_bytes = kTestBodyLimit;
  limits.max_frame_bytes = kTestFrameLimit;
  limits.max_queued_frames = 16;
  limits.max_queued_bytes = 512 * 1024;
  limits.max_pending_frames = 4;
  limits.max_connections = 64;
  limits.io_threads = 2;
  limits.worker_threads = 2;
  return limits;
}

std::vector<std::uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }

// Echoes frames and answers a few HTTP routes; records what the transport called.
//   frames: "flood:N:SIZE" sends N frames of SIZE bytes; "close:CODE" closes; "throw"
//   throws; anything else is echoed.
//   HTTP: /echo, /slow (500 ms), /file (Range), /throw; anything else 404.
class TestService final : public Service {
 public:
  void OnOpen(const std::shared_ptr<Connection>& connection) override {
    std::lock_guard<std::mutex> lock(mutex_);
    EXPECT_TRUE(connections_.emplace(connection->id(), connection).second);
    ++opens_;
    changed_.notify_all();
  }

  void OnFrame(const std::shared_ptr<Connection>& connection,
               std::span<const std::uint8_t> frame) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      EXPECT_EQ(connections_.count(connection->id()), 1u) << "OnFrame before OnOpen";
      ++frames_;
    }
    const std::string text(frame.begin(), frame.end());
    if (text.rfind("flood:", 0) == 0) {
      const std::size_t colon = text.find(':', 6);
      const int count = std::stoi(text.substr(6, colon - 6));
      const std::size_t size = std::stoul(text.substr(colon + 1));
      for (int i = 0; i < count; ++i) {
        if (!connection->SendFrame(std::vector<std::uint8_t>(size, 'x'))) {
          flood_refused_ = true;
          break;
        }
      }
      return;
    }
    if (text == "throw") throw std::runtime_error("service bug");
    if (text.rfind("close:", 0) == 0) {
      connection->Close(static_cast<std::uint16_t>(std::stoi(text.substr(6))), "bye");
      return;
    }
    connection->SendFrame(std::vector<std::uint8_t>(frame.begin(), frame.end()));
  }

  void OnClose(const std::shared_ptr<Connection>& connection) override {
    std::lock_guard<std::mutex> lock(mutex_);
    EXPECT_EQ(connections_.erase(connection->id()), 1u) << "OnClose without OnOpen";
    ++closes_;
    EXPECT_FALSE(connection->SendFrame(Bytes("late"))) << "a closed connection took a frame";
    changed_.notify_all();
  }

  HttpReply OnHttp(const HttpRequestInfo& request, std::span<const std::uint8_t> body) override {
    HttpReply reply;
    reply.content_type = "text/plain";
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (path == "/echo") {
      const std::string text = request.method + " " + request.target +
                               " body=" + std::to_string(body.size()) +
                               " auth=" + request.authorization + " type=" + request.content_type;
      reply.body = Bytes(text);
    } else if (path == "/slow") {
      slow_entered_ = true;
      std::this_thread::sleep_for(500ms);
      reply.body = Bytes("slow done");
    } else if (path == "/file") {
      reply.file = file_;
      reply.file_length = file_size_;
      if (request.range) {
        // "bytes=A-B", as a real service would parse it.
        const std::string& range = *request.range;
        const std::size_t dash = range.find('-');
        const std::uint64_t first = std::stoull(range.substr(6, dash - 6));
        const std::uint64_t last = std::stoull(range.substr(dash + 1));
        reply.status = 206;
        reply.file_offset = first;
        reply.file_length = last - first + 1;
        reply.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" +
                                                        std::to_string(last) + "/" +
                                                        std::to_string(file_size_));
      }
      reply.headers.emplace_back("Accept-Ranges", "bytes");
      reply.headers.emplace_back("Bad\r\nHeader", "injected");
      reply.headers.emplace_back("X-Split", "a\r\nInjected: yes");
    } else if (path == "/throw") {
      throw std::runtime_error("service bug");
    } else {
      reply.status = 404;
      reply.body = Bytes("not found");
    }
    return reply;
  }

  std::string MetricsText() override {
    return "# HELP test_service_up The test service.\n# TYPE test_service_up gauge\n"
           "test_service_up 1\n";
  }

  void OnDrain() override {
    std::lock_guard<std::mutex> lock(mutex_);
    drained_ = true;
    for (const auto& [id, connection] : connections_) connection->SendFrame(Bytes("going-away"));
  }

  bool WaitForCloses(int count, Millis timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return closes_ >= count; });
  }
  bool WaitForOpens(int count, Millis timeout = 5000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return opens_ >= count; });
  }
  int closes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closes_;
  }
  bool drained() {
    std::lock_guard<std::mutex> lock(mutex_);
    return drained_;
  }
  void SetFile(std::filesystem::path file, std::uint64_t size) {
    file_ = std::move(file);
    file_size_ = size;
  }

  std::atomic<bool> flood_refused_{false};
  std::atomic<bool> slow_entered_{false};

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::uint64_t, std::shared_ptr<Connection>> connections_;
  int opens_ = 0;
  int closes_ = 0;
  int frames_ = 0;
  bool drained_ = false;
  std::filesystem::path file_;
  std::uint64_t file_size_ = 0;
};

// A transport serving TestService on 127.0.0.1:0 from a thread.
class Relay {
 public:
  explicit Relay(TransportLimits limits = TestLimits(), const std::filesystem::path* dir = nullptr)
      : dir_(dir != nullptr ? *dir : own_dir_.path()) {
    auto identity = LoadOrCreateTlsIdentity(dir_);
    if (!identity) {
      ADD_FAILURE() << "TLS identity: " << identity.error().context();
      return;
    }
    fingerprint_ = identity->fingerprint_sha256;
    TransportOptions options;
    options.listen = {"127.0.0.1", 0};
    options.certificate_pem = identity->certificate_pem;
    options.private_key_pem = std::move(identity->private_key_pem);
    options.limits = limits;
    auto transport = Transport::New(std::move(options), service_, metrics_);
    if (!transport) {
      ADD_FAILURE() << "Transport::New: " << transport.error().context();
      return;
    }
    transport_ = std::move(*transport);
    run_ = std::async(std::launch::async, [this] { transport_->Run(); });
  }

  ~Relay() {
    if (run_.valid() && !Stop(10'000ms)) ADD_FAILURE() << "Run() did not return after Drain()";
  }

  bool ok() const { return transport_ != nullptr; }
  std::uint16_t port() const { return transport_->local_port(); }
  TestService& service() { return service_; }
  Transport& transport() { return *transport_; }
  const std::string& fingerprint() const { return fingerprint_; }
  bool RunReturned(Millis timeout) { return run_.wait_for(timeout) == std::future_status::ready; }
  bool Stop(Millis timeout) {
    transport_->Drain();
    return RunReturned(timeout);
  }

 private:
  TempDir own_dir_;
  std::filesystem::path dir_;
  TestService service_;
  MetricsRegistry metrics_;
  std::string fingerprint_;
  std::unique_ptr<Transport> transport_;
  std::future<void> run_;
};

std::unique_ptr<WsClient> Connect(const Relay& relay) {
  std::string error;
  auto client = WsClient::Connect(relay.port(), &error);
  EXPECT_NE(client, nullptr) << error;
  return client;
}

// The value of the sample `series` (name plus labels, exactly as rendered); -1 if absent.
double MetricValue(const std::string& text, const std::string& series) {
  std::size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST(TransportTest, HealthzAnswersOverTls13WithThePrintedCertificate) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  const HttpResponse response = HttpsGet(relay.port(), "/healthz");
  EXPECT_EQ(response.error, "");
  EXPECT_EQ(response.status, 200u);
  EXPECT_EQ(response.body, "ok");
  const testing::TlsProbe probe = testing::ProbeTls(relay.port(), /*max_tls12=*/false);
  ASSERT_TRUE(probe.handshake_ok) << probe.error;
  EXPECT_EQ(probe.protocol, "TLSv1.3");
  EXPECT_EQ(probe.peer_fingerprint, relay.fingerprint());
}

TEST(TransportTest, Tls12ClientIsRefused) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  const testing::TlsProbe probe = testing::ProbeTls(relay.port(), /*max_tls12=*/true);
  EXPECT_FALSE(probe.handshake_ok);
  // The relay still serves TLS 1.3 clients afterwards.
  EXPECT_EQ(HttpsGet(relay.port(), "/healthz").status, 200u);
}

TEST(TransportTest, PlainHttpOnTheTlsPortGetsNoHttpAnswer) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  const std::string received = testing::PlainHttpExchange(relay.port(), 3000ms);
  EXPECT_EQ(received.find("HTTP/"), std::string::npos) << received;
  EXPECT_EQ(received.find("ok"), std::string::npos);
}

TEST(TransportTest, MetricsHaveTypeLinesAndCountConnectionsAndFrames) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(client->Send("frame-" + std::to_string(i)));
    const WsClient::Event echo = client->Read();
    ASSERT_EQ(echo.kind, Kind::kMessage);
    EXPECT_EQ(echo.data, "frame-" + std::to_string(i));
  }
  ASSERT_EQ(HttpsGet(relay.port(), "/healthz").status, 200u);

  const HttpResponse metrics = HttpsGet(relay.port(), "/metrics");
  ASSERT_EQ(metrics.status, 200u) << metrics.error;
  EXPECT_NE(metrics.Header("content-type").find("text/plain"), std::string::npos);
  const std::string& text = metrics.body;
  EXPECT_NE(text.find("# TYPE coffre_relay_connections_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE coffre_relay_http_request_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_GE(MetricValue(text, "coffre_relay_connections_total"), 3);
  EXPECT_GE(MetricValue(text, "coffre_relay_connections_open"), 2);  // WebSocket + this one
  EXPECT_EQ(MetricValue(text, "coffre_relay_websockets_open"), 1);
  EXPECT_EQ(MetricValue(text, "coffre_relay_websocket_frames_total{direction=\"in\"}"), 3);
  EXPECT_EQ(MetricValue(text, "coffre_relay_websocket_frames_total{direction=\"out\"}"), 3);
  EXPECT_EQ(MetricValue(text, "coffre_relay_websocket_bytes_total{direction=\"in\"}"), 3 * 7);
  EXPECT_GE(MetricValue(text, "coffre_relay_http_requests_total{status=\"200\"}"), 1);
  EXPECT_GE(MetricValue(text, "coffre_relay_http_request_duration_seconds_count"), 1);
  EXPECT_GE(MetricValue(text, "coffre_relay_http_request_duration_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_EQ(MetricValue(text, "test_service_up"), 1) << "service metrics are appended";
}

TEST(TransportTest, WebSocketFramesReachTheServiceInOrder) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  // More frames than max_pending_frames: reading pauses and resumes without reordering.
  constexpr int kFrames = 40;
  for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(client->Send(std::to_string(i)));
  for (int i = 0; i < kFrames; ++i) {
    const WsClient::Event echo = client->Read();
    ASSERT_EQ(echo.kind, Kind::kMessage) << i;
    EXPECT_EQ(echo.data, std::to_string(i));
  }
}

TEST(TransportTest, FrameOverTheLimitClosesThatConnectionWith1009Only) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto big = Connect(relay);
  auto other = Connect(relay);
  ASSERT_TRUE(big && other);
  ASSERT_TRUE(relay.service().WaitForOpens(2));

  big->Send(std::string(kTestFrameLimit + 1, 'b'));
  WsClient::Event event = big->Read();
  ASSERT_EQ(event.kind, Kind::kClosed) << event.error;
  EXPECT_EQ(event.close_code, 1009);
  EXPECT_TRUE(relay.service().WaitForCloses(1));

  // A frame exactly at the limit is fine, on the other connection.
  ASSERT_TRUE(other->Send(std::string(kTestFrameLimit, 'o')));
  event = other->Read();
  ASSERT_EQ(event.kind, Kind::kMessage);
  EXPECT_EQ(event.data.size(), kTestFrameLimit);
}

TEST(TransportTest, BodyOverTheLimitGets413) {
  Relay relay;
  ASSERT_TRUE(relay.ok());

  HttpRequest declared;  // refused from its Content-Length, before any body byte is sent
  declared.method = "PUT";
  declared.target = "/echo";
  declared.body = std::string(10 * 1024 * 1024, 'x');
  declared.expect_continue = true;
  HttpResponse response = HttpsRequest(relay.port(), declared);
  EXPECT_EQ(response.status, 413u) << response.error;

  HttpRequest sent = declared;  // Content-Length over the limit, body sent at once
  sent.expect_continue = false;
  sent.body = std::string(kTestBodyLimit + 1, 'x');
  response = HttpsRequest(relay.port(), sent);
  EXPECT_EQ(response.status, 413u) << response.error;

  HttpRequest chunked = sent;  // no length known in advance
  chunked.chunked = true;
  response = HttpsRequest(relay.port(), chunked);
  EXPECT_EQ(response.status, 413u) << response.error;

  HttpRequest within = sent;  // at the limit: reaches the service whole
  within.body = std::string(kTestBodyLimit, 'x');
  within.expect_continue = true;
  within.headers = {{"Authorization", "Bearer t"}, {"Content-Type", "application/octet-stream"}};
  response = HttpsRequest(relay.port(), within);
  EXPECT_EQ(response.status, 200u) << response.error;
  EXPECT_EQ(response.body, "PUT /echo body=" + std::to_string(kTestBodyLimit) +
                               " auth=Bearer t type=application/octet-stream");
}

TEST(TransportTest, OversizedHeaderIsRefused) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  HttpRequest request;
  request.target = "/echo";
  request.headers = {{"X-Padding", std::string(16 * 1024, 'p')}};
  const HttpResponse response = HttpsRequest(relay.port(), request);
  EXPECT_NE(response.status, 200u);
  EXPECT_TRUE(response.status == 431u || !response.error.empty()) << response.status;
  EXPECT_EQ(HttpsGet(relay.port(), "/healthz").status, 200u);
}

TEST(TransportTest, SlowReaderIsClosedWhenItsQueueIsFullAndOthersKeepWorking) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto slow = Connect(relay);
  auto other = Connect(relay);
  ASSERT_TRUE(slow && other);
  ASSERT_TRUE(relay.service().WaitForOpens(2));

  // 64 MiB pushed at a client that reads nothing: far more than socket buffers hold.
  ASSERT_TRUE(slow->Send("flood:4096:16384"));
  ASSERT_TRUE(relay.service().WaitForCloses(1, 10'000ms)) << "slow reader was not closed";
  EXPECT_TRUE(relay.service().flood_refused_);

  ASSERT_TRUE(other->Send("still here"));
  const WsClient::Event echo = other->Read();
  ASSERT_EQ(echo.kind, Kind::kMessage);
  EXPECT_EQ(echo.data, "still here");

  // The slow client finds buffered frames, then the end of its connection.
  int messages = 0;
  WsClient::Event event;
  do {
    event = slow->Read(2000ms);
  } while (event.kind == Kind::kMessage && ++messages < 5000);
  EXPECT_NE(event.kind, Kind::kMessage);
  EXPECT_NE(event.kind, Kind::kTimeout);
  EXPECT_LT(messages, 4096);
  if (event.kind == Kind::kClosed) {
    EXPECT_EQ(event.close_code, 1008);
  }

  const std::string metrics = HttpsGet(relay.port(), "/metrics").body;
  EXPECT_EQ(MetricValue(metrics, "coffre_relay_websocket_queue_overflows_total"), 1);
}

TEST(TransportTest, IdleWebSocketIsClosedWhileAReadingOneStays) {
  TransportLimits limits = TestLimits();
  limits.websocket_idle_timeout = 600ms;
  Relay relay(limits);
  ASSERT_TRUE(relay.ok());
  auto idle = Connect(relay);
  auto active = Connect(relay);
  ASSERT_TRUE(idle && active);

  // The active client keeps a read pending, so it answers the relay's pings.
  EXPECT_EQ(active->Read(2000ms).kind, Kind::kTimeout);
  ASSERT_TRUE(relay.service().WaitForCloses(1, 5000ms));
  EXPECT_NE(idle->Read(1000ms).kind, Kind::kMessage);

  ASSERT_TRUE(active->Send("alive"));
  const WsClient::Event echo = active->Read();
  ASSERT_EQ(echo.kind, Kind::kMessage);
  EXPECT_EQ(echo.data, "alive");
  EXPECT_EQ(relay.service().closes(), 1);
}

TEST(TransportTest, ServiceCloseSendsQueuedFramesFirst) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("before"));
  ASSERT_TRUE(client->Send("close:4001"));
  WsClient::Event event = client->Read();
  ASSERT_EQ(event.kind, Kind::kMessage);
  EXPECT_EQ(event.data, "before");
  event = client->Read();
  ASSERT_EQ(event.kind, Kind::kClosed);
  EXPECT_EQ(event.close_code, 4001);
  EXPECT_TRUE(relay.service().WaitForCloses(1));
}

TEST(TransportTest, TextFramesAreRefused) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("text", testing::kDefaultWait, /*text=*/true));
  const WsClient::Event event = client->Read();
  ASSERT_EQ(event.kind, Kind::kClosed);
  EXPECT_EQ(event.close_code, 1003);  // unsupported data
}

TEST(TransportTest, UpgradeIsOnlyServedOnTheWebSocketPath) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  std::string error;
  EXPECT_EQ(WsClient::Connect(relay.port(), &error, testing::kDefaultWait, "/v1/other"), nullptr);
  EXPECT_EQ(HttpsGet(relay.port(), "/v1/ws").status, 426u);
  EXPECT_EQ(HttpsGet(relay.port(), "/nothing").status, 404u);
}

TEST(TransportTest, FileRepliesAreStreamedWithRanges) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  TempDir dir;
  const std::filesystem::path file = dir.path() / "blob";
  std::string content;
  for (int i = 0; i < 300'000; ++i) content += static_cast<char>('a' + i % 26);
  std::ofstream(file, std::ios::binary) << content;
  relay.service().SetFile(file, content.size());

  HttpResponse whole = HttpsGet(relay.port(), "/file");
  ASSERT_EQ(whole.status, 200u) << whole.error;
  EXPECT_EQ(whole.body, content);
  EXPECT_EQ(whole.Header("accept-ranges"), "bytes");
  EXPECT_EQ(whole.headers.count("bad\r\nheader"), 0u);
  EXPECT_EQ(whole.headers.count("x-split"), 0u) << "a header value with CR LF was sent";
  EXPECT_EQ(whole.headers.count("injected"), 0u);

  HttpRequest ranged;
  ranged.target = "/file";
  ranged.headers = {{"Range", "bytes=100000-100009"}};
  const HttpResponse part = HttpsRequest(relay.port(), ranged);
  ASSERT_EQ(part.status, 206u) << part.error;
  EXPECT_EQ(part.body, content.substr(100000, 10));
  EXPECT_EQ(part.Header("content-range"), "bytes 100000-100009/300000");

  HttpRequest head;
  head.method = "HEAD";
  head.target = "/file";
  const HttpResponse headers_only = HttpsRequest(relay.port(), head);
  ASSERT_EQ(headers_only.status, 200u) << headers_only.error;
  EXPECT_EQ(headers_only.Header("content-length"), "300000");
  EXPECT_EQ(headers_only.body, "");
}

TEST(TransportTest, ServiceExceptionBecomes500) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  EXPECT_EQ(HttpsGet(relay.port(), "/throw").status, 500u);
  EXPECT_EQ(HttpsGet(relay.port(), "/healthz").status, 200u);
}

TEST(TransportTest, ServiceExceptionOnAFrameClosesWith1011) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("throw"));
  const WsClient::Event event = client->Read();
  ASSERT_EQ(event.kind, Kind::kClosed) << event.error;
  EXPECT_EQ(event.close_code, 1011);
  EXPECT_TRUE(relay.service().WaitForCloses(1));
}

TEST(TransportTest, ConnectionsOverTheLimitAreRefused) {
  TransportLimits limits = TestLimits();
  limits.max_connections = 2;
  Relay relay(limits);
  ASSERT_TRUE(relay.ok());
  auto first = Connect(relay);
  auto second = Connect(relay);
  ASSERT_TRUE(first && second);
  std::string error;
  EXPECT_EQ(WsClient::Connect(relay.port(), &error, 2000ms), nullptr);

  first.reset();
  ASSERT_TRUE(relay.service().WaitForCloses(1));
  std::unique_ptr<WsClient> third;
  for (int attempt = 0; attempt < 50 && !third; ++attempt) {
    third = WsClient::Connect(relay.port(), &error, 2000ms);
    if (!third) std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(third, nullptr) << "a freed slot was not reused: " << error;
}

TEST(TransportTest, DrainClosesWebSocketsWith1001FinishesRequestsAndReturns) {
  Relay relay;
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(relay.service().WaitForOpens(1));
  const std::uint16_t port = relay.port();

  auto slow = std::async(std::launch::async, [port] { return HttpsGet(port, "/slow"); });
  for (int i = 0; i < 200 && !relay.service().slow_entered_; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(relay.service().slow_entered_);

  relay.transport().Drain();

  // The service's goodbye first, then the close.
  WsClient::Event event = client->Read();
  ASSERT_EQ(event.kind, Kind::kMessage);
  EXPECT_EQ(event.data, "going-away");
  event = client->Read();
  ASSERT_EQ(event.kind, Kind::kClosed) << event.error;
  EXPECT_EQ(event.close_code, 1001);

  // The request in flight finished with its response.
  ASSERT_EQ(slow.wait_for(5s), std::future_status::ready);
  const HttpResponse response = slow.get();
  EXPECT_EQ(response.status, 200u) << response.error;
  EXPECT_EQ(response.body, "slow done");
  EXPECT_EQ(response.Header("connection"), "close");

  EXPECT_TRUE(relay.RunReturned(5s));
  EXPECT_FALSE(CanConnect(port)) << "new connections are still accepted";
  EXPECT_TRUE(relay.service().drained());
  EXPECT_EQ(relay.service().closes(), 1);
}

TEST(TransportTest, DrainCutsAPeerThatNeverAnswersTheClose) {
  TransportLimits limits = TestLimits();
  limits.drain_timeout = 1000ms;
  Relay relay(limits);
  ASSERT_TRUE(relay.ok());
  auto client = Connect(relay);  // never reads again: cannot answer the close handshake
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(relay.service().WaitForOpens(1));
  relay.transport().Drain();
  EXPECT_TRUE(relay.RunReturned(5s));
  EXPECT_TRUE(relay.service().WaitForCloses(1, 100ms));
}

TEST(TransportTest, ConnectionsThatSendNothingAreClosedAfterTheHandshakeTimeout) {
  TransportLimits limits = TestLimits();
  limits.handshake_timeout = 400ms;
  Relay relay(limits);
  ASSERT_TRUE(relay.ok());
  // No TLS ClientHello at all.
  const auto silent = testing::IdleUntilClosed(relay.port(), /*tls=*/false, 5000ms);
  ASSERT_TRUE(silent.has_value()) << "a silent TCP connection stayed open";
  EXPECT_GE(silent->count(), 300);
  EXPECT_LT(silent->count(), 3000);
  // TLS done, but no HTTP request: the same deadline covers both.
  const auto no_request = testing::IdleUntilClosed(relay.port(), /*tls=*/true, 5000ms);
  ASSERT_TRUE(no_request.has_value()) << "a TLS connection without a request stayed open";
  EXPECT_LT(no_request->count(), 3000);
}

TEST(TransportTest, SelfSignedCertificateIsCreatedOnceAndReusedAcrossRestarts) {
  TempDir dir;
  std::string first_fingerprint;
  {
    Relay relay(TestLimits(), &dir.path());
    ASSERT_TRUE(relay.ok());
    const testing::TlsProbe probe = testing::ProbeTls(relay.port(), false);
    ASSERT_TRUE(probe.handshake_ok) << probe.error;
    first_fingerprint = probe.peer_fingerprint;
    EXPECT_EQ(first_fingerprint, relay.fingerprint());
  }
  struct stat info {};
  ASSERT_EQ(stat((dir.path() / kSelfSignedKeyFile).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  {
    Relay relay(TestLimits(), &dir.path());
    ASSERT_TRUE(relay.ok());
    const testing::TlsProbe probe = testing::ProbeTls(relay.port(), false);
    ASSERT_TRUE(probe.handshake_ok) << probe.error;
    EXPECT_EQ(probe.peer_fingerprint, first_fingerprint);
  }
}

TEST(TransportTest, NewRefusesAHostThatIsNotAnAddress) {
  TempDir dir;
  auto identity = LoadOrCreateTlsIdentity(dir.path());
  ASSERT_TRUE(identity);
  TestService service;
  MetricsRegistry metrics;
  TransportOptions options;
  options.listen = {"not-an-address", 0};
  options.certificate_pem = identity->certificate_pem;
  options.private_key_pem = std::move(identity->private_key_pem);
  options.limits = TestLimits();
  auto transport = Transport::New(std::move(options), service, metrics);
  ASSERT_FALSE(transport);
  EXPECT_EQ(transport.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::server
