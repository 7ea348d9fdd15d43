#include "CKernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

// CPUID says what the core implements; XGETBV says whether the OS saves the AVX-512 state
// (opmask, upper ZMM halves, ZMM16–31) on context switches. Both must hold.
int ck_has_avx512(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & (1u << 27))) return 0;  // OSXSAVE
    unsigned int xcr0_low, xcr0_high;
    __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if ((xcr0_low & 0xE6u) != 0xE6u) return 0;  // SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int needed = (1u << 16) | (1u << 17) | (1u << 31);  // AVX512F, DQ, VL
    return (ebx & needed) == needed;
}
#else
int ck_has_avx512(void) { return 0; }
#endif
