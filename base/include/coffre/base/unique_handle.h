// One owner for every C handle: UniqueHandle<T, Free> is a unique_ptr whose deleter calls
// the C library's own free function, so each handle is owned on the line that creates it.
//
//   using SqliteStatement = UniqueHandle<sqlite3_stmt, sqlite3_finalize>;
#ifndef COFFRE_BASE_UNIQUE_HANDLE_H_
#define COFFRE_BASE_UNIQUE_HANDLE_H_

#include <memory>

namespace coffre {

template <auto FreeFunction>
struct CallFree {
  template <typename T>
  void operator()(T* handle) const {
    if (handle != nullptr) FreeFunction(handle);
  }
};

template <typename T, auto FreeFunction>
using UniqueHandle = std::unique_ptr<T, CallFree<FreeFunction>>;

}  // namespace coffre

#endif  // COFFRE_BASE_UNIQUE_HANDLE_H_
