/* make-test-model OUT.safetensors [SIZE] [SEED]: an untrained, seeded microaunet weights file
 * with input size SIZE (default 128), for running the element and the pipelines before (or
 * without) trained weights, e.g. in tests/gst/test_pipelines.sh. Its output is noise. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s OUT.safetensors [SIZE=128] [SEED=1]\n"
                        "Writes an untrained (random, seeded) microaunet model of input size SIZE.\n",
                argv[0]);
        return 2;
    }
    int size = argc > 2 ? atoi(argv[2]) : 128;
    if (size < PS_MIN_INPUT || size > PS_MAX_INPUT || size % 32) {
        fprintf(stderr, "%s: SIZE must be a multiple of 32 in [%d, %d]\n", argv[0], PS_MIN_INPUT, PS_MAX_INPUT);
        return 2;
    }
    GError *err = NULL;
    ps_model *m = ps_model_new("microaunet", NULL, 0, argc > 3 ? strtoull(argv[3], NULL, 10) : 1, &err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", argv[0], err->message);
        return 1;
    }
    m->info.input_size = size;
    if (!ps_model_save(m, argv[1], NULL, &err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err->message);
        ps_model_free(m);
        return 1;
    }
    ps_model_free(m);
    return 0;
}
