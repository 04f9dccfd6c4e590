// The relay's audit log (DESIGN.md "Audit", decision 0016): appends entries durably,
// batching concurrent callers into one commit, keeps the Merkle tree in memory for roots and
// proofs, and issues signed checkpoints — at most every `checkpoint_interval` while entries
// arrive, and on request.
//
// Record() returns only once its entry is committed: a fetch is recorded before its bytes
// leave. The log knows entries as bytes (their encoding is audit/entry.h's, done by the
// caller) and checkpoints through `sign`, so this class is only about order, durability and
// the tree.
#ifndef COFFRE_SERVER_SRC_AUDIT_LOG_H_
#define COFFRE_SERVER_SRC_AUDIT_LOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "coffre/audit/merkle.h"
#include "coffre/base/result.h"
#include "coffre/storage/audit_store.h"

namespace coffre::server {

class AuditLog {
 public:
  // Signs a checkpoint of the tree at `tree_size` with root `root`; returns the note.
  using SignFn = std::function<Result<std::string>(std::uint64_t tree_size, const audit::Hash& root)>;

  struct Options {
    std::chrono::milliseconds checkpoint_interval{1000};
    std::size_t max_batch = 1024;  // entries per commit
    SignFn sign;
    // Run on the writer thread every `maintenance_interval` (retention), without locks held.
    std::function<void()> maintenance;
    std::chrono::milliseconds maintenance_interval{std::chrono::hours(1)};
  };

  // Takes the store, rebuilds the tree from its leaf hashes and starts the writer thread.
  static Result<std::unique_ptr<AuditLog>> Open(std::unique_ptr<storage::AuditStore> store,
                                                Options options);
  ~AuditLog();  // stops the writer after the entries already queued
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one entry and waits until it is durable; returns its index.
  Result<std::uint64_t> Record(storage::AuditAppend record);

  // The latest checkpoint; with `fresh`, one over every entry recorded so far is issued
  // first if the latest does not cover them. kNotFound while nothing was ever recorded.
  Result<storage::AuditCheckpointRecord> Checkpoint(bool fresh);
  Result<std::vector<storage::AuditStoredEntry>> Entries(std::uint64_t from, std::uint32_t limit);
  // Proofs against sizes the log has reached (kNotFound beyond).
  Result<std::vector<audit::Hash>> InclusionProof(std::uint64_t index, std::uint64_t tree_size);
  Result<std::vector<audit::Hash>> ConsistencyProof(std::uint64_t first_size,
                                                    std::uint64_t second_size);
  std::uint64_t Size();

  // Stores a sealed month key (storage::AuditStore::AddMonthKey): durable on return, before
  // any entry sealed under it is queued. Returns its key id.
  Result<std::uint64_t> AddMonthKey(std::int64_t month, std::span<const std::uint8_t> auditor_key,
                                    std::span<const std::uint8_t> sealed_key);
  // The stored month keys among `key_ids` (those retention has not deleted).
  Result<std::vector<storage::AuditMonthKeyRecord>> MonthKeys(
      std::span<const std::uint64_t> key_ids);

  // Retention (decision 0016): erases sealed details, and deletes the month keys, of months
  // before `before_month` except those held.
  Result<std::uint64_t> EraseDetailsBefore(std::int64_t before_month,
                                           std::span<const std::int64_t> held);
  // Legal holds as placed (decision 0018).
  Status AddLegalHold(std::span<const std::uint8_t> hold, std::int64_t placed_ms);
  Result<std::vector<std::vector<std::uint8_t>>> LegalHolds();

 private:
  struct Pending {
    storage::AuditAppend record;
    std::optional<Result<std::uint64_t>> outcome;
  };

  AuditLog(std::unique_ptr<storage::AuditStore> store, Options options);
  void WriterLoop();
  // Signs and stores a checkpoint at the current size unless one exists; store_mutex_ held.
  Status IssueCheckpointLocked();

  const Options options_;

  std::mutex store_mutex_;  // the store is used by one thread at a time
  std::unique_ptr<storage::AuditStore> store_;
  std::uint64_t checkpointed_size_ = 0;  // size of the latest checkpoint issued

  std::shared_mutex tree_mutex_;  // writer appends, proof readers share
  audit::MerkleTree tree_;

  std::mutex queue_mutex_;
  std::condition_variable queue_changed_;   // new work for the writer, or stop
  std::condition_variable batch_done_;      // outcomes filled in
  std::deque<Pending*> queue_;
  bool stopping_ = false;

  std::thread writer_;
};

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_AUDIT_LOG_H_
