#include "CUnrollSupport.h"
#include <stdio.h>

void unroll_line_buffer_stdout(void) {
    // Here in C: Swift 6 sees glibc's `stdout` as shared mutable state.
    setvbuf(stdout, NULL, _IOLBF, 0);
}
