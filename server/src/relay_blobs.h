// Blob bytes on disk, and the pieces of HTTP the blob endpoints parse (path, offset, Range).
//
// Layout (docs/operations.md): DATA/blobs/<team hex>/<blob hex> once complete, and
// <blob hex>.part while the upload runs. Bytes reach a .part file only at the offset the
// store has recorded, and are fsync'd before the store records the new progress, so after a
// crash the store never claims bytes the file does not hold (the file may hold more: a write
// whose progress was never recorded, cut off at the next write). A complete blob is renamed
// into place and its directory fsync'd before the store marks it complete.
#ifndef COFFRE_SERVER_SRC_RELAY_BLOBS_H_
#define COFFRE_SERVER_SRC_RELAY_BLOBS_H_

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"

namespace coffre::server {

class BlobFiles {
 public:
  // Creates DATA/blobs (mode 0700) if missing. kIo if it cannot.
  static Result<BlobFiles> Open(const std::filesystem::path& data_dir);

  std::filesystem::path PartPath(std::span<const std::uint8_t> team_id,
                                 std::span<const std::uint8_t> blob_id) const;
  std::filesystem::path FinalPath(std::span<const std::uint8_t> team_id,
                                  std::span<const std::uint8_t> blob_id) const;

  // Creates the team's directory and an empty .part file if missing (an existing one is
  // kept as is), fsyncing what it created. kIo on failure.
  Status CreatePart(std::span<const std::uint8_t> team_id, std::span<const std::uint8_t> blob_id);
  // Writes `data` at `offset` of the .part file (created if missing), after cutting the
  // file at `offset`, then fsyncs it. kIo on failure.
  Status WriteAt(std::span<const std::uint8_t> team_id, std::span<const std::uint8_t> blob_id,
                 std::uint64_t offset, std::span<const std::uint8_t> data);
  // Cuts the .part file to `size`, fsyncs it, renames it to the final name and fsyncs the
  // directory. kIo on failure; kNotFound if there is no .part file.
  Status Finish(std::span<const std::uint8_t> team_id, std::span<const std::uint8_t> blob_id,
                std::uint64_t size);
  // Size of the final file; nullopt if it does not exist.
  std::optional<std::uint64_t> FinalSize(std::span<const std::uint8_t> team_id,
                                         std::span<const std::uint8_t> blob_id) const;
  // Blob ids (16 bytes each) with a file (.part or final) in the team's directory.
  std::vector<std::vector<std::uint8_t>> ListTeam(std::span<const std::uint8_t> team_id) const;

 private:
  explicit BlobFiles(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path TeamDir(std::span<const std::uint8_t> team_id) const;

  std::filesystem::path root_;
};

// /v1/blobs/<team hex>/<blob hex>[?offset=N], ids of 16 bytes in hex (either case).
struct BlobTarget {
  std::vector<std::uint8_t> team_id;
  std::vector<std::uint8_t> blob_id;
  std::optional<std::uint64_t> offset;  // present when the query names it
};
inline constexpr std::string_view kBlobPathPrefix = "/v1/blobs/";
// nullopt when the target is not exactly that shape (other query keys, bad hex, a number
// with a sign or out of range).
std::optional<BlobTarget> ParseBlobTarget(std::string_view target);

// An HTTP Range header (RFC 9110 §14.2) on a representation of `size` bytes. Only one range
// is served: `bytes=a-b`, `bytes=a-` and `bytes=-n`. `last` beyond the end is cut to the
// end (§14.1.2).
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t length = 0;
};
// The range to send; nullopt when the header is malformed, asks for several ranges, or
// none of it lies inside [0, size): the caller answers 416.
std::optional<ByteRange> ParseByteRange(std::string_view header, std::uint64_t size);

// "Bearer <64 hex digits>" -> the 32-byte token; nullopt otherwise.
std::optional<std::vector<std::uint8_t>> ParseBearerToken(std::string_view authorization);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_RELAY_BLOBS_H_
