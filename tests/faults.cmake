# tests/faults.cmake - fault injection (include/tacio/faults.h, docs/faults.md).
# Included by tests/CMakeLists.txt; CMAKE_CURRENT_SOURCE_DIR is tests/.

# One case per fault kind, the spec parser and the log.
tacio_test(test-faults LABELS verifier TIMEOUT 300)

# Bounded runs of the stress tests under every fault but lie (a lie makes
# the caller's view wrong by design): exactly-once must hold, and a fault
# the program cannot absorb (enomem) must surface as a status. Deferred to
# the end of tests/: the layers' files are included in name order, and
# test-pool-stress is defined by pool-stress.cmake, after this one.
function(tacio_faults_stress_runs)
  set(spec "TACIO_FAULTS=seed=7,enomem=0.01,eagain=0.05,short=0.1,delay=0.05:2ms,reorder=0.1")
  tacio_test(test-stress-faults LABELS verifier stress TIMEOUT 900
             EXECUTABLE test-stress ENVIRONMENT "${spec}" TACIO_STRESS_OPS=200000)
  tacio_test(test-pool-stress-faults LABELS verifier pool stress TIMEOUT 900
             EXECUTABLE test-pool-stress ENVIRONMENT "${spec}" TACIO_POOL_STRESS_OPS=200000)
endfunction()
cmake_language(DEFER CALL tacio_faults_stress_runs)
