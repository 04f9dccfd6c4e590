// Documents end to end: profiles against an in-process relay over real TLS, reached
// through a TCP proxy that can cut every connection (after a number of bytes, or at once)
// and refuse new ones, like a field laptop losing its link. The relay's stored blob files
// are altered in place to play a hostile or failing relay.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/client/client.h"
#include "coffre/client/relay_address.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "coffre/storage/database.h"
#include "coffre/storage/statement.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::client {
namespace {

#define ASSERT_OK(expr)                                                 \
  do {                                                                  \
    const auto status_ = (expr);                                        \
    ASSERT_TRUE(status_) << #expr << ": " << status_.error().context(); \
  } while (false)

using server::testing::TempDir;
using server::testing::TestRelay;
namespace fs = std::filesystem;

constexpr const char* kTeam = "sdis-operations";
constexpr std::uint64_t kSealedChunk = crypto::kStreamSealedChunkSize;
constexpr std::uint64_t kHeader = crypto::kStreamHeaderSize;

crypto::SecretBytes Secret(std::string_view text) {
  return crypto::SecretBytes::CopyOf(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

std::string Passphrase(const std::string& login) { return "passphrase of " + login; }

std::vector<std::uint8_t> RandomBytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 generator(seed);
  std::vector<std::uint8_t> bytes(size);
  for (auto& byte : bytes) byte = static_cast<std::uint8_t>(generator());
  return bytes;
}

void WriteFile(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good());
}

std::vector<std::uint8_t> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in),
                                   std::istreambuf_iterator<char>());
}

std::size_t EntriesIn(const fs::path& folder) {
  std::error_code ec;
  if (!fs::exists(folder, ec)) return 0;
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(folder), fs::directory_iterator()));
}

// A TCP proxy on 127.0.0.1 in front of the relay. TLS goes through it untouched (the
// client still pins the relay's certificate); it only decides when the link dies.
class CuttingProxy {
 public:
  explicit CuttingProxy(std::uint16_t target) : target_(target) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (listener_ < 0 ||
        ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "proxy cannot listen";
      return;
    }
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~CuttingProxy() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();  // no connection is accepted after this
    CutAll();
    std::vector<std::thread> pumps;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pumps.swap(pumps_);
    }
    for (auto& pump : pumps) pump.join();
    for (const int fd : fds_) ::close(fd);
    if (listener_ >= 0) ::close(listener_);
  }
  CuttingProxy(const CuttingProxy&) = delete;
  CuttingProxy& operator=(const CuttingProxy&) = delete;

  std::uint16_t port() const { return port_; }
  // Once `bytes` more bytes went from the client to the relay (the cut falls inside the
  // piece that crosses the mark), every connection is cut and new ones are refused.
  void CutAfter(std::uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    budget_ = bytes;
    armed_ = true;
  }
  // Cuts every connection now and refuses new ones: the relay is unreachable.
  void Refuse() {
    down_ = true;
    CutAll();
  }
  void Restore() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;
    down_ = false;
  }
  bool down() const { return down_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, 50) <= 0) continue;
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      if (down_) {
        ::close(client);
        continue;
      }
      const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      address.sin_port = htons(target_);
      if (upstream < 0 ||
          ::connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        ::close(client);
        if (upstream >= 0) ::close(upstream);
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      fds_.push_back(client);
      fds_.push_back(upstream);
      pumps_.emplace_back([this, client, upstream] { Pump(client, upstream, true); });
      pumps_.emplace_back([this, client, upstream] { Pump(upstream, client, false); });
    }
  }

  void Pump(int from, int to, bool to_relay) {
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      const ssize_t n = ::read(from, buffer.data(), buffer.size());
      if (n <= 0) break;
      auto length = static_cast<std::size_t>(n);
      bool cut = false;
      if (to_relay) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (armed_) {
          if (budget_ <= length) {
            length = static_cast<std::size_t>(budget_);
            cut = true;
            armed_ = false;
            down_ = true;
          } else {
            budget_ -= length;
          }
        }
      }
      if (!WriteAll(to, buffer.data(), length)) break;
      if (cut) {
        CutAll();
        break;
      }
    }
    ::shutdown(to, SHUT_WR);
  }

  static bool WriteAll(int fd, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

  void CutAll() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

  const std::uint16_t target_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> down_{false};
  std::mutex mutex_;
  bool armed_ = false;        // guarded by mutex_
  std::uint64_t budget_ = 0;  // guarded by mutex_
  std::vector<int> fds_;      // guarded by mutex_
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

class DocumentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relay_ = std::make_unique<TestRelay>(dir_.path() / "relay", relay_tweak_);
    ASSERT_TRUE(relay_->Start());
    proxy_ = std::make_unique<CuttingProxy>(relay_->port());
    ASSERT_NE(proxy_->port(), 0);
    fs::create_directories(files());
  }
  void TearDown() override {
    proxy_.reset();
    relay_.reset();
  }

  fs::path files() const { return dir_.path() / "files"; }
  fs::path Profile(const std::string& login) const { return dir_.path() / login; }

  // `through_proxy`: the profile reaches the relay through the proxy, whose cuts it sees;
  // otherwise it has a link of its own.
  std::unique_ptr<Client> Enrol(const std::string& login, bool admin = false,
                                bool through_proxy = true) {
    InitOptions options;
    options.relay_url =
        "https://127.0.0.1:" + std::to_string(through_proxy ? proxy_->port() : relay_->port());
    CertificateFingerprint fingerprint{};
    std::copy(relay_->relay_identity().begin(), relay_->relay_identity().end(),
              fingerprint.begin());
    options.relay_fingerprint = FormatFingerprint(fingerprint);
    options.enrolment_code = Secret(relay_->Enrol("sdis13", admin));
    options.user_id = login;
    options.display_name = login + " Martin";
    auto client = Client::Init(Profile(login), Secret(Passphrase(login)), options, nullptr);
    EXPECT_TRUE(client) << login << ": " << (client ? "" : client.error().context());
    return client ? std::move(*client) : nullptr;
  }

  std::unique_ptr<Client> Reopen(const std::string& login) {
    auto client = Client::Open(Profile(login), Secret(Passphrase(login)));
    EXPECT_TRUE(client) << login << ": " << (client ? "" : client.error().context());
    return client ? std::move(*client) : nullptr;
  }

  static void Sync(Client& client) {
    auto report = client.Sync();
    ASSERT_TRUE(report) << client.user_id() << ": " << report.error().context();
    for (const auto& warning : report->warnings)
      ADD_FAILURE() << client.user_id() << ": " << warning;
  }

  // Alice (admin) creates the team and adds `members`, who sync to get the team key.
  void MakeTeam(Client& alice, const std::vector<Client*>& members) {
    auto team = alice.CreateTeam(kTeam);
    ASSERT_TRUE(team) << team.error().context();
    team_hex_ = team->team_id;
    for (Client* member : members)
      ASSERT_OK(alice.AddMember(kTeam, member->user_id(), Role::kMember));
    for (Client* member : members) Sync(*member);
  }

  // A random file of `size` bytes under files/.
  fs::path MakeFile(const std::string& name, std::size_t size, std::uint32_t seed) {
    const fs::path path = files() / name;
    WriteFile(path, RandomBytes(size, seed));
    return path;
  }

  // The relay's stored (complete) blob files of the team.
  std::vector<fs::path> StoredBlobs() const {
    std::vector<fs::path> blobs;
    const fs::path folder = dir_.path() / "relay" / "blobs" / team_hex_;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      if (entry.path().extension() != ".part") blobs.push_back(entry.path());
    }
    return blobs;
  }
  fs::path OnlyStoredBlob() const {
    const auto blobs = StoredBlobs();
    EXPECT_EQ(blobs.size(), 1u);
    return blobs.empty() ? fs::path() : blobs.front();
  }

  // `client` fails to get the document, with `code`, and leaves nothing behind.
  void ExpectRefused(Client& client, const std::string& document_id,
                     std::optional<std::uint64_t> version, ErrorCode code,
                     std::string_view context = {}) {
    const fs::path folder = dir_.path() / ("out-" + client.user_id());
    fs::create_directories(folder);
    auto got = client.GetDocument(kTeam, document_id, folder / "plan.bin", version, {});
    ASSERT_FALSE(got) << "the document was accepted";
    EXPECT_EQ(got.error().code(), code) << got.error().context();
    if (!context.empty()) {
      EXPECT_EQ(got.error().context(), context);
    }
    EXPECT_EQ(EntriesIn(folder), 0u) << "a file was left behind";
  }

  // Runs `change` on the profile database of `login` while no Client has it open.
  void EditProfile(const std::string& login,
                   const std::function<void(storage::Database&)>& change) {
    const std::string passphrase = Passphrase(login);
    auto db = storage::Database::Open(
        Profile(login) / "profile.db",
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(passphrase.data()),
                                      passphrase.size()));
    ASSERT_TRUE(db) << db.error().context();
    change(**db);
  }

  TempDir dir_;
  std::function<void(server::RelayConfig&)> relay_tweak_;  // set by a fixture's constructor
  std::unique_ptr<TestRelay> relay_;
  std::unique_ptr<CuttingProxy> proxy_;
  std::string team_hex_;
};

TEST_F(DocumentTest, RoundTripIsByteIdenticalForAnotherMember) {
  auto alice = Enrol("alice", /*admin=*/true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});

  const std::size_t size = 5 * 1024 * 1024 + 12345;  // two PUTs, two ranges, a short last chunk
  const fs::path file = MakeFile("plan-ETARE-entrepot.pdf", size, 1);
  std::uint64_t last_done = 0;
  std::uint64_t last_total = 0;
  bool monotonic = true;
  auto put = alice->PutDocument(kTeam, file, std::nullopt, std::nullopt,
                                [&](std::uint64_t done, std::uint64_t total) {
                                  monotonic = monotonic && done >= last_done && done <= total;
                                  last_done = done;
                                  last_total = total;
                                });
  ASSERT_TRUE(put) << put.error().context();
  EXPECT_EQ(put->name, "plan-ETARE-entrepot.pdf");
  EXPECT_EQ(put->version, 1u);
  EXPECT_EQ(put->size, size);
  EXPECT_EQ(put->author, "alice");
  EXPECT_EQ(put->document_id.size(), 32u);
  EXPECT_TRUE(monotonic);
  EXPECT_GT(last_total, 0u);
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 0u)
      << "the staged copy stayed after the upload";
  EXPECT_EQ(ReadFile(OnlyStoredBlob()).size(), *crypto::CiphertextSize(size));

  Sync(*bob);
  auto listed = bob->ListDocuments(kTeam);
  ASSERT_TRUE(listed) << listed.error().context();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].document_id, put->document_id);
  EXPECT_EQ((*listed)[0].name, "plan-ETARE-entrepot.pdf");

  const fs::path output = files() / "bob-copy.pdf";
  std::uint64_t got_done = 0;
  std::uint64_t got_total = 0;
  auto got = bob->GetDocument(kTeam, put->document_id, output, std::nullopt,
                              [&](std::uint64_t done, std::uint64_t total) {
                                got_done = done;
                                got_total = total;
                              });
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_EQ(got->version, 1u);
  EXPECT_EQ(got->size, size);
  EXPECT_EQ(got->author, "alice");
  EXPECT_EQ(got_done, got_total);
  EXPECT_TRUE(ReadFile(output) == ReadFile(file)) << "the downloaded bytes differ";
  EXPECT_EQ(fs::status(output).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  // The author reads it back too, and an empty file makes a document as well.
  const fs::path empty = MakeFile("empty.txt", 0, 2);
  auto put_empty = alice->PutDocument(kTeam, empty, "notes vides.txt", std::nullopt, {});
  ASSERT_TRUE(put_empty) << put_empty.error().context();
  auto got_empty =
      alice->GetDocument(kTeam, put_empty->document_id, files() / "empty-copy", std::nullopt, {});
  ASSERT_TRUE(got_empty) << got_empty.error().context();
  EXPECT_EQ(got_empty->name, "notes vides.txt");
  EXPECT_TRUE(ReadFile(files() / "empty-copy").empty());
}

TEST_F(DocumentTest, ReplaceMakesVersionTwoAndBothVersionsDownload) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});

  const fs::path first = MakeFile("plan-v1.pdf", 3 * 1024 * 1024 + 7, 3);
  auto v1 = alice->PutDocument(kTeam, first, "plan.pdf", std::nullopt, {});
  ASSERT_TRUE(v1) << v1.error().context();
  Sync(*bob);
  const fs::path second = MakeFile("plan-v2.pdf", 200 * 1024 + 1, 4);
  // Bob, a member, puts the second version on top of Alice's.
  auto v2 = bob->PutDocument(kTeam, second, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(v2) << v2.error().context();
  EXPECT_EQ(v2->document_id, v1->document_id);
  EXPECT_EQ(v2->version, 2u);
  Sync(*alice);

  auto versions = alice->DocumentVersions(kTeam, v1->document_id);
  ASSERT_TRUE(versions) << versions.error().context();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].version, 1u);
  EXPECT_EQ((*versions)[1].version, 2u);
  EXPECT_EQ((*versions)[1].author, "bob");

  auto current = alice->GetDocument(kTeam, v1->document_id, files() / "current", std::nullopt, {});
  ASSERT_TRUE(current) << current.error().context();
  EXPECT_EQ(current->version, 2u);
  EXPECT_TRUE(ReadFile(files() / "current") == ReadFile(second));
  auto older = alice->GetDocument(kTeam, v1->document_id, files() / "older", 1, {});
  ASSERT_TRUE(older) << older.error().context();
  EXPECT_EQ(older->version, 1u);
  EXPECT_TRUE(ReadFile(files() / "older") == ReadFile(first));
  auto newer = bob->GetDocument(kTeam, v1->document_id, files() / "newer", 2, {});
  ASSERT_TRUE(newer) << newer.error().context();
  EXPECT_TRUE(ReadFile(files() / "newer") == ReadFile(second));
}

TEST_F(DocumentTest, ConcurrentReplaceIsAClearConflict) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  auto v1 = alice->PutDocument(kTeam, MakeFile("plan.pdf", 100 * 1024, 5), std::nullopt,
                               std::nullopt, {});
  ASSERT_TRUE(v1) << v1.error().context();
  Sync(*bob);

  // While Bob's version 2 uploads, Alice's version 2 lands first.
  const std::size_t size = 2 * 1024 * 1024;
  const fs::path bobs = MakeFile("plan-bob.pdf", size, 6);
  const fs::path alices = MakeFile("plan-alice.pdf", 1000, 7);
  bool alice_went = false;
  auto raced = bob->PutDocument(
      kTeam, bobs, "plan.pdf", v1->document_id, [&](std::uint64_t done, std::uint64_t) {
        if (done == size && !alice_went) {  // Bob's blob is at the relay, his manifest not yet
          alice_went = true;
          auto put = alice->PutDocument(kTeam, alices, "plan.pdf", v1->document_id, {});
          EXPECT_TRUE(put) << put.error().context();
        }
      });
  ASSERT_TRUE(alice_went);
  ASSERT_FALSE(raced);
  EXPECT_EQ(raced.error().code(), ErrorCode::kConflict) << raced.error().context();

  // Bob's profile does not keep the version that lost; after a sync it has Alice's.
  Sync(*bob);
  auto versions = bob->DocumentVersions(kTeam, v1->document_id);
  ASSERT_TRUE(versions);
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[1].author, "alice");
  auto got = bob->GetDocument(kTeam, v1->document_id, files() / "current", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_TRUE(ReadFile(files() / "current") == ReadFile(alices));
}

TEST_F(DocumentTest, VersionThatLostARaceWhileOfflineIsDroppedWithAWarning) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  auto v1 = alice->PutDocument(kTeam, MakeFile("plan.pdf", 100 * 1024, 20), std::nullopt,
                               std::nullopt, {});
  ASSERT_TRUE(v1) << v1.error().context();
  Sync(*bob);

  // Both replace version 1 while the link is down: each makes a version 2 of their own.
  proxy_->Refuse();
  const fs::path alices = MakeFile("plan-alice.pdf", 3000, 21);
  const fs::path bobs = MakeFile("plan-bob.pdf", 4000, 22);
  auto alice_v2 = alice->PutDocument(kTeam, alices, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(alice_v2) << alice_v2.error().context();
  EXPECT_EQ(alice_v2->version, 2u);
  auto bob_v2 = bob->PutDocument(kTeam, bobs, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(bob_v2) << bob_v2.error().context();
  EXPECT_EQ(bob_v2->version, 2u);
  proxy_->Restore();

  // Alice's comes back first and lands. Bob's finds version 2 taken by hers: the relay's
  // CONFLICT names version 2, which is not his. He is told, and keeps nothing of it.
  Sync(*alice);
  auto report = bob->Sync();
  ASSERT_TRUE(report) << report.error().context();
  ASSERT_EQ(report->warnings.size(), 1u);
  EXPECT_NE(report->warnings[0].find("someone else put version 2 first"), std::string::npos)
      << report->warnings[0];
  EXPECT_NE(report->warnings[0].find(v1->document_id), std::string::npos) << report->warnings[0];
  EXPECT_EQ(report->outbox_pending, 0u);
  EXPECT_EQ(EntriesIn(Profile("bob") / "staging"), 0u);

  // Bob's profile shows the relay's version 2, Alice's, and gets her bytes.
  auto versions = bob->DocumentVersions(kTeam, v1->document_id);
  ASSERT_TRUE(versions) << versions.error().context();
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[1].version, 2u);
  EXPECT_EQ((*versions)[1].author, "alice");
  auto got = bob->GetDocument(kTeam, v1->document_id, files() / "bob-current", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_EQ(got->author, "alice");
  EXPECT_TRUE(ReadFile(files() / "bob-current") == ReadFile(alices));

  // Put again, his file goes on top of hers, and everyone sees all three.
  auto bob_v3 = bob->PutDocument(kTeam, bobs, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(bob_v3) << bob_v3.error().context();
  EXPECT_EQ(bob_v3->version, 3u);
  Sync(*alice);
  auto alice_versions = alice->DocumentVersions(kTeam, v1->document_id);
  ASSERT_TRUE(alice_versions) << alice_versions.error().context();
  ASSERT_EQ(alice_versions->size(), 3u);
  EXPECT_EQ((*alice_versions)[1].author, "alice");
  EXPECT_EQ((*alice_versions)[2].author, "bob");
}

TEST_F(DocumentTest, ResentVersionThatHadLandedIsKeptWithoutAWarning) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  auto v1 = alice->PutDocument(kTeam, MakeFile("plan.pdf", 10 * 1024, 23), std::nullopt,
                               std::nullopt, {});
  ASSERT_TRUE(v1) << v1.error().context();
  const fs::path second = MakeFile("plan-v2.pdf", 20 * 1024, 24);
  auto v2 = alice->PutDocument(kTeam, second, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(v2) << v2.error().context();
  ASSERT_EQ(v2->version, 2u);
  // The state a lost answer leaves: version 2 landed, and its manifest is still queued
  // (put back by hand). Sent again, the relay's CONFLICT names version 2, which is hers.
  alice.reset();
  EditProfile("alice", [&](storage::Database& db) {
    auto row = db.Prepare("SELECT manifest FROM documents WHERE version = 2");
    ASSERT_TRUE(row) << row.error().context();
    auto found = row->Step();
    ASSERT_TRUE(found && *found);
    const std::vector<std::uint8_t> bytes = row->ColumnBlob(0);
    wire::v1::Request request;
    ASSERT_TRUE(request.mutable_put_item_version()->mutable_manifest()->ParseFromArray(
        bytes.data(), static_cast<int>(bytes.size())));
    const std::string serialized = request.SerializeAsString();
    auto insert = db.Prepare("INSERT INTO outbox (request, created_ms) VALUES (?1, 0)");
    ASSERT_TRUE(insert) << insert.error().context();
    ASSERT_TRUE(insert->Bind(1, std::span<const std::uint8_t>(
                                    reinterpret_cast<const std::uint8_t*>(serialized.data()),
                                    serialized.size())));
    auto inserted = insert->Step();
    ASSERT_TRUE(inserted) << inserted.error().context();
  });
  alice = Reopen("alice");
  ASSERT_TRUE(alice);
  auto report = alice->Sync();
  ASSERT_TRUE(report) << report.error().context();
  EXPECT_TRUE(report->warnings.empty()) << report->warnings.front();
  EXPECT_EQ(report->outbox_pending, 0u);
  auto versions = alice->DocumentVersions(kTeam, v1->document_id);
  ASSERT_TRUE(versions) << versions.error().context();
  ASSERT_EQ(versions->size(), 2u);
  auto got = alice->GetDocument(kTeam, v1->document_id, files() / "current", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_EQ(got->version, 2u);
  EXPECT_TRUE(ReadFile(files() / "current") == ReadFile(second));
}

// What a ProgressFn receives is the file's bytes, out of the file's size (what `coffre doc
// put` and `doc get` print), never going back, and ends at that size.
void ExpectHonestProgress(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& calls,
                          std::uint64_t size) {
  ASSERT_FALSE(calls.empty());
  std::uint64_t last = 0;
  bool between = false;
  for (const auto& [done, total] : calls) {
    EXPECT_EQ(total, size);
    EXPECT_LE(done, total);
    EXPECT_GE(done, last) << "progress went back";
    between = between || (done > 0 && done < total);
    last = done;
  }
  EXPECT_EQ(calls.back().first, size);
  EXPECT_TRUE(between) << "no progress was shown before the end";
}

TEST_F(DocumentTest, ProgressCountsTheFileBytesOnceAndEndsAtItsSize) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  const std::size_t size = 5 * 1024 * 1024 + 333;  // two upload pieces, two download ranges
  const fs::path file = MakeFile("plan.pdf", size, 25);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> put_calls;
  auto put = alice->PutDocument(kTeam, file, std::nullopt, std::nullopt,
                                [&](std::uint64_t done, std::uint64_t total) {
                                  put_calls.emplace_back(done, total);
                                });
  ASSERT_TRUE(put) << put.error().context();
  EXPECT_EQ(put->size, size);
  ExpectHonestProgress(put_calls, put->size);

  Sync(*bob);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> get_calls;
  auto got = bob->GetDocument(kTeam, put->document_id, files() / "copy", std::nullopt,
                              [&](std::uint64_t done, std::uint64_t total) {
                                get_calls.emplace_back(done, total);
                              });
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_EQ(got->size, size);
  ExpectHonestProgress(get_calls, got->size);
}

TEST_F(DocumentTest, RemovedMemberCannotGetAVersionMadeAfterRemoval) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  auto carla = Enrol("carla");
  ASSERT_TRUE(alice && bob && carla);
  MakeTeam(*alice, {bob.get(), carla.get()});
  auto v1 = alice->PutDocument(kTeam, MakeFile("plan.pdf", 300 * 1024, 8), std::nullopt,
                               std::nullopt, {});
  ASSERT_TRUE(v1) << v1.error().context();
  Sync(*carla);
  ASSERT_TRUE(carla->GetDocument(kTeam, v1->document_id, files() / "carla-v1", std::nullopt, {}));

  ASSERT_OK(alice->RemoveMember(kTeam, "carla"));
  const fs::path second = MakeFile("plan-v2.pdf", 300 * 1024, 9);
  auto v2 = alice->PutDocument(kTeam, second, "plan.pdf", v1->document_id, {});
  ASSERT_TRUE(v2) << v2.error().context();
  ASSERT_TRUE(carla->Sync());

  const fs::path folder = dir_.path() / "out-carla";
  fs::create_directories(folder);
  for (const std::optional<std::uint64_t> version :
       {std::optional<std::uint64_t>(), std::optional<std::uint64_t>(2)}) {
    auto got = carla->GetDocument(kTeam, v1->document_id, folder / "plan.pdf", version, {});
    EXPECT_FALSE(got) << "a removed member read a version made after the removal";
  }
  EXPECT_EQ(EntriesIn(folder), 0u);

  Sync(*bob);
  auto got = bob->GetDocument(kTeam, v1->document_id, files() / "bob-v2", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_TRUE(ReadFile(files() / "bob-v2") == ReadFile(second));
}

class DocumentTamperTest : public DocumentTest {
 protected:
  // Alice puts a 5-chunk-and-a-bit document; Bob syncs. The stored blob is then altered.
  void SetUp() override {
    DocumentTest::SetUp();
    alice_ = Enrol("alice", true);
    bob_ = Enrol("bob");
    ASSERT_TRUE(alice_ && bob_);
    MakeTeam(*alice_, {bob_.get()});
    auto put = alice_->PutDocument(kTeam, MakeFile("plan.pdf", 5 * 65536 + 100, 10), std::nullopt,
                                   std::nullopt, {});
    ASSERT_TRUE(put) << put.error().context();
    document_id_ = put->document_id;
    Sync(*bob_);
    blob_ = OnlyStoredBlob();
    original_ = ReadFile(blob_);
    ASSERT_EQ(original_.size(), *crypto::CiphertextSize(5 * 65536 + 100));
  }
  void TearDown() override {
    alice_.reset();
    bob_.reset();
    DocumentTest::TearDown();
  }
  void ReplaceBlob(const std::vector<std::uint8_t>& bytes) { WriteFile(blob_, bytes); }

  std::unique_ptr<Client> alice_;
  std::unique_ptr<Client> bob_;
  std::string document_id_;
  fs::path blob_;
  std::vector<std::uint8_t> original_;
};

TEST_F(DocumentTamperTest, UntouchedBlobDownloads) {
  ASSERT_TRUE(bob_->GetDocument(kTeam, document_id_, files() / "ok", std::nullopt, {}));
}

TEST_F(DocumentTamperTest, FlippedByteInAChunkIsRefused) {
  auto bytes = original_;
  bytes[kHeader + 2 * kSealedChunk + 100] ^= 0x01;
  ReplaceBlob(bytes);
  ExpectRefused(*bob_, document_id_, std::nullopt, ErrorCode::kAuthenticationFailed,
                "document failed authentication");
}

TEST_F(DocumentTamperTest, FlippedByteInTheHeaderOrLastTagIsRefused) {
  for (const std::size_t offset : {std::size_t{5}, original_.size() - 1}) {
    auto bytes = original_;
    bytes[offset] ^= 0x80;
    ReplaceBlob(bytes);
    ExpectRefused(*bob_, document_id_, std::nullopt, ErrorCode::kAuthenticationFailed,
                  "document failed authentication");
  }
}

TEST_F(DocumentTamperTest, ReorderedChunksAreRefused) {
  auto bytes = original_;
  const auto first = static_cast<std::ptrdiff_t>(kHeader + 1 * kSealedChunk);
  const auto second = static_cast<std::ptrdiff_t>(kHeader + 3 * kSealedChunk);
  std::swap_ranges(bytes.begin() + first,
                   bytes.begin() + first + static_cast<std::ptrdiff_t>(kSealedChunk),
                   bytes.begin() + second);
  ReplaceBlob(bytes);
  ExpectRefused(*bob_, document_id_, std::nullopt, ErrorCode::kAuthenticationFailed,
                "document failed authentication");
}

TEST_F(DocumentTamperTest, TruncatedBlobIsRefused) {
  // Cut at a chunk boundary: the relay notices its file is short and serves nothing.
  auto bytes = original_;
  bytes.resize(static_cast<std::size_t>(kHeader + 3 * kSealedChunk));
  ReplaceBlob(bytes);
  const fs::path folder = dir_.path() / "out-bob";
  fs::create_directories(folder);
  auto got = bob_->GetDocument(kTeam, document_id_, folder / "plan.pdf", std::nullopt, {});
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), ErrorCode::kInternal) << got.error().context();
  EXPECT_EQ(EntriesIn(folder), 0u);
  // The same cut made up to the signed size (the first chunks again): the chunk that
  // should be last is not, and the hash differs.
  bytes.insert(
      bytes.end(), original_.begin() + static_cast<std::ptrdiff_t>(kHeader),
      original_.begin() + static_cast<std::ptrdiff_t>(kHeader + original_.size() - bytes.size()));
  ASSERT_EQ(bytes.size(), original_.size());
  ReplaceBlob(bytes);
  ExpectRefused(*bob_, document_id_, std::nullopt, ErrorCode::kAuthenticationFailed,
                "document failed authentication");
}

TEST_F(DocumentTamperTest, BlobOfAnotherDocumentIsRefused) {
  // A second document of the same size: its blob served in place of the first one's.
  auto other = alice_->PutDocument(kTeam, MakeFile("other.pdf", 5 * 65536 + 100, 11), std::nullopt,
                                   std::nullopt, {});
  ASSERT_TRUE(other) << other.error().context();
  const auto blobs = StoredBlobs();
  ASSERT_EQ(blobs.size(), 2u);
  const fs::path other_blob = blobs[0] == blob_ ? blobs[1] : blobs[0];
  ReplaceBlob(ReadFile(other_blob));
  ExpectRefused(*bob_, document_id_, std::nullopt, ErrorCode::kAuthenticationFailed,
                "document failed authentication");
}

TEST_F(DocumentTamperTest, WrongVersionIsRefused) {
  // A version that does not exist.
  ExpectRefused(*bob_, document_id_, 7, ErrorCode::kNotFound);
  // Version 2's manifest presented as version 1 (a relay or store answering with another
  // version than the one asked for).
  auto v2 =
      alice_->PutDocument(kTeam, MakeFile("plan-v2.pdf", 1000, 12), "plan.pdf", document_id_, {});
  ASSERT_TRUE(v2) << v2.error().context();
  bob_.reset();
  alice_.reset();
  std::vector<std::uint8_t> v2_manifest;
  EditProfile("alice", [&](storage::Database& db) {
    auto row = db.Prepare("SELECT manifest FROM documents WHERE version = 2");
    ASSERT_TRUE(row);
    ASSERT_TRUE(row->Step().value_or(false));
    v2_manifest = row->ColumnBlob(0);
  });
  EditProfile("bob", [&](storage::Database& db) {
    auto update = db.Prepare("UPDATE documents SET manifest = ? WHERE version = 1");
    ASSERT_TRUE(update);
    ASSERT_TRUE(update->Bind(1, std::span<const std::uint8_t>(v2_manifest)));
    ASSERT_TRUE(update->Step());
  });
  bob_ = Reopen("bob");
  ASSERT_TRUE(bob_);
  ExpectRefused(*bob_, document_id_, 1, ErrorCode::kAuthenticationFailed);
}

TEST_F(DocumentTamperTest, ManifestSignedByANonMemberIsRefused) {
  // Mallory has an account on the relay but is not in the team. A manifest for the team's
  // document signed by her device (valid signature, valid certificate) is put where Bob's
  // profile keeps the document's manifest.
  auto mallory = Enrol("mallory");
  ASSERT_TRUE(mallory);
  const std::uint32_t mallory_device = mallory->device_id();
  mallory.reset();
  std::optional<crypto::SigningKey> mallory_key;
  EditProfile("mallory", [&](storage::Database& db) {
    auto row = db.Prepare("SELECT device_seed FROM identity WHERE id = 1");
    ASSERT_TRUE(row);
    ASSERT_TRUE(row->Step().value_or(false));
    auto key = crypto::SigningKey::FromSeed(row->ColumnSecret(0).span());
    ASSERT_TRUE(key);
    mallory_key.emplace(std::move(*key));
  });
  ASSERT_TRUE(mallory_key);
  bob_.reset();
  EditProfile("bob", [&](storage::Database& db) {
    auto row = db.Prepare("SELECT manifest FROM documents WHERE version = 1");
    ASSERT_TRUE(row);
    ASSERT_TRUE(row->Step().value_or(false));
    const auto bytes = row->ColumnBlob(0);
    wire::v1::ItemManifest manifest;
    ASSERT_TRUE(manifest.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    auto body = protocol::ParseItemManifestBody(manifest);
    ASSERT_TRUE(body);
    body->set_author_user_id("mallory");
    body->set_author_device_id(mallory_device);
    auto forged = protocol::SignItemManifest(*body, *mallory_key);
    ASSERT_TRUE(forged);
    const std::string forged_bytes = forged->SerializeAsString();
    auto update = db.Prepare("UPDATE documents SET manifest = ? WHERE version = 1");
    ASSERT_TRUE(update);
    ASSERT_TRUE(update->Bind(
        1, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(forged_bytes.data()),
                                         forged_bytes.size())));
    ASSERT_TRUE(update->Step());
  });
  bob_ = Reopen("bob");
  ASSERT_TRUE(bob_);
  ExpectRefused(*bob_, document_id_, 1, ErrorCode::kAuthenticationFailed,
                "the document is not signed by a member of the team");
}

TEST_F(DocumentTest, UploadCutInTheMiddleResumesAtTheNextSync) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob", false, /*through_proxy=*/false);
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  const std::size_t size = 10 * 1024 * 1024;
  const fs::path file = MakeFile("plan-large.pdf", size, 13);
  const std::uint64_t blob_size = *crypto::CiphertextSize(size);
  const double stored_before = relay_->MetricValue("coffre_relay_blob_bytes_in_total").value_or(0);

  // The link dies in the middle of the second 4 MiB piece.
  proxy_->CutAfter(6 * 1024 * 1024);
  auto put = alice->PutDocument(kTeam, file, std::nullopt, std::nullopt, {});
  ASSERT_TRUE(put) << put.error().context();  // recorded: it goes out with the next sync
  ASSERT_TRUE(proxy_->down()) << "the cut did not happen";
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 1u);
  EXPECT_TRUE(StoredBlobs().empty());
  // The relay kept the first piece, where the next sync resumes.
  std::uint64_t received = 0;
  std::error_code ec;
  for (const auto& entry :
       fs::directory_iterator(dir_.path() / "relay" / "blobs" / team_hex_, ec)) {
    if (entry.path().extension() == ".part") received = entry.file_size();
  }
  EXPECT_EQ(received, protocol::kMaxBlobChunk);

  proxy_->Restore();
  Sync(*alice);
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 0u);
  ASSERT_EQ(StoredBlobs().size(), 1u);
  // Nothing sent twice: the relay stored exactly one blob's bytes.
  const auto stored_after = relay_->MetricValue("coffre_relay_blob_bytes_in_total");
  ASSERT_TRUE(stored_after.has_value());
  EXPECT_EQ(*stored_after - stored_before, static_cast<double>(blob_size));

  Sync(*bob);
  auto listed = bob->ListDocuments(kTeam);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  auto versions = bob->DocumentVersions(kTeam, put->document_id);
  ASSERT_TRUE(versions);
  EXPECT_EQ(versions->size(), 1u);
  auto got = bob->GetDocument(kTeam, put->document_id, files() / "bob-copy", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_TRUE(ReadFile(files() / "bob-copy") == ReadFile(file));
}

TEST_F(DocumentTest, DocumentPutWhileTheRelayIsDownArrivesOnceItIsBack) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob", false, /*through_proxy=*/false);
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  const fs::path file = MakeFile("plan.pdf", 4 * 1024 * 1024 + 3, 14);

  proxy_->Refuse();
  auto put = alice->PutDocument(kTeam, file, std::nullopt, std::nullopt, {});
  ASSERT_TRUE(put) << put.error().context();
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 1u);
  EXPECT_FALSE(alice->Sync());  // still down: nothing lost, nothing sent
  // The person closes the program; the upload survives in the profile.
  alice.reset();

  proxy_->Restore();
  alice = Reopen("alice");
  ASSERT_TRUE(alice);
  Sync(*alice);
  Sync(*alice);  // a second sync sends nothing again
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 0u);
  EXPECT_EQ(StoredBlobs().size(), 1u);

  Sync(*bob);
  auto versions = bob->DocumentVersions(kTeam, put->document_id);
  ASSERT_TRUE(versions) << versions.error().context();
  EXPECT_EQ(versions->size(), 1u);
  auto got = bob->GetDocument(kTeam, put->document_id, files() / "bob-copy", std::nullopt, {});
  ASSERT_TRUE(got) << got.error().context();
  EXPECT_TRUE(ReadFile(files() / "bob-copy") == ReadFile(file));
}

// A relay that takes documents of at most 1 MiB of ciphertext.
class DocumentSizeLimitTest : public DocumentTest {
 protected:
  DocumentSizeLimitTest() {
    relay_tweak_ = [](server::RelayConfig& config) { config.quotas.max_blob_bytes = 1024 * 1024; };
  }
};

TEST_F(DocumentSizeLimitTest, DocumentTheRelayRefusesLeavesNothingBehind) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  auto refused = alice->PutDocument(kTeam, MakeFile("big.pdf", 2 * 1024 * 1024, 15), std::nullopt,
                                    std::nullopt, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kResourceExhausted) << refused.error().context();
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 0u);
  auto listed = alice->ListDocuments(kTeam);
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  // Its manifest left the outbox with it: nothing is refused again at the next sync.
  auto report = alice->Sync();
  ASSERT_TRUE(report) << report.error().context();
  EXPECT_TRUE(report->warnings.empty());
  EXPECT_EQ(report->outbox_pending, 0u);

  auto small = alice->PutDocument(kTeam, MakeFile("small.pdf", 100 * 1024, 16), std::nullopt,
                                  std::nullopt, {});
  ASSERT_TRUE(small) << small.error().context();
  Sync(*bob);
  ASSERT_TRUE(
      bob->GetDocument(kTeam, small->document_id, files() / "small-copy", std::nullopt, {}));
}

TEST_F(DocumentSizeLimitTest, RefusedUploadQueuedOfflineIsDroppedWithAWarning) {
  auto alice = Enrol("alice", true);
  auto bob = Enrol("bob", false, /*through_proxy=*/false);
  ASSERT_TRUE(alice && bob);
  MakeTeam(*alice, {bob.get()});
  proxy_->Refuse();
  ASSERT_TRUE(alice->PutDocument(kTeam, MakeFile("big.pdf", 2 * 1024 * 1024, 17), std::nullopt,
                                 std::nullopt, {}));
  const fs::path small = MakeFile("small.pdf", 100 * 1024, 18);
  auto queued = alice->PutDocument(kTeam, small, std::nullopt, std::nullopt, {});
  ASSERT_TRUE(queued) << queued.error().context();
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 2u);

  proxy_->Restore();
  auto report = alice->Sync();
  ASSERT_TRUE(report) << report.error().context();
  ASSERT_EQ(report->warnings.size(), 1u);
  EXPECT_NE(report->warnings[0].find("refused and dropped"), std::string::npos)
      << report->warnings[0];
  EXPECT_EQ(report->outbox_pending, 0u);
  EXPECT_EQ(EntriesIn(Profile("alice") / "staging"), 0u);
  auto listed = alice->ListDocuments(kTeam);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].document_id, queued->document_id);

  Sync(*bob);
  ASSERT_TRUE(
      bob->GetDocument(kTeam, queued->document_id, files() / "small-copy", std::nullopt, {}));
  EXPECT_TRUE(ReadFile(files() / "small-copy") == ReadFile(small));
}

}  // namespace
}  // namespace coffre::client
