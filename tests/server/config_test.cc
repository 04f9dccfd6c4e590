#include "config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using testing::TempDir;

TEST(ConfigTest, DefaultsAreTheNamedConstants) {
  const RelayConfig config;
  EXPECT_EQ(config.listen, "127.0.0.1:8443");
  EXPECT_EQ(config.limits.max_body_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(config.limits.max_frame_bytes, 1024u * 1024);
  EXPECT_EQ(config.limits.max_queued_frames, 64u);
  EXPECT_EQ(config.limits.max_queued_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(config.limits.handshake_timeout, kDefaultHandshakeTimeout);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
}

TEST(ConfigTest, ParsesEverySection) {
  const char* text = R"(
data = "/var/lib/coffre"
listen = "0.0.0.0:9443"
log_level = "debug"
[tls]
certificate = "/etc/coffre/cert.pem"
private_key = "/etc/coffre/key.pem"
[limits]
handshake_timeout_ms = 1500
websocket_idle_timeout_ms = 30000
http_body_timeout_ms = 90000
max_body_bytes = 1048576
max_frame_bytes = 65536
max_queued_frames = 32
max_connections = 100
io_threads = 3
[auth]
session_token_lifetime_s = 3600
[quotas]
max_blob_bytes = 1000000
max_device_storage_bytes = 5000000
max_devices_per_user = 4
max_stored_one_time_prekeys = 400
[rate_limits]
requests_per_second_per_device = 2.5
auth_burst_per_address = 3
[audit]
origin = "relay.sdis13.example/log"
node = "relay-a"
jurisdiction = "FR"
auditor_key = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
retention_months = 24
legal_hold_months = "2026-05,2027-01"
)";
  std::string detail;
  auto config = ParseRelayConfig(text, RelayConfig{}, &detail);
  ASSERT_TRUE(config) << detail;
  EXPECT_EQ(config->data_dir, "/var/lib/coffre");
  EXPECT_EQ(config->listen, "0.0.0.0:9443");
  EXPECT_EQ(config->log_level, LogLevel::kDebug);
  EXPECT_EQ(config->tls_certificate, std::filesystem::path("/etc/coffre/cert.pem"));
  EXPECT_EQ(config->tls_private_key, std::filesystem::path("/etc/coffre/key.pem"));
  EXPECT_EQ(config->limits.handshake_timeout, Milliseconds(1500));
  EXPECT_EQ(config->limits.websocket_idle_timeout, Milliseconds(30000));
  EXPECT_EQ(config->limits.http_body_timeout, Milliseconds(90000));
  EXPECT_EQ(config->limits.max_body_bytes, 1048576u);
  EXPECT_EQ(config->limits.max_frame_bytes, 65536u);
  EXPECT_EQ(config->limits.max_queued_frames, 32u);
  EXPECT_EQ(config->limits.max_connections, 100u);
  EXPECT_EQ(config->limits.io_threads, 3u);
  EXPECT_EQ(config->limits.max_queued_bytes, kDefaultMaxQueuedBytes) << "unset keeps default";
  EXPECT_EQ(config->auth.session_token_lifetime, Seconds(3600));
  EXPECT_EQ(config->quotas.max_blob_bytes, 1000000u);
  EXPECT_EQ(config->quotas.max_device_storage_bytes, 5000000u);
  EXPECT_EQ(config->quotas.max_devices_per_user, 4u);
  EXPECT_EQ(config->quotas.max_stored_one_time_prekeys, 400u);
  EXPECT_DOUBLE_EQ(config->rate_limits.requests_per_second_per_device, 2.5);
  EXPECT_EQ(config->rate_limits.auth_burst_per_address, 3u);
  EXPECT_EQ(config->audit.origin, "relay.sdis13.example/log");
  EXPECT_EQ(config->audit.node, "relay-a");
  ASSERT_TRUE(config->audit.auditor_key.has_value());
  EXPECT_EQ(config->audit.auditor_key->bytes()[0], 0x85);
  EXPECT_EQ(config->audit.retention_months, 24u);
  // Months since January 1970: 2026-05 is 56 * 12 + 4.
  EXPECT_EQ(config->audit.legal_hold_months, (std::vector<std::int64_t>{676, 684}));
  EXPECT_TRUE(ValidateRelayConfig(*config));
}

TEST(ConfigTest, RefusesUnknownKeysWrongTypesAndOutOfRangeValues) {
  struct Case {
    const char* text;
    const char* detail;
  };
  const Case cases[] = {
      {"listne = \"x\"", "config: listne is not a known setting"},
      {"[limits]\nmax_body_byte = 1", "config: limits.max_body_byte is not a known setting"},
      {"[limits]\nmax_body_bytes = \"4MiB\"", "config: limits.max_body_bytes must be an integer"},
      {"[limits]\nmax_frame_bytes = 1", "config: limits.max_frame_bytes is out of range"},
      {"[limits]\nhandshake_timeout_ms = 0", "config: limits.handshake_timeout_ms is out of range"},
      {"log_level = \"loud\"", "config: log_level must be debug, info, warn or error"},
      {"limits = 3", "config: limits must be a table"},
      {"[tls]\ncertificate = \"\"", "config: tls.certificate must not be empty"},
      {"[audit]\nretention_months = 3", "config: audit.retention_months is out of range"},
      {"[audit]\nlegal_hold_months = \"2026-13\"",
       "config: audit.legal_hold_months must be months as YYYY-MM, separated by commas"},
      {"[audit]\nauditor_key = \"abcd\"", "config: audit.auditor_key must be 64 hex digits"},
  };
  for (const Case& c : cases) {
    std::string detail;
    auto config = ParseRelayConfig(c.text, RelayConfig{}, &detail);
    ASSERT_FALSE(config) << c.text;
    EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(detail, c.detail);
  }
  std::string detail;
  auto broken = ParseRelayConfig("listen = ", RelayConfig{}, &detail);
  ASSERT_FALSE(broken);
  EXPECT_EQ(detail.rfind("config: line 1", 0), 0u) << detail;
}

TEST(ConfigTest, FileValuesLayerOverTheBase) {
  TempDir dir;
  const auto path = dir.path() / "relay.toml";
  std::ofstream(path) << "listen = \"127.0.0.1:1\"\n";
  RelayConfig base;
  base.data_dir = "/from/base";
  auto config = LoadRelayConfigFile(path, base);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->listen, "127.0.0.1:1");
  EXPECT_EQ(config->data_dir, "/from/base");
  EXPECT_EQ(LoadRelayConfigFile(dir.path() / "missing.toml", base).error().code(), ErrorCode::kIo);
}

TEST(ConfigTest, ValidateNeedsDataDirAndBothTlsFiles) {
  RelayConfig config;
  std::string detail;
  EXPECT_FALSE(ValidateRelayConfig(config, &detail));
  EXPECT_EQ(detail, "config: a data directory is required (--data)");
  config.data_dir = "/tmp/x";
  EXPECT_TRUE(ValidateRelayConfig(config));
  config.tls_certificate = "/c.pem";
  EXPECT_FALSE(ValidateRelayConfig(config, &detail));
  EXPECT_EQ(detail, "config: tls.certificate and tls.private_key go together");
  config.tls_private_key = "/k.pem";
  EXPECT_TRUE(ValidateRelayConfig(config));
  config.listen = "nowhere";
  EXPECT_FALSE(ValidateRelayConfig(config));
}

TEST(ConfigTest, ValidateNeedsRoomForOnePreKeyUpload) {
  RelayConfig config;
  config.data_dir = "/tmp/x";
  config.quotas.max_one_time_prekeys = 200;
  config.quotas.max_stored_one_time_prekeys = 199;
  std::string detail;
  EXPECT_FALSE(ValidateRelayConfig(config, &detail));
  EXPECT_EQ(
      detail,
      "config: quotas.max_stored_one_time_prekeys must hold one upload (max_one_time_prekeys)");
  config.quotas.max_stored_one_time_prekeys = 200;
  EXPECT_TRUE(ValidateRelayConfig(config));
}

TEST(ConfigTest, ParsesListenAddresses) {
  auto v4 = ParseListenAddress("127.0.0.1:8443");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 8443);
  auto any = ParseListenAddress("0.0.0.0:0");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->port, 0);
  auto v6 = ParseListenAddress("[::1]:443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 443);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":80", "::1:80", "[::1]80",
                          "127.0.0.1:65536", "127.0.0.1:8x", "127.0.0.1:-1"}) {
    EXPECT_FALSE(ParseListenAddress(bad)) << bad;
  }
}

class OperatorKeyTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("COFFRE_RELAY_KEY"); }
  void TearDown() override { unsetenv("COFFRE_RELAY_KEY"); }
};

TEST_F(OperatorKeyTest, IsCreatedOnceWithMode0600AndReused) {
  TempDir dir;
  auto first = LoadOrCreateOperatorKey(dir.path());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->size(), 32u);
  struct stat info {};
  ASSERT_EQ(stat((dir.path() / "operator.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(info.st_size, 32);
  auto second = LoadOrCreateOperatorKey(dir.path());
  ASSERT_TRUE(second);
  EXPECT_TRUE(crypto::ConstantTimeEquals(first->span(), second->span()));
  // No temporary file is left behind.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(OperatorKeyTest, TruncatedKeyFileIsCorrupt) {
  TempDir dir;
  std::ofstream(dir.path() / "operator.key") << "short";
  auto key = LoadOrCreateOperatorKey(dir.path());
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code(), ErrorCode::kCorrupt);
}

TEST_F(OperatorKeyTest, EnvironmentKeyWinsAndWritesNothing) {
  TempDir dir;
  setenv("COFFRE_RELAY_KEY", std::string(64, 'A').c_str(), 1);
  auto key = LoadOrCreateOperatorKey(dir.path());
  ASSERT_TRUE(key);
  ASSERT_EQ(key->size(), 32u);
  for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(key->data()[i], 0xaa);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "operator.key"));

  setenv("COFFRE_RELAY_KEY", (std::string(62, '0') + "zz").c_str(), 1);
  EXPECT_EQ(LoadOrCreateOperatorKey(dir.path()).error().code(), ErrorCode::kInvalidArgument);
  setenv("COFFRE_RELAY_KEY", "00", 1);
  EXPECT_EQ(LoadOrCreateOperatorKey(dir.path()).error().code(), ErrorCode::kInvalidArgument);
}

TEST(ConfigTest, DataDirectoryIsCreatedPrivate) {
  TempDir dir;
  const auto data = dir.path() / "a" / "relay";
  ASSERT_TRUE(EnsureDataDirectory(data));
  struct stat info {};
  ASSERT_EQ(stat(data.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  EXPECT_TRUE(EnsureDataDirectory(data)) << "an existing directory is fine";
}

}  // namespace
}  // namespace coffre::server
