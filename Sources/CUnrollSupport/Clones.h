// CLONES: compile a function once per instruction set (AVX-512, AVX2, baseline x86-64) and pick the clone
// at load time. The files that use it turn contraction into fused multiply-adds off themselves
// (`#pragma clang fp contract(off)`), so every clone rounds alike and only the vector width differs.
#ifndef UNROLL_CLONES_H
#define UNROLL_CLONES_H

#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#endif
