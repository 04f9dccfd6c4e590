// Temporary stand-in for relay_factory.cc, so that the transport and the program can be
// built and run before the relay service exists: a service that answers 404 to every
// request and closes every WebSocket, and admin commands that say they are not available.
// server/CMakeLists.txt drops this file as soon as relay_factory.cc exists.
#include <cstdio>

#include "relay_factory.h"

namespace coffre::server {
namespace {

class PlaceholderService final : public Service {
 public:
  void OnOpen(const std::shared_ptr<Connection>& connection) override {
    // 1013 "try again later": a client reconnects once the real service is deployed.
    connection->Close(1013, "relay service not available");
  }
  void OnFrame(const std::shared_ptr<Connection>&, std::span<const std::uint8_t>) override {}
  void OnClose(const std::shared_ptr<Connection>&) override {}
  HttpReply OnHttp(const HttpRequestInfo&, std::span<const std::uint8_t>) override {
    HttpReply reply;
    reply.status = 404;
    reply.content_type = "application/json";
    const std::string_view body = R"({"error":"not_found"})";
    reply.body.assign(body.begin(), body.end());
    return reply;
  }
  std::string MetricsText() override { return {}; }
  void OnDrain() override {}
};

}  // namespace

Result<std::unique_ptr<Service>> MakeRelayService(const RelayConfig&,
                                                  const crypto::SecretBytes& operator_key,
                                                  const CertificateDigest&) {
  if (operator_key.size() != kOperatorKeyBytes) {
    return Fail(ErrorCode::kInvalidArgument, "the operator key must be 32 bytes");
  }
  return std::unique_ptr<Service>(std::make_unique<PlaceholderService>());
}

int RunAdminEnrol(const RelayConfig&, const crypto::SecretBytes&, const AdminEnrolOptions&) {
  std::fputs("coffre-relay: admin enrol is not available in this build (no relay service)\n",
             stderr);
  return 1;
}

int RunAdminStatus(const RelayConfig&, const crypto::SecretBytes&) {
  std::fputs("coffre-relay: admin status is not available in this build (no relay service)\n",
             stderr);
  return 1;
}

}  // namespace coffre::server
