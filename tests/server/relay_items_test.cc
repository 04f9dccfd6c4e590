// Items (signed manifests with compare-and-swap versions) and blobs over HTTP, end to end,
// with the rights of each team role.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "coffre/protocol/validation.h"
#include "server/team_fixture.h"

namespace coffre::server {
namespace {

using namespace std::chrono_literals;
using namespace testing;

// Alice admin, bob member, dave auditor; carol is not in the team.
class RelayItemsTest : public TeamOfFourTest {
 protected:
  wire::Request GetItemRequest(std::string_view item_id, std::uint64_t version = 0) {
    wire::Request request;
    request.mutable_get_item()->set_team_id(team_.team_id);
    request.mutable_get_item()->set_item_id(std::string(item_id));
    request.mutable_get_item()->set_version(version);
    return request;
  }

  wire::Request ListItemsRequest(std::string after = {}, std::uint32_t limit = 0) {
    wire::Request request;
    request.mutable_list_items()->set_team_id(team_.team_id);
    request.mutable_list_items()->set_after_item_id(std::move(after));
    request.mutable_list_items()->set_limit(limit);
    return request;
  }

  wire::Request CreateBlobRequest(std::string_view blob_id, std::uint64_t size) {
    wire::Request request;
    request.mutable_create_blob()->set_team_id(team_.team_id);
    request.mutable_create_blob()->set_blob_id(std::string(blob_id));
    request.mutable_create_blob()->set_size(size);
    return request;
  }

  wire::Request BlobStatusRequest(std::string_view blob_id) {
    wire::Request request;
    request.mutable_blob_status()->set_team_id(team_.team_id);
    request.mutable_blob_status()->set_blob_id(std::string(blob_id));
    return request;
  }

  // Deterministic blob content of `size` bytes.
  static std::string Content(std::size_t size) {
    std::string data(size, '\0');
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131 + 7) & 0xFF);
    return data;
  }

  static std::string JsonCode(const HttpResponse& response) {
    const std::string key = "\"code\":\"";
    const std::size_t at = response.body.find(key);
    if (at == std::string::npos) return {};
    const std::size_t end = response.body.find('"', at + key.size());
    return response.body.substr(at + key.size(), end - at - key.size());
  }

};

// --- Items ----------------------------------------------------------------------------------

TEST_F(RelayItemsTest, CompareAndSwapConflictNamesTheCurrentVersion) {
  const std::string item = RandomId();
  auto v1 = Client("alice").Call(
      PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key));
  ASSERT_TRUE(v1 && v1->has_item_accepted())
      << (v1 && v1->has_error() ? v1->error().message() : "");
  EXPECT_EQ(v1->item_accepted().version(), 1u);
  auto v2 = Client("bob").Call(
      PutItem(ManifestBody(team_.team_id, item, 2, 1, "bob", 1), bob_.device(1).key));
  ASSERT_TRUE(v2 && v2->has_item_accepted());

  // Alice edited version 1 too, concurrently: her version 2 must not overwrite bob's.
  auto stale = Client("alice").Call(
      PutItem(ManifestBody(team_.team_id, item, 2, 1, "alice", 1), alice_.device(1).key));
  ASSERT_EQ(ErrorOf(stale), wire::ERROR_CODE_CONFLICT);
  EXPECT_EQ(stale->error().current_version(), 2u);
  auto recreate = Client("alice").Call(
      PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key));
  ASSERT_EQ(ErrorOf(recreate), wire::ERROR_CODE_CONFLICT);
  EXPECT_EQ(recreate->error().current_version(), 2u);

  auto current = Client("alice").Call(GetItemRequest(item));
  ASSERT_TRUE(current && current->has_item());
  EXPECT_EQ(current->item().current_version(), 2u);
  auto old = Client("alice").Call(GetItemRequest(item, 1));
  ASSERT_TRUE(old && old->has_item());
  EXPECT_EQ(old->item().current_version(), 2u);
  auto body = protocol::ParseItemManifestBody(old->item().manifest());
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->version(), 1u);
  EXPECT_EQ(body->author_user_id(), "alice");
  EXPECT_EQ(ErrorOf(Client("alice").Call(GetItemRequest(RandomId()))), wire::ERROR_CODE_NOT_FOUND);
}

TEST_F(RelayItemsTest, ListItemsPagesInIdOrder) {
  std::vector<std::string> items;
  for (int i = 0; i < 5; ++i) {
    items.push_back(RandomId());
    ASSERT_TRUE(Client("bob")
                    .Call(PutItem(ManifestBody(team_.team_id, items.back(), 1, 0, "bob", 1),
                                  bob_.device(1).key))
                    ->has_item_accepted());
  }
  std::sort(items.begin(), items.end());
  auto first = Client("alice").Call(ListItemsRequest({}, 2));
  ASSERT_TRUE(first && first->has_items());
  ASSERT_EQ(first->items().items_size(), 2);
  EXPECT_TRUE(first->items().more());
  auto last_body = protocol::ParseItemManifestBody(first->items().items(1).manifest());
  ASSERT_TRUE(last_body.has_value());
  EXPECT_EQ(last_body->item_id(), items[1]);
  auto rest = Client("alice").Call(ListItemsRequest(last_body->item_id()));
  ASSERT_TRUE(rest && rest->has_items());
  EXPECT_EQ(rest->items().items_size(), 3);
  EXPECT_FALSE(rest->items().more());
}

TEST_F(RelayItemsTest, ListItemsPagesThroughMoreItemsThanTheRelayReadsAtOnce) {
  // More items than the relay reads from its store per page (32), so one reply spans pages.
  std::vector<std::string> items;
  for (int i = 0; i < 40; ++i) {
    items.push_back(RandomId());
    auto put = Client("bob").Call(
        PutItem(ManifestBody(team_.team_id, items.back(), 1, 0, "bob", 1), bob_.device(1).key));
    ASSERT_TRUE(put && put->has_item_accepted());
  }
  std::sort(items.begin(), items.end());
  const auto ids = [](const wire::ItemList& list) {
    std::vector<std::string> out;
    for (const auto& item : list.items()) {
      auto body = protocol::ParseItemManifestBody(item.manifest());
      out.push_back(body ? body->item_id() : std::string());
    }
    return out;
  };

  auto all = Client("alice").Call(ListItemsRequest());
  ASSERT_TRUE(all && all->has_items());
  EXPECT_EQ(ids(all->items()), items);
  EXPECT_FALSE(all->items().more());
  auto exact = Client("alice").Call(ListItemsRequest({}, 40));
  ASSERT_TRUE(exact && exact->has_items());
  EXPECT_EQ(exact->items().items_size(), 40);
  EXPECT_FALSE(exact->items().more());

  std::vector<std::string> paged;
  std::string after;
  for (int request = 0; request < 10; ++request) {
    auto page = Client("dave").Call(ListItemsRequest(after, 33));
    ASSERT_TRUE(page && page->has_items());
    for (const std::string& id : ids(page->items())) paged.push_back(id);
    if (!page->items().more()) break;
    after = paged.back();
  }
  EXPECT_EQ(paged, items);
  // A cursor after the last item: an empty page.
  auto past = Client("alice").Call(ListItemsRequest(items.back()));
  ASSERT_TRUE(past && past->has_items());
  EXPECT_EQ(past->items().items_size(), 0);
  EXPECT_FALSE(past->items().more());
}

TEST_F(RelayItemsTest, NonMemberCannotReadItemsOrBlobs) {
  const std::string item = RandomId();
  ASSERT_TRUE(
      Client("alice")
          .Call(PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key))
          ->has_item_accepted());
  EXPECT_EQ(ErrorOf(Client("carol").Call(GetItemRequest(item))), wire::ERROR_CODE_FORBIDDEN);
  EXPECT_EQ(ErrorOf(Client("carol").Call(ListItemsRequest())), wire::ERROR_CODE_FORBIDDEN);
  // Nor write into the team, even with a manifest of her own.
  EXPECT_EQ(ErrorOf(Client("carol").Call(PutItem(
                ManifestBody(team_.team_id, RandomId(), 1, 0, "carol", 1), carol_.device(1).key))),
            wire::ERROR_CODE_FORBIDDEN);

  const std::string blob = RandomId();
  const std::string data = Content(1000);
  ASSERT_TRUE(Client("alice").Call(CreateBlobRequest(blob, data.size()))->has_blob());
  ASSERT_EQ(BlobPut(relay_->port(), tokens_["alice"], team_.team_id, blob, 0, data).status, 200u);
  EXPECT_EQ(ErrorOf(Client("carol").Call(BlobStatusRequest(blob))), wire::ERROR_CODE_FORBIDDEN);
  const HttpResponse get = BlobGet(relay_->port(), tokens_["carol"], team_.team_id, blob);
  EXPECT_EQ(get.status, 403u);
  EXPECT_EQ(JsonCode(get), "FORBIDDEN");
  EXPECT_EQ(get.Header("content-type"), "application/json");
  EXPECT_EQ(
      BlobGet(relay_->port(), tokens_["carol"], team_.team_id, blob, std::nullopt, "HEAD").status,
      403u);
  EXPECT_EQ(BlobPut(relay_->port(), tokens_["carol"], team_.team_id, blob, 0, "x").status, 403u);
  EXPECT_EQ(ErrorOf(Client("carol").Call(CreateBlobRequest(RandomId(), 10))),
            wire::ERROR_CODE_FORBIDDEN);
  // Without a valid token at all: 401.
  EXPECT_EQ(BlobGet(relay_->port(), std::string(32, '\x01'), team_.team_id, blob).status, 401u);
}

TEST_F(RelayItemsTest, AuditorReadsManifestsButNeitherWritesNorDownloads) {
  const std::string item = RandomId();
  ASSERT_TRUE(
      Client("alice")
          .Call(PutItem(ManifestBody(team_.team_id, item, 1, 0, "alice", 1), alice_.device(1).key))
          ->has_item_accepted());
  EXPECT_TRUE(Client("dave").Call(GetItemRequest(item))->has_item());
  EXPECT_TRUE(Client("dave").Call(ListItemsRequest())->has_items());
  EXPECT_EQ(ErrorOf(Client("dave").Call(
                PutItem(ManifestBody(team_.team_id, item, 2, 1, "dave", 1), dave_.device(1).key))),
            wire::ERROR_CODE_FORBIDDEN);
  EXPECT_EQ(ErrorOf(Client("dave").Call(CreateBlobRequest(RandomId(), 10))),
            wire::ERROR_CODE_FORBIDDEN);
  const std::string blob = RandomId();
  ASSERT_TRUE(Client("alice").Call(CreateBlobRequest(blob, 4))->has_blob());
  ASSERT_EQ(BlobPut(relay_->port(), tokens_["alice"], team_.team_id, blob, 0, "abcd").status, 200u);
  EXPECT_TRUE(Client("dave").Call(BlobStatusRequest(blob))->has_blob());
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["dave"], team_.team_id, blob).status, 403u);
}

TEST_F(RelayItemsTest, ManifestMustBeSignedByTheAuthenticatedDevice) {
  // Alice's manifest handed in by bob: the author is not the device that sends it.
  EXPECT_EQ(ErrorOf(Client("bob").Call(PutItem(
                ManifestBody(team_.team_id, RandomId(), 1, 0, "alice", 1), alice_.device(1).key))),
            wire::ERROR_CODE_FORBIDDEN);
  // Bob's name, alice's key: the signature does not verify.
  EXPECT_EQ(ErrorOf(Client("bob").Call(PutItem(
                ManifestBody(team_.team_id, RandomId(), 1, 0, "bob", 1), alice_.device(1).key))),
            wire::ERROR_CODE_INVALID_SIGNATURE);
  // A device the relay does not know.
  EXPECT_EQ(ErrorOf(Client("bob").Call(PutItem(
                ManifestBody(team_.team_id, RandomId(), 1, 0, "bob", 5), bob_.device(1).key))),
            wire::ERROR_CODE_AUTHENTICATION_FAILED);
}

TEST_F(RelayItemsTest, ManifestNamingABlobNeedsItCompleteAndOfTheSameSize) {
  const std::string blob = RandomId();
  const std::string data = Content(3000);
  auto manifest = [&](std::uint64_t size) {
    wire::ItemManifestBody body = ManifestBody(team_.team_id, RandomId(), 1, 0, "bob", 1);
    body.set_kind("document");
    body.set_blob_id(blob);
    body.set_blob_size(size);
    body.set_blob_hash(std::string(32, '\x09'));
    return PutItem(body, bob_.device(1).key);
  };
  EXPECT_EQ(ErrorOf(Client("bob").Call(manifest(data.size()))), wire::ERROR_CODE_NOT_FOUND);
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(blob, data.size()))->has_blob());
  ASSERT_EQ(
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 0, data.substr(0, 1000)).status,
      200u);
  EXPECT_EQ(ErrorOf(Client("bob").Call(manifest(data.size()))), wire::ERROR_CODE_SIZE_MISMATCH);
  ASSERT_EQ(
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 1000, data.substr(1000)).status,
      200u);
  EXPECT_EQ(ErrorOf(Client("bob").Call(manifest(data.size() + 1))), wire::ERROR_CODE_SIZE_MISMATCH);
  EXPECT_TRUE(Client("bob").Call(manifest(data.size()))->has_item_accepted());
}

// --- Blobs ----------------------------------------------------------------------------------

TEST_F(RelayItemsTest, UploadCutInTheMiddleResumesAtTheReceivedOffsetEvenAcrossARestart) {
  const std::string blob = RandomId();
  const std::string data = Content(300 * 1024);
  const std::size_t chunk = 100 * 1024;
  auto created = Client("bob").Call(CreateBlobRequest(blob, data.size()));
  ASSERT_TRUE(created && created->has_blob());
  EXPECT_EQ(created->blob().received(), 0u);
  EXPECT_EQ(ErrorOf(Client("bob").Call(CreateBlobRequest(blob, data.size()))),
            wire::ERROR_CODE_ALREADY_EXISTS);
  ASSERT_EQ(
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 0, data.substr(0, chunk)).status,
      200u);

  // The link drops; the client asks where to continue.
  auto status = Client("bob").Call(BlobStatusRequest(blob));
  ASSERT_TRUE(status && status->has_blob());
  EXPECT_EQ(status->blob().received(), chunk);
  EXPECT_FALSE(status->blob().complete());
  const HttpResponse head =
      BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, std::nullopt, "HEAD");
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.Header("x-coffre-blob-received"), std::to_string(chunk));
  EXPECT_EQ(head.Header("content-length"), std::to_string(chunk));
  // A download before the end is refused.
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob).status, 409u);

  // A retry of the first chunk (offset no longer current) is refused with the offset to use.
  const HttpResponse stale =
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 0, data.substr(0, chunk));
  EXPECT_EQ(stale.status, 409u);
  EXPECT_NE(stale.body.find("\"received\":" + std::to_string(chunk)), std::string::npos)
      << stale.body;

  ASSERT_EQ(
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, chunk, data.substr(chunk, chunk))
          .status,
      200u);
  // The relay restarts between two chunks.
  clients_.clear();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  auto bob = RelayClient::Connect(relay_->port());
  ASSERT_NE(bob, nullptr);
  const std::string token = bob->Login("bob", bob_.device(1), relay_->relay_identity());
  ASSERT_FALSE(token.empty());
  auto resumed = bob->Call(BlobStatusRequest(blob));
  ASSERT_TRUE(resumed && resumed->has_blob());
  ASSERT_EQ(resumed->blob().received(), 2 * chunk);
  const HttpResponse last =
      BlobPut(relay_->port(), token, team_.team_id, blob, 2 * chunk, data.substr(2 * chunk));
  ASSERT_EQ(last.status, 200u) << last.body;
  EXPECT_NE(last.body.find("\"complete\":true"), std::string::npos) << last.body;

  const HttpResponse whole = BlobGet(relay_->port(), token, team_.team_id, blob);
  ASSERT_EQ(whole.status, 200u);
  EXPECT_EQ(whole.body, data);
  EXPECT_EQ(whole.Header("accept-ranges"), "bytes");
  // Once complete, nothing more is accepted.
  EXPECT_EQ(BlobPut(relay_->port(), token, team_.team_id, blob, data.size(), "x").status, 409u);
}

TEST_F(RelayItemsTest, RangeReadsServeTheAskedBytes) {
  const std::string blob = RandomId();
  const std::string data = Content(10'000);
  ASSERT_TRUE(Client("alice").Call(CreateBlobRequest(blob, data.size()))->has_blob());
  ASSERT_EQ(BlobPut(relay_->port(), tokens_["alice"], team_.team_id, blob, 0, data).status, 200u);

  const HttpResponse middle =
      BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=100-199");
  ASSERT_EQ(middle.status, 206u);
  EXPECT_EQ(middle.body, data.substr(100, 100));
  EXPECT_EQ(middle.Header("content-range"), "bytes 100-199/10000");
  const HttpResponse tail =
      BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=-10");
  ASSERT_EQ(tail.status, 206u);
  EXPECT_EQ(tail.body, data.substr(9990));
  const HttpResponse open_ended =
      BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=9000-");
  ASSERT_EQ(open_ended.status, 206u);
  EXPECT_EQ(open_ended.body, data.substr(9000));
  const HttpResponse beyond =
      BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=10000-10005");
  EXPECT_EQ(beyond.status, 416u);
  EXPECT_EQ(beyond.Header("content-range"), "bytes */10000");
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=5-1").status, 416u);
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob, "bytes=0-1,5-6").status,
            416u);
  EXPECT_GE(relay_->MetricValue("coffre_relay_blob_bytes_out_total").value_or(0), 100);
}

TEST_F(RelayItemsTest, MoreBytesThanDeclaredAreRefusedAndNothingIsWritten) {
  const std::string blob = RandomId();
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(blob, 10))->has_blob());
  const HttpResponse refused =
      BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 0, "0123456789AB");
  EXPECT_EQ(refused.status, 400u);
  EXPECT_EQ(JsonCode(refused), "SIZE_MISMATCH");
  EXPECT_NE(refused.body.find("\"message\":"), std::string::npos);
  auto status = Client("bob").Call(BlobStatusRequest(blob));
  ASSERT_TRUE(status && status->has_blob());
  EXPECT_EQ(status->blob().received(), 0u);
  EXPECT_EQ(BlobPut(relay_->port(), tokens_["bob"], team_.team_id, blob, 0, "0123456789").status,
            200u);
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, blob).body, "0123456789");
  // A path that is not a blob's, or without an offset.
  HttpRequest bad;
  bad.method = "PUT";
  bad.target = "/v1/blobs/zz/" + Hex(blob) + "?offset=0";
  bad.headers.emplace_back("Authorization", "Bearer " + Hex(tokens_["bob"]));
  EXPECT_EQ(HttpsRequest(relay_->port(), bad).status, 400u);
  bad.target = "/v1/blobs/" + Hex(team_.team_id) + "/" + Hex(blob);
  EXPECT_EQ(HttpsRequest(relay_->port(), bad).status, 400u);
  EXPECT_EQ(BlobGet(relay_->port(), tokens_["bob"], team_.team_id, RandomId()).status, 404u);
}

TEST_F(RelayItemsTest, BlobLimitsGiveTheirCodes) {
  Start([](RelayConfig& config) {
    config.quotas.max_blob_bytes = 1000;
    config.quotas.max_team_storage_bytes = 1500;
  });
  EXPECT_EQ(ErrorOf(Client("bob").Call(CreateBlobRequest(RandomId(), 1001))),
            wire::ERROR_CODE_TOO_LARGE);
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(RandomId(), 1000))->has_blob());
  EXPECT_EQ(ErrorOf(Client("bob").Call(CreateBlobRequest(RandomId(), 600))),
            wire::ERROR_CODE_QUOTA_EXCEEDED);
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(RandomId(), 500))->has_blob());
  // The usage is read from the store, so a restart changes nothing.
  clients_.clear();
  relay_->Stop();
  ASSERT_TRUE(relay_->Start());
  auto bob = RelayClient::Connect(relay_->port());
  ASSERT_NE(bob, nullptr);
  ASSERT_FALSE(bob->Login("bob", bob_.device(1), relay_->relay_identity()).empty());
  EXPECT_EQ(ErrorOf(bob->Call(CreateBlobRequest(RandomId(), 1))), wire::ERROR_CODE_QUOTA_EXCEEDED);
}

TEST_F(RelayItemsTest, DeviceStorageQuotaCountsTheBlobsOfThatDeviceInEveryTeam) {
  Start([](RelayConfig& config) {
    config.quotas.max_team_storage_bytes = 1500;
    config.quotas.max_device_storage_bytes = 1000;
  });
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(RandomId(), 600))->has_blob());
  auto refused = Client("bob").Call(CreateBlobRequest(RandomId(), 401));
  ASSERT_EQ(ErrorOf(refused), wire::ERROR_CODE_QUOTA_EXCEEDED);
  EXPECT_EQ(refused->error().message(), "device storage quota exceeded");
  // Another device still has room in the same team, up to the team's quota.
  ASSERT_TRUE(Client("alice").Call(CreateBlobRequest(RandomId(), 800))->has_blob());
  auto team_full = Client("alice").Call(CreateBlobRequest(RandomId(), 101));
  ASSERT_EQ(ErrorOf(team_full), wire::ERROR_CODE_QUOTA_EXCEEDED);
  EXPECT_EQ(team_full->error().message(), "team storage quota exceeded");

  // Bob's blobs of the first team count in a second team too.
  TeamSetup other = CreateTeam(Client("alice"), alice_, {{"bob", wire::ROLE_MEMBER}});
  wire::Request in_other = CreateBlobRequest(RandomId(), 401);
  in_other.mutable_create_blob()->set_team_id(other.team_id);
  EXPECT_EQ(ErrorOf(Client("bob").Call(in_other)), wire::ERROR_CODE_QUOTA_EXCEEDED);
  in_other.mutable_create_blob()->set_size(400);
  EXPECT_TRUE(Client("bob").Call(in_other)->has_blob());
}

TEST_F(RelayItemsTest, TeamStorageQuotaHoldsAcrossRelaysSharingOneStore) {
  const auto quota = [](RelayConfig& config) { config.quotas.max_team_storage_bytes = 1000; };
  Start(quota);
  TestRelay second(*relay_, quota);
  ASSERT_TRUE(second.Start());
  auto alice_there = RelayClient::Connect(second.port());
  ASSERT_NE(alice_there, nullptr);
  ASSERT_FALSE(alice_there->Login("alice", alice_.device(1), second.relay_identity()).empty());
  ASSERT_TRUE(Client("bob").Call(CreateBlobRequest(RandomId(), 600))->has_blob());
  // The second relay counts the blob the first one created, and the other way round.
  EXPECT_EQ(ErrorOf(alice_there->Call(CreateBlobRequest(RandomId(), 401))),
            wire::ERROR_CODE_QUOTA_EXCEEDED);
  ASSERT_TRUE(alice_there->Call(CreateBlobRequest(RandomId(), 400))->has_blob());
  EXPECT_EQ(ErrorOf(Client("bob").Call(CreateBlobRequest(RandomId(), 1))),
            wire::ERROR_CODE_QUOTA_EXCEEDED);
  alice_there.reset();
  second.Stop();
}

}  // namespace
}  // namespace coffre::server
