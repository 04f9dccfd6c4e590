#include "coffre/protocol/errors.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>

#include "coffre/protocol/limits.h"
#include "coffre/protocol/validation.h"
#include "protocol/test_util.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;

TEST(ErrorsTest, EveryFailureHasAUniqueShortMessageAndAKnownWireCode) {
  std::set<std::string_view> messages;
  for (const FailureInfo& info : kFailures) {
    const std::string_view message = info.message;
    EXPECT_TRUE(messages.insert(message).second) << "duplicate message: " << message;
    EXPECT_FALSE(message.empty());
    EXPECT_LE(message.size(), kMaxErrorMessage) << message;
    EXPECT_TRUE(v1::ErrorCode_IsValid(info.wire_code)) << message;
    EXPECT_NE(info.wire_code, v1::ERROR_CODE_UNSPECIFIED) << message;
  }
}

TEST(ErrorsTest, FailureIsRecoveredFromTheErrorItProduced) {
  for (const FailureInfo& info : kFailures) {
    Status status = Fail(info.failure);
    ASSERT_FALSE(status.has_value());
    EXPECT_EQ(FailureOf(status.error()), info.failure) << info.message;
    EXPECT_EQ(status.error().code(), info.code);
  }
}

TEST(ErrorsTest, WireErrorCarriesTheTableCodeAndMessage) {
  const v1::Error wire = ToWireError(Fail(Failure::kChainPreviousHashMismatch).error);
  EXPECT_EQ(wire.code(), v1::ERROR_CODE_CONFLICT);
  EXPECT_EQ(wire.message(), InfoOf(Failure::kChainPreviousHashMismatch).message);
  EXPECT_EQ(WireCodeOf(Fail(Failure::kChainSignerNotAdmin).error), v1::ERROR_CODE_CHAIN_REJECTED);
  EXPECT_EQ(WireCodeOf(Fail(Failure::kInvalidTeamId).error), v1::ERROR_CODE_MALFORMED);
  EXPECT_EQ(WireCodeOf(Fail(Failure::kTooManyEnvelopes).error), v1::ERROR_CODE_TOO_LARGE);
}

TEST(ErrorsTest, ErrorsFromOtherModulesMapByCodeWithoutTheirContext) {
  const Error database(ErrorCode::kDatabase, "sqlite: disk I/O error on /var/lib/coffre/x");
  const v1::Error wire = ToWireError(database);
  EXPECT_EQ(wire.code(), v1::ERROR_CODE_INTERNAL);
  EXPECT_EQ(wire.message().find("/var/lib"), std::string::npos);
  EXPECT_FALSE(FailureOf(database).has_value());

  EXPECT_EQ(WireCodeOf(Error(ErrorCode::kNotFound, "x")), v1::ERROR_CODE_NOT_FOUND);
  EXPECT_EQ(WireCodeOf(Error(ErrorCode::kAlreadyExists, "x")), v1::ERROR_CODE_ALREADY_EXISTS);
  EXPECT_EQ(WireCodeOf(Error(ErrorCode::kConflict, "x")), v1::ERROR_CODE_CONFLICT);
  // Same text as a table entry but another code: not mistaken for the protocol failure.
  EXPECT_FALSE(
      FailureOf(Error(ErrorCode::kInternal, InfoOf(Failure::kInvalidTeamId).message)).has_value());
}

TEST(ErrorsTest, ErrorFrameIsAValidRelayFrame) {
  const v1::Frame frame = ErrorFrame(9, Fail(Failure::kInvalidFetchLimit).error);
  Result<v1::Frame> parsed = ParseRelayFrame(testing::Serialize(frame));
  ASSERT_TRUE(parsed.has_value()) << testing::Describe(parsed);
  EXPECT_EQ(parsed->response().id(), 9u);
  EXPECT_EQ(parsed->response().error().code(), v1::ERROR_CODE_MALFORMED);
  // Id 0 is allowed for an error to a request that could not be parsed at all.
  EXPECT_TRUE(
      ParseRelayFrame(testing::Serialize(ErrorFrame(0, Fail(Failure::kFrameUnparsable).error)))
          .has_value());
}

}  // namespace
}  // namespace coffre::protocol
