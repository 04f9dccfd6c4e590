// The profile store (one SQLCipher database per device, under a key derived from the
// passphrase) and the connection to the relay.
#include <sys/stat.h>

#include <chrono>
#include <system_error>

#include "client_impl.h"
#include "coffre/crypto/random.h"
#include "coffre/protocol/errors.h"
#include "coffre/protocol/signed_objects.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// The profile's own tables, next to the Signal tables that SqlCipherSignalStores adds.
// Names of teams and channels are this profile's; the relay only knows random ids.
constexpr storage::Migration kProfileMigrations[] = {
    {1,
     "CREATE TABLE identity ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  display_name TEXT NOT NULL,"
     "  user_seed BLOB NOT NULL,"
     "  device_seed BLOB NOT NULL,"
     "  certificate BLOB NOT NULL,"
     "  relay_url TEXT NOT NULL,"
     "  relay_fingerprint BLOB NOT NULL,"
     "  mailbox_cursor INTEGER NOT NULL DEFAULT 0,"
     "  next_pre_key_id INTEGER NOT NULL DEFAULT 1,"
     "  signed_pre_key_id INTEGER NOT NULL DEFAULT 0,"
     "  registered INTEGER NOT NULL DEFAULT 0);"
     "CREATE TABLE peers ("
     "  user_id TEXT PRIMARY KEY,"
     "  identity_key BLOB NOT NULL,"
     "  offered_key BLOB,"  // a different key the relay showed, until confirmed
     "  confirmed INTEGER NOT NULL DEFAULT 0,"
     "  first_seen_ms INTEGER NOT NULL);"
     "CREATE TABLE peer_devices ("
     "  user_id TEXT NOT NULL,"
     "  device_id INTEGER NOT NULL,"
     "  signing_key BLOB NOT NULL,"
     "  signal_identity BLOB NOT NULL,"
     "  revoked INTEGER NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (user_id, device_id));"
     "CREATE TABLE teams ("
     "  team_id BLOB PRIMARY KEY,"
     "  name TEXT NOT NULL UNIQUE,"
     "  head_sequence INTEGER,"
     "  head_hash BLOB);"
     "CREATE TABLE chain_statements ("
     "  team_id BLOB NOT NULL,"
     "  sequence INTEGER NOT NULL,"
     "  statement BLOB NOT NULL,"
     "  PRIMARY KEY (team_id, sequence));"
     "CREATE TABLE team_keys ("
     "  team_id BLOB NOT NULL,"
     "  generation INTEGER NOT NULL,"
     "  key BLOB NOT NULL,"
     "  PRIMARY KEY (team_id, generation));"
     "CREATE TABLE channels ("
     "  team_id BLOB NOT NULL,"
     "  channel_id BLOB NOT NULL,"
     "  name TEXT NOT NULL,"
     "  PRIMARY KEY (team_id, channel_id),"
     "  UNIQUE (team_id, name));"
     "CREATE TABLE posts ("
     "  team_id BLOB NOT NULL,"
     "  post_id BLOB NOT NULL,"
     "  channel_id BLOB NOT NULL,"
     "  parent_id BLOB NOT NULL,"
     "  author TEXT NOT NULL,"
     "  author_device INTEGER NOT NULL,"
     "  sent_ms INTEGER NOT NULL,"
     "  generation INTEGER NOT NULL,"
     "  text TEXT NOT NULL,"
     "  PRIMARY KEY (team_id, post_id));"
     "CREATE INDEX posts_by_channel ON posts (team_id, channel_id, sent_ms);"
     "CREATE TABLE direct_messages ("
     "  message_id BLOB PRIMARY KEY,"
     "  peer TEXT NOT NULL,"
     "  sender TEXT NOT NULL,"
     "  sent_ms INTEGER NOT NULL,"
     "  text TEXT NOT NULL);"
     "CREATE INDEX direct_messages_by_peer ON direct_messages (peer, sent_ms);"
     "CREATE TABLE documents ("
     "  team_id BLOB NOT NULL,"
     "  document_id BLOB NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  name TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  author TEXT NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  manifest BLOB NOT NULL,"
     "  PRIMARY KEY (team_id, document_id, version));"
     // Items whose manifest was applied (or refused for good): never processed twice.
     "CREATE TABLE seen_items ("
     "  team_id BLOB NOT NULL,"
     "  item_id BLOB NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  PRIMARY KEY (team_id, item_id, version));"
     // Writes waiting for the relay, in order. `request` is a serialized wire Request whose
     // replay is harmless (client ids, compare-and-swap versions, chain sequences).
     // Decrypted peer messages waiting to be applied: written in the transaction that
     // advanced the ratchet, applied (and deleted) afterwards.
     "CREATE TABLE inbox ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  sender TEXT NOT NULL,"
     "  sender_device INTEGER NOT NULL,"
     "  received_ms INTEGER NOT NULL,"
     "  message BLOB NOT NULL);"
     "CREATE TABLE outbox ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  request BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  attempts INTEGER NOT NULL DEFAULT 0);"
     // Document blobs staged as ciphertext in the profile folder (`staged_path`, relative
     // to it) until the relay holds all `size` bytes. Written in one transaction with the
     // manifest's outbox entry (`outbox_id`) and the document row (`item_id`, `version`),
     // which are dropped with it if the relay refuses the upload for good. `state`: 0 until
     // CreateBlob was answered, 1 once the relay has the upload slot.
     "CREATE TABLE uploads ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  team_id BLOB NOT NULL,"
     "  blob_id BLOB NOT NULL,"
     "  staged_path TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  state INTEGER NOT NULL DEFAULT 0,"
     "  item_id BLOB NOT NULL,"
     "  version INTEGER NOT NULL,"
     "  outbox_id INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  UNIQUE (team_id, blob_id));"},
    // When each device was certified: the created_ms of its certificate, which its user's
    // identity key signed (0 until the certificate is seen again after this migration).
    {2, "ALTER TABLE peer_devices ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;"},
    // The relay's audit log as this profile last verified it (client_audit.cc): the pinned
    // log key and origin, the last checkpoint that extended the one before, the leaf hashes
    // `audit verify` checked (so a rewritten entry is named by its index), and every
    // checkpoint that failed to extend the stored one, kept as evidence.
    {3,
     "CREATE TABLE audit_log ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  log_key TEXT NOT NULL,"
     "  origin TEXT NOT NULL,"
     "  tree_size INTEGER NOT NULL,"
     "  root BLOB NOT NULL,"
     "  note TEXT NOT NULL,"
     "  verified_ms INTEGER NOT NULL);"
     "CREATE TABLE audit_leaves ("
     "  idx INTEGER PRIMARY KEY,"
     "  leaf_hash BLOB NOT NULL);"
     "CREATE TABLE audit_evidence ("
     "  id INTEGER PRIMARY KEY,"
     "  note TEXT NOT NULL,"
     "  log_key TEXT NOT NULL,"
     "  reason TEXT NOT NULL,"
     "  seen_ms INTEGER NOT NULL);"},
    // An auditor's X25519 key pair (`coffre audit key`): audit details are sealed to its
    // public half, set on a team by an admin (SetAuditorKey) or on the relay by its operator.
    {4,
     "CREATE TABLE auditor_key ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  secret BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL);"},
    // This device's own signed audit events (client_events.cc, decision 0017), numbered
    // from 1 and each linked to the one before. A row stays after the relay recorded it,
    // with the log index it gave, so `audit verify` checks the event is still there;
    // `refused` holds the relay's reason when it turned one down for good.
    {5,
     "CREATE TABLE client_events ("
     "  sequence INTEGER PRIMARY KEY,"
     "  event BLOB NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  log_index INTEGER,"
     "  refused TEXT);"},
};

Status RelayFailure(const wire::Error& error) {
  using wire::ErrorCode;
  switch (error.code()) {
    case wire::ERROR_CODE_UNAUTHENTICATED:
    case wire::ERROR_CODE_AUTHENTICATION_FAILED:
      return Fail(coffre::ErrorCode::kAuthenticationFailed, "the relay refused this device");
    case wire::ERROR_CODE_FORBIDDEN:
      return Fail(coffre::ErrorCode::kInvalidArgument, "the relay says this is not allowed");
    case wire::ERROR_CODE_NOT_FOUND:
      return Fail(coffre::ErrorCode::kNotFound, "the relay does not know it");
    case wire::ERROR_CODE_CONFLICT:
      return Fail(coffre::ErrorCode::kConflict, "someone else wrote first; sync and try again");
    case wire::ERROR_CODE_ENROLMENT_INVALID:
      return Fail(coffre::ErrorCode::kAuthenticationFailed,
                  "enrolment code unknown, already used or expired");
    case wire::ERROR_CODE_ALREADY_EXISTS:
      return Fail(coffre::ErrorCode::kAlreadyExists, "the relay already has it");
    case wire::ERROR_CODE_INVALID_SIGNATURE:
    case wire::ERROR_CODE_CHAIN_REJECTED:
      return Fail(coffre::ErrorCode::kInvalidArgument, "the relay refused a signed statement");
    case wire::ERROR_CODE_TOO_LARGE:
    case wire::ERROR_CODE_QUOTA_EXCEEDED:
      return Fail(coffre::ErrorCode::kResourceExhausted, "over a relay limit or quota");
    case wire::ERROR_CODE_RATE_LIMITED:
    case wire::ERROR_CODE_UNAVAILABLE:
      return Fail(coffre::ErrorCode::kIo, "the relay is busy; try again later");
    case wire::ERROR_CODE_SIZE_MISMATCH:
      return Fail(coffre::ErrorCode::kInvalidArgument, "size does not match");
    default:
      return Fail(coffre::ErrorCode::kInternal, "the relay reported an error");
  }
}

}  // namespace

std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(2 * bytes.size());
  for (const std::uint8_t byte : bytes) {
    text += kDigits[byte >> 4];
    text += kDigits[byte & 0x0f];
  }
  return text;
}

Result<std::vector<std::uint8_t>> ParseHex(std::string_view text, std::size_t size) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() != 2 * size) return Fail(ErrorCode::kInvalidArgument, "id has the wrong length");
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size; ++i) {
    const int high = digit(text[2 * i]);
    const int low = digit(text[2 * i + 1]);
    if (high < 0 || low < 0) return Fail(ErrorCode::kInvalidArgument, "id is not hexadecimal");
    bytes[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return bytes;
}

Result<std::array<std::uint8_t, 16>> IdFrom(std::span<const std::uint8_t> bytes) {
  std::array<std::uint8_t, 16> id{};
  if (bytes.size() != id.size()) return Fail(ErrorCode::kCorrupt, "an id is not 16 bytes");
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

std::array<std::uint8_t, 16> NewId() {
  std::array<std::uint8_t, 16> id{};
  crypto::RandomFill(id);
  return id;
}

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

Result<std::unique_ptr<Client::Impl>> Client::Impl::CreateProfile(
    const std::filesystem::path& dir, const crypto::SecretBytes& passphrase) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, "cannot create the profile folder");
  // The folder holds the profile's keys (encrypted) and staged documents: owner only.
  (void)::chmod(dir.c_str(), 0700);
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  COFFRE_ASSIGN_OR_RETURN(impl->db,
                          storage::Database::Create(dir / kProfileDatabase, passphrase.span()));
  COFFRE_RETURN_IF_ERROR(impl->db->Migrate(kProfileMigrations));
  COFFRE_RETURN_IF_ERROR(impl->AttachSignal());
  return impl;
}

Result<std::unique_ptr<Client::Impl>> Client::Impl::OpenProfile(
    const std::filesystem::path& dir, const crypto::SecretBytes& passphrase) {
  if (!std::filesystem::exists(dir / kProfileDatabase)) {
    return Fail(ErrorCode::kNotFound, "no profile here: run `coffre init` first");
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  COFFRE_ASSIGN_OR_RETURN(impl->db,
                          storage::Database::Open(dir / kProfileDatabase, passphrase.span()));
  COFFRE_RETURN_IF_ERROR(impl->db->Migrate(kProfileMigrations));
  COFFRE_RETURN_IF_ERROR(impl->LoadIdentity());
  COFFRE_RETURN_IF_ERROR(impl->AttachSignal());
  return impl;
}

Status Client::Impl::AttachSignal() {
  if (!signal_stores) {
    COFFRE_ASSIGN_OR_RETURN(signal_stores, storage::SqlCipherSignalStores::New(*db));
  }
  if (user_id.empty() || signal) return Ok();  // CreateProfile: the device comes later
  COFFRE_ASSIGN_OR_RETURN(
      signal, crypto::SignalDevice::Create(
                  crypto::SignalAddress{user_id, static_cast<std::int32_t>(device_id)},
                  signal_stores->stores()));
  return Ok();
}

Status Client::Impl::SaveIdentity(const wire::DeviceCertificate& certificate) {
  const std::string certificate_bytes = certificate.SerializeAsString();
  const crypto::SecretBytes user_seed = user_key->Seed();
  const crypto::SecretBytes device_seed = device_key->Seed();
  return sql::Run(*db,
                  "INSERT INTO identity (id, user_id, device_id, display_name, user_seed, "
                  "device_seed, certificate, relay_url, relay_fingerprint) "
                  "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                  user_id, device_id, display_name, user_seed, device_seed,
                  std::span<const std::uint8_t>(
                      reinterpret_cast<const std::uint8_t*>(certificate_bytes.data()),
                      certificate_bytes.size()),
                  relay.Url(), relay_fingerprint);
}

Status Client::Impl::LoadIdentity() {
  COFFRE_ASSIGN_OR_RETURN(
      auto row, sql::Prepared(*db,
                              "SELECT user_id, device_id, display_name, user_seed, device_seed, "
                              "relay_url, relay_fingerprint FROM identity WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(const bool found, row.Step());
  if (!found) return Fail(ErrorCode::kCorrupt, "profile has no identity: re-create it");
  user_id = row.ColumnText(0);
  device_id = sql::AsU32(row.ColumnInt64(1));
  display_name = row.ColumnText(2);
  COFFRE_ASSIGN_OR_RETURN(auto user, crypto::SigningKey::FromSeed(row.ColumnSecret(3).span()));
  COFFRE_ASSIGN_OR_RETURN(auto device, crypto::SigningKey::FromSeed(row.ColumnSecret(4).span()));
  user_key.emplace(std::move(user));
  device_key.emplace(std::move(device));
  COFFRE_ASSIGN_OR_RETURN(relay, ParseRelayUrl(row.ColumnText(5)));
  const std::vector<std::uint8_t> fingerprint = row.ColumnBlob(6);
  if (fingerprint.size() != relay_fingerprint.size()) {
    return Fail(ErrorCode::kCorrupt, "profile's relay fingerprint is damaged");
  }
  std::copy(fingerprint.begin(), fingerprint.end(), relay_fingerprint.begin());
  return Ok();
}

Result<RelayConnection*> Client::Impl::Relay() {
  if (connection) return connection.get();
  ConnectOptions options;
  options.address = relay;
  options.pinned = relay_fingerprint;
  COFFRE_ASSIGN_OR_RETURN(auto opened, RelayConnection::Connect(options));
  COFFRE_ASSIGN_OR_RETURN(const auto token,
                          opened->Authenticate(user_id, device_id, *device_key));
  (void)token;
  connection = std::move(opened);
  return connection.get();
}

Result<wire::Response> Client::Impl::RawCall(const wire::Request& request) {
  // A connection kept from an earlier call may have been closed by the relay meanwhile
  // (restart, idle timeout): one fresh connection is tried before giving up. Every request
  // is safe to repeat (reads, client ids, compare-and-swap versions and chain sequences).
  const bool reused = connection != nullptr;
  COFFRE_ASSIGN_OR_RETURN(RelayConnection * relay_connection, Relay());
  auto response = relay_connection->Call(request);
  if (!response && reused) {
    connection.reset();
    COFFRE_ASSIGN_OR_RETURN(relay_connection, Relay());
    response = relay_connection->Call(request);
  }
  if (!response) connection.reset();  // reopened by the next call
  return response;
}

Result<wire::Response> Client::Impl::Call(const wire::Request& request) {
  COFFRE_ASSIGN_OR_RETURN(auto response, RawCall(request));
  if (response.has_error()) {
    const Status failure = RelayFailure(response.error());
    return failure.error();
  }
  return response;
}

Status Client::Impl::UploadPreKeys(std::uint32_t count, bool new_signed_pre_key) {
  COFFRE_ASSIGN_OR_RETURN(auto next_id,
                          sql::QueryInt(*db, "SELECT next_pre_key_id FROM identity WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(auto signed_id, sql::QueryInt(
                                              *db, "SELECT signed_pre_key_id FROM identity WHERE id = 1"));
  std::uint32_t start = next_id ? sql::AsU32(*next_id) : 1;
  if (start == 0 || start + count > crypto::kMaxPreKeyId) start = 1;  // ids wrap around
  wire::Request request;
  auto* upload = request.mutable_upload_pre_keys();
  // Generating and recording the keys is one transaction: the relay never hands out a
  // prekey whose private part this profile does not hold.
  const Status transaction_status = signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(auto keys, signal->GeneratePreKeys(start, count));
    for (const auto& key : keys) {
      auto* one = upload->add_one_time_pre_keys();
      one->set_id(key.id);
      one->set_public_key(key.public_key.data(), key.public_key.size());
    }
    std::uint32_t signed_pre_key_id = signed_id ? sql::AsU32(*signed_id) : 0;
    if (new_signed_pre_key || signed_pre_key_id == 0) {
      signed_pre_key_id = signed_pre_key_id % crypto::kMaxPreKeyId + 1;
      COFFRE_ASSIGN_OR_RETURN(auto signed_key,
                              signal->GenerateSignedPreKey(signed_pre_key_id, NowMs()));
      auto* spk = upload->mutable_signed_pre_key();
      spk->set_id(signed_key.id);
      spk->set_public_key(signed_key.public_key.data(), signed_key.public_key.size());
      spk->set_signature(signed_key.signature.data(), signed_key.signature.size());
      spk->set_timestamp_ms(signed_key.timestamp_ms);
    }
    COFFRE_ASSIGN_OR_RETURN(auto bundle, signal->CreatePreKeyBundle(std::nullopt, signed_pre_key_id));
    upload->set_registration_id(bundle.registration_id);
    return sql::Run(*db,
                    "UPDATE identity SET next_pre_key_id = ?, signed_pre_key_id = ? WHERE id = 1",
                    start + count, signed_pre_key_id);
  });
  COFFRE_RETURN_IF_ERROR(transaction_status);
  COFFRE_ASSIGN_OR_RETURN(auto response, Call(std::move(request)));
  (void)response;
  return Ok();
}

}  // namespace coffre::client
