// coffre-relay's service and admin commands over the data directory (relay_factory.h).
#include "relay_factory.h"

#include "audit_recorder.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "coffre/audit/legal_hold.h"
#include "coffre/crypto/random.h"
#include "coffre/protocol/validation.h"
#include "coffre/storage/relay_store.h"
#include "relay_service.h"
#include "relay_util.h"
#include "tls.h"

namespace coffre::server {
namespace {

// RFC 4648 base32 alphabet: upper case and digits only, so a code read aloud or typed on a
// phone survives, and every character is in the protocol's enrolment code alphabet.
constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
// 20 characters of 5 bits: 100 bits, beyond guessing even without the rate limit.
constexpr std::size_t kEnrolmentCodeLength = 20;

void PrintLine(std::FILE* stream, std::string_view line) {
  std::fprintf(stream, "%.*s\n", static_cast<int>(line.size()), line.data());
}

// Opens the store of `config.data_dir`; on failure prints the line the operator needs and
// sets `exit_code`.
std::unique_ptr<storage::RelayStore> OpenStoreForAdmin(const RelayConfig& config,
                                                       const crypto::SecretBytes& operator_key,
                                                       int& exit_code) {
  auto store = storage::OpenSqlCipherRelayStore(config.data_dir / kRelayStoreFile, operator_key);
  if (store) return std::move(*store);
  if (store.error().code() == ErrorCode::kWrongPassphrase) {
    PrintLine(stderr, kWrongOperatorKeyLine);
    exit_code = kExitWrongOperatorKey;
  } else {
    std::fprintf(stderr, "coffre-relay: cannot open the relay store: %.*s (%.*s)\n",
                 static_cast<int>(store.error().context().size()), store.error().context().data(),
                 static_cast<int>(ErrorCodeName(store.error().code()).size()),
                 ErrorCodeName(store.error().code()).data());
    exit_code = 1;
  }
  return nullptr;
}

}  // namespace

Result<std::unique_ptr<Service>> MakeRelayService(const RelayConfig& config,
                                                  const crypto::SecretBytes& operator_key,
                                                  const CertificateDigest& certificate_sha256) {
  if (operator_key.size() != kOperatorKeyBytes) {
    return Fail(ErrorCode::kInvalidArgument, "the operator key must be 32 bytes");
  }
  COFFRE_RETURN_IF_ERROR(EnsureDataDirectory(config.data_dir));
  COFFRE_ASSIGN_OR_RETURN(
      std::unique_ptr<storage::RelayStore> store,
      storage::OpenSqlCipherRelayStore(config.data_dir / kRelayStoreFile, operator_key));
  RelayServiceOptions options;
  options.data_dir = config.data_dir;
  // What clients sign in Authenticate: the certificate the transport serves.
  options.relay_identity = certificate_sha256;
  options.auth = config.auth;
  options.quotas = config.quotas;
  options.rate_limits = config.rate_limits;
  COFFRE_ASSIGN_OR_RETURN(auto audit,
                          AuditRecorder::Open(config.data_dir, operator_key, config.audit, nullptr));
  options.audit = std::move(audit);
  return NewRelayService(std::move(options), std::move(store));
}

int RunAdminEnrol(const RelayConfig& config, const crypto::SecretBytes& operator_key,
                  const AdminEnrolOptions& options) {
  if (!protocol::ValidateOrgId(options.org_id)) {
    PrintLine(stderr, "coffre-relay: --org must be 1..64 characters of [a-z0-9._-]");
    return 1;
  }
  int exit_code = 0;
  std::unique_ptr<storage::RelayStore> store = OpenStoreForAdmin(config, operator_key, exit_code);
  if (store == nullptr) return exit_code;

  std::string code(kEnrolmentCodeLength, '\0');
  for (char& c : code) {
    c = kBase32[crypto::RandomUniform(static_cast<std::uint32_t>(kBase32.size()))];
  }
  const Sha256Digest code_hash = Sha256(AsBytes(code));
  const std::int64_t expires_ms =
      SystemNowMs() +
      std::chrono::duration_cast<std::chrono::milliseconds>(config.auth.enrolment_code_lifetime)
          .count();
  if (auto created = store->CreateEnrolment(code_hash, options.org_id, options.admin, expires_ms);
      !created) {
    std::fprintf(stderr, "coffre-relay: cannot store the enrolment: %.*s\n",
                 static_cast<int>(created.error().context().size()),
                 created.error().context().data());
    return 1;
  }
  // The code is the last word of the last line: scripts read it with awk '{print $NF}'.
  std::printf("enrolment code for %s: %s\n", options.org_id.c_str(), code.c_str());
  std::fflush(stdout);
  crypto::Wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(code.data()), code.size()));
  return 0;
}

int RunAdminStatus(const RelayConfig& config, const crypto::SecretBytes& operator_key) {
  int exit_code = 0;
  std::unique_ptr<storage::RelayStore> store = OpenStoreForAdmin(config, operator_key, exit_code);
  if (store == nullptr) return exit_code;
  auto counts = store->Counts();
  if (!counts) {
    std::fprintf(stderr, "coffre-relay: cannot read counts: %.*s\n",
                 static_cast<int>(counts.error().context().size()),
                 counts.error().context().data());
    return 1;
  }
  std::printf("users %llu\n", static_cast<unsigned long long>(counts->users));
  std::printf("devices %llu\n", static_cast<unsigned long long>(counts->devices));
  std::printf("teams %llu\n", static_cast<unsigned long long>(counts->teams));
  std::printf("queued_envelopes %llu\n", static_cast<unsigned long long>(counts->queued_envelopes));
  std::printf("blob_bytes %llu\n", static_cast<unsigned long long>(counts->blob_bytes));
  // The audit log: its size and the key its checkpoints are signed with, which auditors pin.
  if (auto audit = AuditRecorder::Open(config.data_dir, operator_key, config.audit, nullptr)) {
    std::printf("audit_entries %llu\n", static_cast<unsigned long long>((*audit)->log().Size()));
    std::printf("audit_log_key %s\n", (*audit)->VerifierKey().c_str());
    // Months whose details retention keeps: configured, or under a signed legal hold.
    if (auto held = (*audit)->HeldMonths(); held && !held->empty()) {
      std::string months;
      for (const std::int64_t month : *held) {
        if (!months.empty()) months += ',';
        months += audit::FormatMonth(month);
      }
      std::printf("audit_held_months %s\n", months.c_str());
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace coffre::server
