#include "tls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>

#include "coffre/base/unique_handle.h"
#include "coffre/crypto/random.h"
#include "config.h"

namespace coffre::server {
namespace {

using Bio = UniqueHandle<BIO, BIO_free_all>;
using Bignum = UniqueHandle<BIGNUM, BN_free>;
using EvpPkey = UniqueHandle<EVP_PKEY, EVP_PKEY_free>;
using X509Cert = UniqueHandle<X509, X509_free>;
using X509Extension = UniqueHandle<X509_EXTENSION, X509_EXTENSION_free>;

constexpr long kValidityDays = 3650;
constexpr const char* kSubjectAltNames = "DNS:localhost,IP:127.0.0.1,IP:::1";

std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

Bio MemoryBio(std::span<const std::uint8_t> bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

X509Cert ParseCertificate(std::span<const std::uint8_t> pem) {
  Bio bio = MemoryBio(pem);
  if (!bio) return nullptr;
  return X509Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Result<CertificateDigest> Digest(X509* certificate) {
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
  unsigned length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest.data(), &length) != 1 ||
      length != CertificateDigest().size()) {
    return Fail(ErrorCode::kInternal, "cannot hash the certificate");
  }
  CertificateDigest out{};
  std::copy_n(digest.begin(), out.size(), out.begin());
  return out;
}

// Fills both forms of the certificate's digest.
Status SetFingerprint(X509* certificate, TlsIdentity& identity) {
  COFFRE_ASSIGN_OR_RETURN(identity.certificate_sha256, Digest(certificate));
  identity.fingerprint_sha256 = Hex(identity.certificate_sha256);
  return Ok();
}

// Copies what a memory BIO holds into SecretBytes (the BIO's buffer is cleared on free).
crypto::SecretBytes DrainBio(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  if (size <= 0 || data == nullptr) return crypto::SecretBytes();
  return crypto::SecretBytes::CopyOf(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(size)));
}

bool AddExtension(X509* certificate, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
  X509Extension extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  return extension && X509_add_ext(certificate, extension.get(), -1) == 1;
}

Result<TlsIdentity> CreateSelfSigned() {
  EvpPkey key(EVP_EC_gen("P-256"));
  X509Cert certificate(X509_new());
  if (!key || !certificate) return Fail(ErrorCode::kInternal, "cannot generate a TLS key");

  // A random positive 127-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).
  std::vector<std::uint8_t> serial_bytes = crypto::RandomBytes(16);
  serial_bytes[0] &= 0x7f;
  serial_bytes[0] |= 0x01;
  Bignum serial(BN_bin2bn(serial_bytes.data(), static_cast<int>(serial_bytes.size()), nullptr));
  X509_NAME* name = X509_get_subject_name(certificate.get());
  const bool built =
      serial && X509_set_version(certificate.get(), X509_VERSION_3) == 1 &&
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate.get())) != nullptr &&
      // An hour back absorbs clock skew between relay and clients.
      X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600) != nullptr &&
      X509_time_adj_ex(X509_getm_notAfter(certificate.get()), static_cast<int>(kValidityDays), 0,
                       nullptr) != nullptr &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("coffre-relay"), -1, -1,
                                 0) == 1 &&
      X509_set_issuer_name(certificate.get(), name) == 1 &&
      X509_set_pubkey(certificate.get(), key.get()) == 1 &&
      AddExtension(certificate.get(), NID_basic_constraints, "critical,CA:FALSE") &&
      AddExtension(certificate.get(), NID_key_usage, "critical,digitalSignature") &&
      AddExtension(certificate.get(), NID_ext_key_usage, "serverAuth") &&
      AddExtension(certificate.get(), NID_subject_alt_name, kSubjectAltNames) &&
      AddExtension(certificate.get(), NID_subject_key_identifier, "hash") &&
      X509_sign(certificate.get(), key.get(), EVP_sha256()) > 0;
  if (!built) return Fail(ErrorCode::kInternal, "cannot build the self-signed certificate");

  Bio key_bio(BIO_new(BIO_s_mem()));
  Bio cert_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !cert_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_bio.get(), certificate.get()) != 1) {
    return Fail(ErrorCode::kInternal, "cannot encode the TLS identity");
  }
  TlsIdentity identity;
  identity.private_key_pem = DrainBio(key_bio.get());
  const crypto::SecretBytes cert_pem = DrainBio(cert_bio.get());
  identity.certificate_pem.assign(reinterpret_cast<const char*>(cert_pem.data()), cert_pem.size());
  COFFRE_RETURN_IF_ERROR(SetFingerprint(certificate.get(), identity));
  identity.created = true;
  return identity;
}

Result<TlsIdentity> LoadPair(const std::filesystem::path& certificate_path,
                             const std::filesystem::path& key_path) {
  COFFRE_ASSIGN_OR_RETURN(crypto::SecretBytes cert_pem, ReadSmallFile(certificate_path));
  COFFRE_ASSIGN_OR_RETURN(crypto::SecretBytes key_pem, ReadSmallFile(key_path));
  X509Cert certificate = ParseCertificate(cert_pem.span());
  if (!certificate) return Fail(ErrorCode::kInvalidArgument, "the TLS certificate does not parse");
  Bio key_bio = MemoryBio(key_pem.span());
  EvpPkey key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)
                      : nullptr);
  if (!key) return Fail(ErrorCode::kInvalidArgument, "the TLS private key does not parse");
  if (X509_check_private_key(certificate.get(), key.get()) != 1) {
    return Fail(ErrorCode::kInvalidArgument, "the TLS private key does not match the certificate");
  }
  TlsIdentity identity;
  identity.certificate_pem.assign(reinterpret_cast<const char*>(cert_pem.data()), cert_pem.size());
  identity.private_key_pem = std::move(key_pem);
  COFFRE_RETURN_IF_ERROR(SetFingerprint(certificate.get(), identity));
  return identity;
}

}  // namespace

Result<std::string> CertificateFingerprintSha256(std::string_view pem) {
  X509Cert certificate = ParseCertificate(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(pem.data()), pem.size()));
  if (!certificate) return Fail(ErrorCode::kInvalidArgument, "not a PEM certificate");
  COFFRE_ASSIGN_OR_RETURN(const CertificateDigest digest, Digest(certificate.get()));
  return Hex(digest);
}

Result<TlsIdentity> LoadOrCreateTlsIdentity(
    const std::filesystem::path& data_dir, const std::optional<std::filesystem::path>& certificate,
    const std::optional<std::filesystem::path>& private_key) {
  if (certificate.has_value() != private_key.has_value()) {
    return Fail(ErrorCode::kInvalidArgument, "a TLS certificate needs its private key");
  }
  if (certificate) return LoadPair(*certificate, *private_key);

  const std::filesystem::path cert_path = data_dir / kSelfSignedCertificateFile;
  const std::filesystem::path key_path = data_dir / kSelfSignedKeyFile;
  std::error_code ec;
  if (std::filesystem::exists(cert_path, ec) && std::filesystem::exists(key_path, ec)) {
    return LoadPair(cert_path, key_path);
  }
  // Either file missing (first start, or a crash between the two writes): create both. The
  // key goes first so that a certificate on disk always has its key next to it.
  COFFRE_RETURN_IF_ERROR(EnsureDataDirectory(data_dir / kSelfSignedDirectory));
  COFFRE_ASSIGN_OR_RETURN(TlsIdentity identity, CreateSelfSigned());
  COFFRE_RETURN_IF_ERROR(WriteFileAtomically(key_path, identity.private_key_pem.span(), 0600));
  COFFRE_RETURN_IF_ERROR(WriteFileAtomically(
      cert_path,
      std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(identity.certificate_pem.data()),
          identity.certificate_pem.size()),
      0644));
  return identity;
}

}  // namespace coffre::server
