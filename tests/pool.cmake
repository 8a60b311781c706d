# The thread pool (include/tacio/pool.h).
tacio_test(test-pool LABELS pool TIMEOUT 600)
