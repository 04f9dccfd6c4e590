#include "coffre/storage/audit_store.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "coffre/storage/database.h"

namespace coffre::storage {
namespace {

constexpr Migration kAuditMigrations[] = {
    {1,
     // idx is the leaf index, from 0. details: NULL when the entry has none; erased = 1
     // once retention removed them.
     "CREATE TABLE audit_entries ("
     "  idx INTEGER PRIMARY KEY,"
     "  entry BLOB NOT NULL,"
     "  leaf_hash BLOB NOT NULL,"
     "  details BLOB,"
     "  details_month INTEGER NOT NULL,"
     "  erased INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX audit_entries_by_month ON audit_entries (details_month) WHERE details IS NOT NULL;"
     "CREATE TABLE audit_checkpoints ("
     "  tree_size INTEGER PRIMARY KEY,"
     "  note TEXT NOT NULL,"
     "  issued_ms INTEGER NOT NULL)"},
    {2,
     // One row per (month, auditor key) and relay run: the month key sealed to the auditor
     // key, never in clear. AUTOINCREMENT so that a key id is never issued twice, even
     // after retention deleted the row with the highest id (sealed details name their key
     // by id, and copies of them outlive the row).
     "CREATE TABLE audit_month_keys ("
     "  key_id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  month INTEGER NOT NULL,"
     "  auditor_key BLOB NOT NULL,"
     "  sealed_key BLOB NOT NULL);"
     "CREATE INDEX audit_month_keys_by_month ON audit_month_keys (month)"},
    {3,
     // Legal holds placed by an admin and an auditor (decision 0018), as they were signed.
     "CREATE TABLE audit_legal_holds ("
     "  id INTEGER PRIMARY KEY,"
     "  hold BLOB NOT NULL,"
     "  placed_ms INTEGER NOT NULL)"},
};

std::int64_t AsInt(std::uint64_t value) { return static_cast<std::int64_t>(value); }

}  // namespace

struct AuditStore::Impl {
  std::unique_ptr<Database> db;
  std::optional<std::uint64_t> size;  // cached: the log only grows, through Append
};

AuditStore::AuditStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AuditStore::~AuditStore() = default;

Result<std::unique_ptr<AuditStore>> AuditStore::Open(const std::filesystem::path& path,
                                                     const crypto::SecretBytes& key) {
  auto impl = std::make_unique<Impl>();
  COFFRE_ASSIGN_OR_RETURN(impl->db, Database::OpenWithRawKey(path, key, /*create_if_missing=*/true));
  COFFRE_RETURN_IF_ERROR(impl->db->Migrate(kAuditMigrations));
  return std::unique_ptr<AuditStore>(new AuditStore(std::move(impl)));
}

Result<std::uint64_t> AuditStore::Size() {
  if (impl_->size) return *impl_->size;
  COFFRE_ASSIGN_OR_RETURN(auto count, impl_->db->Prepare("SELECT count(*) FROM audit_entries"));
  COFFRE_ASSIGN_OR_RETURN(const bool row, count.Step());
  if (!row) return Fail(ErrorCode::kDatabase, "audit store: count failed");
  impl_->size = static_cast<std::uint64_t>(count.ColumnInt64(0));
  return *impl_->size;
}

Result<std::uint64_t> AuditStore::Append(std::span<const AuditAppend> records) {
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t first, Size());
  COFFRE_ASSIGN_OR_RETURN(auto transaction, impl_->db->Begin());
  COFFRE_ASSIGN_OR_RETURN(auto insert,
                          impl_->db->Prepare("INSERT INTO audit_entries (idx, entry, leaf_hash, "
                                             "details, details_month) VALUES (?, ?, ?, ?, ?)"));
  std::uint64_t index = first;
  for (const AuditAppend& record : records) {
    COFFRE_RETURN_IF_ERROR(insert.Bind(1, AsInt(index)));
    COFFRE_RETURN_IF_ERROR(insert.Bind(2, std::span<const std::uint8_t>(record.entry)));
    COFFRE_RETURN_IF_ERROR(insert.Bind(3, std::span<const std::uint8_t>(record.leaf_hash)));
    if (record.sealed_details.empty()) {
      COFFRE_RETURN_IF_ERROR(insert.Bind(4, nullptr));
    } else {
      COFFRE_RETURN_IF_ERROR(insert.Bind(4, std::span<const std::uint8_t>(record.sealed_details)));
    }
    COFFRE_RETURN_IF_ERROR(insert.Bind(5, record.details_month));
    COFFRE_ASSIGN_OR_RETURN(const bool row, insert.Step());
    (void)row;
    insert.Reset();
    ++index;
  }
  COFFRE_RETURN_IF_ERROR(transaction.Commit());
  impl_->size = index;
  return first;
}

Status AuditStore::ForEachLeafHash(
    const std::function<void(std::uint64_t index, const AuditHash& hash)>& leaf) {
  COFFRE_ASSIGN_OR_RETURN(auto rows,
                          impl_->db->Prepare("SELECT idx, leaf_hash FROM audit_entries ORDER BY idx"));
  std::uint64_t expected = 0;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    const std::vector<std::uint8_t> bytes = rows.ColumnBlob(1);
    AuditHash hash{};
    if (static_cast<std::uint64_t>(rows.ColumnInt64(0)) != expected || bytes.size() != hash.size()) {
      return Fail(ErrorCode::kCorrupt, "audit store: the log has a gap or a damaged leaf hash");
    }
    std::copy(bytes.begin(), bytes.end(), hash.begin());
    leaf(expected++, hash);
  }
  return Ok();
}

Result<std::vector<AuditStoredEntry>> AuditStore::Entries(std::uint64_t from, std::uint32_t limit) {
  COFFRE_ASSIGN_OR_RETURN(auto rows,
                          impl_->db->Prepare("SELECT idx, entry, details, erased FROM audit_entries "
                                             "WHERE idx >= ? ORDER BY idx LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(rows.Bind(1, AsInt(from)));
  COFFRE_RETURN_IF_ERROR(rows.Bind(2, static_cast<std::int64_t>(limit)));
  std::vector<AuditStoredEntry> entries;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    AuditStoredEntry entry;
    entry.index = static_cast<std::uint64_t>(rows.ColumnInt64(0));
    entry.entry = rows.ColumnBlob(1);
    if (!rows.ColumnIsNull(2)) entry.sealed_details = rows.ColumnBlob(2);
    entry.erased = rows.ColumnInt64(3) != 0;
    entries.push_back(std::move(entry));
  }
  return entries;
}

Status AuditStore::AddCheckpoint(const AuditCheckpointRecord& checkpoint) {
  COFFRE_ASSIGN_OR_RETURN(auto insert,
                          impl_->db->Prepare("INSERT OR IGNORE INTO audit_checkpoints (tree_size, "
                                             "note, issued_ms) VALUES (?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(insert.Bind(1, AsInt(checkpoint.tree_size)));
  COFFRE_RETURN_IF_ERROR(insert.Bind(2, std::string_view(checkpoint.note)));
  COFFRE_RETURN_IF_ERROR(insert.Bind(3, checkpoint.issued_ms));
  COFFRE_ASSIGN_OR_RETURN(const bool row, insert.Step());
  (void)row;
  return Ok();
}

namespace {

Result<std::optional<AuditCheckpointRecord>> ReadCheckpoint(Statement& query) {
  COFFRE_ASSIGN_OR_RETURN(const bool row, query.Step());
  if (!row) return std::optional<AuditCheckpointRecord>();
  AuditCheckpointRecord record;
  record.tree_size = static_cast<std::uint64_t>(query.ColumnInt64(0));
  record.note = query.ColumnText(1);
  record.issued_ms = query.ColumnInt64(2);
  return std::optional<AuditCheckpointRecord>(std::move(record));
}

}  // namespace

Result<std::optional<AuditCheckpointRecord>> AuditStore::LatestCheckpoint() {
  COFFRE_ASSIGN_OR_RETURN(auto query,
                          impl_->db->Prepare("SELECT tree_size, note, issued_ms FROM "
                                             "audit_checkpoints ORDER BY tree_size DESC LIMIT 1"));
  return ReadCheckpoint(query);
}

Result<std::optional<AuditCheckpointRecord>> AuditStore::CheckpointAt(std::uint64_t tree_size) {
  COFFRE_ASSIGN_OR_RETURN(auto query,
                          impl_->db->Prepare("SELECT tree_size, note, issued_ms FROM "
                                             "audit_checkpoints WHERE tree_size = ?"));
  COFFRE_RETURN_IF_ERROR(query.Bind(1, AsInt(tree_size)));
  return ReadCheckpoint(query);
}

Result<std::uint64_t> AuditStore::AddMonthKey(std::int64_t month,
                                              std::span<const std::uint8_t> auditor_key,
                                              std::span<const std::uint8_t> sealed_key) {
  if (auditor_key.empty() || sealed_key.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "audit store: empty month key");
  }
  COFFRE_ASSIGN_OR_RETURN(auto transaction, impl_->db->Begin());
  COFFRE_ASSIGN_OR_RETURN(auto insert,
                          impl_->db->Prepare("INSERT INTO audit_month_keys (month, auditor_key, "
                                             "sealed_key) VALUES (?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(insert.Bind(1, month));
  COFFRE_RETURN_IF_ERROR(insert.Bind(2, auditor_key));
  COFFRE_RETURN_IF_ERROR(insert.Bind(3, sealed_key));
  COFFRE_ASSIGN_OR_RETURN(const bool inserted, insert.Step());
  (void)inserted;
  // SQLCipher 3.4 has no RETURNING: the rowid of this connection's last insert.
  COFFRE_ASSIGN_OR_RETURN(auto last, impl_->db->Prepare("SELECT last_insert_rowid()"));
  COFFRE_ASSIGN_OR_RETURN(const bool row, last.Step());
  if (!row || last.ColumnInt64(0) <= 0) {
    return Fail(ErrorCode::kDatabase, "audit store: no key id for the month key");
  }
  const auto key_id = static_cast<std::uint64_t>(last.ColumnInt64(0));
  COFFRE_RETURN_IF_ERROR(transaction.Commit());
  return key_id;
}

Result<std::vector<AuditMonthKeyRecord>> AuditStore::MonthKeys(
    std::span<const std::uint64_t> key_ids) {
  std::vector<std::uint64_t> ids(key_ids.begin(), key_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  COFFRE_ASSIGN_OR_RETURN(auto query,
                          impl_->db->Prepare("SELECT key_id, month, auditor_key, sealed_key FROM "
                                             "audit_month_keys WHERE key_id = ?"));
  std::vector<AuditMonthKeyRecord> keys;
  for (const std::uint64_t id : ids) {
    if (id == 0 || id > static_cast<std::uint64_t>(INT64_MAX)) continue;  // never a rowid
    COFFRE_RETURN_IF_ERROR(query.Bind(1, AsInt(id)));
    COFFRE_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (row) {
      AuditMonthKeyRecord key;
      key.key_id = static_cast<std::uint64_t>(query.ColumnInt64(0));
      key.month = query.ColumnInt64(1);
      key.auditor_key = query.ColumnBlob(2);
      key.sealed_key = query.ColumnBlob(3);
      keys.push_back(std::move(key));
    }
    query.Reset();
  }
  return keys;
}

namespace {

// The distinct months that `sql` (one parameter: the boundary) lists, less the held ones.
Result<std::vector<std::int64_t>> MonthsToErase(Database& db, const char* sql,
                                                std::int64_t before_month,
                                                std::span<const std::int64_t> held,
                                                std::vector<std::int64_t> months) {
  COFFRE_ASSIGN_OR_RETURN(auto query, db.Prepare(sql));
  COFFRE_RETURN_IF_ERROR(query.Bind(1, before_month));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (!row) break;
    const std::int64_t month = query.ColumnInt64(0);
    if (std::find(held.begin(), held.end(), month) == held.end()) months.push_back(month);
  }
  std::sort(months.begin(), months.end());
  months.erase(std::unique(months.begin(), months.end()), months.end());
  return months;
}

}  // namespace

Result<std::uint64_t> AuditStore::EraseDetailsBefore(std::int64_t before_month,
                                                     std::span<const std::int64_t> held) {
  Database& db = *impl_->db;
  COFFRE_ASSIGN_OR_RETURN(auto transaction, db.Begin());
  COFFRE_ASSIGN_OR_RETURN(auto with_details,
                          MonthsToErase(db,
                                        "SELECT DISTINCT details_month FROM audit_entries "
                                        "WHERE details IS NOT NULL AND details_month < ?",
                                        before_month, held, {}));
  COFFRE_ASSIGN_OR_RETURN(const auto to_erase,
                          MonthsToErase(db,
                                        "SELECT DISTINCT month FROM audit_month_keys "
                                        "WHERE month < ?",
                                        before_month, held, std::move(with_details)));
  COFFRE_ASSIGN_OR_RETURN(auto erase,
                          db.Prepare("UPDATE audit_entries SET details = NULL, erased = 1 "
                                     "WHERE details IS NOT NULL AND details_month = ?"));
  COFFRE_ASSIGN_OR_RETURN(auto shred, db.Prepare("DELETE FROM audit_month_keys WHERE month = ?"));
  COFFRE_ASSIGN_OR_RETURN(auto changes, db.Prepare("SELECT changes()"));
  std::uint64_t erased = 0;
  for (const std::int64_t month : to_erase) {
    COFFRE_RETURN_IF_ERROR(erase.Bind(1, month));
    COFFRE_ASSIGN_OR_RETURN(const bool row, erase.Step());
    (void)row;
    erase.Reset();
    COFFRE_ASSIGN_OR_RETURN(const bool counted, changes.Step());
    if (counted) erased += static_cast<std::uint64_t>(changes.ColumnInt64(0));
    changes.Reset();
    // Destroying the month's keys is what makes the erasure final: any copy of its sealed
    // details left elsewhere (a backup, an export) can no longer be opened.
    COFFRE_RETURN_IF_ERROR(shred.Bind(1, month));
    COFFRE_ASSIGN_OR_RETURN(const bool shredded, shred.Step());
    (void)shredded;
    shred.Reset();
  }
  COFFRE_RETURN_IF_ERROR(transaction.Commit());
  if (!to_erase.empty()) {
    // secure_delete zeroes the freed pages in audit.db, but the old pages stay in the
    // write-ahead log until a checkpoint: move them out now rather than at the next close.
    // A reader that holds the log open can stop it; the next run tries again.
    (void)db.Execute("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  return erased;
}

Status AuditStore::AddLegalHold(std::span<const std::uint8_t> hold, std::int64_t placed_ms) {
  COFFRE_ASSIGN_OR_RETURN(auto insert,
                          impl_->db->Prepare("INSERT INTO audit_legal_holds (hold, placed_ms) VALUES (?, ?)"));
  COFFRE_RETURN_IF_ERROR(insert.Bind(1, hold));
  COFFRE_RETURN_IF_ERROR(insert.Bind(2, placed_ms));
  COFFRE_ASSIGN_OR_RETURN(const bool row, insert.Step());
  (void)row;
  return Ok();
}

Result<std::vector<std::vector<std::uint8_t>>> AuditStore::LegalHolds() {
  COFFRE_ASSIGN_OR_RETURN(auto query, impl_->db->Prepare("SELECT hold FROM audit_legal_holds ORDER BY id"));
  std::vector<std::vector<std::uint8_t>> holds;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, query.Step());
    if (!row) break;
    const auto hold = query.ColumnBlob(0);
    holds.emplace_back(hold.begin(), hold.end());
  }
  return holds;
}

}  // namespace coffre::storage
