# The thread pool's seeded random stress test: exactly-once for callbacks
# under cancel/close/timer-cancel/thread-exit races (issue 4).
tacio_test(test-pool-stress LABELS pool stress TIMEOUT 900)
