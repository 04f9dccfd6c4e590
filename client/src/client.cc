// Client: the facade's entry points (Init, Open) and the methods that only route to the
// area that implements them (client_*.cc).
#include "coffre/client/client.h"

#include <system_error>

#include "client_impl.h"
#include "coffre/crypto/random.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/validation.h"
#include "profile_sql.h"

namespace coffre::client {
namespace {

// Removes what CreateProfile wrote, so that a failed `init` leaves nothing behind.
void RemoveProfileFiles(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const char* suffix : {"", ".kdf", ".kdf.new", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(dir / (std::string(kProfileDatabase) + suffix), ec);
  }
  std::filesystem::remove(dir, ec);  // only if it is now empty
}

std::uint32_t NewDeviceId() {
  // Device ids are 1..2^31-1 and unique per user; a random one never needs coordination
  // between a user's devices.
  return crypto::RandomUniform(protocol::kMaxDeviceId) + 1;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kMember: return "member";
    case Role::kGuest: return "guest";
    case Role::kAuditor: return "auditor";
  }
  return "member";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "admin") return Role::kAdmin;
  if (name == "member") return Role::kMember;
  if (name == "guest") return Role::kGuest;
  if (name == "auditor") return Role::kAuditor;
  return Fail(ErrorCode::kInvalidArgument, "role must be admin, member, guest or auditor");
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const std::string& Client::user_id() const { return impl_->user_id; }
std::uint32_t Client::device_id() const { return impl_->device_id; }

Result<std::unique_ptr<Client>> Client::Init(const std::filesystem::path& profile_dir,
                                             const crypto::SecretBytes& passphrase,
                                             const InitOptions& options, InitReport* report) {
  if (auto valid = protocol::ValidateUserId(options.user_id); !valid) {
    return Fail(ErrorCode::kInvalidArgument, "login must be 1 to 64 of a-z 0-9 . _ -");
  }
  if (options.display_name.empty() || options.display_name.size() > 128) {
    return Fail(ErrorCode::kInvalidArgument, "name must be 1 to 128 bytes");
  }
  if (passphrase.empty()) return Fail(ErrorCode::kInvalidArgument, "passphrase is empty");
  COFFRE_ASSIGN_OR_RETURN(const RelayAddress address, ParseRelayUrl(options.relay_url));
  std::optional<CertificateFingerprint> pinned;
  if (options.relay_fingerprint) {
    COFFRE_ASSIGN_OR_RETURN(pinned, ParseFingerprint(*options.relay_fingerprint));
  }
  if (std::filesystem::exists(profile_dir / kProfileDatabase)) {
    return Fail(ErrorCode::kAlreadyExists, "this folder already holds a profile");
  }

  // The relay first: nothing is written when it is unreachable or not the pinned one.
  ConnectOptions connect;
  connect.address = address;
  connect.pinned = pinned;
  COFFRE_ASSIGN_OR_RETURN(auto connection, RelayConnection::Connect(connect));

  const bool existed = std::filesystem::exists(profile_dir);
  auto created = Impl::CreateProfile(profile_dir, passphrase);
  if (!created) {
    if (!existed) RemoveProfileFiles(profile_dir);
    return created.error();
  }
  std::unique_ptr<Impl> impl = std::move(*created);
  auto cleanup_on_failure = [&](const Error& error) -> Error {
    impl.reset();
    RemoveProfileFiles(profile_dir);
    return error;
  };

  impl->user_id = options.user_id;
  impl->device_id = NewDeviceId();
  impl->display_name = options.display_name;
  impl->user_key.emplace(crypto::SigningKey::Generate());
  impl->device_key.emplace(crypto::SigningKey::Generate());
  impl->relay = address;
  impl->relay_fingerprint = connection->relay_identity();

  wire::DeviceCertificate certificate;
  if (auto attached = impl->AttachSignal(); !attached) return cleanup_on_failure(attached.error());
  Status prepared = impl->signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(impl->signal->GenerateIdentity());
    COFFRE_ASSIGN_OR_RETURN(const auto signal_identity, impl->signal->IdentityPublicKey());
    wire::DeviceCertificateBody body;
    body.set_user_id(impl->user_id);
    body.set_device_id(impl->device_id);
    const auto& device_public = impl->device_key->verify_key().bytes();
    body.set_device_signing_key(device_public.data(), device_public.size());
    body.set_signal_identity_key(signal_identity.data(), signal_identity.size());
    body.set_created_ms(NowMs());
    COFFRE_ASSIGN_OR_RETURN(certificate,
                            protocol::SignDeviceCertificate(body, *impl->user_key));
    return impl->SaveIdentity(certificate);
  });
  if (!prepared) return cleanup_on_failure(prepared.error());

  wire::Request request;
  auto* reg = request.mutable_register_();
  reg->set_enrolment_code(std::string(reinterpret_cast<const char*>(options.enrolment_code.data()),
                                      options.enrolment_code.size()));
  reg->set_user_id(impl->user_id);
  const auto& user_public = impl->user_key->verify_key().bytes();
  reg->set_user_identity_key(user_public.data(), user_public.size());
  *reg->mutable_first_device() = certificate;
  impl->connection = std::move(connection);
  auto registered = impl->connection->Call(std::move(request));
  // The request held the enrolment code; protobuf strings cannot be wiped in place, so the
  // request is dropped at once (the code is single-use and spent either way).
  if (!registered) return cleanup_on_failure(registered.error());
  if (registered->has_error()) {
    impl->connection.reset();
    Status refused =
        registered->error().code() == wire::ERROR_CODE_ENROLMENT_INVALID
            ? Status(Fail(ErrorCode::kAuthenticationFailed,
                          "enrolment code unknown, already used or expired"))
        : registered->error().code() == wire::ERROR_CODE_ALREADY_EXISTS
            ? Status(Fail(ErrorCode::kAlreadyExists, "this login is already taken on the relay"))
            : Status(Fail(ErrorCode::kInvalidArgument, "the relay refused the registration"));
    return cleanup_on_failure(refused.error());
  }
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl->db, "UPDATE identity SET registered = 1 WHERE id = 1"));

  // Authentication and prekeys: the account exists from here on, so a failure keeps the
  // profile and the next `sync` uploads the prekeys.
  impl->connection.reset();
  COFFRE_RETURN_IF_ERROR(impl->UploadPreKeys(kPreKeyBatch, /*new_signed_pre_key=*/true));

  if (report != nullptr) {
    report->user_id = impl->user_id;
    report->device_id = impl->device_id;
    report->relay_fingerprint = FormatFingerprint(impl->relay_fingerprint);
    report->fingerprint_was_given = pinned.has_value();
    report->admin = registered->registered().admin();
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<std::unique_ptr<Client>> Client::Open(const std::filesystem::path& profile_dir,
                                             const crypto::SecretBytes& passphrase) {
  COFFRE_ASSIGN_OR_RETURN(auto impl, Impl::OpenProfile(profile_dir, passphrase));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

}  // namespace coffre::client
