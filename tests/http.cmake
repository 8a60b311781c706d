# tests/http.cmake - the HTTP layer's tests (label http): parser, PKI, and
# the parser's fuzz target (replayed with any compiler; fuzzed with clang).
if(NOT TARGET tacio_http_static)
  return()
endif()

tacio_test(test-http-parse LABELS http TIMEOUT 300)
tacio_test(test-http-pki   LABELS http TIMEOUT 300)
# The listeners' OpenSSL context (src/http/libctx.h).
tacio_test(test-http-libctx LABELS http TIMEOUT 300)
# New connections to the queue of their CPU (src/http/steer.h).
tacio_test(test-http-steer LABELS http TIMEOUT 300)
# The request queue with real clients (raw sockets, curl, openssl s_client).
tacio_test(test-http-queue LABELS http TIMEOUT 900)
# tacio-httpd as a program: first run, routes, SIGTERM.
tacio_test(test-http-httpd LABELS http TIMEOUT 300)
foreach(t test-http-parse test-http-pki test-http-libctx test-http-steer test-http-queue test-http-httpd)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE tacio_http_static)
  endif()
endforeach()

# The fuzz entry point without libFuzzer: every corpus file, then 300000
# seeded mutations (TACIO_SEED, default 1), under whatever sanitizers the
# tree is built with.
set(TACIO_HTTP_CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/http-parse)
add_executable(replay-http-parse fuzz/fuzz-http-parse.c fuzz/replay-http-parse.c)
target_include_directories(replay-http-parse PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
target_link_libraries(replay-http-parse PRIVATE tacio_http_static)
add_test(NAME fuzz-http-parse-replay COMMAND replay-http-parse ${TACIO_HTTP_CORPUS} 300000)
set_tests_properties(fuzz-http-parse-replay PROPERTIES LABELS http TIMEOUT 600)

# libFuzzer: clang only, and only if -fsanitize=fuzzer links (Debian:
# libclang-rt-14-dev). The target compiles parse.c itself, instrumented.
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  include(CheckCSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  check_c_source_compiles(
    "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }"
    TACIO_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  if(TACIO_HAVE_LIBFUZZER)
    set(fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    add_executable(fuzz-http-parse fuzz/fuzz-http-parse.c ${PROJECT_SOURCE_DIR}/src/http/parse.c)
    target_include_directories(fuzz-http-parse PRIVATE ${PROJECT_SOURCE_DIR}/include
      ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
    target_compile_options(fuzz-http-parse PRIVATE ${fuzz_flags})
    target_link_options(fuzz-http-parse PRIVATE ${fuzz_flags})
    # New inputs go to the build tree; the committed corpus is only read.
    set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-http-parse-corpus)
    add_test(NAME fuzz-http-parse
      COMMAND sh -c "mkdir -p '${work}' && exec \"$0\" -max_total_time=30 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -dict='${CMAKE_CURRENT_SOURCE_DIR}/fuzz/http-parse.dict' -artifact_prefix='${CMAKE_CURRENT_BINARY_DIR}/' '${work}' '${TACIO_HTTP_CORPUS}'"
              $<TARGET_FILE:fuzz-http-parse>)
    set_tests_properties(fuzz-http-parse PROPERTIES LABELS http TIMEOUT 120)
  else()
    message(STATUS "fuzz-http-parse: -fsanitize=fuzzer does not link; install libclang-rt-14-dev to build it (skipped; replay-http-parse still runs)")
  endif()
else()
  message(STATUS "fuzz-http-parse: libFuzzer needs clang (configure with CC=clang); replay-http-parse still runs")
endif()

# test-http-httpd runs the tool's binary.
if(TARGET test-http-httpd)
  target_compile_definitions(test-http-httpd PRIVATE TACIO_HTTPD_PATH="$<TARGET_FILE:tacio-httpd>")
  add_dependencies(test-http-httpd tacio-httpd)
endif()
