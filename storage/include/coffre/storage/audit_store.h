// The relay's audit log on disk (DESIGN.md "Audit", decision 0016): the encoded entries in
// log order with their RFC 6962 leaf hashes, the sealed details of each entry (which
// retention may erase without touching the entry, whose encoding commits to their hash),
// the month keys that sealed them (each only as sealed to an auditor key; retention deletes
// them with the details), and every checkpoint the relay signed.
//
// One SQLCipher database (DATA_DIR/audit.db) under the operator key, apart from the message
// store: the log only grows, is read by auditors and exported, and is kept for years, while
// mailboxes churn. An AuditStore is used by one thread at a time (the relay's AuditLog
// serialises its callers); its appends are durable when Append returns.
#ifndef COFFRE_STORAGE_AUDIT_STORE_H_
#define COFFRE_STORAGE_AUDIT_STORE_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::storage {

using AuditHash = std::array<std::uint8_t, 32>;

struct AuditAppend {
  std::vector<std::uint8_t> entry;           // the entry's canonical encoding
  AuditHash leaf_hash{};                     // SHA-256(0x00 || entry)
  std::vector<std::uint8_t> sealed_details;  // empty: the entry has none
  std::int64_t details_month = 0;            // months since 1970-01 of the relay time
};

struct AuditStoredEntry {
  std::uint64_t index = 0;
  std::vector<std::uint8_t> entry;
  // nullopt: the entry never had details, or retention erased them (`erased` says which).
  std::optional<std::vector<std::uint8_t>> sealed_details;
  bool erased = false;
};

// A month key as stored: never in clear, only sealed to the auditor key it serves.
struct AuditMonthKeyRecord {
  std::uint64_t key_id = 0;               // 1.., never reused
  std::int64_t month = 0;                 // months since 1970-01 of the details it seals
  std::vector<std::uint8_t> auditor_key;  // the auditor's X25519 public key
  std::vector<std::uint8_t> sealed_key;   // audit::SealMonthKey to that key
};

struct AuditCheckpointRecord {
  std::uint64_t tree_size = 0;
  std::string note;  // the signed note, as issued
  std::int64_t issued_ms = 0;
};

class AuditStore {
 public:
  // Opens DATA_DIR/audit.db (created when missing) under the 32-byte operator key.
  static Result<std::unique_ptr<AuditStore>> Open(const std::filesystem::path& path,
                                                  const crypto::SecretBytes& key);
  ~AuditStore();
  AuditStore(const AuditStore&) = delete;
  AuditStore& operator=(const AuditStore&) = delete;

  // Appends `records` at the end of the log in one transaction (one fsync) and returns the
  // index of the first. Nothing is appended on failure.
  Result<std::uint64_t> Append(std::span<const AuditAppend> records);
  // Entries in the log.
  Result<std::uint64_t> Size();
  // Calls `leaf` with every leaf hash in index order (to rebuild the tree in memory).
  Status ForEachLeafHash(const std::function<void(std::uint64_t index, const AuditHash& hash)>& leaf);
  // Up to `limit` entries from index `from` on.
  Result<std::vector<AuditStoredEntry>> Entries(std::uint64_t from, std::uint32_t limit);

  Status AddCheckpoint(const AuditCheckpointRecord& checkpoint);
  Result<std::optional<AuditCheckpointRecord>> LatestCheckpoint();
  // The checkpoint issued at exactly `tree_size`, if one was.
  Result<std::optional<AuditCheckpointRecord>> CheckpointAt(std::uint64_t tree_size);

  // Stores a sealed month key and returns its new key id; durable when it returns, so that
  // it is on disk before any entry sealed under it. Ids grow and are never reused, even
  // after retention deleted the highest one. Fails with kInvalidArgument on an empty key.
  Result<std::uint64_t> AddMonthKey(std::int64_t month, std::span<const std::uint8_t> auditor_key,
                                    std::span<const std::uint8_t> sealed_key);
  // The month keys among `key_ids` that still exist, in key id order (ids retention deleted,
  // or never issued, are left out).
  Result<std::vector<AuditMonthKeyRecord>> MonthKeys(std::span<const std::uint64_t> key_ids);

  // Retention: erases the sealed details of every entry whose details month is before
  // `before_month`, and deletes the month keys of those months (crypto-shredding: copies of
  // the sealed details elsewhere no longer open), except the months in `held` (legal hold).
  // The entries stay. One transaction; the write-ahead log is then checkpointed so that the
  // deleted keys do not linger in audit.db-wal. Returns how many details were erased.
  Result<std::uint64_t> EraseDetailsBefore(std::int64_t before_month,
                                           std::span<const std::int64_t> held);

  // Legal holds (decision 0018): the signed hold as placed, kept for good (a hold is
  // evidence too), and every hold stored, oldest first.
  Status AddLegalHold(std::span<const std::uint8_t> hold, std::int64_t placed_ms);
  Result<std::vector<std::vector<std::uint8_t>>> LegalHolds();

  struct Impl;

 private:
  explicit AuditStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::storage

#endif  // COFFRE_STORAGE_AUDIT_STORE_H_
