// Teams: the chain of signed membership statements, verified here and never taken on the
// relay's word, and the per-team keys (one generation per rotation).
#include <algorithm>

#include "client_impl.h"
#include "coffre/client/content.h"
#include "coffre/crypto/random.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {

Status RecordSigners(Client::Impl& impl,
                     const google::protobuf::RepeatedPtrField<wire::DeviceList>& lists);

namespace {

std::string Str(std::span<const std::uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Status ValidateTeamName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return Fail(ErrorCode::kInvalidArgument, "team name must be 1 to 64 characters");
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return Fail(ErrorCode::kInvalidArgument, "team name may hold letters, digits, . _ -");
  }
  return Ok();
}

wire::Role WireRole(Role role) {
  switch (role) {
    case Role::kAdmin: return wire::ROLE_ADMIN;
    case Role::kMember: return wire::ROLE_MEMBER;
    case Role::kGuest: return wire::ROLE_GUEST;
    case Role::kAuditor: return wire::ROLE_AUDITOR;
  }
  return wire::ROLE_MEMBER;
}

Role FromWireRole(wire::Role role) {
  switch (role) {
    case wire::ROLE_ADMIN: return Role::kAdmin;
    case wire::ROLE_GUEST: return Role::kGuest;
    case wire::ROLE_AUDITOR: return Role::kAuditor;
    default: return Role::kMember;
  }
}

// Explains a chain failure in words a person can act on.
Error ChainError(const Error& error) {
  const auto failure = protocol::FailureOf(error);
  if (failure == protocol::Failure::kHeadFork || failure == protocol::Failure::kChainPreviousHashMismatch) {
    return Error(ErrorCode::kAuthenticationFailed,
                 "the relay shows a team chain that forks from the one this profile verified");
  }
  if (failure == protocol::Failure::kHeadRollback) {
    return Error(ErrorCode::kAuthenticationFailed,
                 "the relay shows an older team chain than the one this profile verified (rollback)");
  }
  if (failure == protocol::Failure::kChainSignerNotAdmin || failure == protocol::Failure::kBadSignature ||
      failure == protocol::Failure::kChainSignerUnknown) {
    return Error(ErrorCode::kAuthenticationFailed,
                 "the team chain holds a statement without a valid admin signature");
  }
  return error;
}

}  // namespace

Result<TeamRecord> Client::Impl::TeamByName(std::string_view name) {
  COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db, "SELECT team_id FROM teams WHERE name = ?", name));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return Fail(ErrorCode::kNotFound, "no team by that name in this profile");
  COFFRE_ASSIGN_OR_RETURN(const auto team_id, IdFrom(row.ColumnBlob(0)));
  return TeamRecord{team_id, std::string(name)};
}

// Statements stored for the team, in order; verified when they were stored.
static Result<std::vector<wire::ChainStatement>> StoredStatements(Client::Impl& impl,
                                                                  std::span<const std::uint8_t> team_id) {
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*impl.db,
                                                   "SELECT statement FROM chain_statements "
                                                   "WHERE team_id = ? ORDER BY sequence",
                                                   team_id));
  std::vector<wire::ChainStatement> statements;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    wire::ChainStatement statement;
    const auto bytes = rows.ColumnBlob(0);
    if (!statement.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return Fail(ErrorCode::kCorrupt, "profile holds a damaged chain statement");
    }
    statements.push_back(std::move(statement));
  }
  return statements;
}

Result<protocol::TeamChain> Client::Impl::StoredChain(std::span<const std::uint8_t> team_id) {
  COFFRE_ASSIGN_OR_RETURN(auto statements, StoredStatements(*this, team_id));
  if (statements.empty()) return Fail(ErrorCode::kNotFound, "this profile has no chain for the team yet");
  auto chain = protocol::TeamChain::Verify(statements, KeyLookup());
  if (!chain) return ChainError(chain.error());
  return chain;
}

static Status StoreStatement(Client::Impl& impl, std::span<const std::uint8_t> team_id,
                             const wire::ChainStatement& statement, const protocol::TeamChain& chain) {
  const std::string bytes = statement.SerializeAsString();
  const auto head = chain.head();
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db,
                                  "INSERT INTO chain_statements (team_id, sequence, statement) VALUES (?, ?, ?)",
                                  team_id, head.sequence, AsBytes(bytes)));
  return sql::Run(*impl.db, "UPDATE teams SET head_sequence = ?, head_hash = ? WHERE team_id = ?",
                  head.sequence, head.hash, team_id);
}

Result<protocol::TeamChain> Client::Impl::RefreshChain(const TeamRecord& team) {
  auto stored = StoredChain(team.team_id);
  std::optional<protocol::TeamChain> chain;
  std::uint64_t from = 0;
  if (stored) {
    chain.emplace(std::move(*stored));
    from = chain->head().sequence;  // re-read the head itself: a fork there shows at once
  } else if (stored.error().code() != ErrorCode::kNotFound) {
    return stored.error();
  }
  bool head_confirmed = !chain.has_value();
  for (int page = 0; page < 100000; ++page) {
    wire::Request request;
    request.mutable_fetch_chain()->set_team_id(Str(team.team_id));
    request.mutable_fetch_chain()->set_from_sequence(from);
    COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
    if (!response.has_chain() || response.chain().team_id() != Str(team.team_id)) {
      return Fail(ErrorCode::kAuthenticationFailed, "the relay answered with another team's chain");
    }
    const auto& reply = response.chain();
    COFFRE_RETURN_IF_ERROR(RecordSigners(*this, reply.signers()));
    int index = 0;
    if (!head_confirmed) {
      if (reply.statements_size() == 0) {
        return ChainError(protocol::Fail(protocol::Failure::kHeadRollback).error);
      }
      if (protocol::StatementHash(reply.statements(0)) != chain->head().hash) {
        return ChainError(protocol::Fail(protocol::Failure::kHeadFork).error);
      }
      head_confirmed = true;
      index = 1;
    }
    for (; index < reply.statements_size(); ++index) {
      const auto& statement = reply.statements(index);
      if (!chain) {
        auto genesis = protocol::TeamChain::FromGenesis(statement, KeyLookup());
        if (!genesis) return ChainError(genesis.error());
        chain.emplace(std::move(*genesis));
        COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                        "INSERT INTO chain_statements (team_id, sequence, statement) "
                                        "VALUES (?, 0, ?)",
                                        team.team_id, AsBytes(statement.SerializeAsString())));
        COFFRE_RETURN_IF_ERROR(sql::Run(*db, "UPDATE teams SET head_sequence = 0, head_hash = ? WHERE team_id = ?",
                                        chain->head().hash, team.team_id));
        continue;
      }
      if (auto applied = chain->Apply(statement, KeyLookup()); !applied) return ChainError(applied.error());
      COFFRE_RETURN_IF_ERROR(StoreStatement(*this, team.team_id, statement, *chain));
    }
    if (!reply.more()) break;
    from = chain ? chain->head().sequence + 1 : 0;
  }
  if (!chain) return Fail(ErrorCode::kNotFound, "the relay has no chain for this team");
  return std::move(*chain);
}

Status Client::Impl::AppendStatement(const TeamRecord& team, protocol::TeamChain& chain,
                                     wire::ChainStatementBody body, const BeforeSend& before_send) {
  const auto head = chain.head();
  body.set_team_id(Str(team.team_id));
  body.set_sequence(head.sequence + 1);
  body.set_previous_hash(head.hash.data(), head.hash.size());
  body.set_signer_user_id(user_id);
  body.set_signer_device_id(device_id);
  body.set_created_ms(NowMs());
  COFFRE_ASSIGN_OR_RETURN(auto statement, protocol::SignChainStatement(body, *device_key));
  // Our own rules first: a statement this profile would refuse from others is never sent.
  protocol::TeamChain next = chain;
  if (auto applied = next.Apply(statement, KeyLookup()); !applied) return ChainError(applied.error());
  if (before_send) COFFRE_RETURN_IF_ERROR(before_send(next));
  wire::Request request;
  *request.mutable_append_chain_statement()->mutable_statement() = statement;
  auto appended = Call(std::move(request));
  if (!appended) {
    if (appended.error().code() == ErrorCode::kConflict) {
      return Fail(ErrorCode::kConflict, "the team changed meanwhile: run `coffre sync` and try again");
    }
    return appended.error();
  }
  COFFRE_RETURN_IF_ERROR(StoreStatement(*this, team.team_id, statement, next));
  chain = std::move(next);
  return Ok();
}

Result<crypto::SecretBytes> Client::Impl::TeamKey(std::span<const std::uint8_t> team_id,
                                                  std::uint64_t generation) {
  COFFRE_ASSIGN_OR_RETURN(auto row, sql::Prepared(*db,
                                                  "SELECT key FROM team_keys WHERE team_id = ? AND generation = ?",
                                                  team_id, generation));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return Fail(ErrorCode::kNotFound, "this device does not hold that team key generation");
  return row.ColumnSecret(0);
}

// The commitment the chain holds for `generation`, from the stored statements.
static Result<std::vector<std::uint8_t>> CommitmentFor(Client::Impl& impl, std::span<const std::uint8_t> team_id,
                                                       std::uint64_t generation) {
  COFFRE_ASSIGN_OR_RETURN(auto statements, StoredStatements(impl, team_id));
  for (const auto& statement : statements) {
    wire::ChainStatementBody body;
    if (!body.ParseFromString(statement.body())) continue;
    if (body.has_rotate_key() && body.rotate_key().generation() == generation) {
      return std::vector<std::uint8_t>(body.rotate_key().commitment().begin(), body.rotate_key().commitment().end());
    }
  }
  return Fail(ErrorCode::kNotFound, "the team chain has no such key generation");
}

// Delivers generation `generation` of the team key to every device of `members` (and to
// our own other devices), through the pairwise sessions, via the outbox.
static Status DeliverTeamKey(Client::Impl& impl, const TeamRecord& team, const protocol::TeamChain& chain,
                             std::uint64_t generation, const std::vector<std::string>& members) {
  TeamKeyDelivery delivery;
  delivery.team_id = team.team_id;
  delivery.generation = generation;
  COFFRE_ASSIGN_OR_RETURN(delivery.key, impl.TeamKey(team.team_id, generation));
  delivery.chain_head = chain.head();
  delivery.team_name = team.name;
  COFFRE_ASSIGN_OR_RETURN(const crypto::SecretBytes plaintext, EncodePeerMessage(delivery));
  for (const auto& member : members) {
    COFFRE_ASSIGN_OR_RETURN(const Peer peer, impl.FetchPeer(member));
    COFFRE_RETURN_IF_ERROR(impl.QueuePeerMessage(peer, plaintext.span()));
  }
  return Ok();
}

// Tells `auditor` which team it audits, under the name this profile gives it: an auditor
// receives no key, and so no other message naming the team.
static Status IntroduceTeam(Client::Impl& impl, const TeamRecord& team, const protocol::TeamChain& chain,
                            const std::string& auditor) {
  TeamIntroduction introduction;
  introduction.team_id = team.team_id;
  introduction.team_name = team.name;
  introduction.chain_head = chain.head();
  COFFRE_ASSIGN_OR_RETURN(const crypto::SecretBytes plaintext, EncodePeerMessage(introduction));
  COFFRE_ASSIGN_OR_RETURN(const Peer peer, impl.FetchPeer(auditor));
  return impl.QueuePeerMessage(peer, plaintext.span());
}

static std::vector<std::string> KeyHolders(const protocol::TeamChain& chain) {
  std::vector<std::string> holders;
  for (const auto& [member, role] : chain.members()) {
    if (role != wire::ROLE_AUDITOR) holders.push_back(member);  // auditors get no team key
  }
  return holders;
}

Status Client::Impl::RotateKeyLocked(const TeamRecord& team, protocol::TeamChain& chain) {
  const std::uint64_t previous = chain.key_generation();
  const std::uint64_t generation = previous + 1;
  // A session with every device of every key holder first, as AddMember does: fetching
  // prekey bundles is what a bad link or a hostile relay makes fail, and a failure here
  // leaves the chain unchanged rather than naming a generation some members never receive.
  std::vector<Peer> recipients;
  for (const auto& member : KeyHolders(chain)) {
    COFFRE_ASSIGN_OR_RETURN(Peer peer, FetchPeer(member));
    COFFRE_RETURN_IF_ERROR(EnsureSessions(peer));
    recipients.push_back(std::move(peer));
  }
  const crypto::SecretBytes key = GenerateTeamKey();
  COFFRE_ASSIGN_OR_RETURN(const auto commitment, KeyCommitment(team.team_id, generation, key));
  std::optional<crypto::SecretBytes> old_key;
  if (previous > 0) {
    COFFRE_ASSIGN_OR_RETURN(auto held, TeamKey(team.team_id, previous));
    old_key.emplace(std::move(held));
  }
  wire::ChainStatementBody body;
  body.mutable_rotate_key()->set_generation(generation);
  body.mutable_rotate_key()->set_commitment(commitment.data(), commitment.size());

  // The new key, the key history item and every delivery are recorded in one transaction
  // before the statement goes out: whatever happens next (a crash, a cut, a lost answer),
  // a generation the chain names is held here and on its way to every member. What may be
  // left is a key the chain never names, whose deliveries their recipients refuse.
  std::int64_t queued_after = 0;  // the rotation's outbox rows: (queued_after, queued_last]
  std::int64_t queued_last = 0;
  bool queued = false;
  const auto record = [&](const protocol::TeamChain& next) -> Status {
    TeamKeyDelivery delivery;
    delivery.team_id = team.team_id;
    delivery.generation = generation;
    delivery.key = crypto::SecretBytes::CopyOf(key.span());
    delivery.chain_head = next.head();
    delivery.team_name = team.name;
    COFFRE_ASSIGN_OR_RETURN(const crypto::SecretBytes plaintext, EncodePeerMessage(delivery));
    std::optional<wire::Request> history_request;
    if (old_key) {
      // Current members read history: the previous generation, sealed under the new one,
      // is kept on the relay as an item of the team.
      COFFRE_ASSIGN_OR_RETURN(const auto history,
                              SealPreviousGeneration(key, *old_key, team.team_id, previous, generation));
      wire::ItemManifestBody manifest;
      const auto item_id = NewId();
      manifest.set_team_id(Str(team.team_id));
      manifest.set_item_id(Str(item_id));
      manifest.set_version(1);
      manifest.set_parent_version(0);
      manifest.set_kind(std::string(kKindKeyHistory));
      manifest.set_key_generation(generation);
      manifest.set_encrypted_metadata(Str(history));
      manifest.set_author_user_id(user_id);
      manifest.set_author_device_id(device_id);
      manifest.set_created_ms(NowMs());
      COFFRE_ASSIGN_OR_RETURN(auto signed_manifest, protocol::SignItemManifest(manifest, *device_key));
      history_request.emplace();
      *history_request->mutable_put_item_version()->mutable_manifest() = signed_manifest;
    }
    const Status recorded = signal_stores->RunInTransaction([&]() -> Status {
      COFFRE_ASSIGN_OR_RETURN(const auto before, sql::QueryInt(*db, "SELECT max(id) FROM outbox"));
      queued_after = before.value_or(0);
      COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                      "INSERT OR REPLACE INTO team_keys (team_id, generation, key) "
                                      "VALUES (?, ?, ?)",
                                      team.team_id, generation, key));
      if (history_request) COFFRE_RETURN_IF_ERROR(QueueRequest(*history_request));
      for (const Peer& peer : recipients) {
        COFFRE_RETURN_IF_ERROR(EncryptToDevices(peer, plaintext.span()));
      }
      COFFRE_ASSIGN_OR_RETURN(const auto last, sql::QueryInt(*db, "SELECT max(id) FROM outbox"));
      queued_last = last.value_or(0);
      return Ok();
    });
    COFFRE_RETURN_IF_ERROR(recorded);
    queued = true;
    return Ok();
  };
  const Status appended = AppendStatement(team, chain, std::move(body), record);
  if (appended || !queued) return appended;
  // The relay did not confirm the statement, yet it may hold it (an answer lost on the way
  // back): the chain it serves now tells. When it cannot say, the deliveries stay queued.
  auto fresh = RefreshChain(team);
  if (!fresh) return appended;
  auto named = CommitmentFor(*this, team.team_id, generation);
  if (named && crypto::ConstantTimeEquals(*named, commitment)) {
    chain = std::move(*fresh);
    return Ok();
  }
  // Not sent: the rotation's deliveries and its key go, so that neither a stale key nor a
  // delivery of it stands in the way of the generation someone else may have named.
  const Status undone = signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(
        sql::Run(*db, "DELETE FROM outbox WHERE id > ? AND id <= ?", queued_after, queued_last));
    return sql::Run(*db, "DELETE FROM team_keys WHERE team_id = ? AND generation = ? AND key = ?", team.team_id,
                    generation, key);
  });
  COFFRE_RETURN_IF_ERROR(undone);
  return appended;
}

Result<TeamView> Client::Impl::BuildTeamView(const TeamRecord& team, const protocol::TeamChain& chain) {
  TeamView view;
  view.name = team.name;
  view.team_id = Hex(team.team_id);
  view.chain_sequence = chain.head().sequence;
  view.chain_head = Hex(chain.head().hash);
  view.key_generation = chain.key_generation();
  for (const auto& [member, role] : chain.members()) {
    TeamMemberView member_view;
    member_view.user_id = member;
    member_view.role = FromWireRole(role);
    if (member == user_id) view.my_role = member_view.role;
    auto peer = StoredPeer(member);
    if (peer) {
      for (const auto& device : peer->devices) {
        if (!device.revoked) member_view.device_ids.push_back(device.device_id);
      }
    }
    view.members.push_back(std::move(member_view));
  }
  COFFRE_ASSIGN_OR_RETURN(auto channels, sql::Prepared(*db, "SELECT name FROM channels WHERE team_id = ? ORDER BY name",
                                                       team.team_id));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, channels.Step());
    if (!row) break;
    view.channels.push_back(channels.ColumnText(0));
  }
  return view;
}

Result<TeamRecord> Client::Impl::LearnTeam(const protocol::TeamId& team_id, const std::string& name) {
  TeamRecord team{team_id, std::string()};
  COFFRE_ASSIGN_OR_RETURN(auto known, sql::Prepared(*db, "SELECT name FROM teams WHERE team_id = ?", team.team_id));
  COFFRE_ASSIGN_OR_RETURN(const bool found, known.Step());
  if (found) {
    team.name = known.ColumnText(0);  // later messages do not rename it
    return team;
  }
  team.name = name;
  if (!ValidateTeamName(team.name)) return Fail(ErrorCode::kAuthenticationFailed, "a message names no valid team");
  // Another team of this profile may already have the name: keep both, apart.
  COFFRE_ASSIGN_OR_RETURN(auto clash, sql::QueryInt(*db, "SELECT count(*) FROM teams WHERE name = ?", team.name));
  if (clash && *clash > 0) {
    team.name += '-';
    team.name += Hex(team.team_id).substr(0, 8);
  }
  COFFRE_RETURN_IF_ERROR(sql::Run(*db, "INSERT INTO teams (team_id, name) VALUES (?, ?)", team.team_id, team.name));
  return team;
}

Status Client::Impl::AcceptTeamIntroduction(const std::string& sender, const TeamIntroduction& introduction) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, LearnTeam(introduction.team_id, introduction.team_name));
  COFFRE_ASSIGN_OR_RETURN(const auto chain, RefreshChain(team));
  if (!chain.IsAdmin(sender)) {
    return Fail(ErrorCode::kAuthenticationFailed, "a team introduction came from someone who is not an admin");
  }
  const auto role = chain.RoleOf(user_id);
  if (!role || *role != wire::ROLE_AUDITOR) {
    return Fail(ErrorCode::kAuthenticationFailed, "a team introduction for a team this user does not audit");
  }
  return Ok();
}

Status Client::Impl::AcceptTeamKey(const std::string& sender, const TeamKeyDelivery& delivery) {
  if (delivery.generation == 0) return Fail(ErrorCode::kAuthenticationFailed, "a team key delivery is malformed");
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, LearnTeam(delivery.team_id, delivery.team_name));
  // The sender must be an admin of the team and the key must be the one the chain commits
  // to for that generation: neither the relay nor a member can slip in a key.
  COFFRE_ASSIGN_OR_RETURN(auto chain, RefreshChain(team));
  if (!chain.IsAdmin(sender)) {
    return Fail(ErrorCode::kAuthenticationFailed, "a team key came from someone who is not an admin");
  }
  COFFRE_ASSIGN_OR_RETURN(const auto expected, CommitmentFor(*this, team.team_id, delivery.generation));
  COFFRE_RETURN_IF_ERROR(CheckKeyCommitment(team.team_id, delivery.generation, delivery.key, expected));
  return sql::Run(*db, "INSERT OR IGNORE INTO team_keys (team_id, generation, key) VALUES (?, ?, ?)",
                  team.team_id, delivery.generation, delivery.key);
}

Status Client::Impl::AdoptLinkedTeams(const std::vector<LinkedTeam>& teams) {
  for (const LinkedTeam& linked : teams) {
    const TeamRecord team{linked.team_id, linked.name};
    COFFRE_RETURN_IF_ERROR(sql::Run(*db, "INSERT OR IGNORE INTO teams (team_id, name) VALUES (?, ?)",
                                    team.team_id, team.name));
    // The relay's chain is verified from its start, and must pass through the head the
    // existing device verified: a relay cannot show the new device an older or forked team.
    COFFRE_ASSIGN_OR_RETURN(const auto chain, RefreshChain(team));
    const auto hash = chain.HashAt(linked.head_sequence);
    if (!hash || *hash != linked.head_hash) {
      return ChainError(protocol::Fail(hash ? protocol::Failure::kHeadFork
                                            : protocol::Failure::kHeadRollback).error);
    }
    for (const LinkedTeamKey& key : linked.keys) {
      COFFRE_ASSIGN_OR_RETURN(const auto expected, CommitmentFor(*this, team.team_id, key.generation));
      COFFRE_RETURN_IF_ERROR(CheckKeyCommitment(team.team_id, key.generation, key.key, expected));
      COFFRE_RETURN_IF_ERROR(sql::Run(*db,
                                      "INSERT OR IGNORE INTO team_keys (team_id, generation, key) VALUES (?, ?, ?)",
                                      team.team_id, key.generation, key.key));
    }
  }
  return Ok();
}

// --- The facade's team methods --------------------------------------------------------

Result<TeamView> Client::CreateTeam(std::string_view name) {
  COFFRE_RETURN_IF_ERROR(ValidateTeamName(name));
  auto existing = impl_->TeamByName(name);
  if (existing) return Fail(ErrorCode::kAlreadyExists, "this profile already has a team by that name");
  const auto team_id = NewId();
  TeamRecord team{team_id, std::string(name)};

  wire::ChainStatementBody body;
  body.set_team_id(Str(team_id));
  body.set_sequence(0);
  body.set_signer_user_id(impl_->user_id);
  body.set_signer_device_id(impl_->device_id);
  body.set_created_ms(NowMs());
  body.mutable_create();
  COFFRE_ASSIGN_OR_RETURN(auto genesis, protocol::SignChainStatement(body, *impl_->device_key));
  COFFRE_ASSIGN_OR_RETURN(auto chain, protocol::TeamChain::FromGenesis(genesis, impl_->KeyLookup()));
  wire::Request request;
  *request.mutable_append_chain_statement()->mutable_statement() = genesis;
  COFFRE_ASSIGN_OR_RETURN(auto appended, impl_->Call(std::move(request)));
  (void)appended;
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "INSERT INTO teams (team_id, name) VALUES (?, ?)", team_id, team.name));
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db,
                                  "INSERT INTO chain_statements (team_id, sequence, statement) VALUES (?, 0, ?)",
                                  team_id, AsBytes(genesis.SerializeAsString())));
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl_->db, "UPDATE teams SET head_sequence = 0, head_hash = ? WHERE team_id = ?",
                                  chain.head().hash, team_id));
  COFFRE_RETURN_IF_ERROR(impl_->RotateKeyLocked(team, chain));
  (void)impl_->SendOutbox(nullptr);
  return impl_->BuildTeamView(team, chain);
}

Status Client::AddMember(std::string_view team_name, std::string_view member, Role role) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(member));
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto chain, impl_->RefreshChain(team));
  if (!chain.IsAdmin(impl_->user_id)) return Fail(ErrorCode::kInvalidArgument, "only a team admin can add members");
  if (chain.IsMember(member)) return Fail(ErrorCode::kAlreadyExists, "this user is already a member of the team");
  COFFRE_ASSIGN_OR_RETURN(const Peer peer, impl_->FetchPeer(member));
  if (peer.key_changed) {
    return Fail(ErrorCode::kUntrustedIdentity,
                "this person's identity key changed: compare safety numbers, then `coffre verify USER --confirm`");
  }
  // Sessions with every device of the new member first: a bundle the relay cannot give (or
  // gives under another identity) stops here, before the chain names a member who could
  // then never receive the key.
  if (role != Role::kAuditor) {
    for (const auto& device : peer.devices) {
      if (device.revoked) continue;
      COFFRE_ASSIGN_OR_RETURN(const bool had, impl_->EnsureSession(peer.user_id, device));
      (void)had;
    }
  }
  wire::ChainStatementBody body;
  body.mutable_add_member()->set_user_id(std::string(member));
  body.mutable_add_member()->set_role(WireRole(role));
  COFFRE_RETURN_IF_ERROR(impl_->AppendStatement(team, chain, std::move(body)));
  if (role == Role::kAuditor) {
    // The statement is what makes the auditor; the introduction only lets its profile name
    // the team. An auditor this device cannot reach now (no session can be set up) audits
    // by the team's id, as `team show` prints it.
    (void)IntroduceTeam(*impl_, team, chain, std::string(member));
  } else if (chain.key_generation() > 0) {
    COFFRE_RETURN_IF_ERROR(DeliverTeamKey(*impl_, team, chain, chain.key_generation(), {std::string(member)}));
  }
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Status Client::RemoveMember(std::string_view team_name, std::string_view member) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(member));
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto chain, impl_->RefreshChain(team));
  if (!chain.IsAdmin(impl_->user_id)) return Fail(ErrorCode::kInvalidArgument, "only a team admin can remove members");
  if (!chain.IsMember(member)) return Fail(ErrorCode::kNotFound, "this user is not a member of the team");
  wire::ChainStatementBody body;
  body.mutable_remove_member()->set_user_id(std::string(member));
  COFFRE_RETURN_IF_ERROR(impl_->AppendStatement(team, chain, std::move(body)));
  // A removed member keeps what it had, but nothing written from now on.
  COFFRE_RETURN_IF_ERROR(impl_->RotateKeyLocked(team, chain));
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Status Client::ChangeRole(std::string_view team_name, std::string_view member, Role role) {
  COFFRE_RETURN_IF_ERROR(protocol::ValidateUserId(member));
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto chain, impl_->RefreshChain(team));
  if (!chain.IsAdmin(impl_->user_id)) return Fail(ErrorCode::kInvalidArgument, "only a team admin can change roles");
  const auto current = chain.RoleOf(member);
  if (!current) return Fail(ErrorCode::kNotFound, "this user is not a member of the team");
  wire::ChainStatementBody body;
  body.mutable_change_role()->set_user_id(std::string(member));
  body.mutable_change_role()->set_role(WireRole(role));
  COFFRE_RETURN_IF_ERROR(impl_->AppendStatement(team, chain, std::move(body)));
  if (role == Role::kAuditor) {
    // Auditors hold no team key: the one this member had is retired.
    COFFRE_RETURN_IF_ERROR(impl_->RotateKeyLocked(team, chain));
  } else if (*current == wire::ROLE_AUDITOR && chain.key_generation() > 0) {
    COFFRE_RETURN_IF_ERROR(DeliverTeamKey(*impl_, team, chain, chain.key_generation(), {std::string(member)}));
  }
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Status Client::RotateTeamKey(std::string_view team_name) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  COFFRE_ASSIGN_OR_RETURN(auto chain, impl_->RefreshChain(team));
  if (!chain.IsAdmin(impl_->user_id)) return Fail(ErrorCode::kInvalidArgument, "only a team admin can rotate the key");
  COFFRE_RETURN_IF_ERROR(impl_->RotateKeyLocked(team, chain));
  (void)impl_->SendOutbox(nullptr);
  return Ok();
}

Result<TeamView> Client::ShowTeam(std::string_view team_name) {
  COFFRE_ASSIGN_OR_RETURN(const TeamRecord team, impl_->TeamByName(team_name));
  // Online when the relay answers; otherwise the last verified state.
  auto chain = impl_->RefreshChain(team);
  if (!chain) {
    if (chain.error().code() == ErrorCode::kAuthenticationFailed) return chain.error();
    chain = impl_->StoredChain(team.team_id);
    if (!chain) return chain.error();
  }
  return impl_->BuildTeamView(team, *chain);
}

Result<std::vector<TeamView>> Client::ListTeams() {
  COFFRE_ASSIGN_OR_RETURN(auto rows, sql::Prepared(*impl_->db, "SELECT team_id, name FROM teams ORDER BY name"));
  std::vector<TeamRecord> teams;
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(const bool row, rows.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(const auto team_id, IdFrom(rows.ColumnBlob(0)));
    teams.push_back(TeamRecord{team_id, rows.ColumnText(1)});
  }
  std::vector<TeamView> views;
  for (const auto& team : teams) {
    auto chain = impl_->StoredChain(team.team_id);
    if (!chain) continue;  // known by a key delivery, chain not verified yet
    COFFRE_ASSIGN_OR_RETURN(auto view, impl_->BuildTeamView(team, *chain));
    views.push_back(std::move(view));
  }
  return views;
}

}  // namespace coffre::client
