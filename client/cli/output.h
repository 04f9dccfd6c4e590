// What the `coffre` program prints: plain lines for people, one JSON document with
// --json, and a progress bar on stderr for long transfers.
//
// Plain output shows times in local time ("2026-11-28 15:03") and ids shortened to their
// first 12 hex digits (commands accept such a prefix back); every piece of text that
// comes from someone else goes through SanitizeForTerminal. JSON output keeps full ids,
// times as Unix milliseconds plus a UTC ISO-8601 string, and the text as it is.
#ifndef COFFRE_CLIENT_CLI_OUTPUT_H_
#define COFFRE_CLIENT_CLI_OUTPUT_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/client/audit_bundle.h"
#include "coffre/client/client.h"

namespace coffre::cli {

inline constexpr std::size_t kShortIdLength = 12;

// "2026-11-28 15:03" in the local time zone.
std::string FormatLocalTime(std::uint64_t unix_ms);
// "2026-11-28T14:03:00.123Z".
std::string FormatUtcTime(std::uint64_t unix_ms);
// The first kShortIdLength characters of `id`.
std::string ShortId(std::string_view id);
// "812 B", "1.5 KiB", "19.1 MiB", "2.0 GiB".
std::string FormatSize(std::uint64_t bytes);

// Plain output: each returns whole lines, each ending with '\n' (empty for an empty list,
// except where a sentence says so).
std::string FormatTeam(const client::TeamView& team);
std::string FormatTeamList(const std::vector<client::TeamView>& teams);
// Top-level posts in the order given, each followed by its replies (indented); a reply
// whose parent is not in the list is shown at top level with "(reply to ID)".
std::string FormatPosts(const std::vector<client::PostView>& posts);
std::string FormatDirectMessages(const std::vector<client::DirectMessageView>& messages);
std::string FormatDocuments(const std::vector<client::DocumentView>& documents);
std::string FormatDevices(const std::vector<client::DeviceView>& devices);
// One line per audit entry: index, UTC time, event, result, actor, device, team, object,
// node/jurisdiction, details state.
std::string FormatAuditEntries(const std::vector<client::AuditEntryView>& entries);
std::string FormatAuditVerify(const client::AuditVerifyReport& report);
std::string FormatAuditBundleReport(const client::AuditBundleReport& report);
std::string FormatLegalHold(const client::LegalHoldView& hold);
std::string FormatSafetyNumber(const client::SafetyNumberView& view);
std::string FormatSyncReport(const client::SyncReport& report);

// JSON output.
nlohmann::json ToJson(const client::TeamView& team);
nlohmann::json ToJson(const client::PostView& post);
nlohmann::json ToJson(const client::DirectMessageView& message);
nlohmann::json ToJson(const client::DocumentView& document);
nlohmann::json ToJson(const client::DeviceView& device);
nlohmann::json ToJson(const client::AuditEntryView& entry);
nlohmann::json ToJson(const client::AuditVerifyReport& report);
nlohmann::json ToJson(const client::AuditBundleReport& report);
nlohmann::json ToJson(const client::SafetyNumberView& view);
nlohmann::json ToJson(const client::SyncReport& report);
template <typename T>
nlohmann::json ToJson(const std::vector<T>& items) {
  nlohmann::json array = nlohmann::json::array();
  for (const T& item : items) array.push_back(ToJson(item));
  return array;
}
// Pretty-printed, invalid UTF-8 replaced by U+FFFD rather than failing, newline-terminated.
std::string DumpJson(const nlohmann::json& document);

// A one-line progress bar redrawn on stderr, for doc put and doc get. Disabled (it prints
// nothing at all) unless `enabled`; the caller passes isatty(STDERR_FILENO). Update may be
// called from several threads at once; redraws are limited to about ten per second.
class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  ~ProgressBar();  // Finish()
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Update(std::uint64_t done, std::uint64_t total);
  // Ends the bar's line, once, if anything was drawn.
  void Finish();

  // The bar's text for `done` of `total` at `width` cells, without '\r'.
  static std::string Render(std::string_view label, std::uint64_t done, std::uint64_t total,
                            std::size_t width);

 private:
  std::mutex mutex_;
  const std::string label_;
  const bool enabled_;
  bool drawn_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace coffre::cli

#endif  // COFFRE_CLIENT_CLI_OUTPUT_H_
