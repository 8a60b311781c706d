# tests/diag.cmake - diagnostics layer tests (label diag): fault records from
# real signals, first-chance dumps read by gdb, tacio-err and tacio-faults.
# Included by tests/CMakeLists.txt; CMAKE_CURRENT_SOURCE_DIR is tests/.

# A tacio program that faults in known functions (tests/diag/crasher.c).
add_executable(tacio-diag-crasher diag/crasher.c)
target_link_libraries(tacio-diag-crasher PRIVATE tacio_static Threads::Threads)
# -O1 and frame-keeping: the fault stays on its marked line and each
# function keeps its own frame, whatever CMAKE_BUILD_TYPE says.
target_compile_options(tacio-diag-crasher PRIVATE -O1 -g -fno-omit-frame-pointer
  -fno-optimize-sibling-calls -fno-inline)
# Under TACIO_SANITIZE=address, UBSan would stop the NULL store before it
# faults; the crasher exists to fault for real.
if(TACIO_SANITIZE STREQUAL "address")
  target_compile_options(tacio-diag-crasher PRIVATE -fno-sanitize=undefined)
endif()

tacio_test(test-diag-err     LABELS diag TIMEOUT 120)
tacio_test(test-diag-fault   LABELS diag TIMEOUT 600)
tacio_test(test-diag-capture LABELS diag TIMEOUT 600)

if(TARGET test-diag-err)
  target_compile_definitions(test-diag-err PRIVATE TACIO_ERR_PATH="$<TARGET_FILE:tacio-err>")
  add_dependencies(test-diag-err tacio-err)
endif()
if(TARGET test-diag-fault)
  target_compile_definitions(test-diag-fault PRIVATE
    TACIO_CRASHER="$<TARGET_FILE:tacio-diag-crasher>"
    TACIO_CRASHER_SRC="${CMAKE_CURRENT_SOURCE_DIR}/diag/crasher.c"
    TACIO_FAULTS_PATH="$<TARGET_FILE:tacio-faults>"
    TACIO_CAPTURE_TOOL="$<TARGET_FILE:tacio-capture>")
  add_dependencies(test-diag-fault tacio-diag-crasher tacio-faults tacio-capture)
endif()
if(TARGET test-diag-capture)
  # gdb unwinds the dumps through these frames.
  target_compile_options(test-diag-capture PRIVATE -fno-omit-frame-pointer -fno-optimize-sibling-calls)
endif()
