// The Signal protocol (libsignal-protocol-c 2.3.3) behind our own interface: device keys,
// prekey bundles, pairwise double-ratchet sessions and group sender keys.
//
// No library type appears here. A SignalDevice owns the library's context and store context
// for one local device and keeps all protocol state in the SignalStores it is given.
//
// Wire contract. The library's serialized messages do not say which kind of message they
// are, so every ciphertext leaves as a SignalCiphertext {type, bytes}: the transport
// envelope must carry `type` next to the bytes and give both back to Decrypt.
#ifndef COFFRE_CRYPTO_SIGNAL_PROTOCOL_H_
#define COFFRE_CRYPTO_SIGNAL_PROTOCOL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/safety_number.h"
#include "coffre/crypto/secret_bytes.h"
#include "coffre/crypto/signal_stores.h"

namespace coffre::crypto {

// Message kinds, with the library's own numbers so logs and captures read the same.
enum class SignalMessageType : std::uint8_t {
  kWhisper = 2,                // pairwise message on an established session
  kPreKey = 3,                 // pairwise message that also establishes the session
  kSenderKey = 4,              // group message
  kSenderKeyDistribution = 5,  // group sending key; only ever travels inside a pairwise message
};

// A ciphertext as it crosses the wire: our type and the library's bytes.
struct SignalCiphertext {
  SignalMessageType type;
  std::vector<std::uint8_t> bytes;
};

// Public keys are 33 bytes: the type byte 0x05 then the 32-byte Curve25519 key.
inline constexpr std::size_t kSignalPublicKeySize = 33;
inline constexpr std::uint8_t kSignalKeyType = 0x05;
// XEdDSA signatures are 64 bytes.
inline constexpr std::size_t kSignalSignatureSize = 64;
using SignalPublicKey = std::array<std::uint8_t, kSignalPublicKeySize>;
using SignalSignature = std::array<std::uint8_t, kSignalSignatureSize>;

// Limits, checked before anything is parsed or handed to the library.
inline constexpr std::size_t kMaxSignalNameSize = 256;     // user id, bytes (no NUL)
inline constexpr std::size_t kMaxSignalGroupIdSize = 256;  // group id, bytes
// Pairwise messages carry text and keys; files use the document format instead.
inline constexpr std::size_t kMaxSignalMessageSize = 1 << 20;
// Prekey ids are 24-bit in the protocol; the top value is reserved for a last-resort key.
inline constexpr std::uint32_t kMaxPreKeyId = 0xFFFFFE;
inline constexpr std::uint32_t kMaxPreKeyBatch = 1000;

// A one-time prekey as published: id and public key.
struct PublicPreKey {
  std::uint32_t id = 0;
  SignalPublicKey public_key{};
};

// A signed prekey as published: the public key signed by the identity key.
struct PublicSignedPreKey {
  std::uint32_t id = 0;
  std::uint64_t timestamp_ms = 0;
  SignalPublicKey public_key{};
  SignalSignature signature{};
};

// What a device needs from the relay to open a session with another device.
//
// Serialized layout, version 1 (all integers big-endian):
//   offset  size  field
//        0     4  magic "CFB1" (format version 1)
//        4     1  flags: bit 0 set = a one-time prekey follows at the end; other bits zero
//        5     4  registration id, 1..2^31-1
//        9     4  device id, 1..2^31-1
//       13     4  signed prekey id, 0..2^24-1
//       17    33  signed prekey public key (0x05 || 32 bytes)
//       50    64  signed prekey signature (by the identity key)
//      114    33  identity public key (0x05 || 32 bytes)
//      147     4  [flag] one-time prekey id, 1..2^24-2
//      151    33  [flag] one-time prekey public key
// Total: 147 bytes without a one-time prekey, 184 with one. Parse rejects any other
// length. The signature is verified when a session is built, not by Parse.
struct PreKeyBundle {
  std::uint32_t registration_id = 0;
  std::int32_t device_id = 0;
  std::optional<PublicPreKey> one_time_pre_key;
  std::uint32_t signed_pre_key_id = 0;
  SignalPublicKey signed_pre_key{};
  SignalSignature signed_pre_key_signature{};
  SignalPublicKey identity_key{};

  // The layout above. Fields out of range are written as they are and refused by Parse.
  std::vector<std::uint8_t> Serialize() const;
  // Validates magic, length, flags, ranges and key type bytes before returning a bundle;
  // fails with kInvalidArgument (or kUnsupported for another format version) on anything
  // else. Never reads outside `bytes`.
  static Result<PreKeyBundle> Parse(std::span<const std::uint8_t> bytes);
};
inline constexpr std::size_t kPreKeyBundleSize = 147;
inline constexpr std::size_t kPreKeyBundleWithPreKeySize = 184;

// Called with a decrypted plaintext after the library has decrypted it and before the new
// ratchet state is written to the stores. Persist the plaintext here, in the same database
// transaction as the state, so that a crash can neither lose a message nor desynchronise
// the ratchet. An error aborts the decryption and nothing is committed. It must not call
// back into the same SignalDevice.
using PlaintextSink = std::function<Status(std::span<const std::uint8_t> plaintext)>;

class SignalDevice {
 public:
  // A device for `local_address` (name: 1..kMaxSignalNameSize bytes without NUL; device id
  // >= 1) keeping its state in `stores`, none of which may be null; they are not owned and
  // must outlive the device. Creating a device writes nothing: call GenerateIdentity once
  // for a new device. Fails with kInvalidArgument on a bad address or a null store, and
  // with kInternal / kResourceExhausted if the library cannot be set up.
  static Result<std::unique_ptr<SignalDevice>> Create(SignalAddress local_address,
                                                      const SignalStores& stores);
  ~SignalDevice();
  SignalDevice(const SignalDevice&) = delete;
  SignalDevice& operator=(const SignalDevice&) = delete;

  const SignalAddress& local_address() const;

  // --- Keys -------------------------------------------------------------------------------

  // Generates the identity key pair and the registration id and stores them. Fails with
  // kAlreadyExists if the identity store already holds an identity (an identity is made
  // once per device; replacing it breaks every session).
  Status GenerateIdentity();
  // The local identity public key; kNotFound before GenerateIdentity.
  Result<SignalPublicKey> IdentityPublicKey();
  // Generates `count` (1..kMaxPreKeyBatch) one-time prekeys with ids start_id,
  // start_id + 1, ... (start_id >= 1 and the last id <= kMaxPreKeyId), stores their private
  // halves and returns the public halves to publish. kInvalidArgument on bad ranges.
  Result<std::vector<PublicPreKey>> GeneratePreKeys(std::uint32_t start_id, std::uint32_t count);
  // Generates a signed prekey with `id` (<= kMaxPreKeyId) signed by the identity key, stores
  // it and returns its public part. kNotFound before GenerateIdentity.
  Result<PublicSignedPreKey> GenerateSignedPreKey(std::uint32_t id, std::uint64_t timestamp_ms);
  // Assembles this device's bundle from the stores: the signed prekey `signed_pre_key_id`
  // and, if given, the one-time prekey `pre_key_id`. kNotFound if one of them is missing.
  // (In production the relay assembles bundles from what was published; this serves tests,
  // the demonstration and a relay-less setup.)
  Result<PreKeyBundle> CreatePreKeyBundle(std::optional<std::uint32_t> pre_key_id,
                                          std::uint32_t signed_pre_key_id);

  // --- Pairwise sessions ------------------------------------------------------------------

  // Builds a session with `remote` from its bundle, after checking that the bundle is for
  // that device id and that its signed prekey signature verifies under its identity key.
  // Fails with kInvalidArgument (bad address, bundle for another device, our own address),
  // kAuthenticationFailed (bad signature or key), kUntrustedIdentity (the identity store
  // refuses the bundle's identity key). On success the identity is recorded.
  Status ProcessPreKeyBundle(const SignalAddress& remote, const PreKeyBundle& bundle);
  // Whether a session with `remote` exists.
  Result<bool> HasSession(const SignalAddress& remote);
  // Encrypts `plaintext` for `remote`. The remote identity of the session is checked with
  // IdentityKeyStore::IsTrusted first (the library itself only checks when a session is
  // built): kUntrustedIdentity if it is no longer trusted. kNotFound without a session.
  // Returns kPreKey until the remote has answered, kWhisper after.
  Result<SignalCiphertext> Encrypt(const SignalAddress& remote,
                                   std::span<const std::uint8_t> plaintext);
  // Decrypts a pairwise message of `type` (kPreKey or kWhisper) from `remote`. A kPreKey
  // message builds the session if needed. `sink`, if set, runs before the new state is
  // committed (see PlaintextSink). Failures:
  //   kReplay             the message was already decrypted
  //   kAuthenticationFailed  anything malformed, forged, altered or not for us (one context
  //                       string for all of them, so failures give no oracle)
  //   kUntrustedIdentity  the sender's identity is not trusted
  //   kNotFound           kWhisper without a session
  //   kInvalidArgument    bad address, empty or oversized message, or another type
  // Nothing is committed on failure.
  Result<SecretBytes> Decrypt(const SignalAddress& remote, SignalMessageType type,
                              std::span<const std::uint8_t> ciphertext,
                              const PlaintextSink& sink = nullptr);

  // --- Groups (sender keys) ---------------------------------------------------------------
  //
  // A sender key is a per-(group, sender) chain; each member sends its own distribution
  // payload to each other member, always inside a pairwise session (Encrypt), never in
  // clear: it holds the chain key.
  //
  // Binding. The library does not authenticate the group id or the sender of a
  // distribution message, so we bind both ourselves:
  //   - the distribution payload is our header {group id, sender address} followed by the
  //     library's message; it is authenticated by the pairwise session it travels in, and
  //     ProcessGroupDistribution refuses it unless the header names the group and the
  //     pairwise sender it is processed for. A member cannot install another member's key
  //     under their own name, and the relay cannot move a key to another group.
  //   - every group message starts, inside the encryption, with a header holding the group
  //     id; it is covered by the sender's signature and the chain's encryption, and
  //     GroupDecrypt refuses a message whose header names another group.
  //
  // Distribution payload layout, version 1 (big-endian):
  //   "CFD1" | u16 group id length | group id | u16 sender name length | sender name |
  //   u32 sender device id | u32 library message length | library distribution message
  // Group message plaintext layout, version 1 (inside the encryption):
  //   "CFG1" | u16 group id length | group id | application plaintext

  // Our distribution payload for `group_id`, creating our sending key for the group if we
  // have none. Send it to each member with Encrypt and mark it, inside the application's
  // pairwise payload, as kSenderKeyDistribution. It is secret.
  Result<SecretBytes> CreateGroupDistribution(std::string_view group_id);
  // Installs the sending key of `sender` for `group_id` from a distribution payload that
  // arrived inside a pairwise message from `sender`. Refused with
  //   kInvalidArgument       malformed payload, bad ids, or `sender` is ourselves (a
  //                          distribution claiming to be ours would overwrite our own
  //                          sending chain)
  //   kAuthenticationFailed  the header names another group or another sender
  //   kReplay                the key id was already seen at this iteration or later
  // The highest (key id, iteration) is recorded before the key is installed, so a crash
  // between the two leaves the guard on the safe side.
  Status ProcessGroupDistribution(std::string_view group_id, const SignalAddress& sender,
                                  std::span<const std::uint8_t> distribution);
  // Encrypts `plaintext` for every member holding our sending key for `group_id`.
  // kNotFound if CreateGroupDistribution was never called for the group. Returns kSenderKey.
  Result<SignalCiphertext> GroupEncrypt(std::string_view group_id,
                                        std::span<const std::uint8_t> plaintext);
  // Decrypts a group message of `sender` in `group_id`. Errors as for Decrypt; kNotFound
  // if we have no key from that sender. A message decrypts at most once: with distribution
  // replays dropped, the sender's chain never rewinds, so an old message replayed after a
  // replayed distribution message fails with kReplay (its key was used and erased).
  Result<SecretBytes> GroupDecrypt(std::string_view group_id, const SignalAddress& sender,
                                   std::span<const std::uint8_t> ciphertext,
                                   const PlaintextSink& sink = nullptr);
  // Forgets our sending key for `group_id`, so the next CreateGroupDistribution makes a new
  // one (new key id). Do this when a member leaves, then distribute to those who remain.
  Status RotateGroupSenderKey(std::string_view group_id);

  // --- Safety numbers ---------------------------------------------------------------------

  // The safety number between this device and `remote`, from the identity recorded for
  // `remote` (kNotFound if none). Names are the stable identifiers.
  Result<SafetyNumber> SafetyNumberWith(const SignalAddress& remote);

  // Defined in the module's private sources; opaque everywhere else.
  struct Impl;

 private:
  explicit SignalDevice(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace coffre::crypto

#endif  // COFFRE_CRYPTO_SIGNAL_PROTOCOL_H_
