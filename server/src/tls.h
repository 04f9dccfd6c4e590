// The relay's TLS identity: a certificate and private key, from the operator's files or a
// self-signed pair the relay creates once in its data directory.
//
// Clients trust a relay by pinning the SHA-256 fingerprint of its certificate (printed at
// start), so a self-signed certificate is as good as a CA-issued one for them; an operator
// who fronts the relay with a public name can still configure a CA-issued pair.
// This file uses OpenSSL's EVP/X509 API only; no Asio.
#ifndef COFFRE_SERVER_SRC_TLS_H_
#define COFFRE_SERVER_SRC_TLS_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/base/result.h"
#include "coffre/crypto/secret_bytes.h"

namespace coffre::server {

// Under the data directory (docs/operations.md "What a relay holds").
inline constexpr std::string_view kSelfSignedDirectory = "tls";
inline constexpr std::string_view kSelfSignedCertificateFile = "tls/relay-cert.pem";
inline constexpr std::string_view kSelfSignedKeyFile = "tls/relay-key.pem";

// SHA-256 of a certificate's DER encoding: what clients pin, and the relay identity they
// sign when they authenticate.
using CertificateDigest = std::array<std::uint8_t, 32>;

struct TlsIdentity {
  std::string certificate_pem;             // the leaf certificate (then any chain), PEM
  crypto::SecretBytes private_key_pem;     // PEM, unencrypted; wiped on destruction
  CertificateDigest certificate_sha256{};  // SHA-256 of the leaf's DER
  std::string fingerprint_sha256;          // the same, as 64 lowercase hex digits
  bool created = false;                    // true if this call created a self-signed pair
};

// With `certificate` and `private_key` both set: reads those PEM files and checks that the
// key matches the certificate. Otherwise uses data_dir/tls/relay-cert.pem and
// relay-key.pem (tls/ created with mode 0700), creating them if either is missing: a P-256 key
// (file mode 0600) and a self-signed X.509 v3 certificate (CN=coffre-relay, SAN
// localhost/127.0.0.1/::1, serverAuth, 10 years: clients pin the fingerprint, so a shorter life
// would only force every client to re-pin). Files are written to a temporary name, fsync'd and
// renamed into place. kIo if files cannot be read or written, kInvalidArgument if they do not parse
// or the key does not match, kInternal if OpenSSL fails to generate.
Result<TlsIdentity> LoadOrCreateTlsIdentity(
    const std::filesystem::path& data_dir,
    const std::optional<std::filesystem::path>& certificate = std::nullopt,
    const std::optional<std::filesystem::path>& private_key = std::nullopt);

// SHA-256 over the DER encoding of the first certificate in `pem`, as 64 lowercase hex
// digits. kInvalidArgument if `pem` holds no certificate.
Result<std::string> CertificateFingerprintSha256(std::string_view pem);

}  // namespace coffre::server

#endif  // COFFRE_SERVER_SRC_TLS_H_
