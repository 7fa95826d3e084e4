// DCTQA_CLONES: clone a plain, portable CPU loop for x86-64-v4 (AVX-512), x86-64-v3
// (AVX2+FMA) and the baseline (GCC function multi-versioning, resolved once by the dynamic
// loader when the extension loads), so the distributed build needs no -march flag. It only
// lets the compiler vectorise portable code wider; it never chooses between hand-written
// paths: those (intrinsics and per-width builds) are chosen through the one table of
// common/cpu_features.h, and the intrinsics level (dctqa.ops.tuning) does not affect clones.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64)) && \
    defined(__linux__)
#define DCTQA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DCTQA_CLONES
#endif
