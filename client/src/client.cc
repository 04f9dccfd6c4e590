// Client: the facade's entry points (Init, Open) and the methods that only route to the
// area that implements them (client_*.cc).
#include "coffre/client/client.h"

#include <system_error>

#include "client_impl.h"
#include "coffre/client/device_link.h"
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
const std::string& Client::display_name() const { return impl_->display_name; }

namespace {

// A profile being created by `init`: removed again unless Keep() is called, so that a failed
// `init` leaves nothing behind.
class NewProfile {
 public:
  explicit NewProfile(std::filesystem::path dir) : dir_(std::move(dir)) {}
  NewProfile(const NewProfile&) = delete;
  NewProfile& operator=(const NewProfile&) = delete;
  ~NewProfile() {
    if (kept_) return;
    impl.reset();
    RemoveProfileFiles(dir_);
  }
  void Keep() { kept_ = true; }

  std::unique_ptr<Client::Impl> impl;

 private:
  std::filesystem::path dir_;
  bool kept_ = false;
};

struct RelayTarget {
  RelayAddress address;
  std::optional<CertificateFingerprint> pinned;
};

// What both kinds of `init` check before anything is written.
Result<RelayTarget> CheckInit(const std::filesystem::path& profile_dir,
                              const crypto::SecretBytes& passphrase, const std::string& user_id,
                              const std::string& relay_url,
                              const std::optional<std::string>& relay_fingerprint) {
  if (auto valid = protocol::ValidateUserId(user_id); !valid) {
    return Fail(ErrorCode::kInvalidArgument, "login must be 1 to 64 of a-z 0-9 . _ -");
  }
  if (passphrase.empty()) return Fail(ErrorCode::kInvalidArgument, "passphrase is empty");
  RelayTarget target;
  COFFRE_ASSIGN_OR_RETURN(target.address, ParseRelayUrl(relay_url));
  if (relay_fingerprint) {
    COFFRE_ASSIGN_OR_RETURN(target.pinned, ParseFingerprint(*relay_fingerprint));
  }
  if (std::filesystem::exists(profile_dir / kProfileDatabase)) {
    return Fail(ErrorCode::kAlreadyExists, "this folder already holds a profile");
  }
  return target;
}

// Creates the profile store and this device's own keys (device id, signing key, libsignal
// identity). Returns the certificate body for the user key to sign.
Result<wire::DeviceCertificateBody> CreateDevice(NewProfile& profile,
                                                 const std::filesystem::path& profile_dir,
                                                 const crypto::SecretBytes& passphrase,
                                                 const std::string& user_id) {
  COFFRE_ASSIGN_OR_RETURN(profile.impl, Client::Impl::CreateProfile(profile_dir, passphrase));
  Client::Impl& impl = *profile.impl;
  impl.user_id = user_id;
  impl.device_id = NewDeviceId();
  impl.device_key.emplace(crypto::SigningKey::Generate());
  COFFRE_RETURN_IF_ERROR(impl.AttachSignal());
  wire::DeviceCertificateBody body;
  const Status generated = impl.signal_stores->RunInTransaction([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(impl.signal->GenerateIdentity());
    COFFRE_ASSIGN_OR_RETURN(const auto signal_identity, impl.signal->IdentityPublicKey());
    body.set_user_id(impl.user_id);
    body.set_device_id(impl.device_id);
    const auto& device_public = impl.device_key->verify_key().bytes();
    body.set_device_signing_key(device_public.data(), device_public.size());
    body.set_signal_identity_key(signal_identity.data(), signal_identity.size());
    body.set_created_ms(NowMs());
    return Ok();
  });
  if (!generated) return generated.error();
  return body;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Init(const std::filesystem::path& profile_dir,
                                             const crypto::SecretBytes& passphrase,
                                             const InitOptions& options, InitReport* report) {
  if (options.display_name.empty() || options.display_name.size() > 128) {
    return Fail(ErrorCode::kInvalidArgument, "name must be 1 to 128 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(const RelayTarget target,
                          CheckInit(profile_dir, passphrase, options.user_id, options.relay_url,
                                    options.relay_fingerprint));
  // The relay first: nothing is written when it is unreachable or not the pinned one.
  ConnectOptions connect;
  connect.address = target.address;
  connect.pinned = target.pinned;
  COFFRE_ASSIGN_OR_RETURN(auto connection, RelayConnection::Connect(connect));

  NewProfile profile(profile_dir);
  COFFRE_ASSIGN_OR_RETURN(const auto body,
                          CreateDevice(profile, profile_dir, passphrase, options.user_id));
  Impl& impl = *profile.impl;
  impl.display_name = options.display_name;
  impl.user_key.emplace(crypto::SigningKey::Generate());
  impl.relay = target.address;
  impl.relay_fingerprint = connection->relay_identity();
  COFFRE_ASSIGN_OR_RETURN(const auto certificate,
                          protocol::SignDeviceCertificate(body, *impl.user_key));
  COFFRE_RETURN_IF_ERROR(impl.SaveIdentity(certificate));

  wire::Request request;
  auto* reg = request.mutable_register_();
  reg->set_enrolment_code(std::string(reinterpret_cast<const char*>(options.enrolment_code.data()),
                                      options.enrolment_code.size()));
  reg->set_user_id(impl.user_id);
  const auto& user_public = impl.user_key->verify_key().bytes();
  reg->set_user_identity_key(user_public.data(), user_public.size());
  *reg->mutable_first_device() = certificate;
  auto registered = connection->Call(std::move(request));
  // The request held the enrolment code; protobuf strings cannot be wiped in place, so the
  // request is dropped at once (the code is single-use and spent either way).
  connection.reset();
  if (!registered) return registered.error();
  if (registered->has_error()) {
    return registered->error().code() == wire::ERROR_CODE_ENROLMENT_INVALID
               ? Fail(ErrorCode::kAuthenticationFailed,
                      "enrolment code unknown, already used or expired")
           : registered->error().code() == wire::ERROR_CODE_ALREADY_EXISTS
               ? Fail(ErrorCode::kAlreadyExists, "this login is already taken on the relay")
               : Fail(ErrorCode::kInvalidArgument, "the relay refused the registration");
  }
  COFFRE_RETURN_IF_ERROR(sql::Run(*impl.db, "UPDATE identity SET registered = 1 WHERE id = 1"));
  // The account exists from here on: the profile is kept whatever follows, and a failure to
  // upload prekeys is repaired by the next `sync`.
  profile.Keep();
  COFFRE_RETURN_IF_ERROR(impl.UploadPreKeys(kPreKeyBatch, /*new_signed_pre_key=*/true));

  if (report != nullptr) {
    report->user_id = impl.user_id;
    report->device_id = impl.device_id;
    report->relay_fingerprint = FormatFingerprint(impl.relay_fingerprint);
    report->fingerprint_was_given = target.pinned.has_value();
    report->admin = registered->registered().admin();
  }
  return std::unique_ptr<Client>(new Client(std::move(profile.impl)));
}

Result<std::unique_ptr<Client>> Client::InitLinked(const std::filesystem::path& profile_dir,
                                                   const crypto::SecretBytes& passphrase,
                                                   const LinkInitOptions& options,
                                                   InitReport* report,
                                                   const std::function<bool()>& keep_going) {
  COFFRE_ASSIGN_OR_RETURN(const RelayTarget target,
                          CheckInit(profile_dir, passphrase, options.user_id, options.relay_url,
                                    options.relay_fingerprint));
  COFFRE_ASSIGN_OR_RETURN(const auto code, NormalizeLinkCode(options.link_code.span()));
  ConnectOptions connect;
  connect.address = target.address;
  connect.pinned = target.pinned;
  COFFRE_ASSIGN_OR_RETURN(auto connection, RelayConnection::Connect(connect));
  COFFRE_ASSIGN_OR_RETURN(const LinkKeys keys, DeriveLinkKeys(code, options.user_id));

  NewProfile profile(profile_dir);
  COFFRE_ASSIGN_OR_RETURN(const auto body,
                          CreateDevice(profile, profile_dir, passphrase, options.user_id));
  Impl& impl = *profile.impl;
  impl.relay = target.address;
  impl.relay_fingerprint = connection->relay_identity();
  COFFRE_ASSIGN_OR_RETURN(const LinkHandover handover,
                          impl.RequestLink(*connection, keys, body, keep_going));
  connection.reset();
  COFFRE_RETURN_IF_ERROR(impl.AdoptHandover(handover));
  // The existing device added this one to the account before it answered: from here on the
  // profile is this user's device, whatever follows.
  profile.Keep();
  COFFRE_RETURN_IF_ERROR(impl.UploadPreKeys(kPreKeyBatch, /*new_signed_pre_key=*/true));
  COFFRE_RETURN_IF_ERROR(impl.AdoptLinkedTeams(handover.teams));
  if (report != nullptr) {
    report->user_id = impl.user_id;
    report->device_id = impl.device_id;
    report->relay_fingerprint = FormatFingerprint(impl.relay_fingerprint);
    report->fingerprint_was_given = target.pinned.has_value();
  }
  return std::unique_ptr<Client>(new Client(std::move(profile.impl)));
}

Result<std::unique_ptr<Client>> Client::Open(const std::filesystem::path& profile_dir,
                                             const crypto::SecretBytes& passphrase) {
  COFFRE_ASSIGN_OR_RETURN(auto impl, Impl::OpenProfile(profile_dir, passphrase));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

}  // namespace coffre::client
