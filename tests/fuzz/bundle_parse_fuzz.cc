// Fuzz target: PreKeyBundle::Parse on bytes from the relay, then what a client does next
// with a bundle that parses: SignalDevice::ProcessPreKeyBundle, which checks the signed
// prekey signature and the keys.
//
// Invariants (a broken one aborts: it is a finding):
//   - a bundle that parses is 147 or 184 bytes and serializes back to exactly the input;
//   - ProcessPreKeyBundle never fails with kInternal (a library error we did not map).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "coffre/crypto/signal_memory_stores.h"
#include "coffre/crypto/signal_protocol.h"

namespace coffre::crypto {
namespace {

void Require(bool condition, const char* invariant) {
  if (condition) return;
  std::fprintf(stderr, "bundle_parse_fuzz: invariant broken: %s\n", invariant);
  std::abort();
}

// The device that receives bundles. Every bundle that verifies leaves a session and an
// identity record behind, so the device is rebuilt now and then to keep memory bounded over
// a long libFuzzer run.
class Receiver {
 public:
  static Receiver& Get() {
    static Receiver receiver;
    return receiver;
  }

  SignalDevice& device() { return *device_; }

  void CountSession() {
    if (++sessions_ >= kMaxSessions) Reset();
  }

 private:
  static constexpr int kMaxSessions = 64;

  Receiver() { Reset(); }

  void Reset() {
    device_.reset();
    stores_ = std::make_unique<InMemorySignalStores>();
    auto created = SignalDevice::Create(SignalAddress{"receiver", 1}, stores_->stores());
    Require(created.has_value(), "the receiving device can be created");
    device_ = std::move(*created);
    Require(device_->GenerateIdentity().has_value(), "the receiving device has an identity");
    sessions_ = 0;
  }

  std::unique_ptr<InMemorySignalStores> stores_;
  std::unique_ptr<SignalDevice> device_;
  int sessions_ = 0;
};

}  // namespace
}  // namespace coffre::crypto

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coffre::crypto;
  const std::span<const std::uint8_t> input(data, size);
  const auto parsed = PreKeyBundle::Parse(input);
  if (!parsed) return 0;

  Require(size == kPreKeyBundleSize || size == kPreKeyBundleWithPreKeySize,
          "a bundle that parses has one of the two sizes");
  const std::vector<std::uint8_t> serialized = parsed->Serialize();
  Require(std::equal(serialized.begin(), serialized.end(), input.begin(), input.end()),
          "Parse then Serialize gives back the input");

  Receiver& receiver = Receiver::Get();
  const coffre::Status processed =
      receiver.device().ProcessPreKeyBundle(SignalAddress{"sender", parsed->device_id}, *parsed);
  if (processed) {
    receiver.CountSession();
  } else {
    Require(processed.error().code() != coffre::ErrorCode::kInternal,
            "ProcessPreKeyBundle maps every failure on a parsed bundle");
  }
  return 0;
}
