#include "safetensors.h"
#include "output_path.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* Same cap as the reference safetensors library. */
#define MAX_HEADER_BYTES 100000000u
/* A valid header nests three levels deep; json-glib recurses per level, so bound it. */
#define MAX_JSON_DEPTH 32
#define META_KEY "__metadata__"

G_DEFINE_QUARK(ps-st-error-quark, ps_st_error)

enum { ST_ERROR_FORMAT, ST_ERROR_IO };

static void fail(GError **err, int code, const char *path, const char *tensor, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

/* Every message starts with the file and, when known, the tensor. */
static void fail(GError **err, int code, const char *path, const char *tensor, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (tensor)
        g_set_error(err, PS_ST_ERROR, code, "%s: tensor '%s': %s", path, tensor, what);
    else
        g_set_error(err, PS_ST_ERROR, code, "%s: %s", path, what);
    g_free(what);
}

/* ---- reading ---- */

/* json-glib accepts comments, single quotes and hex numbers, and recurses once per nesting
 * level (a header of '[' characters overflows the stack). Allowing only strict-JSON characters
 * outside strings and bounded nesting keeps its view identical to ours and its recursion short. */
static gboolean check_json_text(const char *s, size_t n, const char *path, GError **err)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                if ((unsigned char)s[i] < 0x20) {
                    fail(err, ST_ERROR_FORMAT, path, NULL,
                         "invalid JSON header: control character in a string at byte %zu", i);
                    return FALSE;
                }
                if (s[i] == '\\')
                    i++;
            }
            if (i >= n) {
                fail(err, ST_ERROR_FORMAT, path, NULL, "invalid JSON header: unterminated string");
                return FALSE;
            }
        } else if (ch == '{' || ch == '[') {
            if (++depth > MAX_JSON_DEPTH) {
                fail(err, ST_ERROR_FORMAT, path, NULL,
                     "invalid JSON header: nested more than %d levels deep", MAX_JSON_DEPTH);
                return FALSE;
            }
        } else if (ch == '}' || ch == ']') {
            if (depth > 0)
                depth--;
        } else if (ch == '\0' || !strchr(" \t\r\n,:0123456789+-.eEtrufalsn", ch)) {
            fail(err, ST_ERROR_FORMAT, path, NULL,
                 "invalid JSON header: unexpected character 0x%02x at byte %zu", (unsigned char)ch, i);
            return FALSE;
        }
    }
    return TRUE;
}

/* json-glib keeps only the last of duplicate members; its "object-member" signal still fires
 * for each, after the member is stored, so more signals than members means a duplicate. */
typedef struct dup_check {
    GHashTable *counts; /* JsonObject* -> number of members parsed */
    char *first_dup;    /* name of the first duplicate, or NULL */
} dup_check;

static void on_object_member(JsonParser *parser G_GNUC_UNUSED, JsonObject *obj, const char *name, gpointer data)
{
    dup_check *dc = data;
    guint n = GPOINTER_TO_UINT(g_hash_table_lookup(dc->counts, obj)) + 1;
    g_hash_table_insert(dc->counts, obj, GUINT_TO_POINTER(n));
    if (n > json_object_get_size(obj) && !dc->first_dup)
        dc->first_dup = g_strdup(name);
}

/* Parses the header; returns the parser holding a root object, or NULL with *err set. */
static JsonParser *parse_header(const char *text, size_t n, const char *path, GError **err)
{
    if (!g_utf8_validate(text, (gssize)n, NULL)) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "invalid JSON header: not valid UTF-8 (or contains NUL)");
        return NULL;
    }
    if (!check_json_text(text, n, path, err))
        return NULL;
    JsonParser *parser = json_parser_new();
    dup_check dc = {g_hash_table_new(NULL, NULL), NULL};
    g_signal_connect(parser, "object-member", G_CALLBACK(on_object_member), &dc);
    GError *jerr = NULL;
    gboolean ok = json_parser_load_from_data(parser, text, (gssize)n, &jerr);
    g_signal_handlers_disconnect_by_data(parser, &dc);
    g_hash_table_destroy(dc.counts);
    JsonNode *root = ok ? json_parser_get_root(parser) : NULL;
    if (!ok) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "invalid JSON header: %s", jerr->message);
    } else if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "header is not a JSON object");
        ok = FALSE;
    } else if (dc.first_dup) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "duplicate key '%s' in the JSON header", dc.first_dup);
        ok = FALSE;
    }
    g_clear_error(&jerr);
    g_free(dc.first_dup);
    if (!ok)
        g_clear_object(&parser);
    return parser;
}

/* The node as a JSON integer, or FALSE (doubles, strings, ... are not integers). */
static gboolean node_int(JsonNode *node, int64_t *out)
{
    if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64)
        return FALSE;
    *out = json_node_get_int(node);
    return TRUE;
}

static gboolean parse_shape(JsonNode *node, ps_st_tensor *t, const char *path, GError **err)
{
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        fail(err, ST_ERROR_FORMAT, path, t->name, "shape is not an array");
        return FALSE;
    }
    JsonArray *arr = json_node_get_array(node);
    guint nd = json_array_get_length(arr);
    if (nd > PS_ST_MAX_DIMS) {
        fail(err, ST_ERROR_FORMAT, path, t->name, "shape has %u dims, at most %d supported", nd,
             PS_ST_MAX_DIMS);
        return FALSE;
    }
    uint64_t numel = 1;
    for (guint i = 0; i < nd; i++) {
        int64_t d;
        if (!node_int(json_array_get_element(arr, i), &d) || d < 0) {
            fail(err, ST_ERROR_FORMAT, path, t->name, "shape dim %u is not a non-negative integer", i);
            return FALSE;
        }
        t->shape[i] = d;
        /* numel * sizeof(float) must also fit in 64 bits (and in size_t). */
        if (!g_uint64_checked_mul(&numel, numel, (uint64_t)d) || numel > SIZE_MAX / sizeof(float)) {
            fail(err, ST_ERROR_FORMAT, path, t->name, "shape element count overflows");
            return FALSE;
        }
    }
    t->ndim = (int)nd;
    t->numel = (size_t)numel;
    return TRUE;
}

static gboolean parse_offsets(JsonNode *node, const char *name, uint64_t data_len, uint64_t *begin,
                              uint64_t *end, const char *path, GError **err)
{
    int64_t b, e;
    if (!JSON_NODE_HOLDS_ARRAY(node) || json_array_get_length(json_node_get_array(node)) != 2 ||
        !node_int(json_array_get_element(json_node_get_array(node), 0), &b) ||
        !node_int(json_array_get_element(json_node_get_array(node), 1), &e) || b < 0 || e < 0) {
        fail(err, ST_ERROR_FORMAT, path, name, "data_offsets is not [begin, end] with non-negative integers");
        return FALSE;
    }
    if (b > e) {
        fail(err, ST_ERROR_FORMAT, path, name, "data_offsets begin %" G_GINT64_FORMAT
             " is after end %" G_GINT64_FORMAT, b, e);
        return FALSE;
    }
    if ((uint64_t)e > data_len) {
        fail(err, ST_ERROR_FORMAT, path, name, "data_offsets end %" G_GINT64_FORMAT
             " is past the data block (%" G_GUINT64_FORMAT " bytes)", e, data_len);
        return FALSE;
    }
    *begin = (uint64_t)b;
    *end = (uint64_t)e;
    return TRUE;
}

/* One header entry: validated and its data copied out (little-endian F32 -> host floats). */
static gboolean parse_tensor(const char *name, JsonNode *node, const uint8_t *data, uint64_t data_len,
                             ps_st_tensor *t, uint64_t *begin, uint64_t *end, const char *path,
                             GError **err)
{
    t->name = g_strdup(name);
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        fail(err, ST_ERROR_FORMAT, path, name, "entry is not a JSON object");
        return FALSE;
    }
    JsonObject *obj = json_node_get_object(node);
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        if (!json_object_has_member(obj, keys[i])) {
            fail(err, ST_ERROR_FORMAT, path, name, "missing %s", keys[i]);
            return FALSE;
        }
    }
    JsonNode *dtype = json_object_get_member(obj, "dtype");
    const char *dt = JSON_NODE_HOLDS_VALUE(dtype) ? json_node_get_string(dtype) : NULL;
    if (g_strcmp0(dt, "F32") != 0) {
        fail(err, ST_ERROR_FORMAT, path, name, "dtype %s is not supported (only F32)", dt ? dt : "(not a string)");
        return FALSE;
    }
    if (!parse_shape(json_object_get_member(obj, "shape"), t, path, err) ||
        !parse_offsets(json_object_get_member(obj, "data_offsets"), name, data_len, begin, end, path, err))
        return FALSE;
    if (*end - *begin != (uint64_t)t->numel * sizeof(float)) {
        fail(err, ST_ERROR_FORMAT, path, name, "data size %" G_GUINT64_FORMAT
             " bytes does not match shape (%zu values = %zu bytes)", *end - *begin, t->numel,
             t->numel * sizeof(float));
        return FALSE;
    }
    t->data = g_new(float, MAX(t->numel, 1));
    for (size_t i = 0; i < t->numel; i++) {
        uint32_t bits;
        memcpy(&bits, data + *begin + 4 * i, 4);
        bits = GUINT32_FROM_LE(bits);
        memcpy(&t->data[i], &bits, 4);
        if (!isfinite(t->data[i])) {
            fail(err, ST_ERROR_FORMAT, path, name, "value %zu is not finite (%g)", i, t->data[i]);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean parse_metadata(JsonNode *node, GHashTable *meta, const char *path, GError **err)
{
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        fail(err, ST_ERROR_FORMAT, path, NULL, META_KEY " is not a JSON object");
        return FALSE;
    }
    JsonObjectIter it;
    const char *key;
    JsonNode *val;
    json_object_iter_init(&it, json_node_get_object(node));
    while (json_object_iter_next(&it, &key, &val)) {
        if (!JSON_NODE_HOLDS_VALUE(val) || json_node_get_value_type(val) != G_TYPE_STRING) {
            fail(err, ST_ERROR_FORMAT, path, NULL, META_KEY " value of '%s' is not a string", key);
            return FALSE;
        }
        g_hash_table_insert(meta, g_strdup(key), g_strdup(json_node_get_string(val)));
    }
    return TRUE;
}

typedef struct span {
    uint64_t begin, end;
    int index;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->index - y->index;
}

/* Sorts tensors into data order (header order among equal offsets, so a file reads back in the
 * order it was written) and rejects overlapping byte ranges; empty ranges overlap nothing. */
static gboolean order_and_check_overlap(ps_st_file *f, span *spans, const char *path, GError **err)
{
    qsort(spans, (size_t)f->n_tensors, sizeof *spans, cmp_span);
    ps_st_tensor *sorted = g_new(ps_st_tensor, MAX(f->n_tensors, 1));
    const span *prev = NULL;
    for (int i = 0; i < f->n_tensors; i++) {
        sorted[i] = f->tensors[spans[i].index];
        if (spans[i].begin == spans[i].end)
            continue;
        if (prev && spans[i].begin < prev->end) {
            fail(err, ST_ERROR_FORMAT, path, sorted[i].name, "data_offsets overlap those of '%s'",
                 f->tensors[prev->index].name);
            g_free(sorted);
            return FALSE;
        }
        if (!prev || spans[i].end > prev->end)
            prev = &spans[i];
    }
    g_free(f->tensors);
    f->tensors = sorted;
    return TRUE;
}

static ps_st_file *parse_file(const uint8_t *buf, size_t len, const char *path, GError **err)
{
    if (len < 8) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "file too short (%zu bytes) for the 8-byte header length", len);
        return NULL;
    }
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    hlen = GUINT64_FROM_LE(hlen);
    if (hlen > MAX_HEADER_BYTES) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "header length %" G_GUINT64_FORMAT
             " is too large (limit %u bytes)", hlen, MAX_HEADER_BYTES);
        return NULL;
    }
    if (hlen > len - 8) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "header length %" G_GUINT64_FORMAT
             " is past the end of the file (%zu bytes): truncated?", hlen, len);
        return NULL;
    }
    JsonParser *parser = parse_header((const char *)buf + 8, (size_t)hlen, path, err);
    if (!parser)
        return NULL;

    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    JsonObject *root = json_node_get_object(json_parser_get_root(parser));
    ps_st_file *f = g_new0(ps_st_file, 1);
    f->metadata = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    f->tensors = g_new0(ps_st_tensor, MAX(json_object_get_size(root), 1));
    span *spans = g_new(span, MAX(json_object_get_size(root), 1));
    gboolean ok = TRUE;
    JsonObjectIter it;
    const char *name;
    JsonNode *node;
    json_object_iter_init_ordered(&it, root);
    while (ok && json_object_iter_next_ordered(&it, &name, &node)) {
        if (strcmp(name, META_KEY) == 0) {
            ok = parse_metadata(node, f->metadata, path, err);
            continue;
        }
        int i = f->n_tensors++;
        spans[i].index = i;
        ok = parse_tensor(name, node, data, data_len, &f->tensors[i], &spans[i].begin, &spans[i].end,
                          path, err);
    }
    if (ok)
        ok = order_and_check_overlap(f, spans, path, err);
    g_free(spans);
    g_object_unref(parser);
    if (!ok) {
        ps_st_free(f);
        return NULL;
    }
    return f;
}

/* Mapped, not read: a wrong file given as weights (a video, say) is refused by its header
 * length at once, without reading gigabytes first. A device or FIFO is refused before. */
ps_st_file *ps_st_read(const char *path, GError **err)
{
    GStatBuf st;
    if (g_stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        fail(err, ST_ERROR_IO, path, NULL, "not a regular file (a folder, device or FIFO)");
        return NULL;
    }
    GError *ioerr = NULL;
    GMappedFile *map = g_mapped_file_new(path, FALSE, &ioerr);
    if (!map) {
        /* GLib's message already names the file. */
        g_set_error(err, PS_ST_ERROR, ST_ERROR_IO, "%s", ioerr->message);
        g_error_free(ioerr);
        return NULL;
    }
    ps_st_file *f = parse_file((const uint8_t *)g_mapped_file_get_contents(map), g_mapped_file_get_length(map), path, err);
    g_mapped_file_unref(map);
    return f;
}

void ps_st_free(ps_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_tensors; i++) {
        g_free(f->tensors[i].name);
        g_free(f->tensors[i].data);
    }
    g_free(f->tensors);
    g_hash_table_destroy(f->metadata);
    g_free(f);
}

const ps_st_tensor *ps_st_find(const ps_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *ps_st_meta(const ps_st_file *f, const char *key)
{
    return g_hash_table_lookup(f->metadata, key);
}

/* ---- writing ---- */

static gboolean check_tensor(const char *path, const ps_st_tensor *t, int i, GHashTable *names,
                             GError **err)
{
    if (!t->name || strcmp(t->name, META_KEY) == 0 || !g_utf8_validate(t->name, -1, NULL)) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "tensor %d has no usable name", i);
        return FALSE;
    }
    if (!g_hash_table_add(names, t->name)) {
        fail(err, ST_ERROR_FORMAT, path, t->name, "duplicate name");
        return FALSE;
    }
    uint64_t numel = 1;
    gboolean shape_ok = t->ndim >= 0 && t->ndim <= PS_ST_MAX_DIMS;
    for (int d = 0; shape_ok && d < t->ndim; d++)
        shape_ok = t->shape[d] >= 0 && g_uint64_checked_mul(&numel, numel, (uint64_t)t->shape[d]);
    if (!shape_ok || numel != t->numel) {
        fail(err, ST_ERROR_FORMAT, path, t->name, "shape (%d dims) does not match numel %zu", t->ndim,
             t->numel);
        return FALSE;
    }
    if (t->numel > 0 && !t->data) {
        fail(err, ST_ERROR_FORMAT, path, t->name, "no data");
        return FALSE;
    }
    for (size_t k = 0; k < t->numel; k++) {
        if (!isfinite(t->data[k])) {
            fail(err, ST_ERROR_FORMAT, path, t->name, "value %zu is not finite (%g)", k, t->data[k]);
            return FALSE;
        }
    }
    return TRUE;
}

/* Refuses what the reader would reject, so a written file always loads back. */
static gboolean check_input(const char *path, const ps_st_tensor *tensors, int n, GHashTable *metadata,
                            GError **err)
{
    if (n < 0 || (n > 0 && !tensors)) {
        fail(err, ST_ERROR_FORMAT, path, NULL, "invalid tensor list");
        return FALSE;
    }
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
    gboolean ok = TRUE;
    for (int i = 0; ok && i < n; i++)
        ok = check_tensor(path, &tensors[i], i, names, err);
    g_hash_table_destroy(names);
    GHashTableIter it;
    gpointer key, value;
    if (metadata)
        g_hash_table_iter_init(&it, metadata);
    while (ok && metadata && g_hash_table_iter_next(&it, &key, &value)) {
        ok = g_utf8_validate(key, -1, NULL) && value && g_utf8_validate(value, -1, NULL);
        if (!ok)
            fail(err, ST_ERROR_FORMAT, path, NULL, "metadata entry '%s' is not a UTF-8 string", (char *)key);
    }
    return ok;
}

/* Header JSON padded with spaces to a multiple of 8 so the data block stays aligned. */
static char *build_header(const ps_st_tensor *tensors, int n, GHashTable *metadata, size_t *len)
{
    JsonBuilder *b = json_builder_new();
    json_builder_begin_object(b);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const ps_st_tensor *t = &tensors[i];
        json_builder_set_member_name(b, t->name);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "dtype");
        json_builder_add_string_value(b, "F32");
        json_builder_set_member_name(b, "shape");
        json_builder_begin_array(b);
        for (int d = 0; d < t->ndim; d++)
            json_builder_add_int_value(b, t->shape[d]);
        json_builder_end_array(b);
        json_builder_set_member_name(b, "data_offsets");
        json_builder_begin_array(b);
        json_builder_add_int_value(b, (gint64)offset);
        offset += (uint64_t)t->numel * sizeof(float);
        json_builder_add_int_value(b, (gint64)offset);
        json_builder_end_array(b);
        json_builder_end_object(b);
    }
    if (metadata && g_hash_table_size(metadata) > 0) {
        /* Sorted keys: the same metadata always gives the same bytes. */
        GList *keys = g_list_sort(g_hash_table_get_keys(metadata), (GCompareFunc)strcmp);
        json_builder_set_member_name(b, META_KEY);
        json_builder_begin_object(b);
        for (GList *k = keys; k; k = k->next) {
            json_builder_set_member_name(b, k->data);
            json_builder_add_string_value(b, g_hash_table_lookup(metadata, k->data));
        }
        json_builder_end_object(b);
        g_list_free(keys);
    }
    json_builder_end_object(b);
    JsonGenerator *gen = json_generator_new();
    JsonNode *root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    gsize jlen;
    char *json = json_generator_to_data(gen, &jlen);
    json_node_unref(root);
    g_object_unref(gen);
    g_object_unref(b);
    size_t padded = (jlen + 7) & ~(size_t)7;
    json = g_realloc(json, padded);
    memset(json + jlen, ' ', padded - jlen);
    *len = padded;
    return json;
}

static gboolean write_all(int fd, const void *buf, size_t len, const char *tmp, GError **err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fail(err, ST_ERROR_IO, tmp, NULL, "write failed: %s", g_strerror(errno));
            return FALSE;
        }
        p += w;
        len -= (size_t)w;
    }
    return TRUE;
}

static gboolean write_contents(int fd, const char *tmp, const ps_st_tensor *tensors, int n,
                               GHashTable *metadata, GError **err)
{
    size_t hlen;
    char *header = build_header(tensors, n, metadata, &hlen);
    uint64_t hlen_le = GUINT64_TO_LE((uint64_t)hlen);
    gboolean ok = write_all(fd, &hlen_le, 8, tmp, err) && write_all(fd, header, hlen, tmp, err);
    g_free(header);
    /* Values go out through a little-endian staging buffer, whatever the host order. */
    enum { CHUNK = 4096 };
    uint32_t *le = g_new(uint32_t, CHUNK);
    for (int i = 0; ok && i < n; i++) {
        for (size_t k = 0; ok && k < tensors[i].numel; k += CHUNK) {
            size_t m = MIN((size_t)CHUNK, tensors[i].numel - k);
            memcpy(le, tensors[i].data + k, m * 4);
            for (size_t j = 0; j < m; j++)
                le[j] = GUINT32_TO_LE(le[j]);
            ok = write_all(fd, le, m * 4, tmp, err);
        }
    }
    g_free(le);
    return ok;
}

gboolean ps_st_write(const char *path, const ps_st_tensor *tensors, int n_tensors,
                     GHashTable *metadata, GError **err)
{
    if (!check_input(path, tensors, n_tensors, metadata, err))
        return FALSE;
    char *target = ps_output_target(path, err);
    if (!target)
        return FALSE;
    /* Same folder as the target, so the final rename cannot cross file systems. */
    char *tmp = g_strdup_printf("%s.tmp-XXXXXX", target);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) {
        fail(err, ST_ERROR_IO, path, NULL, "cannot create a temporary file: %s", g_strerror(errno));
        g_free(tmp);
        g_free(target);
        return FALSE;
    }
    gboolean ok = write_contents(fd, tmp, tensors, n_tensors, metadata, err);
    if (ok && fsync(fd) != 0) {
        fail(err, ST_ERROR_IO, tmp, NULL, "fsync failed: %s", g_strerror(errno));
        ok = FALSE;
    }
    if (close(fd) != 0 && ok) {
        fail(err, ST_ERROR_IO, tmp, NULL, "close failed: %s", g_strerror(errno));
        ok = FALSE;
    }
    if (ok && g_rename(tmp, target) != 0) {
        fail(err, ST_ERROR_IO, path, NULL, "cannot rename %s over %s: %s", tmp, target, g_strerror(errno));
        ok = FALSE;
    }
    if (!ok)
        g_unlink(tmp);
    g_free(tmp);
    g_free(target);
    return ok;
}
