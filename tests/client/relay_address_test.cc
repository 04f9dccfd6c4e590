#include "coffre/client/relay_address.h"

#include <gtest/gtest.h>

namespace coffre::client {
namespace {

TEST(RelayAddressTest, ParsesHostAndPort) {
  auto address = ParseRelayUrl("https://relay.sdis13.example.fr:8443");
  ASSERT_TRUE(address) << address.error().context();
  EXPECT_EQ(address->host, "relay.sdis13.example.fr");
  EXPECT_EQ(address->port, 8443);
  EXPECT_EQ(address->Url(), "https://relay.sdis13.example.fr:8443");
}

TEST(RelayAddressTest, DefaultsToPort443AndAcceptsATrailingSlash) {
  auto address = ParseRelayUrl("https://127.0.0.1/");
  ASSERT_TRUE(address);
  EXPECT_EQ(address->host, "127.0.0.1");
  EXPECT_EQ(address->port, 443);
}

TEST(RelayAddressTest, ParsesBracketedIpv6) {
  auto address = ParseRelayUrl("https://[::1]:9000");
  ASSERT_TRUE(address);
  EXPECT_EQ(address->host, "::1");
  EXPECT_EQ(address->port, 9000);
  EXPECT_EQ(address->Url(), "https://[::1]:9000");
}

TEST(RelayAddressTest, RefusesWhatIsNotAPlainHttpsOrigin) {
  for (const char* bad :
       {"http://relay:80", "relay:8443", "https://", "https://relay:0", "https://relay:65536",
        "https://relay:84x3", "https://relay:", "https://relay/path", "https://u@relay",
        "https://relay?x=1", "https://[::1", "https://[::1]x", "https://re lay",
        "https://[]:1"}) {
    auto address = ParseRelayUrl(bad);
    EXPECT_FALSE(address) << bad;
    if (!address) {
      EXPECT_EQ(address.error().code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(RelayAddressTest, FingerprintRoundTripsInBothForms) {
  const std::string plain = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
  auto parsed = ParseFingerprint(plain);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->at(0), 0x00);
  EXPECT_EQ(parsed->at(31), 0xff);
  std::string pairs;
  for (std::size_t i = 0; i < plain.size(); i += 2) {
    if (!pairs.empty()) pairs += ':';
    pairs += plain.substr(i, 2);
  }
  auto parsed_pairs = ParseFingerprint(pairs);
  ASSERT_TRUE(parsed_pairs);
  EXPECT_EQ(*parsed, *parsed_pairs);
  EXPECT_EQ(FormatFingerprint(*parsed),
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
}

TEST(RelayAddressTest, RefusesMalformedFingerprints) {
  const std::string good(64, 'a');
  for (const std::string& bad :
       {std::string(), good.substr(1), good + "a", std::string(63, 'a') + "g",
        std::string("aa:bb") + std::string(59, 'a'), std::string(95, ':')}) {
    EXPECT_FALSE(ParseFingerprint(bad)) << bad;
  }
}

}  // namespace
}  // namespace coffre::client
