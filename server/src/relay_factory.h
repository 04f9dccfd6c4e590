// Where coffre-relay's program skeleton (main.cc) meets the relay proper: the service that
// runs behind the transport, and the `admin` commands that work on the store directly.
//
// Implemented in relay_factory.cc, next to the service.
#ifndef COFFRE_SERVER_SRC_RELAY_FACTORY_H_
#define COFFRE_SERVER_SRC_RELAY_FACTORY_H_

#include <memory>
#include <string>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"
#include "config.h"
#include "service.h"
#include "tls.h"

namespace coffre::server {

// Printed (one line, stderr) when the operator key does not open the data directory's store,
// by main for `serve` and by the admin commands; the process then exits with
// kExitWrongOperatorKey.
inline constexpr std::string_view kWrongOperatorKeyLine =
    "wrong operator key for this data directory";
inline constexpr int kExitWrongOperatorKey = 3;

// Builds the relay service over the store in config.data_dir (created on first use), opened
// with `operator_key` (32 bytes). Reads the service's settings from `config` (auth, quotas,
// rate limits, audit); `certificate_sha256` is the digest of the TLS certificate being
// served (the relay identity clients pin and sign). kWrongPassphrase if the key does not
// open an existing store; other errors as the store reports them. The service must outlive
// the transport that calls it.
Result<std::unique_ptr<Service>> MakeRelayService(const RelayConfig& config,
                                                  const crypto::SecretBytes& operator_key,
                                                  const CertificateDigest& certificate_sha256);

struct AdminEnrolOptions {
  std::string org_id;  // the organisation the code enrols into
  bool admin = false;  // the account enrolled becomes an organisation admin
};

// `coffre-relay admin enrol`: issues one enrolment code and prints it as the last word of
// the last line on stdout (scripts read it with `tail -1 | awk '{print $NF}'`). Returns the
// process exit code: 0 on success; kExitWrongOperatorKey (after printing
// kWrongOperatorKeyLine) on a wrong key; 1 otherwise, with one line on stderr.
int RunAdminEnrol(const RelayConfig& config, const crypto::SecretBytes& operator_key,
                  const AdminEnrolOptions& options);

// `coffre-relay admin status`: prints counts from the store (accounts, devices, teams,
// blobs, audit log size), one `name value` per line. Exit codes as RunAdminEnrol.
int RunAdminStatus(const RelayConfig& config, const crypto::SecretBytes& operator_key);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_RELAY_FACTORY_H_
