#include "coffre/client/relay_address.h"

#include <charconv>

namespace coffre::client {
namespace {

constexpr std::string_view kScheme = "https://";

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string RelayAddress::Url() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string url(kScheme);
  if (ipv6) url += '[';
  url += host;
  if (ipv6) url += ']';
  url += ':';
  url += std::to_string(port);
  return url;
}

Result<RelayAddress> ParseRelayUrl(std::string_view url) {
  if (!url.starts_with(kScheme)) {
    return Fail(ErrorCode::kInvalidArgument, "relay URL must start with https://");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument,
                "relay URL must be https://HOST[:PORT] without path, query or user");
  }
  RelayAddress address;
  std::string_view port_text;
  if (rest.starts_with('[')) {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) {
      return Fail(ErrorCode::kInvalidArgument, "relay URL has an unterminated IPv6 address");
    }
    const std::string_view host = rest.substr(1, close - 1);
    for (const char c : host) {
      if (HexValue(c) < 0 && c != ':' && c != '.') {
        return Fail(ErrorCode::kInvalidArgument, "relay URL has an invalid IPv6 address");
      }
    }
    address.host = std::string(host);
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return Fail(ErrorCode::kInvalidArgument, "relay URL has text after the IPv6 address");
      }
      port_text = rest.substr(1);
    }
  } else {
    const std::size_t colon = rest.find(':');
    const std::string_view host = rest.substr(0, colon);
    if (host.empty() || host.size() > 253) {
      return Fail(ErrorCode::kInvalidArgument, "relay URL has no valid host");
    }
    for (const char c : host) {
      if (!IsHostChar(c)) {
        return Fail(ErrorCode::kInvalidArgument, "relay URL host has an invalid character");
      }
    }
    address.host = std::string(host);
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (!port_text.empty() || rest.ends_with(':')) {
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return Fail(ErrorCode::kInvalidArgument, "relay URL port must be a number from 1 to 65535");
    }
    address.port = static_cast<std::uint16_t>(port);
  }
  return address;
}

Result<CertificateFingerprint> ParseFingerprint(std::string_view text) {
  CertificateFingerprint fingerprint{};
  // Either 64 digits, or 32 pairs with a ':' after each pair but the last (95 characters).
  const bool pairs = text.size() > 2 && text[2] == ':';
  const std::size_t stride = pairs ? 3 : 2;
  const std::size_t expected = pairs ? 3 * fingerprint.size() - 1 : 2 * fingerprint.size();
  if (text.size() != expected) {
    return Fail(ErrorCode::kInvalidArgument, "fingerprint must be 32 bytes (64 hex digits)");
  }
  for (std::size_t i = 0; i < fingerprint.size(); ++i) {
    const std::size_t at = i * stride;
    const int high = HexValue(text[at]);
    const int low = HexValue(text[at + 1]);
    if (high < 0 || low < 0) {
      return Fail(ErrorCode::kInvalidArgument, "fingerprint must be hexadecimal digits");
    }
    if (pairs && i + 1 < fingerprint.size() && text[at + 2] != ':') {
      return Fail(ErrorCode::kInvalidArgument, "fingerprint pairs must be separated by ':'");
    }
    fingerprint[i] = static_cast<std::uint8_t>(high << 4 | low);
  }
  return fingerprint;
}

std::string FormatFingerprint(const CertificateFingerprint& fingerprint) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(2 * fingerprint.size());
  for (const std::uint8_t byte : fingerprint) {
    text += kDigits[byte >> 4];
    text += kDigits[byte & 0x0f];
  }
  return text;
}

}  // namespace coffre::client
