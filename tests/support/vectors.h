// Reads known-answer vector files in the BoringSSL style: blocks of `KEY: value` lines
// separated by blank lines; `#` starts a comment. Values are hex unless the caller reads
// them as text. Test-only code: aborts the test (ADD_FAILURE) on a malformed file.
#ifndef COFFRE_TESTS_SUPPORT_VECTORS_H_
#define COFFRE_TESTS_SUPPORT_VECTORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coffre::testing {

using VectorBlock = std::map<std::string, std::string>;

// Parses COFFRE_VECTORS_DIR/<relative_path>. Fails the current test if the file is missing.
std::vector<VectorBlock> ReadVectorFile(const std::string& relative_path);

// Decodes a hex string (whitespace ignored). Fails the current test on a bad digit.
std::vector<std::uint8_t> FromHex(const std::string& hex);
std::string ToHex(const std::vector<std::uint8_t>& bytes);

}  // namespace coffre::testing

#endif  // COFFRE_TESTS_SUPPORT_VECTORS_H_
