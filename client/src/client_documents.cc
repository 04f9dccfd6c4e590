// Documents: listing from the profile. Transfers are in client_transfer.cc.
#include "client_impl.h"
#include "coffre/protocol/limits.h"
#include "profile_sql.h"

namespace coffre::client {

static Result<std::vector<DocumentView>> QueryDocuments(Client::Impl& impl, const TeamRecord& team,
                                                        std::optional<std::vector<std::uint8_t>> document_id) {
  // Without a document id: the newest version of each document; with one: every version.
  const char* sql = document_id
                        ? "SELECT document_id, name, version, size, author, created_ms FROM documents "
                          "WHERE team_id = ? AND document_id = ? ORDER BY version"
                        : "SELECT document_id, name, max(version), size, author, created_ms FROM documents "
                          "WHERE team_id = ? AND ? IS NULL GROUP BY document_id ORDER BY name, document_id";
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*impl.db, sql, team.team_id, document_id));
  std::vector<DocumentView> views;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    DocumentView view;
    view.document_id = Hex(rows.ColumnBlob(0));
    view.name = rows.ColumnText(1);
    view.version = sql::AsU64(rows.ColumnInt64(2));
    view.size = sql::AsU64(rows.ColumnInt64(3));
    view.author = rows.ColumnText(4);
    view.created_ms = sql::AsU64(rows.ColumnInt64(5));
    views.push_back(std::move(view));
  }
  return views;
}

Result<std::vector<DocumentView>> Client::ListDocuments(std::string_view team_name) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  return QueryDocuments(*impl_, team, std::nullopt);
}

Result<std::vector<DocumentView>> Client::DocumentVersions(std::string_view team_name,
                                                           std::string_view document_id) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto id, ParseHex(document_id, protocol::kIdSize));
  COFFRE_ASSIGN_OR_RETURN(auto views, QueryDocuments(*impl_, team, std::move(id)));
  if (views.empty()) return Fail(ErrorCode::kNotFound, "no such document in the team: run `coffre sync`?");
  return views;
}

}  // namespace coffre::client
