// Devices as the profile lists them: each with the time its certificate says it was
// certified (signed by the user's identity key), online and offline alike.
#include <chrono>
#include <cstdint>

#include "client/client_fixture.h"

namespace coffre::client {
namespace {

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

class ClientDevicesTest : public testing::ClientTest {};

TEST_F(ClientDevicesTest, ListDevicesShowsWhenTheDeviceWasCertified) {
  const std::uint64_t before = NowMs();
  auto alice = Enrol("alice", /*admin=*/true);
  const std::uint64_t after = NowMs();
  ASSERT_TRUE(alice);
  auto devices = alice->ListDevices();
  ASSERT_OK(devices);
  ASSERT_EQ(devices->size(), 1u);
  const DeviceView& device = devices->front();
  EXPECT_EQ(device.device_id, alice->device_id());
  EXPECT_TRUE(device.this_device);
  EXPECT_FALSE(device.revoked);
  EXPECT_GE(device.created_ms, before);
  EXPECT_LE(device.created_ms, after);

  // Offline, and in a new process, the profile still knows it.
  relay_->Stop();
  alice.reset();
  alice = Reopen("alice");
  ASSERT_TRUE(alice);
  auto offline = alice->ListDevices();
  ASSERT_OK(offline);
  ASSERT_EQ(offline->size(), 1u);
  EXPECT_EQ(offline->front().created_ms, device.created_ms);
}

}  // namespace
}  // namespace coffre::client
