// Staying connected (watch) and revoking a device.
#include <chrono>
#include <thread>

#include "client_impl.h"
#include "coffre/protocol/signed_objects.h"
#include "profile_sql.h"

namespace coffre::client {

Status Client::Watch(const std::function<void(std::string_view line)>& on_event,
                     const std::function<bool()>& keep_going) {
  auto sync_and_tell = [&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(const SyncReport report, Sync());
    for (const auto& line : report.events) on_event(line);
    for (const auto& warning : report.warnings) {
      std::string line = "warning: ";
      line += warning;
      on_event(line);
    }
    return Ok();
  };
  COFFRE_RETURN_IF_ERROR(sync_and_tell());
  // Pushes only say that something arrived; what arrived is fetched and verified by Sync,
  // exactly as a later `coffre sync` would. A lost connection is reopened with a growing
  // pause (1 s, 2 s, ... 30 s) while `keep_going` holds.
  auto pause = std::chrono::seconds(1);
  while (keep_going()) {
    auto relay = impl_->Relay();
    if (!relay) {
      const auto until = std::chrono::steady_clock::now() + pause;
      while (keep_going() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      pause = std::min(pause * 2, std::chrono::seconds(30));
      continue;
    }
    pause = std::chrono::seconds(1);
    auto push = (*relay)->NextPush(std::chrono::seconds(1));
    if (!push) {
      impl_->connection.reset();
      on_event("connection to the relay lost; reconnecting");
      continue;
    }
    if (!*push) continue;
    if ((*push)->has_going_away()) {
      impl_->connection.reset();
      on_event("the relay is restarting; reconnecting");
      continue;
    }
    if ((*push)->has_pre_keys_low()) {
      COFFRE_RETURN_IF_ERROR(impl_->UploadPreKeys(kPreKeyBatch, /*new_signed_pre_key=*/false));
      continue;
    }
    COFFRE_RETURN_IF_ERROR(sync_and_tell());
  }
  return Ok();
}

Status Client::RevokeDevice(std::uint32_t revoked_device) {
  if (revoked_device == impl_->device_id) {
    return Fail(ErrorCode::kInvalidArgument, "a device cannot revoke itself: revoke it from another device");
  }
  COFFRE_ASSIGN_OR_RETURN(const Peer self, impl_->FetchPeer(impl_->user_id));
  const auto known = std::find_if(self.devices.begin(), self.devices.end(),
                                  [&](const PeerDevice& device) { return device.device_id == revoked_device; });
  if (known == self.devices.end()) return Fail(ErrorCode::kNotFound, "this user has no such device");
  COFFRE_ASSIGN_OR_RETURN(const auto signature,
                          protocol::SignRevocation(*impl_->user_key, impl_->user_id, revoked_device));
  wire::Request request;
  request.mutable_revoke_device()->set_device_id(revoked_device);
  request.mutable_revoke_device()->set_signature(signature.data(), signature.size());
  COFFRE_ASSIGN_OR_RETURN(auto revoked, impl_->Call(std::move(request)));
  (void)revoked;
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "UPDATE peer_devices SET revoked = 1 WHERE user_id = ? AND device_id = ?",
                                  impl_->user_id, revoked_device));
  // The revoked device held every team key of this user: each team it could read gets a
  // new generation. Only an admin can rotate; for the other teams the admins are told by
  // the warning the CLI prints (the relay already refuses the revoked device).
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*impl_->db, "SELECT team_id, name FROM teams ORDER BY name"));
  std::vector<TeamRecord> teams;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(const auto team_id, IdFrom(rows.ColumnBlob(0)));
    teams.push_back(TeamRecord{team_id, rows.ColumnText(1)});
  }
  bool not_rotated = false;
  for (const auto& team : teams) {
    auto chain = impl_->RefreshChain(team);
    if (!chain) return chain.error();
    if (!chain->IsMember(impl_->user_id)) continue;
    if (!chain->IsAdmin(impl_->user_id)) {
      not_rotated = true;
      continue;
    }
    COFFRE_RETURN_IF_ERROR(impl_->RotateKeyLocked(team, *chain));
  }
  (void)impl_->SendOutbox(nullptr);
  if (not_rotated) {
    return Fail(ErrorCode::kConflict,
                "device revoked; some teams need an admin to run `coffre team rotate`");
  }
  return Ok();
}

}  // namespace coffre::client
