#include "sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

#include "coffre/base/unique_handle.h"

namespace coffre::audit::internal {
namespace {

using EvpMd = UniqueHandle<EVP_MD, EVP_MD_free>;
using EvpMdContext = UniqueHandle<EVP_MD_CTX, EVP_MD_CTX_free>;

const EVP_MD* Sha256Method() {
  static const EvpMd method(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (method == nullptr) std::abort();  // the default provider always has SHA-256
  return method.get();
}

}  // namespace

Sha256Digest Sha256(std::initializer_list<std::span<const std::uint8_t>> parts) {
  const EVP_MD* method = Sha256Method();
  thread_local const EvpMdContext context(EVP_MD_CTX_new());
  if (context == nullptr || EVP_DigestInit_ex2(context.get(), method, nullptr) != 1) std::abort();
  for (const auto part : parts) {
    if (!part.empty() && EVP_DigestUpdate(context.get(), part.data(), part.size()) != 1) {
      std::abort();
    }
  }
  Sha256Digest digest;
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context.get(), digest.data(), &length) != 1 || length != digest.size()) {
    std::abort();
  }
  return digest;
}

}  // namespace coffre::audit::internal
