/* Model-resolution coordinates -> frame coordinates. The mask spans the whole frame (the
 * frame was stretched to the model's square input), so each axis scales on its own. */
#pragma once
#include <math.h>
#include <glib.h>

/* Centre of model pixel v (of `size`) -> the frame pixel (of `frame`) it falls in. */
static inline int ps_model_to_frame(int v, int size, int frame)
{
    long p = lround((v + 0.5) * frame / size - 0.5);
    return (int)CLAMP(p, 0, frame - 1);
}

/* First frame pixel covered by model pixel v (v = size gives `frame`). */
static inline int ps_model_edge(int v, int size, int frame)
{
    return (int)(((gint64)v * frame) / size);
}
