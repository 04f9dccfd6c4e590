// PreKeyBundle serialization (layout in signal_protocol.h).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "coffre/crypto/signal_protocol.h"
#include "signal_library.h"

namespace coffre::crypto {
namespace {

constexpr std::uint8_t kBundleMagic[4] = {'C', 'F', 'B', '1'};
constexpr std::uint8_t kFlagOneTimePreKey = 0x01;
constexpr std::uint32_t kMaxRegistrationId = 0x7FFFFFFF;
constexpr std::uint32_t kMaxSignedPreKeyId = 0xFFFFFF;

bool ReadKey(internal::ByteReader& reader, SignalPublicKey& key) {
  std::span<const std::uint8_t> bytes;
  if (!reader.Bytes(key.size(), bytes)) return false;
  if (bytes[0] != kSignalKeyType) return false;
  std::copy(bytes.begin(), bytes.end(), key.begin());
  return true;
}

}  // namespace

std::vector<std::uint8_t> PreKeyBundle::Serialize() const {
  std::vector<std::uint8_t> out;
  out.reserve(kPreKeyBundleWithPreKeySize);
  internal::ByteWriter writer(out);
  writer.Bytes(kBundleMagic);
  writer.U8(one_time_pre_key ? kFlagOneTimePreKey : 0);
  writer.U32(registration_id);
  writer.U32(static_cast<std::uint32_t>(device_id));
  writer.U32(signed_pre_key_id);
  writer.Bytes(signed_pre_key);
  writer.Bytes(signed_pre_key_signature);
  writer.Bytes(identity_key);
  if (one_time_pre_key) {
    writer.U32(one_time_pre_key->id);
    writer.Bytes(one_time_pre_key->public_key);
  }
  return out;
}

Result<PreKeyBundle> PreKeyBundle::Parse(std::span<const std::uint8_t> bytes) {
  constexpr const char* kMalformed = "malformed prekey bundle";
  internal::ByteReader reader(bytes);
  std::span<const std::uint8_t> magic;
  if (!reader.Bytes(sizeof kBundleMagic, magic)) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }
  if (!std::equal(magic.begin(), magic.begin() + 3, kBundleMagic)) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }
  if (magic[3] != kBundleMagic[3]) {
    return Fail(ErrorCode::kUnsupported, "unsupported prekey bundle version");
  }

  std::uint8_t flags = 0;
  if (!reader.U8(flags) || (flags & ~kFlagOneTimePreKey) != 0) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }
  const bool has_pre_key = (flags & kFlagOneTimePreKey) != 0;
  // Exact length first: nothing after this point can run past the end.
  if (bytes.size() != (has_pre_key ? kPreKeyBundleWithPreKeySize : kPreKeyBundleSize)) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }

  PreKeyBundle bundle;
  std::uint32_t device_id = 0;
  std::span<const std::uint8_t> signature;
  if (!reader.U32(bundle.registration_id) || !reader.U32(device_id) ||
      !reader.U32(bundle.signed_pre_key_id) || !ReadKey(reader, bundle.signed_pre_key) ||
      !reader.Bytes(kSignalSignatureSize, signature) || !ReadKey(reader, bundle.identity_key)) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }
  std::copy(signature.begin(), signature.end(), bundle.signed_pre_key_signature.begin());
  if (bundle.registration_id == 0 || bundle.registration_id > kMaxRegistrationId ||
      device_id == 0 || device_id > 0x7FFFFFFFu || bundle.signed_pre_key_id > kMaxSignedPreKeyId) {
    return Fail(ErrorCode::kInvalidArgument, kMalformed);
  }
  bundle.device_id = static_cast<std::int32_t>(device_id);

  if (has_pre_key) {
    PublicPreKey pre_key;
    if (!reader.U32(pre_key.id) || !ReadKey(reader, pre_key.public_key) || pre_key.id == 0 ||
        pre_key.id > kMaxPreKeyId) {
      return Fail(ErrorCode::kInvalidArgument, kMalformed);
    }
    bundle.one_time_pre_key = pre_key;
  }
  if (reader.remaining() != 0) return Fail(ErrorCode::kInvalidArgument, kMalformed);
  return bundle;
}

}  // namespace coffre::crypto
