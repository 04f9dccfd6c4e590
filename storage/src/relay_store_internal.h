// Not API: knobs and counters of the SQLCipher relay store (relay_store.cc), for its tests
// and its benchmark. The relay itself only uses OpenSqlCipherRelayStore.
#ifndef COFFRE_STORAGE_SRC_RELAY_STORE_INTERNAL_H_
#define COFFRE_STORAGE_SRC_RELAY_STORE_INTERNAL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/storage/relay_store.h"

namespace coffre::storage::internal {

struct RelayStoreOptions {
  // Connections that serve reads beside the writer's (WAL lets them read while it writes).
  std::size_t read_connections = 4;
  // Most writes one commit takes; more wait for the next one. Bounds the time one group
  // holds the write lock and the work lost to one failed COMMIT. 1 disables group commit.
  std::size_t max_group_size = 512;
  // After a commit that served several callers, the longest the writer waits for them to
  // come back with their next write before it commits a smaller group (PostgreSQL's
  // commit_delay). The wait is also capped at half the last COMMIT's time, and never
  // happens after a group of one, so a lone caller never waits. 0 disables it.
  std::chrono::microseconds group_commit_window{300};
};

struct RelayStoreStats {
  std::uint64_t writes = 0;              // write operations run inside a group, failed ones too
  std::uint64_t commits = 0;             // successful COMMITs (one fsync each)
  std::uint64_t failed_groups = 0;       // groups whose BEGIN or COMMIT failed
  std::uint64_t redone_groups = 0;       // groups run again with savepoints (see RunGroup)
  std::uint64_t largest_group = 0;       // most writes in one group so far
  std::uint64_t commit_nanoseconds = 0;  // time spent in successful COMMITs (the fsyncs)
  // CPU time of the writer thread running groups (BEGIN to COMMIT, then waking the group),
  // which unlike commit_nanoseconds hardly depends on the disk.
  std::uint64_t writer_cpu_nanoseconds = 0;
};

// OpenSqlCipherRelayStore with explicit options. kInvalidArgument if read_connections or
// max_group_size is 0.
Result<std::unique_ptr<RelayStore>> OpenSqlCipherRelayStoreWithOptions(
    const std::filesystem::path& path, const crypto::SecretBytes& key,
    const RelayStoreOptions& options);

// The counters of a store made by one of the two Open functions; nullopt for any other
// RelayStore.
std::optional<RelayStoreStats> StatsOf(RelayStore& store);

// Writes waiting in the queue (not yet taken by the writer). 0 for another RelayStore.
std::size_t QueuedWrites(RelayStore& store);

// Tests only: after PauseWriter the writer finishes the group it is running and then takes
// nothing more from the queue until ResumeWriter, so a test can line up exactly the writes
// that one group will hold. Reads go on meanwhile. No effect on another RelayStore.
void PauseWriter(RelayStore& store);
void ResumeWriter(RelayStore& store);

// Forgets the client ids of envelopes received before `received_before_ms` that are no
// longer queued, through the write queue like any write; returns how many were forgotten.
// The writer runs the same pruning by itself about once a minute with the system clock
// minus kEnvelopeIdRetentionMs. kInvalidArgument for another RelayStore.
Result<std::uint64_t> PruneEnvelopeIds(RelayStore& store, std::int64_t received_before_ms);

}  // namespace coffre::storage::internal

#endif  // COFFRE_STORAGE_SRC_RELAY_STORE_INTERNAL_H_
