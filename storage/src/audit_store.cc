#include "coffre/storage/audit_store.h"

#include <algorithm>
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

Result<std::uint64_t> AuditStore::EraseDetailsBefore(std::int64_t before_month,
                                                     std::span<const std::int64_t> held) {
  COFFRE_ASSIGN_OR_RETURN(auto transaction, impl_->db->Begin());
  COFFRE_ASSIGN_OR_RETURN(auto months,
                          impl_->db->Prepare("SELECT DISTINCT details_month FROM audit_entries "
                                             "WHERE details IS NOT NULL AND details_month < ?"));
  COFFRE_RETURN_IF_ERROR(months.Bind(1, before_month));
  std::vector<std::int64_t> to_erase;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, months.Step());
    if (!row) break;
    const std::int64_t month = months.ColumnInt64(0);
    if (std::find(held.begin(), held.end(), month) == held.end()) to_erase.push_back(month);
  }
  COFFRE_ASSIGN_OR_RETURN(auto erase,
                          impl_->db->Prepare("UPDATE audit_entries SET details = NULL, erased = 1 "
                                             "WHERE details IS NOT NULL AND details_month = ?"));
  COFFRE_ASSIGN_OR_RETURN(auto changes, impl_->db->Prepare("SELECT changes()"));
  std::uint64_t erased = 0;
  for (const std::int64_t month : to_erase) {
    COFFRE_RETURN_IF_ERROR(erase.Bind(1, month));
    COFFRE_ASSIGN_OR_RETURN(const bool row, erase.Step());
    (void)row;
    erase.Reset();
    COFFRE_ASSIGN_OR_RETURN(const bool counted, changes.Step());
    if (counted) erased += static_cast<std::uint64_t>(changes.ColumnInt64(0));
    changes.Reset();
  }
  COFFRE_RETURN_IF_ERROR(transaction.Commit());
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
