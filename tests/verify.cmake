# The verifier: each check provoked (test-verify), and the suite run with the
# verifier on in abort mode, where any report fails the run.
tacio_test(test-verify LABELS verifier TIMEOUT 300)
foreach(t test-contract-matrix test-port test-bad-input test-cancel-race test-thread-bound test-pool)
  tacio_test(${t}-verified EXECUTABLE ${t} LABELS verifier TIMEOUT 900 ENVIRONMENT TACIO_VERIFY=1)
endforeach()
tacio_test(test-stress-verified EXECUTABLE test-stress LABELS verifier stress TIMEOUT 900
           ENVIRONMENT TACIO_VERIFY=1 TACIO_STRESS_OPS=200000)
tacio_test(test-pool-stress-verified EXECUTABLE test-pool-stress LABELS verifier stress TIMEOUT 900
           ENVIRONMENT TACIO_VERIFY=1 TACIO_POOL_STRESS_OPS=200000)

# examples/seed-repro under the seed case's conditions.
if(TARGET seed-repro)
  tacio_test(test-seed-repro LABELS verifier TIMEOUT 300)
  if(TARGET test-seed-repro)
    target_compile_definitions(test-seed-repro PRIVATE SEED_REPRO_BIN="$<TARGET_FILE:seed-repro>")
    add_dependencies(test-seed-repro seed-repro)
  endif()
endif()
