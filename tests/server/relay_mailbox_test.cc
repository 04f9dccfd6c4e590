// Mailboxes and prekeys end to end: store-and-forward between two devices, acknowledgement,
// deduplication, a restart between send and receive, quotas.
#include <gtest/gtest.h>

#include <set>

#include "server/relay_harness.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

// "prefix<i>", built by appending (GCC 12 at -O3 misreports `"literal" + std::string`).
std::string Numbered(std::string_view prefix, int i) {
  std::string text(prefix);
  text.append(std::to_string(i));
  return text;
}

class RelayMailboxTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(const std::function<void(RelayConfig&)>& tweak = {}) {
    // A fresh data directory each time: a new TestRelay has a new operator key.
    alice_client_.reset();
    relay_.reset();
    relay_ = std::make_unique<TestRelay>(dir_.path() / std::to_string(++starts_), tweak);
    ASSERT_TRUE(relay_->Start());
    alice_client_ = RelayClient::Connect(relay_->port());
    ASSERT_NE(alice_client_, nullptr);
    Onboard(*relay_, *alice_client_, alice_);
    // Bob registers and logs in once, then goes offline.
    auto bob_client = RelayClient::Connect(relay_->port());
    ASSERT_NE(bob_client, nullptr);
    Onboard(*relay_, *bob_client, bob_);
  }

  // Bob comes online: a new connection, logged in.
  std::unique_ptr<RelayClient> BobOnline() {
    auto client = RelayClient::Connect(relay_->port());
    EXPECT_NE(client, nullptr);
    if (client) {
      EXPECT_FALSE(client->Login("bob", bob_.device(1), relay_->relay_identity()).empty());
    }
    return client;
  }

  // Every envelope in the pushes, in order.
  static std::vector<wire::Envelope> Envelopes(const std::vector<wire::Push>& pushes) {
    std::vector<wire::Envelope> envelopes;
    for (const auto& push : pushes) {
      if (!push.has_envelopes()) continue;
      for (const auto& envelope : push.envelopes().envelopes()) envelopes.push_back(envelope);
    }
    return envelopes;
  }

  std::uint64_t Send(std::string_view text, std::string client_id = {}) {
    auto sent = alice_client_->Call(SendTo("bob", 1, text, std::move(client_id)));
    EXPECT_TRUE(sent && sent->has_send_result())
        << (sent && sent->has_error() ? sent->error().message() : "no response");
    return sent && sent->has_send_result() ? sent->send_result().sequence(0) : 0;
  }

  TempDir dir_;
  int starts_ = 0;
  std::unique_ptr<TestRelay> relay_;
  TestUser alice_{"alice"};
  TestUser bob_{"bob"};
  std::unique_ptr<RelayClient> alice_client_;
};

TEST_F(RelayMailboxTest, EnvelopesWaitForAnOfflineDeviceAndArriveInOrderWhenItComesOnline) {
  const std::uint64_t first = Send("one");
  const std::uint64_t second = Send("two");
  const std::uint64_t third = Send("three");
  EXPECT_LT(first, second);
  EXPECT_LT(second, third);

  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  auto push = bob->WaitPush(wire::Push::kEnvelopes);
  ASSERT_TRUE(push.has_value());
  std::vector<wire::Push> pushes{*push};
  for (const auto& more : bob->DrainPushes()) pushes.push_back(more);
  const auto envelopes = Envelopes(pushes);
  ASSERT_EQ(envelopes.size(), 3u);
  EXPECT_EQ(envelopes[0].ciphertext(), "one");
  EXPECT_EQ(envelopes[1].ciphertext(), "two");
  EXPECT_EQ(envelopes[2].ciphertext(), "three");
  EXPECT_EQ(envelopes[0].sequence(), first);
  EXPECT_EQ(envelopes[0].sender_user_id(), "alice");
  EXPECT_EQ(envelopes[0].sender_device_id(), 1u);
  EXPECT_EQ(envelopes[0].type(), 2u);
}

TEST_F(RelayMailboxTest, OnlineDeviceIsPushedNewEnvelopesAndBothDirectionsWork) {
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  bob->DrainPushes(100ms);
  Send("hello bob");
  auto push = bob->WaitPush(wire::Push::kEnvelopes);
  ASSERT_TRUE(push.has_value());
  ASSERT_EQ(push->envelopes().envelopes_size(), 1);
  EXPECT_EQ(push->envelopes().envelopes(0).ciphertext(), "hello bob");

  alice_client_->DrainPushes(50ms);
  auto reply = bob->Call(SendTo("alice", 1, "hello alice"));
  ASSERT_TRUE(reply && reply->has_send_result());
  auto back = alice_client_->WaitPush(wire::Push::kEnvelopes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->envelopes().envelopes(0).ciphertext(), "hello alice");
  EXPECT_GE(relay_->MetricValue("coffre_relay_envelopes_in_total").value_or(0), 2);
  EXPECT_GE(relay_->MetricValue("coffre_relay_envelopes_out_total").value_or(0), 2);
}

TEST_F(RelayMailboxTest, UnacknowledgedEnvelopesComeBackAfterReconnectAcknowledgedOnesNever) {
  const std::uint64_t first = Send("one");
  const std::uint64_t second = Send("two");
  const std::uint64_t third = Send("three");
  {
    auto bob = BobOnline();
    ASSERT_NE(bob, nullptr);
    ASSERT_TRUE(bob->WaitPush(wire::Push::kEnvelopes).has_value());
    ASSERT_TRUE(bob->Call(Ack({first, second}))->has_ok());
  }
  {
    auto bob = BobOnline();
    ASSERT_NE(bob, nullptr);
    auto push = bob->WaitPush(wire::Push::kEnvelopes);
    ASSERT_TRUE(push.has_value());
    const auto envelopes = Envelopes({*push});
    ASSERT_EQ(envelopes.size(), 1u);
    EXPECT_EQ(envelopes[0].sequence(), third);
    auto fetched = bob->Call(FetchMailbox());
    ASSERT_TRUE(fetched && fetched->has_envelopes());
    ASSERT_EQ(fetched->envelopes().envelopes_size(), 1);
    EXPECT_EQ(fetched->envelopes().envelopes(0).sequence(), third);
    ASSERT_TRUE(bob->Call(Ack({third}))->has_ok());
  }
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  EXPECT_TRUE(Envelopes(bob->DrainPushes(300ms)).empty());
  auto fetched = bob->Call(FetchMailbox());
  ASSERT_TRUE(fetched && fetched->has_envelopes());
  EXPECT_EQ(fetched->envelopes().envelopes_size(), 0);
}

TEST_F(RelayMailboxTest, DuplicateClientIdIsStoredOnce) {
  const std::string client_id = RandomId();
  const std::uint64_t first = Send("retry me", client_id);
  const std::uint64_t again = Send("retry me", client_id);
  EXPECT_EQ(first, again);
  // Twice within one request as well.
  wire::Request twice = SendTo("bob", 1, "twin", RandomId());
  *twice.mutable_send_envelopes()->add_envelopes() = twice.send_envelopes().envelopes(0);
  auto sent = alice_client_->Call(twice);
  ASSERT_TRUE(sent && sent->has_send_result());
  ASSERT_EQ(sent->send_result().sequence_size(), 2);
  EXPECT_EQ(sent->send_result().sequence(0), sent->send_result().sequence(1));

  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  bob->DrainPushes(100ms);
  auto fetched = bob->Call(FetchMailbox());
  ASSERT_TRUE(fetched && fetched->has_envelopes());
  EXPECT_EQ(fetched->envelopes().envelopes_size(), 2);
  // A retry after the acknowledgement is not delivered again.
  ASSERT_TRUE(bob->Call(Ack({first}))->has_ok());
  EXPECT_EQ(Send("retry me", client_id), first);
  auto after = bob->Call(FetchMailbox());
  ASSERT_TRUE(after && after->has_envelopes());
  ASSERT_EQ(after->envelopes().envelopes_size(), 1);
  EXPECT_EQ(after->envelopes().envelopes(0).ciphertext(), "twin");
}

TEST_F(RelayMailboxTest, NothingAcknowledgedIsLostAcrossARestart) {
  std::vector<std::uint64_t> sent;
  for (int i = 0; i < 20; ++i) sent.push_back(Send(Numbered("message ", i)));
  alice_client_.reset();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());

  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  ASSERT_TRUE(bob->WaitPush(wire::Push::kEnvelopes).has_value());
  auto fetched = bob->Call(FetchMailbox(0, 100));
  ASSERT_TRUE(fetched && fetched->has_envelopes());
  ASSERT_EQ(fetched->envelopes().envelopes_size(), 20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(fetched->envelopes().envelopes(i).sequence(), sent[static_cast<std::size_t>(i)]);
    EXPECT_EQ(fetched->envelopes().envelopes(i).ciphertext(), Numbered("message ", i));
  }
}

TEST_F(RelayMailboxTest, FetchPagesWithMore) {
  for (int i = 0; i < 5; ++i) Send(Numbered("m", i));
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  auto page = bob->Call(FetchMailbox(0, 2));
  ASSERT_TRUE(page && page->has_envelopes());
  ASSERT_EQ(page->envelopes().envelopes_size(), 2);
  EXPECT_TRUE(page->envelopes().more());
  auto rest = bob->Call(FetchMailbox(page->envelopes().envelopes(1).sequence(), 10));
  ASSERT_TRUE(rest && rest->has_envelopes());
  EXPECT_EQ(rest->envelopes().envelopes_size(), 3);
  EXPECT_FALSE(rest->envelopes().more());
}

TEST_F(RelayMailboxTest, AcknowledgingAnotherDevicesSequencesTouchesNothing) {
  const std::uint64_t sequence = Send("for bob only");
  // Alice acknowledges bob's sequence number: only her own mailbox is looked at.
  ASSERT_TRUE(alice_client_->Call(Ack({sequence}))->has_ok());
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  auto fetched = bob->Call(FetchMailbox());
  ASSERT_TRUE(fetched && fetched->has_envelopes());
  ASSERT_EQ(fetched->envelopes().envelopes_size(), 1);
}

TEST_F(RelayMailboxTest, UnknownRecipientRefusesTheWholeSend) {
  wire::Request request = SendTo("bob", 1, "good");
  *request.mutable_send_envelopes()->add_envelopes() =
      SendTo("nobody", 1, "bad").send_envelopes().envelopes(0);
  EXPECT_EQ(ErrorOf(alice_client_->Call(request)), wire::ERROR_CODE_NOT_FOUND);
  EXPECT_EQ(ErrorOf(alice_client_->Call(SendTo("bob", 9, "no such device"))),
            wire::ERROR_CODE_NOT_FOUND);
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  auto fetched = bob->Call(FetchMailbox());
  ASSERT_TRUE(fetched && fetched->has_envelopes());
  EXPECT_EQ(fetched->envelopes().envelopes_size(), 0);
}

TEST_F(RelayMailboxTest, FullMailboxGivesQuotaExceededUntilAcknowledged) {
  Start([](RelayConfig& config) { config.quotas.max_mailbox_messages = 3; });
  const std::uint64_t first = Send("1");
  Send("2");
  Send("3");
  EXPECT_EQ(ErrorOf(alice_client_->Call(SendTo("bob", 1, "4"))), wire::ERROR_CODE_QUOTA_EXCEEDED);
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  ASSERT_TRUE(bob->Call(Ack({first}))->has_ok());
  Send("4");
  EXPECT_GE(relay_->MetricValue("coffre_relay_errors_total{code=\"QUOTA_EXCEEDED\"}").value_or(0),
            1);
}

TEST_F(RelayMailboxTest, FullMailboxByBytesRefusesTheWholeSendUntilAcknowledged) {
  Start([](RelayConfig& config) { config.quotas.max_mailbox_bytes = 10; });
  const std::uint64_t first = Send("12345");
  // One recipient without room: nothing is stored for the other either.
  wire::Request both = SendTo("alice", 1, "for alice");
  *both.mutable_send_envelopes()->add_envelopes() =
      SendTo("bob", 1, "123456").send_envelopes().envelopes(0);
  EXPECT_EQ(ErrorOf(alice_client_->Call(both)), wire::ERROR_CODE_QUOTA_EXCEEDED);
  auto own = alice_client_->Call(FetchMailbox());
  ASSERT_TRUE(own && own->has_envelopes());
  EXPECT_EQ(own->envelopes().envelopes_size(), 0);
  Send("67890");  // exactly full

  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  ASSERT_TRUE(bob->Call(Ack({first}))->has_ok());
  Send("abcde");
  EXPECT_EQ(ErrorOf(alice_client_->Call(SendTo("bob", 1, "x"))), wire::ERROR_CODE_QUOTA_EXCEEDED);
}

TEST_F(RelayMailboxTest, MailboxQuotaHoldsAcrossRelaysSharingOneStore) {
  const auto quota = [](RelayConfig& config) { config.quotas.max_mailbox_messages = 2; };
  Start(quota);
  TestRelay second(*relay_, quota);
  ASSERT_TRUE(second.Start());
  auto alice_there = RelayClient::Connect(second.port());
  ASSERT_NE(alice_there, nullptr);
  ASSERT_FALSE(alice_there->Login("alice", alice_.device(1), second.relay_identity()).empty());

  const std::uint64_t first = Send("through the first relay");
  auto sent = alice_there->Call(SendTo("bob", 1, "through the second relay"));
  ASSERT_TRUE(sent && sent->has_send_result());
  // The first relay counts what the second one queued.
  EXPECT_EQ(ErrorOf(alice_client_->Call(SendTo("bob", 1, "one too many"))),
            wire::ERROR_CODE_QUOTA_EXCEEDED);

  // An acknowledgement through the second relay frees room on the first.
  auto bob = RelayClient::Connect(second.port());
  ASSERT_NE(bob, nullptr);
  ASSERT_FALSE(bob->Login("bob", bob_.device(1), second.relay_identity()).empty());
  ASSERT_TRUE(bob->Call(Ack({first}))->has_ok());
  Send("room again");
  alice_there.reset();
  bob.reset();
  second.Stop();
}

TEST_F(RelayMailboxTest, StoredOneTimePreKeysAreBoundedPerDevice) {
  Start([](RelayConfig& config) {
    config.quotas.max_one_time_prekeys = 10;
    config.quotas.max_stored_one_time_prekeys = 15;
  });
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  std::uint32_t next_id = 1;
  const auto upload = [&](std::uint32_t count) {
    wire::Request request;
    wire::UploadPreKeys* keys = request.mutable_upload_pre_keys();
    keys->set_registration_id(4242);
    std::string public_key(33, '\x22');
    public_key[0] = 0x05;
    keys->mutable_signed_pre_key()->set_id(1);
    keys->mutable_signed_pre_key()->set_public_key(public_key);
    keys->mutable_signed_pre_key()->set_signature(std::string(64, '\x33'));
    for (std::uint32_t i = 0; i < count; ++i) {
      wire::OneTimePreKey* key = keys->add_one_time_pre_keys();
      key->set_id(next_id++);
      key->set_public_key(public_key);
    }
    return bob->Call(request);
  };
  ASSERT_TRUE(upload(10)->has_ok());
  EXPECT_EQ(ErrorOf(upload(6)), wire::ERROR_CODE_QUOTA_EXCEEDED);
  ASSERT_TRUE(upload(5)->has_ok());
  EXPECT_EQ(ErrorOf(upload(1)), wire::ERROR_CODE_QUOTA_EXCEEDED);
  // A bundle fetch takes one key: room for one more.
  wire::Request fetch;
  fetch.mutable_fetch_pre_key_bundle()->set_user_id("bob");
  fetch.mutable_fetch_pre_key_bundle()->set_device_id(1);
  ASSERT_TRUE(alice_client_->Call(fetch)->has_pre_key_bundle());
  EXPECT_TRUE(upload(1)->has_ok());
}

TEST_F(RelayMailboxTest, PreKeyBundlesHandOutEachOneTimeKeyOnceAndWarnWhenLow) {
  auto bob = BobOnline();
  ASSERT_NE(bob, nullptr);
  EXPECT_EQ(ErrorOf(alice_client_->Call([] {
              wire::Request request;
              request.mutable_fetch_pre_key_bundle()->set_user_id("bob");
              request.mutable_fetch_pre_key_bundle()->set_device_id(1);
              return request;
            }())),
            wire::ERROR_CODE_NOT_FOUND);

  wire::Request upload;
  wire::UploadPreKeys* keys = upload.mutable_upload_pre_keys();
  keys->set_registration_id(4242);
  std::string public_key(33, '\x22');
  public_key[0] = 0x05;
  keys->mutable_signed_pre_key()->set_id(1);
  keys->mutable_signed_pre_key()->set_public_key(public_key);
  keys->mutable_signed_pre_key()->set_signature(std::string(64, '\x33'));
  for (std::uint32_t id = 1; id <= 11; ++id) {
    wire::OneTimePreKey* key = keys->add_one_time_pre_keys();
    key->set_id(id);
    key->set_public_key(public_key);
  }
  ASSERT_TRUE(bob->Call(upload)->has_ok());

  wire::Request fetch;
  fetch.mutable_fetch_pre_key_bundle()->set_user_id("bob");
  fetch.mutable_fetch_pre_key_bundle()->set_device_id(1);
  std::set<std::uint32_t> handed_out;
  for (int i = 0; i < 2; ++i) {
    auto bundle = alice_client_->Call(fetch);
    ASSERT_TRUE(bundle && bundle->has_pre_key_bundle());
    EXPECT_EQ(bundle->pre_key_bundle().registration_id(), 4242u);
    ASSERT_TRUE(bundle->pre_key_bundle().has_one_time_pre_key());
    EXPECT_TRUE(handed_out.insert(bundle->pre_key_bundle().one_time_pre_key().id()).second);
  }
  auto low = bob->WaitPush(wire::Push::kPreKeysLow);
  ASSERT_TRUE(low.has_value());
  EXPECT_EQ(low->pre_keys_low().remaining(), 9u);
}

}  // namespace
}  // namespace coffre::server
