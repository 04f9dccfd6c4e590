#include "coffre/crypto/passphrase_kdf.h"

#include <argon2.h>

#include <cstring>

#include "coffre/crypto/random.h"

namespace coffre::crypto {
namespace {

constexpr std::uint8_t kRecordMagic[4] = {'C', 'F', 'K', '1'};

bool ParamsInBounds(const Argon2Params& p) {
  return p.memory_kib >= kMinimumArgon2Params.memory_kib &&
         p.iterations >= kMinimumArgon2Params.iterations && p.parallelism >= 1 &&
         p.memory_kib <= kMaxArgon2MemoryKib && p.iterations <= kMaxArgon2Iterations &&
         p.parallelism <= kMaxArgon2Parallelism &&
         // Argon2 needs at least 8 KiB per lane (RFC 9106 §3.1).
         p.memory_kib >= 8 * p.parallelism;
}

void PutU32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t GetU32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
         std::uint32_t{p[3]};
}

}  // namespace

Result<PassphraseKdfRecord> PassphraseKdfRecord::Create(Argon2Params params) {
  if (!ParamsInBounds(params)) {
    return Fail(ErrorCode::kInvalidArgument, "Argon2id parameters out of bounds");
  }
  PassphraseKdfRecord record{params, {}};
  RandomFill(record.salt);
  return record;
}

std::vector<std::uint8_t> PassphraseKdfRecord::Serialize() const {
  std::vector<std::uint8_t> out(std::begin(kRecordMagic), std::end(kRecordMagic));
  PutU32(out, params.memory_kib);
  PutU32(out, params.iterations);
  PutU32(out, params.parallelism);
  out.insert(out.end(), salt.begin(), salt.end());
  return out;
}

Result<PassphraseKdfRecord> PassphraseKdfRecord::Parse(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != kPassphraseKdfRecordSize ||
      std::memcmp(bytes.data(), kRecordMagic, sizeof kRecordMagic) != 0) {
    return Fail(ErrorCode::kCorrupt, "not a Coffre passphrase KDF record");
  }
  PassphraseKdfRecord record{
      {GetU32(bytes.data() + 4), GetU32(bytes.data() + 8), GetU32(bytes.data() + 12)}, {}};
  if (!ParamsInBounds(record.params)) {
    return Fail(ErrorCode::kCorrupt, "passphrase KDF record has parameters out of bounds");
  }
  std::memcpy(record.salt.data(), bytes.data() + 16, kPassphraseSaltSize);
  return record;
}

Result<SecretBytes> DeriveKeyFromPassphrase(std::span<const std::uint8_t> passphrase,
                                            const PassphraseKdfRecord& record,
                                            std::size_t output_size) {
  if (!ParamsInBounds(record.params)) {
    return Fail(ErrorCode::kInvalidArgument, "Argon2id parameters out of bounds");
  }
  return internal::Argon2idFull(passphrase, record.salt, {}, {}, record.params, output_size);
}

namespace internal {

Result<SecretBytes> Argon2idFull(std::span<const std::uint8_t> password,
                                 std::span<const std::uint8_t> salt,
                                 std::span<const std::uint8_t> secret,
                                 std::span<const std::uint8_t> associated_data,
                                 const Argon2Params& params, std::size_t output_size) {
  // libargon2 takes every length as uint32_t: a longer input must be refused, not have
  // its length silently cut (which would hash only a prefix of it).
  if (output_size < 16 || output_size > 64 || salt.size() < 8 ||
      password.size() > ARGON2_MAX_PWD_LENGTH || salt.size() > ARGON2_MAX_SALT_LENGTH ||
      secret.size() > ARGON2_MAX_SECRET || associated_data.size() > ARGON2_MAX_AD_LENGTH) {
    return Fail(ErrorCode::kInvalidArgument, "Argon2id input sizes out of range");
  }
  SecretBytes out(output_size);
  // libargon2 takes non-const pointers for inputs it only reads; with the FLAG_CLEAR_*
  // flags unset it does not write to them.
  argon2_context context{};
  context.out = out.data();
  context.outlen = static_cast<std::uint32_t>(output_size);
  context.pwd = const_cast<std::uint8_t*>(password.data());
  context.pwdlen = static_cast<std::uint32_t>(password.size());
  context.salt = const_cast<std::uint8_t*>(salt.data());
  context.saltlen = static_cast<std::uint32_t>(salt.size());
  context.secret = secret.empty() ? nullptr : const_cast<std::uint8_t*>(secret.data());
  context.secretlen = static_cast<std::uint32_t>(secret.size());
  context.ad = associated_data.empty() ? nullptr
                                       : const_cast<std::uint8_t*>(associated_data.data());
  context.adlen = static_cast<std::uint32_t>(associated_data.size());
  context.t_cost = params.iterations;
  context.m_cost = params.memory_kib;
  context.lanes = params.parallelism;
  context.threads = params.parallelism;
  context.version = ARGON2_VERSION_13;
  context.flags = ARGON2_DEFAULT_FLAGS;
  const int rc = argon2id_ctx(&context);
  if (rc == ARGON2_MEMORY_ALLOCATION_ERROR) {
    return Fail(ErrorCode::kResourceExhausted, "not enough memory for Argon2id");
  }
  if (rc != ARGON2_OK) return Fail(ErrorCode::kInvalidArgument, "Argon2id rejected its inputs");
  return out;
}

}  // namespace internal
}  // namespace coffre::crypto
