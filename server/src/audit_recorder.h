// What the relay writes into its audit log (decision 0016): each event becomes an
// audit::Entry — pseudonymous actor, node, jurisdiction, relay time — with its details
// sealed, when an auditor key is known, under the month key of (this month, that auditor
// key), and is recorded durably before the caller goes on. Also holds the log's signing key
// and answers for its verifier key.
//
// Month keys live in memory only while their month is current; on disk they exist only
// sealed to their auditor key (audit::SealMonthKey), stored before the first entry sealed
// under them. A restart makes a new key (with a new id) for the same month.
#ifndef COFFRE_SERVER_SRC_AUDIT_RECORDER_H_
#define COFFRE_SERVER_SRC_AUDIT_RECORDER_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "audit_log.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/signed_note.h"
#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signature.h"
#include "coffre/crypto/x25519.h"
#include "config.h"

namespace coffre::server {

// The audit log's file in the data directory.
inline constexpr std::string_view kAuditStoreFile = "audit.db";

struct AuditEvent {
  audit::EventType type = audit::EventType::kLogin;
  audit::EventResult result = audit::EventResult::kSuccess;
  std::string_view user_id;  // empty: not known (a failed login names no valid user)
  std::uint32_t device_id = 0;
  std::span<const std::uint8_t> team_id;  // 16 bytes or empty
  std::span<const std::uint8_t> item_id;  // 16 bytes or empty
  std::uint64_t version = 0;
  // A device's signed statement (client event types only): recorded whole in the entry.
  const audit::ClientEvent* client_event = nullptr;
  audit::Details details;
  // The team's auditor key from its chain, when the event concerns a team that has one;
  // otherwise the organisation's (configuration) is used, if any.
  const crypto::X25519PublicKey* team_auditor = nullptr;
};

class AuditRecorder {
 public:
  // Opens DATA_DIR/audit.db under the operator key and derives the log and pseudonym keys
  // from it. `clock`: Unix ms (empty: the system clock).
  static Result<std::unique_ptr<AuditRecorder>> Open(const std::filesystem::path& data_dir,
                                                     const crypto::SecretBytes& operator_key,
                                                     const AuditConfig& config,
                                                     std::function<std::int64_t()> clock);

  // Records `event`; returns once it is durable.
  Result<std::uint64_t> Record(const AuditEvent& event);

  // Erases the sealed details older than the retention period and destroys their month keys,
  // outside legal holds (decision 0016), and forgets the in-memory keys of past months; the
  // relay runs it at start and then hourly. Returns how many details were erased.
  Result<std::uint64_t> ApplyRetention();
  // The months held: those of the configuration and of every placed hold (decision 0018).
  Result<std::vector<std::int64_t>> HeldMonths();

  AuditLog& log() { return *log_; }
  const std::string& origin() const { return config_.origin; }
  // "<name>+<key id>+<key>": what clients and auditors pin.
  std::string VerifierKey() const { return verifier_.VerifierKey(); }
  const audit::NoteVerifier& verifier() const { return verifier_; }

 private:
  // A month key in use: its id in audit.db and the key.
  struct ActiveMonthKey {
    std::uint64_t key_id = 0;
    audit::MonthKey key;
  };
  using MonthKeySlot = std::pair<std::int64_t, std::array<std::uint8_t, crypto::kX25519KeySize>>;

  // The key that seals `month`'s details for `auditor`: the one in memory, or a new one,
  // stored sealed to `auditor` (durably) before it is returned.
  Result<std::shared_ptr<const ActiveMonthKey>> MonthKeyFor(std::int64_t month,
                                                            const crypto::X25519PublicKey& auditor);
  // Drops (and so wipes, once no Record uses them) the in-memory keys of months before `month`.
  void ForgetMonthKeysBefore(std::int64_t month);

  AuditRecorder(AuditConfig config, crypto::SigningKey log_key, audit::NoteVerifier verifier,
                crypto::SecretBytes pseudonym_key, std::optional<crypto::X25519PublicKey> auditor,
                std::function<std::int64_t()> clock);

  const AuditConfig config_;
  const crypto::SigningKey log_key_;
  const audit::NoteVerifier verifier_;
  const crypto::SecretBytes pseudonym_key_;
  const std::optional<crypto::X25519PublicKey> organisation_auditor_;
  const std::function<std::int64_t()> clock_;
  std::unique_ptr<AuditLog> log_;

  // Readers (every sealed Record) share; creating or forgetting a key is exclusive.
  std::shared_mutex month_keys_mutex_;
  std::map<MonthKeySlot, std::shared_ptr<const ActiveMonthKey>> month_keys_;
};

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_AUDIT_RECORDER_H_
