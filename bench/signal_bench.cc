// What persisting the double ratchet costs: a libsignal message round trip with the
// in-memory stores against the same with every state change committed to SQLCipher.
//
//   BM_SignalAnchorFsync4KiB / BM_SignalAnchorFdatasync4KiB
//        one pwrite of 4 KiB at offset 0 of a file in the same temporary directory, then
//        fsync (or fdatasync, which SQLite uses where it exists). The floor under any
//        durable commit on this disk; the other figures are read against it.
//   BM_SignalRoundTripInMemory
//        the anchor: Alice encrypts, Bob decrypts, next iteration the other way round, so
//        every message carries a new ratchet key and each iteration is one ratchet step
//        (one Encrypt + one Decrypt). In-memory stores, nothing written anywhere.
//   BM_SignalRoundTripSqlCipher
//        the same over two SQLCipher stores (one file each), each Encrypt and each Decrypt
//        in its own committed transaction, the Decrypt's PlaintextSink writing the
//        plaintext to an inbox table in that transaction (DESIGN.md, Local store). The
//        store runs with synchronous = FULL and refuses to run with less: two durable
//        commits, so at least two WAL syncs, per iteration. Counters: x_in_memory (the
//        goal is <= 3) and x_fsync (this iteration in units of the fsync anchor).
//   BM_SignalMailboxBatch{InMemory,SqlCipher}/32
//        a client applying one mailbox fetch: Bob decrypts 32 messages from Alice in one
//        transaction (one commit for the batch), every plaintext written to the inbox.
//        Only the batch is timed; Alice's sending and one reply per batch (so each batch
//        starts a new ratchet step) happen outside the timing. Counters per message.
//
// All figures use manual timing (steady_clock around exactly the measured work), so the
// set-up of stores and devices never enters them. The x_* ratios are computed within one
// run from the anchors registered above them; they are absent when a filter drops the
// anchor. Each store is created with the minimum Argon2id parameters (the key derivation
// is not what is measured) in a directory under std::filesystem::temp_directory_path()
// (TMPDIR), removed afterwards. Run on the disk you care about: on tmpfs fsync is free.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/passphrase_kdf.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/storage/database.h"
#include "coffre/storage/signal_store.h"

namespace coffre::storage {
namespace {

using crypto::SecretBytes;
using crypto::SignalAddress;
using crypto::SignalCiphertext;
using crypto::SignalDevice;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kPassphrase = "correct horse battery staple";
// A chat message of a few lines.
constexpr std::size_t kMessageSize = 160;
constexpr std::size_t kFsyncWriteSize = 4096;
constexpr std::int64_t kMailboxBatch = 32;
const SignalAddress kAlice{"alice", 1};
const SignalAddress kBob{"bob", 1};

// Mean seconds per iteration of the last run of each anchor, for the ratio counters.
std::optional<double> g_fsync_seconds;
std::optional<double> g_round_trip_in_memory_seconds;
std::optional<double> g_batch_in_memory_seconds;

std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

double Seconds(Clock::duration elapsed) { return std::chrono::duration<double>(elapsed).count(); }

// A fresh directory under TMPDIR, removed with everything in it.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coffre-bench-XXXXXX").native();
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  bool ok() const { return !path_.empty(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Owns a POSIX file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) (void)::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// ---------------------------------------------------------------------------------------
// The two kinds of device.

// A device over in-memory stores.
class MemoryParty {
 public:
  Status Init(const SignalAddress& address) {
    COFFRE_ASSIGN_OR_RETURN(device_, SignalDevice::Create(address, stores_.stores()));
    return Ok();
  }
  SignalDevice& device() { return *device_; }

  Status Apply(const std::function<Status()>& body) { return body(); }
  Result<SignalCiphertext> Send(const SignalAddress& to, std::span<const std::uint8_t> payload) {
    return device_->Encrypt(to, payload);
  }
  Result<SecretBytes> Receive(const SignalAddress& from, const SignalCiphertext& message) {
    return device_->Decrypt(from, message.type, message.bytes);
  }
  // A mailbox batch: nothing to commit in memory.
  Status ReceiveBatch(const SignalAddress& from, std::span<const SignalCiphertext> messages) {
    for (const SignalCiphertext& message : messages) {
      COFFRE_ASSIGN_OR_RETURN(SecretBytes plaintext, Receive(from, message));
      benchmark::DoNotOptimize(plaintext.data());
    }
    return Ok();
  }

 private:
  crypto::InMemorySignalStores stores_;
  std::unique_ptr<SignalDevice> device_;
};

// A device over its own SQLCipher store, with the application's inbox table.
class PersistentParty {
 public:
  Status Init(const SignalAddress& address, const std::filesystem::path& path) {
    COFFRE_ASSIGN_OR_RETURN(
        auto database, Database::Create(path, AsBytes(kPassphrase), crypto::kMinimumArgon2Params));
    COFFRE_ASSIGN_OR_RETURN(store_, SqlCipherSignalStores::New(std::move(database)));
    COFFRE_RETURN_IF_ERROR(store_->database().Execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, sender BLOB NOT NULL, body BLOB NOT NULL)"));
    COFFRE_ASSIGN_OR_RETURN(
        Statement insert,
        store_->database().Prepare("INSERT INTO inbox (sender, body) VALUES (?1, ?2)"));
    insert_.emplace(std::move(insert));
    COFFRE_ASSIGN_OR_RETURN(device_, SignalDevice::Create(address, store_->stores()));
    return Ok();
  }
  SignalDevice& device() { return *device_; }

  Status Apply(const std::function<Status()>& body) { return store_->RunInTransaction(body); }
  // One committed transaction per message sent, as a client filling its outbox.
  Result<SignalCiphertext> Send(const SignalAddress& to, std::span<const std::uint8_t> payload) {
    return store_->InTransaction([&] { return device_->Encrypt(to, payload); });
  }
  // One committed transaction per message received, plaintext saved by the sink.
  Result<SecretBytes> Receive(const SignalAddress& from, const SignalCiphertext& message) {
    return store_->InTransaction([&] { return Decrypt(from, message); });
  }
  // The whole batch in one transaction: one commit for all of it.
  Status ReceiveBatch(const SignalAddress& from, std::span<const SignalCiphertext> messages) {
    return store_->RunInTransaction([&]() -> Status {
      for (const SignalCiphertext& message : messages) {
        COFFRE_ASSIGN_OR_RETURN(SecretBytes plaintext, Decrypt(from, message));
        benchmark::DoNotOptimize(plaintext.data());
      }
      return Ok();
    });
  }

 private:
  Result<SecretBytes> Decrypt(const SignalAddress& from, const SignalCiphertext& message) {
    return device_->Decrypt(from, message.type, message.bytes,
                            [&](std::span<const std::uint8_t> plaintext) -> Status {
                              const SecretBytes body = SecretBytes::CopyOf(plaintext);
                              COFFRE_RETURN_IF_ERROR(insert_->Bind(1, AsBytes(from.name)));
                              COFFRE_RETURN_IF_ERROR(insert_->BindSecret(2, body));
                              auto done = insert_->Step();
                              insert_->Reset();  // before `body` is wiped
                              if (!done) return done.error();
                              return Ok();
                            });
  }

  // Destroyed in reverse order: the device, the inbox statement, then the store (and its
  // Database), so no statement outlives its connection.
  std::unique_ptr<SqlCipherSignalStores> store_;
  std::optional<Statement> insert_;
  std::unique_ptr<SignalDevice> device_;
};

// Keys, then a session from Bob's serialized bundle, then one message each way so both
// sides hold an established session before anything is timed.
template <typename Party>
Status Establish(Party& alice, Party& bob) {
  for (Party* party : {&alice, &bob}) {
    COFFRE_RETURN_IF_ERROR(party->Apply([&] { return party->device().GenerateIdentity(); }));
    COFFRE_RETURN_IF_ERROR(party->Apply([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(auto published, party->device().GeneratePreKeys(1, 1));
      (void)published;
      return Ok();
    }));
    COFFRE_RETURN_IF_ERROR(party->Apply([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(auto published,
                              party->device().GenerateSignedPreKey(1, 1'700'000'000'000));
      (void)published;
      return Ok();
    }));
  }
  COFFRE_ASSIGN_OR_RETURN(auto bundle, bob.device().CreatePreKeyBundle(1, 1));
  COFFRE_ASSIGN_OR_RETURN(auto parsed, crypto::PreKeyBundle::Parse(bundle.Serialize()));
  COFFRE_RETURN_IF_ERROR(
      alice.Apply([&] { return alice.device().ProcessPreKeyBundle(kBob, parsed); }));
  const std::vector<std::uint8_t> payload = crypto::RandomBytes(kMessageSize);
  COFFRE_ASSIGN_OR_RETURN(auto first, alice.Send(kBob, payload));
  COFFRE_ASSIGN_OR_RETURN(auto received, bob.Receive(kAlice, first));
  COFFRE_ASSIGN_OR_RETURN(auto reply, bob.Send(kAlice, payload));
  COFFRE_ASSIGN_OR_RETURN(auto answered, alice.Receive(kBob, reply));
  benchmark::DoNotOptimize(received.data());
  benchmark::DoNotOptimize(answered.data());
  return Ok();
}

// ---------------------------------------------------------------------------------------
// Anchors: one durable 4 KiB write.

// `sync` is fsync or fdatasync; `anchor` stores the mean for the x_fsync counters.
void FsyncAnchor(benchmark::State& state, int (*sync)(int), std::optional<double>* anchor) {
  ScratchDirectory directory;
  if (!directory.ok()) {
    state.SkipWithError("cannot create a temporary directory");
    return;
  }
  const auto path = directory / "anchor";
  FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  std::array<std::uint8_t, kFsyncWriteSize> block{};
  crypto::RandomFill(block);
  // The first write allocates the block and sets the size, as a WAL that has grown once;
  // the timed writes then overwrite it, as SQLite reuses the WAL after a checkpoint.
  if (fd.get() < 0 || ::pwrite(fd.get(), block.data(), block.size(), 0) != kFsyncWriteSize ||
      ::fsync(fd.get()) != 0) {
    state.SkipWithError("cannot prepare the anchor file");
    return;
  }
  double total = 0;
  for (auto _ : state) {
    const auto start = Clock::now();
    const bool ok =
        ::pwrite(fd.get(), block.data(), block.size(), 0) == kFsyncWriteSize && sync(fd.get()) == 0;
    const double elapsed = Seconds(Clock::now() - start);
    if (!ok) {
      state.SkipWithError("write or sync failed");
      return;
    }
    state.SetIterationTime(elapsed);
    total += elapsed;
  }
  if (anchor != nullptr && state.iterations() > 0) {
    *anchor = total / static_cast<double>(state.iterations());
  }
}

void BM_SignalAnchorFsync4KiB(benchmark::State& state) {
  FsyncAnchor(state, &::fsync, &g_fsync_seconds);
}
void BM_SignalAnchorFdatasync4KiB(benchmark::State& state) {
  FsyncAnchor(state, &::fdatasync, nullptr);
}

// ---------------------------------------------------------------------------------------
// Round trips: one ratchet step per iteration.

// Sets the ratio counters of a measured benchmark against the anchors that ran before it.
void ReportRatios(benchmark::State& state, double mean_seconds,
                  const std::optional<double>& in_memory_seconds) {
  if (in_memory_seconds && *in_memory_seconds > 0) {
    state.counters["x_in_memory"] = mean_seconds / *in_memory_seconds;
  }
  if (g_fsync_seconds && *g_fsync_seconds > 0) {
    state.counters["x_fsync"] = mean_seconds / *g_fsync_seconds;
  }
}

template <typename Party>
double TimedRoundTrips(benchmark::State& state, Party& alice, Party& bob) {
  const std::vector<std::uint8_t> payload = crypto::RandomBytes(kMessageSize);
  double total = 0;
  bool alice_sends = true;
  for (auto _ : state) {
    Party& sender = alice_sends ? alice : bob;
    Party& receiver = alice_sends ? bob : alice;
    const SignalAddress& from = alice_sends ? kAlice : kBob;
    const SignalAddress& to = alice_sends ? kBob : kAlice;
    const auto start = Clock::now();
    auto message = sender.Send(to, payload);
    auto plaintext =
        message ? receiver.Receive(from, *message) : Result<SecretBytes>(message.error());
    const double elapsed = Seconds(Clock::now() - start);
    if (!plaintext) {
      state.SkipWithError("round trip failed");
      return 0;
    }
    benchmark::DoNotOptimize(plaintext->data());
    state.SetIterationTime(elapsed);
    total += elapsed;
    alice_sends = !alice_sends;
  }
  state.SetItemsProcessed(state.iterations());
  return state.iterations() > 0 ? total / static_cast<double>(state.iterations()) : 0;
}

void BM_SignalRoundTripInMemory(benchmark::State& state) {
  MemoryParty alice;
  MemoryParty bob;
  if (!alice.Init(kAlice) || !bob.Init(kBob) || !Establish(alice, bob)) {
    state.SkipWithError("set-up failed");
    return;
  }
  const double mean = TimedRoundTrips(state, alice, bob);
  if (mean > 0) g_round_trip_in_memory_seconds = mean;
  ReportRatios(state, mean, std::nullopt);
}

void BM_SignalRoundTripSqlCipher(benchmark::State& state) {
  ScratchDirectory directory;
  PersistentParty alice;
  PersistentParty bob;
  if (!directory.ok() || !alice.Init(kAlice, directory / "alice.db") ||
      !bob.Init(kBob, directory / "bob.db") || !Establish(alice, bob)) {
    state.SkipWithError("set-up failed");
    return;
  }
  const double mean = TimedRoundTrips(state, alice, bob);
  ReportRatios(state, mean, g_round_trip_in_memory_seconds);
}

// ---------------------------------------------------------------------------------------
// Mailbox batches: Bob applies kMailboxBatch messages at once.

template <typename Party>
double TimedBatches(benchmark::State& state, Party& alice, Party& bob) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const std::vector<std::uint8_t> payload = crypto::RandomBytes(kMessageSize);
  std::vector<SignalCiphertext> mailbox;
  mailbox.reserve(batch);
  double total = 0;
  for (auto _ : state) {
    // Untimed: Alice fills the mailbox (in one transaction for the persistent party).
    mailbox.clear();
    const Status sent = alice.Apply([&]() -> Status {
      for (std::size_t i = 0; i < batch; ++i) {
        COFFRE_ASSIGN_OR_RETURN(SignalCiphertext message, alice.device().Encrypt(kBob, payload));
        mailbox.push_back(std::move(message));
      }
      return Ok();
    });
    if (!sent) {
      state.SkipWithError("filling the mailbox failed");
      return 0;
    }
    const auto start = Clock::now();
    const Status applied = bob.ReceiveBatch(kAlice, mailbox);
    const double elapsed = Seconds(Clock::now() - start);
    if (!applied) {
      state.SkipWithError("applying the mailbox failed");
      return 0;
    }
    state.SetIterationTime(elapsed);
    total += elapsed;
    // Untimed: Bob answers, so Alice's next batch starts a new ratchet step.
    auto reply = bob.Send(kAlice, payload);
    if (!reply || !alice.Receive(kBob, *reply)) {
      state.SkipWithError("reply failed");
      return 0;
    }
  }
  const auto messages = state.iterations() * static_cast<std::int64_t>(batch);
  state.SetItemsProcessed(messages);
  return messages > 0 ? total / static_cast<double>(messages) : 0;
}

void BM_SignalMailboxBatchInMemory(benchmark::State& state) {
  MemoryParty alice;
  MemoryParty bob;
  if (!alice.Init(kAlice) || !bob.Init(kBob) || !Establish(alice, bob)) {
    state.SkipWithError("set-up failed");
    return;
  }
  const double per_message = TimedBatches(state, alice, bob);
  if (per_message > 0) g_batch_in_memory_seconds = per_message;
  state.counters["us_per_message"] = per_message * 1e6;
}

void BM_SignalMailboxBatchSqlCipher(benchmark::State& state) {
  ScratchDirectory directory;
  PersistentParty alice;
  PersistentParty bob;
  if (!directory.ok() || !alice.Init(kAlice, directory / "alice.db") ||
      !bob.Init(kBob, directory / "bob.db") || !Establish(alice, bob)) {
    state.SkipWithError("set-up failed");
    return;
  }
  const double per_message = TimedBatches(state, alice, bob);
  state.counters["us_per_message"] = per_message * 1e6;
  if (g_batch_in_memory_seconds && *g_batch_in_memory_seconds > 0) {
    state.counters["x_in_memory"] = per_message / *g_batch_in_memory_seconds;
  }
  if (g_round_trip_in_memory_seconds && *g_round_trip_in_memory_seconds > 0) {
    // Against a whole in-memory ratchet step (encrypt + decrypt), the goal's yardstick.
    state.counters["x_rt_in_memory"] = per_message / *g_round_trip_in_memory_seconds;
  }
}

// Registered in this order so each anchor runs before the figures that divide by it.
BENCHMARK(BM_SignalAnchorFsync4KiB)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignalAnchorFdatasync4KiB)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignalRoundTripInMemory)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignalRoundTripSqlCipher)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignalMailboxBatchInMemory)
    ->Arg(kMailboxBatch)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignalMailboxBatchSqlCipher)
    ->Arg(kMailboxBatch)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace coffre::storage
