/* Shared by the architecture builders (microaunet.c, malunet.c): parameters named and shaped
 * like the PyTorch state_dict with PyTorch-style seeded initialisation, and the blocks both
 * architectures use. */
#pragma once
#include "model.h"

#define PS_GN_GROUPS 4 /* every GroupNorm of both architectures */
#define PS_NORM_EPS 1e-5f

typedef struct ps_builder {
    ps_model *m;
    GRand *rng;
} ps_builder;

/* Starts building m: checks its channel list (6 multiples of PS_GN_GROUPS; `defaults` when it
 * was created without one), gives it a zeroed net of net_size bytes (returned) and `forward`,
 * and seeds b. NULL (err set) when the channels are wrong. ps_build_end frees b's generator. */
void *ps_build_begin(ps_builder *b, ps_model *m, const int defaults[6], size_t net_size,
                     ps_tensor *(*forward)(ps_model *, ps_graph *, ps_tensor *, ps_tensor **), uint64_t seed,
                     GError **err);
void ps_build_end(ps_builder *b);

/* Adds parameter prefix+leaf with the given PyTorch shape (unused dims 0), zero-filled. */
ps_tensor *ps_build_param(ps_builder *b, int trainable, const char *prefix, const char *leaf, int ndim,
                          int64_t s0, int64_t s1, int64_t s2, int64_t s3);
void ps_build_fill(ps_tensor *t, float v);
/* Normal(0, std) from the builder's seeded generator. */
void ps_build_normal(ps_builder *b, ps_tensor *t, double std);
/* prefix.weight (out, in_per_group, k, k), He-normal on fan-out (the reference codes' init). */
ps_tensor *ps_build_conv(ps_builder *b, const char *prefix, int out, int in_per_group, int k, int groups);
/* prefix.bias (n), zero. */
ps_tensor *ps_build_bias(ps_builder *b, const char *prefix, int n);
/* "a.b"; g_free() it. */
char *ps_build_join(const char *a, const char *b);

/* GroupNorm(PS_GN_GROUPS, c): weight 1, bias 0. */
typedef struct ps_gn {
    ps_tensor *w, *b;
} ps_gn;
ps_gn ps_build_groupnorm(ps_builder *b, const char *prefix, int c);
ps_tensor *ps_fwd_gn(ps_graph *g, ps_tensor *x, const ps_gn *n);

/* DWC(i->o, k): depthwise kxk with bias, padding k//2 -> GroupNorm(i) -> pointwise with bias
 * (prefix.dw, .gn, .pw). */
typedef struct ps_dwc {
    ps_tensor *dw_w, *dw_b;
    ps_gn gn;
    ps_tensor *pw_w, *pw_b;
    int k;
} ps_dwc;
ps_dwc ps_build_dwc(ps_builder *b, const char *prefix, int i, int o, int k);
ps_tensor *ps_fwd_dwc(ps_graph *g, ps_tensor *x, const ps_dwc *c);
/* dwc(x) + residual, the sum made as the last conv stores its outputs (inference). */
ps_tensor *ps_fwd_dwc_add(ps_graph *g, ps_tensor *x, const ps_dwc *c, ps_tensor *residual);

/* The U shape both architectures share (models.md): t_k = GELU(pool(GN(enc_k(t_k-1)))) for
 * k = 1..5 (t_0 = the input), b = GELU(enc_6(t_5)), t' = bridge(t_1..t_5), then
 * o = GELU(GN(dec_5(b))) + t_5' and o = GELU(up2(GN(dec_k(o)))) + t_k' for k = 4..1, and the
 * logits up2(final(o)). Blocks are indexed from 0 (enc[0] is enc1, dec[4] is dec5). */
typedef struct ps_unet {
    const void *net;
    ps_tensor *(*enc)(ps_graph *g, const void *net, int k, ps_tensor *x);
    /* The bridge, t1..t5 -> out[0..4]: as one function, or (bridge NULL) as the part all levels
     * share (returned) and then each level alone, which lets the levels run beside the decoder. */
    void (*bridge)(ps_graph *g, const void *net, ps_tensor **t, ps_tensor **out);
    ps_tensor *(*bridge_shared)(ps_graph *g, const void *net, ps_tensor **t);
    ps_tensor *(*bridge_level)(ps_graph *g, const void *net, ps_tensor *shared, ps_tensor **t, int k);
    ps_tensor *(*dec)(ps_graph *g, const void *net, int k, ps_tensor *x);
    const char *bridge_name;  /* its stage name */
    const char *overlap_name; /* the stage of the bridge run beside dec5..dec3 (split bridges) */
    const ps_gn *gn, *dgn;    /* 5 each: after the encoders and after the decoders */
    ps_tensor *final_w, *final_b;
} ps_unet;
/* Marks the stages enc1..enc6, the bridge, dec5..dec1 and head (with a split bridge on two
 * threads in inference: enc1..enc6, overlap_name, dec2, dec1, head); features as in
 * ps_model_forward. */
ps_tensor *ps_unet_forward(ps_graph *g, const ps_unet *u, ps_tensor *x, ps_tensor **features);
