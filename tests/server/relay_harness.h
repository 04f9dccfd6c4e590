// What the relay's end-to-end tests share: a relay run in-process over real TLS on
// 127.0.0.1 port 0 (the real transport, the real service, the real store in a temporary
// data directory), a protocol-level client on top of test_client.h's WebSocket client, and
// builders of users, devices and signed objects.
//
// Every wait is bounded (testing::kDefaultWait unless a test says otherwise).
#ifndef COFFRE_TESTS_SERVER_RELAY_HARNESS_H_
#define COFFRE_TESTS_SERVER_RELAY_HARNESS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/wire/v1/wire.pb.h"
#include "audit_recorder.h"
#include "config.h"
#include "metrics.h"
#include "server/test_client.h"
#include "service.h"
#include "tls.h"
#include "transport.h"

namespace coffre::storage {
class Database;
}  // namespace coffre::storage

namespace coffre::server::testing {

namespace wire = coffre::wire::v1;

// Limits short enough for tests; rate limits generous unless a test tightens them.
RelayConfig TestRelayConfig(const std::filesystem::path& data_dir);

// A relay in-process. Start() and Stop() may alternate (a restart over the same data
// directory, with the same operator key, TLS identity and port).
class TestRelay {
 public:
  explicit TestRelay(std::filesystem::path data_dir,
                     const std::function<void(RelayConfig&)>& tweak = {});
  // Another relay process over `other`'s data directory: the same store (same operator
  // key), blob files and TLS identity, as when several relays share one store.
  TestRelay(const TestRelay& other, const std::function<void(RelayConfig&)>& tweak);
  ~TestRelay();
  TestRelay(const TestRelay&) = delete;
  TestRelay& operator=(const TestRelay&) = delete;

  // Builds the service and the transport and serves on a thread. False (with a test
  // failure recorded) if any step fails.
  bool Start();
  // Drains and waits for the transport to return, then destroys transport and service.
  void Stop();
  // Starts the drain without waiting.
  void BeginDrain();

  std::uint16_t port() const { return port_; }
  const CertificateDigest& relay_identity() const { return identity_; }
  const RelayConfig& config() const { return config_; }
  // Moves the service's wall clock forward (token and challenge expiry).
  void AdvanceClock(std::chrono::milliseconds by) { clock_offset_ms_ += by.count(); }

  // Tests of a relay that lies: while the relay is stopped, runs `edit` on its store's
  // SQLCipher database (opened with the operator key) as raw tables, for what the store's
  // interface refuses to do (rewriting or dropping chain statements, swapping keys). False
  // (with a test failure recorded) if the relay is running or the store does not open.
  bool EditStore(const std::function<void(storage::Database&)>& edit);
  // The same on the audit log's database (a relay that rewrites its log).
  bool EditAuditStore(const std::function<void(storage::Database&)>& edit);
  // The running relay's audit log; null while stopped.
  AuditRecorder* audit() const { return audit_.get(); }

  // `coffre-relay admin enrol` on this data directory; returns the printed code.
  std::string Enrol(const std::string& org_id, bool admin = false);

  // `coffre-relay admin status` on this data directory: its stdout; the exit code in *rc.
  std::string AdminStatus(int* rc);

  // GET /metrics.
  std::string Metrics() const;
  // The value of the sample named exactly `series` (e.g. `x_total{code="MALFORMED"}`), or
  // nullopt when absent.
  std::optional<double> MetricValue(std::string_view series) const;

 private:
  bool EditDatabase(std::string_view file, const std::function<void(storage::Database&)>& edit);

  RelayConfig config_;
  crypto::SecretBytes operator_key_;
  CertificateDigest identity_{};
  std::atomic<std::int64_t> clock_offset_ms_{0};
  std::uint16_t port_ = 0;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::shared_ptr<AuditRecorder> audit_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<Transport> transport_;
  std::thread runner_;
};

// A device of a test user: its Ed25519 key and certificate.
struct TestDevice {
  std::uint32_t device_id = 0;
  crypto::SigningKey key;
  wire::DeviceCertificate certificate;
};

// A user: identity key and devices (certificates signed by the identity key).
class TestUser {
 public:
  TestUser(std::string user_id, std::vector<std::uint32_t> device_ids = {1});

  const std::string& id() const { return user_id_; }
  const crypto::SigningKey& identity() const { return identity_; }
  TestDevice& device(std::uint32_t device_id);
  // Adds a device with a fresh key (not registered with the relay).
  TestDevice& AddDevice(std::uint32_t device_id);

  wire::Request Register(const std::string& code) const;

 private:
  std::string user_id_;
  crypto::SigningKey identity_;
  std::vector<std::unique_ptr<TestDevice>> devices_;
};

// A connection speaking the wire protocol.
class RelayClient {
 public:
  static std::unique_ptr<RelayClient> Connect(std::uint16_t port);

  // Sends `request` (its id set here) and waits for the response with that id; pushes
  // read meanwhile are kept. nullopt on timeout or a closed connection.
  std::optional<wire::Response> Call(wire::Request request, Millis timeout = kDefaultWait);
  // Sends raw bytes as one binary message.
  bool SendRaw(std::string_view bytes);
  // Waits for the response with `id` (for requests sent with SendRaw).
  std::optional<wire::Response> WaitResponse(std::uint64_t id, Millis timeout = kDefaultWait);
  // The next push (kept or newly read) that matches `kind`; nullopt on timeout.
  std::optional<wire::Push> WaitPush(wire::Push::KindCase kind, Millis timeout = kDefaultWait);
  // Reads for `window` and returns every push kept so far (and clears them).
  std::vector<wire::Push> DrainPushes(Millis window = Millis(200));
  // True once the relay closed the connection; close_code() then holds its code.
  bool WaitClosed(Millis timeout = kDefaultWait);
  std::uint16_t close_code() const { return close_code_; }
  bool closed() const { return closed_; }

  // Challenge, sign, Authenticate: the session token (empty on failure; the response is
  // in *response if given).
  std::string Login(const std::string& user_id, TestDevice& device,
                    const CertificateDigest& relay_identity,
                    std::optional<wire::Response>* response = nullptr);

  std::uint64_t NextId() { return ++next_id_; }

 private:
  explicit RelayClient(std::unique_ptr<WsClient> ws) : ws_(std::move(ws)) {}
  // Reads one message; false on timeout or close.
  bool ReadOne(Millis timeout);

  std::unique_ptr<WsClient> ws_;
  std::uint64_t next_id_ = 0;
  std::deque<wire::Response> responses_;
  std::deque<wire::Push> pushes_;
  bool closed_ = false;
  std::uint16_t close_code_ = 0;
};

// Enrols `user` (a fresh code for org "sdis13"), registers it with device 1 and logs that
// device in on `client`. Returns the session token; fails the test on any refusal.
std::string Onboard(TestRelay& relay, RelayClient& client, TestUser& user, bool admin = false);

// Request builders.
wire::Request ChallengeRequest();
wire::Request Authenticate(const std::string& user_id, const TestDevice& device,
                           std::string_view nonce, const CertificateDigest& relay_identity);
wire::Request SendTo(const std::string& recipient, std::uint32_t device_id, std::string_view text,
                     std::string client_id = {});
wire::Request FetchMailbox(std::uint64_t after = 0, std::uint32_t limit = 100);
wire::Request Ack(const std::vector<std::uint64_t>& sequences);

// Team chain statements.
std::string RandomId();
wire::ChainStatement SignStatement(wire::ChainStatementBody body, const crypto::SigningKey& key);
wire::ChainStatementBody StatementBody(std::string_view team_id, std::uint64_t sequence,
                                       const protocol::Hash* previous, const std::string& signer,
                                       std::uint32_t signer_device);
wire::Request Append(const wire::ChainStatement& statement);
// A team created by `admin` (device 1) with `members` added as members: returns the team id
// and the head after the last statement. Fails the test on a refusal.
struct TeamSetup {
  std::string team_id;
  protocol::Hash head{};
  std::uint64_t sequence = 0;
};
TeamSetup CreateTeam(RelayClient& admin_client, TestUser& admin,
                     const std::vector<std::pair<std::string, wire::Role>>& members);
// Appends a statement by admin (device 1) with the given change, after `team`'s head,
// updating `team` on success. Returns the response.
std::optional<wire::Response> AppendChange(
    RelayClient& client, TestUser& admin, TeamSetup& team,
    const std::function<void(wire::ChainStatementBody&)>& change);

// Item manifests.
wire::ItemManifestBody ManifestBody(std::string_view team_id, std::string_view item_id,
                                    std::uint64_t version, std::uint64_t parent,
                                    const std::string& author, std::uint32_t device);
wire::Request PutItem(const wire::ItemManifestBody& body, const crypto::SigningKey& key);

// HTTP blob requests.
HttpResponse BlobPut(std::uint16_t port, const std::string& token, std::string_view team_id,
                     std::string_view blob_id, std::uint64_t offset, std::string_view data);
HttpResponse BlobGet(std::uint16_t port, const std::string& token, std::string_view team_id,
                     std::string_view blob_id, std::optional<std::string> range = std::nullopt,
                     std::string method = "GET");

std::string Hex(std::string_view bytes);
wire::ErrorCode ErrorOf(const std::optional<wire::Response>& response);

}  // namespace coffre::server::testing

#endif  // COFFRE_TESTS_SERVER_RELAY_HARNESS_H_
