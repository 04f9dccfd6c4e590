#include "audit_log.h"

#include <utility>

namespace coffre::server {

AuditLog::AuditLog(std::unique_ptr<storage::AuditStore> store, Options options)
    : options_(std::move(options)), store_(std::move(store)) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(std::unique_ptr<storage::AuditStore> store,
                                                 Options options) {
  if (!options.sign) return Fail(ErrorCode::kInvalidArgument, "audit log: no checkpoint signer");
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(store), std::move(options)));
  Status appended = Ok();
  COFFRE_RETURN_IF_ERROR(log->store_->ForEachLeafHash([&](std::uint64_t, const storage::AuditHash& hash) {
    if (!appended) return;
    if (auto added = log->tree_.AppendLeafHash(hash); !added) appended = added.error();
  }));
  COFFRE_RETURN_IF_ERROR(appended);
  COFFRE_ASSIGN_OR_RETURN(const auto latest, log->store_->LatestCheckpoint());
  if (latest) log->checkpointed_size_ = latest->tree_size;
  log->writer_ = std::thread([raw = log.get()] { raw->WriterLoop(); });
  return log;
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  if (writer_.joinable()) writer_.join();
}

Result<std::uint64_t> AuditLog::Record(storage::AuditAppend record) {
  Pending pending{std::move(record), std::nullopt};
  std::unique_lock lock(queue_mutex_);
  if (stopping_) return Fail(ErrorCode::kResourceExhausted, "audit log: shutting down");
  queue_.push_back(&pending);
  queue_changed_.notify_one();
  batch_done_.wait(lock, [&] { return pending.outcome.has_value(); });
  return std::move(*pending.outcome);
}

void AuditLog::WriterLoop() {
  auto next_checkpoint = std::chrono::steady_clock::now() + options_.checkpoint_interval;
  auto next_maintenance = std::chrono::steady_clock::now() + options_.maintenance_interval;
  std::unique_lock lock(queue_mutex_);
  for (;;) {
    queue_changed_.wait_until(lock, next_checkpoint, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) break;
    std::vector<Pending*> batch;
    while (!queue_.empty() && batch.size() < options_.max_batch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    if (!batch.empty()) {
      std::vector<storage::AuditAppend> records;
      records.reserve(batch.size());
      for (Pending* pending : batch) records.push_back(std::move(pending->record));
      std::lock_guard store_lock(store_mutex_);
      auto first = store_->Append(records);
      if (first) {
        std::unique_lock tree_lock(tree_mutex_);
        for (const auto& record : records) (void)tree_.AppendLeafHash(record.leaf_hash);
      }
      lock.lock();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i]->outcome = first ? Result<std::uint64_t>(*first + i)
                                  : Result<std::uint64_t>(first.error());
      }
      batch_done_.notify_all();
      lock.unlock();
    }
    if (std::chrono::steady_clock::now() >= next_checkpoint) {
      std::lock_guard store_lock(store_mutex_);
      (void)IssueCheckpointLocked();  // retried at the next tick on failure
      next_checkpoint = std::chrono::steady_clock::now() + options_.checkpoint_interval;
    }
    if (options_.maintenance && std::chrono::steady_clock::now() >= next_maintenance) {
      options_.maintenance();
      next_maintenance = std::chrono::steady_clock::now() + options_.maintenance_interval;
    }
    lock.lock();
  }
}

Status AuditLog::IssueCheckpointLocked() {
  std::uint64_t size = 0;
  audit::Hash root{};
  {
    std::shared_lock tree_lock(tree_mutex_);
    size = tree_.size();
    root = tree_.Root();
  }
  if (size == 0 || size == checkpointed_size_) return Ok();
  COFFRE_ASSIGN_OR_RETURN(std::string note, options_.sign(size, root));
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  COFFRE_RETURN_IF_ERROR(store_->AddCheckpoint({size, std::move(note), now}));
  checkpointed_size_ = size;
  return Ok();
}

Result<storage::AuditCheckpointRecord> AuditLog::Checkpoint(bool fresh) {
  std::lock_guard store_lock(store_mutex_);
  if (fresh) COFFRE_RETURN_IF_ERROR(IssueCheckpointLocked());
  COFFRE_ASSIGN_OR_RETURN(auto latest, store_->LatestCheckpoint());
  if (!latest) return Fail(ErrorCode::kNotFound, "the audit log has no checkpoint yet");
  return std::move(*latest);
}

Result<std::vector<storage::AuditStoredEntry>> AuditLog::Entries(std::uint64_t from,
                                                                 std::uint32_t limit) {
  std::lock_guard store_lock(store_mutex_);
  return store_->Entries(from, limit);
}

Result<std::vector<audit::Hash>> AuditLog::InclusionProof(std::uint64_t index,
                                                          std::uint64_t tree_size) {
  std::shared_lock tree_lock(tree_mutex_);
  return audit::InclusionProof(tree_, index, tree_size);
}

Result<std::vector<audit::Hash>> AuditLog::ConsistencyProof(std::uint64_t first_size,
                                                            std::uint64_t second_size) {
  std::shared_lock tree_lock(tree_mutex_);
  return audit::ConsistencyProof(tree_, first_size, second_size);
}

std::uint64_t AuditLog::Size() {
  std::shared_lock tree_lock(tree_mutex_);
  return tree_.size();
}

Result<std::uint64_t> AuditLog::AddMonthKey(std::int64_t month,
                                            std::span<const std::uint8_t> auditor_key,
                                            std::span<const std::uint8_t> sealed_key) {
  std::lock_guard store_lock(store_mutex_);
  return store_->AddMonthKey(month, auditor_key, sealed_key);
}

Result<std::vector<storage::AuditMonthKeyRecord>> AuditLog::MonthKeys(
    std::span<const std::uint64_t> key_ids) {
  std::lock_guard store_lock(store_mutex_);
  return store_->MonthKeys(key_ids);
}

Result<std::uint64_t> AuditLog::EraseDetailsBefore(std::int64_t before_month,
                                                   std::span<const std::int64_t> held) {
  std::lock_guard store_lock(store_mutex_);
  return store_->EraseDetailsBefore(before_month, held);
}

Status AuditLog::AddLegalHold(std::span<const std::uint8_t> hold, std::int64_t placed_ms) {
  std::lock_guard store_lock(store_mutex_);
  return store_->AddLegalHold(hold, placed_ms);
}

Result<std::vector<std::vector<std::uint8_t>>> AuditLog::LegalHolds() {
  std::lock_guard store_lock(store_mutex_);
  return store_->LegalHolds();
}

}  // namespace coffre::server
