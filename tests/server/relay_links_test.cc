// The relay's device-link slots: who may write and read each side, once, and for how long.
#include "relay_links.h"

#include <gtest/gtest.h>

namespace coffre::server::internal {
namespace {

constexpr std::uint64_t kLifetime = 1000;
const LinkOwner kAlice{"alice", 7};
const std::string kLink(16, 'L');

TEST(LinkRegistryTest, EachSideIsWrittenOnceByTheRightParty) {
  LinkRegistry links(8, kLifetime);
  std::uint64_t expires = 0;
  ASSERT_EQ(links.Open(kLink, kAlice, 100, &expires), LinkRegistry::Outcome::kOk);
  EXPECT_EQ(expires, 100 + kLifetime);

  std::string sealed;
  // Nothing yet on either side.
  ASSERT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REQUEST, kAlice, 110, &sealed, &expires),
            LinkRegistry::Outcome::kOk);
  EXPECT_TRUE(sealed.empty());
  // The new device has no session: it may post the request, not the reply, and may not
  // read the request back.
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REPLY, "forged", std::nullopt, 120),
            LinkRegistry::Outcome::kForbidden);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REQUEST, "request", std::nullopt, 120),
            LinkRegistry::Outcome::kOk);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REQUEST, "second", std::nullopt, 121),
            LinkRegistry::Outcome::kAlreadyPosted);
  EXPECT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REQUEST, std::nullopt, 122, &sealed, &expires),
            LinkRegistry::Outcome::kForbidden);
  EXPECT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REQUEST, LinkOwner{"alice", 8}, 122, &sealed, &expires),
            LinkRegistry::Outcome::kForbidden);
  ASSERT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REQUEST, kAlice, 123, &sealed, &expires),
            LinkRegistry::Outcome::kOk);
  EXPECT_EQ(sealed, "request");
  // Another device of another user cannot answer; the owner can, once; anyone reads it.
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REPLY, "x", LinkOwner{"mallory", 1}, 124),
            LinkRegistry::Outcome::kForbidden);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REPLY, "reply", kAlice, 125), LinkRegistry::Outcome::kOk);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REPLY, "again", kAlice, 126),
            LinkRegistry::Outcome::kAlreadyPosted);
  ASSERT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REPLY, std::nullopt, 127, &sealed, &expires),
            LinkRegistry::Outcome::kOk);
  EXPECT_EQ(sealed, "reply");
}

TEST(LinkRegistryTest, LinksExpireAndAreReplacedPerUser) {
  LinkRegistry links(8, kLifetime);
  std::uint64_t expires = 0;
  std::string sealed;
  ASSERT_EQ(links.Open(kLink, kAlice, 0, &expires), LinkRegistry::Outcome::kOk);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REQUEST, "late", std::nullopt, kLifetime),
            LinkRegistry::Outcome::kNotFound);
  EXPECT_EQ(links.Fetch(kLink, wire::LINK_SIDE_REPLY, std::nullopt, kLifetime, &sealed, &expires),
            LinkRegistry::Outcome::kNotFound);
  EXPECT_EQ(links.OpenLinks(), 0u);

  // A second link of the same user (another device too) replaces the first.
  const std::string second(16, 'M');
  ASSERT_EQ(links.Open(kLink, kAlice, 2000, &expires), LinkRegistry::Outcome::kOk);
  ASSERT_EQ(links.Open(second, LinkOwner{"alice", 9}, 2001, &expires), LinkRegistry::Outcome::kOk);
  EXPECT_EQ(links.OpenLinks(), 1u);
  EXPECT_EQ(links.Post(kLink, wire::LINK_SIDE_REQUEST, "r", std::nullopt, 2002),
            LinkRegistry::Outcome::kNotFound);
  // Another user cannot take over an open link id.
  EXPECT_EQ(links.Open(second, LinkOwner{"bob", 1}, 2003, &expires), LinkRegistry::Outcome::kForbidden);
}

TEST(LinkRegistryTest, OpenLinksAreCapped) {
  LinkRegistry links(3, kLifetime);
  std::uint64_t expires = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(links.Open(std::string(16, static_cast<char>('a' + i)),
                         LinkOwner{"user" + std::to_string(i), 1}, 0, &expires),
              LinkRegistry::Outcome::kOk);
  }
  EXPECT_EQ(links.Open(std::string(16, 'z'), LinkOwner{"user9", 1}, 0, &expires),
            LinkRegistry::Outcome::kFull);
  // Expired links free their places.
  EXPECT_EQ(links.Open(std::string(16, 'z'), LinkOwner{"user9", 1}, kLifetime, &expires),
            LinkRegistry::Outcome::kOk);
}

}  // namespace
}  // namespace coffre::server::internal
