#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "coffre/protocol/errors.h"
#include "coffre/protocol/limits.h"
#include "coffre/protocol/signed_objects.h"
#include "coffre/protocol/team_chain.h"
#include "coffre/protocol/validation.h"
#include "protocol/test_util.h"

namespace coffre::protocol {
namespace {

namespace v1 = wire::v1;
using testing::Describe;
using testing::Filled;
using testing::KeyBytes;
using testing::Serialize;
using testing::SignalKey;

// Valid objects of every kind a frame can carry, made with real keys and signatures.
class Samples {
 public:
  Samples() {
    v1::DeviceCertificateBody body;
    body.set_user_id("alice");
    body.set_device_id(1);
    body.set_device_signing_key(KeyBytes(device_key_.verify_key()));
    body.set_signal_identity_key(SignalKey());
    body.set_created_ms(1);
    certificate_ = SignDeviceCertificate(body, user_key_).value();

    v1::ChainStatementBody statement;
    statement.set_team_id(Filled(16, 1));
    statement.set_sequence(0);
    statement.set_signer_user_id("alice");
    statement.set_signer_device_id(1);
    statement.mutable_create();
    statement_ = SignChainStatement(statement, device_key_).value();

    v1::ItemManifestBody manifest;
    manifest.set_team_id(Filled(16, 1));
    manifest.set_item_id(Filled(16, 2));
    manifest.set_version(1);
    manifest.set_kind("note");
    manifest.set_key_generation(1);
    manifest.set_wrapped_key(Filled(72));
    manifest.set_author_user_id("alice");
    manifest.set_author_device_id(1);
    manifest_ = SignItemManifest(manifest, device_key_).value();
  }

  std::string user_identity_key() const { return KeyBytes(user_key_.verify_key()); }
  const v1::DeviceCertificate& certificate() const { return certificate_; }
  const v1::ChainStatement& statement() const { return statement_; }
  const v1::ItemManifest& manifest() const { return manifest_; }

  // A valid request for each method, by name.
  v1::Request Request(const std::string& method) const {
    v1::Request r;
    r.set_id(42);
    if (method == "register") {
      auto* m = r.mutable_register_();
      m->set_enrolment_code("K7QF-93XZ-PL2M");
      m->set_user_id("alice");
      m->set_user_identity_key(user_identity_key());
      *m->mutable_first_device() = certificate_;
    } else if (method == "challenge") {
      r.mutable_challenge();
    } else if (method == "authenticate") {
      auto* m = r.mutable_authenticate();
      m->set_user_id("alice");
      m->set_device_id(1);
      m->set_nonce(Filled(32));
      m->set_signature(Filled(64));
    } else if (method == "resume") {
      r.mutable_resume()->set_token(Filled(32));
    } else if (method == "add_device") {
      *r.mutable_add_device()->mutable_certificate() = certificate_;
    } else if (method == "revoke_device") {
      r.mutable_revoke_device()->set_device_id(2);
      r.mutable_revoke_device()->set_signature(Filled(64));
    } else if (method == "list_devices") {
      r.mutable_list_devices()->set_user_id("bob");
    } else if (method == "upload_pre_keys") {
      auto* m = r.mutable_upload_pre_keys();
      m->set_registration_id(12345);
      m->mutable_signed_pre_key()->set_id(1);
      m->mutable_signed_pre_key()->set_public_key(SignalKey());
      m->mutable_signed_pre_key()->set_signature(Filled(64));
      for (std::uint32_t id = 1; id <= 3; ++id) {
        auto* key = m->add_one_time_pre_keys();
        key->set_id(id);
        key->set_public_key(SignalKey(static_cast<std::uint8_t>(id)));
      }
    } else if (method == "fetch_pre_key_bundle") {
      r.mutable_fetch_pre_key_bundle()->set_user_id("bob");
      r.mutable_fetch_pre_key_bundle()->set_device_id(1);
    } else if (method == "send_envelopes") {
      auto* e = r.mutable_send_envelopes()->add_envelopes();
      e->set_recipient_user_id("bob");
      e->set_recipient_device_id(1);
      e->set_client_id(Filled(16));
      e->set_type(3);
      e->set_ciphertext("opaque");
    } else if (method == "fetch_mailbox") {
      r.mutable_fetch_mailbox()->set_after_sequence(10);
      r.mutable_fetch_mailbox()->set_limit(100);
    } else if (method == "ack_envelopes") {
      r.mutable_ack_envelopes()->add_sequences(11);
    } else if (method == "append_chain_statement") {
      *r.mutable_append_chain_statement()->mutable_statement() = statement_;
    } else if (method == "fetch_chain") {
      r.mutable_fetch_chain()->set_team_id(Filled(16));
    } else if (method == "list_teams") {
      r.mutable_list_teams();
    } else if (method == "put_item_version") {
      *r.mutable_put_item_version()->mutable_manifest() = manifest_;
    } else if (method == "get_item") {
      r.mutable_get_item()->set_team_id(Filled(16));
      r.mutable_get_item()->set_item_id(Filled(16));
    } else if (method == "list_items") {
      r.mutable_list_items()->set_team_id(Filled(16));
    } else if (method == "create_blob") {
      r.mutable_create_blob()->set_team_id(Filled(16));
      r.mutable_create_blob()->set_blob_id(Filled(16));
      r.mutable_create_blob()->set_size(1 << 20);
    } else if (method == "blob_status") {
      r.mutable_blob_status()->set_team_id(Filled(16));
      r.mutable_blob_status()->set_blob_id(Filled(16));
    }
    return r;
  }

 private:
  crypto::SigningKey user_key_ = crypto::SigningKey::Generate();
  crypto::SigningKey device_key_ = crypto::SigningKey::Generate();
  v1::DeviceCertificate certificate_;
  v1::ChainStatement statement_;
  v1::ItemManifest manifest_;
};

const Samples& TheSamples() {
  static const Samples* samples = new Samples();
  return *samples;
}

v1::Frame FrameOf(const v1::Request& request) {
  v1::Frame frame;
  frame.set_version(kProtocolVersion);
  *frame.mutable_request() = request;
  return frame;
}

const char* const kMethods[] = {
    "register",
    "challenge",
    "authenticate",
    "resume",
    "add_device",
    "revoke_device",
    "list_devices",
    "upload_pre_keys",
    "fetch_pre_key_bundle",
    "send_envelopes",
    "fetch_mailbox",
    "ack_envelopes",
    "append_chain_statement",
    "fetch_chain",
    "list_teams",
    "put_item_version",
    "get_item",
    "list_items",
    "create_blob",
    "blob_status",
};

// ---------------------------------------------------------------------------------------
// Framing

TEST(ParseFrameTest, EveryValidRequestIsAccepted) {
  for (const char* method : kMethods) {
    const v1::Request request = TheSamples().Request(method);
    ASSERT_NE(request.method_case(), v1::Request::METHOD_NOT_SET) << method;
    Result<v1::Frame> frame = ParseRequestFrame(Serialize(FrameOf(request)));
    ASSERT_TRUE(frame.has_value()) << method << ": " << Describe(frame);
    EXPECT_EQ(frame->request().id(), 42u);
    EXPECT_EQ(frame->request().method_case(), request.method_case()) << method;
  }
}

TEST(ParseFrameTest, GarbageIsRefused) {
  const std::vector<std::uint8_t> garbage = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_TRUE(FailedWith(ParseFrame(garbage), Failure::kFrameUnparsable));
  // A length-delimited field whose length runs past the end.
  const std::vector<std::uint8_t> truncated = {0x08, 0x01, 0x12, 0x40, 0x08};
  EXPECT_TRUE(FailedWith(ParseFrame(truncated), Failure::kFrameUnparsable));
}

TEST(ParseFrameTest, OversizedFrameIsRefusedBeforeParsing) {
  // Valid protobuf padding (an unknown field) would parse: the size check must come first.
  std::vector<std::uint8_t> bytes(kMaxFrameSize + 1, 0);
  Result<v1::Frame> frame = ParseFrame(bytes);
  EXPECT_TRUE(FailedWith(frame, Failure::kFrameTooLarge));
  EXPECT_EQ(WireCodeOf(frame.error()), v1::ERROR_CODE_TOO_LARGE);
  EXPECT_FALSE(PeekRequestId(bytes).has_value());
}

TEST(ParseFrameTest, WrongOrMissingVersionIsRefused) {
  v1::Frame frame = FrameOf(TheSamples().Request("challenge"));
  frame.set_version(2);
  Result<v1::Frame> parsed = ParseFrame(Serialize(frame));
  EXPECT_TRUE(FailedWith(parsed, Failure::kUnsupportedVersion));
  EXPECT_EQ(WireCodeOf(parsed.error()), v1::ERROR_CODE_UNSUPPORTED_VERSION);
  frame.set_version(0);
  EXPECT_TRUE(FailedWith(ParseFrame(Serialize(frame)), Failure::kUnsupportedVersion));
  EXPECT_TRUE(FailedWith(ParseFrame({}), Failure::kUnsupportedVersion));
}

TEST(ParseFrameTest, FrameWithoutContentIsRefused) {
  v1::Frame frame;
  frame.set_version(1);
  EXPECT_TRUE(FailedWith(ParseFrame(Serialize(frame)), Failure::kFrameKindMissing));
}

TEST(ParseFrameTest, UnknownFieldsAreRefusedAtAnyDepth) {
  const v1::Frame frame = FrameOf(TheSamples().Request("fetch_mailbox"));
  std::vector<std::uint8_t> bytes = Serialize(frame);
  // Field 100, varint: 0xA0 0x06 is the tag (100 << 3 | 0).
  std::vector<std::uint8_t> top = bytes;
  top.insert(top.end(), {0xA0, 0x06, 0x01});
  EXPECT_TRUE(FailedWith(ParseFrame(top), Failure::kUnknownField));

  // Inside FetchMailbox, inside Request, inside Frame: rebuild the nesting by hand.
  v1::FetchMailbox fetch = frame.request().fetch_mailbox();
  std::string inner = fetch.SerializeAsString() + std::string("\xA0\x06\x01", 3);
  v1::FetchMailbox with_unknown;
  ASSERT_TRUE(with_unknown.ParseFromString(inner));
  v1::Frame nested = frame;
  *nested.mutable_request()->mutable_fetch_mailbox() = with_unknown;
  EXPECT_TRUE(FailedWith(ParseFrame(Serialize(nested)), Failure::kUnknownField));
  EXPECT_TRUE(HasUnknownFields(nested));
  EXPECT_FALSE(HasUnknownFields(frame));
}

TEST(ParseFrameTest, NonAsciiInATextFieldIsRefusedByItsAlphabet) {
  v1::Frame frame = FrameOf(TheSamples().Request("list_devices"));
  std::vector<std::uint8_t> bytes = Serialize(frame);
  // The user id "bob" is the last bytes of the frame; make it invalid UTF-8. Text fields
  // are protobuf bytes, so it is our alphabet check that refuses it (protobuf's UTF-8
  // check would have logged a line for every such frame).
  ASSERT_EQ(bytes.back(), 'b');
  bytes.back() = 0xFF;
  EXPECT_TRUE(FailedWith(ParseFrame(bytes), Failure::kInvalidUserId));
}

TEST(ParseFrameTest, RequestAndRelayFramesAreAcceptedOnlyFromTheirSide) {
  const auto request = Serialize(FrameOf(TheSamples().Request("challenge")));
  EXPECT_TRUE(FailedWith(ParseRelayFrame(request), Failure::kUnexpectedFrameKind));
  v1::Frame push;
  push.set_version(1);
  push.mutable_push()->mutable_going_away()->set_retry_after_ms(5000);
  EXPECT_TRUE(ParseRelayFrame(Serialize(push)).has_value());
  EXPECT_TRUE(FailedWith(ParseRequestFrame(Serialize(push)), Failure::kUnexpectedFrameKind));
}

TEST(ParseFrameTest, RequestIdIsRecoverableFromAnInvalidRequest) {
  v1::Request request = TheSamples().Request("fetch_mailbox");
  request.mutable_fetch_mailbox()->set_limit(0);
  const auto bytes = Serialize(FrameOf(request));
  EXPECT_FALSE(ParseFrame(bytes).has_value());
  EXPECT_EQ(PeekRequestId(bytes), 42u);
  EXPECT_FALSE(PeekRequestId(std::vector<std::uint8_t>{0xFF, 0xFF}).has_value());
}

TEST(ParseFrameTest, RandomMutationsOfValidFramesNeverCrash) {
  // Not a substitute for the fuzz target; a quick guard that every path returns a value.
  std::mt19937 random(1234);
  for (const char* method : kMethods) {
    const std::vector<std::uint8_t> good = Serialize(FrameOf(TheSamples().Request(method)));
    for (int round = 0; round < 200; ++round) {
      std::vector<std::uint8_t> bytes = good;
      const int edits = 1 + static_cast<int>(random() % 4);
      for (int e = 0; e < edits && !bytes.empty(); ++e) {
        const std::size_t at = random() % bytes.size();
        switch (random() % 3) {
          case 0:
            bytes[at] = static_cast<std::uint8_t>(random());
            break;
          case 1:
            bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at));
            break;
          default:
            bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                         static_cast<std::uint8_t>(random()));
        }
      }
      Result<v1::Frame> frame = ParseFrame(bytes);
      if (!frame) {
        EXPECT_TRUE(FailureOf(frame.error()).has_value()) << Describe(frame);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Requests: each field out of range, refused with its failure and wire code

struct RequestCase {
  const char* name;
  const char* method;
  std::function<void(v1::Request&)> mutate;
  Failure failure;
};

std::vector<RequestCase> RequestCases() {
  using R = v1::Request;
  return {
      {"request id 0", "challenge", [](R& r) { r.set_id(0); }, Failure::kRequestIdMissing},
      {"no method", "challenge", [](R& r) { r.clear_method(); }, Failure::kMethodMissing},
      // Register
      {"enrolment code with space", "register",
       [](R& r) { r.mutable_register_()->set_enrolment_code("K7QF 93XZ"); },
       Failure::kInvalidEnrolmentCode},
      {"enrolment code empty", "register",
       [](R& r) { r.mutable_register_()->clear_enrolment_code(); }, Failure::kInvalidEnrolmentCode},
      {"user id upper case", "register", [](R& r) { r.mutable_register_()->set_user_id("Alice"); },
       Failure::kInvalidUserId},
      {"identity key short", "register",
       [](R& r) { r.mutable_register_()->set_user_identity_key(Filled(31)); },
       Failure::kInvalidEd25519Key},
      {"identity key small order", "register",
       [](R& r) { r.mutable_register_()->set_user_identity_key(Filled(32, 0)); },
       Failure::kInvalidEd25519Key},
      {"first device missing", "register",
       [](R& r) { r.mutable_register_()->clear_first_device(); }, Failure::kFieldMissing},
      {"certificate of another user", "register",
       [](R& r) { r.mutable_register_()->set_user_id("bob"); }, Failure::kCertificateUserMismatch},
      {"certificate signature short", "register",
       [](R& r) { r.mutable_register_()->mutable_first_device()->set_signature(Filled(63)); },
       Failure::kInvalidSignatureSize},
      // Authenticate
      {"auth user id too long", "authenticate",
       [](R& r) { r.mutable_authenticate()->set_user_id(std::string(65, 'a')); },
       Failure::kInvalidUserId},
      {"auth device id 0", "authenticate", [](R& r) { r.mutable_authenticate()->set_device_id(0); },
       Failure::kInvalidDeviceId},
      {"auth device id 2^31", "authenticate",
       [](R& r) { r.mutable_authenticate()->set_device_id(0x80000000u); },
       Failure::kInvalidDeviceId},
      {"auth nonce short", "authenticate",
       [](R& r) { r.mutable_authenticate()->set_nonce(Filled(31)); }, Failure::kInvalidNonce},
      {"auth signature long", "authenticate",
       [](R& r) { r.mutable_authenticate()->set_signature(Filled(65)); },
       Failure::kInvalidSignatureSize},
      // ResumeSession
      {"token short", "resume", [](R& r) { r.mutable_resume()->set_token(Filled(16)); },
       Failure::kInvalidToken},
      // AddDevice
      {"certificate missing", "add_device",
       [](R& r) { r.mutable_add_device()->clear_certificate(); }, Failure::kFieldMissing},
      {"certificate body garbage", "add_device",
       [](R& r) { r.mutable_add_device()->mutable_certificate()->set_body("\xff\xff"); },
       Failure::kSignedBodyUnparsable},
      {"certificate body oversized", "add_device",
       [](R& r) {
         r.mutable_add_device()->mutable_certificate()->set_body(Filled(kMaxCertificateBody + 1));
       },
       Failure::kSignedBodyTooLarge},
      // RevokeDevice
      {"revoke device 0", "revoke_device",
       [](R& r) { r.mutable_revoke_device()->set_device_id(0); }, Failure::kInvalidDeviceId},
      {"revoke signature empty", "revoke_device",
       [](R& r) { r.mutable_revoke_device()->clear_signature(); }, Failure::kInvalidSignatureSize},
      // ListDevices
      {"list devices bad user", "list_devices",
       [](R& r) { r.mutable_list_devices()->set_user_id("bob/.."); }, Failure::kInvalidUserId},
      // UploadPreKeys
      {"registration id 0", "upload_pre_keys",
       [](R& r) { r.mutable_upload_pre_keys()->set_registration_id(0); },
       Failure::kInvalidRegistrationId},
      {"nothing to upload", "upload_pre_keys",
       [](R& r) {
         r.mutable_upload_pre_keys()->clear_signed_pre_key();
         r.mutable_upload_pre_keys()->clear_one_time_pre_keys();
       },
       Failure::kEmptyPreKeyUpload},
      {"signed prekey wrong type", "upload_pre_keys",
       [](R& r) {
         std::string key = SignalKey();
         key[0] = 0x06;
         r.mutable_upload_pre_keys()->mutable_signed_pre_key()->set_public_key(key);
       },
       Failure::kInvalidSignalKey},
      {"signed prekey id 2^24", "upload_pre_keys",
       [](R& r) { r.mutable_upload_pre_keys()->mutable_signed_pre_key()->set_id(1u << 24); },
       Failure::kInvalidPreKeyId},
      {"one-time prekey id 0", "upload_pre_keys",
       [](R& r) { r.mutable_upload_pre_keys()->mutable_one_time_pre_keys(0)->set_id(0); },
       Failure::kInvalidPreKeyId},
      {"one-time prekey key short", "upload_pre_keys",
       [](R& r) {
         r.mutable_upload_pre_keys()->mutable_one_time_pre_keys(0)->set_public_key(Filled(32));
       },
       Failure::kInvalidSignalKey},
      {"one-time prekey id twice", "upload_pre_keys",
       [](R& r) { r.mutable_upload_pre_keys()->mutable_one_time_pre_keys(1)->set_id(1); },
       Failure::kDuplicatePreKeyId},
      {"201 one-time prekeys", "upload_pre_keys",
       [](R& r) {
         auto* m = r.mutable_upload_pre_keys();
         for (std::uint32_t id = 100; m->one_time_pre_keys_size() <= 200; ++id) {
           auto* key = m->add_one_time_pre_keys();
           key->set_id(id);
           key->set_public_key(SignalKey());
         }
       },
       Failure::kTooManyPreKeys},
      // FetchPreKeyBundle
      {"bundle device 0", "fetch_pre_key_bundle",
       [](R& r) { r.mutable_fetch_pre_key_bundle()->set_device_id(0); }, Failure::kInvalidDeviceId},
      // SendEnvelopes
      {"no envelope", "send_envelopes", [](R& r) { r.mutable_send_envelopes()->clear_envelopes(); },
       Failure::kNoEnvelopes},
      {"101 envelopes", "send_envelopes",
       [](R& r) {
         auto* m = r.mutable_send_envelopes();
         while (m->envelopes_size() <= 100) *m->add_envelopes() = m->envelopes(0);
       },
       Failure::kTooManyEnvelopes},
      {"client id short", "send_envelopes",
       [](R& r) { r.mutable_send_envelopes()->mutable_envelopes(0)->set_client_id(Filled(15)); },
       Failure::kInvalidClientId},
      {"envelope type 0", "send_envelopes",
       [](R& r) { r.mutable_send_envelopes()->mutable_envelopes(0)->set_type(0); },
       Failure::kInvalidEnvelopeType},
      {"ciphertext empty", "send_envelopes",
       [](R& r) { r.mutable_send_envelopes()->mutable_envelopes(0)->clear_ciphertext(); },
       Failure::kEmptyCiphertext},
      {"ciphertext over 256 KiB", "send_envelopes",
       [](R& r) {
         r.mutable_send_envelopes()->mutable_envelopes(0)->set_ciphertext(
             Filled(kMaxEnvelopeCiphertext + 1));
       },
       Failure::kCiphertextTooLarge},
      {"recipient device 0", "send_envelopes",
       [](R& r) { r.mutable_send_envelopes()->mutable_envelopes(0)->set_recipient_device_id(0); },
       Failure::kInvalidDeviceId},
      // FetchMailbox
      {"fetch limit 0", "fetch_mailbox", [](R& r) { r.mutable_fetch_mailbox()->set_limit(0); },
       Failure::kInvalidFetchLimit},
      {"fetch limit 501", "fetch_mailbox", [](R& r) { r.mutable_fetch_mailbox()->set_limit(501); },
       Failure::kInvalidFetchLimit},
      // AckEnvelopes
      {"ack nothing", "ack_envelopes", [](R& r) { r.mutable_ack_envelopes()->clear_sequences(); },
       Failure::kNoAcks},
      {"ack 501", "ack_envelopes",
       [](R& r) {
         for (int i = 0; i < 500; ++i) r.mutable_ack_envelopes()->add_sequences(100u + i);
       },
       Failure::kTooManyAcks},
      // AppendChainStatement
      {"statement missing", "append_chain_statement",
       [](R& r) { r.mutable_append_chain_statement()->clear_statement(); }, Failure::kFieldMissing},
      {"statement body oversized", "append_chain_statement",
       [](R& r) {
         r.mutable_append_chain_statement()->mutable_statement()->set_body(
             Filled(kMaxChainStatementBody + 1));
       },
       Failure::kSignedBodyTooLarge},
      {"statement with unknown role", "append_chain_statement",
       [](R& r) {
         v1::ChainStatementBody body;
         body.set_team_id(Filled(16));
         body.set_sequence(1);
         body.set_previous_hash(Filled(32));
         body.set_signer_user_id("alice");
         body.set_signer_device_id(1);
         body.mutable_add_member()->set_user_id("bob");
         body.mutable_add_member()->set_role(static_cast<v1::Role>(9));
         r.mutable_append_chain_statement()->mutable_statement()->set_body(
             body.SerializeAsString());
       },
       Failure::kInvalidRole},
      {"statement without change", "append_chain_statement",
       [](R& r) {
         v1::ChainStatementBody body;
         body.set_team_id(Filled(16));
         body.set_signer_user_id("alice");
         body.set_signer_device_id(1);
         r.mutable_append_chain_statement()->mutable_statement()->set_body(
             body.SerializeAsString());
       },
       Failure::kStatementChangeMissing},
      // FetchChain
      {"fetch chain team short", "fetch_chain",
       [](R& r) { r.mutable_fetch_chain()->set_team_id(Filled(15)); }, Failure::kInvalidTeamId},
      // PutItemVersion
      {"manifest missing", "put_item_version",
       [](R& r) { r.mutable_put_item_version()->clear_manifest(); }, Failure::kFieldMissing},
      {"manifest version 0", "put_item_version",
       [](R& r) {
         v1::ItemManifestBody body;
         body.ParseFromString(r.put_item_version().manifest().body());
         body.set_version(0);
         r.mutable_put_item_version()->mutable_manifest()->set_body(body.SerializeAsString());
       },
       Failure::kInvalidItemVersion},
      {"manifest metadata over 64 KiB", "put_item_version",
       [](R& r) {
         v1::ItemManifestBody body;
         body.ParseFromString(r.put_item_version().manifest().body());
         body.set_encrypted_metadata(Filled(kMaxItemMetadata + 1));
         r.mutable_put_item_version()->mutable_manifest()->set_body(body.SerializeAsString());
       },
       Failure::kMetadataTooLarge},
      // GetItem, ListItems
      {"get item id long", "get_item", [](R& r) { r.mutable_get_item()->set_item_id(Filled(17)); },
       Failure::kInvalidItemId},
      {"list items limit 501", "list_items", [](R& r) { r.mutable_list_items()->set_limit(501); },
       Failure::kInvalidListLimit},
      {"list items cursor short", "list_items",
       [](R& r) { r.mutable_list_items()->set_after_item_id(Filled(3)); }, Failure::kInvalidItemId},
      // CreateBlob, BlobStatus
      {"blob size 0", "create_blob", [](R& r) { r.mutable_create_blob()->set_size(0); },
       Failure::kEmptyBlob},
      {"blob size over 4 GiB", "create_blob",
       [](R& r) { r.mutable_create_blob()->set_size(kMaxBlobSize + 1); }, Failure::kBlobTooLarge},
      {"blob id empty", "create_blob", [](R& r) { r.mutable_create_blob()->clear_blob_id(); },
       Failure::kInvalidBlobId},
      {"blob status team empty", "blob_status",
       [](R& r) { r.mutable_blob_status()->clear_team_id(); }, Failure::kInvalidTeamId},
  };
}

TEST(ValidateRequestTest, EachFieldOutOfRangeIsRefusedWithItsCode) {
  for (const RequestCase& c : RequestCases()) {
    v1::Request request = TheSamples().Request(c.method);
    ASSERT_TRUE(ValidateRequest(request).has_value()) << c.name << ": baseline must be valid";
    c.mutate(request);
    const std::vector<std::uint8_t> bytes = Serialize(FrameOf(request));
    Result<v1::Frame> frame = ParseFrame(bytes);
    ASSERT_TRUE(FailedWith(frame, c.failure))
        << c.name << ": expected \"" << InfoOf(c.failure).message << "\", got \"" << Describe(frame)
        << "\"";
    EXPECT_EQ(ToWireError(frame.error()).code(), InfoOf(c.failure).wire_code) << c.name;
    EXPECT_TRUE(FailedWith(ValidateRequest(request), c.failure)) << c.name;
  }
}

TEST(ValidateRequestTest, BoundaryValuesAreAccepted) {
  v1::Request request = TheSamples().Request("fetch_mailbox");
  request.mutable_fetch_mailbox()->set_limit(kMaxFetchLimit);
  EXPECT_TRUE(ValidateRequest(request).has_value());

  request = TheSamples().Request("authenticate");
  request.mutable_authenticate()->set_user_id(std::string(kMaxUserIdLength, 'z'));
  request.mutable_authenticate()->set_device_id(kMaxDeviceId);
  EXPECT_TRUE(ValidateRequest(request).has_value());
  request.mutable_authenticate()->set_user_id("a.b_c-0");
  EXPECT_TRUE(ValidateRequest(request).has_value());

  request = TheSamples().Request("create_blob");
  request.mutable_create_blob()->set_size(kMaxBlobSize);
  EXPECT_TRUE(ValidateRequest(request).has_value());

  request = TheSamples().Request("send_envelopes");
  request.mutable_send_envelopes()->mutable_envelopes(0)->set_ciphertext(
      Filled(kMaxEnvelopeCiphertext));
  EXPECT_TRUE(ParseFrame(Serialize(FrameOf(request))).has_value());

  request = TheSamples().Request("upload_pre_keys");
  request.mutable_upload_pre_keys()->clear_signed_pre_key();  // one-time keys alone
  EXPECT_TRUE(ValidateRequest(request).has_value());

  request = TheSamples().Request("list_items");
  request.mutable_list_items()->set_after_item_id(Filled(16));
  request.mutable_list_items()->set_limit(kMaxItemsPerList);
  EXPECT_TRUE(ValidateRequest(request).has_value());
}

// ---------------------------------------------------------------------------------------
// Responses and pushes (what a client checks)

v1::Frame ResponseFrame(const std::function<void(v1::Response&)>& fill) {
  v1::Frame frame;
  frame.set_version(kProtocolVersion);
  frame.mutable_response()->set_id(7);
  fill(*frame.mutable_response());
  return frame;
}

TEST(ValidateResponseTest, ValidResponsesAreAccepted) {
  const Samples& s = TheSamples();
  const std::vector<std::function<void(v1::Response&)>> fills = {
      [](v1::Response& r) { r.mutable_ok(); },
      [](v1::Response& r) {
        r.mutable_error()->set_code(v1::ERROR_CODE_CONFLICT);
        r.mutable_error()->set_current_head(Filled(32));
      },
      [](v1::Response& r) {
        r.mutable_registered()->set_user_id("alice");
        r.mutable_registered()->set_org_id("sdis-38");
      },
      [](v1::Response& r) {
        r.mutable_challenge()->set_nonce(Filled(32));
        r.mutable_challenge()->set_relay_identity(Filled(32));
      },
      [](v1::Response& r) { r.mutable_session()->set_token(Filled(32)); },
      [&](v1::Response& r) {
        r.mutable_devices()->set_user_id("alice");
        r.mutable_devices()->set_user_identity_key(s.user_identity_key());
        *r.mutable_devices()->add_devices()->mutable_certificate() = s.certificate();
      },
      [](v1::Response& r) {
        auto* b = r.mutable_pre_key_bundle();
        b->set_user_id("bob");
        b->set_device_id(2);
        b->set_registration_id(77);
        b->set_signal_identity_key(SignalKey());
        b->mutable_signed_pre_key()->set_public_key(SignalKey());
        b->mutable_signed_pre_key()->set_signature(Filled(64));
      },
      [](v1::Response& r) { r.mutable_send_result()->add_sequence(5); },
      [](v1::Response& r) {
        auto* e = r.mutable_envelopes()->add_envelopes();
        e->set_sequence(1);
        e->set_sender_user_id("bob");
        e->set_sender_device_id(1);
        e->set_client_id(Filled(16));
        e->set_type(2);
        e->set_ciphertext("x");
      },
      [](v1::Response& r) { r.mutable_chain_appended()->set_head(Filled(32)); },
      [&](v1::Response& r) {
        r.mutable_chain()->set_team_id(Filled(16, 1));
        *r.mutable_chain()->add_statements() = s.statement();
      },
      [](v1::Response& r) {
        auto* t = r.mutable_teams()->add_teams();
        t->set_team_id(Filled(16));
        t->set_head(Filled(32));
      },
      [](v1::Response& r) { r.mutable_item_accepted()->set_version(1); },
      [&](v1::Response& r) {
        *r.mutable_item()->mutable_manifest() = s.manifest();
        r.mutable_item()->set_current_version(1);
      },
      [](v1::Response& r) {
        r.mutable_blob()->set_blob_id(Filled(16));
        r.mutable_blob()->set_size(100);
        r.mutable_blob()->set_received(100);
      },
  };
  for (std::size_t i = 0; i < fills.size(); ++i) {
    Result<v1::Frame> frame = ParseRelayFrame(Serialize(ResponseFrame(fills[i])));
    EXPECT_TRUE(frame.has_value()) << "response " << i << ": " << Describe(frame);
  }
}

TEST(ValidateResponseTest, InvalidResponsesAreRefused) {
  const Samples& s = TheSamples();
  struct Case {
    const char* name;
    std::function<void(v1::Response&)> fill;
    Failure failure;
  };
  const std::vector<Case> cases = {
      {"no result", [](v1::Response&) {}, Failure::kResultMissing},
      {"id 0 without error",
       [](v1::Response& r) {
         r.set_id(0);
         r.mutable_ok();
       },
       Failure::kResponseIdMissing},
      {"unknown error code",
       [](v1::Response& r) { r.mutable_error()->set_code(static_cast<v1::ErrorCode>(99)); },
       Failure::kInvalidErrorCode},
      {"unspecified error code", [](v1::Response& r) { r.mutable_error(); },
       Failure::kInvalidErrorCode},
      {"error message with a newline",
       [](v1::Response& r) {
         r.mutable_error()->set_code(v1::ERROR_CODE_INTERNAL);
         r.mutable_error()->set_message("line\nbreak");
       },
       Failure::kInvalidErrorMessage},
      {"long error message",
       [](v1::Response& r) {
         r.mutable_error()->set_code(v1::ERROR_CODE_INTERNAL);
         r.mutable_error()->set_message(std::string(kMaxErrorMessage + 1, 'x'));
       },
       Failure::kInvalidErrorMessage},
      {"org id",
       [](v1::Response& r) {
         r.mutable_registered()->set_user_id("alice");
         r.mutable_registered()->set_org_id("");
       },
       Failure::kInvalidOrgId},
      {"relay identity",
       [](v1::Response& r) {
         r.mutable_challenge()->set_nonce(Filled(32));
         r.mutable_challenge()->set_relay_identity(Filled(20));
       },
       Failure::kInvalidRelayIdentity},
      {"device list of another user",
       [&](v1::Response& r) {
         r.mutable_devices()->set_user_id("mallory");
         r.mutable_devices()->set_user_identity_key(s.user_identity_key());
         *r.mutable_devices()->add_devices()->mutable_certificate() = s.certificate();
       },
       Failure::kCertificateUserMismatch},
      {"bundle without signed prekey",
       [](v1::Response& r) {
         auto* b = r.mutable_pre_key_bundle();
         b->set_user_id("bob");
         b->set_device_id(2);
         b->set_registration_id(77);
         b->set_signal_identity_key(SignalKey());
       },
       Failure::kFieldMissing},
      {"501 envelopes",
       [](v1::Response& r) {
         for (int i = 0; i <= 500; ++i) {
           auto* e = r.mutable_envelopes()->add_envelopes();
           e->set_sender_user_id("bob");
           e->set_sender_device_id(1);
           e->set_client_id(Filled(16));
           e->set_type(2);
           e->set_ciphertext("x");
         }
       },
       Failure::kListTooLong},
      {"chain statement of another team",
       [&](v1::Response& r) {
         r.mutable_chain()->set_team_id(Filled(16, 2));
         *r.mutable_chain()->add_statements() = s.statement();
       },
       Failure::kChainTeamMismatch},
      {"item older than its current version",
       [&](v1::Response& r) { *r.mutable_item()->mutable_manifest() = s.manifest(); },
       Failure::kInvalidItemVersion},
      {"blob received beyond size",
       [](v1::Response& r) {
         r.mutable_blob()->set_blob_id(Filled(16));
         r.mutable_blob()->set_size(100);
         r.mutable_blob()->set_received(101);
       },
       Failure::kBlobProgressBeyondSize},
  };
  for (const Case& c : cases) {
    Result<v1::Frame> frame = ParseRelayFrame(Serialize(ResponseFrame(c.fill)));
    EXPECT_TRUE(FailedWith(frame, c.failure))
        << c.name << ": expected \"" << InfoOf(c.failure).message << "\", got \"" << Describe(frame)
        << "\"";
  }
}

// An audit page with two entries and the month keys of `fill`.
v1::Frame AuditPage(const std::function<void(v1::AuditEntries&)>& fill) {
  return ResponseFrame([&](v1::Response& r) {
    v1::AuditEntries* page = r.mutable_audit_entries();
    for (int i = 0; i < 2; ++i) {
      v1::AuditLogEntry* entry = page->add_entries();
      entry->set_index(static_cast<std::uint64_t>(i));
      entry->set_entry(Filled(60));
    }
    fill(*page);
  });
}

void AddMonthKey(v1::AuditEntries& page, std::uint64_t key_id) {
  v1::AuditMonthKey* key = page.add_month_keys();
  key->set_key_id(key_id);
  key->set_auditor_key(Filled(32));
  key->set_sealed_key(Filled(107));
}

TEST(ValidateResponseTest, AuditMonthKeysAreWellFormedUniqueAndNoMoreThanEntries) {
  EXPECT_TRUE(ParseRelayFrame(Serialize(AuditPage([](v1::AuditEntries& page) {
                AddMonthKey(page, 1);
                AddMonthKey(page, (std::uint64_t{1} << 63) - 1);
              }))).has_value());
  struct Case {
    const char* name;
    std::function<void(v1::AuditEntries&)> fill;
    Failure failure;
  };
  const std::vector<Case> cases = {
      {"key id 0", [](v1::AuditEntries& p) { AddMonthKey(p, 0); }, Failure::kInvalidAuditRecord},
      {"key id beyond 2^63 - 1",
       [](v1::AuditEntries& p) { AddMonthKey(p, std::uint64_t{1} << 63); },
       Failure::kInvalidAuditRecord},
      {"the same key twice",
       [](v1::AuditEntries& p) {
         AddMonthKey(p, 5);
         AddMonthKey(p, 5);
       },
       Failure::kInvalidAuditRecord},
      {"auditor key of 31 bytes",
       [](v1::AuditEntries& p) {
         AddMonthKey(p, 5);
         p.mutable_month_keys(0)->set_auditor_key(Filled(31));
       },
       Failure::kInvalidAuditRecord},
      {"empty sealed key",
       [](v1::AuditEntries& p) {
         AddMonthKey(p, 5);
         p.mutable_month_keys(0)->clear_sealed_key();
       },
       Failure::kInvalidAuditRecord},
      {"sealed key too long",
       [](v1::AuditEntries& p) {
         AddMonthKey(p, 5);
         p.mutable_month_keys(0)->set_sealed_key(Filled(kMaxSealedMonthKey + 1));
       },
       Failure::kInvalidAuditRecord},
      {"more keys than entries",
       [](v1::AuditEntries& p) {
         for (std::uint64_t id = 1; id <= 3; ++id) AddMonthKey(p, id);
       },
       Failure::kListTooLong},
  };
  for (const Case& c : cases) {
    Result<v1::Frame> frame = ParseRelayFrame(Serialize(AuditPage(c.fill)));
    EXPECT_TRUE(FailedWith(frame, c.failure))
        << c.name << ": expected \"" << InfoOf(c.failure).message << "\", got \"" << Describe(frame)
        << "\"";
  }
}

TEST(ValidatePushTest, PushesAreCheckedLikeResponses) {
  v1::Frame frame;
  frame.set_version(kProtocolVersion);
  frame.mutable_push();
  EXPECT_TRUE(FailedWith(ParseRelayFrame(Serialize(frame)), Failure::kPushKindMissing));

  frame.mutable_push()->mutable_chain_advanced()->set_team_id(Filled(16));
  frame.mutable_push()->mutable_chain_advanced()->set_head(Filled(31));
  EXPECT_TRUE(FailedWith(ParseRelayFrame(Serialize(frame)), Failure::kInvalidHash));
  frame.mutable_push()->mutable_chain_advanced()->set_head(Filled(32));
  EXPECT_TRUE(ParseRelayFrame(Serialize(frame)).has_value());

  frame.mutable_push()->mutable_pre_keys_low()->set_remaining(3);
  EXPECT_TRUE(ParseRelayFrame(Serialize(frame)).has_value());

  auto* envelope = frame.mutable_push()->mutable_envelopes()->add_envelopes();
  envelope->set_sender_user_id("bob");
  envelope->set_sender_device_id(1);
  envelope->set_client_id(Filled(16));
  envelope->set_type(2);
  EXPECT_TRUE(FailedWith(ParseRelayFrame(Serialize(frame)), Failure::kEmptyCiphertext));
}

// ---------------------------------------------------------------------------------------
// Field checks used outside frames

TEST(FieldValidationTest, UserIdAlphabetAndLength) {
  EXPECT_TRUE(ValidateUserId("a").has_value());
  EXPECT_TRUE(ValidateUserId("jean-luc.picard_2").has_value());
  EXPECT_TRUE(ValidateUserId(std::string(64, '0')).has_value());
  EXPECT_FALSE(ValidateUserId("").has_value());
  EXPECT_FALSE(ValidateUserId(std::string(65, 'a')).has_value());
  for (const char* bad : {"Alice", "a b", "a/b", "a@b", "é", "a\n"}) {
    EXPECT_FALSE(ValidateUserId(bad).has_value()) << bad;
  }
  EXPECT_FALSE(ValidateUserId(std::string("a\0b", 3)).has_value());
}

}  // namespace
}  // namespace coffre::protocol
