// What only this device sees, reported to the relay's audit log as statements it signs
// (decision 0017): a document written to a file (GetDocument) or opened from an
// application's own copy (RecordDocumentOpened). Each event is numbered and linked to the
// one before, signed with the device key, stored in the profile before anything else
// happens, and sent at once when the relay is reachable, else at the next sync.
#include <algorithm>
#include <string>

#include "client_impl.h"
#include "coffre/audit/client_event.h"
#include "profile_sql.h"
#include "protobuf_bytes.h"

namespace coffre::client {
namespace {

// The same relay errors as the outbox's: these pass, anything else is a refusal for good.
bool IsPassing(wire::ErrorCode code) {
  switch (code) {
    case wire::ERROR_CODE_RATE_LIMITED:
    case wire::ERROR_CODE_UNAVAILABLE:
    case wire::ERROR_CODE_INTERNAL:
    case wire::ERROR_CODE_UNAUTHENTICATED:
    case wire::ERROR_CODE_NOT_FOUND:  // a relay without an audit log: kept for one that has
      return true;
    default:
      return false;
  }
}

}  // namespace

Status Client::Impl::RecordClientEvent(audit::EventType type, const protocol::TeamId& team_id,
                                       std::span<const std::uint8_t> item_id, std::uint64_t version) {
  if (item_id.size() != protocol::kIdSize) return Fail(ErrorCode::kInvalidArgument, "item id is not 16 bytes");
  return signal_stores->RunInTransaction([&]() -> Status {
    audit::ClientEvent event;
    event.type = type;
    event.client_time_ms = NowMs();
    event.device_id = device_id;
    event.team_id = team_id;
    std::copy(item_id.begin(), item_id.end(), event.item_id.begin());
    event.version = version;
    event.sequence = 1;
    {  // no statement stays open across the insert
      COFFRE_ASSIGN_OR_RETURN(auto last, sql::Prepared(*db, "SELECT event FROM client_events "
                                                            "ORDER BY sequence DESC LIMIT 1"));
      COFFRE_ASSIGN_OR_RETURN(const bool found, last.Step());
      if (found) {
        auto previous = audit::DecodeClientEvent(last.ColumnBlob(0));
        if (!previous) return Fail(ErrorCode::kCorrupt, "the profile's last audit event is damaged");
        event.sequence = previous->sequence + 1;
        event.previous = audit::ClientEventHash(*previous);
      }
    }
    COFFRE_ASSIGN_OR_RETURN(const audit::ClientEvent signed_event, audit::SignClientEvent(event, *device_key));
    return sql::Run(*db, "INSERT INTO client_events (sequence, event, created_ms) VALUES (?, ?, ?)",
                    signed_event.sequence, audit::EncodeClientEvent(signed_event), NowMs());
  });
}

Status Client::Impl::SendClientEvents(SyncReport* report) {
  for (;;) {
    std::uint64_t sequence = 0;
    std::vector<std::uint8_t> event;
    {
      COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db, "SELECT sequence, event FROM client_events WHERE "
                                                           "log_index IS NULL AND refused IS NULL "
                                                           "ORDER BY sequence LIMIT 1"));
      COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
      if (!found) return Ok();
      sequence = sql::AsU64(row.ColumnInt64(0));
      const auto bytes = row.ColumnBlob(1);
      event.assign(bytes.begin(), bytes.end());
    }
    wire::Request request;
    SetBytes(request.mutable_record_client_event()->mutable_event(), event);
    COFFRE_ASSIGN_OR_RETURN(const wire::Response response, RawCall(request));
    if (response.has_error()) {
      if (IsPassing(response.error().code())) {
        return Fail(ErrorCode::kIo, "the relay does not record audit events now; they wait");
      }
      COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE client_events SET refused = ? WHERE sequence = ?",
                                      response.error().message(), sequence));
      if (report != nullptr) {
        report->warnings.push_back("the relay refused this device's audit event " + std::to_string(sequence) +
                                   ": " + response.error().message());
      }
      continue;
    }
    if (!response.has_client_event_recorded()) {
      return Fail(ErrorCode::kCorrupt, "the relay answered an audit event with something else");
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE client_events SET log_index = ? WHERE sequence = ?",
                                    response.client_event_recorded().index(), sequence));
  }
}

Status Client::RecordDocumentOpened(std::string_view team_name, std::string_view document_hex,
                                    std::uint64_t version) {
  if (version == 0) return Fail(ErrorCode::kInvalidArgument, "document versions start at 1");
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(const auto document_id, ParseHex(document_hex, protocol::kIdSize));
  COFFRE_ASSIGN_OR_RETURN(
      const auto known, sql::QueryInt(*impl_->db, "SELECT count(*) FROM documents WHERE team_id = ? AND "
                                                "document_id = ? AND version = ?",
                                      team.team_id, document_id, version));
  if (!known || *known == 0) return Fail(ErrorCode::kNotFound, "no such document version in the team");
  COFFRE_RETURN_IF_ERROR(
      impl_->RecordClientEvent(audit::EventType::kDocumentOpened, team.team_id, document_id, version));
  (void)impl_->SendClientEvents(nullptr);  // offline: it goes at the next sync
  return Ok();
}

}  // namespace coffre::client
