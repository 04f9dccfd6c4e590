#include "coffre/protocol/team_chain.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/crypto/kdf.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/validation.h"
#include "protocol/test_util.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;
using testing::Describe;
using testing::DeviceDirectory;
using testing::Filled;
using testing::X25519Key;

const std::string kTeam = Filled(16, 0x7E);

// Writes statements the way an admin's client would: it tracks the head of the chain it
// builds, so each test only says who signs and what changes.
class TeamChainTest : public ::testing::Test {
 protected:
  TeamChainTest() {
    directory_.Add("alice", 1);
    directory_.Add("bob", 1);
    directory_.Add("carol", 2);
  }

  // A statement at `sequence` after `previous_hash`, signed by (user, device).
  v1::ChainStatement Statement(const std::string& user, std::uint32_t device,
                               std::uint64_t sequence, const std::string& previous_hash,
                               const std::function<void(v1::ChainStatementBody&)>& change,
                               const std::string& team = kTeam) {
    v1::ChainStatementBody body;
    body.set_team_id(team);
    body.set_sequence(sequence);
    body.set_previous_hash(previous_hash);
    body.set_signer_user_id(user);
    body.set_signer_device_id(device);
    body.set_created_ms(1'700'000'000'000 + sequence);
    change(body);
    Result<v1::ChainStatement> statement = SignChainStatement(body, directory_.Key(user, device));
    EXPECT_TRUE(statement.has_value()) << Describe(statement);
    return statement.has_value() ? *statement : v1::ChainStatement();
  }

  // Appends the next statement to `chain_` (the list being built), linked to its end.
  const v1::ChainStatement& Next(const std::string& user, std::uint32_t device,
                                 const std::function<void(v1::ChainStatementBody&)>& change) {
    const std::uint64_t sequence = chain_.size();
    chain_.push_back(Statement(user, device, sequence, PreviousHash(), change));
    return chain_.back();
  }

  // What a statement appended now must name as previous_hash.
  std::string PreviousHash() const {
    if (chain_.empty()) return "";
    const Hash hash = StatementHash(chain_.back());
    return std::string(hash.begin(), hash.end());
  }

  // A statement at the next sequence, not appended to chain_.
  v1::ChainStatement Candidate(const std::string& user, std::uint32_t device,
                               const std::function<void(v1::ChainStatementBody&)>& change) {
    return Statement(user, device, chain_.size(), PreviousHash(), change);
  }

  static std::function<void(v1::ChainStatementBody&)> Create() {
    return [](v1::ChainStatementBody& body) { body.mutable_create(); };
  }
  static std::function<void(v1::ChainStatementBody&)> AddMember(const std::string& user,
                                                                v1::Role role) {
    return [=](v1::ChainStatementBody& body) {
      body.mutable_add_member()->set_user_id(user);
      body.mutable_add_member()->set_role(role);
    };
  }
  static std::function<void(v1::ChainStatementBody&)> RemoveMember(const std::string& user) {
    return [=](v1::ChainStatementBody& body) { body.mutable_remove_member()->set_user_id(user); };
  }
  static std::function<void(v1::ChainStatementBody&)> ChangeRole(const std::string& user,
                                                                 v1::Role role) {
    return [=](v1::ChainStatementBody& body) {
      body.mutable_change_role()->set_user_id(user);
      body.mutable_change_role()->set_role(role);
    };
  }
  static std::function<void(v1::ChainStatementBody&)> RotateKey(std::uint64_t generation) {
    return [=](v1::ChainStatementBody& body) {
      body.mutable_rotate_key()->set_generation(generation);
      body.mutable_rotate_key()->set_commitment(Filled(32, static_cast<std::uint8_t>(generation)));
    };
  }

  // The state after chain_, which must verify.
  TeamChain Verified() {
    Result<TeamChain> chain = TeamChain::Verify(chain_, directory_.Lookup());
    EXPECT_TRUE(chain.has_value()) << Describe(chain);
    return std::move(chain).value();
  }

  // alice creates the team and adds bob as a member.
  void CreateWithBob() {
    Next("alice", 1, Create());
    Next("alice", 1, AddMember("bob", v1::ROLE_MEMBER));
  }

  void ExpectApplyFails(const v1::ChainStatement& statement, Failure failure) {
    TeamChain chain = Verified();
    const ChainHead head_before = chain.head();
    const auto members_before = chain.members();
    Status status = chain.Apply(statement, directory_.Lookup());
    EXPECT_TRUE(FailedWith(status, failure))
        << "expected: " << InfoOf(failure).message << "\n got: " << Describe(status);
    // All or nothing: the refused statement left no trace.
    EXPECT_EQ(chain.head(), head_before);
    EXPECT_EQ(chain.members(), members_before);
  }

  DeviceDirectory directory_;
  std::vector<v1::ChainStatement> chain_;
};

TEST_F(TeamChainTest, ChainOfCreateAddRoleRotateRemoveVerifies) {
  const std::string auditor_key = X25519Key();
  Next("alice", 1, Create());
  Next("alice", 1, AddMember("bob", v1::ROLE_MEMBER));
  Next("alice", 1, AddMember("carol", v1::ROLE_GUEST));
  Next("alice", 1, ChangeRole("bob", v1::ROLE_ADMIN));
  Next("bob", 1, RotateKey(1));
  Next("bob", 1, [&](v1::ChainStatementBody& body) {
    body.mutable_set_auditor_key()->set_auditor_key(auditor_key);
  });
  Next("alice", 1, [](v1::ChainStatementBody& body) {
    body.mutable_rename()->set_encrypted_name("sealed name");
  });
  Next("bob", 1, RemoveMember("carol"));
  Next("alice", 1, RotateKey(2));

  TeamChain chain = Verified();
  EXPECT_EQ(std::string(chain.team_id().begin(), chain.team_id().end()), kTeam);
  EXPECT_EQ(chain.head().sequence, 8u);
  EXPECT_EQ(chain.head().hash, StatementHash(chain_.back()));
  EXPECT_EQ(chain.HashAt(0), StatementHash(chain_.front()));
  EXPECT_FALSE(chain.HashAt(9).has_value());
  EXPECT_EQ(chain.RoleOf("alice"), v1::ROLE_ADMIN);
  EXPECT_EQ(chain.RoleOf("bob"), v1::ROLE_ADMIN);
  EXPECT_FALSE(chain.IsMember("carol"));
  EXPECT_EQ(chain.members().size(), 2u);
  EXPECT_EQ(chain.AdminCount(), 2u);
  EXPECT_EQ(chain.key_generation(), 2u);
  ASSERT_TRUE(chain.key_commitment().has_value());
  Hash expected_commitment{};
  expected_commitment.fill(2);
  EXPECT_EQ(*chain.key_commitment(), expected_commitment);
  ASSERT_TRUE(chain.auditor_key().has_value());
  EXPECT_EQ(std::string(chain.auditor_key()->begin(), chain.auditor_key()->end()), auditor_key);
  EXPECT_EQ(chain.encrypted_name(), "sealed name");
}

TEST_F(TeamChainTest, CreatorIsTheSoleAdminAndGenerationStartsAtZero) {
  Next("alice", 1, Create());
  TeamChain chain = Verified();
  EXPECT_EQ(chain.head().sequence, 0u);
  EXPECT_EQ(chain.members().size(), 1u);
  EXPECT_TRUE(chain.IsAdmin("alice"));
  EXPECT_EQ(chain.key_generation(), 0u);
  EXPECT_FALSE(chain.key_commitment().has_value());
  EXPECT_FALSE(chain.auditor_key().has_value());
  EXPECT_TRUE(chain.encrypted_name().empty());
}

TEST_F(TeamChainTest, ApplyOneByOneMatchesVerifyOfTheWhole) {
  CreateWithBob();
  Next("alice", 1, RotateKey(1));
  Result<TeamChain> incremental = TeamChain::FromGenesis(chain_[0], directory_.Lookup());
  ASSERT_TRUE(incremental.has_value()) << Describe(incremental);
  for (std::size_t i = 1; i < chain_.size(); ++i) {
    ASSERT_TRUE(incremental->Apply(chain_[i], directory_.Lookup()).has_value());
  }
  EXPECT_EQ(incremental->head(), Verified().head());
}

TEST_F(TeamChainTest, VerifyAcceptsTheRepeatedFieldOfAChainReply) {
  CreateWithBob();
  v1::Chain reply;
  for (const auto& statement : chain_) *reply.add_statements() = statement;
  Result<TeamChain> chain = TeamChain::Verify(reply.statements(), directory_.Lookup());
  ASSERT_TRUE(chain.has_value()) << Describe(chain);
  EXPECT_EQ(chain->head().sequence, 1u);
}

TEST_F(TeamChainTest, EmptyChainIsRefused) {
  EXPECT_TRUE(FailedWith(TeamChain::Verify(chain_, directory_.Lookup()), Failure::kChainEmpty));
}

TEST_F(TeamChainTest, FirstStatementThatDoesNotCreateIsRefused) {
  Next("alice", 1, AddMember("bob", v1::ROLE_MEMBER));
  EXPECT_TRUE(
      FailedWith(TeamChain::Verify(chain_, directory_.Lookup()), Failure::kChainFirstNotCreate));
}

TEST_F(TeamChainTest, CreateAfterGenesisIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, Create()), Failure::kChainCreateAfterGenesis);
}

TEST_F(TeamChainTest, BadSignatureIsRefused) {
  CreateWithBob();
  v1::ChainStatement statement = Candidate("alice", 1, AddMember("carol", v1::ROLE_MEMBER));
  std::string signature = statement.signature();
  signature[10] = static_cast<char>(signature[10] ^ 0x04);
  statement.set_signature(signature);
  ExpectApplyFails(statement, Failure::kBadSignature);
  EXPECT_EQ(InfoOf(Failure::kBadSignature).wire_code, v1::ERROR_CODE_INVALID_SIGNATURE);
}

TEST_F(TeamChainTest, TamperedBodyIsRefusedAsBadSignature) {
  CreateWithBob();
  v1::ChainStatement statement = Candidate("alice", 1, AddMember("carol", v1::ROLE_MEMBER));
  v1::ChainStatementBody body;
  ASSERT_TRUE(body.ParseFromString(statement.body()));
  body.mutable_add_member()->set_role(v1::ROLE_ADMIN);  // the relay promotes carol
  statement.set_body(body.SerializeAsString());
  ExpectApplyFails(statement, Failure::kBadSignature);
}

TEST_F(TeamChainTest, SignatureByAnotherDeviceThanTheNamedSignerIsRefused) {
  CreateWithBob();
  v1::ChainStatementBody body;
  body.set_team_id(kTeam);
  body.set_sequence(2);
  body.set_previous_hash(PreviousHash());
  body.set_signer_user_id("alice");  // names the admin...
  body.set_signer_device_id(1);
  body.mutable_add_member()->set_user_id("mallory");
  body.mutable_add_member()->set_role(v1::ROLE_ADMIN);
  // ...but is signed by bob's device.
  Result<v1::ChainStatement> statement = SignChainStatement(body, directory_.Key("bob", 1));
  ASSERT_TRUE(statement.has_value());
  ExpectApplyFails(*statement, Failure::kBadSignature);
}

TEST_F(TeamChainTest, WrongPreviousHashIsRefusedAsFork) {
  CreateWithBob();
  ExpectApplyFails(Statement("alice", 1, 2, Filled(32, 0x01), RotateKey(1)),
                   Failure::kChainPreviousHashMismatch);
  EXPECT_EQ(InfoOf(Failure::kChainPreviousHashMismatch).wire_code, v1::ERROR_CODE_CONFLICT);
}

TEST_F(TeamChainTest, SequenceBeyondTheNextIsRefusedAsGap) {
  CreateWithBob();
  ExpectApplyFails(Statement("alice", 1, 3, PreviousHash(), RotateKey(1)),
                   Failure::kChainSequenceGap);
  EXPECT_EQ(InfoOf(Failure::kChainSequenceGap).wire_code, v1::ERROR_CODE_CHAIN_REJECTED);
}

TEST_F(TeamChainTest, SequenceAtOrBeforeTheHeadIsRefusedAsStale) {
  CreateWithBob();
  ExpectApplyFails(Statement("alice", 1, 1, PreviousHash(), RotateKey(1)),
                   Failure::kChainStaleSequence);
  ExpectApplyFails(chain_[1], Failure::kChainStaleSequence);  // replay of an applied one
  EXPECT_EQ(InfoOf(Failure::kChainStaleSequence).wire_code, v1::ERROR_CODE_CONFLICT);
}

TEST_F(TeamChainTest, TwoDifferentStatementsAtTheSameSequenceAreAFork) {
  CreateWithBob();
  const v1::ChainStatement first = Candidate("alice", 1, RotateKey(1));
  const v1::ChainStatement second = Candidate("alice", 1, AddMember("carol", v1::ROLE_GUEST));
  ASSERT_NE(StatementHash(first), StatementHash(second));

  TeamChain chain = Verified();
  ASSERT_TRUE(chain.Apply(first, directory_.Lookup()).has_value());
  EXPECT_TRUE(FailedWith(chain.Apply(second, directory_.Lookup()), Failure::kChainStaleSequence));

  std::vector<v1::ChainStatement> forked = chain_;
  forked.push_back(first);
  forked.push_back(second);
  EXPECT_TRUE(
      FailedWith(TeamChain::Verify(forked, directory_.Lookup()), Failure::kChainStaleSequence));
}

TEST_F(TeamChainTest, StatementOfAnotherTeamIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Statement("alice", 1, 2, PreviousHash(), RotateKey(1), Filled(16, 0x01)),
                   Failure::kChainTeamMismatch);
}

TEST_F(TeamChainTest, NonAdminSignerIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("bob", 1, AddMember("carol", v1::ROLE_ADMIN)),
                   Failure::kChainSignerNotAdmin);
}

TEST_F(TeamChainTest, SignerWhoIsNotAMemberIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("carol", 2, AddMember("dave", v1::ROLE_MEMBER)),
                   Failure::kChainSignerNotAdmin);
}

TEST_F(TeamChainTest, RemovedAdminCanNoLongerSign) {
  CreateWithBob();
  Next("alice", 1, ChangeRole("bob", v1::ROLE_ADMIN));
  Next("bob", 1, RemoveMember("alice"));
  ExpectApplyFails(Candidate("alice", 1, AddMember("carol", v1::ROLE_ADMIN)),
                   Failure::kChainSignerNotAdmin);
}

TEST_F(TeamChainTest, UnknownSignerDeviceIsRefused) {
  CreateWithBob();
  directory_.Add("alice", 9);
  v1::ChainStatement statement = Candidate("alice", 9, RotateKey(1));
  DeviceDirectory other;  // a lookup that has never heard of alice's device 9
  TeamChain chain = Verified();
  EXPECT_TRUE(FailedWith(chain.Apply(statement, other.Lookup()), Failure::kChainSignerUnknown));
  EXPECT_TRUE(FailedWith(chain.Apply(statement, DeviceKeyLookup()), Failure::kChainSignerUnknown));
}

TEST_F(TeamChainTest, RevokedSignerDeviceIsRefused) {
  CreateWithBob();
  directory_.Add("alice", 2);
  const v1::ChainStatement statement = Candidate("alice", 2, RotateKey(1));
  directory_.Revoke("alice", 2);
  ExpectApplyFails(statement, Failure::kChainSignerUnknown);
}

TEST_F(TeamChainTest, RemovalOfTheLastAdminIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, RemoveMember("alice")), Failure::kChainLastAdmin);
}

TEST_F(TeamChainTest, DemotionOfTheLastAdminIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, ChangeRole("alice", v1::ROLE_MEMBER)),
                   Failure::kChainLastAdmin);
}

TEST_F(TeamChainTest, AdminMayLeaveWhenAnotherAdminRemains) {
  CreateWithBob();
  Next("alice", 1, ChangeRole("bob", v1::ROLE_ADMIN));
  Next("alice", 1, RemoveMember("alice"));
  TeamChain chain = Verified();
  EXPECT_FALSE(chain.IsMember("alice"));
  EXPECT_EQ(chain.AdminCount(), 1u);
}

TEST_F(TeamChainTest, AddOfAnExistingMemberIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, AddMember("bob", v1::ROLE_ADMIN)),
                   Failure::kChainMemberExists);
}

TEST_F(TeamChainTest, RemovalOrRoleChangeOfANonMemberIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, RemoveMember("carol")), Failure::kChainNotMember);
  ExpectApplyFails(Candidate("alice", 1, ChangeRole("carol", v1::ROLE_ADMIN)),
                   Failure::kChainNotMember);
}

TEST_F(TeamChainTest, RoleChangeToTheSameRoleIsRefused) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, ChangeRole("bob", v1::ROLE_MEMBER)),
                   Failure::kChainRoleUnchanged);
}

TEST_F(TeamChainTest, KeyGenerationMustBeTheNextOne) {
  CreateWithBob();
  ExpectApplyFails(Candidate("alice", 1, RotateKey(2)), Failure::kChainGenerationNotNext);
  Next("alice", 1, RotateKey(1));
  ExpectApplyFails(Candidate("alice", 1, RotateKey(1)), Failure::kChainGenerationNotNext);
}

TEST_F(TeamChainTest, FailedApplyLeavesEveryPartOfTheStateUnchanged) {
  CreateWithBob();
  Next("alice", 1, RotateKey(1));
  TeamChain chain = Verified();
  const ChainHead head = chain.head();
  const auto members = chain.members();
  const std::size_t admins = chain.AdminCount();
  const std::uint64_t generation = chain.key_generation();
  const auto commitment = chain.key_commitment();

  const std::vector<v1::ChainStatement> refused = {
      Candidate("alice", 1, RemoveMember("alice")),             // last admin
      Candidate("bob", 1, RotateKey(2)),                        // not an admin
      Candidate("alice", 1, AddMember("bob", v1::ROLE_ADMIN)),  // exists
      Candidate("alice", 1, RotateKey(3)),                      // generation
      Statement("alice", 1, 3, Filled(32, 9), RotateKey(2)),    // fork
  };
  for (const auto& statement : refused) {
    EXPECT_FALSE(chain.Apply(statement, directory_.Lookup()).has_value());
    EXPECT_EQ(chain.head(), head);
    EXPECT_EQ(chain.members(), members);
    EXPECT_EQ(chain.AdminCount(), admins);
    EXPECT_EQ(chain.key_generation(), generation);
    EXPECT_EQ(chain.key_commitment(), commitment);
  }
  // And the chain still accepts the right next statement.
  EXPECT_TRUE(chain.Apply(Candidate("alice", 1, RotateKey(2)), directory_.Lookup()).has_value());
}

TEST_F(TeamChainTest, RememberedHeadIsFoundInTheSameOrLongerChain) {
  CreateWithBob();
  const ChainHead remembered = Verified().head();
  EXPECT_TRUE(Verified().ExtendsHead(remembered).has_value());
  Next("alice", 1, RotateKey(1));
  EXPECT_TRUE(Verified().ExtendsHead(remembered).has_value());
}

TEST_F(TeamChainTest, ChainShorterThanTheRememberedHeadIsARollback) {
  CreateWithBob();
  Next("alice", 1, RotateKey(1));
  const ChainHead remembered = Verified().head();
  chain_.pop_back();  // the relay serves the chain as it was before the rotation
  EXPECT_TRUE(FailedWith(Verified().ExtendsHead(remembered), Failure::kHeadRollback));
}

TEST_F(TeamChainTest, OtherStatementAtTheRememberedSequenceIsAFork) {
  CreateWithBob();
  Next("alice", 1, RotateKey(1));
  const ChainHead remembered = Verified().head();
  chain_.pop_back();
  Next("alice", 1, AddMember("mallory", v1::ROLE_MEMBER));  // another branch, same length
  Next("alice", 1, RotateKey(1));                           // and longer
  EXPECT_TRUE(FailedWith(Verified().ExtendsHead(remembered), Failure::kHeadFork));
}

TEST_F(TeamChainTest, StatementHashFollowsTheDocumentedLayout) {
  Next("alice", 1, Create());
  const v1::ChainStatement& statement = chain_[0];
  std::vector<std::uint8_t> input;
  const std::string label = "coffre/chain-statement-hash/v1";
  input.push_back(0);
  input.push_back(static_cast<std::uint8_t>(label.size()));
  input.insert(input.end(), label.begin(), label.end());
  const std::uint32_t size = static_cast<std::uint32_t>(statement.body().size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    input.push_back(static_cast<std::uint8_t>(size >> shift));
  }
  input.insert(input.end(), statement.body().begin(), statement.body().end());
  input.insert(input.end(), statement.signature().begin(), statement.signature().end());
  EXPECT_EQ(StatementHash(statement), crypto::Blake2b256(input));

  v1::ChainStatement other_signature = statement;
  other_signature.set_signature(Filled(64, 0));
  EXPECT_NE(StatementHash(other_signature), StatementHash(statement));
}

TEST_F(TeamChainTest, SigningRefusesAnInvalidBody) {
  v1::ChainStatementBody body;
  body.set_team_id(kTeam);
  body.set_sequence(1);
  body.set_previous_hash(Filled(32));
  body.set_signer_user_id("alice");
  body.set_signer_device_id(1);
  const crypto::SigningKey& key = directory_.Key("alice", 1);

  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kStatementChangeMissing));
  body.mutable_set_auditor_key()->set_auditor_key(Filled(31));
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidAuditorKey));
  body.mutable_add_member()->set_user_id("bob");
  body.mutable_add_member()->set_role(v1::ROLE_UNSPECIFIED);
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidRole));
  body.mutable_add_member()->set_role(static_cast<v1::Role>(42));
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidRole));
  body.mutable_rotate_key()->set_generation(1);
  body.mutable_rotate_key()->set_commitment(Filled(31));
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidCommitment));
  body.mutable_rename()->set_encrypted_name(Filled(1025));
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidEncryptedName));
  body.mutable_rename()->set_encrypted_name("n");
  body.set_previous_hash("");
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidPreviousHash));
  body.set_sequence(0);
  body.set_previous_hash(Filled(32));
  EXPECT_TRUE(FailedWith(SignChainStatement(body, key), Failure::kInvalidPreviousHash));
}

TEST_F(TeamChainTest, EachRuleHasItsOwnFailure) {
  // The failures a relay or client can meet when applying a statement are distinct, so
  // both the logs and the tests tell them apart.
  const Failure failures[] = {
      Failure::kBadSignature,        Failure::kChainPreviousHashMismatch,
      Failure::kChainStaleSequence,  Failure::kChainSequenceGap,
      Failure::kChainSignerNotAdmin, Failure::kChainSignerUnknown,
      Failure::kChainLastAdmin,      Failure::kChainMemberExists,
      Failure::kChainNotMember,      Failure::kChainGenerationNotNext,
      Failure::kChainTeamMismatch,   Failure::kChainCreateAfterGenesis,
      Failure::kHeadRollback,        Failure::kHeadFork,
  };
  std::set<std::string_view> messages;
  for (Failure failure : failures) messages.insert(InfoOf(failure).message);
  EXPECT_EQ(messages.size(), std::size(failures));
}

}  // namespace
}  // namespace coffre::protocol
