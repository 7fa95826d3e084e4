// DCTQA_CLONES: clone a vectorisable CPU function for x86-64-v4 (AVX-512), x86-64-v3
// (AVX2+FMA) and the baseline, chosen at load time (GCC function multi-versioning), so the
// distributed build needs no -march flag. Used by every op's CPU hot loops.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64)) && \
    defined(__linux__)
#define DCTQA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DCTQA_CLONES
#endif
