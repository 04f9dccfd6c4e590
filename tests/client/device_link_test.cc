// Device linking: the pure link functions (code, keys, sealing) and the whole flow between
// an existing device and a new one through the in-process relay, including a relay that
// forges the new device's request.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "client_fixture.h"
#include "coffre/client/device_link.h"
#include "coffre/client/relay_connection.h"
#include "coffre/crypto/random.h"
#include "coffre/wire/v1/wire.pb.h"

namespace coffre::client {
namespace {

using testing::Secret;
namespace wire = coffre::wire::v1;

// The cheapest Argon2id accepted: the unit tests exercise the format, not the cost.
constexpr crypto::Argon2Params kFastParams = crypto::kMinimumArgon2Params;

std::string Text(const crypto::SecretBytes& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

LinkKeys Keys(std::string_view code, std::string_view user) {
  auto normalized = NormalizeLinkCode(Secret(code).span());
  EXPECT_TRUE(normalized);
  auto keys = DeriveLinkKeys(*normalized, user, kFastParams);
  EXPECT_TRUE(keys);
  return std::move(*keys);
}

TEST(DeviceLinkCodeTest, GeneratedCodesAreGroupedCrockfordSymbols) {
  for (int i = 0; i < 50; ++i) {
    const std::string code = Text(GenerateLinkCode());
    ASSERT_EQ(code.size(), 14u) << code;
    EXPECT_EQ(code[4], '-');
    EXPECT_EQ(code[9], '-');
    auto normalized = NormalizeLinkCode(Secret(code).span());
    ASSERT_TRUE(normalized) << code;
    EXPECT_EQ(Text(*normalized), code.substr(0, 4) + code.substr(5, 4) + code.substr(10, 4));
  }
  EXPECT_NE(Text(GenerateLinkCode()), Text(GenerateLinkCode()));
}

TEST(DeviceLinkCodeTest, TypedCodesAreForgivingButStrict) {
  auto relaxed = NormalizeLinkCode(Secret(" abcd efgh-jkmn ").span());
  ASSERT_TRUE(relaxed);
  EXPECT_EQ(Text(*relaxed), "ABCDEFGHJKMN");
  auto confusable = NormalizeLinkCode(Secret("OIL0-1111-2222").span());
  ASSERT_TRUE(confusable);
  EXPECT_EQ(Text(*confusable), "011011112222");
  for (const char* bad : {"", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "ABCD-EFGH-JKMU", "ABCD_EFGH_JKMN",
                          "ABCD-EFGH-JKM\xC3\xA9"}) {
    auto refused = NormalizeLinkCode(Secret(bad).span());
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(DeviceLinkKeysTest, DependOnCodeAndUser) {
  const LinkKeys a = Keys("ABCD-EFGH-JKMN", "alice");
  const LinkKeys again = Keys("abcd efgh jkmn", "alice");
  const LinkKeys other_code = Keys("ABCD-EFGH-JKMP", "alice");
  const LinkKeys other_user = Keys("ABCD-EFGH-JKMN", "bob");
  EXPECT_EQ(a.link_id, again.link_id);
  EXPECT_TRUE(crypto::ConstantTimeEquals(a.request_key.span(), again.request_key.span()));
  EXPECT_NE(a.link_id, other_code.link_id);
  EXPECT_NE(a.link_id, other_user.link_id);
  EXPECT_FALSE(crypto::ConstantTimeEquals(a.request_key.span(), a.reply_key.span()));
  EXPECT_FALSE(crypto::ConstantTimeEquals(a.reply_key.span(), other_user.reply_key.span()));
}

TEST(DeviceLinkSealTest, RequestOpensOnlyUnderTheSameCode) {
  const LinkKeys keys = Keys("ABCD-EFGH-JKMN", "alice");
  LinkRequestContent request;
  request.certificate_body = "certificate body bytes";
  crypto::RandomFill(request.ephemeral_key);
  const auto sealed = SealLinkRequest(keys, request);
  auto opened = OpenLinkRequest(keys, sealed);
  ASSERT_TRUE(opened) << opened.error().context();
  EXPECT_EQ(opened->certificate_body, request.certificate_body);
  EXPECT_EQ(opened->ephemeral_key, request.ephemeral_key);

  auto wrong_code = OpenLinkRequest(Keys("ABCD-EFGH-JKMP", "alice"), sealed);
  ASSERT_FALSE(wrong_code);
  EXPECT_EQ(wrong_code.error().code(), ErrorCode::kAuthenticationFailed);
  for (std::size_t i = 0; i < sealed.size(); i += 7) {
    auto tampered = sealed;
    tampered[i] ^= 0x01;
    auto refused = OpenLinkRequest(keys, tampered);
    ASSERT_FALSE(refused) << "byte " << i;
    EXPECT_EQ(refused.error().code(), ErrorCode::kAuthenticationFailed);
  }
}

LinkHandover SampleHandover() {
  LinkHandover handover;
  handover.certificate = "signed certificate bytes";
  handover.user_key_seed = crypto::RandomSecret(32);
  handover.display_name = "Alice Martin";
  LinkedTeam team;
  team.team_id.fill(0x11);
  team.name = "sdis-operations";
  team.head_sequence = 4;
  team.head_hash.fill(0x22);
  team.keys.push_back(LinkedTeamKey{1, crypto::RandomSecret(32)});
  team.keys.push_back(LinkedTeamKey{2, crypto::RandomSecret(32)});
  handover.teams.push_back(std::move(team));
  LinkedPeer peer;
  peer.user_id = "bob";
  peer.identity_key.fill(0x33);
  peer.confirmed = true;
  handover.peers.push_back(peer);
  return handover;
}

TEST(DeviceLinkSealTest, HandoverOpensOnlyForTheEphemeralKeyAndTheCode) {
  const LinkKeys keys = Keys("ABCD-EFGH-JKMN", "alice");
  const auto ephemeral = crypto::X25519KeyPair::Generate();
  const LinkHandover handover = SampleHandover();
  auto sealed = SealLinkHandover(keys, ephemeral.public_key(), handover);
  ASSERT_TRUE(sealed) << sealed.error().context();

  auto opened = OpenLinkHandover(keys, ephemeral, *sealed);
  ASSERT_TRUE(opened) << opened.error().context();
  EXPECT_EQ(opened->certificate, handover.certificate);
  EXPECT_TRUE(crypto::ConstantTimeEquals(opened->user_key_seed.span(), handover.user_key_seed.span()));
  EXPECT_EQ(opened->display_name, "Alice Martin");
  ASSERT_EQ(opened->teams.size(), 1u);
  EXPECT_EQ(opened->teams[0].name, "sdis-operations");
  EXPECT_EQ(opened->teams[0].head_sequence, 4u);
  EXPECT_EQ(opened->teams[0].head_hash, handover.teams[0].head_hash);
  ASSERT_EQ(opened->teams[0].keys.size(), 2u);
  EXPECT_EQ(opened->teams[0].keys[1].generation, 2u);
  EXPECT_TRUE(crypto::ConstantTimeEquals(opened->teams[0].keys[1].key.span(),
                                         handover.teams[0].keys[1].key.span()));
  ASSERT_EQ(opened->peers.size(), 1u);
  EXPECT_EQ(opened->peers[0].user_id, "bob");
  EXPECT_TRUE(opened->peers[0].confirmed);

  // Someone who knows the code but not the ephemeral key (a relay that learnt the code
  // afterwards), someone with the ephemeral key but not the code, and a changed byte.
  auto other_ephemeral = OpenLinkHandover(keys, crypto::X25519KeyPair::Generate(), *sealed);
  ASSERT_FALSE(other_ephemeral);
  EXPECT_EQ(other_ephemeral.error().code(), ErrorCode::kAuthenticationFailed);
  auto other_code = OpenLinkHandover(Keys("ABCD-EFGH-JKMP", "alice"), ephemeral, *sealed);
  ASSERT_FALSE(other_code);
  EXPECT_EQ(other_code.error().code(), ErrorCode::kAuthenticationFailed);
  for (std::size_t i = 0; i < sealed->size(); i += 11) {
    auto tampered = *sealed;
    tampered[i] ^= 0x80;
    EXPECT_FALSE(OpenLinkHandover(keys, ephemeral, tampered)) << "byte " << i;
  }
}

TEST(DeviceLinkSealTest, MalformedHandoverFieldsAreRefused) {
  const LinkKeys keys = Keys("ABCD-EFGH-JKMN", "alice");
  const auto ephemeral = crypto::X25519KeyPair::Generate();
  auto expect_corrupt = [&](LinkHandover handover, const char* what) {
    auto sealed = SealLinkHandover(keys, ephemeral.public_key(), handover);
    ASSERT_TRUE(sealed) << what;
    auto opened = OpenLinkHandover(keys, ephemeral, *sealed);
    ASSERT_FALSE(opened) << what;
    EXPECT_EQ(opened.error().code(), ErrorCode::kCorrupt) << what;
  };
  {
    LinkHandover h = SampleHandover();
    h.user_key_seed = crypto::RandomSecret(31);
    expect_corrupt(std::move(h), "short seed");
  }
  {
    LinkHandover h = SampleHandover();
    h.display_name = "";
    expect_corrupt(std::move(h), "empty name");
  }
  {
    LinkHandover h = SampleHandover();
    h.teams[0].name = "bad\nname";
    expect_corrupt(std::move(h), "control byte in a team name");
  }
  {
    LinkHandover h = SampleHandover();
    h.teams[0].keys[0].generation = 0;
    expect_corrupt(std::move(h), "generation 0");
  }
  {
    LinkHandover h = SampleHandover();
    h.teams[0].keys[0].key = crypto::RandomSecret(16);
    expect_corrupt(std::move(h), "short team key");
  }
  {
    LinkHandover h = SampleHandover();
    h.peers[0].user_id = "Not A Login";
    expect_corrupt(std::move(h), "bad peer login");
  }
}

// --- The flow, end to end --------------------------------------------------------------

class DeviceLinkTest : public testing::ClientTest {
 protected:
  LinkInitOptions LinkOptions(const std::string& login, const std::string& code) {
    LinkInitOptions options;
    options.relay_url = "https://127.0.0.1:" + std::to_string(relay_->port());
    CertificateFingerprint fingerprint{};
    std::copy(relay_->relay_identity().begin(), relay_->relay_identity().end(), fingerprint.begin());
    options.relay_fingerprint = FormatFingerprint(fingerprint);
    options.link_code = Secret(code);
    options.user_id = login;
    return options;
  }

  void TearDown() override {
    keep_going_ = false;
    if (linking_.valid()) linking_.wait();
  }

  // Runs `device link` on `existing` in the background; returns the code it shows (or ""
  // after 60 s). Its result is in linking_; keep_going_ = false cancels it.
  std::string StartLink(Client& existing) {
    auto shown = std::make_shared<std::promise<std::string>>();
    auto code = shown->get_future();
    linking_ = std::async(std::launch::async, [this, &existing, shown] {
      return existing.LinkDevice(
          [shown](std::string_view text, std::uint64_t) { shown->set_value(std::string(text)); },
          [this] { return keep_going_.load(); });
    });
    if (code.wait_for(std::chrono::seconds(60)) != std::future_status::ready) return "";
    return code.get();
  }

  static void ExpectDeviceCount(Client& client, std::size_t count) {
    auto devices = client.ListDevices();
    ASSERT_OK(devices);
    EXPECT_EQ(devices->size(), count);
  }

  std::atomic<bool> keep_going_{true};
  std::future<Result<LinkedDeviceView>> linking_;
};

TEST_F(DeviceLinkTest, NewDeviceGetsTheAccountTeamsAndHistory) {
  auto alice = Enrol("alice", /*admin=*/true);
  auto bob = Enrol("bob");
  ASSERT_TRUE(alice && bob);
  ASSERT_OK(alice->CreateTeam("sdis-operations"));
  ASSERT_OK(alice->AddMember("sdis-operations", "bob", Role::kMember));
  ASSERT_OK(alice->CreateChannel("sdis-operations", "plans"));
  ASSERT_OK(alice->Post("sdis-operations", "plans", "Avant le nouvel appareil", std::nullopt));
  ASSERT_OK(alice->RotateTeamKey("sdis-operations"));  // two generations to hand over

  const std::string code = StartLink(*alice);
  ASSERT_FALSE(code.empty());

  InitReport report;
  auto laptop = Client::InitLinked(dir_.path() / "alice-laptop", Passphrase("alice-laptop"),
                                   LinkOptions("alice", code), &report, [] { return true; });
  ASSERT_TRUE(laptop) << laptop.error().context();
  auto linked = linking_.get();
  ASSERT_TRUE(linked) << linked.error().context();
  EXPECT_EQ(linked->device_id, report.device_id);
  EXPECT_EQ(linked->teams, 1u);
  EXPECT_EQ(report.user_id, "alice");
  EXPECT_NE(report.device_id, alice->device_id());
  EXPECT_EQ((*laptop)->display_name(), "alice Martin");

  // The new device reads history, posts, and both devices appear on the account.
  Sync(**laptop);
  EXPECT_EQ(Texts((*laptop)->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)),
            std::vector<std::string>{"Avant le nouvel appareil"});
  ASSERT_OK((*laptop)->Post("sdis-operations", "plans", "Depuis le portable", std::nullopt));
  Sync(*bob);
  EXPECT_EQ(Texts(bob->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)),
            (std::vector<std::string>{"Avant le nouvel appareil", "Depuis le portable"}));
  ExpectDeviceCount(*alice, 2);

  // A direct message to Alice reaches both of her devices; a later rotation too.
  ASSERT_OK(bob->SendDirect("alice", "Reçu sur les deux ?"));
  Sync(*alice);
  Sync(**laptop);
  ASSERT_OK(alice->ReadDirect("bob"));
  EXPECT_EQ(alice->ReadDirect("bob")->size(), 1u);
  auto on_laptop = (*laptop)->ReadDirect("bob");
  ASSERT_OK(on_laptop);
  ASSERT_EQ(on_laptop->size(), 1u);
  EXPECT_EQ((*on_laptop)[0].text, "Reçu sur les deux ?");
  ASSERT_OK(alice->RotateTeamKey("sdis-operations"));
  ASSERT_OK(alice->Post("sdis-operations", "plans", "Après rotation", std::nullopt));
  Sync(**laptop);
  EXPECT_EQ(Texts((*laptop)->ReadChannel("sdis-operations", "plans", std::nullopt, std::nullopt)).back(),
            "Après rotation");

  // The profile opens again with the identity it received.
  laptop->reset();
  auto reopened = Client::Open(dir_.path() / "alice-laptop", Passphrase("alice-laptop"));
  ASSERT_OK(reopened);
  EXPECT_EQ((*reopened)->user_id(), "alice");
  EXPECT_EQ((*reopened)->device_id(), report.device_id);
}

TEST_F(DeviceLinkTest, MistypedCodeFindsNoLinkAndLeavesNothingBehind) {
  auto alice = Enrol("alice", /*admin=*/true);
  ASSERT_TRUE(alice);
  const std::string code = StartLink(*alice);
  ASSERT_FALSE(code.empty());
  std::string wrong = code;
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';

  const auto dir = dir_.path() / "alice-laptop";
  auto refused = Client::InitLinked(dir, Passphrase("alice-laptop"), LinkOptions("alice", wrong),
                                    nullptr, [] { return true; });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir));
  // The right code for another login finds nothing either.
  auto other_user = Client::InitLinked(dir, Passphrase("alice-laptop"), LinkOptions("bob", code),
                                       nullptr, [] { return true; });
  ASSERT_FALSE(other_user);
  EXPECT_EQ(other_user.error().code(), ErrorCode::kNotFound);

  keep_going_ = false;
  auto cancelled = linking_.get();
  ASSERT_FALSE(cancelled);
  EXPECT_EQ(cancelled.error().code(), ErrorCode::kNotFound);
  ExpectDeviceCount(*alice, 1);
}

// The relay knows the link id (it stores the slot) but not the code: a request it writes
// itself does not open, the existing device signs nothing, and the link is spent.
TEST_F(DeviceLinkTest, RequestForgedByTheRelayIsRefusedAndNothingIsSigned) {
  auto alice = Enrol("alice", /*admin=*/true);
  ASSERT_TRUE(alice);
  const std::string code = StartLink(*alice);
  ASSERT_FALSE(code.empty());
  auto normalized = NormalizeLinkCode(Secret(code).span());
  ASSERT_OK(normalized);
  auto real = DeriveLinkKeys(*normalized, "alice");
  ASSERT_OK(real);

  // A request sealed under another key, posted to the real slot.
  LinkKeys forged = Keys("ZZZZ-ZZZZ-ZZZZ", "alice");
  forged.link_id = real->link_id;
  LinkRequestContent content;
  content.certificate_body = "a device of the relay's choosing";
  crypto::RandomFill(content.ephemeral_key);
  const auto sealed = SealLinkRequest(forged, content);
  ConnectOptions connect;
  connect.address = RelayAddress{"127.0.0.1", relay_->port()};
  auto connection = RelayConnection::Connect(connect);
  ASSERT_OK(connection);
  wire::Request post;
  post.mutable_post_link_message()->set_link_id(real->link_id.data(), real->link_id.size());
  post.mutable_post_link_message()->set_side(wire::LINK_SIDE_REQUEST);
  post.mutable_post_link_message()->set_sealed(sealed.data(), sealed.size());
  auto posted = (*connection)->Call(post);
  ASSERT_OK(posted);
  ASSERT_FALSE(posted->has_error());

  auto refused = linking_.get();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kAuthenticationFailed);
  ExpectDeviceCount(*alice, 1);

  // The genuine new device, arriving second, is told the link was used.
  auto late = Client::InitLinked(dir_.path() / "alice-laptop", Passphrase("alice-laptop"),
                                 LinkOptions("alice", code), nullptr, [] { return true; });
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
}

}  // namespace
}  // namespace coffre::client
