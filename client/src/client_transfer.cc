// Document transfers (docs/protocol.md: "Document stream format", "Channel and document
// items", "Item manifests", "Blobs over HTTP").
//
// Put: the file is sealed in 64 KiB chunks on every core, a batch at a time so that memory
// stays constant whatever the size, into a ciphertext file staged in the profile folder and
// hashed as it is written. The upload row, the signed manifest in the outbox, the document
// row and seen_items are recorded in one transaction; SendUploads then sends the blob,
// resuming where the relay stopped after a cut, and only then does SendOutbox send the
// manifest (the relay refuses a manifest whose blob is not complete anyway).
//
// Get: the manifest (from the profile or the relay) is verified again; the blob comes in
// ranges of about 4 MiB, is hashed as it arrives, each range opened in parallel while the
// next one downloads, into a temporary file next to the output that is renamed onto it only
// once every chunk opened and the hash matched. Whatever fails, the temporary file goes.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/base/without_exceptions.h"
#include "client_impl.h"
#include "coffre/crypto/document_stream.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// The one error of content that does not open or does not match its signed manifest:
// tampered, truncated, reordered or swapped chunks, a wrong hash, a short blob, a wrapped
// key or metadata that does not open. Which check failed is not said (no oracle).
constexpr const char* kDocumentAuthFailure = "document failed authentication";
constexpr const char* kOutOfMemory = "not enough memory for the document transfer";

// Staged ciphertext lives in <profile>/staging/<blob id hex>.
constexpr const char* kStagingFolder = "staging";

constexpr std::uint64_t kChunk = crypto::kStreamChunkSize;
constexpr std::uint64_t kSealedChunk = crypto::kStreamSealedChunkSize;
constexpr std::uint64_t kHeader = crypto::kStreamHeaderSize;
// Chunks sealed or opened per batch: 4 MiB of plaintext. A put holds one plaintext batch and
// two ciphertext batches (one sealed while the other is hashed and written), a get one
// plaintext batch and two ciphertext ranges (one opened while the next downloads): about
// 12 MiB in all, for a 1 MiB document as for a 1 GiB one.
constexpr std::uint64_t kChunksPerBatch = 64;

// Transfers are bounded in time, but a slow field link must still get through: 15 s plus
// what 32 KiB/s needs for the piece (2 min 26 s for 4 MiB).
std::chrono::milliseconds TransferTimeout(std::uint64_t bytes) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(15000 + bytes / 32));
}

unsigned Cores() {
  const unsigned cores = std::thread::hardware_concurrency();
  return std::clamp(cores, 1u, crypto::kMaxStreamThreads);
}

// Byte offset of sealed chunk `index` in a stream.
std::uint64_t ChunkOffset(std::uint64_t index) { return kHeader + index * kSealedChunk; }

// The plaintext bytes whose sealed chunks lie wholly within the first `stream_bytes` bytes
// of the stream (`blob_size` bytes) of a `plaintext_size`-byte document: what a count of
// blob bytes means to the person whose file it is. Never decreases as `stream_bytes` grows.
std::uint64_t PlaintextWithin(std::uint64_t stream_bytes, std::uint64_t plaintext_size,
                              std::uint64_t blob_size) {
  if (stream_bytes >= blob_size) return plaintext_size;
  if (stream_bytes <= kHeader) return 0;
  return std::min(plaintext_size, (stream_bytes - kHeader) / kSealedChunk * kChunk);
}

// A file descriptor with one owner, closed at scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  ~FileDescriptor() { Reset(); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now and says whether the kernel accepted it (a written file's last chance to
  // report a deferred write error).
  bool Close() {
    const int fd = std::exchange(fd_, -1);
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  void Reset() {
    if (fd_ >= 0) (void)::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

// Removes a file at scope exit unless Keep() was called: the staged ciphertext of a put
// that failed, the temporary plaintext of a get that failed. No partial file stays behind.
class RemoveUnlessKept {
 public:
  explicit RemoveUnlessKept(std::filesystem::path path) : path_(std::move(path)) {}
  ~RemoveUnlessKept() {
    if (!kept_) {
      std::error_code ec;
      std::filesystem::remove(path_, ec);
    }
  }
  RemoveUnlessKept(const RemoveUnlessKept&) = delete;
  RemoveUnlessKept& operator=(const RemoveUnlessKept&) = delete;
  void Keep() { kept_ = true; }

 private:
  std::filesystem::path path_;
  bool kept_ = false;
};

// Fills `out` from `offset` of `fd`; a file shorter than that is `short_file`.
Status ReadExactly(int fd, std::uint64_t offset, std::span<std::uint8_t> out,
                   const Error& short_file) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorCode::kIo, "cannot read the file");
    if (n == 0) return short_file;
    done += static_cast<std::size_t>(n);
  }
  return Ok();
}

Status WriteAll(int fd, std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail(ErrorCode::kIo, "cannot write the file (disk full?)");
    done += static_cast<std::size_t>(n);
  }
  return Ok();
}

// Makes a rename or a new file in `folder` durable.
Status SyncFolder(const std::filesystem::path& folder) {
  FileDescriptor fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0)
    return Fail(ErrorCode::kIo, "cannot sync a folder to disk");
  return Ok();
}

// BLAKE2b-256 (unkeyed) of a blob's ciphertext, the manifest's blob_hash
// (ItemManifestBody.blob_hash), computed as the bytes go by.
class BlobHasher {
 public:
  BlobHasher() {
    if (sodium_init() < 0) std::abort();  // libsodium cannot start: nothing here can work
    crypto_generichash_init(&state_, nullptr, 0, protocol::kHashSize);
  }
  void Update(std::span<const std::uint8_t> bytes) {
    crypto_generichash_update(&state_, bytes.data(), bytes.size());
  }
  protocol::Hash Final() {
    protocol::Hash hash{};
    crypto_generichash_final(&state_, hash.data(), hash.size());
    return hash;
  }

 private:
  crypto_generichash_state state_{};
};

// Runs work(i) for every i in [0, count) on up to `threads` threads, one contiguous slice
// each, started by the constructor so that the calling thread is free meanwhile (to hash
// and write the previous batch, or download the next range). Wait() joins them and returns
// the failure of the lowest failing slice; once a slice fails the others stop early. A
// slice whose thread cannot be started runs at once on the calling thread. The destructor
// joins too, so no thread outlives the buffers it works on.
class ParallelChunks {
 public:
  ParallelChunks(std::uint64_t count, unsigned threads, std::function<Status(std::uint64_t)> work)
      : work_(std::move(work)),
        count_(count),
        slices_(std::max<std::uint64_t>(1, std::min<std::uint64_t>({count, threads, kMaxSlices}))) {
    std::uint64_t started = 0;
    try {
      pool_.reserve(static_cast<std::size_t>(slices_));
      for (; started < slices_; ++started)
        pool_.emplace_back([this, started] { RunSlice(started); });
    } catch (...) {
      // No memory or no more threads: the slices not started run here.
    }
    for (std::uint64_t slice = started; slice < slices_; ++slice) RunSlice(slice);
  }
  ~ParallelChunks() { Join(); }
  ParallelChunks(const ParallelChunks&) = delete;
  ParallelChunks& operator=(const ParallelChunks&) = delete;

  Status Wait() {
    Join();
    for (std::uint64_t slice = 0; slice < slices_; ++slice) {
      if (!results_[slice]) return results_[slice];
    }
    return Ok();
  }

 private:
  static constexpr std::uint64_t kMaxSlices = crypto::kMaxStreamThreads;

  void RunSlice(std::uint64_t slice) {
    const std::uint64_t begin = count_ * slice / slices_;
    const std::uint64_t end = count_ * (slice + 1) / slices_;
    for (std::uint64_t i = begin; i < end; ++i) {
      if (failed_.load(std::memory_order_relaxed)) return;
      Status status = work_(i);
      if (!status) {
        results_[slice] = status;
        failed_.store(true, std::memory_order_relaxed);
        return;
      }
    }
  }
  void Join() {
    for (auto& thread : pool_) {
      if (thread.joinable()) thread.join();
    }
  }

  std::function<Status(std::uint64_t)> work_;
  const std::uint64_t count_;
  const std::uint64_t slices_;
  std::array<Status, kMaxSlices> results_{};
  std::atomic<bool> failed_{false};
  std::vector<std::thread> pool_;
};

// A common media type for the file's extension, else application/octet-stream. Only a
// label for the reader: nothing here looks inside the file.
std::string GuessMediaType(const std::filesystem::path& file) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {"7z", "application/x-7z-compressed"},
      {"csv", "text/csv"},
      {"doc", "application/msword"},
      {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"dwg", "image/vnd.dwg"},
      {"dxf", "image/vnd.dxf"},
      {"gif", "image/gif"},
      {"gz", "application/gzip"},
      {"htm", "text/html"},
      {"html", "text/html"},
      {"jpeg", "image/jpeg"},
      {"jpg", "image/jpeg"},
      {"json", "application/json"},
      {"kml", "application/vnd.google-earth.kml+xml"},
      {"md", "text/markdown"},
      {"mp3", "audio/mpeg"},
      {"mp4", "video/mp4"},
      {"odp", "application/vnd.oasis.opendocument.presentation"},
      {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
      {"odt", "application/vnd.oasis.opendocument.text"},
      {"pdf", "application/pdf"},
      {"png", "image/png"},
      {"ppt", "application/vnd.ms-powerpoint"},
      {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
      {"svg", "image/svg+xml"},
      {"tar", "application/x-tar"},
      {"tif", "image/tiff"},
      {"tiff", "image/tiff"},
      {"txt", "text/plain"},
      {"webp", "image/webp"},
      {"xls", "application/vnd.ms-excel"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"xml", "application/xml"},
      {"zip", "application/zip"},
  };
  std::string extension = file.extension().string();
  if (!extension.empty()) extension.erase(0, 1);  // the dot
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [known, type] : kTypes) {
    if (extension == known) return std::string(type);
  }
  return "application/octet-stream";
}

// Checks a document manifest, wherever it came from (the profile or the relay), before
// anything in it is used: the author device's signature (its certificate fetched once if
// this profile has not met it), the team, the document, the version expected, the kind,
// an author the team chain admitted, and a blob.
Result<wire::ItemManifestBody> VerifyDocumentManifest(Client::Impl& impl, const TeamRecord& team,
                                                      const ItemId& document_id,
                                                      std::uint64_t version,
                                                      const wire::ItemManifest& manifest) {
  auto verified = protocol::VerifyItemManifest(manifest, impl.KeyLookup());
  if (!verified) {
    auto parsed = protocol::ParseItemManifestBody(manifest);
    if (parsed) {
      auto fetched = impl.FetchPeer(parsed->author_user_id());
      if (!fetched && fetched.error().code() == ErrorCode::kIo) return fetched.error();
      if (fetched) verified = protocol::VerifyItemManifest(manifest, impl.KeyLookup());
    }
  }
  if (!verified) {
    return Fail(ErrorCode::kAuthenticationFailed,
                "the document's manifest has no valid signature of a known device");
  }
  wire::ItemManifestBody body = std::move(verified->body);
  if (!std::ranges::equal(AsBytes(body.team_id()), team.team_id) ||
      !std::ranges::equal(AsBytes(body.item_id()), document_id)) {
    return Fail(ErrorCode::kAuthenticationFailed, "the manifest given is another document's");
  }
  if (body.kind() != kKindDocument)
    return Fail(ErrorCode::kAuthenticationFailed, "the item given is not a document");
  if (body.version() != version) {
    return Fail(ErrorCode::kAuthenticationFailed,
                "the manifest given is of another version than the one asked for");
  }
  COFFRE_ASSIGN_OR_RETURN(const bool member, impl.WasMember(team, body.author_user_id()));
  if (!member) {
    return Fail(ErrorCode::kAuthenticationFailed,
                "the document is not signed by a member of the team");
  }
  if (body.blob_id().size() != protocol::kIdSize ||
      body.blob_hash().size() != protocol::kHashSize || body.blob_size() == 0) {
    return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
  }
  return body;
}

// The manifest of `version` of the document as this profile recorded it, or of its newest
// version when `version` is nullopt; nullopt if the profile has none.
Result<std::optional<wire::ItemManifest>> StoredManifest(Client::Impl& impl, const TeamRecord& team,
                                                         const ItemId& document_id,
                                                         std::optional<std::uint64_t> version) {
  COFFRE_ASSIGN_OR_RETURN(auto row,
                          sql::Prepared(*impl.db,
                                        "SELECT manifest FROM documents WHERE team_id = ? "
                                        "AND document_id = ? AND (? IS NULL OR version = ?) "
                                        "ORDER BY version DESC LIMIT 1",
                                        team.team_id, document_id, version, version));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return std::optional<wire::ItemManifest>();
  const auto bytes = row.ColumnBlob(0);
  wire::ItemManifest manifest;
  if (!manifest.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Fail(ErrorCode::kCorrupt, "the profile's copy of the document manifest is damaged");
  }
  return std::optional<wire::ItemManifest>(std::move(manifest));
}

// The manifest the relay holds for `version` (0: its current one), nullopt when it has
// none. Untrusted until VerifyDocumentManifest.
Result<std::optional<wire::ItemManifest>> RelayManifest(Client::Impl& impl, const TeamRecord& team,
                                                        const ItemId& document_id,
                                                        std::uint64_t version) {
  wire::Request request;
  request.mutable_get_item()->set_team_id(AsString(team.team_id));
  request.mutable_get_item()->set_item_id(AsString(document_id));
  request.mutable_get_item()->set_version(version);
  auto response = impl.Call(std::move(request));
  if (!response) {
    if (response.error().code() == ErrorCode::kNotFound) return std::optional<wire::ItemManifest>();
    return response.error();
  }
  if (!response->has_item())
    return Fail(ErrorCode::kCorrupt, "the relay answered with something else than an item");
  return std::optional<wire::ItemManifest>(response->item().manifest());
}

// The version a manifest claims, before it is verified (to pick the newer of two), or 0.
std::uint64_t ClaimedVersion(const std::optional<wire::ItemManifest>& manifest) {
  if (!manifest) return 0;
  auto body = protocol::ParseItemManifestBody(*manifest);
  return body ? body->version() : 0;
}

// --- put ---------------------------------------------------------------------------------

// Seals `plaintext_size` bytes of `source` into `staged` (header, then every chunk), on
// every core a batch at a time, and returns the BLAKE2b-256 of the stream as written.
Result<protocol::Hash> SealIntoStaging(int source, std::uint64_t plaintext_size,
                                       const crypto::DocumentStreamCipher& cipher, int staged) {
  BlobHasher hasher;
  hasher.Update(cipher.header());
  COFFRE_RETURN_IF_ERROR(WriteAll(staged, cipher.header()));
  const std::uint64_t chunk_count = crypto::StreamChunkCount(plaintext_size);
  const std::uint64_t batch_chunks = std::min(kChunksPerBatch, chunk_count);
  // Plaintext is wiped when the buffer goes (SecretBytes).
  crypto::SecretBytes plain(
      static_cast<std::size_t>(std::min(batch_chunks * kChunk, plaintext_size)));
  std::array<std::vector<std::uint8_t>, 2> sealed;
  for (auto& buffer : sealed) buffer.resize(static_cast<std::size_t>(batch_chunks * kSealedChunk));
  std::size_t previous_size = 0;  // bytes of the previous batch waiting to be hashed and written
  int current = 0;
  const Error changed(ErrorCode::kInvalidArgument,
                      "the file changed while it was read; put it again");
  for (std::uint64_t first = 0; first < chunk_count; first += kChunksPerBatch) {
    const std::uint64_t count = std::min(kChunksPerBatch, chunk_count - first);
    const std::uint64_t plain_offset = first * kChunk;
    const auto plain_bytes =
        static_cast<std::size_t>(std::min(count * kChunk, plaintext_size - plain_offset));
    const std::span<std::uint8_t> input = plain.span().first(plain_bytes);
    COFFRE_RETURN_IF_ERROR(ReadExactly(source, plain_offset, input, changed));
    std::vector<std::uint8_t>& output = sealed[static_cast<std::size_t>(current)];
    ParallelChunks workers(count, Cores(), [&](std::uint64_t i) -> Status {
      const std::uint64_t index = first + i;
      const auto size =
          static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, plain_bytes - i * kChunk));
      return cipher.SealChunk(index, index + 1 == chunk_count,
                              input.subspan(static_cast<std::size_t>(i * kChunk), size),
                              std::span(output).subspan(static_cast<std::size_t>(i * kSealedChunk),
                                                        size + crypto::kStreamTagSize));
    });
    // Meanwhile, the previous batch goes to the hash and the disk.
    Status written = Ok();
    if (previous_size > 0) {
      const std::span<const std::uint8_t> previous =
          std::span(sealed[static_cast<std::size_t>(1 - current)]).first(previous_size);
      hasher.Update(previous);
      written = WriteAll(staged, previous);
    }
    const Status sealed_status = workers.Wait();
    if (!sealed_status) return sealed_status.error();
    if (!written) return written.error();
    previous_size = plain_bytes + static_cast<std::size_t>(count) * crypto::kStreamTagSize;
    current = 1 - current;
  }
  const std::span<const std::uint8_t> last =
      std::span(sealed[static_cast<std::size_t>(1 - current)]).first(previous_size);
  hasher.Update(last);
  COFFRE_RETURN_IF_ERROR(WriteAll(staged, last));
  return hasher.Final();
}

// The newest version of the document known here and at the relay (when it answers), which
// a new version goes on top of. The relay's answer is verified like any manifest.
Result<std::uint64_t> CurrentVersion(Client::Impl& impl, const TeamRecord& team,
                                     const ItemId& document_id) {
  COFFRE_ASSIGN_OR_RETURN(auto stored, StoredManifest(impl, team, document_id, std::nullopt));
  std::uint64_t current = ClaimedVersion(stored);
  auto fetched = RelayManifest(impl, team, document_id, 0);
  if (fetched && *fetched) {
    const std::uint64_t claimed = ClaimedVersion(*fetched);
    COFFRE_ASSIGN_OR_RETURN(auto body,
                            VerifyDocumentManifest(impl, team, document_id, claimed, **fetched));
    current = std::max(current, body.version());
  } else if (!fetched && fetched.error().code() != ErrorCode::kIo) {
    return fetched.error();  // offline (kIo) is fine: the profile's view is used
  }
  if (current == 0)
    return Fail(ErrorCode::kNotFound, "no such document in the team: run `coffre sync`?");
  return current;
}

}  // namespace

Status ForgetDocumentVersion(Client::Impl& impl, std::span<const std::uint8_t> team_id,
                             std::span<const std::uint8_t> document_id, std::uint64_t version) {
  COFFRE_RETURN_IF_ERROR(sql::Run(
      *impl.db, "DELETE FROM documents WHERE team_id = ? AND document_id = ? AND version = ?",
      team_id, document_id, version));
  return sql::Run(*impl.db,
                  "DELETE FROM seen_items WHERE team_id = ? AND item_id = ? AND version = ?",
                  team_id, document_id, version);
}

namespace {

Result<DocumentView> PutDocumentImpl(Client::Impl& impl, std::string_view team_name,
                                     const std::filesystem::path& file,
                                     std::optional<std::string_view> name,
                                     std::optional<std::string_view> replace,
                                     const ProgressFn& progress) {
  FileDescriptor source(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!source.valid()) return Fail(ErrorCode::kIo, "cannot open the file to upload");
  struct stat before {};
  if (::fstat(source.get(), &before) != 0 || !S_ISREG(before.st_mode)) {
    return Fail(ErrorCode::kInvalidArgument, "only a regular file can be uploaded");
  }
  const auto plaintext_size = static_cast<std::uint64_t>(before.st_size);
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t blob_size, crypto::CiphertextSize(plaintext_size));
  if (blob_size > protocol::kMaxBlobSize) {
    return Fail(ErrorCode::kInvalidArgument, "a document is limited to 4 GiB");
  }
  DocumentInfo info;
  info.name = name ? std::string(*name) : file.filename().string();
  info.media_type = GuessMediaType(file);
  info.size = plaintext_size;

  COFFRE_ASSIGN_OR_RETURN(WriteContext write, impl.PrepareWrite(team_name));
  ItemId document_id{};
  std::uint64_t version = 1;
  if (replace) {
    COFFRE_ASSIGN_OR_RETURN(auto id_bytes, ParseHex(*replace, protocol::kIdSize));
    COFFRE_ASSIGN_OR_RETURN(document_id, IdFrom(id_bytes));
    COFFRE_ASSIGN_OR_RETURN(const std::uint64_t current,
                            CurrentVersion(impl, write.team, document_id));
    version = current + 1;
  } else {
    document_id = NewId();
  }

  // A fresh key for this version, wrapped and its metadata sealed under keys derived from
  // the team key, all bound to (team, document, version, generation).
  ItemContext context;
  context.team_id = write.team.team_id;
  context.item_id = document_id;
  context.version = version;
  context.generation = write.generation;
  const crypto::SecretBytes document_key = GenerateDocumentKey();
  COFFRE_ASSIGN_OR_RETURN(const auto wrap_key,
                          DeriveDocumentWrapKey(write.key, write.team.team_id, write.generation));
  COFFRE_ASSIGN_OR_RETURN(const auto metadata_key,
                          DeriveMetadataKey(write.key, write.team.team_id, write.generation));
  COFFRE_ASSIGN_OR_RETURN(const auto wrapped_key, WrapDocumentKey(wrap_key, context, document_key));
  COFFRE_ASSIGN_OR_RETURN(const auto sealed_info, SealDocumentInfo(metadata_key, context, info));
  COFFRE_ASSIGN_OR_RETURN(const auto associated_data, DocumentStreamAssociatedData(context));
  COFFRE_ASSIGN_OR_RETURN(const auto cipher,
                          crypto::DocumentStreamCipher::Create(document_key, associated_data));

  // The ciphertext, staged in the profile folder (owner only) until the relay has it all.
  const std::filesystem::path staging = impl.dir / kStagingFolder;
  std::error_code ec;
  std::filesystem::create_directories(staging, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create the profile's staging folder");
  (void)::chmod(staging.c_str(), 0700);
  const ItemId blob_id = NewId();
  std::string staged_name = kStagingFolder;
  staged_name += '/';
  staged_name += Hex(blob_id);
  const std::filesystem::path staged_path = impl.dir / staged_name;
  FileDescriptor staged(::open(staged_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!staged.valid())
    return Fail(ErrorCode::kIo, "cannot create the staged copy in the profile folder");
  RemoveUnlessKept staged_guard(staged_path);
  // What the person sees is the file's bytes that reached the relay, out of the file's size
  // (the size the command prints), never going back: sealing shows as 0, and a resumed
  // upload starts where the relay stopped.
  std::uint64_t reported = 0;
  auto report_progress = [&](std::uint64_t done) {
    reported = std::max(reported, std::min(done, plaintext_size));
    if (progress) progress(reported, plaintext_size);
  };
  report_progress(0);
  COFFRE_ASSIGN_OR_RETURN(const protocol::Hash blob_hash,
                          SealIntoStaging(source.get(), plaintext_size, cipher, staged.get()));
  if (::fsync(staged.get()) != 0 || !staged.Close()) {
    return Fail(ErrorCode::kIo, "cannot write the staged copy to disk (disk full?)");
  }
  COFFRE_RETURN_IF_ERROR(SyncFolder(staging));
  // A file that grew or shrank while it was read is not what the person chose to send.
  struct stat after {};
  if (::fstat(source.get(), &after) != 0 || after.st_size != before.st_size ||
      after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
    return Fail(ErrorCode::kInvalidArgument, "the file changed while it was read; put it again");
  }

  wire::ItemManifestBody body;
  body.set_team_id(AsString(write.team.team_id));
  body.set_item_id(AsString(document_id));
  body.set_version(version);
  body.set_parent_version(version - 1);
  body.set_kind(std::string(kKindDocument));
  body.set_blob_id(AsString(blob_id));
  body.set_blob_size(blob_size);
  body.set_blob_hash(AsString(blob_hash));
  body.set_key_generation(write.generation);
  body.set_wrapped_key(AsString(wrapped_key));
  body.set_encrypted_metadata(AsString(sealed_info));
  body.set_created_ms(NowMs());
  body.set_author_user_id(impl.user_id);
  body.set_author_device_id(impl.device_id);
  COFFRE_ASSIGN_OR_RETURN(const wire::ItemManifest manifest,
                          protocol::SignItemManifest(body, *impl.device_key));
  wire::Request request;
  *request.mutable_put_item_version()->mutable_manifest() = manifest;
  const std::string manifest_bytes = manifest.SerializeAsString();

  // The upload, its manifest in the outbox and the document row: all or nothing.
  std::int64_t outbox_id = 0;
  const Status transaction_status = impl.signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(impl.QueueRequest(request));
    COFFRE_ASSIGN_OR_RETURN(const auto queued,
                            sql::QueryInt(*impl.db, "SELECT last_insert_rowid()"));
    if (!queued)
      return Fail(ErrorCode::kDatabase, "the outbox entry of the document was not recorded");
    outbox_id = *queued;
    COFFRE_RETURN_IF_ERROR(
        sql::Run(*impl.db,
                 "INSERT INTO uploads (team_id, blob_id, staged_path, size, state, item_id, "
                 "version, outbox_id, created_ms) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
                 write.team.team_id, blob_id, staged_name, blob_size, document_id, version,
                 outbox_id, body.created_ms()));
    COFFRE_RETURN_IF_ERROR(
        sql::Run(*impl.db,
                 "INSERT INTO documents (team_id, document_id, version, name, size, author, "
                 "created_ms, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 write.team.team_id, document_id, version, info.name, plaintext_size, impl.user_id,
                 body.created_ms(), AsBytes(manifest_bytes)));
    return sql::Run(*impl.db,
                    "INSERT OR IGNORE INTO seen_items (team_id, item_id, version) VALUES (?, ?, ?)",
                    write.team.team_id, document_id, version);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  staged_guard.Keep();

  DocumentView view;
  view.document_id = Hex(document_id);
  view.name = info.name;
  view.version = version;
  view.size = plaintext_size;
  view.author = impl.user_id;
  view.created_ms = body.created_ms();

  // Best effort from here: offline, the document waits in the profile for `coffre sync`.
  const Status uploaded =
      impl.SendUploads(nullptr, &blob_id, [&](std::uint64_t done, std::uint64_t) {
        report_progress(PlaintextWithin(done, plaintext_size, blob_size));
      });
  if (uploaded) report_progress(plaintext_size);  // the relay holds the whole blob
  COFFRE_ASSIGN_OR_RETURN(
      const auto recorded,
      sql::QueryInt(*impl.db,
                    "SELECT 1 FROM documents WHERE team_id = ? AND document_id = ? AND version = ?",
                    write.team.team_id, document_id, version));
  if (!recorded) {
    // The relay refused this upload for good; SendUploads undid the transaction's work.
    if (!uploaded) return uploaded.error();
    return Fail(ErrorCode::kInternal, "the document was dropped before it reached the relay");
  }
  if (!uploaded) return view;
  (void)impl.SendOutbox(nullptr);
  COFFRE_ASSIGN_OR_RETURN(const auto still_queued,
                          sql::QueryInt(*impl.db, "SELECT 1 FROM outbox WHERE id = ?", outbox_id));
  if (still_queued) return view;  // the relay went away meanwhile: sent at the next sync
  // The manifest left the outbox. SendOutbox keeps the document row only when the relay
  // holds this very manifest; when it refused it, or holds another writer's version under
  // this number, the row is gone.
  COFFRE_ASSIGN_OR_RETURN(
      const auto kept,
      sql::QueryInt(*impl.db,
                    "SELECT 1 FROM documents WHERE team_id = ? AND document_id = ? AND version = ?",
                    write.team.team_id, document_id, version));
  if (kept) return view;
  if (version > 1) {
    return Fail(ErrorCode::kConflict,
                "someone else put a new version of this document first: run `coffre sync` and put "
                "it again");
  }
  return Fail(ErrorCode::kInvalidArgument, "the relay refused the new document");
}

// --- uploads -----------------------------------------------------------------------------

struct UploadRow {
  std::int64_t id = 0;
  ItemId team_id{};
  ItemId blob_id{};
  std::string staged_path;
  std::uint64_t size = 0;
  std::int64_t state = 0;
  ItemId item_id{};
  std::uint64_t version = 0;
  std::int64_t outbox_id = 0;
};

constexpr const char* kRelayBusy = "the relay is busy; the document upload waits for the next sync";

// Pauses when the relay slows an upload down: from a tenth of a second (a 4 MiB piece
// over a rate of 40 MiB/s), doubling up to 2 s, and at most 30 refusals in a row (about
// 50 s) before the upload waits for the next sync.
constexpr std::chrono::milliseconds kFirstPause{100};
constexpr std::chrono::milliseconds kLongestPause{2000};
constexpr int kMaxPacedPieces = 30;

// Sends one upload to its end. nullopt: the relay holds the whole blob. An Error: the relay
// refused it for good (or its staged file is gone), so the caller drops it. A failure:
// stop for now (transport, busy relay), the row stays for the next attempt.
Result<std::optional<Error>> SendOneUpload(Client::Impl& impl, UploadRow& upload,
                                           const ProgressFn& progress) {
  using Outcome = std::optional<Error>;
  FileDescriptor staged(::open((impl.dir / upload.staged_path).c_str(), O_RDONLY | O_CLOEXEC));
  struct stat status {};
  if (!staged.valid() || ::fstat(staged.get(), &status) != 0 ||
      static_cast<std::uint64_t>(status.st_size) != upload.size) {
    return Outcome(Error(ErrorCode::kIo,
                         "the staged copy of a document was lost before it reached the relay"));
  }
  // A few rounds at most: a relay that forgot the slot gets it again, an offset that moved
  // under us is asked again.
  for (int round = 0; round < 4; ++round) {
    if (upload.state == 0) {
      wire::Request create;
      create.mutable_create_blob()->set_team_id(AsString(upload.team_id));
      create.mutable_create_blob()->set_blob_id(AsString(upload.blob_id));
      create.mutable_create_blob()->set_size(upload.size);
      COFFRE_ASSIGN_OR_RETURN(auto created, impl.RawCall(create));
      // ALREADY_EXISTS: a retry after a reply that was lost; the slot is ours.
      if (created.has_error() && created.error().code() != wire::ERROR_CODE_ALREADY_EXISTS) {
        if (!IsPermanentRefusal(created.error().code())) return Fail(ErrorCode::kIo, kRelayBusy);
        return Outcome(ErrorFromWire(created.error().code()));
      }
      COFFRE_RETURN_IF_ERROR(
          sql::Run(*impl.db, "UPDATE uploads SET state = 1 WHERE id = ?", upload.id));
      upload.state = 1;
    }
    wire::Request ask;
    ask.mutable_blob_status()->set_team_id(AsString(upload.team_id));
    ask.mutable_blob_status()->set_blob_id(AsString(upload.blob_id));
    COFFRE_ASSIGN_OR_RETURN(auto answer, impl.RawCall(ask));
    if (answer.has_error()) {
      const wire::ErrorCode code = answer.error().code();
      if (code == wire::ERROR_CODE_NOT_FOUND) {
        COFFRE_RETURN_IF_ERROR(
            sql::Run(*impl.db, "UPDATE uploads SET state = 0 WHERE id = ?", upload.id));
        upload.state = 0;
        continue;
      }
      if (!IsPermanentRefusal(code)) return Fail(ErrorCode::kIo, kRelayBusy);
      return Outcome(ErrorFromWire(code));
    }
    if (!answer.has_blob() || answer.blob().size() != upload.size ||
        answer.blob().received() > upload.size) {
      return Outcome(Error(ErrorCode::kCorrupt,
                           "the relay holds another blob under the id of a document upload"));
    }
    if (answer.blob().complete()) return Outcome();
    std::uint64_t offset = answer.blob().received();
    if (progress) progress(offset, upload.size);
    std::vector<std::uint8_t> piece(
        static_cast<std::size_t>(std::min<std::uint64_t>(protocol::kMaxBlobChunk, upload.size)));
    bool offset_moved = false;
    std::chrono::milliseconds pause = kFirstPause;
    int paced = 0;  // refusals in a row
    while (offset < upload.size) {
      const auto length = static_cast<std::size_t>(
          std::min<std::uint64_t>(protocol::kMaxBlobChunk, upload.size - offset));
      const std::span<std::uint8_t> bytes = std::span(piece).first(length);
      const Status read =
          ReadExactly(staged.get(), offset, bytes,
                      Error(ErrorCode::kIo, "the staged copy of a document was cut short"));
      if (!read) return Outcome(read.error());
      COFFRE_ASSIGN_OR_RETURN(RelayConnection * relay, impl.Relay());
      const Status put = relay->PutBlobChunk(upload.team_id, upload.blob_id, offset, bytes,
                                             TransferTimeout(length));
      if (!put) {
        if (put.error().code() == ErrorCode::kConflict) {  // the relay holds another count
          offset_moved = true;
          break;
        }
        // The relay paces each device's uploads (429 "upload rate exceeded"; a quota shows
        // at CreateBlob, and no piece is over the size limit): wait, then send it again.
        if (put.error().code() == ErrorCode::kResourceExhausted && paced < kMaxPacedPieces) {
          ++paced;
          std::this_thread::sleep_for(pause);
          pause = std::min(2 * pause, kLongestPause);
          continue;
        }
        // Whatever it was (cut, timeout, expired session, busy), the next sync starts on a
        // fresh connection and asks BlobStatus again; a refusal for good shows there.
        impl.connection.reset();
        return put.error();
      }
      offset += length;
      paced = 0;
      pause = kFirstPause;
      if (progress) progress(offset, upload.size);
    }
    if (!offset_moved) return Outcome();
  }
  return Fail(ErrorCode::kIo, kRelayBusy);
}

// Drops an upload the relay will never take, with everything that waited on it.
Status DropUpload(Client::Impl& impl, const UploadRow& upload) {
  const Status transaction_status = impl.signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM uploads WHERE id = ?", upload.id));
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM outbox WHERE id = ?", upload.outbox_id));
    return ForgetDocumentVersion(impl, upload.team_id, upload.item_id, upload.version);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  std::error_code ec;
  std::filesystem::remove(impl.dir / upload.staged_path, ec);
  return Ok();
}

// The oldest upload after row `after`, read whole so that no statement stays open while it
// is sent; nullopt when there is none.
Result<std::optional<UploadRow>> NextUpload(Client::Impl& impl, std::int64_t after) {
  COFFRE_ASSIGN_OR_RETURN(auto row,
                          sql::Prepared(*impl.db,
                                        "SELECT id, team_id, blob_id, staged_path, size, state, "
                                        "item_id, version, outbox_id FROM uploads WHERE id > ? "
                                        "ORDER BY id LIMIT 1",
                                        after));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return std::optional<UploadRow>();
  UploadRow upload;
  upload.id = row.ColumnInt64(0);
  COFFRE_ASSIGN_OR_RETURN(upload.team_id, IdFrom(row.ColumnBlob(1)));
  COFFRE_ASSIGN_OR_RETURN(upload.blob_id, IdFrom(row.ColumnBlob(2)));
  upload.staged_path = row.ColumnText(3);
  upload.size = sql::AsU64(row.ColumnInt64(4));
  upload.state = row.ColumnInt64(5);
  COFFRE_ASSIGN_OR_RETURN(upload.item_id, IdFrom(row.ColumnBlob(6)));
  upload.version = sql::AsU64(row.ColumnInt64(7));
  upload.outbox_id = row.ColumnInt64(8);
  return std::optional<UploadRow>(std::move(upload));
}

Status SendUploadsImpl(Client::Impl& impl, SyncReport* report, const ItemId* focus,
                       const ProgressFn& progress) {
  std::int64_t after = 0;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UploadRow> next, NextUpload(impl, after));
    if (!next) return Ok();
    UploadRow& upload = *next;
    after = upload.id;
    const bool focused = focus != nullptr && *focus == upload.blob_id;
    COFFRE_ASSIGN_OR_RETURN(const std::optional<Error> refused,
                            SendOneUpload(impl, upload, focused ? progress : ProgressFn()));
    if (refused) {
      COFFRE_RETURN_IF_ERROR(DropUpload(impl, upload));
      if (focused) return *refused;
      std::string warning = "a document upload was refused and dropped: ";
      warning += refused->context();
      Warn(report, std::move(warning));
      continue;
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM uploads WHERE id = ?", upload.id));
    std::error_code ec;
    std::filesystem::remove(impl.dir / upload.staged_path, ec);
  }
}

// --- get ---------------------------------------------------------------------------------

// Downloads the blob of a verified manifest, `kChunksPerBatch` chunks per range, hashing
// each range as it arrives and opening its chunks in parallel while the next range
// downloads, and writes the plaintext to `out`. Ok() only when every chunk opened and the
// hash of the whole stream is the manifest's.
Status DownloadInto(Client::Impl& impl, const TeamRecord& team, const wire::ItemManifestBody& body,
                    const crypto::SecretBytes& document_key,
                    std::span<const std::uint8_t> associated_data, std::uint64_t plaintext_size,
                    int out, const ProgressFn& progress) {
  const std::uint64_t blob_size = body.blob_size();
  const std::uint64_t chunk_count = crypto::StreamChunkCount(plaintext_size);
  const std::span<const std::uint8_t> blob_id = AsBytes(body.blob_id());
  auto fetch = [&](std::uint64_t first_chunk) -> Result<Bytes> {
    const std::uint64_t end_chunk = std::min(first_chunk + kChunksPerBatch, chunk_count);
    const std::uint64_t begin = first_chunk == 0 ? 0 : ChunkOffset(first_chunk);
    const std::uint64_t end = end_chunk == chunk_count ? blob_size : ChunkOffset(end_chunk);
    COFFRE_ASSIGN_OR_RETURN(RelayConnection * relay, impl.Relay());
    auto bytes =
        relay->GetBlobRange(team.team_id, blob_id, begin, end - 1, TransferTimeout(end - begin));
    if (!bytes) {
      if (bytes.error().code() == ErrorCode::kIo) impl.connection.reset();
      return bytes.error();
    }
    // A relay that serves less than the signed size serves a truncated stream.
    if (bytes->size() != end - begin)
      return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
    return bytes;
  };
  BlobHasher hasher;
  std::optional<crypto::DocumentStreamCipher> cipher;
  crypto::SecretBytes plain(static_cast<std::size_t>(
      std::min(std::min(kChunksPerBatch, chunk_count) * kChunk, plaintext_size)));
  if (progress) progress(0, plaintext_size);
  COFFRE_ASSIGN_OR_RETURN(Bytes current, fetch(0));
  for (std::uint64_t first = 0; first < chunk_count; first += kChunksPerBatch) {
    const std::uint64_t count = std::min(kChunksPerBatch, chunk_count - first);
    const std::uint64_t plain_offset = first * kChunk;
    const auto plain_bytes =
        static_cast<std::size_t>(std::min(count * kChunk, plaintext_size - plain_offset));
    hasher.Update(current);
    std::size_t skip = 0;
    if (first == 0) {
      auto made = crypto::DocumentStreamCipher::FromHeader(
          document_key,
          std::span<const std::uint8_t>(current).first(static_cast<std::size_t>(kHeader)),
          associated_data);
      if (!made) return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
      cipher.emplace(std::move(*made));
      skip = static_cast<std::size_t>(kHeader);
    }
    const std::span<const std::uint8_t> input =
        std::span<const std::uint8_t>(current).subspan(skip);
    const std::span<std::uint8_t> output = plain.span().first(plain_bytes);
    Result<Bytes> next = Bytes();
    {
      ParallelChunks workers(count, Cores(), [&](std::uint64_t i) -> Status {
        const std::uint64_t index = first + i;
        const auto size =
            static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, plain_bytes - i * kChunk));
        return cipher->OpenChunk(index, index + 1 == chunk_count,
                                 input.subspan(static_cast<std::size_t>(i * kSealedChunk),
                                               size + crypto::kStreamTagSize),
                                 output.subspan(static_cast<std::size_t>(i * kChunk), size));
      });
      if (first + kChunksPerBatch < chunk_count) next = fetch(first + kChunksPerBatch);
      if (!workers.Wait()) return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
    }
    if (!next) return next.error();
    COFFRE_RETURN_IF_ERROR(WriteAll(out, output));
    // The file's bytes written (opened and authenticated), out of its size.
    if (progress) progress(plain_offset + plain_bytes, plaintext_size);
    current = std::move(*next);
  }
  const protocol::Hash hash = hasher.Final();
  if (!crypto::ConstantTimeEquals(hash, AsBytes(body.blob_hash()))) {
    return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
  }
  return Ok();
}

Result<DocumentView> GetDocumentImpl(Client::Impl& impl, std::string_view team_name,
                                     std::string_view document_hex,
                                     const std::filesystem::path& output,
                                     std::optional<std::uint64_t> version,
                                     const ProgressFn& progress) {
  if (output.empty() || !output.has_filename())
    return Fail(ErrorCode::kInvalidArgument, "no output file given");
  if (version && *version == 0)
    return Fail(ErrorCode::kInvalidArgument, "document versions start at 1");
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl.TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto id_bytes, ParseHex(document_hex, protocol::kIdSize));
  COFFRE_ASSIGN_OR_RETURN(const ItemId document_id, IdFrom(id_bytes));

  // The profile's copy (recorded at a sync or a put) or the relay's, verified either way.
  // Without a version, the newer of the two: the relay cannot roll a document back below
  // what this profile has seen.
  COFFRE_ASSIGN_OR_RETURN(auto stored, StoredManifest(impl, team, document_id, version));
  std::optional<wire::ItemManifest> chosen;
  if (version && stored) {
    chosen = std::move(stored);
  } else {
    COFFRE_ASSIGN_OR_RETURN(auto fetched,
                            RelayManifest(impl, team, document_id, version.value_or(0)));
    chosen =
        ClaimedVersion(fetched) > ClaimedVersion(stored) ? std::move(fetched) : std::move(stored);
  }
  if (!chosen) return Fail(ErrorCode::kNotFound, "no such document or version in the team");
  const std::uint64_t wanted = version ? *version : ClaimedVersion(chosen);
  COFFRE_ASSIGN_OR_RETURN(const wire::ItemManifestBody body,
                          VerifyDocumentManifest(impl, team, document_id, wanted, *chosen));

  auto ptk = impl.TeamKey(team.team_id, body.key_generation());
  if (!ptk) {
    return Fail(
        ErrorCode::kNotFound,
        "this device does not hold the team key this document version is under: run `coffre sync`");
  }
  COFFRE_ASSIGN_OR_RETURN(const auto wrap_key,
                          DeriveDocumentWrapKey(*ptk, team.team_id, body.key_generation()));
  COFFRE_ASSIGN_OR_RETURN(const auto metadata_key,
                          DeriveMetadataKey(*ptk, team.team_id, body.key_generation()));
  auto info = OpenDocumentInfo(body, metadata_key);
  auto document_key = UnwrapDocumentKey(body, wrap_key);
  if (!info || !document_key) return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
  COFFRE_ASSIGN_OR_RETURN(const auto blob_size, crypto::CiphertextSize(info->size));
  if (blob_size != body.blob_size())
    return Fail(ErrorCode::kAuthenticationFailed, kDocumentAuthFailure);
  COFFRE_ASSIGN_OR_RETURN(const ItemContext context, ItemContextOf(body));
  COFFRE_ASSIGN_OR_RETURN(const auto associated_data, DocumentStreamAssociatedData(context));

  // A temporary file next to the output (same file system, so the rename is atomic),
  // created exclusively and readable by the owner only; it becomes the output only once
  // everything is verified, and is removed on any failure.
  const std::filesystem::path folder =
      output.has_parent_path() ? output.parent_path() : std::filesystem::path(".");
  std::string temporary = (folder / ".coffre-download-XXXXXX").string();
  FileDescriptor out(::mkostemp(temporary.data(), O_CLOEXEC));
  if (!out.valid()) return Fail(ErrorCode::kIo, "cannot create a file in the output's folder");
  RemoveUnlessKept temporary_guard{std::filesystem::path(temporary)};
  (void)::fchmod(out.get(), 0600);
  COFFRE_RETURN_IF_ERROR(DownloadInto(impl, team, body, *document_key, associated_data, info->size,
                                      out.get(), progress));
  if (::fsync(out.get()) != 0 || !out.Close()) {
    return Fail(ErrorCode::kIo, "cannot write the document to disk (disk full?)");
  }
  // The device's signed statement that it wrote the plaintext to a file is stored before
  // the file takes its place (as the relay records a fetch before serving it); no
  // statement, no file.
  COFFRE_RETURN_IF_ERROR(impl.RecordClientEvent(audit::EventType::kDocumentExported, team.team_id,
                                                document_id, body.version()));
  if (::rename(temporary.c_str(), output.c_str()) != 0) {
    return Fail(ErrorCode::kIo, "cannot put the document in place of the output file");
  }
  temporary_guard.Keep();
  (void)SyncFolder(folder);  // the document is complete in place; this only hastens durability
  (void)impl.SendClientEvents(nullptr);  // unreachable now: it goes at the next sync

  DocumentView view;
  view.document_id = Hex(document_id);
  view.name = info->name;
  view.version = body.version();
  view.size = info->size;
  view.author = body.author_user_id();
  view.created_ms = body.created_ms();
  return view;
}

// The module edge for what the standard library may throw (memory, threads).
template <typename Body>
auto Guarded(Body&& body) -> decltype(body()) {
  return WithoutExceptions(kOutOfMemory, "unexpected failure in a document transfer",
                           std::forward<Body>(body));
}

}  // namespace

Status Client::Impl::SendUploads(SyncReport* report, const std::array<std::uint8_t, 16>* focus,
                                 const ProgressFn& progress) {
  return Guarded(
      [&]() -> Status { return SendUploadsImpl(*this, report, focus, progress); });
}

Result<DocumentView> Client::PutDocument(std::string_view team, const std::filesystem::path& file,
                                         std::optional<std::string_view> name,
                                         std::optional<std::string_view> replace,
                                         const ProgressFn& progress) {
  return Guarded([&]() -> Result<DocumentView> {
    return PutDocumentImpl(*impl_, team, file, name, replace, progress);
  });
}

Result<DocumentView> Client::GetDocument(std::string_view team, std::string_view document_id,
                                         const std::filesystem::path& output,
                                         std::optional<std::uint64_t> version,
                                         const ProgressFn& progress) {
  return Guarded([&]() -> Result<DocumentView> {
    return GetDocumentImpl(*impl_, team, document_id, output, version, progress);
  });
}

}  // namespace coffre::client
