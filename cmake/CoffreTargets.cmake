# Compiler settings for our own targets only: third-party headers are included as SYSTEM
# (imported targets), so -Werror never trips on code we do not own.
set(COFFRE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror)
if(COFFRE_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 reports false maybe-uninitialized warnings inside libstdc++ (std::regex's
  # std::function states) when sanitizer instrumentation changes its inlining; GCC's manual
  # warns that -fsanitize builds can produce such spurious warnings. The Release build
  # keeps the warning as an error. GNU only: Clang has no such option and, with -Werror,
  # refuses the unknown one (the libFuzzer build of tests/fuzz is a Clang build).
  list(APPEND COFFRE_WARNINGS -Wno-maybe-uninitialized)
endif()

function(coffre_target_defaults target)
  target_compile_options(${target} PRIVATE ${COFFRE_WARNINGS})
  target_compile_features(${target} PUBLIC cxx_std_20)
endfunction()

# coffre_module(NAME DEPS...): a library from NAME/src/*.cc with public headers under
# NAME/include, aliased as coffre::NAME.
function(coffre_module name)
  cmake_parse_arguments(ARG "" "" "PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cc)
  add_library(coffre_${name} STATIC ${sources})
  add_library(coffre::${name} ALIAS coffre_${name})
  target_include_directories(coffre_${name}
    PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(coffre_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  coffre_target_defaults(coffre_${name})
endfunction()
