#include "audit_recorder.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "coffre/audit/legal_hold.h"
#include "coffre/crypto/kdf.h"
#include "coffre/storage/audit_store.h"

namespace coffre::server {
namespace {

constexpr std::string_view kLogKeyLabel = "coffre/audit-log-key/v1";
constexpr std::string_view kPseudonymKeyLabel = "coffre/audit-pseudonym-key/v1";

std::int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Months since January 1970 of a Unix time in ms: the unit retention works in.
std::int64_t MonthOf(std::int64_t unix_ms) {
  using namespace std::chrono;
  const year_month_day day{floor<days>(sys_time<milliseconds>(milliseconds(unix_ms)))};
  return (static_cast<int>(day.year()) - 1970) * 12 +
         static_cast<std::int64_t>(static_cast<unsigned>(day.month())) - 1;
}

std::optional<audit::ObjectId> ObjectIdOf(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != audit::kObjectIdSize) return std::nullopt;
  audit::ObjectId id{};
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

}  // namespace

AuditRecorder::AuditRecorder(AuditConfig config, crypto::SigningKey log_key,
                             audit::NoteVerifier verifier, crypto::SecretBytes pseudonym_key,
                             std::optional<crypto::X25519PublicKey> auditor,
                             std::function<std::int64_t()> clock)
    : config_(std::move(config)),
      log_key_(std::move(log_key)),
      verifier_(std::move(verifier)),
      pseudonym_key_(std::move(pseudonym_key)),
      organisation_auditor_(std::move(auditor)),
      clock_(clock ? std::move(clock) : SystemNowMs) {}

Result<std::unique_ptr<AuditRecorder>> AuditRecorder::Open(const std::filesystem::path& data_dir,
                                                           const crypto::SecretBytes& operator_key,
                                                           const AuditConfig& config,
                                                           std::function<std::int64_t()> clock) {
  COFFRE_RETURN_IF_ERROR(audit::ValidateOrigin(config.origin));
  COFFRE_RETURN_IF_ERROR(audit::ValidateNodeName(config.node));
  COFFRE_RETURN_IF_ERROR(audit::ValidateJurisdiction(config.jurisdiction));
  // Both keys follow from the operator key: the same data directory keeps the same log
  // identity, and there is no second secret to keep (decision 0016).
  COFFRE_ASSIGN_OR_RETURN(const auto seed, crypto::DeriveSubkey(operator_key.span(), kLogKeyLabel));
  COFFRE_ASSIGN_OR_RETURN(auto log_key, crypto::SigningKey::FromSeed(seed.span()));
  COFFRE_ASSIGN_OR_RETURN(auto pseudonym_key,
                          crypto::DeriveSubkey(operator_key.span(), kPseudonymKeyLabel));
  COFFRE_ASSIGN_OR_RETURN(auto verifier,
                          audit::NoteVerifier::FromPublicKey(config.origin, log_key.verify_key()));
  std::optional<crypto::X25519PublicKey> auditor;
  if (config.auditor_key) auditor = *config.auditor_key;
  COFFRE_ASSIGN_OR_RETURN(auto store,
                          storage::AuditStore::Open(data_dir / kAuditStoreFile, operator_key));
  std::unique_ptr<AuditRecorder> recorder(new AuditRecorder(
      config, std::move(log_key), std::move(verifier), std::move(pseudonym_key), auditor,
      std::move(clock)));
  AuditLog::Options options;
  options.sign = [raw = recorder.get()](std::uint64_t size, const audit::Hash& root) {
    return audit::SignCheckpoint(audit::Checkpoint{raw->config_.origin, size, root}, raw->log_key_,
                                 raw->config_.origin);
  };
  options.maintenance = [raw = recorder.get()] { (void)raw->ApplyRetention(); };
  COFFRE_ASSIGN_OR_RETURN(recorder->log_, AuditLog::Open(std::move(store), std::move(options)));
  COFFRE_RETURN_IF_ERROR(recorder->ApplyRetention());
  return recorder;
}

Result<std::uint64_t> AuditRecorder::ApplyRetention() {
  const std::int64_t month = MonthOf(clock_());
  // Only the current month seals new details: the keys of earlier ones need not stay in
  // memory (their sealed copies on disk serve the auditor until retention destroys them).
  ForgetMonthKeysBefore(month);
  const std::int64_t keep_from =
      month - static_cast<std::int64_t>(std::max<std::uint32_t>(6, config_.retention_months));
  COFFRE_ASSIGN_OR_RETURN(const auto held, HeldMonths());
  return log_->EraseDetailsBefore(keep_from, held);
}

Result<std::vector<std::int64_t>> AuditRecorder::HeldMonths() {
  std::vector<std::int64_t> held = config_.legal_hold_months;
  COFFRE_ASSIGN_OR_RETURN(const auto holds, log_->LegalHolds());
  for (const auto& stored : holds) {
    // Verified before it was stored; one that no longer decodes is a damaged store, and
    // erasing on a damaged store would destroy what a hold may protect.
    COFFRE_ASSIGN_OR_RETURN(const audit::LegalHold hold, audit::DecodeLegalHold(stored));
    held.insert(held.end(), hold.months.begin(), hold.months.end());
  }
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  return held;
}

Result<std::shared_ptr<const AuditRecorder::ActiveMonthKey>> AuditRecorder::MonthKeyFor(
    std::int64_t month, const crypto::X25519PublicKey& auditor) {
  const MonthKeySlot slot{month, auditor.bytes()};
  {
    std::shared_lock lock(month_keys_mutex_);
    if (auto found = month_keys_.find(slot); found != month_keys_.end()) return found->second;
  }
  std::unique_lock lock(month_keys_mutex_);
  if (auto found = month_keys_.find(slot); found != month_keys_.end()) return found->second;
  // Once per month and auditor key: holding the lock through one durable write keeps two
  // callers from making two keys for the same slot.
  audit::MonthKey key = audit::MonthKey::Generate();
  const std::vector<std::uint8_t> sealed = audit::SealMonthKey(auditor, key);
  COFFRE_ASSIGN_OR_RETURN(const std::uint64_t key_id,
                          log_->AddMonthKey(month, auditor.bytes(), sealed));
  auto active = std::make_shared<const ActiveMonthKey>(ActiveMonthKey{key_id, std::move(key)});
  month_keys_.emplace(slot, active);
  return active;
}

void AuditRecorder::ForgetMonthKeysBefore(std::int64_t month) {
  std::unique_lock lock(month_keys_mutex_);
  month_keys_.erase(month_keys_.begin(), month_keys_.lower_bound(MonthKeySlot{month, {}}));
}

Result<std::uint64_t> AuditRecorder::Record(const AuditEvent& event) {
  const std::int64_t now = clock_();
  audit::Entry entry;
  entry.type = event.type;
  entry.result = event.result;
  entry.relay_time_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now));
  if (!event.user_id.empty()) {
    auto actor = audit::PseudonymizeActor(pseudonym_key_, event.user_id);
    if (actor) entry.actor = *actor;  // an invalid login stays out of the pseudonym
  }
  entry.device_id = event.device_id <= audit::kMaxDeviceId ? event.device_id : 0;
  entry.team_id = ObjectIdOf(event.team_id);
  entry.item_id = ObjectIdOf(event.item_id);
  entry.object_version = event.version;
  if (event.client_event != nullptr) entry.client_event = *event.client_event;
  entry.node = config_.node;
  entry.jurisdiction = config_.jurisdiction;

  storage::AuditAppend record;
  const crypto::X25519PublicKey* auditor =
      event.team_auditor != nullptr ? event.team_auditor
      : organisation_auditor_      ? &*organisation_auditor_
                                   : nullptr;
  if (auditor != nullptr) {
    audit::Details details = event.details;
    if (details.actor_user_id.empty() && entry.actor) details.actor_user_id = std::string(event.user_id);
    const std::int64_t month = MonthOf(now);
    COFFRE_ASSIGN_OR_RETURN(const auto month_key, MonthKeyFor(month, *auditor));
    COFFRE_ASSIGN_OR_RETURN(record.sealed_details,
                            audit::SealDetailsUnder(month_key->key, month_key->key_id, details));
    entry.details_hash = audit::DetailsHash(record.sealed_details);
    record.details_month = month;
  }
  COFFRE_ASSIGN_OR_RETURN(record.entry, audit::EncodeEntry(entry));
  const audit::Hash leaf = audit::HashLeaf(record.entry);
  std::copy(leaf.begin(), leaf.end(), record.leaf_hash.begin());
  return log_->Record(std::move(record));
}

}  // namespace coffre::server
