// The edge of a module where what the standard library may throw (allocation, lengths,
// threads) becomes an error: the code below it returns Results, and no exception crosses
// into callers that do not expect one.
#ifndef COFFRE_BASE_WITHOUT_EXCEPTIONS_H_
#define COFFRE_BASE_WITHOUT_EXCEPTIONS_H_

#include <new>
#include <stdexcept>

#include "coffre/base/result.h"

namespace coffre {

// Runs `body` (which returns a Status or Result) and turns an exception into an error:
// out of memory (std::bad_alloc, std::length_error) into kResourceExhausted with
// `out_of_memory`, anything else into kInternal with `unexpected`. Both contexts are static
// sentences, as every error context is.
template <typename Body>
auto WithoutExceptions(const char* out_of_memory, const char* unexpected, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fail(ErrorCode::kResourceExhausted, out_of_memory);
  } catch (const std::length_error&) {
    return Fail(ErrorCode::kResourceExhausted, out_of_memory);
  } catch (...) {
    return Fail(ErrorCode::kInternal, unexpected);
  }
}

}  // namespace coffre

#endif  // COFFRE_BASE_WITHOUT_EXCEPTIONS_H_
