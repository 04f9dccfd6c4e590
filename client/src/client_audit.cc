// The relay's audit log seen from a client (decision 0016): every device is a witness
// (WitnessAuditLog: the log key pinned on first sight, each newer checkpoint accepted only
// with a consistency proof from the stored one, anything else kept as evidence), and
// auditors read and verify the entries (VerifyAuditLog, AuditEntries).
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include <fstream>

#include "audit_bundle_format.h"
#include "client_impl.h"
#include "coffre/client/audit_bundle.h"
#include "coffre/crypto/kdf.h"
#include "coffre/audit/checkpoint.h"
#include "coffre/audit/client_event.h"
#include "coffre/audit/entry.h"
#include "coffre/audit/merkle.h"
#include "coffre/audit/signed_note.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// The auditor key pair this profile holds, if any.
Result<std::optional<crypto::X25519KeyPair>> LoadAuditorKey(Client::Impl& impl) {
  COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*impl.db, "SELECT secret FROM auditor_key WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return std::optional<crypto::X25519KeyPair>();
  COFFRE_ASSIGN_OR_RETURN(auto pair, crypto::X25519KeyPair::FromSecret(row.ColumnSecret(0)));
  return std::optional<crypto::X25519KeyPair>(std::move(pair));
}

struct StoredLog {
  std::string log_key;
  std::string origin;
  audit::Checkpoint checkpoint;
};

Result<std::optional<StoredLog>> LoadStoredLog(Client::Impl& impl) {
  COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*impl.db,
                                                  "SELECT log_key, origin, tree_size, root FROM "
                                                  "audit_log WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return std::optional<StoredLog>();
  StoredLog log;
  log.log_key = row.ColumnText(0);
  log.origin = row.ColumnText(1);
  log.checkpoint.origin = log.origin;
  log.checkpoint.size = sql::AsU64(row.ColumnInt64(2));
  const auto root = row.ColumnBlob(3);
  if (root.size() != log.checkpoint.root.size()) return Fail(ErrorCode::kCorrupt, "stored audit root damaged");
  std::copy(root.begin(), root.end(), log.checkpoint.root.begin());
  return std::optional<StoredLog>(std::move(log));
}

Status StoreCheckpoint(Client::Impl& impl, const std::string& log_key, const audit::Checkpoint& checkpoint,
                       const std::string& note) {
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM audit_log WHERE id = 1"));
  return sql::Run(*impl.db,
                  "INSERT INTO audit_log (id, log_key, origin, tree_size, root, note, verified_ms) "
                  "VALUES (1, ?, ?, ?, ?, ?, ?)",
                  log_key, checkpoint.origin, checkpoint.size, checkpoint.root, note, NowMs());
}

// Keeps what the relay showed as evidence and returns the warning to report.
std::string KeepEvidence(Client::Impl& impl, const std::string& note, const std::string& log_key,
                         const char* reason) {
  // Once per note: a relay that keeps showing the same bad checkpoint does not grow the
  // profile at every sync (the warning still comes every time).
  (void)sql::Run(*impl.db,
                 "INSERT INTO audit_evidence (note, log_key, reason, seen_ms) SELECT ?, ?, ?, ? "
                 "WHERE NOT EXISTS (SELECT 1 FROM audit_evidence WHERE note = ? AND reason = ?)",
                 note, log_key, std::string(reason), NowMs(), note, std::string(reason));
  std::string warning = "AUDIT LOG ALARM: ";
  warning += reason;
  warning += " (the relay's checkpoint is kept as evidence in this profile)";
  return warning;
}

std::vector<audit::Hash> HashesOf(const wire::AuditProof& proof) {
  std::vector<audit::Hash> hashes;
  for (const std::string& bytes : proof.hashes()) {
    audit::Hash hash{};
    if (bytes.size() == hash.size()) std::memcpy(hash.data(), bytes.data(), hash.size());
    hashes.push_back(hash);
  }
  return hashes;
}

}  // namespace

Result<audit::Checkpoint> Client::Impl::WitnessAuditLog(SyncReport* report, bool fresh,
                                                        std::string* alarm) {
  wire::Request request;
  request.mutable_get_audit_checkpoint()->set_fresh(fresh);
  COFFRE_ASSIGN_OR_RETURN(auto response, RawCall(request));
  if (response.has_error()) {
    if (response.error().code() == wire::ERROR_CODE_NOT_FOUND) {
      return Fail(ErrorCode::kNotFound, "the relay keeps no audit log yet");
    }
    return Fail(ErrorCode::kUnsupported, "the relay refused to show its audit log");
  }
  if (!response.has_audit_checkpoint()) return Fail(ErrorCode::kCorrupt, "the relay sent no checkpoint");
  const std::string& note = response.audit_checkpoint().note();
  const std::string& log_key = response.audit_checkpoint().log_key();
  auto alarm_with = [&](const char* reason) -> Error {
    std::string warning = KeepEvidence(*this, note, log_key, reason);
    if (alarm != nullptr) *alarm = warning;
    Warn(report, std::move(warning));
    return Error(ErrorCode::kAuthenticationFailed, reason);
  };

  COFFRE_ASSIGN_OR_RETURN(const auto stored, LoadStoredLog(*this));
  // The log key and origin are pinned on first sight, like the relay's certificate.
  const std::string pinned_key = stored ? stored->log_key : log_key;
  auto verifier = audit::NoteVerifier::FromVerifierKey(pinned_key);
  if (!verifier) return alarm_with("the relay's audit log key is malformed");
  if (stored && log_key != stored->log_key) {
    return alarm_with("the relay's audit log is now signed with another key");
  }
  std::string origin = stored ? stored->origin : verifier->name();
  auto checkpoint = audit::ParseAndVerifyCheckpoint(note, *verifier, origin);
  if (!checkpoint) return alarm_with("a checkpoint of the relay's audit log does not verify");
  if (!stored) {
    COFFRE_RETURN_IF_ERROR(StoreCheckpoint(*this, log_key, *checkpoint, note));
    return *checkpoint;
  }
  const audit::Checkpoint& old = stored->checkpoint;
  if (checkpoint->size < old.size) {
    return alarm_with("the relay's audit log is shorter than a checkpoint it signed before (rollback)");
  }
  if (checkpoint->size == old.size) {
    if (checkpoint->root != old.root) {
      return alarm_with("the relay signed two different audit logs of the same size (fork)");
    }
    return *checkpoint;
  }
  wire::Request proof_request;
  auto* consistency = proof_request.mutable_get_audit_proof()->mutable_consistency();
  consistency->set_first_size(old.size);
  consistency->set_second_size(checkpoint->size);
  COFFRE_ASSIGN_OR_RETURN(auto proof, RawCall(proof_request));
  if (!proof.has_audit_proof() ||
      !audit::VerifyConsistency(old.size, checkpoint->size, HashesOf(proof.audit_proof()), old.root,
                                checkpoint->root)) {
    return alarm_with("the relay's audit log does not extend the checkpoint this device verified (fork or rewrite)");
  }
  COFFRE_RETURN_IF_ERROR(StoreCheckpoint(*this, log_key, *checkpoint, note));
  return *checkpoint;
}

void Client::Impl::CompareGossip(const std::string& note, const std::string& sender,
                                 SyncReport* report) {
  auto stored = LoadStoredLog(*this);
  if (!stored || !*stored) return;
  const StoredLog& mine = **stored;
  auto verifier = audit::NoteVerifier::FromVerifierKey(mine.log_key);
  if (!verifier) return;
  auto theirs = audit::ParseAndVerifyCheckpoint(note, *verifier, mine.origin);
  if (!theirs) {
    Warn(report, KeepEvidence(*this, note, mine.log_key,
                              "a checkpoint in a post is not signed by the pinned audit log key"));
    return;
  }
  const audit::Checkpoint& own = mine.checkpoint;
  bool consistent = true;
  if (theirs->size == own.size) {
    consistent = theirs->root == own.root;
  } else {
    const bool theirs_first = theirs->size < own.size;
    const audit::Checkpoint& first = theirs_first ? *theirs : own;
    const audit::Checkpoint& second = theirs_first ? own : *theirs;
    wire::Request request;
    auto* consistency = request.mutable_get_audit_proof()->mutable_consistency();
    consistency->set_first_size(first.size);
    consistency->set_second_size(second.size);
    auto proof = RawCall(request);
    if (!proof) return;  // unreachable relay: checked at the next sync that sees a post
    consistent = proof->has_audit_proof() &&
                 audit::VerifyConsistency(first.size, second.size, HashesOf(proof->audit_proof()),
                                          first.root, second.root);
  }
  if (!consistent) {
    std::string warning = KeepEvidence(
        *this, note, mine.log_key,
        "a member's view of the audit log (in a post) and this device's are not one log: the relay shows members different logs (fork)");
    warning += "; seen in a post by ";
    warning += sender;
    Warn(report, std::move(warning));
  }
}

Result<std::string> Client::AuditorKey() {
  COFFRE_ASSIGN_OR_RETURN(auto held, LoadAuditorKey(*impl_));
  if (!held) {
    crypto::X25519KeyPair pair = crypto::X25519KeyPair::Generate();
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db,
                                    "INSERT INTO auditor_key (id, secret, created_ms) VALUES (1, ?, ?)",
                                    pair.secret(), NowMs()));
    held = std::move(pair);
  }
  return Hex(held->public_key().bytes());
}

Status Client::SetTeamAuditorKey(std::string_view team_name, std::string_view public_key_hex) {
  COFFRE_ASSIGN_OR_RETURN(const auto bytes, ParseHex(public_key_hex, crypto::kX25519KeySize));
  COFFRE_ASSIGN_OR_RETURN(const auto key, crypto::X25519PublicKey::FromBytes(bytes));
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto chain, impl_->RefreshChain(team));
  if (!chain.IsAdmin(impl_->user_id)) {
    return Fail(ErrorCode::kInvalidArgument, "only a team admin can set the auditor key");
  }
  wire::ChainStatementBody body;
  body.mutable_set_auditor_key()->set_auditor_key(key.bytes().data(), key.bytes().size());
  return impl_->AppendStatement(team, chain, std::move(body));
}

namespace {

// What is wrong with a device's signed event at this point of the log, or "" when nothing.
std::string CheckClientEvent(audit::ClientEventChains& chains, const audit::ClientEvent& event) {
  if (!audit::VerifyClientEventSignature(event)) return "a device's signed audit event does not verify";
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  switch (chains.Add(event, &from, &to)) {
    case audit::ClientEventChains::Link::kGap: {
      std::string problem = "events ";
      problem += std::to_string(from);
      problem += "..";
      problem += std::to_string(to);
      problem += " of a device are missing from the log before this one";
      return problem;
    }
    case audit::ClientEventChains::Link::kFork:
      return "a device's signed audit events fork: two under one number, or a broken link";
    default:
      return "";
  }
}

}  // namespace

Result<AuditVerifyReport> Client::VerifyAuditLog() {
  Impl& impl = *impl_;
  AuditVerifyReport report;
  COFFRE_ASSIGN_OR_RETURN(const auto before, LoadStoredLog(impl));
  report.previous_size = before ? before->checkpoint.size : 0;
  (void)impl.SendClientEvents(nullptr);  // so that the checkpoint covers this device's own
  std::string alarm;
  auto checkpoint = impl.WitnessAuditLog(nullptr, /*fresh=*/true, &alarm);
  if (!checkpoint) {
    if (checkpoint.error().code() != ErrorCode::kAuthenticationFailed) return checkpoint.error();
    report.problem = alarm;
    return report;
  }
  report.tree_size = checkpoint->size;
  report.root = Hex(checkpoint->root);

  // Every entry up to the checkpoint: well formed, in order, and hashing to its root.
  std::vector<audit::Hash> leaves;
  leaves.reserve(static_cast<std::size_t>(checkpoint->size));
  // Devices' signed events: each signature, and each device's numbering and links.
  audit::ClientEventChains chains;
  std::map<std::uint64_t, audit::ClientEvent> client_events;  // by log index
  while (leaves.size() < checkpoint->size) {
    wire::Request request;
    request.mutable_get_audit_entries()->set_from_index(leaves.size());
    request.mutable_get_audit_entries()->set_limit(protocol::kMaxAuditEntriesPerPage);
    COFFRE_ASSIGN_OR_RETURN(auto page, impl.Call(request));
    if (!page.has_audit_entries() || page.audit_entries().entries_size() == 0) {
      report.first_bad_index = leaves.size();
      report.problem = "the relay does not return every entry its checkpoint covers";
      return report;
    }
    for (const auto& entry : page.audit_entries().entries()) {
      if (leaves.size() == checkpoint->size) break;
      const auto bytes = AsBytes(entry.entry());
      if (entry.index() != leaves.size()) {
        report.first_bad_index = leaves.size();
        report.problem = "the relay skipped or reordered entries";
        return report;
      }
      auto decoded = audit::DecodeEntry(bytes);
      if (!decoded) {
        report.first_bad_index = leaves.size();
        report.problem = "an entry is not a valid encoding";
        return report;
      }
      if (decoded->details_hash && !entry.sealed_details().empty() &&
          audit::DetailsHash(AsBytes(entry.sealed_details())) != *decoded->details_hash) {
        report.first_bad_index = leaves.size();
        report.problem = "an entry's sealed details do not match the hash it commits to";
        return report;
      }
      if (const auto& event = decoded->client_event) {
        if (std::string problem = CheckClientEvent(chains, *event); !problem.empty()) {
          report.first_bad_index = leaves.size();
          report.problem = std::move(problem);
          return report;
        }
        client_events.emplace(leaves.size(), *event);
      }
      leaves.push_back(audit::HashLeaf(bytes));
    }
  }
  report.entries_checked = leaves.size();

  // Leaves this profile verified before must be the same ones.
  COFFRE_ASSIGN_OR_RETURN(auto known, sql::Prepared(*impl.db, "SELECT idx, leaf_hash FROM audit_leaves ORDER BY idx"));
  std::uint64_t known_count = 0;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, known.Step());
    if (!row) break;
    const std::uint64_t index = sql::AsU64(known.ColumnInt64(0));
    const auto hash = known.ColumnBlob(1);
    ++known_count;
    if (index >= leaves.size() || hash.size() != audit::kHashSize ||
        std::memcmp(hash.data(), leaves[index].data(), audit::kHashSize) != 0) {
      report.first_bad_index = index;
      report.problem = "an entry verified before has changed or disappeared";
      return report;
    }
  }
  if (audit::MerkleRoot(leaves) != checkpoint->root) {
    // Name the first entry the relay's own signed tree does not contain as shown.
    for (std::uint64_t index = 0; index < leaves.size(); ++index) {
      wire::Request request;
      request.mutable_get_audit_proof()->mutable_inclusion()->set_index(index);
      request.mutable_get_audit_proof()->mutable_inclusion()->set_tree_size(checkpoint->size);
      COFFRE_ASSIGN_OR_RETURN(auto proof, impl.RawCall(request));
      if (!proof.has_audit_proof() ||
          !audit::VerifyInclusion(index, checkpoint->size, leaves[index], HashesOf(proof.audit_proof()),
                                  checkpoint->root)) {
        report.first_bad_index = index;
        break;
      }
    }
    report.problem = "the entries the relay returns do not hash to its signed checkpoint";
    return report;
  }
  // Every event this device reported is where the relay said it recorded it.
  COFFRE_ASSIGN_OR_RETURN(auto own, sql::Prepared(*impl.db, "SELECT event, log_index FROM client_events "
                                                            "WHERE log_index IS NOT NULL ORDER BY sequence"));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, own.Step());
    if (!row) break;
    const auto sent = own.ColumnBlob(0);
    const std::uint64_t index = sql::AsU64(own.ColumnInt64(1));
    const auto found = client_events.find(index);
    const auto recorded = found != client_events.end() ? audit::EncodeClientEvent(found->second)
                                                       : std::array<std::uint8_t, audit::kClientEventSize>{};
    if (found == client_events.end() || !std::equal(sent.begin(), sent.end(), recorded.begin(), recorded.end())) {
      report.first_bad_index = index;
      report.problem = "an audit event this device reported is not in the log where the relay recorded it";
      return report;
    }
  }
  // Remember what was verified, for the next run.
  const Status remembered = impl.signal_stores->RunInTransaction([&]() -> Status {
    for (std::uint64_t index = known_count; index < leaves.size(); ++index) {
      COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "INSERT INTO audit_leaves (idx, leaf_hash) VALUES (?, ?)",
                                      index, leaves[index]));
    }
    return Ok();
  });
  COFFRE_RETURN_IF_ERROR(remembered);
  report.ok = true;
  return report;
}

namespace {

// One entry the relay returned, decoded, with what the bundle and the views need.
struct SelectedEntry {
  std::uint64_t index = 0;
  std::vector<std::uint8_t> encoded;
  audit::Entry entry;
  std::string details;  // "none", "sealed", "erased" or "opened"
  std::optional<audit::Details> opened;
};

// The month keys that open sealed details (docs/protocol.md "Sealed details"), each opened
// once with the auditor key: one X25519 operation per month and auditor key, not per entry.
class MonthKeyCache {
 public:
  explicit MonthKeyCache(const crypto::X25519KeyPair& auditor) : auditor_(auditor) {}

  // The key that `sealed` names, from `page` or an earlier page; nullptr when the relay did
  // not send it (retention destroyed it) or it does not open with the auditor key.
  const audit::MonthKey* For(std::span<const std::uint8_t> sealed, const wire::AuditEntries& page) {
    const auto key_id = audit::SealedDetailsKeyId(sealed);
    if (!key_id) return nullptr;
    if (auto known = keys_.find(*key_id); known != keys_.end()) {
      return known->second ? &*known->second : nullptr;
    }
    for (const wire::AuditMonthKey& offered : page.month_keys()) {
      if (offered.key_id() != *key_id) continue;
      std::optional<audit::MonthKey> opened;
      const auto& own = auditor_.public_key().bytes();
      if (offered.auditor_key().size() == own.size() &&
          std::equal(own.begin(), own.end(), AsBytes(offered.auditor_key()).begin())) {
        if (auto key = audit::OpenMonthKey(auditor_, AsBytes(offered.sealed_key()))) {
          opened = std::move(*key);
        }
      }
      auto& kept = keys_[*key_id] = std::move(opened);
      return kept ? &*kept : nullptr;
    }
    return nullptr;
  }

 private:
  const crypto::X25519KeyPair& auditor_;
  std::map<std::uint64_t, std::optional<audit::MonthKey>> keys_;  // nullopt: does not open
};

// Every entry of the relay's log below `up_to` (all when nullopt) that `filter` selects.
Result<std::vector<SelectedEntry>> SelectEntries(Client::Impl& impl, const AuditFilter& filter,
                                                 std::optional<std::uint64_t> up_to) {
  std::optional<std::array<std::uint8_t, 16>> team_id;
  if (filter.team) {
    // An auditor learns the team's name from the admin's introduction, which may not have
    // reached it: the id (hex, as `team show` prints it on a member's device) does as well.
    if (auto team = impl.TeamByName(*filter.team)) {
      team_id = team->team_id;
    } else if (auto id = ParseHex(*filter.team, 16)) {
      team_id.emplace();
      std::copy(id->begin(), id->end(), team_id->begin());
    } else {
      return team.error();
    }
  }
  std::optional<audit::EventType> type;
  if (filter.type) {
    type = audit::EventTypeFromName(*filter.type);
    if (!type) return Fail(ErrorCode::kInvalidArgument, "unknown audit event type");
  }
  COFFRE_ASSIGN_OR_RETURN(const auto auditor, LoadAuditorKey(impl));
  if (filter.user && !auditor) {
    return Fail(ErrorCode::kInvalidArgument,
                "--user needs the details of entries, which only the auditor key opens");
  }
  std::optional<MonthKeyCache> month_keys;
  if (auditor) month_keys.emplace(*auditor);
  std::vector<SelectedEntry> selected;
  for (std::uint64_t from = 0; !up_to || from < *up_to;) {
    wire::Request request;
    request.mutable_get_audit_entries()->set_from_index(from);
    request.mutable_get_audit_entries()->set_limit(protocol::kMaxAuditEntriesPerPage);
    COFFRE_ASSIGN_OR_RETURN(auto page, impl.Call(request));
    if (!page.has_audit_entries()) return Fail(ErrorCode::kCorrupt, "the relay sent no audit entries");
    for (const auto& stored : page.audit_entries().entries()) {
      if (stored.index() != from) {
        return Fail(ErrorCode::kCorrupt, "the relay skipped audit entries: run `coffre audit verify`");
      }
      from = stored.index() + 1;
      if (up_to && stored.index() >= *up_to) break;
      auto entry = audit::DecodeEntry(AsBytes(stored.entry()));
      if (!entry) return Fail(ErrorCode::kCorrupt, "the relay sent a malformed audit entry: run `coffre audit verify`");
      if (type && entry->type != *type) continue;
      if (filter.from_ms && entry->relay_time_ms < *filter.from_ms) continue;
      if (filter.to_ms && entry->relay_time_ms >= *filter.to_ms) continue;
      if (team_id && (!entry->team_id || !std::equal(entry->team_id->begin(), entry->team_id->end(),
                                                     team_id->begin()))) {
        continue;
      }
      if (filter.object && (!entry->item_id || Hex(*entry->item_id).rfind(*filter.object, 0) != 0)) continue;
      SelectedEntry out;
      out.index = stored.index();
      out.encoded.assign(stored.entry().begin(), stored.entry().end());
      out.entry = std::move(*entry);
      out.details = !out.entry.details_hash ? "none" : stored.details_erased() ? "erased" : "sealed";
      const auto sealed = AsBytes(stored.sealed_details());
      if (month_keys && !sealed.empty() && out.entry.details_hash &&
          audit::DetailsHash(sealed) == *out.entry.details_hash) {
        if (const audit::MonthKey* key = month_keys->For(sealed, page.audit_entries())) {
          if (auto details = audit::OpenDetailsUnder(*key, sealed)) {
            out.opened = std::move(*details);
          }
        }
      }
      if (filter.user && (!out.opened || (out.opened->actor_user_id != *filter.user &&
                                          out.opened->subject_user_id != *filter.user))) {
        continue;
      }
      selected.push_back(std::move(out));
    }
    if (!page.audit_entries().more()) break;
  }
  return selected;
}

}  // namespace

Result<std::vector<AuditEntryView>> Client::AuditEntries(const AuditFilter& filter) {
  COFFRE_ASSIGN_OR_RETURN(auto selected, SelectEntries(*impl_, filter, std::nullopt));
  std::vector<AuditEntryView> views;
  views.reserve(selected.size());
  for (const SelectedEntry& one : selected) {
    const audit::Entry& entry = one.entry;
    AuditEntryView view;
    view.index = one.index;
    view.time_ms = entry.relay_time_ms;
    view.type = std::string(audit::EventTypeName(entry.type));
    view.result = std::string(audit::EventResultName(entry.result));
    if (entry.actor) view.actor = Hex(*entry.actor).substr(0, 16);
    view.device_id = entry.device_id;
    if (entry.team_id) view.team = Hex(*entry.team_id);
    if (entry.item_id) view.object = Hex(*entry.item_id);
    view.version = entry.object_version;
    view.node = entry.node;
    view.jurisdiction = entry.jurisdiction;
    if (entry.client_event) {
      view.device_sequence = entry.client_event->sequence;
      view.device_time_ms = entry.client_event->client_time_ms;
    }
    view.details = one.details;
    if (one.opened) {
      view.details = "opened";
      view.actor_user = one.opened->actor_user_id;
      view.subject_user = one.opened->subject_user_id;
      view.address = one.opened->ip_address;
      view.reason = one.opened->reason;
    }
    views.push_back(std::move(view));
  }
  return views;
}

Result<AuditExportReport> Client::ExportAudit(const AuditFilter& filter,
                                              const std::filesystem::path& folder) {
  Impl& impl = *impl_;
  std::error_code ec;
  if (std::filesystem::exists(folder, ec)) {
    return Fail(ErrorCode::kAlreadyExists, "the bundle folder already exists");
  }
  // A checkpoint this device verified (signature, and consistency with the one before).
  COFFRE_ASSIGN_OR_RETURN(const audit::Checkpoint checkpoint,
                          impl.WitnessAuditLog(nullptr, /*fresh=*/true));
  COFFRE_ASSIGN_OR_RETURN(auto stored, sql::Prepared(*impl.db, "SELECT note, log_key FROM audit_log WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool found, stored.Step());
  if (!found) return Fail(ErrorCode::kCorrupt, "the verified checkpoint was not stored");
  const std::string note = stored.ColumnText(0);
  const std::string log_key = stored.ColumnText(1);
  COFFRE_ASSIGN_OR_RETURN(auto selected, SelectEntries(impl, filter, checkpoint.size));

  std::string records;
  std::string proofs;
  bundle::AppendFileHeaders(selected.size(), records, proofs);
  std::string json;
  std::string csv(bundle::kCsvHeader);
  for (const SelectedEntry& one : selected) {
    wire::Request request;
    request.mutable_get_audit_proof()->mutable_inclusion()->set_index(one.index);
    request.mutable_get_audit_proof()->mutable_inclusion()->set_tree_size(checkpoint.size);
    COFFRE_ASSIGN_OR_RETURN(auto reply, impl.Call(request));
    const std::vector<audit::Hash> proof = reply.has_audit_proof() ? HashesOf(reply.audit_proof())
                                                                   : std::vector<audit::Hash>();
    // Nothing goes into a bundle that would not verify.
    if (!audit::VerifyInclusion(one.index, checkpoint.size, audit::HashLeaf(one.encoded), proof,
                                checkpoint.root)) {
      return Fail(ErrorCode::kAuthenticationFailed,
                  "an entry is not in the relay's signed log: run `coffre audit verify`");
    }
    const auto details = bundle::DetailsStateFromName(one.details);
    if (!details) return Fail(ErrorCode::kInternal, "an entry's details state has no bundle form");
    const bundle::RecordInput input{one.index, one.encoded, &one.entry, *details, proof};
    if (!bundle::AppendBinaryRecord(input, records, proofs)) {
      return Fail(ErrorCode::kCorrupt, "an entry or its proof does not fit the bundle format");
    }
    bundle::AppendJsonLine(one.index, one.entry, *details, json);
    bundle::AppendCsvLine(one.index, one.entry, *details, csv);
  }

  // Written into a fresh folder next to the target, renamed into place when complete.
  std::filesystem::path staging = folder;
  staging += ".partial";
  std::filesystem::remove_all(staging, ec);
  std::filesystem::create_directories(staging, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create the bundle folder");
  auto write = [&](std::string_view name, const std::string& data) -> Status {
    std::ofstream out(staging / name, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) return Fail(ErrorCode::kIo, "cannot write the bundle (disk full?)");
    return Ok();
  };
  // The manifest hashes what nothing else authenticates. Each proof in proofs.bin is
  // checked to the signed root, and each JSON and CSV line against the one its record in
  // records.bin gives.
  nlohmann::json files = {
      {std::string(bundle::kCheckpointFile), Hex(crypto::Blake2b256(AsBytes(note)))},
      {std::string(bundle::kRecordsBinaryFile), Hex(crypto::Blake2b256(AsBytes(records)))},
  };
  COFFRE_ASSIGN_OR_RETURN(auto identity, sql::Prepared(*impl.db, "SELECT certificate FROM identity WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool has_identity, identity.Step());
  if (!has_identity) return Fail(ErrorCode::kCorrupt, "profile has no identity");
  const nlohmann::json manifest = {
      {"format", std::string(kAuditBundleFormat)},
      {"origin", checkpoint.origin},
      {"log_key", log_key},
      {"tree_size", checkpoint.size},
      {"root", Hex(checkpoint.root)},
      {"records", selected.size()},
      {"files", files},
      {"created_ms", NowMs()},
      {"exported_by",
       {{"user", impl.user_id},
        {"device", impl.device_id},
        {"user_identity_key", Hex(impl.user_key->verify_key().bytes())},
        {"certificate", Hex(identity.ColumnBlob(0))}}},
  };
  const std::string manifest_text = manifest.dump(2) + "\n";
  const auto signature = impl.device_key->Sign(bundle::kManifestLabel, AsBytes(manifest_text));
  const Status written = [&]() -> Status {
    COFFRE_RETURN_IF_ERROR(write(bundle::kCheckpointFile, note));
    COFFRE_RETURN_IF_ERROR(write(bundle::kRecordsBinaryFile, records));
    COFFRE_RETURN_IF_ERROR(write(bundle::kProofsFile, proofs));
    COFFRE_RETURN_IF_ERROR(write(bundle::kRecordsJsonFile, json));
    COFFRE_RETURN_IF_ERROR(write(bundle::kRecordsCsvFile, csv));
    COFFRE_RETURN_IF_ERROR(write(bundle::kManifestFile, manifest_text));
    return write(bundle::kSignatureFile, Hex(signature) + "\n");
  }();
  if (!written) {
    std::filesystem::remove_all(staging, ec);
    return written.error();
  }
  std::filesystem::rename(staging, folder, ec);
  if (ec) {
    std::filesystem::remove_all(staging, ec);
    return Fail(ErrorCode::kIo, "cannot move the bundle into place");
  }
  return AuditExportReport{selected.size(), checkpoint.size};
}

}  // namespace coffre::client
