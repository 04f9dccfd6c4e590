// Channels, posts and direct messages. Every write lands in the profile and the outbox in
// one step and goes out when the relay answers.
#include "client_impl.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

Status ValidateChannelName(std::string_view name) {
  if (name.empty() || name.size() > 64) return Fail(ErrorCode::kInvalidArgument, "channel name must be 1 to 64 characters");
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return Fail(ErrorCode::kInvalidArgument, "channel name may hold letters, digits, . _ -");
  }
  return Ok();
}

}  // namespace

Result<WriteContext> Client::Impl::PrepareWrite(std::string_view team_name) {
  COFFRE_ASSIGN_OR_RETURN(TeamRecord team, TeamByName(team_name));
  auto chain = RefreshChain(team);
  if (!chain) {
    if (chain.error().code() == ErrorCode::kAuthenticationFailed) return chain.error();
    chain = StoredChain(team.team_id);
    if (!chain) return chain.error();
  }
  const auto role = chain->RoleOf(user_id);
  if (!role) return Fail(ErrorCode::kInvalidArgument, "this user is not a member of the team");
  if (*role == wire::ROLE_AUDITOR) return Fail(ErrorCode::kInvalidArgument, "auditors cannot write in a team");
  const std::uint64_t generation = chain->key_generation();
  auto key = TeamKey(team.team_id, generation);
  if (!key) {
    return Fail(ErrorCode::kNotFound, "this device does not hold the team's current key yet: run `coffre sync`");
  }
  return WriteContext{std::move(team), std::move(*chain), generation, std::move(*key)};
}

// Signs `body` (team, author and time filled in here) and queues it.
static Status QueueItem(Client::Impl& impl, wire::ItemManifestBody& body) {
  body.set_author_user_id(impl.user_id);
  body.set_author_device_id(impl.device_id);
  COFFRE_ASSIGN_OR_RETURN(auto manifest, protocol::SignItemManifest(body, *impl.device_key));
  wire::Request request;
  *request.mutable_put_item_version()->mutable_manifest() = manifest;
  return impl.QueueRequest(request);
}

Status Client::CreateChannel(std::string_view team_name, std::string_view channel) {
  COFFRE_RETURN_IF_ERROR(ValidateChannelName(channel));
  COFFRE_ASSIGN_OR_RETURN(auto write, impl_->PrepareWrite(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto exists, sql::QueryInt(*impl_->db, "SELECT 1 FROM channels WHERE team_id = ? AND name = ?",
                                                     write.team.team_id, channel));
  if (exists) return Fail(ErrorCode::kAlreadyExists, "the team already has a channel by that name");
  const auto channel_id = NewId();
  ItemContext context;
  context.team_id = write.team.team_id;
  context.item_id = channel_id;
  context.version = 1;
  context.generation = write.generation;
  COFFRE_ASSIGN_OR_RETURN(const auto metadata_key, DeriveMetadataKey(write.key, write.team.team_id, write.generation));
  COFFRE_ASSIGN_OR_RETURN(const auto sealed, SealChannelInfo(metadata_key, context, ChannelInfo{std::string(channel)}));
  wire::ItemManifestBody body;
  body.set_team_id(AsString(write.team.team_id));
  body.set_item_id(AsString(channel_id));
  body.set_version(1);
  body.set_parent_version(0);
  body.set_kind(std::string(kKindChannel));
  body.set_key_generation(write.generation);
  body.set_encrypted_metadata(AsString(sealed));
  body.set_created_ms(NowMs());
  const Status transaction_status = impl_->signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "INSERT INTO channels (team_id, channel_id, name) VALUES (?, ?, ?)",
                                    write.team.team_id, channel_id, channel));
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "INSERT INTO seen_items (team_id, item_id, version) VALUES (?, ?, 1)",
                                    write.team.team_id, channel_id));
    return QueueItem(*impl_, body);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Result<std::string> Client::Post(std::string_view team_name, std::string_view channel, std::string_view text,
                                 std::optional<std::string_view> reply_to) {
  if (text.empty()) return Fail(ErrorCode::kInvalidArgument, "a post needs some text");
  if (text.size() > kMaxTextSize) return Fail(ErrorCode::kInvalidArgument, "a post is limited to 48 KiB of text");
  COFFRE_ASSIGN_OR_RETURN(auto write, impl_->PrepareWrite(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto channel_row, sql::Prepared(*impl_->db,
                                                          "SELECT channel_id FROM channels WHERE team_id = ? AND name = ?",
                                                          write.team.team_id, channel));
  COFFRE_ASSIGN_OR_RETURN(const bool channel_found, channel_row.Step());
  if (!channel_found) return Fail(ErrorCode::kNotFound, "no channel by that name in the team: run `coffre sync`?");
  COFFRE_ASSIGN_OR_RETURN(const auto channel_id, IdFrom(channel_row.ColumnBlob(0)));

  PostContext context;
  context.team_id = write.team.team_id;
  context.generation = write.generation;
  context.channel_id = channel_id;
  context.post_id = NewId();
  if (reply_to) {
    COFFRE_ASSIGN_OR_RETURN(auto parent_bytes, ParseHex(*reply_to, protocol::kIdSize));
    COFFRE_ASSIGN_OR_RETURN(auto parent, IdFrom(parent_bytes));
    COFFRE_ASSIGN_OR_RETURN(auto parent_known, sql::QueryInt(*impl_->db,
                                                             "SELECT 1 FROM posts WHERE team_id = ? AND post_id = ? "
                                                             "AND channel_id = ?",
                                                             write.team.team_id, parent, channel_id));
    if (!parent_known) return Fail(ErrorCode::kNotFound, "no such post in this channel to reply to");
    context.parent_post_id = parent;
  }
  context.sender_user_id = impl_->user_id;
  context.sender_device_id = impl_->device_id;
  context.chain_head = write.chain.head();
  const std::uint64_t sent_ms = NowMs();
  COFFRE_ASSIGN_OR_RETURN(const auto channel_key,
                          DeriveChannelKey(write.key, write.team.team_id, write.generation, channel_id));
  // The latest audit checkpoint this device verified rides along, for members to compare.
  std::string gossip;
  COFFRE_ASSIGN_OR_RETURN(auto stored_note, sql::Prepared(*impl_->db, "SELECT note FROM audit_log WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool has_note, stored_note.Step());
  if (has_note) gossip = stored_note.ColumnText(0);
  COFFRE_ASSIGN_OR_RETURN(const auto sealed, SealPost(channel_key, context, text, sent_ms, gossip));
  wire::ItemManifestBody body;
  body.set_team_id(AsString(write.team.team_id));
  body.set_item_id(AsString(context.post_id));
  body.set_version(1);
  body.set_parent_version(0);
  body.set_kind(std::string(kKindPost));
  body.set_key_generation(write.generation);
  body.set_encrypted_metadata(AsString(sealed));
  body.set_created_ms(sent_ms);
  std::vector<std::uint8_t> parent;
  if (context.parent_post_id) parent.assign(context.parent_post_id->begin(), context.parent_post_id->end());
  const Status transaction_status = impl_->signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db,
                                    "INSERT INTO posts (team_id, post_id, channel_id, parent_id, author, author_device, "
                                    "sent_ms, generation, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    write.team.team_id, context.post_id, channel_id, parent, impl_->user_id,
                                    impl_->device_id, sent_ms, write.generation, text));
    COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "INSERT INTO seen_items (team_id, item_id, version) VALUES (?, ?, 1)",
                                    write.team.team_id, context.post_id));
    return QueueItem(*impl_, body);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  (void)impl_->SendOutbox(nullptr);
  return Hex(context.post_id);
}

Result<std::vector<PostView>> Client::ReadChannel(std::string_view team_name, std::string_view channel,
                                                  std::optional<std::string_view> thread,
                                                  std::optional<std::uint64_t> since_ms) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto channel_row, sql::Prepared(*impl_->db,
                                                          "SELECT channel_id FROM channels WHERE team_id = ? AND name = ?",
                                                          team.team_id, channel));
  COFFRE_ASSIGN_OR_RETURN(const bool channel_found, channel_row.Step());
  if (!channel_found) return Fail(ErrorCode::kNotFound, "no channel by that name in the team: run `coffre sync`?");
  const auto channel_id = channel_row.ColumnBlob(0);
  std::optional<std::vector<std::uint8_t>> thread_id;
  if (thread) {
    COFFRE_ASSIGN_OR_RETURN(thread_id, ParseHex(*thread, protocol::kIdSize));
  }
  COFFRE_ASSIGN_OR_RETURN(
      auto rows, sql::Prepared(*impl_->db,
                               "SELECT post_id, parent_id, author, author_device, sent_ms, generation, text FROM posts "
                               "WHERE team_id = ? AND channel_id = ? AND sent_ms >= ? "
                               "AND (? IS NULL OR post_id = ? OR parent_id = ?) ORDER BY sent_ms, post_id",
                               team.team_id, channel_id, since_ms.value_or(0), thread_id, thread_id, thread_id));
  std::vector<PostView> posts;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    PostView view;
    view.post_id = Hex(rows.ColumnBlob(0));
    view.parent_id = Hex(rows.ColumnBlob(1));
    view.author = rows.ColumnText(2);
    view.author_device = sql::AsU32(rows.ColumnInt64(3));
    view.sent_ms = sql::AsU64(rows.ColumnInt64(4));
    view.key_generation = sql::AsU64(rows.ColumnInt64(5));
    view.text = rows.ColumnText(6);
    posts.push_back(std::move(view));
  }
  return posts;
}

Status Client::SendDirect(std::string_view peer_user, std::string_view text) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(peer_user));
  if (peer_user == impl_->user_id) return Fail(ErrorCode::kInvalidArgument, "a direct message goes to someone else");
  if (text.empty()) return Fail(ErrorCode::kInvalidArgument, "a message needs some text");
  if (text.size() > kMaxTextSize) return Fail(ErrorCode::kInvalidArgument, "a message is limited to 48 KiB of text");
  COFFRE_ASSIGN_OR_RETURN(const Peer peer, impl_->FetchPeer(peer_user));
  DirectMessage message;
  message.message_id = NewId();
  message.text = std::string(text);
  message.sent_ms = NowMs();
  COFFRE_ASSIGN_OR_RETURN(const crypto::SecretBytes plaintext, EncodePeerMessage(message));
  COFFRE_RETURN_IF_ERROR(impl_->QueuePeerMessage(peer, plaintext.span()));
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db,
                                  "INSERT INTO direct_messages (message_id, peer, sender, sent_ms, text) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  message.message_id, peer_user, impl_->user_id, message.sent_ms, text));
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Result<std::vector<DirectMessageView>> Client::ReadDirect(std::string_view peer_user) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(peer_user));
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*impl_->db,
                                                   "SELECT message_id, sender, sent_ms, text FROM direct_messages "
                                                   "WHERE peer = ? ORDER BY sent_ms, message_id",
                                                   peer_user));
  std::vector<DirectMessageView> messages;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    DirectMessageView view;
    view.message_id = Hex(rows.ColumnBlob(0));
    view.from = rows.ColumnText(1);
    view.to = view.from == impl_->user_id ? std::string(peer_user) : impl_->user_id;
    view.sent_ms = sql::AsU64(rows.ColumnInt64(2));
    view.text = rows.ColumnText(3);
    messages.push_back(std::move(view));
  }
  return messages;
}

}  // namespace coffre::client
