// The relay service: what coffre-relay does with every request that reaches it through the
// transport (service.h). It stores and forwards ciphertext, checks every signature and
// right it can check without content keys, and never holds a content key (DESIGN.md
// "Relay"; docs/protocol.md "Wire protocol").
//
// Who may do what (threat-model/decisions/0009-relay-service-authorisation.md):
//  - a connection that has not authenticated may only Register, ChallengeRequest,
//    Authenticate and ResumeSession;
//  - a device reads, acknowledges and is pushed only its own mailbox, uploads only its own
//    prekeys;
//  - only devices of a team's current members (per the team chain) read the team's chain,
//    items and blob status; admins, members and guests write items and blobs; auditors read
//    manifests (their metadata is ciphertext) but neither write nor download blob bytes.
#ifndef COFFRE_SERVER_SRC_RELAY_SERVICE_H_
#define COFFRE_SERVER_SRC_RELAY_SERVICE_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/protocol/limits.h"
#include "coffre/storage/relay_store.h"
#include "config.h"
#include "audit_recorder.h"
#include "service.h"

namespace coffre::server {

// The store's file in the data directory (docs/operations.md).
inline constexpr std::string_view kRelayStoreFile = "relay.db";

// A device whose one-time prekeys fall below this many after a fetch is sent PreKeysLow.
inline constexpr std::uint32_t kPreKeysLowThreshold = 10;

// What the service needs besides its store.
struct RelayServiceOptions {
  // Blob files live under data_dir/blobs.
  std::filesystem::path data_dir;
  // SHA-256 of the relay's TLS certificate (DER): what clients sign in Authenticate.
  std::array<std::uint8_t, protocol::kRelayIdentitySize> relay_identity{};
  AuthConfig auth;
  QuotaConfig quotas;
  RateLimitConfig rate_limits;
  // Wall clock, milliseconds since the Unix epoch; empty means the system clock. Tests set
  // it to expire challenges and tokens without sleeping.
  std::function<std::int64_t()> clock;
  // The audit log (decision 0016); null: this relay records nothing and answers the audit
  // methods with NOT_FOUND.
  std::shared_ptr<AuditRecorder> audit;
};

// Builds the service over `store` (which it keeps). kIo if the blob directory cannot be
// created; kInvalidArgument if `store` is null. The service must outlive the transport.
Result<std::unique_ptr<Service>> NewRelayService(RelayServiceOptions options,
                                                 std::unique_ptr<storage::RelayStore> store);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_RELAY_SERVICE_H_
