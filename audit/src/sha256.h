// Private: SHA-256 through OpenSSL, the one hash of RFC 6962 trees and of signed-note key
// ids. The digest is fetched once and each thread reuses one context, because the implicit
// fetch of EVP_sha256() on every call costs more than hashing a 65-byte node with SHA-NI.
#ifndef COFFRE_AUDIT_SRC_SHA256_H_
#define COFFRE_AUDIT_SRC_SHA256_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace coffre::audit::internal {

using Sha256Digest = std::array<std::uint8_t, 32>;

// SHA-256 of the concatenation of `parts`. Never fails: OpenSSL only fails here when memory
// runs out, and the process aborts then.
Sha256Digest Sha256(std::initializer_list<std::span<const std::uint8_t>> parts);

}  // namespace coffre::audit::internal

#endif  // COFFRE_AUDIT_SRC_SHA256_H_
