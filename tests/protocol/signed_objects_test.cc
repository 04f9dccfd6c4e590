#include "coffre/protocol/signed_objects.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/protocol/errors.h"
#include "coffre/protocol/validation.h"
#include "protocol/test_util.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;
using testing::Describe;
using testing::DeviceDirectory;
using testing::Filled;
using testing::KeyBytes;
using testing::SignalKey;

std::vector<std::uint8_t> Vec(const std::string& bytes) {
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

// ---------------------------------------------------------------------------------------
// Device certificates

class DeviceCertificateTest : public ::testing::Test {
 protected:
  DeviceCertificateTest() {
    body_.set_user_id("alice");
    body_.set_device_id(3);
    body_.set_device_signing_key(KeyBytes(device_key_.verify_key()));
    body_.set_signal_identity_key(SignalKey());
    body_.set_created_ms(1'700'000'000'000);
  }

  v1::DeviceCertificate Signed() {
    Result<v1::DeviceCertificate> certificate = SignDeviceCertificate(body_, user_key_);
    EXPECT_TRUE(certificate.has_value()) << Describe(certificate);
    return certificate.has_value() ? *certificate : v1::DeviceCertificate();
  }

  crypto::SigningKey user_key_ = crypto::SigningKey::Generate();
  crypto::SigningKey device_key_ = crypto::SigningKey::Generate();
  v1::DeviceCertificateBody body_;
};

TEST_F(DeviceCertificateTest, GoodCertificateVerifiesAndYieldsItsFields) {
  Result<VerifiedDevice> device = VerifyDeviceCertificate(Signed(), user_key_.verify_key());
  ASSERT_TRUE(device.has_value()) << Describe(device);
  EXPECT_EQ(device->user_id, "alice");
  EXPECT_EQ(device->device_id, 3u);
  EXPECT_EQ(device->signing_key.bytes(), device_key_.verify_key().bytes());
  EXPECT_EQ(std::string(device->signal_identity_key.begin(), device->signal_identity_key.end()),
            SignalKey());
  EXPECT_EQ(device->created_ms, 1'700'000'000'000u);
}

TEST_F(DeviceCertificateTest, WrongUserKeyIsRefused) {
  const auto other = crypto::SigningKey::Generate();
  EXPECT_TRUE(
      FailedWith(VerifyDeviceCertificate(Signed(), other.verify_key()), Failure::kBadSignature));
}

TEST_F(DeviceCertificateTest, FlippedBitAnywhereIsRefused) {
  const v1::DeviceCertificate good = Signed();
  for (std::size_t i = 0; i < good.body().size(); ++i) {
    v1::DeviceCertificate bad = good;
    (*bad.mutable_body())[i] = static_cast<char>(good.body()[i] ^ 0x01);
    EXPECT_TRUE(
        FailedWith(VerifyDeviceCertificate(bad, user_key_.verify_key()), Failure::kBadSignature))
        << "body byte " << i;
  }
  for (std::size_t i = 0; i < good.signature().size(); ++i) {
    v1::DeviceCertificate bad = good;
    (*bad.mutable_signature())[i] = static_cast<char>(good.signature()[i] ^ 0x80);
    EXPECT_TRUE(
        FailedWith(VerifyDeviceCertificate(bad, user_key_.verify_key()), Failure::kBadSignature))
        << "signature byte " << i;
  }
}

TEST_F(DeviceCertificateTest, BodyReplacedByTheRelayIsRefused) {
  v1::DeviceCertificate certificate = Signed();
  const auto relay_device = crypto::SigningKey::Generate();
  body_.set_device_signing_key(KeyBytes(relay_device.verify_key()));
  certificate.set_body(body_.SerializeAsString());
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kBadSignature));
}

TEST_F(DeviceCertificateTest, WrongSizedSignatureOrOversizedBodyIsRefusedBeforeVerifying) {
  v1::DeviceCertificate certificate = Signed();
  certificate.set_signature(Filled(63));
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kInvalidSignatureSize));
  certificate = Signed();
  certificate.set_body(Filled(kMaxCertificateBody + 1));
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kSignedBodyTooLarge));
}

TEST_F(DeviceCertificateTest, SignedGarbageIsRefusedAsMalformed) {
  // A user key that signs nonsense (a buggy client) still yields no certificate.
  v1::DeviceCertificate certificate;
  certificate.set_body("\xff\xff\xff");
  const auto signature = user_key_.Sign(kDeviceCertificateLabel, Vec(certificate.body()));
  certificate.set_signature(signature.data(), signature.size());
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kSignedBodyUnparsable));
}

TEST_F(DeviceCertificateTest, SignatureUnderAnotherLabelIsRefused) {
  v1::DeviceCertificate certificate = Signed();
  const auto signature = user_key_.Sign(kItemManifestLabel, Vec(certificate.body()));
  certificate.set_signature(signature.data(), signature.size());
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kBadSignature));
}

TEST_F(DeviceCertificateTest, SigningRefusesAnInvalidBody) {
  body_.set_user_id("Alice");
  EXPECT_TRUE(FailedWith(SignDeviceCertificate(body_, user_key_), Failure::kInvalidUserId));
  body_.set_user_id("alice");
  body_.set_device_id(0);
  EXPECT_TRUE(FailedWith(SignDeviceCertificate(body_, user_key_), Failure::kInvalidDeviceId));
  body_.set_device_id(3);
  body_.set_device_signing_key(Filled(32, 0));  // the identity point: small order
  EXPECT_TRUE(FailedWith(SignDeviceCertificate(body_, user_key_), Failure::kInvalidEd25519Key));
  body_.set_device_signing_key(KeyBytes(device_key_.verify_key()));
  body_.set_signal_identity_key(Filled(33, 0x06));
  EXPECT_TRUE(FailedWith(SignDeviceCertificate(body_, user_key_), Failure::kInvalidSignalKey));
}

TEST_F(DeviceCertificateTest, UnknownFieldInTheSignedBodyIsRefused) {
  // Field 15, varint 1: signed by the user, but not part of version 1.
  std::string bytes = body_.SerializeAsString() + std::string("\x78\x01", 2);
  v1::DeviceCertificate certificate;
  certificate.set_body(bytes);
  const auto signature = user_key_.Sign(kDeviceCertificateLabel, Vec(bytes));
  certificate.set_signature(signature.data(), signature.size());
  EXPECT_TRUE(FailedWith(VerifyDeviceCertificate(certificate, user_key_.verify_key()),
                         Failure::kUnknownField));
}

// ---------------------------------------------------------------------------------------
// Authentication and revocation

TEST(AuthChallengeTest, MessageHasTheDocumentedLayout) {
  const std::vector<std::uint8_t> nonce(32, 0xAA);
  const std::vector<std::uint8_t> relay(32, 0xBB);
  Result<std::vector<std::uint8_t>> message = AuthChallengeMessage("bob", 0x01020304, nonce, relay);
  ASSERT_TRUE(message.has_value()) << Describe(message);
  const std::string expected = std::string(
                                   "\x00\x03"
                                   "bob"
                                   "\x01\x02\x03\x04",
                                   9) +
                               std::string(32, '\xAA') + std::string(32, '\xBB');
  EXPECT_EQ(std::string(message->begin(), message->end()), expected);
}

TEST(AuthChallengeTest, MalformedInputsAreRefused) {
  const std::vector<std::uint8_t> nonce(32, 1);
  const std::vector<std::uint8_t> relay(32, 2);
  EXPECT_TRUE(FailedWith(AuthChallengeMessage("", 1, nonce, relay), Failure::kInvalidUserId));
  EXPECT_TRUE(FailedWith(AuthChallengeMessage("bob", 0, nonce, relay), Failure::kInvalidDeviceId));
  EXPECT_TRUE(FailedWith(AuthChallengeMessage("bob", 1, std::vector<std::uint8_t>(31), relay),
                         Failure::kInvalidNonce));
  EXPECT_TRUE(FailedWith(AuthChallengeMessage("bob", 1, nonce, std::vector<std::uint8_t>(33)),
                         Failure::kInvalidRelayIdentity));
}

TEST(AuthChallengeTest, SignatureVerifiesOnlyForTheSameDeviceNonceAndRelay) {
  const auto key = crypto::SigningKey::Generate();
  const std::vector<std::uint8_t> nonce(32, 1);
  const std::vector<std::uint8_t> relay(32, 2);
  auto signature = SignAuthChallenge(key, "bob", 7, nonce, relay);
  ASSERT_TRUE(signature.has_value());
  EXPECT_TRUE(
      VerifyAuthChallenge(key.verify_key(), "bob", 7, nonce, relay, *signature).has_value());

  const std::vector<std::uint8_t> other(32, 3);
  EXPECT_TRUE(FailedWith(VerifyAuthChallenge(key.verify_key(), "bob", 7, other, relay, *signature),
                         Failure::kBadSignature));
  // A signature obtained by a malicious relay cannot be replayed to another relay.
  EXPECT_TRUE(FailedWith(VerifyAuthChallenge(key.verify_key(), "bob", 7, nonce, other, *signature),
                         Failure::kBadSignature));
  EXPECT_TRUE(FailedWith(VerifyAuthChallenge(key.verify_key(), "bob", 8, nonce, relay, *signature),
                         Failure::kBadSignature));
  EXPECT_TRUE(FailedWith(VerifyAuthChallenge(key.verify_key(), "bob", 7, nonce, relay,
                                             std::span(*signature).first(63)),
                         Failure::kBadSignature));
}

TEST(RevocationTest, SignatureVerifiesOnlyForTheSameDeviceAndKey) {
  const auto user = crypto::SigningKey::Generate();
  Result<std::vector<std::uint8_t>> message = RevocationMessage("bob", 2);
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(*message, (std::vector<std::uint8_t>{0, 3, 'b', 'o', 'b', 0, 0, 0, 2}));

  auto signature = SignRevocation(user, "bob", 2);
  ASSERT_TRUE(signature.has_value());
  EXPECT_TRUE(VerifyRevocation(user.verify_key(), "bob", 2, *signature).has_value());
  EXPECT_TRUE(FailedWith(VerifyRevocation(user.verify_key(), "bob", 3, *signature),
                         Failure::kBadSignature));
  const auto other = crypto::SigningKey::Generate();
  EXPECT_TRUE(FailedWith(VerifyRevocation(other.verify_key(), "bob", 2, *signature),
                         Failure::kBadSignature));
  // The device key's signature of the same bytes under another label is no revocation.
  const auto wrong_label = user.Sign(kAuthLabel, *message);
  EXPECT_TRUE(FailedWith(VerifyRevocation(user.verify_key(), "bob", 2, wrong_label),
                         Failure::kBadSignature));
}

// ---------------------------------------------------------------------------------------
// Item manifests

class ItemManifestTest : public ::testing::Test {
 protected:
  ItemManifestTest() {
    directory_.Add("alice", 1);
    directory_.Add("bob", 4);
    body_.set_team_id(Filled(16, 1));
    body_.set_item_id(Filled(16, 2));
    body_.set_version(3);
    body_.set_parent_version(2);
    body_.set_kind("document");
    body_.set_blob_id(Filled(16, 3));
    body_.set_blob_size(1'000'048);
    body_.set_blob_hash(Filled(32, 4));
    body_.set_key_generation(1);
    body_.set_wrapped_key(Filled(72, 5));
    body_.set_encrypted_metadata(Filled(300, 6));
    body_.set_author_user_id("alice");
    body_.set_author_device_id(1);
    body_.set_created_ms(1'700'000'000'000);
  }

  Result<VerifiedManifest> SignAndVerify() {
    Result<v1::ItemManifest> manifest = SignItemManifest(body_, directory_.Key("alice", 1));
    if (!manifest) return manifest.error();
    return VerifyItemManifest(*manifest, directory_.Lookup());
  }

  DeviceDirectory directory_;
  v1::ItemManifestBody body_;
};

TEST_F(ItemManifestTest, SignedManifestVerifiesAndYieldsItsBody) {
  Result<VerifiedManifest> verified = SignAndVerify();
  ASSERT_TRUE(verified.has_value()) << Describe(verified);
  EXPECT_EQ(verified->body.SerializeAsString(), body_.SerializeAsString());
}

TEST_F(ItemManifestTest, ItemsWithoutBlobAndRecordKindsAreAccepted) {
  body_.set_kind("record:intervention-sheet.v2");
  body_.clear_blob_id();
  body_.clear_blob_size();
  body_.clear_blob_hash();
  body_.set_version(1);
  body_.set_parent_version(0);
  EXPECT_TRUE(SignAndVerify().has_value());
}

TEST_F(ItemManifestTest, TamperedBodyOrSignatureIsRefused) {
  Result<v1::ItemManifest> manifest = SignItemManifest(body_, directory_.Key("alice", 1));
  ASSERT_TRUE(manifest.has_value());
  v1::ItemManifest tampered = *manifest;
  body_.set_blob_size(body_.blob_size() + 1);  // the relay lies about the size
  tampered.set_body(body_.SerializeAsString());
  EXPECT_TRUE(
      FailedWith(VerifyItemManifest(tampered, directory_.Lookup()), Failure::kBadSignature));

  tampered = *manifest;
  (*tampered.mutable_signature())[0] = static_cast<char>(tampered.signature()[0] ^ 1);
  EXPECT_TRUE(
      FailedWith(VerifyItemManifest(tampered, directory_.Lookup()), Failure::kBadSignature));
}

TEST_F(ItemManifestTest, ManifestSignedByAnotherDeviceThanItsAuthorIsRefused) {
  Result<v1::ItemManifest> manifest = SignItemManifest(body_, directory_.Key("bob", 4));
  ASSERT_TRUE(manifest.has_value());
  EXPECT_TRUE(
      FailedWith(VerifyItemManifest(*manifest, directory_.Lookup()), Failure::kBadSignature));
}

TEST_F(ItemManifestTest, UnknownOrRevokedAuthorIsRefused) {
  Result<v1::ItemManifest> manifest = SignItemManifest(body_, directory_.Key("alice", 1));
  ASSERT_TRUE(manifest.has_value());
  directory_.Revoke("alice", 1);
  EXPECT_TRUE(
      FailedWith(VerifyItemManifest(*manifest, directory_.Lookup()), Failure::kAuthorUnknown));
  EXPECT_TRUE(
      FailedWith(VerifyItemManifest(*manifest, DeviceKeyLookup()), Failure::kAuthorUnknown));
}

TEST_F(ItemManifestTest, InvalidFieldsAreRefusedWhenSigning) {
  struct Case {
    const char* name;
    void (*mutate)(v1::ItemManifestBody&);
    Failure failure;
  };
  const Case cases[] = {
      {"version 0",
       [](v1::ItemManifestBody& b) {
         b.set_version(0);
         b.set_parent_version(0);
       },
       Failure::kInvalidItemVersion},
      {"parent not below version", [](v1::ItemManifestBody& b) { b.set_parent_version(3); },
       Failure::kInvalidItemVersion},
      {"team id", [](v1::ItemManifestBody& b) { b.set_team_id(Filled(15)); },
       Failure::kInvalidTeamId},
      {"item id", [](v1::ItemManifestBody& b) { b.set_item_id(""); }, Failure::kInvalidItemId},
      {"kind unknown", [](v1::ItemManifestBody& b) { b.set_kind("Document"); },
       Failure::kInvalidItemKind},
      {"kind empty record", [](v1::ItemManifestBody& b) { b.set_kind("record:"); },
       Failure::kInvalidItemKind},
      {"kind too long",
       [](v1::ItemManifestBody& b) { b.set_kind("record:" + std::string(58, 'a')); },
       Failure::kInvalidItemKind},
      {"blob size without blob",
       [](v1::ItemManifestBody& b) {
         b.clear_blob_id();
         b.clear_blob_hash();
       },
       Failure::kInvalidBlobFields},
      {"blob without size", [](v1::ItemManifestBody& b) { b.set_blob_size(0); },
       Failure::kInvalidBlobFields},
      {"blob too large", [](v1::ItemManifestBody& b) { b.set_blob_size(kMaxBlobSize + 1); },
       Failure::kBlobTooLarge},
      {"blob hash", [](v1::ItemManifestBody& b) { b.set_blob_hash(Filled(31)); },
       Failure::kInvalidHash},
      {"blob id", [](v1::ItemManifestBody& b) { b.set_blob_id(Filled(17)); },
       Failure::kInvalidBlobId},
      {"generation", [](v1::ItemManifestBody& b) { b.set_key_generation(0); },
       Failure::kInvalidKeyGeneration},
      {"wrapped key empty", [](v1::ItemManifestBody& b) { b.clear_wrapped_key(); },
       Failure::kInvalidWrappedKey},
      {"wrapped key long",
       [](v1::ItemManifestBody& b) { b.set_wrapped_key(Filled(kMaxWrappedKey + 1)); },
       Failure::kInvalidWrappedKey},
      {"metadata",
       [](v1::ItemManifestBody& b) { b.set_encrypted_metadata(Filled(kMaxItemMetadata + 1)); },
       Failure::kMetadataTooLarge},
      {"author", [](v1::ItemManifestBody& b) { b.set_author_user_id("a b"); },
       Failure::kInvalidUserId},
      {"author device", [](v1::ItemManifestBody& b) { b.set_author_device_id(0x80000000u); },
       Failure::kInvalidDeviceId},
  };
  for (const Case& c : cases) {
    v1::ItemManifestBody body = body_;
    c.mutate(body);
    Result<v1::ItemManifest> manifest = SignItemManifest(body, directory_.Key("alice", 1));
    EXPECT_TRUE(FailedWith(manifest, c.failure)) << c.name << ": " << Describe(manifest);
  }
}

TEST_F(ItemManifestTest, LargestValidManifestFitsItsBodyLimit) {
  body_.set_kind("record:" + std::string(57, 'a'));
  body_.set_encrypted_metadata(Filled(kMaxItemMetadata));
  body_.set_wrapped_key(Filled(kMaxWrappedKey));
  body_.set_author_user_id(std::string(kMaxUserIdLength, 'a'));
  directory_.Add(body_.author_user_id(), 1);
  Result<v1::ItemManifest> manifest =
      SignItemManifest(body_, directory_.Key(body_.author_user_id(), 1));
  ASSERT_TRUE(manifest.has_value()) << Describe(manifest);
  EXPECT_LE(manifest->body().size(), kMaxManifestBody);
  EXPECT_TRUE(VerifyItemManifest(*manifest, directory_.Lookup()).has_value());
}

}  // namespace
}  // namespace coffre::protocol
