#include "coffre/crypto/passphrase_kdf.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coffre/crypto/secret_bytes.h"
#include "support/vectors.h"

namespace coffre::crypto {
namespace {

using Bytes = std::vector<std::uint8_t>;
using coffre::testing::FromHex;
using coffre::testing::ReadVectorFile;
using coffre::testing::ToHex;

Bytes Text(std::string_view text) { return Bytes(text.begin(), text.end()); }

Bytes ToBytes(const SecretBytes& secret) {
  return Bytes(secret.data(), secret.data() + secret.size());
}

std::uint32_t Number(const std::string& text) {
  return static_cast<std::uint32_t>(std::stoul(text));
}

// A record with the cheapest parameters a record may carry, to keep the tests fast.
PassphraseKdfRecord FastRecord() {
  auto record = PassphraseKdfRecord::Create(kMinimumArgon2Params);
  EXPECT_TRUE(record.has_value());
  return *record;
}

Bytes RecordBytes(std::uint32_t m, std::uint32_t t, std::uint32_t p) {
  PassphraseKdfRecord record{{m, t, p}, {}};
  return record.Serialize();
}

// ---------------------------------------------------------------------------------------
// RFC 9106 §5.3 known answer

TEST(Argon2idTest, MatchesRfc9106Section5_3) {
  const auto blocks = ReadVectorFile("argon2id-rfc9106/argon2id.txt");
  ASSERT_EQ(blocks.size(), 1u);
  for (const auto& block : blocks) {
    const Argon2Params params{Number(block.at("MEMORY_KIB")), Number(block.at("ITERATIONS")),
                              Number(block.at("PARALLELISM"))};
    const Bytes tag = FromHex(block.at("TAG"));
    ASSERT_EQ(tag.size(), 32u);
    auto out = internal::Argon2idFull(FromHex(block.at("PASSWORD")), FromHex(block.at("SALT")),
                                      FromHex(block.at("SECRET")), FromHex(block.at("AD")), params,
                                      tag.size());
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(ToHex(ToBytes(*out)), ToHex(tag));
  }
}

// The secret and associated-data inputs must really reach libargon2: dropping either
// changes the tag of the RFC vector.
TEST(Argon2idTest, SecretAndAssociatedDataChangeTheTag) {
  const Bytes password(32, 0x01);
  const Bytes salt(16, 0x02);
  const Bytes secret(8, 0x03);
  const Bytes ad(12, 0x04);
  const Argon2Params params{32, 3, 4};
  auto full = internal::Argon2idFull(password, salt, secret, ad, params, 32);
  auto no_secret = internal::Argon2idFull(password, salt, {}, ad, params, 32);
  auto no_ad = internal::Argon2idFull(password, salt, secret, {}, params, 32);
  ASSERT_TRUE(full.has_value());
  ASSERT_TRUE(no_secret.has_value());
  ASSERT_TRUE(no_ad.has_value());
  EXPECT_FALSE(ConstantTimeEquals(full->span(), no_secret->span()));
  EXPECT_FALSE(ConstantTimeEquals(full->span(), no_ad->span()));
}

TEST(Argon2idTest, RejectsOutputAndSaltSizesOutOfRange) {
  const Bytes password = Text("pw");
  const Bytes salt(16, 0x02);
  const Argon2Params params{32, 1, 1};
  EXPECT_EQ(internal::Argon2idFull(password, salt, {}, {}, params, 15).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(internal::Argon2idFull(password, salt, {}, {}, params, 65).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(internal::Argon2idFull(password, Bytes(7, 0x02), {}, {}, params, 32).error().code(),
            ErrorCode::kInvalidArgument);
  // Fewer than 8 KiB per lane is refused by libargon2 and reported, not hidden.
  EXPECT_EQ(
      internal::Argon2idFull(password, salt, {}, {}, Argon2Params{16, 1, 4}, 32).error().code(),
      ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// PassphraseKdfRecord

TEST(PassphraseKdfRecordTest, SerializesToTheDocumentedLayout) {
  PassphraseKdfRecord record{{19 * 1024, 2, 1}, {}};
  for (std::size_t i = 0; i < record.salt.size(); ++i) {
    record.salt[i] = static_cast<std::uint8_t>(0xf0 + i);
  }
  EXPECT_EQ(ToHex(record.Serialize()),
            "43464b31"                            // "CFK1"
            "00004c00"                            // m = 19456 KiB
            "00000002"                            // t = 2
            "00000001"                            // p = 1
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");  // salt
  EXPECT_EQ(record.Serialize().size(), kPassphraseKdfRecordSize);
}

TEST(PassphraseKdfRecordTest, ParseInvertsSerialize) {
  const PassphraseKdfRecord record = *PassphraseKdfRecord::Create(kDefaultArgon2Params);
  auto parsed = PassphraseKdfRecord::Parse(record.Serialize());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->params.memory_kib, kDefaultArgon2Params.memory_kib);
  EXPECT_EQ(parsed->params.iterations, kDefaultArgon2Params.iterations);
  EXPECT_EQ(parsed->params.parallelism, kDefaultArgon2Params.parallelism);
  EXPECT_EQ(parsed->salt, record.salt);
  EXPECT_EQ(parsed->Serialize(), record.Serialize());
}

TEST(PassphraseKdfRecordTest, ParseRejectsBadMagic) {
  const Bytes good = FastRecord().Serialize();
  for (std::size_t i = 0; i < 4; ++i) {
    Bytes bad = good;
    bad[i] ^= 0x01;
    auto parsed = PassphraseKdfRecord::Parse(bad);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code(), ErrorCode::kCorrupt);
  }
  Bytes other_version = good;
  other_version[3] = '2';
  EXPECT_FALSE(PassphraseKdfRecord::Parse(other_version).has_value());
}

TEST(PassphraseKdfRecordTest, ParseRejectsWrongLength) {
  const Bytes good = FastRecord().Serialize();
  EXPECT_EQ(PassphraseKdfRecord::Parse({}).error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(Bytes(good.begin(), good.begin() + 3)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(Bytes(good.begin(), good.end() - 1)).error().code(),
            ErrorCode::kCorrupt);
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_EQ(PassphraseKdfRecord::Parse(longer).error().code(), ErrorCode::kCorrupt);
}

TEST(PassphraseKdfRecordTest, ParseRejectsParametersBelowTheOwaspMinimum) {
  const std::uint32_t m = kMinimumArgon2Params.memory_kib;
  const std::uint32_t t = kMinimumArgon2Params.iterations;
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(m - 1, t, 1)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(m, t - 1, 1)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(m, t, 0)).error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(32, 3, 4)).error().code(), ErrorCode::kCorrupt);
}

TEST(PassphraseKdfRecordTest, ParseRejectsParametersAboveTheMaxima) {
  const std::uint32_t m = kMinimumArgon2Params.memory_kib;
  const std::uint32_t t = kMinimumArgon2Params.iterations;
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(kMaxArgon2MemoryKib + 1, t, 1)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(m, kMaxArgon2Iterations + 1, 1)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(PassphraseKdfRecord::Parse(RecordBytes(m, t, kMaxArgon2Parallelism + 1)).error().code(),
            ErrorCode::kCorrupt);
  EXPECT_EQ(
      PassphraseKdfRecord::Parse(RecordBytes(0xffffffff, 0xffffffff, 0xffffffff)).error().code(),
      ErrorCode::kCorrupt);
}

TEST(PassphraseKdfRecordTest, ParseAcceptsTheBoundsThemselves) {
  EXPECT_TRUE(PassphraseKdfRecord::Parse(
                  RecordBytes(kMinimumArgon2Params.memory_kib, kMinimumArgon2Params.iterations, 1))
                  .has_value());
  EXPECT_TRUE(PassphraseKdfRecord::Parse(
                  RecordBytes(kMaxArgon2MemoryKib, kMaxArgon2Iterations, kMaxArgon2Parallelism))
                  .has_value());
}

TEST(PassphraseKdfRecordTest, CreateRefusesWeakOrExcessiveParameters) {
  const std::uint32_t m = kMinimumArgon2Params.memory_kib;
  const std::uint32_t t = kMinimumArgon2Params.iterations;
  for (const Argon2Params& params :
       {Argon2Params{m - 1, t, 1}, Argon2Params{m, t - 1, 1}, Argon2Params{m, t, 0},
        Argon2Params{32, 3, 4}, Argon2Params{kMaxArgon2MemoryKib + 1, t, 1},
        Argon2Params{m, kMaxArgon2Iterations + 1, 1},
        Argon2Params{m, t, kMaxArgon2Parallelism + 1}}) {
    auto record = PassphraseKdfRecord::Create(params);
    ASSERT_FALSE(record.has_value());
    EXPECT_EQ(record.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(PassphraseKdfRecordTest, CreateDrawsAFreshSalt) {
  EXPECT_NE(FastRecord().salt, FastRecord().salt);
}

// ---------------------------------------------------------------------------------------
// DeriveKeyFromPassphrase

TEST(PassphraseKdfDeriveTest, SamePassphraseAndRecordGiveTheSameKey) {
  const PassphraseKdfRecord record = FastRecord();
  // Through a serialised copy, as after a restart.
  const PassphraseKdfRecord reloaded = *PassphraseKdfRecord::Parse(record.Serialize());
  auto a = DeriveKeyFromPassphrase(Text("correct horse battery staple"), record);
  auto b = DeriveKeyFromPassphrase(Text("correct horse battery staple"), reloaded);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_TRUE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(PassphraseKdfDeriveTest, AnotherPassphraseGivesAnotherKey) {
  const PassphraseKdfRecord record = FastRecord();
  auto a = DeriveKeyFromPassphrase(Text("correct horse battery staple"), record);
  auto b = DeriveKeyFromPassphrase(Text("correct horse battery stapler"), record);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(PassphraseKdfDeriveTest, AnotherSaltGivesAnotherKey) {
  PassphraseKdfRecord record = FastRecord();
  auto a = DeriveKeyFromPassphrase(Text("passphrase"), record);
  record.salt[0] ^= 0x01;
  auto b = DeriveKeyFromPassphrase(Text("passphrase"), record);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(ConstantTimeEquals(a->span(), b->span()));
}

TEST(PassphraseKdfDeriveTest, IsPlainArgon2idWithoutSecretOrAssociatedData) {
  const PassphraseKdfRecord record = FastRecord();
  auto derived = DeriveKeyFromPassphrase(Text("passphrase"), record, 64);
  auto direct = internal::Argon2idFull(Text("passphrase"), record.salt, {}, {}, record.params, 64);
  ASSERT_TRUE(derived.has_value());
  ASSERT_TRUE(direct.has_value());
  EXPECT_EQ(derived->size(), 64u);
  EXPECT_TRUE(ConstantTimeEquals(derived->span(), direct->span()));
}

TEST(PassphraseKdfDeriveTest, RefusesWeakRecordsAndBadOutputSizes) {
  PassphraseKdfRecord weak = FastRecord();
  weak.params.iterations = 1;
  EXPECT_EQ(DeriveKeyFromPassphrase(Text("pw"), weak).error().code(), ErrorCode::kInvalidArgument);
  const PassphraseKdfRecord record = FastRecord();
  EXPECT_EQ(DeriveKeyFromPassphrase(Text("pw"), record, 15).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DeriveKeyFromPassphrase(Text("pw"), record, 65).error().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::crypto
