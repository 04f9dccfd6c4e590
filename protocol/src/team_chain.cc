#include "coffre/protocol/team_chain.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "coffre/crypto/kdf.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/validation.h"
#include "encoding.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;
using internal::AppendBytes;
using internal::AppendU16;
using internal::AppendU32;
using internal::AsBytes;

std::string_view AsText(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The signer's device must be known and unrevoked, and the signature must verify under
// its key. Every lookup failure is one failure: what the caller's table said (not found,
// revoked, storage error) is not the chain's business.
Status CheckStatementSignature(const v1::ChainStatement& statement,
                               const v1::ChainStatementBody& body, const DeviceKeyLookup& lookup) {
  if (!lookup) return Fail(Failure::kChainSignerUnknown);
  Result<crypto::VerifyKey> key = lookup(body.signer_user_id(), body.signer_device_id());
  if (!key) return Fail(Failure::kChainSignerUnknown);
  if (!key->Verify(kChainStatementLabel, AsBytes(statement.body()),
                   AsBytes(statement.signature()))) {
    return Fail(Failure::kBadSignature);
  }
  return Ok();
}

template <typename Range>
Result<TeamChain> VerifyRange(const Range& statements, const DeviceKeyLookup& lookup) {
  auto it = statements.begin();
  if (it == statements.end()) return Fail(Failure::kChainEmpty);
  COFFRE_ASSIGN_OR_RETURN(TeamChain chain, TeamChain::FromGenesis(*it, lookup));
  for (++it; it != statements.end(); ++it) {
    COFFRE_RETURN_IF_ERROR(chain.Apply(*it, lookup));
  }
  return chain;
}

}  // namespace

Result<v1::ChainStatement> SignChainStatement(const v1::ChainStatementBody& body,
                                              const crypto::SigningKey& device_key) {
  COFFRE_RETURN_IF_ERROR(ValidateChainStatementBody(body));
  if (HasUnknownFields(body)) return Fail(Failure::kUnknownField);
  std::string bytes;
  if (!body.SerializeToString(&bytes)) {
    return coffre::Fail(ErrorCode::kInternal, "protobuf failed to serialize a chain statement");
  }
  const auto signature = device_key.Sign(kChainStatementLabel, AsBytes(bytes));
  v1::ChainStatement statement;
  statement.set_body(std::move(bytes));
  statement.set_signature(signature.data(), signature.size());
  return statement;
}

Hash StatementHash(const v1::ChainStatement& statement) {
  std::vector<std::uint8_t> input;
  input.reserve(2 + kChainStatementHashLabel.size() + 4 + statement.body().size() +
                statement.signature().size());
  AppendU16(input, static_cast<std::uint16_t>(kChainStatementHashLabel.size()));
  AppendBytes(input, kChainStatementHashLabel);
  AppendU32(input, static_cast<std::uint32_t>(statement.body().size()));
  AppendBytes(input, statement.body());
  AppendBytes(input, statement.signature());
  return crypto::Blake2b256(input);
}

Result<TeamChain> TeamChain::Verify(std::span<const v1::ChainStatement> statements,
                                    const DeviceKeyLookup& lookup) {
  return VerifyRange(statements, lookup);
}

Result<TeamChain> TeamChain::Verify(
    const google::protobuf::RepeatedPtrField<v1::ChainStatement>& statements,
    const DeviceKeyLookup& lookup) {
  return VerifyRange(statements, lookup);
}

Result<TeamChain> TeamChain::FromGenesis(const v1::ChainStatement& genesis,
                                         const DeviceKeyLookup& lookup) {
  COFFRE_ASSIGN_OR_RETURN(v1::ChainStatementBody body, ParseChainStatementBody(genesis));
  // ParseChainStatementBody already refused a previous hash at sequence 0.
  if (body.sequence() != 0 || !body.has_create()) return Fail(Failure::kChainFirstNotCreate);
  COFFRE_RETURN_IF_ERROR(CheckStatementSignature(genesis, body, lookup));

  TeamChain chain;
  const std::span<const std::uint8_t> team_id = AsBytes(body.team_id());
  std::copy(team_id.begin(), team_id.end(), chain.team_id_.begin());
  chain.hashes_.push_back(StatementHash(genesis));
  chain.members_.emplace(body.signer_user_id(), v1::ROLE_ADMIN);
  chain.admin_count_ = 1;
  return chain;
}

Status TeamChain::Apply(const v1::ChainStatement& statement, const DeviceKeyLookup& lookup) {
  // Every check comes before the first change to the state, so a failure leaves it as it
  // was (all or nothing) without copying it.
  COFFRE_ASSIGN_OR_RETURN(v1::ChainStatementBody body, ParseChainStatementBody(statement));

  // Linkage, before anything else: a stale or forked statement is a conflict the sender
  // resolves by fetching the chain, whatever else may be wrong with it.
  if (body.team_id() != AsText(team_id_)) return Fail(Failure::kChainTeamMismatch);
  const std::uint64_t head_sequence = hashes_.size() - 1;
  if (body.sequence() <= head_sequence) return Fail(Failure::kChainStaleSequence);
  if (body.sequence() != head_sequence + 1) return Fail(Failure::kChainSequenceGap);
  if (body.previous_hash() != AsText(hashes_.back())) {
    return Fail(Failure::kChainPreviousHashMismatch);
  }

  COFFRE_RETURN_IF_ERROR(CheckStatementSignature(statement, body, lookup));
  if (body.has_create()) return Fail(Failure::kChainCreateAfterGenesis);
  if (!IsAdmin(body.signer_user_id())) return Fail(Failure::kChainSignerNotAdmin);

  switch (body.change_case()) {
    case v1::ChainStatementBody::kAddMember: {
      const v1::AddMember& add = body.add_member();
      if (IsMember(add.user_id())) return Fail(Failure::kChainMemberExists);
      members_.emplace(add.user_id(), add.role());
      if (add.role() == v1::ROLE_ADMIN) ++admin_count_;
      break;
    }
    case v1::ChainStatementBody::kRemoveMember: {
      auto member = members_.find(body.remove_member().user_id());
      if (member == members_.end()) return Fail(Failure::kChainNotMember);
      const bool was_admin = member->second == v1::ROLE_ADMIN;
      if (was_admin && admin_count_ == 1) return Fail(Failure::kChainLastAdmin);
      members_.erase(member);
      if (was_admin) --admin_count_;
      break;
    }
    case v1::ChainStatementBody::kChangeRole: {
      const v1::ChangeRole& change = body.change_role();
      auto member = members_.find(change.user_id());
      if (member == members_.end()) return Fail(Failure::kChainNotMember);
      if (member->second == change.role()) return Fail(Failure::kChainRoleUnchanged);
      const bool was_admin = member->second == v1::ROLE_ADMIN;
      const bool is_admin = change.role() == v1::ROLE_ADMIN;
      if (was_admin && admin_count_ == 1) return Fail(Failure::kChainLastAdmin);
      member->second = change.role();
      if (was_admin) --admin_count_;
      if (is_admin) ++admin_count_;
      break;
    }
    case v1::ChainStatementBody::kRotateKey: {
      const v1::RotateKey& rotate = body.rotate_key();
      if (rotate.generation() != key_generation_ + 1) {
        return Fail(Failure::kChainGenerationNotNext);
      }
      Hash commitment{};
      const std::span<const std::uint8_t> bytes = AsBytes(rotate.commitment());
      std::copy(bytes.begin(), bytes.end(), commitment.begin());
      key_generation_ = rotate.generation();
      key_commitment_ = commitment;
      break;
    }
    case v1::ChainStatementBody::kSetAuditorKey: {
      std::array<std::uint8_t, kX25519KeySize> key{};
      const std::span<const std::uint8_t> bytes = AsBytes(body.set_auditor_key().auditor_key());
      std::copy(bytes.begin(), bytes.end(), key.begin());
      auditor_key_ = key;
      break;
    }
    case v1::ChainStatementBody::kRename:
      encrypted_name_ = body.rename().encrypted_name();
      break;
    case v1::ChainStatementBody::kCreate:
    case v1::ChainStatementBody::CHANGE_NOT_SET:
      // Refused above and by ParseChainStatementBody.
      return Fail(Failure::kStatementChangeMissing);
  }
  hashes_.push_back(StatementHash(statement));
  return Ok();
}

Status TeamChain::ExtendsHead(const ChainHead& remembered) const {
  if (remembered.sequence >= hashes_.size()) return Fail(Failure::kHeadRollback);
  if (hashes_[static_cast<std::size_t>(remembered.sequence)] != remembered.hash) {
    return Fail(Failure::kHeadFork);
  }
  return Ok();
}

ChainHead TeamChain::head() const {
  return ChainHead{.sequence = hashes_.size() - 1, .hash = hashes_.back()};
}

std::optional<Hash> TeamChain::HashAt(std::uint64_t sequence) const {
  if (sequence >= hashes_.size()) return std::nullopt;
  return hashes_[static_cast<std::size_t>(sequence)];
}

std::optional<wire::v1::Role> TeamChain::RoleOf(std::string_view user_id) const {
  auto member = members_.find(user_id);
  if (member == members_.end()) return std::nullopt;
  return member->second;
}

bool TeamChain::IsAdmin(std::string_view user_id) const {
  return RoleOf(user_id) == v1::ROLE_ADMIN;
}

}  // namespace coffre::protocol
