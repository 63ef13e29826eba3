/* Picks the kernel set for this CPU (see kernels.h). */
#include "kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const ps_kernels ps_kernels_scalar, ps_kernels_avx2, ps_kernels_avx512;

static int cpu_runs(ps_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    switch (isa) {
    case PS_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case PS_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    default: return 1;
    }
#else
    return isa == PS_ISA_SCALAR;
#endif
}

static const ps_kernels *set_of(ps_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    const ps_kernels *sets[PS_ISA_COUNT] = {&ps_kernels_scalar, &ps_kernels_avx2, &ps_kernels_avx512};
    return sets[isa];
#else
    return isa == PS_ISA_SCALAR ? &ps_kernels_scalar : NULL;
#endif
}

const ps_kernels *ps_kernels_for(ps_isa isa)
{
    return isa >= 0 && isa < PS_ISA_COUNT && cpu_runs(isa) ? set_of(isa) : NULL;
}

static const ps_kernels *pick(void)
{
    const char *want = getenv("POLYPSEG_ISA");
    ps_isa best = PS_ISA_SCALAR;
    for (int i = PS_ISA_COUNT - 1; i > 0; i--)
        if (cpu_runs(i)) {
            best = i;
            break;
        }
    if (want && *want) {
        for (int i = 0; i < PS_ISA_COUNT; i++)
            if (strcmp(want, set_of(i) ? set_of(i)->name : "") == 0) {
                if ((ps_isa)i <= best)
                    return set_of(i);
                fprintf(stderr, "polypseg: POLYPSEG_ISA=%s: this CPU cannot run it; using %s\n", want,
                        set_of(best)->name);
                return set_of(best);
            }
        fprintf(stderr, "polypseg: POLYPSEG_ISA=%s unknown (scalar, avx2, avx512); using %s\n", want,
                set_of(best)->name);
    }
    return set_of(best);
}

const ps_kernels *ps_kernels_best(void)
{
    static const ps_kernels *chosen; /* benign race: every thread computes the same pointer */
    if (!chosen)
        chosen = pick();
    return chosen;
}
