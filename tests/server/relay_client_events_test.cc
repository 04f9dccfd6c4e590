// Events a device reports and signs (document opened, exported; decision 0017): the relay
// records one only as the statement of the authenticated device that signed it, whole, in
// an entry of format 2, and says where.
#include <gtest/gtest.h>

#include "coffre/audit/client_event.h"
#include "coffre/audit/entry.h"
#include "server/relay_harness.h"
#include "server/team_fixture.h"

namespace coffre::server {
namespace {

namespace wire = coffre::wire::v1;
using namespace testing;

class RelayClientEventsTest : public TeamOfFourTest {
 protected:
  audit::ClientEvent Event(std::uint32_t device_id, std::uint64_t sequence = 1) {
    audit::ClientEvent event;
    event.type = audit::EventType::kDocumentExported;
    event.client_time_ms = 1'764'000'000'000;
    event.device_id = device_id;
    std::copy(team_.team_id.begin(), team_.team_id.end(), event.team_id.begin());
    event.item_id.fill(0x1D);
    event.version = 1;
    event.sequence = sequence;
    return event;
  }

  wire::Response Report(const std::string& user, std::span<const std::uint8_t> bytes) {
    wire::Request request;
    request.mutable_record_client_event()->set_event(std::string(bytes.begin(), bytes.end()));
    auto response = Client(user).Call(request);
    EXPECT_TRUE(response.has_value());
    return response.value_or(wire::Response());
  }

  wire::Response Report(const std::string& user, const audit::ClientEvent& event) {
    return Report(user, audit::EncodeClientEvent(event));
  }

  std::uint64_t LogSize() { return relay_->audit()->log().Size(); }

  audit::Entry EntryAt(std::uint64_t index) {
    auto entries = relay_->audit()->log().Entries(index, 1);
    EXPECT_TRUE(entries && entries->size() == 1);
    if (!entries || entries->size() != 1) return {};
    auto entry = audit::DecodeEntry((*entries)[0].entry);
    EXPECT_TRUE(entry);
    return entry ? *entry : audit::Entry{};
  }
};

TEST_F(RelayClientEventsTest, TheDevicesSignedEventIsRecordedWholeWhereTheRelaySays) {
  const auto event = *audit::SignClientEvent(Event(1), bob_.device(1).key);
  const auto response = Report("bob", event);
  ASSERT_TRUE(response.has_client_event_recorded()) << response.error().message();
  const std::uint64_t index = response.client_event_recorded().index();
  EXPECT_EQ(index + 1, LogSize());
  const audit::Entry entry = EntryAt(index);
  ASSERT_TRUE(entry.client_event.has_value());
  EXPECT_EQ(*entry.client_event, event);
  EXPECT_EQ(entry.type, audit::EventType::kDocumentExported);
  EXPECT_EQ(entry.device_id, 1u);
  EXPECT_TRUE(entry.actor.has_value());
  EXPECT_EQ(entry.object_version, 1u);

  // A removed member's device, or one outside the team, still reports what it did with
  // its own copy: the relay records it.
  const auto outside = *audit::SignClientEvent(Event(1), carol_.device(1).key);
  EXPECT_TRUE(Report("carol", outside).has_client_event_recorded());
}

TEST_F(RelayClientEventsTest, StatementsNotSignedByThisDeviceAreRefusedAndNotRecorded) {
  const std::uint64_t before = LogSize();
  // Signed by another key that claims to be bob's device (a forger, or the relay itself).
  audit::ClientEvent forged = *audit::SignClientEvent(Event(1), crypto::SigningKey::Generate());
  EXPECT_EQ(Report("bob", forged).error().code(), wire::ERROR_CODE_FORBIDDEN);
  forged.device_key = bob_.device(1).key.verify_key().bytes();
  EXPECT_EQ(Report("bob", forged).error().code(), wire::ERROR_CODE_AUTHENTICATION_FAILED);
  // Bob's key, but naming another device.
  EXPECT_EQ(Report("bob", *audit::SignClientEvent(Event(2), bob_.device(1).key)).error().code(),
            wire::ERROR_CODE_FORBIDDEN);
  // Alice's signed statement replayed over bob's connection.
  EXPECT_EQ(Report("bob", *audit::SignClientEvent(Event(1), alice_.device(1).key)).error().code(),
            wire::ERROR_CODE_FORBIDDEN);
  // Not an event at all.
  auto bytes = audit::EncodeClientEvent(*audit::SignClientEvent(Event(1), bob_.device(1).key));
  bytes[2] = 0x0E;  // event type 14, a relay event
  EXPECT_EQ(Report("bob", bytes).error().code(), wire::ERROR_CODE_MALFORMED);
  EXPECT_EQ(Report("bob", std::span(bytes).first(100)).error().code(), wire::ERROR_CODE_MALFORMED);
  EXPECT_EQ(LogSize(), before);
}

TEST_F(RelayClientEventsTest, AConnectionWithoutASessionIsRefused) {
  auto anonymous = RelayClient::Connect(relay_->port());
  ASSERT_NE(anonymous, nullptr);
  wire::Request request;
  const auto event = audit::EncodeClientEvent(*audit::SignClientEvent(Event(1), bob_.device(1).key));
  request.mutable_record_client_event()->set_event(std::string(event.begin(), event.end()));
  auto response = anonymous->Call(request);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->error().code(), wire::ERROR_CODE_UNAUTHENTICATED);
}

}  // namespace
}  // namespace coffre::server
