// A relay that lies. The relay is untrusted (DESIGN.md, Team chain; threat model T30 to T33):
// here its operator edits its store behind its back (the relay stopped, the store opened
// with the operator key, rows written, the relay started again) to add a member without an
// admin signature, fork a team chain, roll one back, or swap a user's keys. Every client
// must refuse, say why, and encrypt nothing to what the relay injected.
//
// "Nothing encrypted to the injected device" is read from the relay's own books: every
// envelope queued to a device takes the next value of its mailbox counter (the store never
// reuses one), so an unchanged counter proves that nothing was ever queued to it, even if
// it was fetched and acknowledged since.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "client/client_fixture.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"
#include "coffre/crypto/signature.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/storage/database.h"
#include "coffre/storage/statement.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::client {
namespace {

namespace wire = coffre::wire::v1;
using server::testing::RelayClient;
using server::testing::TestUser;
using ::testing::HasSubstr;

using Bytes = std::vector<std::uint8_t>;
using SqlValue = std::variant<std::int64_t, std::string, Bytes>;
using Members = std::map<std::string, wire::Role, std::less<>>;

constexpr std::string_view kTeam = "sdis-operations";

Bytes FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes bytes;
  if (hex.size() % 2 != 0) {
    ADD_FAILURE() << "odd hex length";
    return bytes;
  }
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int high = nibble(hex[i]);
    const int low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) {
      ADD_FAILURE() << "not hex: " << hex;
      return {};
    }
    bytes.push_back(static_cast<std::uint8_t>(high * 16 + low));
  }
  return bytes;
}

template <typename Container>
Bytes ToBytes(const Container& bytes) {
  return Bytes(bytes.begin(), bytes.end());
}

std::string ToText(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

// --- The relay's tables, as its operator sees them ----------------------------------------------

// Runs `sql` with `values` bound to ?1, ?2, ... and calls `row` for every result row.
void Sql(storage::Database& db, const char* sql, std::initializer_list<SqlValue> values,
         const std::function<void(const storage::Statement&)>& row = {}) {
  auto statement = db.Prepare(sql);
  ASSERT_TRUE(statement) << sql << ": " << statement.error().context();
  int index = 1;
  for (const SqlValue& value : values) {
    Status bound = Ok();
    if (const auto* number = std::get_if<std::int64_t>(&value)) {
      bound = statement->Bind(index, *number);
    } else if (const auto* text = std::get_if<std::string>(&value)) {
      bound = statement->Bind(index, std::string_view(*text));
    } else {
      bound = statement->Bind(index, std::span<const std::uint8_t>(std::get<Bytes>(value)));
    }
    ASSERT_TRUE(bound) << sql << ": " << bound.error().context();
    ++index;
  }
  for (;;) {
    auto stepped = statement->Step();
    ASSERT_TRUE(stepped) << sql << ": " << stepped.error().context();
    if (!*stepped) break;
    if (row) row(*statement);
  }
}

// The team's chain as the relay stores it.
std::vector<wire::ChainStatement> RelayChain(storage::Database& db, const Bytes& team_id) {
  std::vector<wire::ChainStatement> statements;
  Sql(db, "SELECT statement FROM chain_statements WHERE team_id = ?1 ORDER BY sequence", {team_id},
      [&](const storage::Statement& row) {
        wire::ChainStatement statement;
        const Bytes bytes = row.ColumnBlob(0);
        EXPECT_TRUE(statement.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
        statements.push_back(std::move(statement));
      });
  return statements;
}

// The members a chain names, verified with the device keys the relay holds.
Members VerifiedMembers(storage::Database& db,
                        const std::vector<wire::ChainStatement>& statements) {
  const protocol::DeviceKeyLookup lookup =
      [&db](std::string_view user, std::uint32_t device) -> Result<crypto::VerifyKey> {
    std::optional<Bytes> key;
    Sql(db, "SELECT signing_key FROM devices WHERE user_id = ?1 AND device_id = ?2",
        {std::string(user), std::int64_t{device}},
        [&](const storage::Statement& row) { key = row.ColumnBlob(0); });
    if (!key) return Fail(ErrorCode::kNotFound, "unknown device");
    return crypto::VerifyKey::FromBytes(*key);
  };
  auto chain =
      protocol::TeamChain::Verify(std::span<const wire::ChainStatement>(statements), lookup);
  EXPECT_TRUE(chain) << chain.error().context();
  return chain ? chain->members() : Members();
}

// Makes `statements` the team's whole chain on the relay, with `members` as the list the
// relay authorises: what a relay that rewrites history serves from then on.
void ReplaceRelayChain(storage::Database& db, const Bytes& team_id,
                       const std::vector<wire::ChainStatement>& statements,
                       const Members& members) {
  ASSERT_FALSE(statements.empty());
  Sql(db, "DELETE FROM chain_statements WHERE team_id = ?1", {team_id});
  for (std::size_t sequence = 0; sequence < statements.size(); ++sequence) {
    Sql(db,
        "INSERT INTO chain_statements (team_id, sequence, hash, statement) VALUES (?1, ?2, ?3, ?4)",
        {team_id, static_cast<std::int64_t>(sequence),
         ToBytes(protocol::StatementHash(statements[sequence])),
         ToBytes(statements[sequence].SerializeAsString())});
  }
  Sql(db, "INSERT OR REPLACE INTO chain_heads (team_id, sequence, hash) VALUES (?1, ?2, ?3)",
      {team_id, static_cast<std::int64_t>(statements.size() - 1),
       ToBytes(protocol::StatementHash(statements.back()))});
  Sql(db, "DELETE FROM team_members WHERE team_id = ?1", {team_id});
  for (const auto& [user, role] : members) {
    Sql(db, "INSERT INTO team_members (team_id, user_id, role) VALUES (?1, ?2, ?3)",
        {team_id, user, static_cast<std::int64_t>(role)});
  }
}

// Envelopes ever queued to `user`'s device (the last sequence its mailbox handed out), or
// -1 when the relay has no active device by that id.
std::int64_t EnvelopesEverQueued(storage::Database& db, const std::string& user,
                                 std::uint32_t device) {
  std::int64_t last = -1;
  Sql(db, "SELECT last_sequence FROM mailbox_counters WHERE user_id = ?1 AND device_id = ?2",
      {user, std::int64_t{device}},
      [&](const storage::Statement& row) { last = row.ColumnInt64(0); });
  return last;
}

// A device the relay makes up under someone's login: keys the relay holds, a certificate
// signed by an identity key of its choosing, and published prekeys, so that a client that
// accepted it would really open a session with it and encrypt to it.
struct ForgedDevice {
  std::string user_id;
  std::uint32_t device_id = 0;
  crypto::SigningKey identity = crypto::SigningKey::Generate();
  crypto::SigningKey device_key = crypto::SigningKey::Generate();
  crypto::InMemorySignalStores stores;
  std::unique_ptr<crypto::SignalDevice> signal;
  crypto::SignalPublicKey signal_identity{};
  crypto::PublicSignedPreKey signed_pre_key;
  crypto::PublicPreKey one_time_pre_key;
  std::uint32_t registration_id = 0;
  wire::DeviceCertificate certificate;
};

std::unique_ptr<ForgedDevice> ForgeDevice(const std::string& user_id, std::uint32_t device_id) {
  auto forged = std::make_unique<ForgedDevice>();
  forged->user_id = user_id;
  forged->device_id = device_id;
  auto signal = crypto::SignalDevice::Create(
      crypto::SignalAddress{user_id, static_cast<std::int32_t>(device_id)},
      forged->stores.stores());
  EXPECT_TRUE(signal);
  if (!signal) return nullptr;
  forged->signal = std::move(*signal);
  EXPECT_TRUE(forged->signal->GenerateIdentity());
  auto identity = forged->signal->IdentityPublicKey();
  auto signed_pre_key = forged->signal->GenerateSignedPreKey(1, 1);
  auto one_time = forged->signal->GeneratePreKeys(1, 1);
  EXPECT_TRUE(identity && signed_pre_key && one_time);
  if (!identity || !signed_pre_key || !one_time) return nullptr;
  forged->signal_identity = *identity;
  forged->signed_pre_key = *signed_pre_key;
  forged->one_time_pre_key = one_time->front();
  auto bundle = forged->signal->CreatePreKeyBundle(std::nullopt, 1);
  EXPECT_TRUE(bundle);
  if (!bundle) return nullptr;
  forged->registration_id = bundle->registration_id;

  wire::DeviceCertificateBody body;
  body.set_user_id(user_id);
  body.set_device_id(device_id);
  const auto& signing = forged->device_key.verify_key().bytes();
  body.set_device_signing_key(signing.data(), signing.size());
  body.set_signal_identity_key(forged->signal_identity.data(), forged->signal_identity.size());
  body.set_created_ms(1);
  auto certificate = protocol::SignDeviceCertificate(body, forged->identity);
  EXPECT_TRUE(certificate);
  if (!certificate) return nullptr;
  forged->certificate = *certificate;
  return forged;
}

// Publishes `device`'s prekeys on the relay as those of (user, device_id), replacing any.
void PublishPreKeys(storage::Database& db, const std::string& user, std::uint32_t device_id,
                    const ForgedDevice& device) {
  const std::int64_t id = device_id;
  Sql(db,
      "INSERT OR REPLACE INTO registration_ids (user_id, device_id, registration_id) "
      "VALUES (?1, ?2, ?3)",
      {user, id, std::int64_t{device.registration_id}});
  Sql(db,
      "INSERT OR REPLACE INTO signed_pre_keys (user_id, device_id, key_id, public_key, signature, "
      "timestamp_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      {user, id, std::int64_t{device.signed_pre_key.id}, ToBytes(device.signed_pre_key.public_key),
       ToBytes(device.signed_pre_key.signature),
       static_cast<std::int64_t>(device.signed_pre_key.timestamp_ms)});
  Sql(db, "DELETE FROM one_time_pre_keys WHERE user_id = ?1 AND device_id = ?2", {user, id});
  Sql(db,
      "INSERT INTO one_time_pre_keys (user_id, device_id, key_id, public_key) "
      "VALUES (?1, ?2, ?3, ?4)",
      {user, id, std::int64_t{device.one_time_pre_key.id},
       ToBytes(device.one_time_pre_key.public_key)});
}

// Registers `device` on the relay as an active device of its user, ready to receive.
void InstallDevice(storage::Database& db, const ForgedDevice& device) {
  const std::int64_t id = device.device_id;
  Sql(db,
      "INSERT INTO devices (user_id, device_id, certificate, signing_key, signal_identity_key, "
      "revoked, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, 1)",
      {device.user_id, id, ToBytes(device.certificate.SerializeAsString()),
       ToBytes(device.device_key.verify_key().bytes()), ToBytes(device.signal_identity)});
  Sql(db, "INSERT INTO mailbox_counters (user_id, device_id, last_sequence) VALUES (?1, ?2, 0)",
      {device.user_id, id});
  PublishPreKeys(db, device.user_id, device.device_id, device);
}

std::vector<std::string> UserIds(const TeamView& view) {
  std::vector<std::string> users;
  for (const auto& member : view.members) users.push_back(member.user_id);
  return users;
}

// --- Fixture ------------------------------------------------------------------------------------

class AdversarialRelayTest : public testing::ClientTest {
 protected:
  // The operator at work: stops the relay, runs `edit` on its store in one transaction,
  // and starts it again on the same port. Clients' connections die with the relay; each
  // client opens a new one at its next call.
  void Tamper(const std::function<void(storage::Database&)>& edit) {
    relay_->Stop();
    ASSERT_TRUE(relay_->EditStore([&](storage::Database& db) {
      auto transaction = db.Begin();
      ASSERT_TRUE(transaction) << transaction.error().context();
      edit(db);
      if (::testing::Test::HasFatalFailure()) return;  // rolled back
      const Status committed = transaction->Commit();
      ASSERT_TRUE(committed) << committed.error().context();
    }));
    ASSERT_TRUE(relay_->Start());
  }

  // Reads the relay's tables (the relay stopped meanwhile, then started again).
  void Inspect(const std::function<void(storage::Database&)>& read) {
    relay_->Stop();
    ASSERT_TRUE(relay_->EditStore(read));
    ASSERT_TRUE(relay_->Start());
  }

  static Bytes TeamIdOf(Client& client) {
    auto view = client.ShowTeam(kTeam);
    EXPECT_TRUE(view) << view.error().context();
    return view ? FromHex(view->team_id) : Bytes();
  }

  // Syncs and returns the warnings, failing the test if the sync itself fails.
  static std::vector<std::string> SyncWarnings(Client& client) {
    auto report = client.Sync();
    EXPECT_TRUE(report) << client.user_id() << ": " << report.error().context();
    return report ? report->warnings : std::vector<std::string>();
  }

  // Alice (admin) with Bob in team kTeam and its channel "plans"; Eve, enrolled and ready
  // to receive, in no team. Bob has synced.
  void SetUpTeamAndEve() {
    alice_ = Enrol("alice", /*admin=*/true);
    bob_ = Enrol("bob");
    eve_ = Enrol("eve");
    ASSERT_TRUE(alice_ && bob_ && eve_);
    ASSERT_OK(alice_->CreateTeam(kTeam));
    ASSERT_OK(alice_->AddMember(kTeam, "bob", Role::kMember));
    ASSERT_OK(alice_->CreateChannel(kTeam, "plans"));
    ASSERT_OK(alice_->Post(kTeam, "plans", "Point de regroupement Nord", std::nullopt));
    Sync(*bob_);
  }

  // The relay appends "add eve" signed by (signer, device) with `key`; then every client
  // is asked to act on the chain. Shared by the two ghost-member tests.
  void GhostMemberIsRefused(const std::string& signer, std::uint32_t signer_device,
                            const crypto::SigningKey& key) {
    const Bytes team_id = TeamIdOf(*alice_);
    auto before = bob_->ShowTeam(kTeam);
    ASSERT_OK(before);
    const std::vector<std::string> members_before = UserIds(*before);
    std::int64_t eve_before = -1;
    Tamper([&](storage::Database& db) {
      auto statements = RelayChain(db, team_id);
      ASSERT_EQ(statements.size(), before->chain_sequence + 1);
      Members members = VerifiedMembers(db, statements);
      members.emplace("eve", wire::ROLE_MEMBER);
      const protocol::Hash head = protocol::StatementHash(statements.back());
      wire::ChainStatementBody body = server::testing::StatementBody(
          ToText(team_id), statements.size(), &head, signer, signer_device);
      body.mutable_add_member()->set_user_id("eve");
      body.mutable_add_member()->set_role(wire::ROLE_MEMBER);
      statements.push_back(server::testing::SignStatement(body, key));
      ReplaceRelayChain(db, team_id, statements, members);
      eve_before = EnvelopesEverQueued(db, "eve", eve_->device_id());
    });
    ASSERT_EQ(eve_before, 0);

    const std::string sentence = "the team chain holds a statement without a valid admin signature";
    // Bob's sync names the problem and the team.
    EXPECT_THAT(SyncWarnings(*bob_),
                ::testing::Contains(HasSubstr(std::string(kTeam) + ": " + sentence)));
    // Online, ShowTeam refuses; what the profile keeps is the membership it last verified.
    auto shown = bob_->ShowTeam(kTeam);
    ASSERT_FALSE(shown);
    EXPECT_EQ(shown.error().code(), ErrorCode::kAuthenticationFailed);
    EXPECT_THAT(std::string(shown.error().context()), HasSubstr(sentence));
    auto listed = bob_->ListTeams();
    ASSERT_OK(listed);
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ(UserIds(listed->front()), members_before);
    EXPECT_EQ(listed->front().chain_sequence, before->chain_sequence);

    // Alice writes nothing and hands out no key on such a chain.
    auto post = alice_->Post(kTeam, "plans", "Ne doit pas partir", std::nullopt);
    ASSERT_FALSE(post);
    EXPECT_EQ(post.error().code(), ErrorCode::kAuthenticationFailed);
    EXPECT_THAT(std::string(post.error().context()), HasSubstr(sentence));
    const Status added = alice_->AddMember(kTeam, "eve", Role::kMember);
    ASSERT_FALSE(added);
    EXPECT_EQ(added.error().code(), ErrorCode::kAuthenticationFailed);
    EXPECT_THAT(std::string(added.error().context()), HasSubstr(sentence));
    const Status rotated = alice_->RotateTeamKey(kTeam);
    ASSERT_FALSE(rotated);
    EXPECT_EQ(rotated.error().code(), ErrorCode::kAuthenticationFailed);

    // Eve learns of no team, and nothing was ever queued to her device.
    EXPECT_TRUE(SyncWarnings(*eve_).empty());
    auto eve_teams = eve_->ListTeams();
    ASSERT_OK(eve_teams);
    EXPECT_TRUE(eve_teams->empty());
    Inspect([&](storage::Database& db) {
      EXPECT_EQ(EnvelopesEverQueued(db, "eve", eve_->device_id()), 0);
    });
  }

  std::unique_ptr<Client> alice_;
  std::unique_ptr<Client> bob_;
  std::unique_ptr<Client> eve_;
};

// --- 1. A member added without an admin signature -------------------------------------------

TEST_F(AdversarialRelayTest, MemberAddedByANonAdminMemberIsRefusedAndGetsNothing) {
  SetUpTeamAndEve();
  // Mallory is a member whose device key the relay (or Mallory) holds: an auditor, since
  // auditors receive no team key and so need no libsignal device in this test.
  TestUser mallory("mallory");
  {
    auto raw = RelayClient::Connect(relay_->port());
    ASSERT_TRUE(raw);
    server::testing::Onboard(*relay_, *raw, mallory);
  }
  ASSERT_OK(alice_->AddMember(kTeam, "mallory", Role::kAuditor));
  Sync(*bob_);
  GhostMemberIsRefused("mallory", 1, mallory.device(1).key);
}

TEST_F(AdversarialRelayTest, MemberAddedUnderAForgedAdminSignatureIsRefusedAndGetsNothing) {
  SetUpTeamAndEve();
  // The statement names Alice's real device as its signer, but the relay signed it with a
  // key of its own.
  const crypto::SigningKey relay_key = crypto::SigningKey::Generate();
  GhostMemberIsRefused("alice", alice_->device_id(), relay_key);
}

// --- 2. A fork -------------------------------------------------------------------------------

TEST_F(AdversarialRelayTest, ForkIsRefusedByTheClientThatSawTheOtherBranchAndPostsRevealIt) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  auto dan = Enrol("dan");
  ASSERT_TRUE(alice_ && bob_ && dan);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  ASSERT_OK(alice_->AddMember(kTeam, "bob", Role::kMember));
  ASSERT_OK(alice_->AddMember(kTeam, "dan", Role::kAdmin));
  ASSERT_OK(alice_->CreateChannel(kTeam, "plans"));
  Sync(*bob_);
  Sync(*dan);
  const Bytes team_id = TeamIdOf(*alice_);

  // Alice's branch: statement A at the next sequence, and a post that carries it.
  ASSERT_OK(alice_->ChangeRole(kTeam, "bob", Role::kGuest));
  auto alice_view = alice_->ShowTeam(kTeam);
  ASSERT_OK(alice_view);
  ASSERT_OK(alice_->Post(kTeam, "plans", "Bob passe invité", std::nullopt));

  // The relay hides A from everyone else and lets Dan, the other admin, append statement
  // B at the same sequence: two branches, each validly signed.
  std::int64_t bob_before = -1;
  std::int64_t dan_before = -1;
  Tamper([&](storage::Database& db) {
    auto statements = RelayChain(db, team_id);
    ASSERT_EQ(statements.size(), alice_view->chain_sequence + 1);
    statements.pop_back();
    ReplaceRelayChain(db, team_id, statements, VerifiedMembers(db, statements));
    bob_before = EnvelopesEverQueued(db, "bob", bob_->device_id());
    dan_before = EnvelopesEverQueued(db, "dan", dan->device_id());
  });
  ASSERT_OK(dan->ChangeRole(kTeam, "bob", Role::kAdmin));
  auto dan_view = dan->ShowTeam(kTeam);
  ASSERT_OK(dan_view);
  ASSERT_EQ(dan_view->chain_sequence, alice_view->chain_sequence);
  ASSERT_NE(dan_view->chain_head, alice_view->chain_head);

  // Alice remembered A: the relay's chain forks from it, and she says so and stops.
  const std::string fork =
      "the relay shows a team chain that forks from the one this profile verified";
  EXPECT_THAT(SyncWarnings(*alice_),
              ::testing::Contains(HasSubstr(std::string(kTeam) + ": " + fork)));
  auto shown = alice_->ShowTeam(kTeam);
  ASSERT_FALSE(shown);
  EXPECT_EQ(shown.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_THAT(std::string(shown.error().context()), HasSubstr(fork));
  auto post = alice_->Post(kTeam, "plans", "Ne doit pas partir", std::nullopt);
  ASSERT_FALSE(post);
  EXPECT_EQ(post.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_THAT(std::string(post.error().context()), HasSubstr(fork));
  const Status rotated = alice_->RotateTeamKey(kTeam);
  ASSERT_FALSE(rotated);
  EXPECT_EQ(rotated.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_THAT(std::string(rotated.error().context()), HasSubstr(fork));

  // Bob and Dan follow B, but Alice's post carries A's head at the same sequence: the
  // split shows as soon as they read her.
  const std::string revealed =
      std::string(kTeam) + ": alice sees another team chain than this profile (fork)";
  EXPECT_THAT(SyncWarnings(*bob_), ::testing::Contains(HasSubstr(revealed)));
  EXPECT_THAT(SyncWarnings(*dan), ::testing::Contains(HasSubstr(revealed)));
  auto bob_view = bob_->ShowTeam(kTeam);
  ASSERT_OK(bob_view);
  EXPECT_EQ(bob_view->chain_head, dan_view->chain_head);

  // Alice sent nothing to anyone on either branch once the relay split them.
  Inspect([&](storage::Database& db) {
    EXPECT_EQ(EnvelopesEverQueued(db, "bob", bob_->device_id()), bob_before);
    EXPECT_EQ(EnvelopesEverQueued(db, "dan", dan->device_id()), dan_before);
  });
}

// --- 3. A rollback ---------------------------------------------------------------------------

TEST_F(AdversarialRelayTest, RollbackOfARemovalIsRefusedAndTheRemovedMemberGetsNoNewKey) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  auto carla = Enrol("carla");
  ASSERT_TRUE(alice_ && bob_ && carla);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  ASSERT_OK(alice_->AddMember(kTeam, "bob", Role::kMember));
  ASSERT_OK(alice_->AddMember(kTeam, "carla", Role::kMember));
  ASSERT_OK(alice_->CreateChannel(kTeam, "plans"));
  ASSERT_OK(alice_->Post(kTeam, "plans", "Avant le retrait", std::nullopt));
  Sync(*bob_);
  Sync(*carla);
  auto carla_view = carla->ShowTeam(kTeam);
  ASSERT_OK(carla_view);
  const Bytes team_id = TeamIdOf(*alice_);

  // Carla is removed (a removal and a rotation to generation 2); Bob sees it all.
  ASSERT_OK(alice_->RemoveMember(kTeam, "carla"));
  ASSERT_OK(alice_->Post(kTeam, "plans", "Après le retrait", std::nullopt));
  Sync(*bob_);
  auto bob_view = bob_->ShowTeam(kTeam);
  ASSERT_OK(bob_view);
  ASSERT_EQ(bob_view->key_generation, 2u);
  ASSERT_EQ(bob_view->chain_sequence, carla_view->chain_sequence + 2);

  // The relay drops the removal and the rotation: Carla is a member again in its eyes.
  std::int64_t carla_before = -1;
  Tamper([&](storage::Database& db) {
    auto statements = RelayChain(db, team_id);
    ASSERT_EQ(statements.size(), bob_view->chain_sequence + 1);
    statements.resize(carla_view->chain_sequence + 1);
    const Members members = VerifiedMembers(db, statements);
    EXPECT_TRUE(members.contains("carla"));
    ReplaceRelayChain(db, team_id, statements, members);
    carla_before = EnvelopesEverQueued(db, "carla", carla->device_id());
  });
  ASSERT_GE(carla_before, 0);

  const std::string rollback =
      "the relay shows an older team chain than the one this profile verified (rollback)";
  // Alice and Bob saw the removal: both refuse the older chain, and Alice neither writes,
  // nor rotates, nor (re-)adds Carla on top of it.
  EXPECT_THAT(SyncWarnings(*bob_),
              ::testing::Contains(HasSubstr(std::string(kTeam) + ": " + rollback)));
  EXPECT_THAT(SyncWarnings(*alice_),
              ::testing::Contains(HasSubstr(std::string(kTeam) + ": " + rollback)));
  for (Client* client : {alice_.get(), bob_.get()}) {
    auto post = client->Post(kTeam, "plans", "Ne doit pas partir", std::nullopt);
    ASSERT_FALSE(post) << client->user_id();
    EXPECT_EQ(post.error().code(), ErrorCode::kAuthenticationFailed);
    EXPECT_THAT(std::string(post.error().context()), HasSubstr(rollback));
    auto shown = client->ShowTeam(kTeam);
    ASSERT_FALSE(shown) << client->user_id();
    EXPECT_EQ(shown.error().code(), ErrorCode::kAuthenticationFailed);
  }
  const Status rotated = alice_->RotateTeamKey(kTeam);
  ASSERT_FALSE(rotated);
  EXPECT_EQ(rotated.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_THAT(std::string(rotated.error().context()), HasSubstr(rollback));
  const Status readded = alice_->AddMember(kTeam, "carla", Role::kMember);
  ASSERT_FALSE(readded);
  EXPECT_EQ(readded.error().code(), ErrorCode::kAuthenticationFailed);

  // Carla never saw the removal, so the old chain looks fine to her; but she holds
  // generation 1 only and reads nothing written after her removal.
  auto carla_sync = carla->Sync();
  ASSERT_OK(carla_sync);
  auto carla_after = carla->ShowTeam(kTeam);
  ASSERT_OK(carla_after);
  EXPECT_EQ(carla_after->key_generation, 1u);
  EXPECT_EQ(Texts(carla->ReadChannel(kTeam, "plans", std::nullopt, std::nullopt)),
            (std::vector<std::string>{"Avant le retrait"}));
  Inspect([&](storage::Database& db) {
    EXPECT_EQ(EnvelopesEverQueued(db, "carla", carla->device_id()), carla_before);
  });
}

// --- 4. A device key swap --------------------------------------------------------------------

TEST_F(AdversarialRelayTest, SwappedIdentityKeyBlocksSendingAndAddingUntilConfirmed) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  ASSERT_TRUE(alice_ && bob_);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  // Alice meets Bob: his identity key is pinned.
  ASSERT_OK(alice_->SendDirect("bob", "Premier contact"));
  Sync(*bob_);
  auto pinned = alice_->SafetyNumber("bob");
  ASSERT_OK(pinned);
  EXPECT_FALSE(pinned->key_changed);

  // The relay puts an identity key of its own under Bob's login, with a device it
  // certified and whose prekeys it published; Bob's real device disappears.
  auto forged = ForgeDevice("bob", 777);
  ASSERT_TRUE(forged);
  Tamper([&](storage::Database& db) {
    const std::string bob = "bob";
    Sql(db, "UPDATE users SET identity_key = ?2 WHERE user_id = ?1",
        {bob, ToBytes(forged->identity.verify_key().bytes())});
    for (const char* sql : {"DELETE FROM devices WHERE user_id = ?1",
                            "DELETE FROM mailbox_counters WHERE user_id = ?1",
                            "DELETE FROM signed_pre_keys WHERE user_id = ?1",
                            "DELETE FROM one_time_pre_keys WHERE user_id = ?1",
                            "DELETE FROM registration_ids WHERE user_id = ?1"}) {
      Sql(db, sql, {bob});
    }
    InstallDevice(db, *forged);
  });

  const std::string changed = "this person's identity key changed";
  const Status sent = alice_->SendDirect("bob", "Code d'accès du local");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_THAT(std::string(sent.error().context()), HasSubstr(changed));
  const Status added = alice_->AddMember(kTeam, "bob", Role::kMember);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_THAT(std::string(added.error().context()), HasSubstr(changed));
  auto team = alice_->ShowTeam(kTeam);
  ASSERT_OK(team);
  EXPECT_EQ(UserIds(*team), (std::vector<std::string>{"alice"}));
  auto direct = alice_->ReadDirect("bob");
  ASSERT_OK(direct);
  EXPECT_EQ(direct->size(), 1u);  // the refused message is not kept as sent

  // The safety number is the new key's, flagged as changed, so the people can compare.
  auto offered = alice_->SafetyNumber("bob");
  ASSERT_OK(offered);
  EXPECT_TRUE(offered->key_changed);
  EXPECT_FALSE(offered->confirmed);
  EXPECT_NE(offered->safety_number, pinned->safety_number);
  Inspect([&](storage::Database& db) { EXPECT_EQ(EnvelopesEverQueued(db, "bob", 777), 0); });

  // The documented way out: once the person confirms the new number, sending proceeds,
  // to the devices of the confirmed key (here the relay's: hence the comparison).
  ASSERT_OK(alice_->ConfirmIdentity("bob"));
  auto confirmed = alice_->SafetyNumber("bob");
  ASSERT_OK(confirmed);
  EXPECT_FALSE(confirmed->key_changed);
  EXPECT_TRUE(confirmed->confirmed);
  EXPECT_EQ(confirmed->safety_number, offered->safety_number);
  ASSERT_OK(alice_->SendDirect("bob", "Après confirmation"));
  Inspect([&](storage::Database& db) { EXPECT_EQ(EnvelopesEverQueued(db, "bob", 777), 1); });
}

TEST_F(AdversarialRelayTest, DeviceCertificateNotSignedByThePinnedIdentityIsRefused) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  ASSERT_TRUE(alice_ && bob_);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  ASSERT_OK(alice_->SendDirect("bob", "Premier contact"));
  Sync(*bob_);
  auto pinned = alice_->SafetyNumber("bob");
  ASSERT_OK(pinned);

  // Bob's identity key stays; the relay adds a device of its own beside his, under a
  // certificate signed by another key.
  auto forged = ForgeDevice("bob", 666);
  ASSERT_TRUE(forged);
  std::int64_t bob_before = -1;
  Tamper([&](storage::Database& db) {
    InstallDevice(db, *forged);
    bob_before = EnvelopesEverQueued(db, "bob", bob_->device_id());
  });

  const Status sent = alice_->SendDirect("bob", "Code d'accès du local");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_THAT(std::string(sent.error().context()), HasSubstr("signature does not verify"));
  const Status added = alice_->AddMember(kTeam, "bob", Role::kMember);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), ErrorCode::kAuthenticationFailed);
  auto team = alice_->ShowTeam(kTeam);
  ASSERT_OK(team);
  EXPECT_EQ(UserIds(*team), (std::vector<std::string>{"alice"}));
  // Bob's identity key did not change: nothing to confirm, and confirming changes nothing.
  auto number = alice_->SafetyNumber("bob");
  ASSERT_OK(number);
  EXPECT_FALSE(number->key_changed);
  EXPECT_EQ(number->safety_number, pinned->safety_number);
  ASSERT_OK(alice_->ConfirmIdentity("bob"));
  EXPECT_FALSE(alice_->SendDirect("bob", "Toujours pas"));
  Inspect([&](storage::Database& db) {
    EXPECT_EQ(EnvelopesEverQueued(db, "bob", 666), 0);
    EXPECT_EQ(EnvelopesEverQueued(db, "bob", bob_->device_id()), bob_before);
  });
}

TEST_F(AdversarialRelayTest, PreKeyBundleUnderAnotherIdentityThanTheCertifiedOneIsRefused) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  ASSERT_TRUE(alice_ && bob_);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  // Alice has no session with Bob yet. The relay answers for Bob's real device with a
  // bundle under a libsignal identity of its own (prekeys validly signed by it), as a
  // man in the middle of the session set-up would.
  auto forged = ForgeDevice("bob", bob_->device_id());
  ASSERT_TRUE(forged);
  std::int64_t bob_before = -1;
  Tamper([&](storage::Database& db) {
    Sql(db, "UPDATE devices SET signal_identity_key = ?3 WHERE user_id = ?1 AND device_id = ?2",
        {std::string("bob"), std::int64_t{bob_->device_id()}, ToBytes(forged->signal_identity)});
    PublishPreKeys(db, "bob", bob_->device_id(), *forged);
    bob_before = EnvelopesEverQueued(db, "bob", bob_->device_id());
  });

  const Status sent = alice_->SendDirect("bob", "Code d'accès du local");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_THAT(std::string(sent.error().context()),
              HasSubstr("the relay sent a prekey bundle under another identity key"));
  auto direct = alice_->ReadDirect("bob");
  ASSERT_OK(direct);
  EXPECT_TRUE(direct->empty());
  // Adding Bob would deliver the team key through that session: refused the same way.
  const Status added = alice_->AddMember(kTeam, "bob", Role::kMember);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_THAT(std::string(added.error().context()),
              HasSubstr("the relay sent a prekey bundle under another identity key"));
  Inspect([&](storage::Database& db) {
    EXPECT_EQ(EnvelopesEverQueued(db, "bob", bob_->device_id()), bob_before);
  });
}

TEST_F(AdversarialRelayTest, RotationWhoseKeyCannotReachAMemberLeavesTheChainUnchanged) {
  alice_ = Enrol("alice", /*admin=*/true);
  bob_ = Enrol("bob");
  auto dave = Enrol("dave");
  ASSERT_TRUE(alice_ && bob_ && dave);
  ASSERT_OK(alice_->CreateTeam(kTeam));
  ASSERT_OK(alice_->AddMember(kTeam, "dave", Role::kAdmin));
  Sync(*dave);
  // Dave adds Bob: Alice has no session with Bob's device, so a rotation by her sets one up.
  ASSERT_OK(dave->AddMember(kTeam, "bob", Role::kMember));
  Sync(*bob_);
  auto before = alice_->ShowTeam(kTeam);
  ASSERT_OK(before);
  ASSERT_EQ(before->key_generation, 1u);

  // The relay answers for Bob's device with a bundle under a libsignal identity of its own.
  auto forged = ForgeDevice("bob", bob_->device_id());
  ASSERT_TRUE(forged);
  std::int64_t bob_before = -1;
  std::int64_t dave_before = -1;
  Tamper([&](storage::Database& db) {
    Sql(db, "UPDATE devices SET signal_identity_key = ?3 WHERE user_id = ?1 AND device_id = ?2",
        {std::string("bob"), std::int64_t{bob_->device_id()}, ToBytes(forged->signal_identity)});
    PublishPreKeys(db, "bob", bob_->device_id(), *forged);
    bob_before = EnvelopesEverQueued(db, "bob", bob_->device_id());
    dave_before = EnvelopesEverQueued(db, "dave", dave->device_id());
  });

  const Status rotated = alice_->RotateTeamKey(kTeam);
  ASSERT_FALSE(rotated);
  EXPECT_EQ(rotated.error().code(), ErrorCode::kUntrustedIdentity);
  EXPECT_THAT(std::string(rotated.error().context()),
              HasSubstr("the relay sent a prekey bundle under another identity key"));
  // The chain names no generation that Bob could never receive, and nothing of the
  // rotation waits in Alice's outbox or reached anyone.
  auto after = alice_->ShowTeam(kTeam);
  ASSERT_OK(after);
  EXPECT_EQ(after->chain_sequence, before->chain_sequence);
  EXPECT_EQ(after->chain_head, before->chain_head);
  EXPECT_EQ(after->key_generation, 1u);
  auto report = alice_->Sync();
  ASSERT_OK(report);
  EXPECT_EQ(report->outbox_sent, 0u);
  Inspect([&](storage::Database& db) {
    EXPECT_EQ(EnvelopesEverQueued(db, "bob", bob_->device_id()), bob_before);
    EXPECT_EQ(EnvelopesEverQueued(db, "dave", dave->device_id()), dave_before);
  });
  // Dave, who holds a good session with Bob, rotates: everyone gets the new generation.
  ASSERT_OK(dave->RotateTeamKey(kTeam));
  Sync(*bob_);
  Sync(*alice_);
  auto bob_view = bob_->ShowTeam(kTeam);
  ASSERT_OK(bob_view);
  EXPECT_EQ(bob_view->key_generation, 2u);
  ASSERT_OK(alice_->CreateChannel(kTeam, "plans"));
  ASSERT_OK(alice_->Post(kTeam, "plans", "Nouvelle clé", std::nullopt));
  Sync(*bob_);
  EXPECT_EQ(Texts(bob_->ReadChannel(kTeam, "plans", std::nullopt, std::nullopt)),
            std::vector<std::string>{"Nouvelle clé"});
}

}  // namespace
}  // namespace coffre::client
