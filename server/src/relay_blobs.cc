#include "relay_blobs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <system_error>

#include "coffre/protocol/limits.h"
#include "relay_util.h"

namespace coffre::server {
namespace {

constexpr std::string_view kPartSuffix = ".part";

// A file descriptor with one owner: closed on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

Status FsyncPath(const std::filesystem::path& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) {
    return Fail(ErrorCode::kIo, "cannot fsync a blob file or directory");
  }
  return Ok();
}

Status FsyncDirectory(const std::filesystem::path& dir) {
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

// Creates `dir` with mode 0700 if missing and fsyncs its parent so the entry survives a crash.
Status EnsureDirectory(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return FsyncDirectory(dir.parent_path());
  if (errno == EEXIST) return Ok();
  return Fail(ErrorCode::kIo, "cannot create a blob directory");
}

std::optional<std::uint64_t> ParseDecimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

Result<BlobFiles> BlobFiles::Open(const std::filesystem::path& data_dir) {
  std::filesystem::path root = data_dir / "blobs";
  COFFRE_RETURN_IF_ERROR(EnsureDirectory(root));
  return BlobFiles(std::move(root));
}

std::filesystem::path BlobFiles::TeamDir(std::span<const std::uint8_t> team_id) const {
  return root_ / ToHex(team_id);
}

std::filesystem::path BlobFiles::PartPath(std::span<const std::uint8_t> team_id,
                                          std::span<const std::uint8_t> blob_id) const {
  return TeamDir(team_id) / (ToHex(blob_id) + std::string(kPartSuffix));
}

std::filesystem::path BlobFiles::FinalPath(std::span<const std::uint8_t> team_id,
                                           std::span<const std::uint8_t> blob_id) const {
  return TeamDir(team_id) / ToHex(blob_id);
}

Status BlobFiles::CreatePart(std::span<const std::uint8_t> team_id,
                             std::span<const std::uint8_t> blob_id) {
  const std::filesystem::path dir = TeamDir(team_id);
  COFFRE_RETURN_IF_ERROR(EnsureDirectory(dir));
  const std::filesystem::path part = PartPath(team_id, blob_id);
  Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    if (errno == EEXIST) return Ok();
    return Fail(ErrorCode::kIo, "cannot create a blob file");
  }
  if (::fsync(fd.get()) != 0) return Fail(ErrorCode::kIo, "cannot fsync a blob file");
  return FsyncDirectory(dir);
}

Status BlobFiles::WriteAt(std::span<const std::uint8_t> team_id,
                          std::span<const std::uint8_t> blob_id, std::uint64_t offset,
                          std::span<const std::uint8_t> data) {
  if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) - data.size()) {
    return Fail(ErrorCode::kInvalidArgument, "blob offset out of range");
  }
  const std::filesystem::path dir = TeamDir(team_id);
  COFFRE_RETURN_IF_ERROR(EnsureDirectory(dir));
  const std::filesystem::path part = PartPath(team_id, blob_id);
  Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return Fail(ErrorCode::kIo, "cannot open a blob file");
  // Bytes past `offset` were written by a request whose progress never reached the store
  // (a crash, a cut connection): they are not part of the blob.
  if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
    return Fail(ErrorCode::kIo, "cannot truncate a blob file");
  }
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::pwrite(fd.get(), data.data() + written, data.size() - written,
                               static_cast<off_t>(offset + written));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrorCode::kIo, "cannot write a blob file");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return Fail(ErrorCode::kIo, "cannot fsync a blob file");
  return Ok();
}

Status BlobFiles::Finish(std::span<const std::uint8_t> team_id,
                         std::span<const std::uint8_t> blob_id, std::uint64_t size) {
  const std::filesystem::path part = PartPath(team_id, blob_id);
  {
    Fd fd(::open(part.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) return Fail(ErrorCode::kNotFound, "blob part file missing");
      return Fail(ErrorCode::kIo, "cannot open a blob file");
    }
    if (size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) ||
        ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0 || ::fsync(fd.get()) != 0) {
      return Fail(ErrorCode::kIo, "cannot complete a blob file");
    }
  }
  const std::filesystem::path final_path = FinalPath(team_id, blob_id);
  if (::rename(part.c_str(), final_path.c_str()) != 0) {
    return Fail(ErrorCode::kIo, "cannot rename a blob file");
  }
  return FsyncDirectory(TeamDir(team_id));
}

std::optional<std::uint64_t> BlobFiles::FinalSize(std::span<const std::uint8_t> team_id,
                                                  std::span<const std::uint8_t> blob_id) const {
  struct stat st {};
  const std::filesystem::path path = FinalPath(team_id, blob_id);
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

std::vector<std::vector<std::uint8_t>> BlobFiles::ListTeam(
    std::span<const std::uint8_t> team_id) const {
  std::vector<std::vector<std::uint8_t>> ids;
  std::error_code ec;
  std::filesystem::directory_iterator it(TeamDir(team_id), ec);
  if (ec) return ids;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    if (name.ends_with(kPartSuffix)) name.resize(name.size() - kPartSuffix.size());
    if (auto id = FromHex(name, protocol::kIdSize)) ids.push_back(std::move(*id));
  }
  return ids;
}

std::optional<BlobTarget> ParseBlobTarget(std::string_view target) {
  if (!target.starts_with(kBlobPathPrefix)) return std::nullopt;
  std::string_view rest = target.substr(kBlobPathPrefix.size());
  std::string_view query;
  if (const std::size_t question = rest.find('?'); question != std::string_view::npos) {
    query = rest.substr(question + 1);
    rest = rest.substr(0, question);
  }
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  BlobTarget parsed;
  auto team = FromHex(rest.substr(0, slash), protocol::kIdSize);
  auto blob = FromHex(rest.substr(slash + 1), protocol::kIdSize);
  if (!team || !blob) return std::nullopt;
  parsed.team_id = std::move(*team);
  parsed.blob_id = std::move(*blob);
  if (!query.empty()) {
    constexpr std::string_view kOffset = "offset=";
    if (!query.starts_with(kOffset)) return std::nullopt;
    parsed.offset = ParseDecimal(query.substr(kOffset.size()));
    if (!parsed.offset) return std::nullopt;
  }
  return parsed;
}

std::optional<ByteRange> ParseByteRange(std::string_view header, std::uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (!header.starts_with(kUnit) || size == 0) return std::nullopt;
  const std::string_view spec = header.substr(kUnit.size());
  if (spec.find(',') != std::string_view::npos) return std::nullopt;
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view first_text = spec.substr(0, dash);
  const std::string_view last_text = spec.substr(dash + 1);
  if (first_text.empty()) {
    // bytes=-n: the last n bytes.
    const auto suffix = ParseDecimal(last_text);
    if (!suffix || *suffix == 0) return std::nullopt;
    const std::uint64_t length = std::min(*suffix, size);
    return ByteRange{size - length, length};
  }
  const auto first = ParseDecimal(first_text);
  if (!first || *first >= size) return std::nullopt;
  std::uint64_t last = size - 1;
  if (!last_text.empty()) {
    const auto parsed_last = ParseDecimal(last_text);
    if (!parsed_last || *parsed_last < *first) return std::nullopt;
    last = std::min(*parsed_last, size - 1);
  }
  return ByteRange{*first, last - *first + 1};
}

std::optional<std::vector<std::uint8_t>> ParseBearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (!authorization.starts_with(kScheme)) return std::nullopt;
  return FromHex(authorization.substr(kScheme.size()), protocol::kTokenSize);
}

}  // namespace coffre::server
