/* Reverse pass over a graph recorded in training mode. */
#pragma once
#include "../lib/graph.h"

/* `out->grad` must hold dL/d(out). Gives every other recorded output a zeroed gradient from
 * the graph's arena, then runs the nodes in reverse, accumulating into parameter grads (which
 * the caller allocates and zeroes). Tensors whose grad is NULL (the input) get none. */
void ps_backward(ps_graph *g, ps_tensor *out);
