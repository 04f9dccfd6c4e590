// coffre-relay: the zero-knowledge relay's program.
//
//   coffre-relay serve --data DIR [--listen 127.0.0.1:8443] [--config FILE] [--log-level L]
//   coffre-relay admin enrol --data DIR --org ORG [--admin] [--config FILE]
//   coffre-relay admin status --data DIR [--config FILE]
//
// stdout carries the lines an operator or a script reads (certificate fingerprint, bound
// address, admin output); stderr carries JSON logs and error lines.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "relay_factory.h"
#include "service.h"
#include "tls.h"
#include "transport.h"

namespace coffre::server {
namespace {

constexpr const char* kVersion = "0.1.0";

struct CommonFlags {
  std::string data;
  std::string config_file;
  std::string log_level;
};

struct ServeFlags {
  std::string listen;
};

void PrintError(std::string_view what, const Error& error) {
  std::fprintf(stderr, "coffre-relay: %.*s: %.*s (%.*s)\n", static_cast<int>(what.size()),
               what.data(), static_cast<int>(error.context().size()), error.context().data(),
               static_cast<int>(ErrorCodeName(error.code()).size()),
               ErrorCodeName(error.code()).data());
}

// Defaults, then the file, then the flags; then the cross-field checks.
std::optional<RelayConfig> BuildConfig(const CommonFlags& common, const ServeFlags* serve) {
  RelayConfig config;
  std::string detail;
  if (!common.config_file.empty()) {
    auto loaded = LoadRelayConfigFile(common.config_file, config, &detail);
    if (!loaded) {
      std::fprintf(stderr, "coffre-relay: %s\n",
                   detail.empty() ? "cannot read the configuration" : detail.c_str());
      return std::nullopt;
    }
    config = std::move(*loaded);
  }
  if (!common.data.empty()) config.data_dir = common.data;
  if (serve != nullptr && !serve->listen.empty()) config.listen = serve->listen;
  if (!common.log_level.empty()) {
    const auto level = ParseLogLevel(common.log_level);
    if (!level) {
      std::fprintf(stderr, "coffre-relay: --log-level must be debug, info, warn or error\n");
      return std::nullopt;
    }
    config.log_level = *level;
  }
  if (auto valid = ValidateRelayConfig(config, &detail); !valid) {
    std::fprintf(stderr, "coffre-relay: %s\n", detail.c_str());
    return std::nullopt;
  }
  return config;
}

std::optional<crypto::SecretBytes> PrepareDataDirectory(const RelayConfig& config) {
  if (auto made = EnsureDataDirectory(config.data_dir); !made) {
    PrintError("data directory", made.error());
    return std::nullopt;
  }
  auto key = LoadOrCreateOperatorKey(config.data_dir);
  if (!key) {
    PrintError("operator key", key.error());
    return std::nullopt;
  }
  return std::move(*key);
}

int Serve(const RelayConfig& config) {
  SetLogLevel(config.log_level);
  Log(LogLevel::kInfo, "start", {{"version", kVersion}});
  std::optional<crypto::SecretBytes> operator_key = PrepareDataDirectory(config);
  if (!operator_key) return 1;

  auto identity =
      LoadOrCreateTlsIdentity(config.data_dir, config.tls_certificate, config.tls_private_key);
  if (!identity) {
    PrintError("TLS certificate", identity.error());
    return 1;
  }
  std::printf("relay certificate SHA-256 fingerprint: %s\n", identity->fingerprint_sha256.c_str());
  std::fflush(stdout);
  Log(LogLevel::kInfo, "tls_identity",
      {{"fingerprint_sha256", identity->fingerprint_sha256},
       {"self_signed_created", identity->created}});

  auto service = MakeRelayService(config, *operator_key, identity->certificate_sha256);
  if (!service) {
    if (service.error().code() == ErrorCode::kWrongPassphrase) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(kWrongOperatorKeyLine.size()),
                   kWrongOperatorKeyLine.data());
      Log(LogLevel::kError, "wrong_operator_key");
      return kExitWrongOperatorKey;
    }
    PrintError("relay store", service.error());
    Log(LogLevel::kError, "service_failed", {{"code", ErrorCodeName(service.error().code())}});
    return 1;
  }
  operator_key.reset();

  auto listen = ParseListenAddress(config.listen);
  if (!listen) {
    PrintError("listen address", listen.error());
    return 1;
  }
  MetricsRegistry metrics;
  TransportOptions options;
  options.listen = *listen;
  options.certificate_pem = identity->certificate_pem;
  options.private_key_pem = std::move(identity->private_key_pem);
  options.limits = config.limits;
  options.handle_signals = true;
  auto transport = Transport::New(std::move(options), **service, metrics);
  if (!transport) {
    PrintError("listen", transport.error());
    Log(LogLevel::kError, "listen_failed", {{"code", ErrorCodeName(transport.error().code())}});
    return 1;
  }
  const std::string address = (*transport)->local_address();
  std::printf("relay listening on %s\n", address.c_str());
  std::fflush(stdout);
  Log(LogLevel::kInfo, "listening", {{"address", address}});

  (*transport)->Run();
  transport->reset();
  service->reset();
  Log(LogLevel::kInfo, "stop");
  return 0;
}

int Admin(const RelayConfig& config, const std::optional<AdminEnrolOptions>& enrol) {
  SetLogLevel(config.log_level);
  std::optional<crypto::SecretBytes> operator_key = PrepareDataDirectory(config);
  if (!operator_key) return 1;
  return enrol ? RunAdminEnrol(config, *operator_key, *enrol)
               : RunAdminStatus(config, *operator_key);
}

int Main(int argc, char** argv) {
  CLI::App app{"coffre-relay: the Coffre relay (stores and forwards ciphertext only)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersion);

  CommonFlags serve_common;
  ServeFlags serve_flags;
  CLI::App* serve = app.add_subcommand("serve", "Serve HTTPS and WebSocket until SIGTERM");
  serve->add_option("--data", serve_common.data, "Data directory (store, blobs, keys)");
  serve->add_option("--listen", serve_flags.listen, "HOST:PORT to listen on (port 0: any)");
  serve->add_option("--config", serve_common.config_file, "TOML configuration file")
      ->check(CLI::ExistingFile);
  serve->add_option("--log-level", serve_common.log_level, "debug, info, warn or error");

  CLI::App* admin = app.add_subcommand("admin", "Administration on the data directory");
  admin->require_subcommand(1);
  CommonFlags enrol_common;
  AdminEnrolOptions enrol_options;
  CLI::App* enrol = admin->add_subcommand("enrol", "Issue an enrolment code");
  enrol->add_option("--data", enrol_common.data, "Data directory");
  enrol->add_option("--org", enrol_options.org_id, "Organisation to enrol into")->required();
  enrol->add_flag("--admin", enrol_options.admin, "The enrolled account is an org admin");
  enrol->add_option("--config", enrol_common.config_file, "TOML configuration file")
      ->check(CLI::ExistingFile);
  CommonFlags status_common;
  CLI::App* status = admin->add_subcommand("status", "Print counts from the store");
  status->add_option("--data", status_common.data, "Data directory");
  status->add_option("--config", status_common.config_file, "TOML configuration file")
      ->check(CLI::ExistingFile);

  CLI11_PARSE(app, argc, argv);

  if (serve->parsed()) {
    const auto config = BuildConfig(serve_common, &serve_flags);
    return config ? Serve(*config) : 2;
  }
  if (enrol->parsed()) {
    const auto config = BuildConfig(enrol_common, nullptr);
    return config ? Admin(*config, enrol_options) : 2;
  }
  const auto config = BuildConfig(status_common, nullptr);
  return config ? Admin(*config, std::nullopt) : 2;
}

}  // namespace
}  // namespace coffre::server

int main(int argc, char** argv) {
  // Writes to a peer that has gone must fail with EPIPE, not kill the relay.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return coffre::server::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "coffre-relay: fatal: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "coffre-relay: fatal error\n");
  }
  return 1;
}
