#include "CUnrollSupport.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FTZ_DAZ 0x8040u  /* MXCSR bit 15 (flush-to-zero) and bit 6 (denormals-are-zero) */
bool unroll_set_flush_denormals(bool on) {
    unsigned csr = _mm_getcsr();
    bool was = (csr & FTZ_DAZ) == FTZ_DAZ;
    _mm_setcsr(on ? (csr | FTZ_DAZ) : (csr & ~FTZ_DAZ));
    return was;
}
bool unroll_flush_denormals_enabled(void) { return (_mm_getcsr() & FTZ_DAZ) == FTZ_DAZ; }
#elif defined(__aarch64__)
#include <stdint.h>
#define FPCR_FZ (1ull << 24)
static uint64_t get_fpcr(void) { uint64_t v; __asm__ volatile("mrs %0, fpcr" : "=r"(v)); return v; }
static void set_fpcr(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
bool unroll_set_flush_denormals(bool on) {
    uint64_t v = get_fpcr();
    bool was = (v & FPCR_FZ) != 0;
    set_fpcr(on ? (v | FPCR_FZ) : (v & ~FPCR_FZ));
    return was;
}
bool unroll_flush_denormals_enabled(void) { return (get_fpcr() & FPCR_FZ) != 0; }
#else
bool unroll_set_flush_denormals(bool on) { (void)on; return false; }
bool unroll_flush_denormals_enabled(void) { return false; }
#endif
