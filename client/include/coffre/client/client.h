// libcoffre-client's facade: one device profile, opened with its passphrase, and what a
// person does with it. The `coffre` command line is a thin layer over this class.
//
// A Client owns the profile store (SQLCipher, under a key derived from the passphrase) and
// opens a connection to the relay only when an operation needs one. Writes go through the
// outbox in the profile store first, so a failed connection never loses them: Sync sends
// them when the relay answers. Names (teams, channels) are the profile's own view: the
// relay only ever sees random identifiers.
#ifndef COFFRE_CLIENT_CLIENT_H_
#define COFFRE_CLIENT_CLIENT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::client {

// What the caller shows while a long transfer runs: bytes done out of bytes in all.
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct InitOptions {
  std::string relay_url;                        // https://HOST:PORT
  std::optional<std::string> relay_fingerprint;  // SHA-256 of the relay certificate, hex
  crypto::SecretBytes enrolment_code;            // the code `coffre-relay admin enrol` printed
  std::string user_id;                           // login: 1..64 of [a-z0-9._-]
  std::string display_name;
};

struct InitReport {
  std::string user_id;
  std::uint32_t device_id = 0;
  std::string relay_fingerprint;  // hex, as pinned
  bool fingerprint_was_given = false;  // false: pinned on first use, the caller says so
  bool admin = false;                  // the enrolment code made this user the org's admin
};

// `coffre init --link CODE`: a new device of an existing user, set up by one of that user's
// devices running `coffre device link` (which showed CODE).
struct LinkInitOptions {
  std::string relay_url;
  std::optional<std::string> relay_fingerprint;
  crypto::SecretBytes link_code;  // as typed
  std::string user_id;
};

// What `coffre device link` did.
struct LinkedDeviceView {
  std::uint32_t device_id = 0;
  std::uint64_t teams = 0;  // teams whose keys were handed over
};

enum class Role { kAdmin, kMember, kGuest, kAuditor };
std::string_view RoleName(Role role);               // "admin", "member", "guest", "auditor"
Result<Role> ParseRole(std::string_view name);      // kInvalidArgument for anything else

struct TeamMemberView {
  std::string user_id;
  Role role = Role::kMember;
  std::vector<std::uint32_t> device_ids;  // devices this profile encrypts to
};

struct TeamView {
  std::string name;
  std::string team_id;  // hex
  Role my_role = Role::kMember;
  std::vector<TeamMemberView> members;
  std::uint64_t chain_sequence = 0;
  std::string chain_head;  // hex of the last verified statement's hash
  std::uint64_t key_generation = 0;
  std::vector<std::string> channels;
};

struct PostView {
  std::string post_id;    // hex
  std::string parent_id;  // hex, empty for a top-level post
  std::string author;     // user id
  std::uint32_t author_device = 0;
  std::uint64_t sent_ms = 0;
  std::uint64_t key_generation = 0;
  std::string text;
};

struct DirectMessageView {
  std::string message_id;  // hex
  std::string from;        // user id
  std::string to;          // user id
  std::uint64_t sent_ms = 0;
  std::string text;
};

struct DocumentView {
  std::string document_id;  // hex
  std::string name;
  std::uint64_t version = 0;
  std::uint64_t size = 0;  // plaintext bytes
  std::string author;
  std::uint64_t created_ms = 0;
};

struct DeviceView {
  std::uint32_t device_id = 0;
  bool this_device = false;
  bool revoked = false;
  std::uint64_t created_ms = 0;
};

struct SafetyNumberView {
  std::string user_id;
  std::string safety_number;  // 60 digits in groups of five
  bool confirmed = false;     // confirmed with --confirm since the last key change
  bool key_changed = false;   // the identity key differs from the one first seen
};

struct SyncReport {
  std::uint64_t envelopes_applied = 0;
  std::uint64_t posts_received = 0;
  std::uint64_t documents_received = 0;
  std::uint64_t outbox_sent = 0;
  std::uint64_t outbox_pending = 0;  // still waiting for the relay
  std::vector<std::string> warnings;  // forks, refused statements, undecryptable items
  std::vector<std::string> events;    // one line per thing that arrived, for people
};

// `coffre audit verify`: the relay's log checked from the first entry to a fresh
// checkpoint. `ok` false: `problem` says what, `first_bad_index` where when it is known.
struct AuditVerifyReport {
  bool ok = false;
  std::uint64_t tree_size = 0;
  std::string root;                 // hex
  std::uint64_t previous_size = 0;  // the checkpoint this profile had verified before
  std::uint64_t entries_checked = 0;
  std::optional<std::uint64_t> first_bad_index;
  std::string problem;
};

struct AuditFilter {
  std::optional<std::string> team;    // a team name of this profile
  std::optional<std::string> object;  // an item or blob id (hex prefix)
  std::optional<std::string> type;    // an event name: "login", "blob_fetched", ...
  std::optional<std::uint64_t> from_ms;  // inclusive
  std::optional<std::uint64_t> to_ms;    // exclusive
  std::optional<std::string> user;       // a login: needs the details, so the auditor key
};

struct AuditExportReport {
  std::uint64_t records = 0;
  std::uint64_t tree_size = 0;
};

// A legal hold as `audit hold` shows it (decision 0018).
struct LegalHoldView {
  std::vector<std::string> months;   // "YYYY-MM"
  std::string reason;
  std::vector<std::string> signers;  // "user/device", in signing order
  bool placed = false;               // the relay took it
  std::uint64_t index = 0;           // when placed: the audit entry that records it
};

struct AuditEntryView {
  std::uint64_t index = 0;
  std::uint64_t time_ms = 0;
  std::string type;    // "login", "blob_fetched", ...
  std::string result;  // "success", "refused", "failed"
  std::string actor;   // pseudonym (hex prefix), empty when none
  std::uint32_t device_id = 0;
  std::string team;    // hex, empty when none
  std::string object;  // hex, empty when none
  std::uint64_t version = 0;
  std::string node;
  std::string jurisdiction;
  std::string details;  // "sealed", "erased", "none", or "opened" with the auditor key
  // For an event the device signed (document opened or exported): its number in the
  // device's chain and the device's clock; 0 for events the relay saw.
  std::uint64_t device_sequence = 0;
  std::uint64_t device_time_ms = 0;
  // From the details, when this profile holds the auditor key they were sealed to.
  std::string actor_user;
  std::string subject_user;
  std::string address;
  std::string reason;
};

class Client {
 public:
  // Creates the profile in `profile_dir` (which must not hold one), generates the user
  // identity key and the first device, registers with the relay, uploads prekeys and pins
  // the relay certificate. Nothing is left behind on failure.
  static Result<std::unique_ptr<Client>> Init(const std::filesystem::path& profile_dir,
                                              const crypto::SecretBytes& passphrase,
                                              const InitOptions& options, InitReport* report);
  // Creates the profile of a new device of an existing user: posts this device's keys to
  // the link that CODE names, waits (while `keep_going` holds and the link lives) for the
  // existing device to sign them, and takes over the user key, team keys and pinned peers
  // it hands over. Nothing is left behind on failure before the handover arrives.
  static Result<std::unique_ptr<Client>> InitLinked(const std::filesystem::path& profile_dir,
                                                    const crypto::SecretBytes& passphrase,
                                                    const LinkInitOptions& options,
                                                    InitReport* report,
                                                    const std::function<bool()>& keep_going);
  // Opens an existing profile; kWrongPassphrase for a wrong passphrase, kNotFound when
  // `profile_dir` holds no profile.
  static Result<std::unique_ptr<Client>> Open(const std::filesystem::path& profile_dir,
                                              const crypto::SecretBytes& passphrase);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& user_id() const;
  std::uint32_t device_id() const;
  const std::string& display_name() const;

  // Teams. TEAM is the name this profile knows the team by.
  Result<TeamView> CreateTeam(std::string_view team);
  Status AddMember(std::string_view team, std::string_view user_id, Role role);
  Status RemoveMember(std::string_view team, std::string_view user_id);
  Status ChangeRole(std::string_view team, std::string_view user_id, Role role);
  Status RotateTeamKey(std::string_view team);
  Result<TeamView> ShowTeam(std::string_view team);
  Result<std::vector<TeamView>> ListTeams();

  // Channels and posts.
  Status CreateChannel(std::string_view team, std::string_view channel);
  // Returns the new post's id (hex).
  Result<std::string> Post(std::string_view team, std::string_view channel,
                           std::string_view text, std::optional<std::string_view> reply_to);
  Result<std::vector<PostView>> ReadChannel(std::string_view team, std::string_view channel,
                                            std::optional<std::string_view> thread,
                                            std::optional<std::uint64_t> since_ms);

  // Direct messages.
  Status SendDirect(std::string_view user_id, std::string_view text);
  Result<std::vector<DirectMessageView>> ReadDirect(std::string_view user_id);

  // Documents. PutDocument returns the document id (hex); with `replace` it puts a new
  // version on top of that document's current one.
  Result<DocumentView> PutDocument(std::string_view team, const std::filesystem::path& file,
                                   std::optional<std::string_view> name,
                                   std::optional<std::string_view> replace,
                                   const ProgressFn& progress);
  // Writes the document's current (or given) version to `output` atomically: a temporary
  // file in the same folder, renamed only once everything is verified and a signed
  // "document exported" audit event is stored (sent at once, or at the next sync).
  Result<DocumentView> GetDocument(std::string_view team, std::string_view document_id,
                                   const std::filesystem::path& output,
                                   std::optional<std::uint64_t> version,
                                   const ProgressFn& progress);
  // For an application that shows a document from its own copy: records, as an event this
  // device signs, that it opened that version (decision 0017). Durable in the profile when
  // this returns; sent to the relay's audit log now or at the next sync.
  Status RecordDocumentOpened(std::string_view team, std::string_view document_id,
                              std::uint64_t version);
  Result<std::vector<DocumentView>> ListDocuments(std::string_view team);
  Result<std::vector<DocumentView>> DocumentVersions(std::string_view team,
                                                     std::string_view document_id);

  // Sync: sends the outbox, fetches and applies everything pending.
  Result<SyncReport> Sync();
  // Stays connected and calls `on_event` with one line per thing that arrives, until
  // `keep_going` returns false (checked at least once per second).
  Status Watch(const std::function<void(std::string_view line)>& on_event,
               const std::function<bool()>& keep_going);

  // Devices.
  Result<std::vector<DeviceView>> ListDevices();
  Status RevokeDevice(std::uint32_t device_id);
  // Opens a link, calls `show_code` with the code to type on the new device and the link's
  // expiry (Unix ms), waits for the new device while `keep_going` holds, checks its request
  // against the code, adds it to the account and hands it the user key and team keys.
  Result<LinkedDeviceView> LinkDevice(
      const std::function<void(std::string_view code, std::uint64_t expires_ms)>& show_code,
      const std::function<bool()>& keep_going);

  // The relay's audit log (auditors).
  // This profile's auditor key (X25519), made on first use; returns its public half (hex),
  // for an admin to set on a team (SetTeamAuditorKey) or the operator on the relay.
  Result<std::string> AuditorKey();
  // Sets the team's auditor key (a chain statement; admins only): details of the team's
  // events are sealed to it from then on.
  Status SetTeamAuditorKey(std::string_view team, std::string_view public_key_hex);
  Result<AuditVerifyReport> VerifyAuditLog();
  Result<std::vector<AuditEntryView>> AuditEntries(const AuditFilter& filter);
  // Writes the selected entries, with a fresh verified checkpoint and an inclusion proof
  // each, into a bundle folder signed by this device (audit_bundle.h). The folder must not
  // exist; it appears only once complete.
  Result<AuditExportReport> ExportAudit(const AuditFilter& filter,
                                        const std::filesystem::path& folder);

  // Legal holds (decision 0018): signed by an organisation admin and an auditor. The first
  // signs a hold on `months` ("YYYY-MM") for `reason` and writes it to `output` (which
  // must not exist); the second checks it, adds a signature and places it on the relay.
  Result<LegalHoldView> StartLegalHold(const std::vector<std::string>& months, std::string_view reason,
                                       const std::filesystem::path& output);
  Result<LegalHoldView> CompleteLegalHold(const std::filesystem::path& input);

  // Safety numbers. After a key change, sending to that person fails with
  // kUntrustedIdentity until ConfirmIdentity.
  Result<SafetyNumberView> SafetyNumber(std::string_view user_id);
  Status ConfirmIdentity(std::string_view user_id);

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_CLIENT_H_
