// Where a relay is and how the client recognises it: its https URL and the SHA-256
// fingerprint of its TLS certificate, which the profile pins.
#ifndef COFFRE_CLIENT_RELAY_ADDRESS_H_
#define COFFRE_CLIENT_RELAY_ADDRESS_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "coffre/base/result.h"

namespace coffre::client {

// SHA-256 of the relay's TLS certificate (DER), the value `coffre-relay serve` prints.
using CertificateFingerprint = std::array<std::uint8_t, 32>;

struct RelayAddress {
  std::string host;  // a DNS name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 443;

  // "https://host:port" (brackets around an IPv6 address), the form the profile stores.
  std::string Url() const;
};

// Parses "https://HOST[:PORT][/]". Only https is accepted; no user info, path, query or
// fragment. Fails with kInvalidArgument and a sentence naming what is wrong.
Result<RelayAddress> ParseRelayUrl(std::string_view url);

// Parses a fingerprint as 64 hexadecimal digits, optionally in pairs separated by ':'
// (the form `openssl x509 -fingerprint -sha256` prints), in either case.
Result<CertificateFingerprint> ParseFingerprint(std::string_view text);

// 64 lowercase hexadecimal digits.
std::string FormatFingerprint(const CertificateFingerprint& fingerprint);

}  // namespace coffre::client

#endif  // COFFRE_CLIENT_RELAY_ADDRESS_H_
