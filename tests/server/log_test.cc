#include "log.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

namespace coffre::server {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetLogSink({});
    SetLogLevel(LogLevel::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, OneJsonObjectPerLineWithTimeLevelEventAndFields) {
  Log(LogLevel::kInfo, "connection_open",
      {{"connection", 42u}, {"ok", true}, {"ratio", 0.5}, {"delta", -3}, {"kind", "websocket"}});
  ASSERT_EQ(lines_.size(), 1u);
  const std::regex expected(
      R"re(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"info","event":"connection_open","connection":42,"ok":true,"ratio":0.5,"delta":-3,"kind":"websocket"\})re");
  EXPECT_TRUE(std::regex_match(lines_[0], expected)) << lines_[0];
}

TEST_F(LogTest, StringsAreEscaped) {
  Log(LogLevel::kWarn, "e", {{"what", std::string("a\"b\\c\nd\x01")}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find(R"("what":"a\"b\\c\nd\u0001")"), std::string::npos) << lines_[0];
}

TEST_F(LogTest, LinesBelowTheLevelAreDropped) {
  SetLogLevel(LogLevel::kWarn);
  Log(LogLevel::kInfo, "hidden");
  Log(LogLevel::kDebug, "hidden");
  Log(LogLevel::kError, "shown");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("\"event\":\"shown\""), std::string::npos);
}

TEST(LogLevelTest, ParsesNames) {
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("error"), LogLevel::kError);
  EXPECT_FALSE(ParseLogLevel("verbose"));
  EXPECT_EQ(LogLevelName(LogLevel::kWarn), "warn");
}

}  // namespace
}  // namespace coffre::server
