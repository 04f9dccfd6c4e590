// Client benchmarks (issue 4 §8): what a post, a document and a team key rotation cost the
// client, each against an anchor measured in the same run.
//
//   Post        BM_ClientPost: the sender's part of Client::Post without its SQL (channel
//               key derived, SealPost, manifest body, SignItemManifest, manifest serialized)
//               and the receiver's part of Client::Impl::ApplyItem without its SQL (manifest
//               parsed, ParseItemManifestBody, VerifyItemManifest with the author's key at
//               hand, ReadPostHeader, channel key derived, OpenPost). Anchor
//               BM_ClientPostPrimitives: raw libsodium XChaCha20-Poly1305 seal and open of
//               the same padded size with associated data of the same length, and Ed25519
//               sign and verify of a message the size of the manifest body. Goal: ours
//               <= 1.5x the anchor. Texts of 160 bytes (a short post, 256-byte bucket) and
//               4000 bytes (4 KiB bucket).
//   Documents   BM_ClientDocumentPut: Client::PutDocument of a 64 MiB file with the relay
//               down, that is everything a put does before the upload: a fresh key wrapped,
//               metadata sealed, the file sealed on every core into the staged stream in
//               the profile folder, hashed, fsync'd, the manifest signed and recorded with
//               the upload in one transaction. (Offline, each call to the relay fails at
//               once: connection refused on loopback.) The staged file is removed between
//               iterations, untimed.
//               BM_ClientDocumentGet: Client::GetDocument of that version from the in-process
//               relay (tests/server/relay_harness.h, TLS on 127.0.0.1): the stored manifest
//               verified again, the blob fetched in 4 MiB ranges over HTTPS, each range
//               opened on every core while the next one downloads, hashed, written to a
//               temporary file, fsync'd and renamed. There is no relay-less seam for a get in
//               the client; this one includes the relay serving the blob, in this process
//               and on the same cores.
//               Anchors BM_ClientDocumentStreamSeal / BM_ClientDocumentStreamOpen: the stream
//               format alone (EncryptDocumentInto / DecryptDocumentInto) on the same 64 MiB
//               in memory, with as many threads as the client uses (hardware threads).
//               Goal: put and get >= 0.8x the anchor's throughput. To read the gap, two more
//               anchors measure what a transfer adds: BLAKE2b-256 of the 64 MiB stream on one
//               thread (the blob hash) and writing it to a file with fsync.
//   Rotation    BM_ClientTeamKeyRotation/members:N: a key rotation by the admin of a team of
//               N single-device members. No relay: the rotation's local work runs on a real
//               profile (Client::Impl over SQLCipher, synchronous = FULL) whose libsignal
//               sessions with every member were built in the set-up from real prekey
//               bundles. Timed, per rotation, in the order Client::RotateTeamKey runs it:
//                 - the stored chain verified again (Client::Impl::StoredChain, what
//                   RefreshChain does before it asks the relay for newer statements);
//                 - RotateKeyLocked: key, commitment, key row, the RotateKey statement signed,
//                   applied to a copy of the chain and stored (AppendStatement without its
//                   relay call), the previous generation sealed into a key-history item,
//                   signed and queued;
//                 - DeliverTeamKey: the delivery encoded once, then for every key holder what
//                   FetchPeer does with the relay's device list (RecordSigners runs the same
//                   RecordDeviceList in one transaction: certificate verified, peer rows,
//                   identity, StoredPeer; the Peer it yields is kept from the set-up) and
//                   Client::Impl::QueuePeerMessage (one libsignal encryption per device and
//                   the outbox row, one transaction).
//               Those functions are the client's own; the sequence around them is
//               RotateKeyLocked's and DeliverTeamKey's, copied here because both also call
//               the relay. Left out: the relay round trips (RefreshChain's fetch, the
//               statement append, one ListDevices per member) and sending the outbox.
//               No member has written to the admin yet, so every envelope is a libsignal
//               prekey message, as for a member who never sent the admin a direct message.
//               Counters per rotation: envelopes and outbox requests produced (read back
//               from the outbox), CPU of each part and per member, wall time per member
//               (each member costs two commits, so fsyncs show in wall time, not in CPU),
//               and the untimed set-up (about 1.5 ms per member).
//               Goal: CPU linear in N; 1,000 members under one second.
//
// The benchmarks that need a relay, a profile or a team run a fixed number of iterations
// so that a run stays bounded whatever --benchmark_min_time says. Scratch files live under
// $TMPDIR (or /tmp) and are removed at the end. Failures end the benchmark with
// SkipWithError.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "client_impl.h"
#include "coffre/client/client.h"
#include "coffre/client/content.h"
#include "coffre/client/relay_address.h"
#include "coffre/crypto/aead.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/crypto/random.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/protocol/validation.h"
#include "log.h"
#include "profile_sql.h"
#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::client {

// Defined in client_peers.cc, declared where it is used (client_teams.cc, client_sync.cc):
// records device lists as the relay sent them, in one transaction.
Status RecordSigners(Client::Impl& impl,
                     const google::protobuf::RepeatedPtrField<wire::DeviceList>& lists);

namespace {

using crypto::SecretBytes;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

void Skip(benchmark::State& state, const Error& error) {
  // Error contexts are string literals, so the view is NUL-terminated.
  state.SkipWithError(error.context().data());
}

SecretBytes Secret(std::string_view text) {
  return SecretBytes::CopyOf({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

double ThreadCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

double Seconds(Clock::duration elapsed) { return std::chrono::duration<double>(elapsed).count(); }

// ---------------------------------------------------------------------------------------
// Posts

constexpr std::uint64_t kGeneration = 1;
constexpr std::uint32_t kAuthorDevice = 1;
constexpr std::string_view kAuthor = "alice";

struct PostInputs {
  crypto::SigningKey device_key = crypto::SigningKey::Generate();
  SecretBytes ptk = GenerateTeamKey();
  protocol::TeamId team_id = NewId();
  ItemId channel_id = NewId();
  protocol::ChainHead chain_head{7, {}};
  std::string text;

  explicit PostInputs(std::size_t text_size) : text(text_size, 'p') {
    crypto::RandomFill(chain_head.hash);
  }
};

// Client::Post's cryptographic part: returns the manifest as it leaves for the relay.
Result<std::string> SendPost(const PostInputs& in, std::uint64_t sent_ms) {
  PostContext context;
  context.team_id = in.team_id;
  context.generation = kGeneration;
  context.channel_id = in.channel_id;
  context.post_id = NewId();
  context.sender_user_id = std::string(kAuthor);
  context.sender_device_id = kAuthorDevice;
  context.chain_head = in.chain_head;
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes channel_key,
                          DeriveChannelKey(in.ptk, in.team_id, kGeneration, in.channel_id));
  COFFRE_ASSIGN_OR_RETURN(const Bytes sealed, SealPost(channel_key, context, in.text, sent_ms));
  wire::ItemManifestBody body;
  body.set_team_id(AsString(in.team_id));
  body.set_item_id(AsString(context.post_id));
  body.set_version(1);
  body.set_parent_version(0);
  body.set_kind(std::string(kKindPost));
  body.set_key_generation(kGeneration);
  body.set_encrypted_metadata(AsString(sealed));
  body.set_created_ms(sent_ms);
  body.set_author_user_id(std::string(kAuthor));
  body.set_author_device_id(kAuthorDevice);
  COFFRE_ASSIGN_OR_RETURN(const wire::ItemManifest manifest,
                          protocol::SignItemManifest(body, in.device_key));
  return manifest.SerializeAsString();
}

// Client::Impl::ApplyItem's part for a post, the author's key known.
Result<OpenedPost> ReceivePost(const PostInputs& in, const std::string& bytes,
                               const protocol::DeviceKeyLookup& lookup) {
  wire::ItemManifest manifest;
  if (!manifest.ParseFromString(bytes)) {
    return Fail(ErrorCode::kCorrupt, "bench: the manifest does not parse");
  }
  COFFRE_ASSIGN_OR_RETURN(const wire::ItemManifestBody parsed,
                          protocol::ParseItemManifestBody(manifest));
  benchmark::DoNotOptimize(parsed.ByteSizeLong());
  COFFRE_ASSIGN_OR_RETURN(const protocol::VerifiedManifest verified,
                          protocol::VerifyItemManifest(manifest, lookup));
  COFFRE_ASSIGN_OR_RETURN(const PostHeaderInfo header, ReadPostHeader(verified.body));
  COFFRE_ASSIGN_OR_RETURN(
      const SecretBytes channel_key,
      DeriveChannelKey(in.ptk, in.team_id, verified.body.key_generation(), header.channel_id));
  return OpenPost(verified.body, channel_key);
}

void BM_ClientPost(benchmark::State& state) {
  const PostInputs in(static_cast<std::size_t>(state.range(0)));
  const crypto::VerifyKey author_key = in.device_key.verify_key();
  const protocol::DeviceKeyLookup lookup = [&](std::string_view user,
                                               std::uint32_t device) -> Result<crypto::VerifyKey> {
    if (user != kAuthor || device != kAuthorDevice) {
      return Fail(ErrorCode::kNotFound, "bench: unknown device");
    }
    return author_key;
  };
  for (auto _ : state) {
    Result<std::string> sent = SendPost(in, NowMs());
    if (!sent) return Skip(state, sent.error());
    Result<OpenedPost> opened = ReceivePost(in, *sent, lookup);
    if (!opened) return Skip(state, opened.error());
    if (opened->text.size() != in.text.size()) {
      return state.SkipWithError("bench: the post opened to another text");
    }
    benchmark::DoNotOptimize(opened->text.data());
  }
}

void BM_ClientPostPrimitives(benchmark::State& state) {
  if (sodium_init() < 0) return state.SkipWithError("libsodium failed to initialise");
  // Sizes taken from the real formats: the padded body, the post associated data with the
  // AEAD label as AeadSeal encodes it, the manifest body that is signed.
  const PostInputs in(static_cast<std::size_t>(state.range(0)));
  Result<SecretBytes> padded = internal::PaddedPostBody(in.text, NowMs());
  Result<std::string> manifest_bytes = SendPost(in, NowMs());
  if (!padded || !manifest_bytes) return state.SkipWithError("bench: post set-up failed");
  wire::ItemManifest manifest;
  if (!manifest.ParseFromString(*manifest_bytes)) {
    return state.SkipWithError("bench: post set-up failed");
  }
  PostContext context;
  context.sender_user_id = std::string(kAuthor);
  const std::size_t ad_size = 2 + kPostLabel.size() + internal::PostAssociatedData(context).size();

  const Bytes plaintext = crypto::RandomBytes(padded->size());
  const Bytes ad = crypto::RandomBytes(ad_size);
  const Bytes message = crypto::RandomBytes(manifest.body().size());
  const SecretBytes key = crypto::RandomSecret(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  std::array<std::uint8_t, crypto_sign_PUBLICKEYBYTES> public_key{};
  SecretBytes secret_key(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(public_key.data(), secret_key.data());
  Bytes sealed(crypto::kAeadNonceSize + plaintext.size() + crypto::kAeadTagSize);
  Bytes opened(plaintext.size());
  std::array<std::uint8_t, crypto_sign_BYTES> signature{};
  for (auto _ : state) {
    randombytes_buf(sealed.data(), crypto::kAeadNonceSize);
    unsigned long long length = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data() + crypto::kAeadNonceSize, &length,
                                               plaintext.data(), plaintext.size(), ad.data(),
                                               ad.size(), nullptr, sealed.data(), key.data());
    crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                         secret_key.data());
    const int verified = crypto_sign_verify_detached(signature.data(), message.data(),
                                                     message.size(), public_key.data());
    const int decrypted = crypto_aead_xchacha20poly1305_ietf_decrypt(
        opened.data(), &length, nullptr, sealed.data() + crypto::kAeadNonceSize,
        sealed.size() - crypto::kAeadNonceSize, ad.data(), ad.size(), sealed.data(), key.data());
    if (verified != 0 || decrypted != 0) {
      return state.SkipWithError("bench: a primitive failed");
    }
    benchmark::DoNotOptimize(opened.data());
    benchmark::ClobberMemory();
  }
}

void PostSizes(benchmark::internal::Benchmark* b) {
  b->ArgName("text_bytes")->Arg(160)->Arg(4000)->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_ClientPostPrimitives)->Apply(PostSizes);
BENCHMARK(BM_ClientPost)->Apply(PostSizes);

// ---------------------------------------------------------------------------------------
// Documents

constexpr std::size_t kDocumentSize = std::size_t{64} << 20;
constexpr std::string_view kDocumentTeam = "bench-docs";
constexpr int kTransferIterations = 5;

// The threads the client seals and opens chunks on (client_transfer.cc, Cores()).
unsigned ClientThreads() {
  return std::clamp(std::thread::hardware_concurrency(), 1u, crypto::kMaxStreamThreads);
}

void SetDocumentBytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kDocumentSize));
}

// An in-process relay, one enrolled profile with a team, and a 64 MiB file to put.
struct DocumentFixture {
  server::testing::TempDir dir;
  std::unique_ptr<server::testing::TestRelay> relay;
  bool relay_running = false;
  std::unique_ptr<Client> client;
  std::filesystem::path source;
  std::optional<std::string> uploaded;  // the document id of a version the relay holds
  const char* failure = nullptr;

  std::filesystem::path ProfileDir() const { return dir.path() / "alice"; }

  bool SetRelayRunning(bool running) {
    if (running == relay_running) return true;
    if (running && !relay->Start()) return false;
    if (!running) relay->Stop();
    relay_running = running;
    return true;
  }
};

std::unique_ptr<DocumentFixture> BuildDocumentFixture() {
  server::SetLogLevel(server::LogLevel::kError);
  auto f = std::make_unique<DocumentFixture>();
  if (f->dir.path().empty()) {
    f->failure = "bench: no scratch directory";
    return f;
  }
  // The relay's pacing of uploads (50 MiB/s per device) is a relay policy, not client work.
  f->relay = std::make_unique<server::testing::TestRelay>(
      f->dir.path() / "relay", [](server::RelayConfig& config) {
        config.rate_limits.upload_bytes_per_second_per_device = 1e12;
      });
  if (!f->SetRelayRunning(true)) {
    f->failure = "bench: the relay did not start";
    return f;
  }
  InitOptions options;
  options.relay_url = "https://127.0.0.1:" + std::to_string(f->relay->port());
  CertificateFingerprint fingerprint{};
  std::copy(f->relay->relay_identity().begin(), f->relay->relay_identity().end(),
            fingerprint.begin());
  options.relay_fingerprint = FormatFingerprint(fingerprint);
  options.enrolment_code = Secret(f->relay->Enrol("sdis13", true));
  options.user_id = "alice";
  options.display_name = "Alice Martin";
  auto client = Client::Init(f->ProfileDir(), Secret("passphrase of alice"), options, nullptr);
  if (!client) {
    f->failure = client.error().context().data();
    return f;
  }
  f->client = std::move(*client);
  if (auto team = f->client->CreateTeam(kDocumentTeam); !team) {
    f->failure = team.error().context().data();
    return f;
  }
  f->source = f->dir.path() / "plan.bin";
  const int fd = ::open(f->source.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool written = fd >= 0;
  constexpr std::size_t kPiece = std::size_t{4} << 20;
  for (std::size_t done = 0; written && done < kDocumentSize; done += kPiece) {
    const Bytes piece = crypto::RandomBytes(kPiece);
    written = ::write(fd, piece.data(), piece.size()) == static_cast<ssize_t>(piece.size());
  }
  if (fd >= 0 && ::close(fd) != 0) written = false;
  if (!written) f->failure = "bench: cannot write the document to put";
  return f;
}

DocumentFixture* DocumentFixtureOrSkip(benchmark::State& state) {
  static const std::unique_ptr<DocumentFixture> fixture = BuildDocumentFixture();
  if (fixture->failure != nullptr) {
    state.SkipWithError(fixture->failure);
    return nullptr;
  }
  return fixture.get();
}

// The 64 MiB of the stream anchors, in memory.
struct StreamInputs {
  SecretBytes document_key = GenerateDocumentKey();
  Bytes associated_data;
  Bytes plaintext = crypto::RandomBytes(kDocumentSize);
  Bytes stream;
};

const StreamInputs& StreamInputsOnce() {
  static const StreamInputs inputs = [] {
    StreamInputs made;
    ItemContext context;
    context.team_id = NewId();
    context.item_id = NewId();
    context.version = 1;
    context.generation = 1;
    made.associated_data = DocumentStreamAssociatedData(context).value_or(Bytes{});
    auto stream = crypto::EncryptDocument(made.document_key, made.associated_data, made.plaintext,
                                          ClientThreads());
    if (stream) made.stream = std::move(*stream);
    return made;
  }();
  return inputs;
}

void BM_ClientDocumentStreamSeal(benchmark::State& state) {
  const StreamInputs& in = StreamInputsOnce();
  auto cipher = crypto::DocumentStreamCipher::Create(in.document_key, in.associated_data);
  if (in.stream.empty() || !cipher) return state.SkipWithError("bench: stream set-up failed");
  Bytes out(in.stream.size());
  for (auto _ : state) {
    if (!crypto::EncryptDocumentInto(*cipher, in.plaintext, out, ClientThreads())) {
      return state.SkipWithError("bench: EncryptDocumentInto failed");
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

void BM_ClientDocumentStreamOpen(benchmark::State& state) {
  const StreamInputs& in = StreamInputsOnce();
  if (in.stream.empty()) return state.SkipWithError("bench: stream set-up failed");
  Bytes out(kDocumentSize);
  for (auto _ : state) {
    if (!crypto::DecryptDocumentInto(in.document_key, in.associated_data, in.stream, out,
                                     ClientThreads())) {
      return state.SkipWithError("bench: DecryptDocumentInto failed");
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  SetDocumentBytes(state);
}

// What a transfer adds to the stream: the blob hash (BLAKE2b-256, one thread, as the
// client's BlobHasher) ...
void BM_ClientDocumentBlobHash(benchmark::State& state) {
  const StreamInputs& in = StreamInputsOnce();
  if (in.stream.empty() || sodium_init() < 0) {
    return state.SkipWithError("bench: stream set-up failed");
  }
  std::array<std::uint8_t, 32> hash{};
  constexpr std::size_t kPiece = std::size_t{4} << 20;
  for (auto _ : state) {
    crypto_generichash_state hasher{};
    crypto_generichash_init(&hasher, nullptr, 0, hash.size());
    for (std::size_t offset = 0; offset < in.stream.size(); offset += kPiece) {
      const std::size_t length = std::min(kPiece, in.stream.size() - offset);
      crypto_generichash_update(&hasher, in.stream.data() + offset, length);
    }
    crypto_generichash_final(&hasher, hash.data(), hash.size());
    benchmark::DoNotOptimize(hash.data());
  }
  SetDocumentBytes(state);
}

// ... and writing the stream to a new file next to the profile, with fsync.
void BM_ClientDocumentWriteSync(benchmark::State& state) {
  DocumentFixture* f = DocumentFixtureOrSkip(state);
  if (f == nullptr) return;
  const StreamInputs& in = StreamInputsOnce();
  if (in.stream.empty()) return state.SkipWithError("bench: stream set-up failed");
  const std::filesystem::path path = f->dir.path() / "write-sync.bin";
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    constexpr std::size_t kPiece = std::size_t{4} << 20;
    for (std::size_t offset = 0; ok && offset < in.stream.size(); offset += kPiece) {
      const std::size_t length = std::min(kPiece, in.stream.size() - offset);
      ok = ::write(fd, in.stream.data() + offset, length) == static_cast<ssize_t>(length);
    }
    ok = ok && ::fsync(fd) == 0;
    if (fd >= 0 && ::close(fd) != 0) ok = false;
    if (!ok) return state.SkipWithError("bench: cannot write the stream file");
    state.PauseTiming();
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    state.ResumeTiming();
  }
  SetDocumentBytes(state);
}

void BM_ClientDocumentPut(benchmark::State& state) {
  DocumentFixture* f = DocumentFixtureOrSkip(state);
  if (f == nullptr) return;
  if (!f->SetRelayRunning(false)) return state.SkipWithError("bench: the relay did not stop");
  const std::filesystem::path staging = f->ProfileDir() / "staging";
  for (auto _ : state) {
    auto put = f->client->PutDocument(kDocumentTeam, f->source, "plan.bin", std::nullopt, {});
    if (!put) return Skip(state, put.error());
    // Untimed: the staged copy goes, so the disk does not fill over iterations. The upload
    // row stays; the next sync with the relay drops it as lost.
    state.PauseTiming();
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(staging, ignored)) {
      std::filesystem::remove(entry.path(), ignored);
    }
    state.ResumeTiming();
  }
  SetDocumentBytes(state);
}

void BM_ClientDocumentGet(benchmark::State& state) {
  DocumentFixture* f = DocumentFixtureOrSkip(state);
  if (f == nullptr) return;
  if (!f->SetRelayRunning(true)) return state.SkipWithError("bench: the relay did not start");
  if (!f->uploaded) {
    auto put = f->client->PutDocument(kDocumentTeam, f->source, "plan.bin", std::nullopt, {});
    if (!put) return Skip(state, put.error());
    auto synced = f->client->Sync();
    if (!synced) return Skip(state, synced.error());
    if (synced->outbox_pending != 0) {
      return state.SkipWithError("bench: the document did not reach the relay");
    }
    f->uploaded = put->document_id;
  }
  const std::filesystem::path output = f->dir.path() / "downloaded.bin";
  for (auto _ : state) {
    auto got = f->client->GetDocument(kDocumentTeam, *f->uploaded, output, std::uint64_t{1}, {});
    if (!got) return Skip(state, got.error());
    if (got->size != kDocumentSize) return state.SkipWithError("bench: wrong document size");
  }
  SetDocumentBytes(state);
}

BENCHMARK(BM_ClientDocumentStreamSeal)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientDocumentStreamOpen)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientDocumentBlobHash)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientDocumentWriteSync)
    ->Iterations(kTransferIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientDocumentPut)
    ->Iterations(kTransferIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientDocumentGet)
    ->Iterations(kTransferIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------
// Team key rotation

constexpr std::string_view kRotationTeam = "operations";
// Members whose sessions are built per set-up transaction.
constexpr int kSetupBatch = 500;

// A key holder as FetchPeer sees it: what the relay's ListDevices answers, and the Peer
// that FetchPeer returns once it has recorded that answer.
struct KeyHolder {
  google::protobuf::RepeatedPtrField<wire::DeviceList> device_lists;
  Peer peer;
};

// A profile that administers a team of single-device members, each with a session.
struct RotationTeam {
  server::testing::TempDir dir;
  std::unique_ptr<Client::Impl> admin;
  TeamRecord team;
  std::map<std::string, KeyHolder, std::less<>> holders;
};

// One device list as ListDevices answers it: the user's identity key and device 1's
// certificate signed by it.
Result<google::protobuf::RepeatedPtrField<wire::DeviceList>> DeviceListOf(
    const std::string& user_id, const crypto::SigningKey& user_key,
    const crypto::SigningKey& device_key, const crypto::SignalPublicKey& signal_identity) {
  wire::DeviceCertificateBody body;
  body.set_user_id(user_id);
  body.set_device_id(1);
  const auto& signing = device_key.verify_key().bytes();
  body.set_device_signing_key(signing.data(), signing.size());
  body.set_signal_identity_key(signal_identity.data(), signal_identity.size());
  body.set_created_ms(NowMs());
  COFFRE_ASSIGN_OR_RETURN(wire::DeviceCertificate certificate,
                          protocol::SignDeviceCertificate(body, user_key));
  google::protobuf::RepeatedPtrField<wire::DeviceList> lists;
  wire::DeviceList* list = lists.Add();
  list->set_user_id(user_id);
  const auto& identity = user_key.verify_key().bytes();
  list->set_user_identity_key(identity.data(), identity.size());
  wire::DeviceEntry* entry = list->add_devices();
  *entry->mutable_certificate() = std::move(certificate);
  entry->set_revoked(false);
  return lists;
}

// The next statement of the admin's device, as Client::Impl::AppendStatement fills it.
Result<wire::ChainStatement> NextStatement(const Client::Impl& impl, const TeamRecord& team,
                                           const protocol::TeamChain& chain,
                                           wire::ChainStatementBody body) {
  const protocol::ChainHead head = chain.head();
  body.set_team_id(AsString(team.team_id));
  body.set_sequence(head.sequence + 1);
  body.set_previous_hash(head.hash.data(), head.hash.size());
  body.set_signer_user_id(impl.user_id);
  body.set_signer_device_id(impl.device_id);
  body.set_created_ms(NowMs());
  return protocol::SignChainStatement(body, *impl.device_key);
}

std::string MemberName(int i) {
  std::string name = std::to_string(i);
  name.insert(0, 6 - std::min<std::size_t>(6, name.size()), '0');
  return "member-" + name;
}

// The state a team reaches after CreateTeam and `members` AddMember calls, built directly:
// the genesis, generation 1 and one AddMember statement per member in the chain, every
// member's device list recorded as FetchPeer records it, and a session with every member
// device built from its prekey bundle (as EnsureSession does).
Result<std::unique_ptr<RotationTeam>> BuildRotationTeam(int members) {
  auto t = std::make_unique<RotationTeam>();
  if (t->dir.path().empty()) return Fail(ErrorCode::kIo, "bench: no scratch directory");
  COFFRE_ASSIGN_OR_RETURN(t->admin, Client::Impl::CreateProfile(t->dir.path() / "admin",
                                                                Secret("passphrase of admin")));
  Client::Impl& impl = *t->admin;
  impl.user_id = "admin";
  impl.device_id = 1;
  impl.display_name = "Admin";
  impl.user_key.emplace(crypto::SigningKey::Generate());
  impl.device_key.emplace(crypto::SigningKey::Generate());
  COFFRE_RETURN_IF_ERROR(impl.AttachSignal());
  COFFRE_RETURN_IF_ERROR(impl.signal->GenerateIdentity());
  COFFRE_ASSIGN_OR_RETURN(const crypto::SignalPublicKey admin_identity,
                          impl.signal->IdentityPublicKey());
  COFFRE_ASSIGN_OR_RETURN(auto admin_lists, DeviceListOf(impl.user_id, *impl.user_key,
                                                         *impl.device_key, admin_identity));
  COFFRE_RETURN_IF_ERROR(RecordSigners(impl, admin_lists));
  t->holders[impl.user_id].device_lists = std::move(admin_lists);

  t->team = TeamRecord{NewId(), std::string(kRotationTeam)};
  const TeamRecord& team = t->team;
  std::vector<wire::ChainStatement> statements;
  wire::ChainStatementBody create;
  create.set_team_id(AsString(team.team_id));
  create.set_sequence(0);
  create.set_signer_user_id(impl.user_id);
  create.set_signer_device_id(impl.device_id);
  create.set_created_ms(NowMs());
  create.mutable_create();
  COFFRE_ASSIGN_OR_RETURN(wire::ChainStatement genesis,
                          protocol::SignChainStatement(create, *impl.device_key));
  COFFRE_ASSIGN_OR_RETURN(protocol::TeamChain chain,
                          protocol::TeamChain::FromGenesis(genesis, impl.KeyLookup()));
  statements.push_back(std::move(genesis));

  const SecretBytes first_key = GenerateTeamKey();
  COFFRE_ASSIGN_OR_RETURN(const protocol::Hash commitment,
                          KeyCommitment(team.team_id, 1, first_key));
  wire::ChainStatementBody rotate;
  rotate.mutable_rotate_key()->set_generation(1);
  rotate.mutable_rotate_key()->set_commitment(commitment.data(), commitment.size());
  COFFRE_ASSIGN_OR_RETURN(wire::ChainStatement first_rotation,
                          NextStatement(impl, team, chain, std::move(rotate)));
  COFFRE_RETURN_IF_ERROR(chain.Apply(first_rotation, impl.KeyLookup()));
  statements.push_back(std::move(first_rotation));

  for (int start = 0; start < members; start += kSetupBatch) {
    const int end = std::min(members, start + kSetupBatch);
    google::protobuf::RepeatedPtrField<wire::DeviceList> batch;
    std::vector<std::pair<crypto::SignalAddress, crypto::PreKeyBundle>> bundles;
    for (int i = start; i < end; ++i) {
      const std::string user_id = MemberName(i);
      const crypto::SigningKey user_key = crypto::SigningKey::Generate();
      const crypto::SigningKey device_key = crypto::SigningKey::Generate();
      const crypto::SignalAddress address{user_id, 1};
      // The member's own device only publishes its keys here; its state is not needed after.
      crypto::InMemorySignalStores stores;
      COFFRE_ASSIGN_OR_RETURN(auto device, crypto::SignalDevice::Create(address, stores.stores()));
      COFFRE_RETURN_IF_ERROR(device->GenerateIdentity());
      COFFRE_ASSIGN_OR_RETURN(const crypto::SignalPublicKey identity, device->IdentityPublicKey());
      COFFRE_ASSIGN_OR_RETURN(const auto signed_pre_key, device->GenerateSignedPreKey(1, NowMs()));
      (void)signed_pre_key;
      COFFRE_ASSIGN_OR_RETURN(const auto pre_keys, device->GeneratePreKeys(1, 1));
      (void)pre_keys;
      COFFRE_ASSIGN_OR_RETURN(crypto::PreKeyBundle bundle, device->CreatePreKeyBundle(1u, 1u));
      bundles.emplace_back(address, std::move(bundle));
      COFFRE_ASSIGN_OR_RETURN(auto lists, DeviceListOf(user_id, user_key, device_key, identity));
      *batch.Add() = lists.Get(0);
      t->holders[user_id].device_lists = std::move(lists);

      wire::ChainStatementBody add;
      add.mutable_add_member()->set_user_id(user_id);
      add.mutable_add_member()->set_role(wire::ROLE_MEMBER);
      COFFRE_ASSIGN_OR_RETURN(wire::ChainStatement statement,
                              NextStatement(impl, team, chain, std::move(add)));
      COFFRE_RETURN_IF_ERROR(chain.Apply(statement, impl.KeyLookup()));
      statements.push_back(std::move(statement));
    }
    COFFRE_RETURN_IF_ERROR(RecordSigners(impl, batch));
    const Status sessions = impl.signal_stores->RunInTransaction([&]() -> Status {
      for (const auto& [address, bundle] : bundles) {
        COFFRE_RETURN_IF_ERROR(impl.signal->ProcessPreKeyBundle(address, bundle));
      }
      return Ok();
    });
    COFFRE_RETURN_IF_ERROR(sessions);
  }
  for (auto& [user_id, holder] : t->holders) {
    COFFRE_ASSIGN_OR_RETURN(holder.peer, impl.StoredPeer(user_id));
  }

  const Status stored = impl.signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "INSERT INTO teams (team_id, name) VALUES (?, ?)",
                                    team.team_id, team.name));
    for (std::size_t sequence = 0; sequence < statements.size(); ++sequence) {
      COFFRE_RETURN_IF_ERROR(sql::Run(
          *impl.db, "INSERT INTO chain_statements (team_id, sequence, statement) VALUES (?, ?, ?)",
          team.team_id, static_cast<std::uint64_t>(sequence),
          AsBytes(statements[sequence].SerializeAsString())));
    }
    COFFRE_RETURN_IF_ERROR(
        sql::Run(*impl.db, "UPDATE teams SET head_sequence = ?, head_hash = ? WHERE team_id = ?",
                 chain.head().sequence, chain.head().hash, team.team_id));
    return sql::Run(*impl.db, "INSERT INTO team_keys (team_id, generation, key) VALUES (?, 1, ?)",
                    team.team_id, first_key);
  });
  COFFRE_RETURN_IF_ERROR(stored);
  return t;
}

// CPU seconds of the calling thread, per part of the rotation, summed over rotations.
struct RotationCpu {
  double chain_verify = 0;
  double key_and_statement = 0;
  double fetch_peer = 0;  // RecordSigners and StoredPeer, over all key holders
  double queue = 0;       // QueuePeerMessage, over all key holders
  std::uint64_t holders = 0;
};

// One rotation as Client::RotateTeamKey runs it, without the relay (see the file comment).
Status RotateOnce(RotationTeam& t, RotationCpu& cpu) {
  Client::Impl& impl = *t.admin;
  const TeamRecord& team = t.team;
  double mark = ThreadCpuSeconds();
  const auto lap = [&mark](double& into) {
    const double now = ThreadCpuSeconds();
    into += now - mark;
    mark = now;
  };

  // RotateTeamKey -> RefreshChain: the stored chain, verified again from its genesis.
  COFFRE_ASSIGN_OR_RETURN(protocol::TeamChain chain, impl.StoredChain(team.team_id));
  lap(cpu.chain_verify);

  // RotateKeyLocked.
  const std::uint64_t previous = chain.key_generation();
  const std::uint64_t generation = previous + 1;
  const SecretBytes key = GenerateTeamKey();
  COFFRE_ASSIGN_OR_RETURN(const protocol::Hash commitment,
                          KeyCommitment(team.team_id, generation, key));
  wire::ChainStatementBody body;
  body.mutable_rotate_key()->set_generation(generation);
  body.mutable_rotate_key()->set_commitment(commitment.data(), commitment.size());
  COFFRE_RETURN_IF_ERROR(sql::Run(
      *impl.db, "INSERT OR REPLACE INTO team_keys (team_id, generation, key) VALUES (?, ?, ?)",
      team.team_id, generation, key));
  {
    // AppendStatement, but for the relay's append.
    COFFRE_ASSIGN_OR_RETURN(const wire::ChainStatement statement,
                            NextStatement(impl, team, chain, std::move(body)));
    protocol::TeamChain next = chain;
    COFFRE_RETURN_IF_ERROR(next.Apply(statement, impl.KeyLookup()));
    const protocol::ChainHead head = next.head();
    COFFRE_RETURN_IF_ERROR(sql::Run(
        *impl.db, "INSERT INTO chain_statements (team_id, sequence, statement) VALUES (?, ?, ?)",
        team.team_id, head.sequence, AsBytes(statement.SerializeAsString())));
    COFFRE_RETURN_IF_ERROR(
        sql::Run(*impl.db, "UPDATE teams SET head_sequence = ?, head_hash = ? WHERE team_id = ?",
                 head.sequence, head.hash, team.team_id));
    chain = std::move(next);
  }
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes old_key, impl.TeamKey(team.team_id, previous));
  COFFRE_ASSIGN_OR_RETURN(const Bytes history,
                          SealPreviousGeneration(key, old_key, team.team_id, previous, generation));
  wire::ItemManifestBody manifest;
  manifest.set_team_id(AsString(team.team_id));
  manifest.set_item_id(AsString(NewId()));
  manifest.set_version(1);
  manifest.set_parent_version(0);
  manifest.set_kind(std::string(kKindKeyHistory));
  manifest.set_key_generation(generation);
  manifest.set_encrypted_metadata(AsString(history));
  manifest.set_author_user_id(impl.user_id);
  manifest.set_author_device_id(impl.device_id);
  manifest.set_created_ms(NowMs());
  COFFRE_ASSIGN_OR_RETURN(auto signed_manifest,
                          protocol::SignItemManifest(manifest, *impl.device_key));
  wire::Request request;
  *request.mutable_put_item_version()->mutable_manifest() = std::move(signed_manifest);
  COFFRE_RETURN_IF_ERROR(impl.QueueRequest(request));

  // DeliverTeamKey(impl, team, chain, generation, KeyHolders(chain)).
  TeamKeyDelivery delivery;
  delivery.team_id = team.team_id;
  delivery.generation = generation;
  COFFRE_ASSIGN_OR_RETURN(delivery.key, impl.TeamKey(team.team_id, generation));
  delivery.chain_head = chain.head();
  delivery.team_name = team.name;
  COFFRE_ASSIGN_OR_RETURN(const SecretBytes plaintext, EncodePeerMessage(delivery));
  std::vector<std::string> holders;
  for (const auto& [member, role] : chain.members()) {
    if (role != wire::ROLE_AUDITOR) holders.push_back(member);
  }
  lap(cpu.key_and_statement);
  for (const std::string& member : holders) {
    const auto holder = t.holders.find(member);
    if (holder == t.holders.end()) return Fail(ErrorCode::kInternal, "bench: unknown member");
    // FetchPeer(member) but for its ListDevices round trip: the relay's answer recorded in
    // one transaction (RecordSigners runs the same RecordDeviceList, StoredPeer included),
    // giving the Peer that FetchPeer returns.
    COFFRE_RETURN_IF_ERROR(RecordSigners(impl, holder->second.device_lists));
    const Peer& peer = holder->second.peer;
    lap(cpu.fetch_peer);
    COFFRE_RETURN_IF_ERROR(impl.QueuePeerMessage(peer, plaintext.span()));
    lap(cpu.queue);
  }
  cpu.holders += holders.size();
  return Ok();
}

// What the rotations left in the outbox after row `after`.
struct Produced {
  std::uint64_t requests = 0;
  std::uint64_t envelopes = 0;
  std::uint64_t prekey_envelopes = 0;
  std::uint64_t envelope_bytes = 0;
  std::uint64_t items = 0;
};

Result<Produced> CountOutbox(Client::Impl& impl, std::int64_t after) {
  Produced produced;
  COFFRE_ASSIGN_OR_RETURN(
      storage::Statement rows,
      sql::Prepared(*impl.db, "SELECT request FROM outbox WHERE id > ?", after));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    const Bytes bytes = rows.ColumnBlob(0);
    wire::Request request;
    if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return Fail(ErrorCode::kCorrupt, "bench: an outbox request does not parse");
    }
    ++produced.requests;
    if (request.has_put_item_version()) ++produced.items;
    for (const auto& envelope : request.send_envelopes().envelopes()) {
      ++produced.envelopes;
      if (envelope.type() == kEnvelopePreKey) ++produced.prekey_envelopes;
      produced.envelope_bytes += envelope.ciphertext().size();
    }
  }
  return produced;
}

void BM_ClientTeamKeyRotation(benchmark::State& state) {
  const auto members = static_cast<int>(state.range(0));
  const auto setup_start = Clock::now();
  auto built = BuildRotationTeam(members);
  if (!built) return Skip(state, built.error());
  RotationTeam& t = **built;
  const double setup_seconds = Seconds(Clock::now() - setup_start);
  auto before = sql::QueryInt(*t.admin->db, "SELECT coalesce(max(id), 0) FROM outbox");
  if (!before || !*before) return state.SkipWithError("bench: cannot read the outbox");

  RotationCpu cpu;
  Clock::duration wall{};
  for (auto _ : state) {
    const auto start = Clock::now();
    if (Status rotated = RotateOnce(t, cpu); !rotated) return Skip(state, rotated.error());
    wall += Clock::now() - start;
  }
  auto produced = CountOutbox(*t.admin, **before);
  if (!produced) return Skip(state, produced.error());

  const auto rotations = static_cast<double>(state.iterations());
  const double holders = static_cast<double>(cpu.holders) / rotations;
  const double cpu_total = cpu.chain_verify + cpu.key_and_statement + cpu.fetch_peer + cpu.queue;
  state.counters["members"] = members;
  state.counters["key_holders"] = holders;
  state.counters["envelopes"] = static_cast<double>(produced->envelopes) / rotations;
  state.counters["prekey_envelopes"] = static_cast<double>(produced->prekey_envelopes) / rotations;
  state.counters["envelope_bytes"] = static_cast<double>(produced->envelope_bytes) / rotations;
  state.counters["outbox_requests"] = static_cast<double>(produced->requests) / rotations;
  state.counters["history_items"] = static_cast<double>(produced->items) / rotations;
  state.counters["chain_statements"] = 1;
  state.counters["cpu_s"] = cpu_total / rotations;
  state.counters["cpu_chain_verify_ms"] = 1e3 * cpu.chain_verify / rotations;
  state.counters["cpu_key_and_statement_ms"] = 1e3 * cpu.key_and_statement / rotations;
  state.counters["cpu_delivery_ms"] = 1e3 * (cpu.fetch_peer + cpu.queue) / rotations;
  state.counters["cpu_fetch_peer_us"] = 1e6 * cpu.fetch_peer / static_cast<double>(cpu.holders);
  state.counters["cpu_queue_us"] = 1e6 * cpu.queue / static_cast<double>(cpu.holders);
  state.counters["cpu_per_member_us"] = 1e6 * cpu_total / rotations / members;
  state.counters["wall_per_member_us"] = 1e6 * Seconds(wall) / rotations / members;
  state.counters["setup_s"] = setup_seconds;
}

BENCHMARK(BM_ClientTeamKeyRotation)
    ->ArgName("members")
    ->Arg(1000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ClientTeamKeyRotation)
    ->ArgName("members")
    ->Arg(10000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coffre::client
