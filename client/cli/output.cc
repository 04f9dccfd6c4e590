#include "cli/output.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "cli/errors.h"

namespace coffre::cli {
namespace {

constexpr std::size_t kMaxReplyDepth = 4;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr std::size_t kBarCells = 30;

std::string Padded(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

// `text` with every line after the first indented by `indent` spaces, control characters
// made harmless; line breaks inside a post are kept.
std::string IndentedText(std::string_view text, std::size_t indent) {
  const std::string clean = SanitizeForTerminal(text, /*keep_newlines=*/true);
  std::string out;
  out.reserve(clean.size());
  for (const char c : clean) {
    out.push_back(c);
    if (c == '\n') out.append(indent, ' ');
  }
  return out;
}

void AppendPost(std::string& out, const client::PostView& post, std::size_t depth,
                bool orphan_reply) {
  const std::size_t indent = depth * 4;
  out.append(indent, ' ');
  out += '[';
  out += ShortId(post.post_id);
  out += "] ";
  out += FormatLocalTime(post.sent_ms);
  out += ' ';
  out += SanitizeForTerminal(post.author);
  if (orphan_reply) {
    out += " (reply to ";
    out += ShortId(post.parent_id);
    out += ')';
  }
  out += ": ";
  out += IndentedText(post.text, indent + 4);
  out += '\n';
}

void AppendThread(std::string& out, const std::vector<client::PostView>& posts,
                  const std::multimap<std::string, std::size_t>& replies, std::size_t index,
                  std::size_t depth, std::set<std::size_t>& shown) {
  if (!shown.insert(index).second) return;
  AppendPost(out, posts[index], std::min(depth, kMaxReplyDepth), false);
  const auto [begin, end] = replies.equal_range(posts[index].post_id);
  for (auto it = begin; it != end; ++it) {
    AppendThread(out, posts, replies, it->second, depth + 1, shown);
  }
}

std::string JoinNumbers(const std::vector<std::uint32_t>& numbers) {
  std::string out;
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(numbers[i]);
  }
  return out;
}

std::string Plural(std::uint64_t count, std::string_view one, std::string_view many) {
  std::string out = std::to_string(count);
  out += ' ';
  out += count == 1 ? one : many;
  return out;
}

nlohmann::json NullIfEmpty(const std::string& text) {
  return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
}

}  // namespace

std::string FormatLocalTime(std::uint64_t unix_ms) {
  const auto seconds = static_cast<time_t>(unix_ms / 1000);
  struct tm local {};
  if (localtime_r(&seconds, &local) == nullptr) return "(no time)";
  char buffer[32];
  const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &local);
  return std::string(buffer, length);
}

std::string FormatUtcTime(std::uint64_t unix_ms) {
  const auto seconds = static_cast<time_t>(unix_ms / 1000);
  struct tm utc {};
  if (gmtime_r(&seconds, &utc) == nullptr) return "";
  char buffer[40];
  const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03uZ", static_cast<unsigned>(unix_ms % 1000));
  std::string out(buffer, length);
  out += millis;
  return out;
}

std::string ShortId(std::string_view id) {
  return SanitizeForTerminal(id.substr(0, std::min(id.size(), kShortIdLength)));
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f %s", value, kUnits[unit]);
  return buffer;
}

std::string FormatTeam(const client::TeamView& team) {
  std::string out = "team ";
  out += SanitizeForTerminal(team.name);
  out += "\n  id:             ";
  out += SanitizeForTerminal(team.team_id);
  out += "\n  my role:        ";
  out += client::RoleName(team.my_role);
  out += "\n  key generation: ";
  out += std::to_string(team.key_generation);
  out += "\n  chain:          statement ";
  out += std::to_string(team.chain_sequence);
  out += ", head ";
  out += SanitizeForTerminal(team.chain_head);
  out += "\n  channels:       ";
  if (team.channels.empty()) out += "(none)";
  for (std::size_t i = 0; i < team.channels.size(); ++i) {
    if (i > 0) out += ", ";
    out += SanitizeForTerminal(team.channels[i]);
  }
  out += "\n  members (";
  out += std::to_string(team.members.size());
  out += "):\n";
  std::size_t width = 0;
  for (const auto& member : team.members) width = std::max(width, member.user_id.size());
  for (const auto& member : team.members) {
    out += "    ";
    out += Padded(SanitizeForTerminal(member.user_id), width);
    out += "  ";
    out += Padded(std::string(client::RoleName(member.role)), 7);
    out += "  ";
    if (member.device_ids.empty()) {
      out += "no device";
    } else {
      out += member.device_ids.size() == 1 ? "device " : "devices ";
      out += JoinNumbers(member.device_ids);
    }
    out += '\n';
  }
  return out;
}

std::string FormatTeamList(const std::vector<client::TeamView>& teams) {
  std::size_t width = 0;
  for (const auto& team : teams) width = std::max(width, team.name.size());
  std::string out;
  for (const auto& team : teams) {
    out += Padded(SanitizeForTerminal(team.name), width);
    out += "  ";
    out += Padded(std::string(client::RoleName(team.my_role)), 7);
    out += "  ";
    out += Plural(team.members.size(), "member", "members");
    out += ", ";
    out += Plural(team.channels.size(), "channel", "channels");
    out += ", key generation ";
    out += std::to_string(team.key_generation);
    out += '\n';
  }
  return out;
}

std::string FormatPosts(const std::vector<client::PostView>& posts) {
  std::set<std::string> ids;
  for (const auto& post : posts) ids.insert(post.post_id);
  std::multimap<std::string, std::size_t> replies;
  for (std::size_t i = 0; i < posts.size(); ++i) {
    const auto& parent = posts[i].parent_id;
    if (!parent.empty() && parent != posts[i].post_id && ids.count(parent) != 0) {
      replies.emplace(parent, i);
    }
  }
  std::string out;
  std::set<std::size_t> shown;
  for (std::size_t i = 0; i < posts.size(); ++i) {
    const auto& post = posts[i];
    const bool top_level = post.parent_id.empty() || post.parent_id == post.post_id;
    if (top_level) {
      AppendThread(out, posts, replies, i, 0, shown);
    } else if (ids.count(post.parent_id) == 0 && shown.insert(i).second) {
      AppendPost(out, post, 0, /*orphan_reply=*/true);
    }
  }
  // Whatever is left belongs to a cycle of replies, which only a broken or hostile source
  // produces: still shown, flat, so nothing is hidden.
  for (std::size_t i = 0; i < posts.size(); ++i) {
    if (shown.insert(i).second) AppendPost(out, posts[i], 0, !posts[i].parent_id.empty());
  }
  return out;
}

std::string FormatDirectMessages(const std::vector<client::DirectMessageView>& messages) {
  std::string out;
  for (const auto& message : messages) {
    out += '[';
    out += ShortId(message.message_id);
    out += "] ";
    out += FormatLocalTime(message.sent_ms);
    out += ' ';
    out += SanitizeForTerminal(message.from);
    out += " -> ";
    out += SanitizeForTerminal(message.to);
    out += ": ";
    out += IndentedText(message.text, 4);
    out += '\n';
  }
  return out;
}

std::string FormatDocuments(const std::vector<client::DocumentView>& documents) {
  std::string out;
  for (const auto& document : documents) {
    out += ShortId(document.document_id);
    out += "  v";
    out += Padded(std::to_string(document.version), 3);
    out += "  ";
    std::string size = FormatSize(document.size);
    if (size.size() < 10) size.insert(0, 10 - size.size(), ' ');
    out += size;
    out += "  ";
    out += FormatLocalTime(document.created_ms);
    out += "  ";
    out += SanitizeForTerminal(document.author);
    out += "  ";
    out += SanitizeForTerminal(document.name);
    out += '\n';
  }
  return out;
}

std::string FormatDevices(const std::vector<client::DeviceView>& devices) {
  std::string out;
  for (const auto& device : devices) {
    std::string id = std::to_string(device.device_id);
    if (id.size() < 10) id.insert(0, 10 - id.size(), ' ');
    out += id;
    if (device.created_ms != 0) {
      out += "  created ";
      out += FormatLocalTime(device.created_ms);
    }
    if (device.revoked) out += "  revoked";
    if (device.this_device) out += "  (this device)";
    out += '\n';
  }
  return out;
}

std::string FormatLegalHold(const client::LegalHoldView& hold) {
  std::string out = hold.placed ? "legal hold placed (audit entry " + std::to_string(hold.index) + ")"
                                : std::string("legal hold signed, not yet placed");
  out += ": details of ";
  for (std::size_t i = 0; i < hold.months.size(); ++i) {
    if (i > 0) out += ", ";
    out += hold.months[i];
  }
  out += " kept past retention\nreason: ";
  out += SanitizeForTerminal(hold.reason);
  out += "\nsigned by: ";
  for (std::size_t i = 0; i < hold.signers.size(); ++i) {
    if (i > 0) out += ", ";
    out += SanitizeForTerminal(hold.signers[i]);
  }
  out += '\n';
  return out;
}

std::string FormatAuditEntries(const std::vector<client::AuditEntryView>& entries) {
  std::string out;
  for (const auto& entry : entries) {
    out += std::to_string(entry.index);
    out += "  ";
    out += FormatUtcTime(entry.time_ms);
    out += "  ";
    out += entry.type;
    out += ' ';
    out += entry.result;
    if (!entry.actor.empty()) {
      out += "  actor ";
      out += entry.actor;
    }
    if (entry.device_id != 0) {
      out += " device ";
      out += std::to_string(entry.device_id);
    }
    if (!entry.team.empty()) {
      out += "  team ";
      out += entry.team.substr(0, 12);
    }
    if (!entry.object.empty()) {
      out += "  object ";
      out += entry.object.substr(0, 12);
    }
    if (entry.version != 0) {
      out += " v";
      out += std::to_string(entry.version);
    }
    if (entry.device_sequence != 0) {
      out += "  signed by the device (event ";
      out += std::to_string(entry.device_sequence);
      out += ", device clock ";
      out += FormatUtcTime(entry.device_time_ms);
      out += ')';
    }
    out += "  ";
    out += SanitizeForTerminal(entry.node);
    out += '/';
    out += SanitizeForTerminal(entry.jurisdiction);
    out += "  details ";
    out += entry.details;
    if (!entry.actor_user.empty()) {
      out += ": by ";
      out += SanitizeForTerminal(entry.actor_user);
    }
    if (!entry.subject_user.empty()) {
      out += ", about ";
      out += SanitizeForTerminal(entry.subject_user);
    }
    if (!entry.address.empty()) {
      out += ", from ";
      out += SanitizeForTerminal(entry.address);
    }
    if (!entry.reason.empty()) {
      out += ", ";
      out += SanitizeForTerminal(entry.reason);
    }
    out += '\n';
  }
  return out;
}

std::string FormatAuditVerify(const client::AuditVerifyReport& report) {
  std::string out;
  if (report.ok) {
    out += "audit log verified: ";
    out += std::to_string(report.entries_checked);
    out += " entries, every one well formed and in the signed tree\n";
  } else {
    out += "AUDIT LOG VERIFICATION FAILED: ";
    out += SanitizeForTerminal(report.problem);
    if (report.first_bad_index) {
      out += "; first bad entry: index ";
      out += std::to_string(*report.first_bad_index);
    }
    out += '\n';
  }
  out += "checkpoint: size ";
  out += std::to_string(report.tree_size);
  out += ", root ";
  out += report.root;
  out += "\npreviously verified size: ";
  out += std::to_string(report.previous_size);
  out += '\n';
  return out;
}

std::string FormatAuditBundleReport(const client::AuditBundleReport& report) {
  std::string out;
  if (report.ok) {
    out += "bundle verified: ";
    out += std::to_string(report.records);
    out += " records, each in the signed log of ";
    out += std::to_string(report.tree_size);
    out += " entries (";
    out += SanitizeForTerminal(report.origin);
    out += "), exported by ";
    out += SanitizeForTerminal(report.exported_by);
    out += '\n';
    if (report.device_events != 0) {
      out += std::to_string(report.device_events);
      out += " of them signed by the device that reported them, every signature verified\n";
    }
    for (const std::string& note : report.notes) {
      out += "note: ";
      out += SanitizeForTerminal(note);
      out += '\n';
    }
  } else {
    out += "BUNDLE VERIFICATION FAILED: ";
    out += SanitizeForTerminal(report.problem);
    out += " (";
    out += SanitizeForTerminal(report.where);
    out += ")\n";
  }
  out += "log key: ";
  out += SanitizeForTerminal(report.log_key);
  out += report.log_key_pinned ? " (as given)\n"
                               : " (taken from the bundle: compare it with the relay operator's "
                                 "`coffre-relay admin status`, or pass --log-key)\n";
  return out;
}

std::string FormatSafetyNumber(const client::SafetyNumberView& view) {
  const std::string user = SanitizeForTerminal(view.user_id);
  std::string out = "safety number with ";
  out += user;
  out += ":\n";
  // Four groups of five digits per line, as people read them aloud.
  std::vector<std::string> groups;
  std::string group;
  for (const char c : SanitizeForTerminal(view.safety_number)) {
    if (c == ' ') {
      if (!group.empty()) groups.push_back(std::move(group));
      group.clear();
    } else {
      group.push_back(c);
    }
  }
  if (!group.empty()) groups.push_back(std::move(group));
  for (std::size_t i = 0; i < groups.size(); ++i) {
    out += (i % 4 == 0) ? "    " : " ";
    out += groups[i];
    if (i % 4 == 3 || i + 1 == groups.size()) out += '\n';
  }
  if (view.key_changed && !view.confirmed) {
    out += "WARNING: ";
    out += user;
    out += "'s key has changed since it was first seen; sending to ";
    out += user;
    out += " is blocked until you confirm.\n";
  }
  out += view.confirmed ? "status: confirmed\n" : "status: not confirmed\n";
  if (!view.confirmed) {
    out += "Compare these digits with ";
    out += user;
    out += " in person or on a call you trust, then run: coffre verify ";
    out += user;
    out += " --confirm\n";
  }
  return out;
}

std::string FormatSyncReport(const client::SyncReport& report) {
  std::string out = "sent ";
  out += std::to_string(report.outbox_sent);
  out += " from the outbox; received ";
  out += Plural(report.posts_received, "post", "posts");
  out += " and ";
  out += Plural(report.documents_received, "document", "documents");
  out += " (";
  out += Plural(report.envelopes_applied, "envelope", "envelopes");
  out += " applied)\n";
  if (report.outbox_pending > 0) {
    out += Plural(report.outbox_pending, "item", "items");
    out += " still waiting in the outbox\n";
  }
  return out;
}

nlohmann::json ToJson(const client::TeamView& team) {
  nlohmann::json members = nlohmann::json::array();
  for (const auto& member : team.members) {
    members.push_back({{"user_id", member.user_id},
                       {"role", client::RoleName(member.role)},
                       {"device_ids", member.device_ids}});
  }
  return {{"name", team.name},
          {"team_id", team.team_id},
          {"my_role", client::RoleName(team.my_role)},
          {"members", std::move(members)},
          {"chain_sequence", team.chain_sequence},
          {"chain_head", team.chain_head},
          {"key_generation", team.key_generation},
          {"channels", team.channels}};
}

nlohmann::json ToJson(const client::PostView& post) {
  return {{"post_id", post.post_id},
          {"parent_id", NullIfEmpty(post.parent_id)},
          {"author", post.author},
          {"author_device", post.author_device},
          {"sent_ms", post.sent_ms},
          {"sent", FormatUtcTime(post.sent_ms)},
          {"key_generation", post.key_generation},
          {"text", post.text}};
}

nlohmann::json ToJson(const client::DirectMessageView& message) {
  return {{"message_id", message.message_id},
          {"from", message.from},
          {"to", message.to},
          {"sent_ms", message.sent_ms},
          {"sent", FormatUtcTime(message.sent_ms)},
          {"text", message.text}};
}

nlohmann::json ToJson(const client::DocumentView& document) {
  return {{"document_id", document.document_id},
          {"name", document.name},
          {"version", document.version},
          {"size", document.size},
          {"author", document.author},
          {"created_ms", document.created_ms},
          {"created", FormatUtcTime(document.created_ms)}};
}

nlohmann::json ToJson(const client::DeviceView& device) {
  return {{"device_id", device.device_id},
          {"this_device", device.this_device},
          {"revoked", device.revoked},
          {"created_ms", device.created_ms},
          {"created", FormatUtcTime(device.created_ms)}};
}

nlohmann::json ToJson(const client::AuditEntryView& entry) {
  return {{"index", entry.index},         {"time_ms", entry.time_ms},
          {"time", FormatUtcTime(entry.time_ms)},
          {"type", entry.type},           {"result", entry.result},
          {"actor", entry.actor},         {"device_id", entry.device_id},
          {"team", entry.team},           {"object", entry.object},
          {"version", entry.version},     {"node", entry.node},
          {"jurisdiction", entry.jurisdiction}, {"details", entry.details},
          {"actor_user", entry.actor_user}, {"subject_user", entry.subject_user},
          {"address", entry.address},     {"reason", entry.reason},
          {"device_sequence", entry.device_sequence},
          {"device_time_ms", entry.device_time_ms}};
}

nlohmann::json ToJson(const client::AuditVerifyReport& report) {
  nlohmann::json out = {{"ok", report.ok},
                        {"tree_size", report.tree_size},
                        {"root", report.root},
                        {"previous_size", report.previous_size},
                        {"entries_checked", report.entries_checked},
                        {"problem", report.problem}};
  out["first_bad_index"] = report.first_bad_index ? nlohmann::json(*report.first_bad_index) : nlohmann::json();
  return out;
}

nlohmann::json ToJson(const client::AuditBundleReport& report) {
  return {{"ok", report.ok},           {"records", report.records},
          {"tree_size", report.tree_size}, {"origin", report.origin},
          {"log_key", report.log_key}, {"log_key_pinned", report.log_key_pinned},
          {"exported_by", report.exported_by}, {"problem", report.problem},
          {"where", report.where},       {"device_events", report.device_events},
          {"notes", report.notes}};
}

nlohmann::json ToJson(const client::SafetyNumberView& view) {
  return {{"user_id", view.user_id},
          {"safety_number", view.safety_number},
          {"confirmed", view.confirmed},
          {"key_changed", view.key_changed}};
}

nlohmann::json ToJson(const client::SyncReport& report) {
  return {
      {"envelopes_applied", report.envelopes_applied},   {"posts_received", report.posts_received},
      {"documents_received", report.documents_received}, {"outbox_sent", report.outbox_sent},
      {"outbox_pending", report.outbox_pending},         {"warnings", report.warnings}};
}

std::string DumpJson(const nlohmann::json& document) {
  std::string text = document.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  text += '\n';
  return text;
}

ProgressBar::ProgressBar(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled) {}

ProgressBar::~ProgressBar() { Finish(); }

std::string ProgressBar::Render(std::string_view label, std::uint64_t done, std::uint64_t total,
                                std::size_t width) {
  const std::uint64_t clamped = total == 0 ? 1 : std::min(done, total);
  const std::uint64_t whole = total == 0 ? 1 : total;
  const auto filled = static_cast<std::size_t>(clamped * width / whole);
  const auto percent = static_cast<unsigned>(clamped * 100 / whole);
  std::string out = SanitizeForTerminal(label);
  out += " [";
  out.append(filled, '#');
  out.append(width - filled, ' ');
  out += "] ";
  char number[8];
  std::snprintf(number, sizeof number, "%3u%%", percent);
  out += number;
  out += "  ";
  out += FormatSize(std::min(done, total));
  out += " / ";
  out += FormatSize(total);
  return out;
}

void ProgressBar::Update(std::uint64_t done, std::uint64_t total) {
  if (!enabled_) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool last = done >= total;
  if (drawn_ && !last && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  drawn_ = true;
  // "\r" returns to the line's start; "\033[K" clears what a longer line left behind.
  std::string line = "\r";
  line += Render(label_, done, total, kBarCells);
  line += "\033[K";
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (!enabled_) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (drawn_) {
    std::fputs("\n", stderr);
    std::fflush(stderr);
  }
}

}  // namespace coffre::cli
