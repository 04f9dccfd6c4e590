// A directory under /tmp for one test, removed with everything in it at scope exit.
#ifndef COFFRE_TESTS_SERVER_TEMP_DIR_H_
#define COFFRE_TESTS_SERVER_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace coffre::server::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coffre-relay-test-XXXXXX");
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace coffre::server::testing

#endif  // COFFRE_TESTS_SERVER_TEMP_DIR_H_
