// Relay load (issue #3 §7): fan-out of envelopes to a team of online devices, and the
// relay's memory per idle authenticated WebSocket connection.
//
// Both run the real relay in-process (tests/server/relay_harness.h: real transport over
// TLS 1.3 on 127.0.0.1 port 0, real service, real SQLCipher store in a fresh directory under
// $TMPDIR or /tmp, removed at the end) with the harness's test configuration (2 I/O threads,
// 3 worker threads), raised connection and authentication limits, and the Beast test client.
//
//   RelayFanOut       one sender and kRecipients recipient users, one device each, all
//                     registered, authenticated and connected before timing starts. Each
//                     iteration is one round: the sender sends one SendEnvelopes request
//                     holding one envelope per recipient device (kMaxEnvelopesPerSend = 100
//                     allows the whole team in one frame, ~30 KiB of the 1 MiB frame limit);
//                     every recipient, on its own thread, waits for the push, records its
//                     arrival and acknowledges; the round ends when all acks are answered.
//                     Counters: envelopes_per_s (delivered and acknowledged, over the rounds'
//                     wall time), latency_p50_us / latency_p99_us / latency_max_us (steady_clock
//                     from just before the send to the push's arrival at the recipient, one
//                     process so one clock), send_result_p50_us (send to the sender's
//                     SendResult: how much of the latency is the relay storing the batch
//                     before it pushes), relay_cpu_cores, client_cpu_cores and
//                     process_cpu_cores (CPU seconds per wall second over the rounds).
//                     Process CPU comes from getrusage(RUSAGE_SELF); client CPU is the sum of
//                     getrusage(RUSAGE_THREAD) of the sender and recipient threads; relay CPU
//                     is the difference (every other thread of the process is the relay's).
//                     Anchors: send_result_p50_us (the sender's own round trip, which the
//                     pushes cannot beat) and the store's durable enqueue (RelayStore*
//                     benches): one SendEnvelopes is one enqueue group (synchronous = FULL).
//   RelayIdleConnectionMemory
//                     kIdleConnections users are registered (one short connection at a time),
//                     then a forked child process (forked before the relay starts, so it holds
//                     no relay threads) opens kIdleConnections connections, authenticates each
//                     and keeps them idle. The parent, which holds only the relay, reads its
//                     own resident set (/proc/self/statm) and glibc heap in use (mallinfo2:
//                     in-use chunks plus mmapped chunks) before the child connects and once
//                     all are authenticated; the differences divided by the connection count
//                     are rss_per_connection_bytes and heap_per_connection_bytes. Goal in the
//                     issue: <= 16 KiB per idle connection. RSS includes pages touched once
//                     by TLS handshakes and logins that the allocator keeps, so it is the
//                     upper figure; the heap figure is what the live connections hold.
//
// Iterations are fixed (kRounds, 1) so the run is bounded whatever --benchmark_min_time says;
// every wait is bounded. Failures end the benchmark with SkipWithError; nothing throws.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coffre/protocol/limits.h"
#include "log.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using Clock = std::chrono::steady_clock;

constexpr int kRecipients = 100;
constexpr int kRounds = 20;
constexpr std::size_t kCiphertextBytes = 256;
constexpr int kIdleConnections = 200;
constexpr Millis kRoundWait{10'000};

static_assert(kRecipients <= static_cast<int>(protocol::kMaxEnvelopesPerSend));

void LoadTweak(RelayConfig& config) {
  config.limits.max_connections = 1024;
  config.limits.websocket_idle_timeout = 300'000ms;
  config.rate_limits.auth_attempts_per_minute_per_address = 1e6;
  config.rate_limits.auth_burst_per_address = 100'000;
  config.rate_limits.requests_per_second_per_device = 1e6;
  config.rate_limits.requests_burst_per_device = 1'000'000;
}

// "prefix<i>", built by appending.
std::string Numbered(std::string_view prefix, int i) {
  std::string text(prefix);
  text.append(std::to_string(i));
  return text;
}

double CpuSeconds(const rusage& usage) {
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double CpuNow(int who) {
  rusage usage{};
  if (getrusage(who, &usage) != 0) return 0;
  return CpuSeconds(usage);
}

double Percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<std::size_t>(fraction * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

// --- Fan-out -----------------------------------------------------------------------------------

struct Recipient {
  explicit Recipient(int i) : user(Numbered("load-r", i)) {}
  TestUser user;
  std::unique_ptr<RelayClient> client;
  std::vector<Clock::time_point> received;
  double cpu_seconds = 0;
};

// Shared between the sender (the benchmark thread) and the recipient threads.
struct Rounds {
  std::mutex mutex;
  std::condition_variable changed;
  int acked = 0;  // acknowledgements answered, over all rounds
  bool failed = false;
  std::string failure;
  std::atomic<bool> stop{false};

  void Fail(std::string why) {
    std::lock_guard lock(mutex);
    if (!failed) failure = std::move(why);
    failed = true;
    changed.notify_all();
  }
};

void RunRecipient(Recipient& recipient, Rounds& rounds) {
  const double cpu_start = CpuNow(RUSAGE_THREAD);
  for (int round = 0; round < kRounds && !rounds.stop.load(); ++round) {
    std::optional<wire::Push> push;
    const auto deadline = Clock::now() + kRoundWait;
    while (!push && !rounds.stop.load() && Clock::now() < deadline) {
      push = recipient.client->WaitPush(wire::Push::kEnvelopes, Millis(200));
    }
    if (!push) {
      if (!rounds.stop.load()) rounds.Fail("no push for " + recipient.user.id());
      break;
    }
    recipient.received.push_back(Clock::now());
    std::vector<std::uint64_t> sequences;
    for (const auto& envelope : push->envelopes().envelopes()) {
      sequences.push_back(envelope.sequence());
    }
    if (sequences.size() != 1) {
      rounds.Fail("unexpected envelope count for " + recipient.user.id());
      break;
    }
    auto acked = recipient.client->Call(Ack(sequences), kRoundWait);
    if (!acked || !acked->has_ok()) {
      rounds.Fail("ack refused for " + recipient.user.id());
      break;
    }
    std::lock_guard lock(rounds.mutex);
    ++rounds.acked;
    rounds.changed.notify_all();
  }
  recipient.cpu_seconds = CpuNow(RUSAGE_THREAD) - cpu_start;
}

wire::Request FanOutRequest(const std::vector<std::unique_ptr<Recipient>>& recipients) {
  wire::Request request;
  const std::string ciphertext(kCiphertextBytes, '\x5a');
  for (const auto& recipient : recipients) {
    wire::OutgoingEnvelope* envelope = request.mutable_send_envelopes()->add_envelopes();
    envelope->set_recipient_user_id(recipient->user.id());
    envelope->set_recipient_device_id(1);
    envelope->set_client_id(RandomId());
    envelope->set_type(2);
    envelope->set_ciphertext(ciphertext);
  }
  return request;
}

void BM_RelayFanOut(benchmark::State& state) {
  SetLogLevel(LogLevel::kError);
  TempDir dir;
  if (dir.path().empty()) {
    state.SkipWithError("no temporary directory");
    return;
  }
  TestRelay relay(dir.path() / "relay", LoadTweak);
  if (!relay.Start()) {
    state.SkipWithError("relay did not start");
    return;
  }
  TestUser sender_user("load-sender");
  auto sender = RelayClient::Connect(relay.port());
  if (!sender || Onboard(relay, *sender, sender_user).empty()) {
    state.SkipWithError("sender onboarding failed");
    return;
  }
  std::vector<std::unique_ptr<Recipient>> recipients;
  for (int i = 0; i < kRecipients; ++i) {
    auto recipient = std::make_unique<Recipient>(i);
    recipient->client = RelayClient::Connect(relay.port());
    if (!recipient->client || Onboard(relay, *recipient->client, recipient->user).empty()) {
      state.SkipWithError("recipient onboarding failed");
      return;
    }
    recipient->client->DrainPushes(Millis(0));
    recipients.push_back(std::move(recipient));
  }

  Rounds rounds;
  std::vector<Clock::time_point> sent;
  sent.reserve(kRounds);
  std::vector<double> answered_us;  // send to SendResult, as seen by the sender
  answered_us.reserve(kRounds);
  const auto wall_start = Clock::now();
  const double process_cpu_start = CpuNow(RUSAGE_SELF);
  const double sender_cpu_start = CpuNow(RUSAGE_THREAD);
  std::vector<std::thread> threads;
  threads.reserve(recipients.size());
  for (auto& recipient : recipients) {
    threads.emplace_back([&rounds, r = recipient.get()] { RunRecipient(*r, rounds); });
  }

  int round = 0;
  for (auto _ : state) {
    wire::Request request = FanOutRequest(recipients);
    sent.push_back(Clock::now());
    auto result = sender->Call(std::move(request), kRoundWait);
    answered_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - sent.back()).count());
    if (!result || !result->has_send_result() ||
        result->send_result().sequence_size() != kRecipients) {
      rounds.Fail(result && result->has_error() ? result->error().message() : "send failed");
    }
    std::unique_lock lock(rounds.mutex);
    rounds.changed.wait_for(lock, kRoundWait, [&] {
      return rounds.failed || rounds.acked >= (round + 1) * kRecipients;
    });
    if (rounds.failed || rounds.acked < (round + 1) * kRecipients) {
      if (!rounds.failed) rounds.failure = "round timed out";
      state.SkipWithError(rounds.failure.c_str());
      break;
    }
    ++round;
  }
  const auto wall_end = Clock::now();
  rounds.stop.store(true);
  for (auto& thread : threads) thread.join();
  const double sender_cpu = CpuNow(RUSAGE_THREAD) - sender_cpu_start;
  const double process_cpu = CpuNow(RUSAGE_SELF) - process_cpu_start;
  if (round < kRounds) return;

  std::vector<double> latencies_us;
  double client_cpu = sender_cpu;
  for (const auto& recipient : recipients) {
    client_cpu += recipient->cpu_seconds;
    for (std::size_t r = 0; r < recipient->received.size() && r < sent.size(); ++r) {
      latencies_us.push_back(
          std::chrono::duration<double, std::micro>(recipient->received[r] - sent[r]).count());
    }
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  std::sort(answered_us.begin(), answered_us.end());
  const double wall_s = std::chrono::duration<double>(wall_end - wall_start).count();
  state.counters["recipients"] = kRecipients;
  state.counters["envelopes_per_s"] =
      static_cast<double>(kRounds * kRecipients) / std::max(wall_s, 1e-9);
  state.counters["latency_p50_us"] = Percentile(latencies_us, 0.50);
  state.counters["latency_p99_us"] = Percentile(latencies_us, 0.99);
  state.counters["latency_max_us"] = latencies_us.empty() ? 0 : latencies_us.back();
  state.counters["send_result_p50_us"] = Percentile(answered_us, 0.50);
  state.counters["process_cpu_cores"] = process_cpu / wall_s;
  state.counters["client_cpu_cores"] = client_cpu / wall_s;
  state.counters["relay_cpu_cores"] = std::max(0.0, process_cpu - client_cpu) / wall_s;
  sender.reset();
  recipients.clear();
  relay.Stop();
}
BENCHMARK(BM_RelayFanOut)->Iterations(kRounds)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- Idle connection memory --------------------------------------------------------------------

std::int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long long size = 0;
  long long resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<std::int64_t>(resident) * static_cast<std::int64_t>(sysconf(_SC_PAGESIZE));
}

std::int64_t HeapInUseBytes() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<std::int64_t>(info.uordblks + info.hblkhd);
}

// Reads exactly `size` bytes before `deadline`; false on EOF, error or timeout.
bool ReadFull(int fd, void* data, std::size_t size, Clock::time_point deadline) {
  auto* bytes = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0) return false;
    if (ready == 0) continue;
    const ssize_t got = read(fd, bytes + done, size - done);
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

bool WriteFull(int fd, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t put = write(fd, bytes + done, size - done);
    if (put <= 0) return false;
    done += static_cast<std::size_t>(put);
  }
  return true;
}

// The child: waits for the relay's port and identity, opens and authenticates one
// connection per user, reports how many succeeded, then keeps them idle until the parent
// writes or closes its pipe. Never returns.
[[noreturn]] void IdleConnectionsChild(std::vector<std::unique_ptr<TestUser>>& users,
                                       int from_parent, int to_parent) {
  alarm(120);  // a backstop should the parent vanish without closing the pipe
  std::uint16_t port = 0;
  CertificateDigest identity{};
  const auto deadline = Clock::now() + 60s;
  if (!ReadFull(from_parent, &port, sizeof port, deadline) ||
      !ReadFull(from_parent, identity.data(), identity.size(), deadline)) {
    _exit(1);
  }
  std::vector<std::unique_ptr<RelayClient>> clients;
  std::uint32_t connected = 0;
  for (auto& user : users) {
    auto client = RelayClient::Connect(port);
    if (!client || client->Login(user->id(), user->device(1), identity).empty()) break;
    clients.push_back(std::move(client));
    ++connected;
  }
  if (!WriteFull(to_parent, &connected, sizeof connected)) _exit(1);
  char done = 0;
  ReadFull(from_parent, &done, 1, Clock::now() + 90s);
  _exit(0);
}

void BM_RelayIdleConnectionMemory(benchmark::State& state) {
  SetLogLevel(LogLevel::kError);
  TempDir dir;
  if (dir.path().empty()) {
    state.SkipWithError("no temporary directory");
    return;
  }
  std::vector<std::unique_ptr<TestUser>> users;
  for (int i = 0; i < kIdleConnections; ++i) {
    users.push_back(std::make_unique<TestUser>(Numbered("idle-", i)));
  }
  int down[2];  // parent -> child
  int up[2];    // child -> parent
  if (pipe2(down, O_CLOEXEC) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  if (pipe2(up, O_CLOEXEC) != 0) {
    close(down[0]);
    close(down[1]);
    state.SkipWithError("pipe");
    return;
  }
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    close(down[1]);
    close(up[0]);
    IdleConnectionsChild(users, down[0], up[1]);
  }
  close(down[0]);
  close(up[1]);
  const auto finish_child = [&] {
    if (down[1] >= 0) close(down[1]);  // EOF: the child exits
    down[1] = -1;
    if (child > 0) {
      const auto deadline = Clock::now() + 5s;
      int status = 0;
      while (waitpid(child, &status, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          kill(child, SIGKILL);
          waitpid(child, &status, 0);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    close(up[0]);
  };
  if (child < 0) {
    finish_child();
    state.SkipWithError("fork failed");
    return;
  }

  TestRelay relay(dir.path() / "relay", LoadTweak);
  if (!relay.Start()) {
    finish_child();
    state.SkipWithError("relay did not start");
    return;
  }
  for (auto& user : users) {
    auto client = RelayClient::Connect(relay.port());
    auto registered = client ? client->Call(user->Register(relay.Enrol("sdis13"))) : std::nullopt;
    if (!registered || !registered->has_registered()) {
      finish_child();
      state.SkipWithError("registration failed");
      return;
    }
  }
  std::this_thread::sleep_for(200ms);  // let the registration connections close

  std::int64_t rss_before = 0;
  std::int64_t heap_before = 0;
  std::int64_t rss_after = 0;
  std::int64_t heap_after = 0;
  std::uint32_t connected = 0;
  for (auto _ : state) {
    rss_before = ResidentBytes();
    heap_before = HeapInUseBytes();
    const std::uint16_t port = relay.port();
    if (!WriteFull(down[1], &port, sizeof port) ||
        !WriteFull(down[1], relay.relay_identity().data(), relay.relay_identity().size()) ||
        !ReadFull(up[0], &connected, sizeof connected, Clock::now() + 60s)) {
      state.SkipWithError("the child did not report");
      break;
    }
    std::this_thread::sleep_for(300ms);  // let the last logins settle
    rss_after = ResidentBytes();
    heap_after = HeapInUseBytes();
  }
  finish_child();
  relay.Stop();
  if (connected != static_cast<std::uint32_t>(kIdleConnections)) {
    if (rss_after != 0) state.SkipWithError("not every connection authenticated");
    return;
  }
  const auto per = [&](std::int64_t before, std::int64_t after) {
    return static_cast<double>(after - before) / static_cast<double>(connected);
  };
  state.counters["connections"] = connected;
  state.counters["rss_per_connection_bytes"] = per(rss_before, rss_after);
  state.counters["heap_per_connection_bytes"] = per(heap_before, heap_after);
  state.counters["rss_before_mib"] = static_cast<double>(rss_before) / (1 << 20);
}
BENCHMARK(BM_RelayIdleConnectionMemory)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coffre::server
