// Group sender keys among three members, distributed only through pairwise sessions, and
// the guards we add on top of the library: distribution replays, distributions claiming
// to be ours, and group / sender binding.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

constexpr std::string_view kGroup = "sdis-nord/colonne-feux-de-foret";
constexpr std::string_view kOtherGroup = "sdis-nord/etat-major";

std::vector<std::uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }
std::string Text(const SecretBytes& bytes) { return {bytes.span().begin(), bytes.span().end()}; }

struct Member {
  explicit Member(SignalAddress addr) : address(std::move(addr)) {
    auto created = SignalDevice::Create(address, stores.stores());
    EXPECT_TRUE(created);
    device = std::move(*created);
    EXPECT_TRUE(device->GenerateIdentity());
    EXPECT_TRUE(device->GeneratePreKeys(1, 10));
    EXPECT_TRUE(device->GenerateSignedPreKey(1, 1'700'000'000'000));
  }

  SignalAddress address;
  InMemorySignalStores stores;
  std::unique_ptr<SignalDevice> device;
};

// Each call must use a one-time prekey not handed out before, as the relay does.
void Connect(Member& from, Member& to, std::uint32_t pre_key_id) {
  auto bundle = to.device->CreatePreKeyBundle(pre_key_id, 1);
  ASSERT_TRUE(bundle);
  auto parsed = PreKeyBundle::Parse(bundle->Serialize());
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(from.device->ProcessPreKeyBundle(to.address, *parsed));
}

// Carries `payload` from `from` to `to` inside their pairwise session, as bytes.
SecretBytes SendPairwise(Member& from, Member& to, std::span<const std::uint8_t> payload) {
  auto sent = from.device->Encrypt(to.address, payload);
  EXPECT_TRUE(sent);
  if (!sent) return {};
  auto received = to.device->Decrypt(from.address, sent->type, sent->bytes);
  EXPECT_TRUE(received);
  return received ? std::move(*received) : SecretBytes();
}

class SenderKeyGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = std::make_unique<Member>(SignalAddress{"alice", 1});
    bob_ = std::make_unique<Member>(SignalAddress{"bob", 1});
    carla_ = std::make_unique<Member>(SignalAddress{"carla", 1});
    Connect(*alice_, *bob_, 1);
    Connect(*alice_, *carla_, 1);
    Connect(*bob_, *carla_, 2);
  }

  std::vector<Member*> Members() { return {alice_.get(), bob_.get(), carla_.get()}; }

  // `sender` sends its distribution for `group` to every other member, who installs it.
  // Returns the payload as each receiver saw it, in member order.
  std::vector<SecretBytes> Distribute(Member& sender, std::string_view group) {
    std::vector<SecretBytes> delivered;
    auto payload = sender.device->CreateGroupDistribution(group);
    EXPECT_TRUE(payload);
    if (!payload) return delivered;
    for (Member* member : Members()) {
      if (member == &sender) continue;
      SecretBytes received = SendPairwise(sender, *member, payload->span());
      const Status installed =
          member->device->ProcessGroupDistribution(group, sender.address, received.span());
      EXPECT_TRUE(installed) << member->address.name << ": "
                             << (installed ? "" : installed.error().context());
      delivered.push_back(std::move(received));
    }
    return delivered;
  }

  void DistributeAll(std::string_view group) {
    // Alice first: her prekey messages give Bob and Carla their side of the sessions.
    for (Member* member : Members()) Distribute(*member, group);
  }

  std::unique_ptr<Member> alice_;
  std::unique_ptr<Member> bob_;
  std::unique_ptr<Member> carla_;
};

TEST_F(SenderKeyGroupTest, ThreeMembersExchangeGroupMessages) {
  DistributeAll(kGroup);
  for (int round = 0; round < 3; ++round) {
    for (Member* sender : Members()) {
      const std::string text = sender->address.name + " message " + std::to_string(round);
      auto message = sender->device->GroupEncrypt(kGroup, Bytes(text));
      ASSERT_TRUE(message);
      EXPECT_EQ(message->type, SignalMessageType::kSenderKey);
      for (Member* receiver : Members()) {
        if (receiver == sender) continue;
        auto received = receiver->device->GroupDecrypt(kGroup, sender->address, message->bytes);
        ASSERT_TRUE(received) << received.error().context();
        EXPECT_EQ(Text(*received), text);
      }
    }
  }
}

TEST_F(SenderKeyGroupTest, ReplayedDistributionIsDroppedAndOldMessageDoesNotDecryptAgain) {
  std::vector<SecretBytes> delivered = Distribute(*alice_, kGroup);
  ASSERT_EQ(delivered.size(), 2u);
  const SecretBytes& to_bob = delivered[0];

  auto old_message = alice_->device->GroupEncrypt(kGroup, Bytes("Départ en intervention"));
  ASSERT_TRUE(old_message);
  auto first = bob_->device->GroupDecrypt(kGroup, alice_->address, old_message->bytes);
  ASSERT_TRUE(first);
  EXPECT_EQ(Text(*first), "Départ en intervention");

  // The same distribution again (re-delivered in a fresh pairwise message): the library
  // would rewind Alice's chain; we drop it.
  const Status replayed =
      bob_->device->ProcessGroupDistribution(kGroup, alice_->address, to_bob.span());
  ASSERT_FALSE(replayed);
  EXPECT_EQ(replayed.error().code(), ErrorCode::kReplay);

  auto again = bob_->device->GroupDecrypt(kGroup, alice_->address, old_message->bytes);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kReplay);

  // Before any message, a duplicate distribution is dropped too (same key, same iteration).
  const Status duplicate =
      carla_->device->ProcessGroupDistribution(kGroup, alice_->address, delivered[1].span());
  EXPECT_EQ(duplicate.error().code(), ErrorCode::kReplay);
}

// Why the guard exists: with a guard store that never remembers anything, the library on
// its own accepts the replayed distribution and the old message decrypts a second time.
class ForgetfulReplayGuard final : public GroupReplayGuardStore {
 public:
  Result<std::optional<std::uint32_t>> LoadHighestIteration(std::string_view, const SignalAddress&,
                                                            std::uint32_t) override {
    return std::optional<std::uint32_t>();
  }
  Status StoreHighestIteration(std::string_view, const SignalAddress&, std::uint32_t,
                               std::uint32_t) override {
    return Ok();
  }
};

TEST_F(SenderKeyGroupTest, WithoutTheGuardTheLibraryWouldDecryptAReplayedMessageAgain) {
  ForgetfulReplayGuard forgetful;
  SignalStores unguarded = bob_->stores.stores();
  unguarded.group_replay = &forgetful;
  auto unguarded_bob = SignalDevice::Create(bob_->address, unguarded);
  ASSERT_TRUE(unguarded_bob);

  std::vector<SecretBytes> delivered = Distribute(*alice_, kGroup);
  auto old_message = alice_->device->GroupEncrypt(kGroup, Bytes("rejoue-moi"));
  ASSERT_TRUE(old_message);
  ASSERT_TRUE((*unguarded_bob)->GroupDecrypt(kGroup, alice_->address, old_message->bytes));
  ASSERT_TRUE(
      (*unguarded_bob)->ProcessGroupDistribution(kGroup, alice_->address, delivered[0].span()));
  auto again = (*unguarded_bob)->GroupDecrypt(kGroup, alice_->address, old_message->bytes);
  ASSERT_TRUE(again);  // the behaviour our guard exists to prevent
  EXPECT_EQ(Text(*again), "rejoue-moi");
}

TEST_F(SenderKeyGroupTest, NewerDistributionOfTheSameKeyIsAcceptedAndDoesNotReopenOldMessages) {
  Distribute(*alice_, kGroup);
  auto old_message = alice_->device->GroupEncrypt(kGroup, Bytes("ancien"));
  ASSERT_TRUE(old_message);
  ASSERT_TRUE(bob_->device->GroupDecrypt(kGroup, alice_->address, old_message->bytes));

  // Alice re-sends her (advanced) key: accepted, it is further along the chain.
  Distribute(*alice_, kGroup);
  auto again = bob_->device->GroupDecrypt(kGroup, alice_->address, old_message->bytes);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kReplay);

  auto next = alice_->device->GroupEncrypt(kGroup, Bytes("nouveau"));
  ASSERT_TRUE(next);
  auto received = bob_->device->GroupDecrypt(kGroup, alice_->address, next->bytes);
  ASSERT_TRUE(received);
  EXPECT_EQ(Text(*received), "nouveau");
}

TEST_F(SenderKeyGroupTest, DistributionClaimingToComeFromOurselvesIsDropped) {
  DistributeAll(kGroup);
  // Bob's own distribution, reflected back to him.
  auto own = bob_->device->CreateGroupDistribution(kGroup);
  ASSERT_TRUE(own);
  const Status reflected =
      bob_->device->ProcessGroupDistribution(kGroup, bob_->address, own->span());
  ASSERT_FALSE(reflected);
  EXPECT_EQ(reflected.error().code(), ErrorCode::kInvalidArgument);

  // Bob's sending chain is intact.
  auto message = bob_->device->GroupEncrypt(kGroup, Bytes("toujours moi"));
  ASSERT_TRUE(message);
  auto received = alice_->device->GroupDecrypt(kGroup, bob_->address, message->bytes);
  ASSERT_TRUE(received);
  EXPECT_EQ(Text(*received), "toujours moi");
  // And a group message presented as coming from ourselves is refused outright.
  EXPECT_EQ(bob_->device->GroupDecrypt(kGroup, bob_->address, message->bytes).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(SenderKeyGroupTest, DistributionIsBoundToItsGroupAndSender) {
  // Bob opened the session with Carla; Carla can answer once he has written.
  const std::vector<std::uint8_t> hello = Bytes("bonjour");
  SendPairwise(*bob_, *carla_, hello);
  auto payload = carla_->device->CreateGroupDistribution(kGroup);
  ASSERT_TRUE(payload);
  SecretBytes at_bob = SendPairwise(*carla_, *bob_, payload->span());

  // Installed under another group: refused.
  EXPECT_EQ(bob_->device->ProcessGroupDistribution(kOtherGroup, carla_->address, at_bob.span())
                .error()
                .code(),
            ErrorCode::kAuthenticationFailed);
  // Forwarded by Alice as if it were hers: refused (Bob processes it for the pairwise
  // sender, Alice, and the header names Carla).
  SecretBytes forwarded = SendPairwise(*alice_, *bob_, at_bob.span());
  EXPECT_EQ(bob_->device->ProcessGroupDistribution(kGroup, alice_->address, forwarded.span())
                .error()
                .code(),
            ErrorCode::kAuthenticationFailed);
  // The genuine path works.
  EXPECT_TRUE(bob_->device->ProcessGroupDistribution(kGroup, carla_->address, at_bob.span()));
}

TEST_F(SenderKeyGroupTest, GroupMessagePresentedUnderAnotherGroupOrSenderDoesNotDecrypt) {
  DistributeAll(kGroup);
  DistributeAll(kOtherGroup);
  auto message = alice_->device->GroupEncrypt(kGroup, Bytes("pour la colonne seulement"));
  ASSERT_TRUE(message);
  EXPECT_EQ(bob_->device->GroupDecrypt(kOtherGroup, alice_->address, message->bytes).error().code(),
            ErrorCode::kAuthenticationFailed);
  EXPECT_EQ(bob_->device->GroupDecrypt(kGroup, carla_->address, message->bytes).error().code(),
            ErrorCode::kAuthenticationFailed);
  // The refusals consumed nothing.
  auto received = bob_->device->GroupDecrypt(kGroup, alice_->address, message->bytes);
  ASSERT_TRUE(received);
  EXPECT_EQ(Text(*received), "pour la colonne seulement");
}

TEST_F(SenderKeyGroupTest, OutOfOrderGroupMessagesDecryptOnce) {
  DistributeAll(kGroup);
  std::vector<SignalCiphertext> messages;
  for (const char* text : {"un", "deux", "trois"}) {
    auto message = carla_->device->GroupEncrypt(kGroup, Bytes(text));
    ASSERT_TRUE(message);
    messages.push_back(std::move(*message));
  }
  const char* expected[] = {"un", "deux", "trois"};
  for (const int index : {2, 0, 1}) {
    auto received = alice_->device->GroupDecrypt(kGroup, carla_->address, messages[index].bytes);
    ASSERT_TRUE(received);
    EXPECT_EQ(Text(*received), expected[index]);
  }
  EXPECT_EQ(alice_->device->GroupDecrypt(kGroup, carla_->address, messages[1].bytes).error().code(),
            ErrorCode::kReplay);
}

TEST_F(SenderKeyGroupTest, TamperedOrGarbageGroupMessagesAreRejected) {
  DistributeAll(kGroup);
  auto message = alice_->device->GroupEncrypt(kGroup, Bytes("intégrité"));
  ASSERT_TRUE(message);
  for (std::size_t bit = 0; bit < message->bytes.size() * 8; bit += 3) {
    std::vector<std::uint8_t> altered = message->bytes;
    altered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    EXPECT_FALSE(bob_->device->GroupDecrypt(kGroup, alice_->address, altered)) << bit;
  }
  for (std::size_t size = 0; size < 300; size += 5) {
    const std::vector<std::uint8_t> garbage = RandomBytes(size);
    EXPECT_FALSE(bob_->device->GroupDecrypt(kGroup, alice_->address, garbage));
    EXPECT_FALSE(bob_->device->ProcessGroupDistribution(kGroup, alice_->address, garbage));
  }
  for (std::size_t size = 1; size < message->bytes.size(); ++size) {
    EXPECT_FALSE(bob_->device->GroupDecrypt(
        kGroup, alice_->address, std::span<const std::uint8_t>(message->bytes.data(), size)));
  }
  auto received = bob_->device->GroupDecrypt(kGroup, alice_->address, message->bytes);
  ASSERT_TRUE(received);
  EXPECT_EQ(Text(*received), "intégrité");
}

TEST_F(SenderKeyGroupTest, RotationShutsOutMembersWhoDoNotReceiveTheNewKey) {
  DistributeAll(kGroup);
  ASSERT_TRUE(alice_->device->RotateGroupSenderKey(kGroup));
  // Carla left: only Bob gets Alice's new key.
  auto payload = alice_->device->CreateGroupDistribution(kGroup);
  ASSERT_TRUE(payload);
  SecretBytes at_bob = SendPairwise(*alice_, *bob_, payload->span());
  ASSERT_TRUE(bob_->device->ProcessGroupDistribution(kGroup, alice_->address, at_bob.span()));

  auto message = alice_->device->GroupEncrypt(kGroup, Bytes("sans Carla"));
  ASSERT_TRUE(message);
  auto at_bob_message = bob_->device->GroupDecrypt(kGroup, alice_->address, message->bytes);
  ASSERT_TRUE(at_bob_message);
  EXPECT_EQ(Text(*at_bob_message), "sans Carla");
  EXPECT_FALSE(carla_->device->GroupDecrypt(kGroup, alice_->address, message->bytes));
}

TEST_F(SenderKeyGroupTest, MissingKeysAreNotFound) {
  EXPECT_EQ(alice_->device->GroupEncrypt(kGroup, Bytes("x")).error().code(), ErrorCode::kNotFound);
  Distribute(*alice_, kGroup);
  auto message = alice_->device->GroupEncrypt(kGroup, Bytes("x"));
  ASSERT_TRUE(message);
  // Bob never received Carla's key, nor any key for the other group.
  EXPECT_EQ(bob_->device->GroupDecrypt(kGroup, carla_->address, message->bytes).error().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(bob_->device->GroupDecrypt(kOtherGroup, alice_->address, message->bytes).error().code(),
            ErrorCode::kNotFound);
  ASSERT_TRUE(carla_->device->CreateGroupDistribution(kGroup));
  auto carla_group = carla_->device->GroupEncrypt(kGroup, Bytes("y"));
  ASSERT_TRUE(carla_group);
  EXPECT_EQ(bob_->device->GroupDecrypt(kGroup, carla_->address, carla_group->bytes).error().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(alice_->device->CreateGroupDistribution("").error().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::crypto
