// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): runs the fuzzing loop over `callback`
// with the command line's options. https://llvm.org/docs/LibFuzzer.html#using-libfuzzer-as-a-library
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
