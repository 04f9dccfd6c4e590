// The team chain: a hash-linked list of statements signed by admin devices that says who
// is in a team (DESIGN.md "Team chain"; docs/protocol.md "Team chain").
//
// The relay verifies every statement before it stores it (it cannot forge one, and must
// not be fed garbage); a client verifies the whole chain, remembers the head it last
// verified, refuses a chain that forks or rolls back, and encrypts only to devices of
// members. Both use TeamChain, so both apply exactly the same rules.
#ifndef COFFRE_PROTOCOL_TEAM_CHAIN_H_
#define COFFRE_PROTOCOL_TEAM_CHAIN_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::protocol {

using Hash = std::array<std::uint8_t, kHashSize>;
using TeamId = std::array<std::uint8_t, kIdSize>;

// Domain prefix of StatementHash.
inline constexpr std::string_view kChainStatementHashLabel = "coffre/chain-statement-hash/v1";

// A position in a chain: the sequence of the last statement and its StatementHash.
struct ChainHead {
  std::uint64_t sequence = 0;
  Hash hash{};

  friend bool operator==(const ChainHead&, const ChainHead&) = default;
};

// Serializes `body` and signs it with the signer's device key under kChainStatementLabel.
// Fails (ValidateChainStatementBody's failures) if a field is invalid. Does not check the
// chain rules: that is TeamChain::Apply, on the receiving side and the sender's own.
Result<wire::v1::ChainStatement> SignChainStatement(const wire::v1::ChainStatementBody& body,
                                                    const crypto::SigningKey& device_key);

// The hash that links statements and names a head:
//   BLAKE2b-256(u16be(len(label)) || label || u32be(len(body)) || body || signature)
// with label kChainStatementHashLabel, over the bytes exactly as carried (body as signed,
// signature as given). The length prefix fixes where the body ends; the signature is
// covered so that a head names one signed statement, not only its content. Never fails;
// bodies longer than 2^32-1 bytes are impossible here (ParseChainStatementBody refuses
// anything over kMaxChainStatementBody) and are hashed with their length truncated.
Hash StatementHash(const wire::v1::ChainStatement& statement);

// The verified state of one team after statements 0..head, applied in order. A TeamChain
// that exists has verified at least its CreateTeam statement. Copyable.
//
// Rules (each failure names its Failure):
//  - the statement parses and its fields are valid (ParseChainStatementBody's failures);
//  - sequence 0 is CreateTeam with an empty previous hash (kChainFirstNotCreate) and the
//    signer becomes the sole admin; CreateTeam anywhere else is kChainCreateAfterGenesis;
//  - afterwards, same team id (kChainTeamMismatch); sequence = head + 1, where a sequence
//    at or before the head is kChainStaleSequence (a conflict: the caller's view is old, or
//    two statements compete for one sequence) and one beyond is kChainSequenceGap;
//    previous_hash = head hash (kChainPreviousHashMismatch, a conflict: fork);
//  - the signer device is known and not revoked (`lookup` succeeds, else
//    kChainSignerUnknown) and the signature verifies under its key (kBadSignature);
//  - the signer user is currently an admin (kChainSignerNotAdmin), for every statement
//    after CreateTeam;
//  - AddMember: the user is not a member (kChainMemberExists); RemoveMember and
//    ChangeRole: the user is a member (kChainNotMember); ChangeRole to the role the member
//    already has is kChainRoleUnchanged; removing or demoting the only admin is
//    kChainLastAdmin;
//  - RotateKey: generation = current + 1 (kChainGenerationNotNext); the generation is 0
//    until the first RotateKey, which sets 1.
// Checks run in this order, so a statement with a bad link is refused as a conflict before
// its signature is looked at, and one with a bad signature is refused before its content
// is judged against the rights of a signer it may not come from.
class TeamChain {
 public:
  // Verifies `statements` as a whole chain from sequence 0 and returns its state. Fails
  // with kChainEmpty when there is none, otherwise with the failure of the first statement
  // that breaks a rule.
  static Result<TeamChain> Verify(std::span<const wire::v1::ChainStatement> statements,
                                  const DeviceKeyLookup& lookup);
  // The same for a Chain reply's repeated field.
  static Result<TeamChain> Verify(
      const google::protobuf::RepeatedPtrField<wire::v1::ChainStatement>& statements,
      const DeviceKeyLookup& lookup);

  // Verifies a CreateTeam statement at sequence 0 and returns the one-statement chain.
  static Result<TeamChain> FromGenesis(const wire::v1::ChainStatement& genesis,
                                       const DeviceKeyLookup& lookup);

  // Verifies `statement` as the next one after the head and applies it. All or nothing:
  // on failure the state is exactly as before.
  Status Apply(const wire::v1::ChainStatement& statement, const DeviceKeyLookup& lookup);

  // Ok() when this chain contains `remembered` (a head this client verified earlier) at its
  // sequence, i.e. the chain is the remembered one or extends it. Fails with
  // kHeadRollback when the chain ends before remembered.sequence and with kHeadFork when
  // the statement at that sequence has another hash.
  Status ExtendsHead(const ChainHead& remembered) const;

  const TeamId& team_id() const { return team_id_; }
  ChainHead head() const;
  // The StatementHash of the statement at `sequence`, nullopt beyond the head.
  std::optional<Hash> HashAt(std::uint64_t sequence) const;

  // Current members and their roles, ordered by user id.
  const std::map<std::string, wire::v1::Role, std::less<>>& members() const { return members_; }
  std::optional<wire::v1::Role> RoleOf(std::string_view user_id) const;
  bool IsMember(std::string_view user_id) const { return RoleOf(user_id).has_value(); }
  bool IsAdmin(std::string_view user_id) const;
  std::size_t AdminCount() const { return admin_count_; }

  // Current team key generation (0 before the first RotateKey) and its commitment (empty
  // before the first RotateKey, else 32 bytes).
  std::uint64_t key_generation() const { return key_generation_; }
  const std::optional<Hash>& key_commitment() const { return key_commitment_; }
  // The X25519 auditor key set by the last SetAuditorKey, if any.
  const std::optional<std::array<std::uint8_t, kX25519KeySize>>& auditor_key() const {
    return auditor_key_;
  }
  // The encrypted name set by the last Rename; empty before any.
  const std::string& encrypted_name() const { return encrypted_name_; }

 private:
  TeamChain() = default;

  TeamId team_id_{};
  std::vector<Hash> hashes_;  // hashes_[s] = StatementHash of the statement at sequence s
  std::map<std::string, wire::v1::Role, std::less<>> members_;
  std::size_t admin_count_ = 0;
  std::uint64_t key_generation_ = 0;
  std::optional<Hash> key_commitment_;
  std::optional<std::array<std::uint8_t, kX25519KeySize>> auditor_key_;
  std::string encrypted_name_;
};

}  // namespace coffre::protocol

#endif  // COFFRE_PROTOCOL_TEAM_CHAIN_H_
