#include "support/vectors.h"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>

namespace coffre::testing {

std::vector<VectorBlock> ReadVectorFile(const std::string& relative_path) {
  const std::string path = std::string(COFFRE_VECTORS_DIR) + "/" + relative_path;
  std::ifstream in(path);
  std::vector<VectorBlock> blocks;
  if (!in) {
    ADD_FAILURE() << "cannot open vector file " << path;
    return blocks;
  }
  VectorBlock current;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] == '#') continue;
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!current.empty()) blocks.push_back(std::move(current));
      current.clear();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) {
      ADD_FAILURE() << "malformed line in " << path << ": " << line;
      continue;
    }
    std::string value = line.substr(colon + 1);
    const auto start = value.find_first_not_of(" \t");
    value = start == std::string::npos ? "" : value.substr(start);
    std::string& slot = current[line.substr(0, colon)];
    slot += value;  // a repeated key continues a long value
  }
  if (!current.empty()) blocks.push_back(std::move(current));
  return blocks;
}

std::vector<std::uint8_t> FromHex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  int high = -1;
  for (char c : hex) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else {
      ADD_FAILURE() << "bad hex digit '" << c << "'";
      return {};
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) ADD_FAILURE() << "odd number of hex digits";
  return out;
}

std::string ToHex(const std::vector<std::uint8_t>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

}  // namespace coffre::testing
