// The relay's audit store: append order and durability across reopen, entries and leaf
// hashes read back, checkpoints, sealed month keys, and retention erasing details and
// destroying month keys (not entries) outside holds.
#include "coffre/storage/audit_store.h"

#include <gtest/gtest.h>

#include "coffre/crypto/random.h"
#include "server/temp_dir.h"

namespace coffre::storage {
namespace {

AuditAppend Record(std::uint8_t tag, std::int64_t month, bool with_details = true) {
  AuditAppend record;
  record.entry = std::vector<std::uint8_t>(40, tag);
  record.leaf_hash.fill(tag);
  if (with_details) record.sealed_details = std::vector<std::uint8_t>(60, static_cast<std::uint8_t>(tag ^ 0xFF));
  record.details_month = month;
  return record;
}

// Stand-ins for an auditor key and a sealed month key: the store keeps bytes.
std::vector<std::uint8_t> AuditorKey(std::uint8_t tag) { return std::vector<std::uint8_t>(32, tag); }
std::vector<std::uint8_t> SealedKey(std::int64_t month) {
  return std::vector<std::uint8_t>(107, static_cast<std::uint8_t>(month));
}

std::vector<std::int64_t> MonthsOf(const std::vector<AuditMonthKeyRecord>& keys) {
  std::vector<std::int64_t> months;
  for (const auto& key : keys) months.push_back(key.month);
  return months;
}

class AuditStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<AuditStore> OpenStore() {
    auto store = AuditStore::Open(dir_.path() / "audit.db", key_);
    EXPECT_TRUE(store) << (store ? "" : store.error().context());
    return store ? std::move(*store) : nullptr;
  }

  server::testing::TempDir dir_;
  crypto::SecretBytes key_ = crypto::RandomSecret(32);
};

TEST_F(AuditStoreTest, AppendsInOrderAndSurvivesReopening) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    ASSERT_EQ(*store->Size(), 0u);
    const std::vector<AuditAppend> first = {Record(1, 10), Record(2, 10, false)};
    auto at = store->Append(first);
    ASSERT_TRUE(at);
    EXPECT_EQ(*at, 0u);
    const std::vector<AuditAppend> second = {Record(3, 11)};
    at = store->Append(second);
    ASSERT_TRUE(at);
    EXPECT_EQ(*at, 2u);
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->Size(), 3u);
  std::vector<std::uint8_t> tags;
  ASSERT_TRUE(store->ForEachLeafHash([&](std::uint64_t index, const AuditHash& hash) {
    EXPECT_EQ(index, tags.size());
    tags.push_back(hash[0]);
  }));
  EXPECT_EQ(tags, (std::vector<std::uint8_t>{1, 2, 3}));
  auto entries = store->Entries(1, 10);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].index, 1u);
  EXPECT_FALSE((*entries)[0].sealed_details.has_value());
  EXPECT_FALSE((*entries)[0].erased);
  EXPECT_EQ((*entries)[1].entry, std::vector<std::uint8_t>(40, 3));
  ASSERT_TRUE((*entries)[1].sealed_details.has_value());
}

TEST_F(AuditStoreTest, WrongKeyOpensNothing) {
  ASSERT_TRUE(OpenStore());
  auto other = AuditStore::Open(dir_.path() / "audit.db", crypto::RandomSecret(32));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), ErrorCode::kWrongPassphrase);
}

TEST_F(AuditStoreTest, CheckpointsAreKeptBySize) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto none = store->LatestCheckpoint();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store->AddCheckpoint({5, "note at five", 100}));
  ASSERT_TRUE(store->AddCheckpoint({9, "note at nine", 200}));
  ASSERT_TRUE(store->AddCheckpoint({5, "another note at five", 300}));  // the first one stays
  auto latest = store->LatestCheckpoint();
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ((*latest)->tree_size, 9u);
  EXPECT_EQ((*latest)->note, "note at nine");
  auto at_five = store->CheckpointAt(5);
  ASSERT_TRUE(at_five && at_five->has_value());
  EXPECT_EQ((*at_five)->note, "note at five");
  auto at_six = store->CheckpointAt(6);
  ASSERT_TRUE(at_six);
  EXPECT_FALSE(at_six->has_value());
}

TEST_F(AuditStoreTest, RetentionErasesDetailsOutsideHeldMonthsAndKeepsEntries) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  const std::vector<AuditAppend> records = {Record(1, 10), Record(2, 11), Record(3, 12),
                                            Record(4, 13), Record(5, 11, false)};
  ASSERT_TRUE(store->Append(records));
  const std::vector<std::int64_t> held = {11};
  auto erased = store->EraseDetailsBefore(13, held);
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 2u);  // months 10 and 12; 11 is held, 13 is recent
  auto entries = store->Entries(0, 10);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 5u);
  EXPECT_TRUE((*entries)[0].erased);
  EXPECT_FALSE((*entries)[0].sealed_details.has_value());
  EXPECT_FALSE((*entries)[1].erased);
  EXPECT_TRUE((*entries)[1].sealed_details.has_value());
  EXPECT_TRUE((*entries)[2].erased);
  EXPECT_TRUE((*entries)[3].sealed_details.has_value());
  EXPECT_FALSE((*entries)[4].erased);  // had no details to erase
  for (const auto& entry : *entries) EXPECT_EQ(entry.entry.size(), 40u);
  // Lifting the hold lets the next run erase month 11.
  auto later = store->EraseDetailsBefore(13, {});
  ASSERT_TRUE(later);
  EXPECT_EQ(*later, 1u);
}

TEST_F(AuditStoreTest, MonthKeysAreStoredDurablyWithIdsThatGrow) {
  std::vector<std::uint64_t> ids;
  {
    auto store = OpenStore();
    ASSERT_TRUE(store);
    for (const std::int64_t month : {10, 10, 11}) {
      auto id = store->AddMonthKey(month, AuditorKey(static_cast<std::uint8_t>(ids.size())),
                                   SealedKey(month));
      ASSERT_TRUE(id) << id.error().context();
      EXPECT_GE(*id, 1u);
      if (!ids.empty()) {
        EXPECT_GT(*id, ids.back());
      }
      ids.push_back(*id);
    }
    EXPECT_FALSE(store->AddMonthKey(12, {}, SealedKey(12)));
  }
  auto store = OpenStore();
  ASSERT_TRUE(store);
  // Asked in any order, with repeats and an id never issued: each stored key once, by id.
  const std::vector<std::uint64_t> asked = {ids[2], ids[0], ids[2], 999, 0};
  auto keys = store->MonthKeys(asked);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].key_id, ids[0]);
  EXPECT_EQ((*keys)[0].month, 10);
  EXPECT_EQ((*keys)[0].auditor_key, AuditorKey(0));
  EXPECT_EQ((*keys)[0].sealed_key, SealedKey(10));
  EXPECT_EQ((*keys)[1].key_id, ids[2]);
  EXPECT_EQ((*keys)[1].month, 11);
}

TEST_F(AuditStoreTest, RetentionDestroysTheMonthKeysOfErasedMonthsOnly) {
  auto store = OpenStore();
  ASSERT_TRUE(store);
  std::vector<std::uint64_t> ids;
  for (const std::int64_t month : {10, 11, 12, 13}) {
    auto id = store->AddMonthKey(month, AuditorKey(1), SealedKey(month));
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  // A month whose key is left but whose details are all gone (or never were) still loses
  // its key: month 12 has no entry here.
  const std::vector<AuditAppend> records = {Record(1, 10), Record(2, 11), Record(4, 13)};
  ASSERT_TRUE(store->Append(records));
  const std::vector<std::int64_t> held = {11};
  auto erased = store->EraseDetailsBefore(13, held);
  ASSERT_TRUE(erased);
  EXPECT_EQ(*erased, 1u);
  auto keys = store->MonthKeys(ids);
  ASSERT_TRUE(keys);
  EXPECT_EQ(MonthsOf(*keys), (std::vector<std::int64_t>{11, 13}));
  // The hold lifted: month 11 goes, key and details. A new key never takes a shredded id.
  ASSERT_TRUE(store->EraseDetailsBefore(14, {}));
  keys = store->MonthKeys(ids);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->empty());
  auto next = store->AddMonthKey(14, AuditorKey(1), SealedKey(14));
  ASSERT_TRUE(next);
  EXPECT_GT(*next, ids.back());
  auto entries = store->Entries(0, 10);
  ASSERT_TRUE(entries);
  for (const auto& entry : *entries) {
    EXPECT_TRUE(entry.erased);
    EXPECT_FALSE(entry.sealed_details.has_value());
  }
}

}  // namespace
}  // namespace coffre::storage
