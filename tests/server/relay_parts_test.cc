// The relay service's small parts on their own: HTTP parsing of blob paths, ranges and
// tokens, blob files on disk, token buckets.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "relay_blobs.h"
#include "relay_limits.h"
#include "relay_util.h"
#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using testing::TempDir;

const std::string kTeamHex(32, 'a');
const std::string kBlobHex = "000102030405060708090a0b0c0d0e0f";

TEST(BlobTargetTest, ParsesPathAndOffset) {
  auto target = ParseBlobTarget("/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?offset=4096");
  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->team_id, std::vector<std::uint8_t>(16, 0xaa));
  EXPECT_EQ(target->blob_id[15], 0x0f);
  EXPECT_EQ(target->offset, 4096u);
  auto upper = ParseBlobTarget("/v1/blobs/" + std::string(32, 'A') + "/" + kBlobHex);
  ASSERT_TRUE(upper.has_value());
  EXPECT_FALSE(upper->offset.has_value());
}

TEST(BlobTargetTest, RefusesAnythingElse) {
  for (const std::string& bad : {
           "/v1/blobs/" + kTeamHex,
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "/",
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex.substr(2),
           "/v1/blobs/" + kTeamHex + "/zz" + kBlobHex.substr(2),
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?offset=",
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?offset=-1",
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?offset=+1",
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?offset=99999999999999999999",
           "/v1/blobs/" + kTeamHex + "/" + kBlobHex + "?other=1",
           "/v1/blobs/../" + kBlobHex,
       }) {
    EXPECT_FALSE(ParseBlobTarget(bad).has_value()) << bad;
  }
}

TEST(ByteRangeTest, ServesOneSatisfiableRange) {
  auto range = ParseByteRange("bytes=0-0", 10);
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->first, 0u);
  EXPECT_EQ(range->length, 1u);
  range = ParseByteRange("bytes=5-100", 10);  // cut to the end (RFC 9110 §14.1.2)
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->length, 5u);
  range = ParseByteRange("bytes=-3", 10);
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->first, 7u);
  range = ParseByteRange("bytes=-30", 10);
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->first, 0u);
  EXPECT_EQ(range->length, 10u);
  for (const char* bad : {"bytes=10-", "bytes=3-2", "bytes=-0", "bytes=0-1,3-4", "items=0-1",
                          "bytes=", "bytes=a-b", "bytes=1"}) {
    EXPECT_FALSE(ParseByteRange(bad, 10).has_value()) << bad;
  }
  EXPECT_FALSE(ParseByteRange("bytes=0-0", 0).has_value());
}

TEST(BearerTokenTest, NeedsTheSchemeAnd64HexDigits) {
  EXPECT_TRUE(ParseBearerToken("Bearer " + std::string(64, 'f')).has_value());
  EXPECT_FALSE(ParseBearerToken("bearer " + std::string(64, 'f')).has_value());
  EXPECT_FALSE(ParseBearerToken("Bearer " + std::string(63, 'f')).has_value());
  EXPECT_FALSE(ParseBearerToken("Bearer " + std::string(64, 'g')).has_value());
  EXPECT_FALSE(ParseBearerToken("").has_value());
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(BlobFilesTest, WritesAtTheRecordedOffsetAndRenamesWhenComplete) {
  TempDir dir;
  auto files = BlobFiles::Open(dir.path());
  ASSERT_TRUE(files.has_value());
  const std::vector<std::uint8_t> team(16, 1);
  const std::vector<std::uint8_t> blob(16, 2);
  ASSERT_TRUE(files->CreatePart(team, blob));
  ASSERT_TRUE(files->CreatePart(team, blob));  // a second create keeps the file
  ASSERT_TRUE(files->WriteAt(team, blob, 0, AsBytes("hello ")));
  // Bytes written past the recorded progress (a crash before the store update) are cut.
  ASSERT_TRUE(files->WriteAt(team, blob, 6, AsBytes("lost bytes")));
  ASSERT_TRUE(files->WriteAt(team, blob, 6, AsBytes("world")));
  EXPECT_EQ(ReadAll(files->PartPath(team, blob)), "hello world");
  EXPECT_FALSE(files->FinalSize(team, blob).has_value());
  ASSERT_EQ(files->ListTeam(team).size(), 1u);
  ASSERT_TRUE(files->Finish(team, blob, 11));
  EXPECT_EQ(files->FinalSize(team, blob), 11u);
  EXPECT_FALSE(std::filesystem::exists(files->PartPath(team, blob)));
  EXPECT_EQ(ReadAll(files->FinalPath(team, blob)), "hello world");
  EXPECT_EQ(files->ListTeam(team), std::vector<std::vector<std::uint8_t>>{blob});
  EXPECT_EQ(files->Finish(team, blob, 11).error().code(), ErrorCode::kNotFound);
}

TEST(TokenBucketTest, TakesRefillsAndSaysHowLongToWait) {
  TokenBucket bucket(/*rate_per_ms=*/0.01, /*burst=*/2, /*now_ms=*/0);
  EXPECT_EQ(bucket.Take(1, 0), 0u);
  EXPECT_EQ(bucket.Take(1, 0), 0u);
  EXPECT_EQ(bucket.Take(1, 0), 100u);  // one token per 100 ms
  EXPECT_EQ(bucket.Take(1, 50), 50u);
  EXPECT_EQ(bucket.Take(1, 100), 0u);
  EXPECT_FALSE(bucket.Full(100));
  EXPECT_TRUE(bucket.Full(10'000));
  // Debt: a cost above the burst passes once a token is there, then the bucket waits.
  EXPECT_EQ(bucket.TakeWithDebt(10, 10'000), 0u);
  EXPECT_GT(bucket.TakeWithDebt(1, 10'000), 0u);
}

TEST(HexTest, RoundTripsAndRefusesBadInput) {
  const std::vector<std::uint8_t> bytes{0x00, 0x7f, 0xff};
  EXPECT_EQ(ToHex(bytes), "007fff");
  EXPECT_EQ(FromHex("007FFF", 3), bytes);
  EXPECT_FALSE(FromHex("007ff", 3).has_value());
  EXPECT_FALSE(FromHex("007fgf", 3).has_value());
  // SHA-256("abc"), FIPS 180-4 example.
  EXPECT_EQ(ToHex(Sha256(AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace coffre::server
