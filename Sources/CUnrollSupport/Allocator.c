#include "CUnrollSupport.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void unroll_keep_freed_memory(void) {
#if defined(__GLIBC__)
    // Blocks up to 32 MB come from the heap, and the heap is trimmed only past 256 MB free, so a
    // workspace freed by one convolution is reused by the next instead of being unmapped and
    // page-faulted back in (20–30 % of a denoising training step otherwise).
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest accepted value on 64-bit
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

void unroll_release_free_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
