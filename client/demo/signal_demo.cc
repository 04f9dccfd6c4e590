// coffre-demo: the Signal layer end to end, in one process, without a relay.
//
// Three devices (alice.1, bob.1, carla.1) each keep their state in their own in-memory
// stores and only exchange bytes: serialized prekey bundles, and serialized messages with
// our message type beside them. Alice opens a session with Bob from his bundle, they
// exchange a few messages, Alice shares a group sender key with Bob and Carla through
// pairwise sessions and sends to the group, and Alice and Bob compare safety numbers.
//
// For each message the program prints what crossed the "wire" (type, size, the first bytes
// of the ciphertext) beside what the receiver decrypted. Exit code 0 when every step
// worked, 1 with a message naming the step otherwise.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/base/result.h"
#include "coffre/crypto/safety_number.h"
#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace {

using coffre::Error;
using coffre::ErrorCode;
using coffre::Result;
using coffre::Status;
using coffre::crypto::InMemorySignalStores;
using coffre::crypto::PreKeyBundle;
using coffre::crypto::SafetyNumber;
using coffre::crypto::SecretBytes;
using coffre::crypto::SignalAddress;
using coffre::crypto::SignalCiphertext;
using coffre::crypto::SignalDevice;
using coffre::crypto::SignalMessageType;

constexpr std::string_view kGroup = "sdis-nord/colonne-feux-de-foret";
constexpr std::uint64_t kNowMs = 1'718'000'000'000;  // fixed: the demo is reproducible in form

// A failed step: what we were doing and what went wrong.
struct Failure {
  std::string step;
  Error error;
};

// Runs the demo; returns the first failure, if any.
class Demo {
 public:
  bool Run();
  const Failure& failure() const { return failure_; }

 private:
  struct Device {
    explicit Device(SignalAddress addr) : address(std::move(addr)) {}
    std::string Label() const { return address.name + "." + std::to_string(address.device_id); }

    SignalAddress address;
    InMemorySignalStores stores;
    std::unique_ptr<SignalDevice> signal;
  };

  // Records `error` for `step` and returns false, so that steps read `if (!...) return false`.
  bool Failed(std::string step, const Error& error) {
    failure_ = Failure{std::move(step), error};
    return false;
  }
  template <typename T>
  bool Check(const Result<T>& result, std::string step) {
    return result ? true : Failed(std::move(step), result.error());
  }

  bool SetUpDevice(Device& device, std::vector<std::uint8_t>& published_bundle);
  bool OpenSession(Device& from, Device& to, const std::vector<std::uint8_t>& bundle_bytes);
  bool SendPairwise(Device& from, Device& to, std::string_view text);
  bool ShareSenderKey(Device& from, Device& to);
  bool SendToGroup(Device& from, std::vector<Device*> receivers, std::string_view text);
  bool ShowReplays(Device& from, Device& to);
  bool CompareSafetyNumbers(Device& a, Device& b);

  Device alice_{{"alice", 1}};
  Device bob_{{"bob", 1}};
  Device carla_{{"carla", 1}};
  int message_number_ = 0;
  int group_message_number_ = 0;
  std::vector<std::uint8_t> last_distribution_to_bob_;
  std::vector<std::uint8_t> last_group_message_;
  Failure failure_{"", Error(ErrorCode::kInternal, "")};
};

std::string Hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t byte : bytes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0x0f]);
  }
  return out;
}

// The first and last `edge` bytes: message headers repeat from one message to the next,
// the tail (ciphertext and MAC) never does.
std::string HexExcerpt(std::span<const std::uint8_t> bytes, std::size_t edge) {
  if (bytes.size() <= 2 * edge) return Hex(bytes);
  return Hex(bytes.first(edge)) + " .. " + Hex(bytes.last(edge));
}

std::string TypeName(SignalMessageType type) {
  switch (type) {
    case SignalMessageType::kWhisper:
      return "whisper (2)";
    case SignalMessageType::kPreKey:
      return "prekey (3)";
    case SignalMessageType::kSenderKey:
      return "sender-key (4)";
    case SignalMessageType::kSenderKeyDistribution:
      return "distribution (5)";
  }
  return "unknown";
}

std::string AsText(const SecretBytes& bytes) {
  return std::string(bytes.span().begin(), bytes.span().end());
}

std::span<const std::uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

void PrintWire(const std::string& number, const std::string& route, const SignalCiphertext& wire) {
  std::printf("  %-3s %-18s %-16s %5zu  %s\n", number.c_str(), route.c_str(),
              TypeName(wire.type).c_str(), wire.bytes.size(), HexExcerpt(wire.bytes, 8).c_str());
}

bool Demo::SetUpDevice(Device& device, std::vector<std::uint8_t>& published_bundle) {
  const std::string label = device.Label();
  auto created = SignalDevice::Create(device.address, device.stores.stores());
  if (!Check(created, label + ": create device")) return false;
  device.signal = std::move(*created);
  if (!Check(device.signal->GenerateIdentity(), label + ": generate identity")) return false;
  if (!Check(device.signal->GeneratePreKeys(1, 20), label + ": generate prekeys")) return false;
  if (!Check(device.signal->GenerateSignedPreKey(1, kNowMs), label + ": signed prekey")) {
    return false;
  }
  auto bundle = device.signal->CreatePreKeyBundle(1, 1);
  if (!Check(bundle, label + ": prekey bundle")) return false;
  published_bundle = bundle->Serialize();
  std::printf("  %-8s identity %s   bundle published: %zu bytes\n", label.c_str(),
              HexExcerpt(bundle->identity_key, 4).c_str(), published_bundle.size());
  return true;
}

bool Demo::OpenSession(Device& from, Device& to, const std::vector<std::uint8_t>& bundle_bytes) {
  const std::string step = from.Label() + ": session with " + to.Label();
  auto bundle = PreKeyBundle::Parse(bundle_bytes);
  if (!Check(bundle, step + " (parse bundle)")) return false;
  if (!Check(from.signal->ProcessPreKeyBundle(to.address, *bundle), step)) return false;
  std::printf("  %s built a session with %s from its %zu-byte bundle\n", from.Label().c_str(),
              to.Label().c_str(), bundle_bytes.size());
  return true;
}

bool Demo::SendPairwise(Device& from, Device& to, std::string_view text) {
  const std::string route = from.Label() + " -> " + to.Label();
  auto wire = from.signal->Encrypt(to.address, AsBytes(text));
  if (!Check(wire, route + ": encrypt")) return false;
  // Only (type, bytes) travel.
  auto received = to.signal->Decrypt(from.address, wire->type, wire->bytes);
  if (!Check(received, route + ": decrypt")) return false;
  if (AsText(*received) != text) {
    return Failed(route + ": compare", Error(ErrorCode::kInternal, "plaintext differs"));
  }
  PrintWire(std::to_string(++message_number_), route, *wire);
  std::printf("      %s read: \"%s\"\n", to.Label().c_str(), AsText(*received).c_str());
  return true;
}

bool Demo::ShareSenderKey(Device& from, Device& to) {
  const std::string route = from.Label() + " -> " + to.Label();
  auto distribution = from.signal->CreateGroupDistribution(kGroup);
  if (!Check(distribution, route + ": create distribution")) return false;
  // The distribution holds the chain key: it only ever travels inside a pairwise session.
  auto wire = from.signal->Encrypt(to.address, distribution->span());
  if (!Check(wire, route + ": encrypt distribution")) return false;
  auto received = to.signal->Decrypt(from.address, wire->type, wire->bytes);
  if (!Check(received, route + ": decrypt distribution")) return false;
  if (!Check(to.signal->ProcessGroupDistribution(kGroup, from.address, received->span()),
             route + ": install distribution")) {
    return false;
  }
  PrintWire("K", route, *wire);
  std::printf("      %s installed %s's sender key (%zu-byte distribution, type 5 inside)\n",
              to.Label().c_str(), from.Label().c_str(), received->size());
  if (&to == &bob_)
    last_distribution_to_bob_.assign(received->span().begin(), received->span().end());
  return true;
}

bool Demo::SendToGroup(Device& from, std::vector<Device*> receivers, std::string_view text) {
  const std::string route = from.Label() + " -> group";
  auto wire = from.signal->GroupEncrypt(kGroup, AsBytes(text));
  if (!Check(wire, route + ": group encrypt")) return false;
  std::string number = "G";
  number += std::to_string(++group_message_number_);
  PrintWire(number, route, *wire);
  for (Device* receiver : receivers) {
    auto received = receiver->signal->GroupDecrypt(kGroup, from.address, wire->bytes);
    if (!Check(received, receiver->Label() + ": group decrypt")) return false;
    if (AsText(*received) != text) {
      return Failed(receiver->Label() + ": compare",
                    Error(ErrorCode::kInternal, "plaintext differs"));
    }
    std::printf("      %s read: \"%s\"\n", receiver->Label().c_str(), AsText(*received).c_str());
  }
  last_group_message_ = wire->bytes;
  return true;
}

// What an attacker replaying old traffic gets: refusals, not a second decryption.
bool Demo::ShowReplays(Device& from, Device& to) {
  const Status replayed_distribution =
      to.signal->ProcessGroupDistribution(kGroup, from.address, last_distribution_to_bob_);
  if (replayed_distribution || replayed_distribution.error().code() != ErrorCode::kReplay) {
    return Failed("replayed distribution", Error(ErrorCode::kInternal, "was not refused"));
  }
  auto replayed_message = to.signal->GroupDecrypt(kGroup, from.address, last_group_message_);
  if (replayed_message || replayed_message.error().code() != ErrorCode::kReplay) {
    return Failed("replayed group message", Error(ErrorCode::kInternal, "was not refused"));
  }
  std::printf("  replayed distribution at %s: refused (%s)\n", to.Label().c_str(),
              std::string(coffre::ErrorCodeName(replayed_distribution.error().code())).c_str());
  std::printf("  replayed group message at %s: refused (%s)\n", to.Label().c_str(),
              std::string(coffre::ErrorCodeName(replayed_message.error().code())).c_str());
  return true;
}

bool Demo::CompareSafetyNumbers(Device& a, Device& b) {
  auto seen_by_a = a.signal->SafetyNumberWith(b.address);
  if (!Check(seen_by_a, a.Label() + ": safety number")) return false;
  auto seen_by_b = b.signal->SafetyNumberWith(a.address);
  if (!Check(seen_by_b, b.Label() + ": safety number")) return false;
  auto scanned =
      coffre::crypto::ScannableFingerprintMatches(seen_by_a->scannable, seen_by_b->scannable);
  if (!Check(scanned, "compare scannable codes")) return false;
  const bool digits_match = seen_by_a->digits == seen_by_b->digits;
  std::printf("  %-8s sees %s\n", a.Label().c_str(), seen_by_a->Grouped().c_str());
  std::printf("  %-8s sees %s\n", b.Label().c_str(), seen_by_b->Grouped().c_str());
  std::printf("  safety numbers match: %s (digits %s, scanned code %s)\n",
              digits_match && *scanned ? "yes" : "NO", digits_match ? "equal" : "differ",
              *scanned ? "matches" : "does not match");
  if (!digits_match || !*scanned) {
    return Failed("safety numbers", Error(ErrorCode::kAuthenticationFailed, "do not match"));
  }
  return true;
}

bool Demo::Run() {
  std::printf("coffre-demo: Signal sessions between three devices in one process\n\n");
  std::printf("Devices\n");
  std::vector<std::uint8_t> alice_bundle;
  std::vector<std::uint8_t> bob_bundle;
  std::vector<std::uint8_t> carla_bundle;
  if (!SetUpDevice(alice_, alice_bundle) || !SetUpDevice(bob_, bob_bundle) ||
      !SetUpDevice(carla_, carla_bundle)) {
    return false;
  }

  std::printf("\nSessions (from serialized bundles only)\n");
  if (!OpenSession(alice_, bob_, bob_bundle) || !OpenSession(alice_, carla_, carla_bundle)) {
    return false;
  }

  std::printf("\nPairwise messages\n");
  std::printf("  %-3s %-18s %-16s %5s  %s\n", "#", "route", "wire type", "bytes",
              "ciphertext (first 8 .. last 8 bytes)");
  if (!SendPairwise(alice_, bob_, "Point de regroupement : caserne Nord, 14h") ||
      !SendPairwise(alice_, bob_, "Prévoir deux CCF et un VSAV en renfort.") ||
      !SendPairwise(bob_, alice_, "Bien reçu. Le VSAV 2 part de la caserne Sud à 13h40.") ||
      !SendPairwise(alice_, bob_, "Point de situation à 15h30 sur le canal de la colonne.")) {
    return false;
  }

  std::printf("\nGroup \"%.*s\": alice.1 shares her sender key with bob.1 and carla.1\n",
              static_cast<int>(kGroup.size()), kGroup.data());
  if (!ShareSenderKey(alice_, bob_) || !ShareSenderKey(alice_, carla_)) return false;
  if (!SendToGroup(alice_, {&bob_, &carla_},
                   "Colonne feux de forêt : départ 14h15, itinéraire par la D917.") ||
      !SendToGroup(alice_, {&bob_, &carla_}, "Vent d'ouest 40 km/h, rester sur le flanc sud.")) {
    return false;
  }
  if (!ShowReplays(alice_, bob_)) return false;

  std::printf("\nSafety number (alice.1 <-> bob.1)\n");
  return CompareSafetyNumbers(alice_, bob_);
}

}  // namespace

int main() {
  Demo demo;
  if (!demo.Run()) {
    const Failure& failure = demo.failure();
    std::fprintf(stderr, "coffre-demo: failed at \"%s\": %s (%.*s)\n", failure.step.c_str(),
                 std::string(coffre::ErrorCodeName(failure.error.code())).c_str(),
                 static_cast<int>(failure.error.context().size()), failure.error.context().data());
    return 1;
  }
  return 0;
}
