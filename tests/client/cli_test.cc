// The `coffre` command line: its argument parsers, --since, passphrase sources, exit codes
// and output (client/cli/*.cc other than main.cc), then the built program itself, run with
// bad input. The program is found through COFFRE_CLI_BINARY (tests/CMakeLists.txt).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/errors.h"
#include "cli/output.h"
#include "cli/passphrase.h"
#include "server/temp_dir.h"

namespace coffre::cli {
namespace {

using server::testing::TempDir;

constexpr std::uint64_t kNov28Ms = 1795824000000;  // 2026-11-28T00:00:00Z
constexpr std::uint64_t kMinuteMs = 60 * 1000;
constexpr std::uint64_t kHourMs = 60 * kMinuteMs;
constexpr std::uint64_t kDayMs = 24 * kHourMs;

std::string Text(const crypto::SecretBytes& secret) {
  return std::string(reinterpret_cast<const char*>(secret.data()), secret.size());
}

void WriteFile(const std::filesystem::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

// --- arguments ----------------------------------------------------------------------------

TEST(CliArgsTest, LoginsFollowTheLoginRule) {
  EXPECT_TRUE(IsValidLogin("alice"));
  EXPECT_TRUE(IsValidLogin("jean-pierre.martin_2"));
  EXPECT_TRUE(IsValidLogin(std::string(64, 'a')));
  EXPECT_FALSE(IsValidLogin(""));
  EXPECT_FALSE(IsValidLogin(std::string(65, 'a')));
  EXPECT_FALSE(IsValidLogin("Alice"));
  EXPECT_FALSE(IsValidLogin("al ice"));
  EXPECT_FALSE(IsValidLogin("alice@sdis13"));
  EXPECT_FALSE(IsValidLogin("élise"));
  EXPECT_FALSE(CheckLogin("Bob"));
}

TEST(CliArgsTest, NamesRefuseSlashControlCharactersAndLeadingMarks) {
  EXPECT_TRUE(IsValidName("sdis-operations"));
  EXPECT_TRUE(IsValidName("équipe nord"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(65, 'x')));
  EXPECT_FALSE(IsValidName("a/b"));
  EXPECT_FALSE(IsValidName("@alice"));
  EXPECT_FALSE(IsValidName("-rf"));
  EXPECT_FALSE(IsValidName(" padded"));
  EXPECT_FALSE(IsValidName("padded "));
  EXPECT_FALSE(IsValidName("bell\a"));
  EXPECT_FALSE(IsValidName("esc\x1b[31m"));
}

TEST(CliArgsTest, ParsesTeamSlashChannel) {
  auto ref = ParseChannelRef("sdis-operations/plans");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->team, "sdis-operations");
  EXPECT_EQ(ref->channel, "plans");
}

TEST(CliArgsTest, ChannelRefWithoutExactlyOneSlashOrWithAnEmptyPartIsRefused) {
  for (const char* bad : {"nochannel", "a/b/c", "/plans", "team/", "/", "", "team/@x"}) {
    auto ref = ParseChannelRef(bad);
    ASSERT_FALSE(ref) << bad;
    EXPECT_EQ(ref.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(ref.error().context().find("TEAM/CHANNEL"), std::string_view::npos);
  }
}

TEST(CliArgsTest, ReadTargetIsAChannelOrAtUser) {
  auto user = ParseReadTarget("@bob");
  ASSERT_TRUE(user);
  EXPECT_FALSE(user->channel);
  EXPECT_EQ(user->user, "bob");

  auto channel = ParseReadTarget("sdis-operations/plans");
  ASSERT_TRUE(channel);
  ASSERT_TRUE(channel->channel);
  EXPECT_EQ(channel->channel->channel, "plans");
  EXPECT_TRUE(channel->user.empty());

  EXPECT_FALSE(ParseReadTarget("@"));
  EXPECT_FALSE(ParseReadTarget("@Bob"));
  EXPECT_FALSE(ParseReadTarget("bob"));
  EXPECT_FALSE(ParseReadTarget(""));
}

TEST(CliArgsTest, DeviceIdsAreDecimal32BitNumbers) {
  EXPECT_EQ(ParseDeviceId("1").value(), 1u);
  EXPECT_EQ(ParseDeviceId("4294967295").value(), 4294967295u);
  EXPECT_FALSE(ParseDeviceId("4294967296"));
  EXPECT_FALSE(ParseDeviceId("-1"));
  EXPECT_FALSE(ParseDeviceId("0x10"));
  EXPECT_FALSE(ParseDeviceId(""));
}

TEST(CliArgsTest, VersionsStartAtOne) {
  EXPECT_EQ(ParseVersion("3").value(), 3u);
  EXPECT_FALSE(ParseVersion("0"));
  EXPECT_FALSE(ParseVersion("v2"));
  EXPECT_FALSE(ParseVersion("99999999999999999999"));
}

TEST(CliArgsTest, ShortIdResolvesToTheOnlyMatchingId) {
  const std::vector<std::string> ids = {"a1b2c3d4e5f60011", "a1b2c3d4e5f69922", "ffee00"};
  EXPECT_EQ(ResolveIdPrefix(ids, "a1b2c3d4e5f600").value(), "a1b2c3d4e5f60011");
  EXPECT_EQ(ResolveIdPrefix(ids, "FFEE").value(), "ffee00");
  EXPECT_EQ(ResolveIdPrefix(ids, "ffee00").value(), "ffee00");
  auto ambiguous = ResolveIdPrefix(ids, "a1b2c3d4e5f6");
  ASSERT_FALSE(ambiguous);
  EXPECT_EQ(ambiguous.error().code(), ErrorCode::kInvalidArgument);
  // Unknown or not hex: handed on unchanged, for the library to report.
  EXPECT_EQ(ResolveIdPrefix(ids, "0000").value(), "0000");
  EXPECT_EQ(ResolveIdPrefix(ids, "plan.pdf").value(), "plan.pdf");
}

TEST(CliArgsTest, ProfileFolderFollowsFlagThenEnvironmentThenXdgThenHome) {
  EXPECT_EQ(ResolveProfileDir("/p/flag", "/p/env", "/xdg", "/home/a").value(), "/p/flag");
  EXPECT_EQ(ResolveProfileDir("", "/p/env", "/xdg", "/home/a").value(), "/p/env");
  EXPECT_EQ(ResolveProfileDir("", "", "/xdg", "/home/a").value(), "/xdg/coffre");
  EXPECT_EQ(ResolveProfileDir("", nullptr, "relative", "/home/a").value(),
            "/home/a/.local/share/coffre");
  EXPECT_EQ(ResolveProfileDir("", nullptr, nullptr, "/home/a").value(),
            "/home/a/.local/share/coffre");
  EXPECT_FALSE(ResolveProfileDir("", nullptr, nullptr, nullptr));
}

TEST(CliArgsTest, DocumentNamesBecomeSafeFileNames) {
  EXPECT_EQ(SafeFileName("plan-secteur-nord.pdf"), "plan-secteur-nord.pdf");
  EXPECT_EQ(SafeFileName("../../etc/passwd"), "passwd");
  EXPECT_EQ(SafeFileName("/abs/name"), "name");
  EXPECT_EQ(SafeFileName("a\nb"), "a_b");
  EXPECT_EQ(SafeFileName(".."), "document");
  EXPECT_EQ(SafeFileName("dir/"), "document");
  EXPECT_EQ(SafeFileName(""), "document");
  EXPECT_EQ(SafeFileName(".bashrc"), "_bashrc");
  EXPECT_EQ(SafeFileName("notes/.profile"), "_profile");
  EXPECT_EQ(SafeFileName(std::string(300, 'a')).size(), 200u);
  // Cut before a two-byte character that would straddle the limit.
  EXPECT_EQ(SafeFileName(std::string(199, 'a') + "\xc3\xa9").size(), 199u);
}

// --- --since ------------------------------------------------------------------------------

TEST(CliSinceTest, DatesAreUtcMidnight) {
  EXPECT_EQ(ParseSince("2026-11-28", 0).value(), kNov28Ms);
  EXPECT_EQ(ParseSince("2024-02-29", 0).value(), 1709164800000u);
  EXPECT_EQ(ParseSince("1970-01-01", 0).value(), 0u);
}

TEST(CliSinceTest, DateTimesWithOptionalSecondsZoneAndOffset) {
  const std::uint64_t two_pm = kNov28Ms + 14 * kHourMs;
  EXPECT_EQ(ParseSince("2026-11-28T14:00", 0).value(), two_pm);
  EXPECT_EQ(ParseSince("2026-11-28T14:00Z", 0).value(), two_pm);
  EXPECT_EQ(ParseSince("2026-11-28 14:00", 0).value(), two_pm);
  EXPECT_EQ(ParseSince("2026-11-28T14:00:05Z", 0).value(), two_pm + 5000);
  EXPECT_EQ(ParseSince("2026-11-28T15:00+01:00", 0).value(), two_pm);
  EXPECT_EQ(ParseSince("2026-11-28T09:00-05:00", 0).value(), two_pm);
}

TEST(CliSinceTest, DurationsCountBackFromNow) {
  const std::uint64_t now = kNov28Ms;
  EXPECT_EQ(ParseSince("30m", now).value(), now - 30 * kMinuteMs);
  EXPECT_EQ(ParseSince("2h", now).value(), now - 2 * kHourMs);
  EXPECT_EQ(ParseSince("7d", now).value(), now - 7 * kDayMs);
  EXPECT_EQ(ParseSince("1w", now).value(), now - 7 * kDayMs);
  EXPECT_EQ(ParseSince("45s", now).value(), now - 45000);
  EXPECT_EQ(ParseSince("0m", now).value(), now);
}

TEST(CliSinceTest, MalformedOrImpossibleInputIsRefused) {
  for (const char* bad : {"",
                          "yesterday",
                          "7",
                          "7x",
                          "-5m",
                          "m",
                          "2h30m",
                          "1e3d",
                          "2026-11",
                          "2026-11-28T",
                          "2026-11-28T14",
                          "2026-11-28T14:0",
                          "2026-13-01",
                          "2026-02-30",
                          "2026-11-28T24:00",
                          "2026-11-28T14:60",
                          "2026-11-28T14:00:60",
                          "2026-11-28Z",
                          "2026-11-28T14:00+1",
                          "2026-11-28T14:00Zjunk",
                          "1969-12-31",
                          "26-11-28",
                          "2026/11/28",
                          "99999999999999999999d"}) {
    auto since = ParseSince(bad, kNov28Ms);
    ASSERT_FALSE(since) << bad;
    EXPECT_EQ(since.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(CliSinceTest, DurationReachingBefore1970IsRefused) {
  EXPECT_FALSE(ParseSince("2d", kDayMs));
  EXPECT_EQ(ParseSince("1d", kDayMs).value(), 0u);
}

// --- passphrase ---------------------------------------------------------------------------

TEST(CliPassphraseTest, FileGivesItsFirstLineWithoutTheLineEnding) {
  TempDir dir;
  WriteFile(dir.path() / "lf", "correct horse battery staple\nsecond line\n");
  WriteFile(dir.path() / "crlf", "correct horse\r\n");
  WriteFile(dir.path() / "bare", "no newline at all");
  EXPECT_EQ(Text(ReadPassphraseFile(dir.path() / "lf").value()), "correct horse battery staple");
  EXPECT_EQ(Text(ReadPassphraseFile(dir.path() / "crlf").value()), "correct horse");
  EXPECT_EQ(Text(ReadPassphraseFile(dir.path() / "bare").value()), "no newline at all");
}

TEST(CliPassphraseTest, FileWithEmptyFirstLineIsRefused) {
  TempDir dir;
  WriteFile(dir.path() / "empty", "");
  WriteFile(dir.path() / "blank", "\nsecret on the second line\n");
  WriteFile(dir.path() / "cr", "\r\n");
  for (const char* name : {"empty", "blank", "cr"}) {
    auto passphrase = ReadPassphraseFile(dir.path() / name);
    ASSERT_FALSE(passphrase) << name;
    EXPECT_EQ(passphrase.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(CliPassphraseTest, MissingFileIsAnIoError) {
  TempDir dir;
  auto passphrase = ReadPassphraseFile(dir.path() / "absent");
  ASSERT_FALSE(passphrase);
  EXPECT_EQ(passphrase.error().code(), ErrorCode::kIo);
}

TEST(CliPassphraseTest, OverlongFirstLineIsRefused) {
  TempDir dir;
  WriteFile(dir.path() / "fits", std::string(kMaxPassphraseLength, 'p') + "\n");
  WriteFile(dir.path() / "long", std::string(kMaxPassphraseLength + 1, 'p') + "\n");
  WriteFile(dir.path() / "huge", std::string(100000, 'p'));
  EXPECT_EQ(ReadPassphraseFile(dir.path() / "fits").value().size(), kMaxPassphraseLength);
  EXPECT_FALSE(ReadPassphraseFile(dir.path() / "long"));
  EXPECT_FALSE(ReadPassphraseFile(dir.path() / "huge"));
}

TEST(CliPassphraseTest, EnvironmentVariableIsTakenAndRemoved) {
  ::setenv(kPassphraseEnvironmentVariable, "from the environment", 1);
  auto taken = TakePassphraseFromEnvironment();
  ASSERT_TRUE(taken);
  EXPECT_EQ(Text(*taken), "from the environment");
  EXPECT_EQ(std::getenv(kPassphraseEnvironmentVariable), nullptr);
  EXPECT_FALSE(TakePassphraseFromEnvironment());
}

TEST(CliPassphraseTest, FileWinsOverEnvironment) {
  TempDir dir;
  WriteFile(dir.path() / "pass", "from the file\n");
  PassphraseSources sources;
  sources.file = dir.path() / "pass";
  const std::string environment = "from the environment";
  sources.environment = crypto::SecretBytes::CopyOf(
      {reinterpret_cast<const std::uint8_t*>(environment.data()), environment.size()});
  EXPECT_EQ(Text(ObtainPassphrase(std::move(sources)).value()), "from the file");
}

TEST(CliPassphraseTest, EnvironmentIsUsedWithoutAFileAndMustNotBeEmpty) {
  const std::string environment = "from the environment";
  PassphraseSources sources;
  sources.environment = crypto::SecretBytes::CopyOf(
      {reinterpret_cast<const std::uint8_t*>(environment.data()), environment.size()});
  EXPECT_EQ(Text(ObtainPassphrase(std::move(sources)).value()), "from the environment");

  PassphraseSources empty;
  empty.environment = crypto::SecretBytes();
  auto refused = ObtainPassphrase(std::move(empty));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
}

TEST(CliPassphraseTest, NoSourceAndNoTerminalIsRefused) {
  if (::isatty(STDIN_FILENO) != 0) GTEST_SKIP() << "stdin is a terminal: it would prompt";
  auto refused = ObtainPassphrase(PassphraseSources{});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
}

// --- exit codes and error lines -----------------------------------------------------------

TEST(CliExitCodeTest, MapsLibraryErrorsToExitCodes) {
  EXPECT_EQ(ExitCodeFor(ErrorCode::kWrongPassphrase), kExitWrongPassphrase);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kIo), kExitRelayUnreachable);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kNotFound), kExitFailed);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kInvalidArgument), kExitFailed);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kAuthenticationFailed), kExitFailed);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kUntrustedIdentity), kExitFailed);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kUnsupported), kExitFailed);
  EXPECT_EQ(kExitUsage, 2);
  EXPECT_EQ(kExitWrongPassphrase, 3);
  EXPECT_EQ(kExitRelayUnreachable, 4);
}

TEST(CliExitCodeTest, ErrorLineIsOneLineWithWhatReasonAndArgument) {
  EXPECT_EQ(ErrorLine("post", "expected TEAM/CHANNEL", "nochannel"),
            "coffre: post: expected TEAM/CHANNEL: nochannel");
  EXPECT_EQ(ErrorLine("sync", "could not connect to the relay"),
            "coffre: sync: could not connect to the relay");
  const std::string line = ErrorLine("read", "bad", "a\nb\x1b[2Jc\r");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
}

// --- output -------------------------------------------------------------------------------

class CliOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    if (tz != nullptr) saved_tz_ = tz;
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  void TearDown() override {
    if (saved_tz_) {
      ::setenv("TZ", saved_tz_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

  static client::PostView MakePost(std::string id, std::string parent, std::string text) {
    client::PostView post;
    post.post_id = std::move(id);
    post.parent_id = std::move(parent);
    post.author = "alice";
    post.author_device = 1;
    post.sent_ms = kNov28Ms + 14 * kHourMs + 3 * kMinuteMs;
    post.key_generation = 2;
    post.text = std::move(text);
    return post;
  }

 private:
  std::optional<std::string> saved_tz_;
};

TEST_F(CliOutputTest, TimesAndSizes) {
  EXPECT_EQ(FormatLocalTime(kNov28Ms + 14 * kHourMs + 3 * kMinuteMs), "2026-11-28 14:03");
  EXPECT_EQ(FormatUtcTime(kNov28Ms + 5123), "2026-11-28T00:00:05.123Z");
  EXPECT_EQ(FormatSize(812), "812 B");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(20000000), "19.1 MiB");
  EXPECT_EQ(ShortId("0123456789abcdef0123"), "0123456789ab");
  EXPECT_EQ(ShortId("abc"), "abc");
}

TEST_F(CliOutputTest, RepliesAreIndentedUnderTheirParent) {
  const std::vector<client::PostView> posts = {
      MakePost("aaaaaaaaaaaa0001", "", "first"),
      MakePost("bbbbbbbbbbbb0002", "", "second"),
      MakePost("cccccccccccc0003", "aaaaaaaaaaaa0001", "reply to first"),
      MakePost("dddddddddddd0004", "ffffffffffff9999", "reply to a post not shown"),
  };
  EXPECT_EQ(FormatPosts(posts),
            "[aaaaaaaaaaaa] 2026-11-28 14:03 alice: first\n"
            "    [cccccccccccc] 2026-11-28 14:03 alice: reply to first\n"
            "[bbbbbbbbbbbb] 2026-11-28 14:03 alice: second\n"
            "[dddddddddddd] 2026-11-28 14:03 alice (reply to ffffffffffff): reply to a post "
            "not shown\n");
}

TEST_F(CliOutputTest, PostTextCannotDriveTheTerminal) {
  const std::vector<client::PostView> posts = {
      MakePost("aaaaaaaaaaaa0001", "",
               "line one\nline two \x1b]0;pwned\x07 \xc2\x9b"
               "31m")};
  const std::string out = FormatPosts(posts);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('\x07'), std::string::npos);
  EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos);
  // A line break inside a post is kept and indented under it.
  EXPECT_NE(out.find("line one\n    line two"), std::string::npos);
}

TEST_F(CliOutputTest, RepliesInACycleAreStillShownOnce) {
  const std::vector<client::PostView> posts = {
      MakePost("aaaaaaaaaaaa0001", "bbbbbbbbbbbb0002", "a"),
      MakePost("bbbbbbbbbbbb0002", "aaaaaaaaaaaa0001", "b"),
  };
  const std::string out = FormatPosts(posts);
  EXPECT_NE(out.find("alice (reply to bbbbbbbbbbbb): a"), std::string::npos);
  EXPECT_NE(out.find("alice (reply to aaaaaaaaaaaa): b"), std::string::npos);
}

TEST_F(CliOutputTest, JsonKeepsFullIdsAndRawText) {
  const client::PostView post = MakePost("aaaaaaaaaaaa0001", "", "a \"quoted\"\ttext");
  const nlohmann::json json = ToJson(std::vector<client::PostView>{post});
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["post_id"], "aaaaaaaaaaaa0001");
  EXPECT_TRUE(json[0]["parent_id"].is_null());
  EXPECT_EQ(json[0]["text"], "a \"quoted\"\ttext");
  EXPECT_EQ(json[0]["sent_ms"], post.sent_ms);
  EXPECT_EQ(json[0]["sent"], "2026-11-28T14:03:00.000Z");
  EXPECT_EQ(nlohmann::json::parse(DumpJson(json)), json);
}

TEST_F(CliOutputTest, JsonOfInvalidUtf8DoesNotThrow) {
  const client::PostView post = MakePost("aaaaaaaaaaaa0001", "", "broken \xff\xfe bytes");
  std::string dumped;
  EXPECT_NO_THROW(dumped = DumpJson(ToJson(post)));
  EXPECT_TRUE(nlohmann::json::accept(dumped));
}

TEST_F(CliOutputTest, TeamShowsMembersRolesAndChain) {
  client::TeamView team;
  team.name = "sdis-operations";
  team.team_id = "0123456789abcdef";
  team.my_role = client::Role::kAdmin;
  team.members = {{"alice", client::Role::kAdmin, {1, 2}}, {"bob", client::Role::kMember, {1}}};
  team.chain_sequence = 5;
  team.chain_head = "feedface";
  team.key_generation = 3;
  team.channels = {"plans"};
  const std::string out = FormatTeam(team);
  EXPECT_NE(out.find("team sdis-operations\n"), std::string::npos);
  EXPECT_NE(out.find("key generation: 3"), std::string::npos);
  EXPECT_NE(out.find("head feedface"), std::string::npos);
  EXPECT_NE(out.find("alice  admin    devices 1, 2\n"), std::string::npos);
  EXPECT_NE(out.find("bob    member   device 1\n"), std::string::npos);
  const nlohmann::json json = ToJson(team);
  EXPECT_EQ(json["members"][0]["role"], "admin");
  EXPECT_EQ(json["members"][0]["device_ids"], nlohmann::json::array({1, 2}));
}

TEST_F(CliOutputTest, SafetyNumberAsksForConfirmationAfterAKeyChange) {
  client::SafetyNumberView view;
  view.user_id = "bob";
  view.safety_number = "12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890";
  view.key_changed = true;
  const std::string out = FormatSafetyNumber(view);
  EXPECT_NE(out.find("    12345 67890 12345 67890\n"), std::string::npos);
  EXPECT_NE(out.find("WARNING"), std::string::npos);
  EXPECT_NE(out.find("coffre verify bob --confirm"), std::string::npos);
  view.confirmed = true;
  EXPECT_EQ(FormatSafetyNumber(view).find("WARNING"), std::string::npos);
}

TEST_F(CliOutputTest, ProgressBarRendersAndStaysSilentWhenDisabled) {
  EXPECT_EQ(ProgressBar::Render("upload", 512, 1024, 10),
            "upload [#####     ]  50%  512 B / 1.0 KiB");
  EXPECT_EQ(ProgressBar::Render("upload", 0, 0, 4), "upload [####] 100%  0 B / 0 B");
  ::testing::internal::CaptureStderr();
  {
    ProgressBar bar("upload", /*enabled=*/false);
    bar.Update(1, 2);
    bar.Update(2, 2);
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

// --- the program ----------------------------------------------------------------------------

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::size_t CountLines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Runs the `coffre` program with `args`, stdin from /dev/null, a clean environment (HOME in
// `dir`, PATH, plus `env`), and waits for it (at most 60 s).
RunResult RunCoffre(const TempDir& dir, const std::vector<std::string>& args,
                    const std::vector<std::string>& env = {}) {
  RunResult result;
  const std::filesystem::path out_path = dir.path() / "stdout";
  const std::filesystem::path err_path = dir.path() / "stderr";
  std::vector<std::string> argv_strings = {COFFRE_CLI_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin", "HOME=" + dir.path().string(),
                                          "LC_ALL=C"};
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> argv;
  for (auto& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (pid < 0) return result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "coffre did not finish within 60 s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  return result;
}

// A 127.0.0.1 port nothing listens on: bound by the kernel's choice, then closed.
std::uint16_t ClosedLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A usage error: exit 2, nothing on stdout, one "coffre: ..." line on stderr.
void ExpectUsageError(const RunResult& result, std::string_view mentions = {}) {
  EXPECT_EQ(result.exit_code, kExitUsage) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(CountLines(result.err), 1u) << result.err;
  EXPECT_EQ(result.err.rfind("coffre: ", 0), 0u) << result.err;
  if (!mentions.empty()) {
    EXPECT_NE(result.err.find(mentions), std::string::npos) << result.err;
  }
}

TEST(CliProgramTest, UnknownCommandIsAUsageError) {
  TempDir dir;
  ExpectUsageError(RunCoffre(dir, {"frobnicate"}), "frobnicate");
  ExpectUsageError(RunCoffre(dir, {"team", "frobnicate"}));
  ExpectUsageError(RunCoffre(dir, {"post", "team/channel", "text", "--frobnicate"}));
}

TEST(CliProgramTest, NoCommandIsAUsageError) {
  TempDir dir;
  ExpectUsageError(RunCoffre(dir, {}));
  ExpectUsageError(RunCoffre(dir, {"team"}));
  ExpectUsageError(RunCoffre(dir, {"doc"}));
}

TEST(CliProgramTest, MissingArgumentsAreUsageErrors) {
  TempDir dir;
  ExpectUsageError(RunCoffre(dir, {"post"}));
  ExpectUsageError(RunCoffre(dir, {"post", "team/channel"}), "TEXT");
  ExpectUsageError(RunCoffre(dir, {"team", "add", "sdis-operations"}), "USER");
  ExpectUsageError(RunCoffre(dir, {"doc", "get", "sdis-operations"}), "DOC");
  ExpectUsageError(RunCoffre(dir, {"init", "--user", "alice"}), "--relay");
  ExpectUsageError(RunCoffre(dir, {"read", "sdis-operations/plans", "--since"}));
}

TEST(CliProgramTest, HelpOfEveryCommandExitsZero) {
  TempDir dir;
  const std::vector<std::vector<std::string>> commands = {
      {},
      {"init"},
      {"team"},
      {"team", "create"},
      {"team", "add"},
      {"team", "remove"},
      {"team", "role"},
      {"team", "rotate"},
      {"team", "show"},
      {"team", "list"},
      {"channel"},
      {"channel", "create"},
      {"post"},
      {"read"},
      {"send"},
      {"doc"},
      {"doc", "put"},
      {"doc", "get"},
      {"doc", "list"},
      {"doc", "versions"},
      {"sync"},
      {"watch"},
      {"device"},
      {"device", "list"},
      {"device", "link"},
      {"device", "revoke"},
      {"verify"},
      {"audit"},
      {"audit", "show"},
      {"audit", "verify"},
      {"audit", "export"},
      {"audit", "verify-bundle"},
      {"audit", "key"},
      {"team", "auditor-key"},
  };
  for (auto args : commands) {
    std::string name = "coffre";
    for (const auto& word : args) {
      name += ' ';
      name += word;
    }
    args.push_back("--help");
    const RunResult result = RunCoffre(dir, args);
    EXPECT_EQ(result.exit_code, 0) << name << ": " << result.err;
    EXPECT_NE(result.out.find("Usage"), std::string::npos) << name;
    EXPECT_EQ(result.err, "") << name;
  }
}

TEST(CliProgramTest, VersionExitsZero) {
  TempDir dir;
  const RunResult result = RunCoffre(dir, {"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_FALSE(result.out.empty());
}

TEST(CliProgramTest, PostWithoutChannelIsAUsageErrorNamingTheArgument) {
  TempDir dir;
  const RunResult result = RunCoffre(dir, {"post", "nochannel", "text"});
  ExpectUsageError(result, "nochannel");
  EXPECT_NE(result.err.find("TEAM/CHANNEL"), std::string::npos) << result.err;
}

TEST(CliProgramTest, MalformedSinceIsAUsageErrorNamingTheArgument) {
  TempDir dir;
  ExpectUsageError(RunCoffre(dir, {"read", "sdis-operations/plans", "--since", "yesterday"}),
                   "yesterday");
  ExpectUsageError(RunCoffre(dir, {"read", "sdis-operations/plans", "--since", "2026-02-30"}),
                   "2026-02-30");
}

TEST(CliProgramTest, MalformedArgumentsAreUsageErrorsBeforeAnyPassphrase) {
  TempDir dir;
  // No passphrase source at all: the argument is refused first.
  ExpectUsageError(RunCoffre(dir, {"send", "Bob", "hello"}), "Bob");
  ExpectUsageError(RunCoffre(dir, {"read", "bob"}), "bob");
  ExpectUsageError(RunCoffre(dir, {"read", "@bob", "--thread", "abc"}), "--thread");
  ExpectUsageError(RunCoffre(dir, {"team", "add", "t", "bob", "--role", "boss"}), "boss");
  ExpectUsageError(RunCoffre(dir, {"device", "revoke", "phone"}), "phone");
  ExpectUsageError(RunCoffre(dir, {"doc", "get", "t", "abc", "--version", "0"}));
  ExpectUsageError(RunCoffre(dir, {"init", "--relay", "http://127.0.0.1:1", "--enrol", "x",
                                   "--user", "alice", "--name", "Alice"}),
                   "http://127.0.0.1:1");
  ExpectUsageError(RunCoffre(dir, {"init", "--relay", "https://127.0.0.1:1", "--relay-fingerprint",
                                   "abcd", "--enrol", "x", "--user", "alice", "--name", "Alice"}),
                   "abcd");
}

TEST(CliProgramTest, WithoutAPassphraseSourceItSaysHowToGiveOne) {
  TempDir dir;
  ExpectUsageError(RunCoffre(dir, {"team", "list"}), "COFFRE_PASSPHRASE");
  ExpectUsageError(
      RunCoffre(dir, {"--passphrase-file", (dir.path() / "absent").string(), "team", "list"}),
      "absent");
  ExpectUsageError(RunCoffre(dir, {"team", "list"}, {"COFFRE_PASSPHRASE="}), "empty");
}

TEST(CliProgramTest, LinkArgumentsAreCheckedBeforeAnyPassphrase) {
  TempDir dir;
  const std::string relay = "https://127.0.0.1:1";
  ExpectUsageError(RunCoffre(dir, {"init", "--link", "ABCD-EFGH-JKMN", "--user", "alice"}),
                   "--relay");
  ExpectUsageError(RunCoffre(dir, {"init", "--relay", relay, "--link", "ABCD-EFGH-JKMN"}),
                   "--user");
  ExpectUsageError(RunCoffre(dir, {"init", "--relay", relay, "--user", "alice", "--link",
                                   "ABCD-EFGH-JKMN", "--enrol", "x"}),
                   "--enrol");
  ExpectUsageError(RunCoffre(dir, {"init", "--relay", relay, "--user", "alice", "--link",
                                   "ABCD-EFGH-JKMN", "--name", "Alice"}),
                   "--name");
  // A code that cannot be one is refused without being echoed.
  const RunResult bad = RunCoffre(dir, {"init", "--relay", relay, "--user", "alice", "--link",
                                        "ABCD-EFGH-JKMU"});
  ExpectUsageError(bad, "link code");
  EXPECT_EQ(bad.err.find("ABCD-EFGH-JKMU"), std::string::npos) << bad.err;
  // `device link` needs a profile like every other command.
  ExpectUsageError(RunCoffre(dir, {"device", "link"}), "COFFRE_PASSPHRASE");
}

TEST(CliProgramTest, GlobalOptionsMayFollowTheCommand) {
  TempDir dir;
  const std::filesystem::path profile = dir.path() / "no-profile-here";
  const RunResult result =
      RunCoffre(dir, {"team", "list", "--profile", profile.string()}, {"COFFRE_PASSPHRASE=x"});
  // Parsed: the failure comes from opening the (missing) profile, not from the command line.
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.exit_code, kExitUsage) << result.err;
  EXPECT_EQ(CountLines(result.err), 1u) << result.err;
  EXPECT_NE(result.err.find(profile.string()), std::string::npos) << result.err;
}

TEST(CliProgramTest, InitAgainstAnUnreachableRelayExitsFourWithOneLine) {
  TempDir dir;
  std::string relay = "https://127.0.0.1:";
  relay += std::to_string(ClosedLoopbackPort());
  const std::filesystem::path profile = dir.path() / "alice";
  const RunResult result =
      RunCoffre(dir,
                {"--profile", profile.string(), "init", "--relay", relay, "--enrol",
                 "ABCD-EFGH-IJKL", "--user", "alice", "--name", "Alice Martin"},
                {"COFFRE_PASSPHRASE=correct horse battery staple"});
  EXPECT_EQ(result.exit_code, kExitRelayUnreachable) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(CountLines(result.err), 1u) << result.err;
  EXPECT_EQ(result.err.rfind("coffre: init: ", 0), 0u) << result.err;
  // Neither the passphrase nor the enrolment code is ever echoed.
  EXPECT_EQ(result.err.find("correct horse"), std::string::npos);
  EXPECT_EQ(result.err.find("ABCD-EFGH-IJKL"), std::string::npos);
  // Nothing is left behind on failure.
  EXPECT_TRUE(!std::filesystem::exists(profile) || std::filesystem::is_empty(profile));
}

}  // namespace
}  // namespace coffre::cli
