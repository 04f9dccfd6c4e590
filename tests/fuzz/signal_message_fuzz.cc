// Fuzz target: what a device does with message bytes from the relay. Alice and Bob, with a
// session established once (through a serialized bundle, as in production) and a group
// whose sender key Bob holds, live in a static for the whole run. Each input becomes one
// message, which Bob hands to Decrypt as a prekey message, as a whisper message and as a
// message of another type, to ProcessGroupDistribution, and to GroupDecrypt.
//
// Keys are random in every run, so no seed file can hold a valid message. Instead the
// input either is the message itself, or edits one of the valid messages Alice made at
// start-up (a template), which gets the fuzzer past the parsers into the MAC, signature and
// replay checks:
//   [0]       mode % 6: 0 = the rest of the input is the message; 1..5 = edit template
//             1 prekey message, 2 whisper message, 3 group message, 4 distribution payload
//             for a second group, 5 group message in that second group
//   [1, 3)    (templates) offset, big-endian, reduced modulo the template size + 1
//   [3]       (templates) operation % 4: 0 overwrite, 1 insert, 2 xor, 3 truncate there and
//             append
//   the rest  (templates) the bytes of the operation
// A template with an empty edit is the valid message: it decrypts the first time only.
//
// Invariants (a broken one aborts: it is a finding):
//   - a pairwise or group message decrypts only to a plaintext Alice sent and not yet
//     received, so at most once (no forgery, no replay);
//   - in the second group, the same holds until some distribution other than Alice's
//     genuine one has been installed (a distribution is authenticated by the pairwise
//     session it travels in, which the fuzzer bypasses, so after that anything goes);
//   - Alice's genuine distribution payload installs at most once;
//   - failures have the codes signal_protocol.h promises: never kInternal (which would be an
//     oracle and a library error we did not map), kInvalidArgument only for another type.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

constexpr std::string_view kGroup = "fuzz/group";
constexpr std::string_view kSecondGroup = "fuzz/second-group";

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "signal_message_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

std::vector<std::uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }
std::string Text(const SecretBytes& bytes) { return {bytes.span().begin(), bytes.span().end()}; }

struct Party {
  explicit Party(SignalAddress party_address) : address(std::move(party_address)) {
    auto created = SignalDevice::Create(address, stores.stores());
    Require(created.has_value(), "setup: device created");
    device = std::move(*created);
    Require(device->GenerateIdentity().has_value(), "setup: identity generated");
    Require(device->GeneratePreKeys(1, 2).has_value(), "setup: prekeys generated");
    Require(device->GenerateSignedPreKey(1, 1'700'000'000'000).has_value(),
            "setup: signed prekey generated");
  }

  SignalAddress address;
  InMemorySignalStores stores;  // declared before the device, so it outlives it
  std::unique_ptr<SignalDevice> device;
};

enum Template : std::size_t {
  kPreKeyMessage = 1,
  kWhisperMessage,
  kGroupMessage,
  kSecondGroupDistribution,
  kSecondGroupMessage,
  kTemplateCount,
};

class World {
 public:
  static World& Get() {
    static World world;
    return world;
  }

  Party alice{SignalAddress{"alice", 1}};
  Party bob{SignalAddress{"bob", 1}};
  std::vector<std::uint8_t> templates[kTemplateCount];
  // Plaintexts Alice sent that Bob has not decrypted yet, per channel.
  std::set<std::string> pairwise_pending;
  std::set<std::string> group_pending;
  std::set<std::string> second_group_pending;
  bool genuine_distribution_installed = false;
  bool foreign_distribution_installed = false;

 private:
  World() {
    SignalDevice& a = *alice.device;
    SignalDevice& b = *bob.device;
    auto bundle = b.CreatePreKeyBundle(1, 1);
    Require(bundle.has_value(), "setup: bundle");
    auto parsed = PreKeyBundle::Parse(bundle->Serialize());
    Require(parsed && a.ProcessPreKeyBundle(bob.address, *parsed).has_value(),
            "setup: session built from the bundle");

    const SignalCiphertext first = MustEncrypt(a, bob.address, "prekey message 1");
    const SignalCiphertext second = MustEncrypt(a, bob.address, "prekey message 2");
    Require(first.type == SignalMessageType::kPreKey && second.type == SignalMessageType::kPreKey,
            "setup: prekey messages before the answer");
    MustDecrypt(b, alice.address, first, "prekey message 1");
    const SignalCiphertext reply = MustEncrypt(b, alice.address, "reply");
    MustDecrypt(a, bob.address, reply, "reply");

    auto distribution = a.CreateGroupDistribution(kGroup);
    Require(distribution.has_value(), "setup: group distribution");
    auto carried = a.Encrypt(bob.address, distribution->span());
    Require(carried && carried->type == SignalMessageType::kWhisper, "setup: carried");
    auto received = b.Decrypt(alice.address, carried->type, carried->bytes);
    Require(received && b.ProcessGroupDistribution(kGroup, alice.address, received->span()),
            "setup: group distribution installed");

    const SignalCiphertext whisper = MustEncrypt(a, bob.address, "whisper message");
    Require(whisper.type == SignalMessageType::kWhisper, "setup: whisper message");
    auto group_message = a.GroupEncrypt(kGroup, Bytes("group message"));
    Require(group_message.has_value(), "setup: group message");
    auto second_distribution = a.CreateGroupDistribution(kSecondGroup);
    Require(second_distribution.has_value(), "setup: second distribution");
    auto second_message = a.GroupEncrypt(kSecondGroup, Bytes("second group message"));
    Require(second_message.has_value(), "setup: second group message");

    templates[kPreKeyMessage] = second.bytes;
    templates[kWhisperMessage] = whisper.bytes;
    templates[kGroupMessage] = group_message->bytes;
    templates[kSecondGroupDistribution].assign(second_distribution->span().begin(),
                                               second_distribution->span().end());
    templates[kSecondGroupMessage] = second_message->bytes;
    pairwise_pending = {"prekey message 2", "whisper message"};
    group_pending = {"group message"};
    second_group_pending = {"second group message"};
  }

  static SignalCiphertext MustEncrypt(SignalDevice& from, const SignalAddress& to,
                                      std::string_view text) {
    auto sent = from.Encrypt(to, Bytes(text));
    Require(sent.has_value(), "setup: encrypt");
    return std::move(sent).value();
  }

  static void MustDecrypt(SignalDevice& to, const SignalAddress& from,
                          const SignalCiphertext& message, std::string_view text) {
    auto received = to.Decrypt(from, message.type, message.bytes);
    Require(received && Text(*received) == text, "setup: decrypt");
  }
};

// The message an input stands for (see the file comment).
std::vector<std::uint8_t> MessageFor(const World& world, std::span<const std::uint8_t> input) {
  if (input.empty()) return {};
  const std::size_t mode = input[0] % kTemplateCount;
  if (mode == 0) return {input.begin() + 1, input.end()};
  std::vector<std::uint8_t> message = world.templates[mode];
  const std::size_t raw_offset = input.size() >= 3 ? std::size_t{input[1]} << 8 | input[2] : 0;
  const std::size_t offset = raw_offset % (message.size() + 1);
  const unsigned operation = input.size() >= 4 ? input[3] % 4u : 2u;
  const std::span<const std::uint8_t> edit = input.subspan(std::min<std::size_t>(input.size(), 4));
  const auto at = message.begin() + static_cast<std::ptrdiff_t>(offset);
  switch (operation) {
    case 0:  // overwrite, growing the message if the edit runs past its end
      message.resize(std::max(message.size(), offset + edit.size()));
      std::copy(edit.begin(), edit.end(), message.begin() + static_cast<std::ptrdiff_t>(offset));
      break;
    case 1:  // insert
      message.insert(at, edit.begin(), edit.end());
      break;
    case 2:  // xor, up to the end of the message
      for (std::size_t i = 0; i < edit.size() && offset + i < message.size(); ++i) {
        message[offset + i] ^= edit[i];
      }
      break;
    default:  // truncate, then append
      message.resize(offset);
      message.insert(message.end(), edit.begin(), edit.end());
      break;
  }
  return message;
}

bool IsDecryptFailureCode(ErrorCode code) {
  return code == ErrorCode::kAuthenticationFailed || code == ErrorCode::kReplay ||
         code == ErrorCode::kUntrustedIdentity || code == ErrorCode::kNotFound;
}

// A decryption result on a channel whose pending plaintexts we know.
void CheckDecrypted(const Result<SecretBytes>& result, std::set<std::string>* pending,
                    bool empty_message, const char* channel_invariant) {
  if (!result) {
    if (empty_message) {
      Require(result.error().code() == ErrorCode::kInvalidArgument,
              "an empty message is refused as an invalid argument");
    } else {
      Require(IsDecryptFailureCode(result.error().code()),
              "a message is refused with one of the documented codes");
    }
    return;
  }
  Require(!empty_message, "an empty message never decrypts");
  if (pending == nullptr) return;
  Require(pending->erase(Text(*result)) == 1, channel_invariant);
}

}  // namespace
}  // namespace coffre::crypto

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  using coffre::ErrorCode;
  World& world = World::Get();
  SignalDevice& bob = *world.bob.device;
  const SignalAddress& alice = world.alice.address;
  const std::vector<std::uint8_t> message =
      MessageFor(world, std::span<const std::uint8_t>(data, size));
  const bool empty = message.empty();

  for (const SignalMessageType type : {SignalMessageType::kPreKey, SignalMessageType::kWhisper}) {
    CheckDecrypted(bob.Decrypt(alice, type, message), &world.pairwise_pending, empty,
                   "a pairwise message decrypts only to an unreceived plaintext Alice sent");
  }
  if (size > 0 && data[0] != 2 && data[0] != 3) {
    const auto other_type = bob.Decrypt(alice, static_cast<SignalMessageType>(data[0]), message);
    Require(!other_type && other_type.error().code() == ErrorCode::kInvalidArgument,
            "Decrypt refuses every type but kPreKey and kWhisper");
  }

  CheckDecrypted(bob.GroupDecrypt(kGroup, alice, message), &world.group_pending, empty,
                 "a group message decrypts only to an unreceived plaintext Alice sent");

  const coffre::Status installed = bob.ProcessGroupDistribution(kSecondGroup, alice, message);
  if (installed) {
    if (message == world.templates[kSecondGroupDistribution]) {
      Require(!world.genuine_distribution_installed, "a distribution payload installs once");
      world.genuine_distribution_installed = true;
    } else {
      world.foreign_distribution_installed = true;
    }
  } else {
    const ErrorCode code = installed.error().code();
    Require(code == ErrorCode::kInvalidArgument || code == ErrorCode::kAuthenticationFailed ||
                code == ErrorCode::kReplay,
            "a distribution payload is refused with one of the documented codes");
  }

  CheckDecrypted(bob.GroupDecrypt(kSecondGroup, alice, message),
                 world.foreign_distribution_installed ? nullptr : &world.second_group_pending,
                 empty,
                 "a second-group message decrypts only to an unreceived plaintext Alice sent");
  return 0;
}
