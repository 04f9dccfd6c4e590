// Sync: the outbox goes out, the mailbox comes in (decrypted and kept in the same
// transaction as the ratchet state it changes), then every team's chain and items.
#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <system_error>

#include "client_impl.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {

Status RecordSigners(Client::Impl& impl,
                     const google::protobuf::RepeatedPtrField<wire::DeviceList>& lists);

bool IsPermanentRefusal(wire::ErrorCode code) {
  switch (code) {
    case wire::ERROR_CODE_RATE_LIMITED:
    case wire::ERROR_CODE_UNAVAILABLE:
    case wire::ERROR_CODE_INTERNAL:
    case wire::ERROR_CODE_UNAUTHENTICATED:
      return false;
    default:
      return true;
  }
}

void Warn(SyncReport* report, std::string warning) {
  if (report != nullptr) report->warnings.push_back(std::move(warning));
}

// What becomes of a team message once checked: accepted, an event line in the report;
// refused, a warning naming `what`; a lost connection stops the inbox (it is kept, and
// retried at the next sync).
Status Settle(SyncReport* report, const Status& accepted, std::string event, const std::string& what) {
  if (accepted) {
    if (report != nullptr) report->events.push_back(std::move(event));
    return Ok();
  }
  if (accepted.error().code() == ErrorCode::kIo) return accepted.error();
  Warn(report, what + " was refused: " + std::string(accepted.error().context()));
  return Ok();
}

namespace {

// Whether the relay's version `body.version()` of the item is `manifest` itself (the same
// signed body and signature). kIo while the relay cannot say: the outbox entry waits.
Result<bool> RelayHolds(Client::Impl& impl, const wire::ItemManifest& manifest,
                        const wire::ItemManifestBody& body) {
  wire::Request request;
  request.mutable_get_item()->set_team_id(body.team_id());
  request.mutable_get_item()->set_item_id(body.item_id());
  request.mutable_get_item()->set_version(body.version());
  COFFRE_ASSIGN_OR_RETURN(const wire::Response response, impl.RawCall(request));
  if (response.has_error()) {
    if (!IsPermanentRefusal(response.error().code())) {
      return Fail(ErrorCode::kIo, "the relay is busy; the outbox waits");
    }
    return false;
  }
  if (!response.has_item()) return false;
  const wire::ItemManifest& held = response.item().manifest();
  return held.body() == manifest.body() && held.signature() == manifest.signature();
}

// A queued document version the relay did not take (refused, or another writer's version
// got its number first): its outbox entry (`outbox_id`), any staged upload of it and its
// document row go together, so the profile never shows a version the relay does not have,
// and the next sync applies the relay's own. The person is told to put the file again.
Status DropDocumentVersion(Client::Impl& impl, std::int64_t outbox_id,
                           const wire::ItemManifestBody& body, const wire::Error& error,
                           SyncReport* report) {
  const auto team_id = AsBytes(body.team_id());
  const auto document_id = AsBytes(body.item_id());
  std::string team_name = "?";
  std::string document_name = "?";
  std::vector<std::string> staged;
  {
    COFFRE_ASSIGN_OR_RETURN(auto team_row,
                            sql::Prepared(*impl.db, "SELECT name FROM teams WHERE team_id = ?", team_id));
    COFFRE_ASSIGN_OR_RETURN(const bool team_found, team_row.Step());
    if (team_found) team_name = team_row.ColumnText(0);
    COFFRE_ASSIGN_OR_RETURN(auto document_row,
                            sql::Prepared(*impl.db,
                                          "SELECT name FROM documents WHERE team_id = ? AND document_id = ? "
                                          "AND version = ?",
                                          team_id, document_id, body.version()));
    COFFRE_ASSIGN_OR_RETURN(const bool document_found, document_row.Step());
    if (document_found) document_name = document_row.ColumnText(0);
    COFFRE_ASSIGN_OR_RETURN(auto uploads,
                            sql::Prepared(*impl.db, "SELECT staged_path FROM uploads WHERE outbox_id = ?",
                                          outbox_id));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(const bool row, uploads.Step());
      if (!row) break;
      staged.push_back(uploads.ColumnText(0));
    }
  }
  const Status dropped = impl.signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM uploads WHERE outbox_id = ?", outbox_id));
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "DELETE FROM outbox WHERE id = ?", outbox_id));
    return ForgetDocumentVersion(impl, team_id, document_id, body.version());
  });
  COFFRE_RETURN_IF_ERROR(dropped);
  for (const auto& path : staged) {
    std::error_code ec;
    std::filesystem::remove(impl.dir / path, ec);
  }
  std::string warning = "team ";
  warning += team_name;
  warning += ": version ";
  warning += std::to_string(body.version());
  warning += " of document '";
  warning += document_name;
  warning += "' (";
  warning += Hex(document_id);
  if (error.code() == wire::ERROR_CODE_CONFLICT && error.current_version() >= body.version()) {
    warning += ") was not kept: someone else put version ";
    warning += std::to_string(error.current_version());
    warning += " first; put the file again on top of it (doc put --replace)";
  } else {
    warning += ") was refused by the relay and not kept: ";
    warning += error.message();
  }
  Warn(report, std::move(warning));
  return Ok();
}

}  // namespace

Status Client::Impl::QueueRequest(const wire::Request& request) {
  const std::string bytes = request.SerializeAsString();
  return sql::Run(*db, "INSERT INTO outbox (request, created_ms) VALUES (?, ?)", AsBytes(bytes), NowMs());
}

Status Client::Impl::SendOutbox(SyncReport* report) {
  // Staged document blobs first: a queued manifest may name one, and the relay accepts a
  // manifest only once its blob is complete.
  COFFRE_RETURN_IF_ERROR(SendUploads(report));
  for (;;) {
    // Read whole, so that no statement stays open across the transactions below.
    std::int64_t id = 0;
    wire::Request request;
    bool parsed = false;
    {
      COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db, "SELECT id, request FROM outbox ORDER BY id LIMIT 1"));
      COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
      if (!found) return Ok();
      id = row.ColumnInt64(0);
      const auto bytes = row.ColumnBlob(1);
      parsed = request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
    }
    if (!parsed) {
      COFFRE_RETURN_IF_ERROR(sql::Run(*db, "DELETE FROM outbox WHERE id = ?", id));
      Warn(report, "a damaged outbox entry was dropped");
      continue;
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", id));
    auto response = RawCall(request);
    if (!response) return response.error();  // kept: sent again next time
    if (response->has_error()) {
      const auto& error = response->error();
      std::optional<wire::ItemManifestBody> put;
      if (request.has_put_item_version()) {
        auto body = protocol::ParseItemManifestBody(request.put_item_version().manifest());
        if (body) put = std::move(*body);
      }
      bool landed = false;
      if (error.code() == wire::ERROR_CODE_CONFLICT && put && error.current_version() == put->version()) {
        // The relay's current version has our number: a retry of ours after a lost answer,
        // or another writer's version that got there first (two members replacing the same
        // version while offline). Only the manifest the relay holds tells.
        COFFRE_ASSIGN_OR_RETURN(landed, RelayHolds(*this, request.put_item_version().manifest(), *put));
      }
      if (!landed) {
        if (!IsPermanentRefusal(error.code())) return Fail(ErrorCode::kIo, "the relay is busy; the outbox waits");
        if (put && put->kind() == kKindDocument) {
          COFFRE_RETURN_IF_ERROR(DropDocumentVersion(*this, id, *put, error, report));
          continue;
        }
        Warn(report, "the relay refused a queued write: " + std::string(error.message()));
      }
    } else if (report != nullptr) {
      ++report->outbox_sent;
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "DELETE FROM outbox WHERE id = ?", id));
  }
}

Status Client::Impl::FetchMailbox(SyncReport* report) {
  for (int round = 0; round < 100000; ++round) {
    COFFRE_ASSIGN_OR_RETURN(auto cursor, sql::QueryInt(*db, "SELECT mailbox_cursor FROM identity WHERE id = 1"));
    wire::Request request;
    request.mutable_fetch_mailbox()->set_after_sequence(cursor ? sql::AsU64(*cursor) : 0);
    request.mutable_fetch_mailbox()->set_limit(100);
    COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
    if (!response.has_envelopes()) return Fail(ErrorCode::kCorrupt, "the relay sent no mailbox");
    const auto& batch = response.envelopes();
    if (batch.envelopes_size() == 0) break;
    wire::Request ack;
    std::uint64_t last = cursor ? sql::AsU64(*cursor) : 0;
    for (const auto& envelope : batch.envelopes()) {
      if (envelope.sequence() <= last) continue;  // the relay repeats itself: ignore
      COFFRE_RETURN_IF_ERROR(ApplyEnvelope(envelope, report));
      last = envelope.sequence();
      ack.mutable_ack_envelopes()->add_sequences(envelope.sequence());
      COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE identity SET mailbox_cursor = ? WHERE id = 1", last));
    }
    if (ack.ack_envelopes().sequences_size() > 0) {
      COFFRE_ASSIGN_OR_RETURN(auto acked, Call(std::move(ack)));
      (void)acked;
    }
    if (!batch.more()) break;
  }
  return ApplyInbox(report);
}

Status Client::Impl::ApplyEnvelope(const wire::Envelope& envelope, SyncReport* report) {
  if (report != nullptr) ++report->envelopes_applied;
  const std::uint32_t type = envelope.type();
  if (type != kEnvelopeWhisper && type != kEnvelopePreKey) {
    Warn(report, "an envelope of an unknown kind was skipped");
    return Ok();
  }
  if (!protocol::ValidateUserId(envelope.sender_user_id())) {
    Warn(report, "an envelope from an invalid sender was skipped");
    return Ok();
  }
  const crypto::SignalAddress sender{envelope.sender_user_id(),
                                     static_cast<std::int32_t>(envelope.sender_device_id())};
  // The sender's device must be one this profile verified; a device met for the first time
  // is fetched (and its certificate checked) before anything is decrypted.
  auto known = KeyLookup()(envelope.sender_user_id(), envelope.sender_device_id());
  if (!known) {
    auto fetched = FetchPeer(envelope.sender_user_id());
    if (!fetched) return fetched.error();
  }
  // Decrypted and recorded in one transaction with the ratchet state: a crash keeps both
  // or neither. What the message means is applied afterwards, from the inbox.
  const Status decrypted = signal_stores->RunInTransaction([&]() -> Status {
    auto plaintext = signal->Decrypt(
        sender, static_cast<crypto::SignalMessageType>(type), AsBytes(envelope.ciphertext()),
        [&](std::span<const std::uint8_t> bytes) -> Status {
          return sql::Run(*db,
                          "INSERT INTO inbox (sender, sender_device, received_ms, message) VALUES (?, ?, ?, ?)",
                          envelope.sender_user_id(), envelope.sender_device_id(), envelope.received_ms(),
                          crypto::SecretBytes::CopyOf(bytes));
        });
    if (!plaintext) return plaintext.error();
    return Ok();
  });
  if (!decrypted) {
    if (decrypted.error().code() == ErrorCode::kReplay) return Ok();  // applied before a crash
    if (decrypted.error().code() == ErrorCode::kDatabase || decrypted.error().code() == ErrorCode::kIo) {
      return decrypted.error();
    }
    Warn(report, "a message from " + envelope.sender_user_id() + " could not be decrypted and was dropped");
  }
  return Ok();
}

Status Client::Impl::ApplyInbox(SyncReport* report) {
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db,
                                                    "SELECT id, sender, sender_device, received_ms, message "
                                                    "FROM inbox ORDER BY id LIMIT 1"));
    COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
    if (!found) return Ok();
    const std::int64_t id = row.ColumnInt64(0);
    const std::string sender = row.ColumnText(1);
    const crypto::SecretBytes plaintext = row.ColumnSecret(4);
    auto message = DecodePeerMessage(plaintext.span());
    if (!message) {
      Warn(report, "a message from " + sender + " was not understood and was dropped");
    } else if (auto* delivery = std::get_if<TeamKeyDelivery>(&*message)) {
      std::string line = "team key generation ";
      line += std::to_string(delivery->generation);
      line += " received from ";
      line += sender;
      const Status settled =
          Settle(report, AcceptTeamKey(sender, *delivery), std::move(line), "a team key from " + sender);
      if (!settled) return settled.error();
    } else if (auto* introduction = std::get_if<TeamIntroduction>(&*message)) {
      std::string line = "auditor of team ";
      line += introduction->team_name;
      line += ", introduced by ";
      line += sender;
      const Status settled = Settle(report, AcceptTeamIntroduction(sender, *introduction), std::move(line),
                                    "a team introduction from " + sender);
      if (!settled) return settled.error();
    } else if (auto* direct = std::get_if<DirectMessage>(&*message)) {
      COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                      "INSERT OR IGNORE INTO direct_messages (message_id, peer, sender, sent_ms, text) "
                                      "VALUES (?, ?, ?, ?, ?)",
                                      direct->message_id, sender, sender, direct->sent_ms, direct->text));
      if (report != nullptr) {
        std::string line = "@";
        line += sender;
        line += ": ";
        line += direct->text;
        report->events.push_back(std::move(line));
      }
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "DELETE FROM inbox WHERE id = ?", id));
  }
}

Status Client::Impl::SyncTeams(SyncReport* report) {
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*db, "SELECT team_id, name FROM teams ORDER BY name"));
  std::vector<TeamRecord> teams;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(const auto team_id, IdFrom(rows.ColumnBlob(0)));
    teams.push_back(TeamRecord{team_id, rows.ColumnText(1)});
  }
  for (const auto& team : teams) {
    auto chain = RefreshChain(team);
    if (!chain) {
      if (chain.error().code() == ErrorCode::kIo) return chain.error();
      Warn(report, "team " + team.name + ": " + std::string(chain.error().context()));
      continue;
    }
    if (!chain->IsMember(user_id)) continue;  // removed: nothing new can be read anyway
    // An auditor holds no key and reads the audit log, not the team's items.
    if (const auto role = chain->RoleOf(user_id); role && *role == wire::ROLE_AUDITOR) continue;
    COFFRE_RETURN_IF_ERROR(SyncTeamItems(team, *chain, report));
  }
  return Ok();
}

Result<bool> Client::Impl::WasMember(const TeamRecord& team, const std::string& user) {
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*db,
                                                   "SELECT statement FROM chain_statements WHERE team_id = ? "
                                                   "ORDER BY sequence",
                                                   team.team_id));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) return false;
    wire::ChainStatement statement;
    const auto bytes = rows.ColumnBlob(0);
    if (!statement.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    wire::ChainStatementBody body;
    if (!body.ParseFromString(statement.body())) continue;
    if (body.has_create() && body.signer_user_id() == user) return true;
    if (body.has_add_member() && body.add_member().user_id() == user) return true;
  }
}

Status Client::Impl::SyncTeamItems(const TeamRecord& team, const protocol::TeamChain& chain,
                                   SyncReport* report) {
  // Every item of the team, page by page; those already applied are skipped by id and
  // version. Key history first, so older generations are known before older posts.
  std::vector<wire::ItemManifest> manifests;
  std::string after;
  for (int page = 0; page < 100000; ++page) {
    wire::Request request;
    request.mutable_list_items()->set_team_id(AsString(team.team_id));
    request.mutable_list_items()->set_after_item_id(after);
    request.mutable_list_items()->set_limit(protocol::kMaxItemsPerList);
    COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
    if (!response.has_items()) return Fail(ErrorCode::kCorrupt, "the relay sent no item list");
    for (const auto& item : response.items().items()) {
      manifests.push_back(item.manifest());
      auto body = protocol::ParseItemManifestBody(item.manifest());
      if (body) after = body->item_id();
    }
    if (!response.items().more() || response.items().items_size() == 0) break;
  }
  std::stable_partition(manifests.begin(), manifests.end(), [](const wire::ItemManifest& manifest) {
    auto body = protocol::ParseItemManifestBody(manifest);
    return body && body->kind() == kKindKeyHistory;
  });
  // Key history entries may chain (3 -> 2 -> 1): go round until no new key appears.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& manifest : manifests) {
      COFFRE_RETURN_IF_ERROR(ApplyItem(team, chain, manifest, report));
    }
  }
  return Ok();
}

Status Client::Impl::ApplyItem(const TeamRecord& team, const protocol::TeamChain& chain,
                               const wire::ItemManifest& manifest, SyncReport* report) {
  auto parsed = protocol::ParseItemManifestBody(manifest);
  if (!parsed || !std::ranges::equal(AsBytes(parsed->team_id()), team.team_id)) {
    Warn(report, "team " + team.name + ": an item from another team was skipped");
    return Ok();
  }
  const wire::ItemManifestBody& body = *parsed;
  COFFRE_ASSIGN_OR_RETURN(auto seen, sql::QueryInt(*db,
                                                   "SELECT 1 FROM seen_items WHERE team_id = ? AND item_id = ? "
                                                   "AND version = ?",
                                                   team.team_id, AsBytes(body.item_id()), body.version()));
  if (seen) return Ok();
  auto mark_seen = [&]() {
    return sql::Run(*db, "INSERT OR IGNORE INTO seen_items (team_id, item_id, version) VALUES (?, ?, ?)",
                    team.team_id, AsBytes(body.item_id()), body.version());
  };
  // The author's device must be certified, the signature must hold, and the author must be
  // (or have been) a member: the relay can neither forge nor inject an item.
  auto verified = protocol::VerifyItemManifest(manifest, KeyLookup());
  if (!verified) {
    auto fetched = FetchPeer(body.author_user_id());
    if (fetched) verified = protocol::VerifyItemManifest(manifest, KeyLookup());
  }
  bool member = chain.IsMember(body.author_user_id());
  if (!member) {
    COFFRE_ASSIGN_OR_RETURN(member, WasMember(team, body.author_user_id()));
  }
  if (!verified || !member) {
    Warn(report, "team " + team.name + ": an item without a valid member signature was refused");
    return mark_seen();
  }
  auto key = TeamKey(team.team_id, body.key_generation());
  if (!key) return Ok();  // its key has not arrived yet: tried again at the next sync
  const std::string& kind = body.kind();
  if (kind == kKindKeyHistory) {
    const std::uint64_t generation = body.key_generation();
    if (generation < 2) return mark_seen();
    auto old_key = OpenPreviousGeneration(*key, team.team_id, generation - 1, generation,
                                          AsBytes(body.encrypted_metadata()));
    if (!old_key) {
      Warn(report, "team " + team.name + ": a key history entry failed authentication");
      return mark_seen();
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "INSERT OR IGNORE INTO team_keys (team_id, generation, key) VALUES (?, ?, ?)",
                                    team.team_id, generation - 1, *old_key));
    return mark_seen();
  }
  if (kind == kKindChannel) {
    COFFRE_ASSIGN_OR_RETURN(const auto metadata_key, DeriveMetadataKey(*key, team.team_id, body.key_generation()));
    auto info = OpenChannelInfo(body, metadata_key);
    if (!info) {
      Warn(report, "team " + team.name + ": a channel failed authentication");
      return mark_seen();
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "INSERT OR IGNORE INTO channels (team_id, channel_id, name) VALUES (?, ?, ?)",
                                    team.team_id, AsBytes(body.item_id()), info->name));
    return mark_seen();
  }
  if (kind == kKindPost) {
    auto header = ReadPostHeader(body);
    if (!header) {
      Warn(report, "team " + team.name + ": a malformed post was refused");
      return mark_seen();
    }
    COFFRE_ASSIGN_OR_RETURN(const auto channel_key,
                            DeriveChannelKey(*key, team.team_id, body.key_generation(), header->channel_id));
    auto post = OpenPost(body, channel_key);
    if (!post) {
      Warn(report, "team " + team.name + ": a post failed authentication");
      return mark_seen();
    }
    // The sender's view of the chain: a head this profile knows to be on its own chain, or
    // ahead of it. A head at a sequence we hold with another hash is a split view.
    if (auto at = chain.HashAt(post->chain_head.sequence); at && *at != post->chain_head.hash) {
      Warn(report, "team " + team.name + ": " + body.author_user_id() +
                       " sees another team chain than this profile (fork)");
    }
    // The sender's view of the audit log: it must be consistent with this device's.
    if (!post->audit_checkpoint.empty()) {
      CompareGossip(post->audit_checkpoint, body.author_user_id(), report);
    }
    std::vector<std::uint8_t> parent;
    if (post->parent_post_id) parent.assign(post->parent_post_id->begin(), post->parent_post_id->end());
    COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                    "INSERT OR IGNORE INTO posts (team_id, post_id, channel_id, parent_id, author, "
                                    "author_device, sent_ms, generation, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    team.team_id, AsBytes(body.item_id()), post->channel_id, parent,
                                    body.author_user_id(), body.author_device_id(), post->sent_ms,
                                    body.key_generation(), post->text));
    if (report != nullptr) {
      ++report->posts_received;
      COFFRE_ASSIGN_OR_RETURN(auto channel_name, sql::Prepared(*db, "SELECT name FROM channels WHERE team_id = ? AND channel_id = ?",
                                                               team.team_id, post->channel_id));
      COFFRE_ASSIGN_OR_RETURN(const bool named, channel_name.Step());
      std::string line = team.name;
      line += '/';
      line += named ? channel_name.ColumnText(0) : std::string("?");
      line += post->parent_post_id ? " (thread) " : " ";
      line += body.author_user_id();
      line += ": ";
      line += post->text;
      report->events.push_back(std::move(line));
    }
    return mark_seen();
  }
  if (kind == kKindDocument) {
    COFFRE_ASSIGN_OR_RETURN(const auto metadata_key, DeriveMetadataKey(*key, team.team_id, body.key_generation()));
    auto info = OpenDocumentInfo(body, metadata_key);
    if (!info) {
      Warn(report, "team " + team.name + ": a document failed authentication");
      return mark_seen();
    }
    COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                    "INSERT OR IGNORE INTO documents (team_id, document_id, version, name, size, "
                                    "author, created_ms, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                    team.team_id, AsBytes(body.item_id()), body.version(), info->name, info->size,
                                    body.author_user_id(), body.created_ms(), AsBytes(manifest.SerializeAsString())));
    if (report != nullptr) {
      ++report->documents_received;
      std::string line = team.name;
      line += ": document '";
      line += info->name;
      line += "' version ";
      line += std::to_string(body.version());
      line += " from ";
      line += body.author_user_id();
      report->events.push_back(std::move(line));
    }
    return mark_seen();
  }
  return mark_seen();  // a kind this version does not know
}

Result<SyncReport> Client::Sync() {
  SyncReport report;
  COFFRE_RETURN_IF_ERROR(impl_->SendOutbox(&report));
  // This device's signed audit events go before the checkpoint is witnessed, so that the
  // checkpoint covers them. A relay that cannot take them now leaves them for the next sync.
  (void)impl_->SendClientEvents(&report);
  // Every device witnesses the relay's audit log, before reading posts whose gossip it
  // compares with: a checkpoint that does not extend the one stored is an alarm in the
  // report (and evidence in the profile), never a failed sync. (A relay without a log, or a
  // lost connection, leaves the stored checkpoint as it is.)
  (void)impl_->WitnessAuditLog(&report, /*fresh=*/true);
  COFFRE_RETURN_IF_ERROR(impl_->FetchMailbox(&report));
  COFFRE_RETURN_IF_ERROR(impl_->SyncTeams(&report));
  // Writes queued while applying (none today) go out in the same sync.
  COFFRE_RETURN_IF_ERROR(impl_->SendOutbox(&report));
  COFFRE_ASSIGN_OR_RETURN(auto pending, sql::QueryInt(*impl_->db, "SELECT count(*) FROM outbox"));
  report.outbox_pending = pending ? sql::AsU64(*pending) : 0;
  return report;
}

}  // namespace coffre::client
