// Declarations only (include/libfuzzer.h); the driver comes with -sanitize=fuzzer.
