#ifndef UNROLL_SUPPORT_H
#define UNROLL_SUPPORT_H
#include <stdbool.h>

/// Sets flush-to-zero and denormals-are-zero on the calling thread; returns the previous state.
/// Denormals make the unrolled backward pass many times slower on x86.
bool unroll_set_flush_denormals(bool on);
/// Whether the calling thread flushes denormals.
bool unroll_flush_denormals_enabled(void);
/// Makes glibc's malloc keep freed large blocks for reuse (no effect on other C libraries).
void unroll_keep_freed_memory(void);
/// Makes standard output line-buffered even when it is a pipe or a file.
void unroll_line_buffer_stdout(void);

#endif
