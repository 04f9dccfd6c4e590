// Pairwise sessions. Alice and Bob only ever exchange serialized bundles and serialized
// messages with our type next to them, as they would through the relay.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/random.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

std::vector<std::uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }
std::string Text(const SecretBytes& bytes) { return {bytes.span().begin(), bytes.span().end()}; }

// One device with its own in-memory stores.
struct Party {
  explicit Party(SignalAddress addr) : address(std::move(addr)) {}

  void Open() {
    auto created = SignalDevice::Create(address, stores.stores());
    ASSERT_TRUE(created) << created.error().context();
    device = std::move(*created);
  }

  SignalAddress address;
  InMemorySignalStores stores;
  std::unique_ptr<SignalDevice> device;
};

std::unique_ptr<Party> NewParty(std::string name, std::int32_t device_id = 1) {
  auto party = std::make_unique<Party>(SignalAddress{std::move(name), device_id});
  party->Open();
  EXPECT_TRUE(party->device->GenerateIdentity());
  EXPECT_TRUE(party->device->GeneratePreKeys(1, 10));
  EXPECT_TRUE(party->device->GenerateSignedPreKey(1, 1'700'000'000'000));
  return party;
}

// What the relay would hand out for `party`.
std::vector<std::uint8_t> PublishedBundle(Party& party, std::uint32_t pre_key_id = 1) {
  auto bundle = party.device->CreatePreKeyBundle(pre_key_id, 1);
  EXPECT_TRUE(bundle);
  return bundle ? bundle->Serialize() : std::vector<std::uint8_t>();
}

Status Connect(Party& from, Party& to, std::uint32_t pre_key_id = 1) {
  auto parsed = PreKeyBundle::Parse(PublishedBundle(to, pre_key_id));
  if (!parsed) return parsed.error();
  return from.device->ProcessPreKeyBundle(to.address, *parsed);
}

SignalCiphertext MustEncrypt(Party& from, Party& to, std::string_view text) {
  auto sent = from.device->Encrypt(to.address, Bytes(text));
  EXPECT_TRUE(sent) << (sent ? "" : sent.error().context());
  return sent ? std::move(*sent) : SignalCiphertext{SignalMessageType::kWhisper, {}};
}

std::string MustDecrypt(Party& to, Party& from, const SignalCiphertext& message) {
  auto received = to.device->Decrypt(from.address, message.type, message.bytes);
  EXPECT_TRUE(received) << (received ? "" : received.error().context());
  return received ? Text(*received) : std::string();
}

// The byte range of the inner (MAC-protected) message inside a serialized prekey message:
// a version byte, then protobuf fields, the inner message being field 4. The outer fields
// around it are not covered by the inner MAC, so a test that wants the MAC check to fail
// must alter a byte inside this range.
std::span<std::uint8_t> InnerMessage(std::vector<std::uint8_t>& prekey_message) {
  std::size_t offset = 1;  // version byte
  auto varint = [&](std::uint64_t& value) {
    value = 0;
    for (int shift = 0; offset < prekey_message.size() && shift < 64; shift += 7) {
      const std::uint8_t byte = prekey_message[offset++];
      value |= std::uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  };
  while (offset < prekey_message.size()) {
    std::uint64_t key = 0;
    std::uint64_t value = 0;
    if (!varint(key) || !varint(value)) break;
    if ((key & 7) == 2) {  // length-delimited
      if (value > prekey_message.size() - offset) break;
      if ((key >> 3) == 4) return std::span(prekey_message).subspan(offset, value);
      offset += value;
    } else if ((key & 7) != 0) {
      break;
    }
  }
  ADD_FAILURE() << "no inner message found";
  return {};
}

class SignalSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = NewParty("alice");
    bob_ = NewParty("bob");
  }

  std::unique_ptr<Party> alice_;
  std::unique_ptr<Party> bob_;
};

TEST_F(SignalSessionTest, ConversationBothWaysThroughSerializedBundlesAndMessages) {
  ASSERT_TRUE(Connect(*alice_, *bob_));

  for (int i = 0; i < 3; ++i) {
    const std::string text = "alice " + std::to_string(i);
    const SignalCiphertext message = MustEncrypt(*alice_, *bob_, text);
    // Until Bob answers, every message carries what Bob needs to build the session.
    EXPECT_EQ(message.type, SignalMessageType::kPreKey);
    EXPECT_EQ(MustDecrypt(*bob_, *alice_, message), text);
  }
  for (int i = 0; i < 3; ++i) {
    const std::string text = "bob " + std::to_string(i);
    const SignalCiphertext message = MustEncrypt(*bob_, *alice_, text);
    EXPECT_EQ(message.type, SignalMessageType::kWhisper);
    EXPECT_EQ(MustDecrypt(*alice_, *bob_, message), text);
  }
  const SignalCiphertext after_reply = MustEncrypt(*alice_, *bob_, "ack");
  EXPECT_EQ(after_reply.type, SignalMessageType::kWhisper);
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, after_reply), "ack");

  // The one-time prekey was used once and removed.
  EXPECT_FALSE(*bob_->stores.pre_key.ContainsPreKey(1));
}

TEST_F(SignalSessionTest, OutOfOrderDeliveryDecryptsEveryMessage) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  const SignalCiphertext m1 = MustEncrypt(*alice_, *bob_, "one");
  const SignalCiphertext m2 = MustEncrypt(*alice_, *bob_, "two");
  const SignalCiphertext m3 = MustEncrypt(*alice_, *bob_, "three");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, m3), "three");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, m1), "one");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, m2), "two");

  // Same on an established session, across a ratchet step.
  const SignalCiphertext r1 = MustEncrypt(*bob_, *alice_, "r1");
  const SignalCiphertext r2 = MustEncrypt(*bob_, *alice_, "r2");
  const SignalCiphertext r3 = MustEncrypt(*bob_, *alice_, "r3");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, r3), "r3");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, r1), "r1");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, r2), "r2");
}

TEST_F(SignalSessionTest, ReplayedMessageIsRejected) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  const SignalCiphertext first = MustEncrypt(*alice_, *bob_, "once");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, first), "once");
  auto again = bob_->device->Decrypt(alice_->address, first.type, first.bytes);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kReplay);

  const SignalCiphertext reply = MustEncrypt(*bob_, *alice_, "reply");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, reply), "reply");
  auto reply_again = alice_->device->Decrypt(bob_->address, reply.type, reply.bytes);
  ASSERT_FALSE(reply_again);
  EXPECT_EQ(reply_again.error().code(), ErrorCode::kReplay);
}

TEST_F(SignalSessionTest, EveryFlippedBitOfAMessageIsRejectedAndStateIsUntouched) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "hello")), "hello");
  const SignalCiphertext reply = MustEncrypt(*bob_, *alice_, "secret reply");
  ASSERT_EQ(reply.type, SignalMessageType::kWhisper);

  for (std::size_t bit = 0; bit < reply.bytes.size() * 8; ++bit) {
    std::vector<std::uint8_t> altered = reply.bytes;
    altered[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    auto result = alice_->device->Decrypt(bob_->address, reply.type, altered);
    ASSERT_FALSE(result) << "bit " << bit;
    EXPECT_NE(result.error().code(), ErrorCode::kInternal) << "bit " << bit;
  }
  // Failed attempts committed nothing: the genuine message still decrypts.
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, reply), "secret reply");
}

TEST_F(SignalSessionTest, TamperedPreKeyMessageIsRejectedAndDoesNotPinItsIdentity) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  const SignalCiphertext first = MustEncrypt(*alice_, *bob_, "first contact");
  ASSERT_EQ(first.type, SignalMessageType::kPreKey);

  std::vector<std::uint8_t> altered = first.bytes;
  std::span<std::uint8_t> inner = InnerMessage(altered);
  ASSERT_GT(inner.size(), 8u);
  inner.back() ^= 0x01;  // the inner message's MAC: fails after the library saved the identity
  auto rejected = bob_->device->Decrypt(alice_->address, first.type, altered);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code(), ErrorCode::kAuthenticationFailed);
  // The library records the sender's identity before checking the message; we only write
  // it once the message has decrypted.
  EXPECT_FALSE(bob_->stores.identity.LoadIdentity(alice_->address)->has_value());
  EXPECT_FALSE(*bob_->stores.session.ContainsSession(alice_->address));

  EXPECT_EQ(MustDecrypt(*bob_, *alice_, first), "first contact");
  auto pinned = bob_->stores.identity.LoadIdentity(alice_->address);
  ASSERT_TRUE(pinned && pinned->has_value());
  const SignalPublicKey alice_identity = *alice_->device->IdentityPublicKey();
  EXPECT_EQ(**pinned, std::vector<std::uint8_t>(alice_identity.begin(), alice_identity.end()));

  // A later failing prekey message must not make Bob forget the pinned identity either.
  const SignalCiphertext second = MustEncrypt(*alice_, *bob_, "second");
  ASSERT_EQ(second.type, SignalMessageType::kPreKey);
  std::vector<std::uint8_t> altered_second = second.bytes;
  std::span<std::uint8_t> inner_second = InnerMessage(altered_second);
  ASSERT_GT(inner_second.size(), 8u);
  inner_second[inner_second.size() - 3] ^= 0x80;
  EXPECT_FALSE(bob_->device->Decrypt(alice_->address, second.type, altered_second));
  EXPECT_TRUE(bob_->stores.identity.LoadIdentity(alice_->address)->has_value());
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, second), "second");
}

TEST_F(SignalSessionTest, BundleWithBadSignedPreKeySignatureIsRejected) {
  std::vector<std::uint8_t> bytes = PublishedBundle(*bob_);
  bytes[50 + 10] ^= 0x04;  // inside the signature
  auto parsed = PreKeyBundle::Parse(bytes);
  ASSERT_TRUE(parsed);  // the format is fine; the signature is checked when used
  const Status processed = alice_->device->ProcessPreKeyBundle(bob_->address, *parsed);
  ASSERT_FALSE(processed);
  EXPECT_EQ(processed.error().code(), ErrorCode::kAuthenticationFailed);
  EXPECT_FALSE(*alice_->device->HasSession(bob_->address));
  EXPECT_FALSE(alice_->stores.identity.LoadIdentity(bob_->address)->has_value());

  // A signature by another identity key is just as bad.
  auto mallory = NewParty("mallory");
  auto good = PreKeyBundle::Parse(PublishedBundle(*bob_));
  ASSERT_TRUE(good);
  PreKeyBundle swapped = *good;
  swapped.identity_key = *mallory->device->IdentityPublicKey();
  EXPECT_EQ(alice_->device->ProcessPreKeyBundle(bob_->address, swapped).error().code(),
            ErrorCode::kAuthenticationFailed);
}

TEST_F(SignalSessionTest, BundleForAnotherDeviceOrOurselvesIsRefused) {
  auto parsed = PreKeyBundle::Parse(PublishedBundle(*bob_));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(alice_->device->ProcessPreKeyBundle({"bob", 2}, *parsed).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(alice_->device->ProcessPreKeyBundle(alice_->address, *parsed).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(SignalSessionTest, GarbageGivenToDecryptNeverCrashesAndFails) {
  // Without a session.
  for (std::size_t size = 0; size < 200; size += 7) {
    const std::vector<std::uint8_t> garbage = RandomBytes(size);
    EXPECT_FALSE(bob_->device->Decrypt(alice_->address, SignalMessageType::kPreKey, garbage));
    EXPECT_FALSE(bob_->device->Decrypt(alice_->address, SignalMessageType::kWhisper, garbage));
  }
  ASSERT_TRUE(Connect(*alice_, *bob_));
  const SignalCiphertext first = MustEncrypt(*alice_, *bob_, "hello");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, first), "hello");
  const SignalCiphertext reply = MustEncrypt(*bob_, *alice_, "hi");

  // With a session: random bytes, random bytes behind a plausible version byte, and every
  // truncation of genuine messages, under both types.
  for (int round = 0; round < 300; ++round) {
    std::vector<std::uint8_t> garbage = RandomBytes(1 + static_cast<std::size_t>(round));
    if (round % 2 == 0) garbage[0] = 0x33;  // protocol version 3
    for (const auto type : {SignalMessageType::kPreKey, SignalMessageType::kWhisper}) {
      auto result = alice_->device->Decrypt(bob_->address, type, garbage);
      ASSERT_FALSE(result);
      EXPECT_EQ(result.error().code(), ErrorCode::kAuthenticationFailed);
    }
  }
  for (const SignalCiphertext* genuine : {&first, &reply}) {
    for (std::size_t size = 1; size < genuine->bytes.size(); ++size) {
      const std::span<const std::uint8_t> truncated(genuine->bytes.data(), size);
      EXPECT_FALSE(alice_->device->Decrypt(bob_->address, SignalMessageType::kPreKey, truncated));
      EXPECT_FALSE(alice_->device->Decrypt(bob_->address, SignalMessageType::kWhisper, truncated));
    }
  }
  // Wrong type for the bytes, and types that are not pairwise.
  EXPECT_FALSE(alice_->device->Decrypt(bob_->address, SignalMessageType::kPreKey, reply.bytes));
  EXPECT_EQ(alice_->device->Decrypt(bob_->address, SignalMessageType::kSenderKey, reply.bytes)
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(alice_->device->Decrypt(bob_->address, static_cast<SignalMessageType>(77), reply.bytes)
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(alice_->device->Decrypt(bob_->address, SignalMessageType::kWhisper, {}).error().code(),
            ErrorCode::kInvalidArgument);

  // None of that disturbed the session.
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, reply), "hi");
}

TEST_F(SignalSessionTest, EncryptRefusesOnceThePeerIdentityIsNoLongerTrusted) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "before")), "before");

  // Bob reinstalls: same address, new identity. Alice learns of the new identity (from a
  // new device certificate, say) and records it.
  auto new_bob = NewParty("bob");
  const SignalPublicKey new_identity = *new_bob->device->IdentityPublicKey();
  ASSERT_TRUE(alice_->stores.identity.SaveIdentity(bob_->address, new_identity));

  // The old session was built with the old identity: the library would happily keep using
  // it, our check refuses.
  auto refused = alice_->device->Encrypt(bob_->address, Bytes("after"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kUntrustedIdentity);
}

TEST_F(SignalSessionTest, ChangedIdentityIsRefusedWhenBuildingOrReceiving) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "hello")), "hello");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, MustEncrypt(*bob_, *alice_, "hello back")), "hello back");

  auto impostor = NewParty("bob");  // claims Bob's address with another identity
  // Its bundle is refused by Alice...
  EXPECT_EQ(Connect(*alice_, *impostor).error().code(), ErrorCode::kUntrustedIdentity);
  // ...and so is a session it opens towards Alice.
  ASSERT_TRUE(Connect(*impostor, *alice_, 2));
  const SignalCiphertext forged = MustEncrypt(*impostor, *alice_, "c'est moi, Bob");
  auto received = alice_->device->Decrypt(bob_->address, forged.type, forged.bytes);
  ASSERT_FALSE(received);
  EXPECT_EQ(received.error().code(), ErrorCode::kUntrustedIdentity);

  // The genuine session still works.
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "still you?")), "still you?");
}

TEST_F(SignalSessionTest, SessionSurvivesRebuildingTheDevicesOverTheSameStores) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "one")), "one");
  const SignalCiphertext in_flight = MustEncrypt(*bob_, *alice_, "in flight");

  // Close both devices (as when the application exits) and open them again.
  alice_->device.reset();
  bob_->device.reset();
  alice_->Open();
  bob_->Open();

  EXPECT_EQ(MustDecrypt(*alice_, *bob_, in_flight), "in flight");
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "two")), "two");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, MustEncrypt(*bob_, *alice_, "three")), "three");
}

TEST_F(SignalSessionTest, PlaintextSinkRunsBeforeCommitAndCanAbort) {
  ASSERT_TRUE(Connect(*alice_, *bob_));
  const SignalCiphertext message = MustEncrypt(*alice_, *bob_, "persist me");

  std::string seen;
  const PlaintextSink failing = [&](std::span<const std::uint8_t> plaintext) -> Status {
    seen.assign(plaintext.begin(), plaintext.end());
    return Fail(ErrorCode::kDatabase, "disk full");
  };
  auto aborted = bob_->device->Decrypt(alice_->address, message.type, message.bytes, failing);
  ASSERT_FALSE(aborted);
  EXPECT_EQ(aborted.error().code(), ErrorCode::kDatabase);
  EXPECT_EQ(seen, "persist me");
  EXPECT_FALSE(*bob_->stores.session.ContainsSession(alice_->address));

  // Nothing was committed, so the same message decrypts (it is not a replay).
  const PlaintextSink ok = [&](std::span<const std::uint8_t>) -> Status { return Ok(); };
  auto received = bob_->device->Decrypt(alice_->address, message.type, message.bytes, ok);
  ASSERT_TRUE(received);
  EXPECT_EQ(Text(*received), "persist me");
}

TEST_F(SignalSessionTest, EncryptWithoutSessionIsNotFound) {
  auto sent = alice_->device->Encrypt(bob_->address, Bytes("hello"));
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(alice_->device->Encrypt({"", 1}, Bytes("x")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(alice_->device->Encrypt({"bob", 0}, Bytes("x")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(alice_->device->Encrypt(alice_->address, Bytes("x")).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(SignalSessionTest, KeyGenerationRulesAreEnforced) {
  EXPECT_EQ(alice_->device->GenerateIdentity().error().code(), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(alice_->device->GeneratePreKeys(0, 5));
  EXPECT_FALSE(alice_->device->GeneratePreKeys(1, 0));
  EXPECT_FALSE(alice_->device->GeneratePreKeys(kMaxPreKeyId, 2));
  EXPECT_FALSE(alice_->device->GeneratePreKeys(1, kMaxPreKeyBatch + 1));
  auto pre_keys = alice_->device->GeneratePreKeys(100, 3);
  ASSERT_TRUE(pre_keys);
  ASSERT_EQ(pre_keys->size(), 3u);
  EXPECT_EQ((*pre_keys)[0].id, 100u);
  EXPECT_EQ((*pre_keys)[2].id, 102u);
  EXPECT_TRUE(*alice_->stores.pre_key.ContainsPreKey(102));
  EXPECT_EQ(alice_->device->CreatePreKeyBundle(999, 1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(alice_->device->CreatePreKeyBundle(std::nullopt, 9).error().code(),
            ErrorCode::kNotFound);

  InMemorySignalStores empty;
  auto fresh = SignalDevice::Create({"nobody", 1}, empty.stores());
  ASSERT_TRUE(fresh);
  EXPECT_EQ((*fresh)->IdentityPublicKey().error().code(), ErrorCode::kNotFound);
  EXPECT_EQ((*fresh)->GenerateSignedPreKey(1, 0).error().code(), ErrorCode::kNotFound);

  SignalStores missing = empty.stores();
  missing.group_replay = nullptr;
  EXPECT_EQ(SignalDevice::Create({"nobody", 1}, missing).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(SignalDevice::Create({std::string("no\0body", 7), 1}, empty.stores()).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(SignalSessionTest, SessionWithoutOneTimePreKeyWorks) {
  auto bundle = bob_->device->CreatePreKeyBundle(std::nullopt, 1);
  ASSERT_TRUE(bundle);
  auto parsed = PreKeyBundle::Parse(bundle->Serialize());
  ASSERT_TRUE(parsed);
  ASSERT_TRUE(alice_->device->ProcessPreKeyBundle(bob_->address, *parsed));
  EXPECT_EQ(MustDecrypt(*bob_, *alice_, MustEncrypt(*alice_, *bob_, "no prekey")), "no prekey");
  EXPECT_EQ(MustDecrypt(*alice_, *bob_, MustEncrypt(*bob_, *alice_, "fine")), "fine");
}

}  // namespace
}  // namespace coffre::crypto
