#include "tls.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "server/temp_dir.h"

namespace coffre::server {
namespace {

using testing::TempDir;

void WriteText(const std::filesystem::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string AsText(const crypto::SecretBytes& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(TlsTest, SelfSignedIdentityIsCreatedOnceThenLoaded) {
  TempDir dir;
  auto created = LoadOrCreateTlsIdentity(dir.path());
  ASSERT_TRUE(created);
  EXPECT_TRUE(created->created);
  EXPECT_EQ(created->fingerprint_sha256.size(), 64u);
  EXPECT_EQ(created->fingerprint_sha256.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(created->certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(AsText(created->private_key_pem).find("PRIVATE KEY"), std::string::npos);

  struct stat info {};
  ASSERT_EQ(stat((dir.path() / kSelfSignedKeyFile).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);

  auto loaded = LoadOrCreateTlsIdentity(dir.path());
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->created);
  EXPECT_EQ(loaded->fingerprint_sha256, created->fingerprint_sha256);
  EXPECT_EQ(loaded->certificate_pem, created->certificate_pem);

  EXPECT_EQ(loaded->certificate_sha256, created->certificate_sha256);
  EXPECT_EQ(created->fingerprint_sha256.substr(0, 4),
            (std::string{"0123456789abcdef"[created->certificate_sha256[0] >> 4],
                         "0123456789abcdef"[created->certificate_sha256[0] & 15],
                         "0123456789abcdef"[created->certificate_sha256[1] >> 4],
                         "0123456789abcdef"[created->certificate_sha256[1] & 15]}));
  ASSERT_EQ(stat((dir.path() / kSelfSignedDirectory).c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);

  auto computed = CertificateFingerprintSha256(loaded->certificate_pem);
  ASSERT_TRUE(computed);
  EXPECT_EQ(*computed, created->fingerprint_sha256);
}

TEST(TlsTest, MissingKeyRecreatesThePair) {
  TempDir dir;
  auto first = LoadOrCreateTlsIdentity(dir.path());
  ASSERT_TRUE(first);
  std::filesystem::remove(dir.path() / kSelfSignedKeyFile);
  auto second = LoadOrCreateTlsIdentity(dir.path());
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->created);
  EXPECT_NE(second->fingerprint_sha256, first->fingerprint_sha256);
}

TEST(TlsTest, ConfiguredPairIsLoadedAndAMismatchedKeyRefused) {
  TempDir a;
  TempDir b;
  auto one = LoadOrCreateTlsIdentity(a.path());
  auto two = LoadOrCreateTlsIdentity(b.path());
  ASSERT_TRUE(one && two);
  const auto cert = a.path() / kSelfSignedCertificateFile;
  const auto key = a.path() / kSelfSignedKeyFile;
  auto configured = LoadOrCreateTlsIdentity("/nonexistent", cert, key);
  ASSERT_TRUE(configured);
  EXPECT_FALSE(configured->created);
  EXPECT_EQ(configured->fingerprint_sha256, one->fingerprint_sha256);

  auto mismatched = LoadOrCreateTlsIdentity("/nonexistent", cert, b.path() / kSelfSignedKeyFile);
  ASSERT_FALSE(mismatched);
  EXPECT_EQ(mismatched.error().code(), ErrorCode::kInvalidArgument);

  EXPECT_FALSE(LoadOrCreateTlsIdentity("/nonexistent", cert, std::nullopt));
  EXPECT_EQ(LoadOrCreateTlsIdentity("/nonexistent", cert, a.path() / "missing.pem").error().code(),
            ErrorCode::kNotFound);
  WriteText(a.path() / "garbage.pem", "not a certificate");
  EXPECT_EQ(LoadOrCreateTlsIdentity("/nonexistent", a.path() / "garbage.pem", key).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST(TlsTest, FingerprintNeedsACertificate) {
  EXPECT_FALSE(CertificateFingerprintSha256("-----BEGIN NOTHING-----"));
}

}  // namespace
}  // namespace coffre::server
