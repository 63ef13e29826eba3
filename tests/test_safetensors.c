/* safetensors reader/writer: round trip, one test per rejected defect, fuzzed inputs, atomic writes. */
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "../core/lib/safetensors.h"
#include "test_util.h"

static char *tmpdir;

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

/* Plain stdio, no fsync: the fuzz tests write hundreds of files. */
static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    g_assert_nonnull(fp);
    g_assert_cmpuint(fwrite(buf, 1, len, fp), ==, len);
    g_assert_cmpint(fclose(fp), ==, 0);
}

/* A file with the given header-length field, header text and data block. */
static char *raw_file(const char *name, uint64_t hlen, const char *header, const void *data, size_t dlen)
{
    size_t htext = header ? strlen(header) : 0;
    GByteArray *b = g_byte_array_new();
    uint64_t le = GUINT64_TO_LE(hlen);
    g_byte_array_append(b, (const guint8 *)&le, 8);
    g_byte_array_append(b, (const guint8 *)header, (guint)htext);
    g_byte_array_append(b, data, (guint)dlen);
    char *path = tmp_path(name);
    write_bytes(path, b->data, b->len);
    g_byte_array_unref(b);
    return path;
}

static char *header_file(const char *name, const char *header, const float *values, size_t n)
{
    return raw_file(name, strlen(header), header, values, n * sizeof(float));
}

/* ps_st_read must fail with a message naming the file and containing `word` (and `tensor`). */
static void expect_reject(const char *path, const char *word, const char *tensor)
{
    g_assert_null(ps_st_read(path, NULL)); /* also without an error to report into */
    GError *err = NULL;
    ps_st_file *f = ps_st_read(path, &err);
    g_assert_null(f);
    g_assert_nonnull(err);
    g_assert_true(err->domain == PS_ST_ERROR);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, path));
    g_assert_nonnull(strstr(err->message, word));
    if (tensor) {
        char *quoted = g_strdup_printf("'%s'", tensor);
        g_assert_nonnull(strstr(err->message, quoted));
        g_free(quoted);
    }
    g_error_free(err);
}

static ps_st_tensor make_tensor(const char *name, int ndim, const int64_t *shape, GRand *r)
{
    ps_st_tensor t = {.name = (char *)name, .ndim = ndim, .numel = 1};
    for (int d = 0; d < ndim; d++) {
        t.shape[d] = shape[d];
        t.numel *= (size_t)shape[d];
    }
    t.data = g_new(float, MAX(t.numel, 1));
    for (size_t i = 0; i < t.numel; i++)
        t.data[i] = (float)g_rand_double_range(r, -3, 3);
    return t;
}

/* Four tensors (4-D, 1-D, scalar, empty) and, optionally, two metadata entries. */
typedef struct sample {
    ps_st_tensor t[5];
    int n;
    GHashTable *meta;
} sample;

static void sample_init(sample *s, gboolean with_meta)
{
    GRand *r = g_rand_new_with_seed(7);
    static const int64_t w[] = {2, 3, 1, 2}, b[] = {3}, e[] = {0, 5};
    s->n = 0;
    s->t[s->n++] = make_tensor("conv.weight", 4, w, r);
    s->t[s->n++] = make_tensor("empty", 2, e, r);
    s->t[s->n++] = make_tensor("conv.bias", 1, b, r);
    s->t[s->n++] = make_tensor("scale", 0, NULL, r);
    s->t[s->n++] = make_tensor("odd \"name\" \xc3\xa9", 1, b, r);
    s->meta = g_hash_table_new(g_str_hash, g_str_equal);
    if (with_meta) {
        g_hash_table_insert(s->meta, "arch", "microaunet");
        g_hash_table_insert(s->meta, "epoch", "12");
    }
    g_rand_free(r);
}

static void sample_clear(sample *s)
{
    for (size_t i = 0; i < G_N_ELEMENTS(s->t); i++)
        g_free(s->t[i].data);
    g_hash_table_destroy(s->meta);
}

static void assert_same(const ps_st_file *f, const sample *s)
{
    g_assert_cmpint(f->n_tensors, ==, s->n);
    for (int i = 0; i < s->n; i++) {
        const ps_st_tensor *a = &f->tensors[i], *b = &s->t[i];
        g_assert_cmpstr(a->name, ==, b->name); /* read back in the order written */
        g_assert_true(ps_st_find(f, b->name) == a);
        g_assert_cmpint(a->ndim, ==, b->ndim);
        for (int d = 0; d < b->ndim; d++)
            g_assert_cmpint(a->shape[d], ==, b->shape[d]);
        g_assert_cmpuint(a->numel, ==, b->numel);
        g_assert_cmpmem(a->data, a->numel * sizeof(float), b->data, b->numel * sizeof(float));
    }
    g_assert_cmpuint(g_hash_table_size(f->metadata), ==, g_hash_table_size(s->meta));
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, s->meta);
    while (g_hash_table_iter_next(&it, &k, &v))
        g_assert_cmpstr(ps_st_meta(f, k), ==, v);
    g_assert_null(ps_st_find(f, "missing"));
    g_assert_null(ps_st_meta(f, "missing"));
}

static void check_round_trip(gboolean with_meta)
{
    sample s;
    sample_init(&s, with_meta);
    char *path = tmp_path(with_meta ? "rt-meta.safetensors" : "rt.safetensors");
    GError *err = NULL;
    g_assert_true(ps_st_write(path, s.t, s.n, s.meta, &err));
    g_assert_no_error(err);

    ps_st_file *f = ps_st_read(path, &err);
    g_assert_no_error(err);
    assert_same(f, &s);
    ps_st_free(f);

    /* Layout: 8-byte aligned header, space padded, __metadata__ only when there is some. */
    char *buf;
    gsize len;
    g_assert_true(g_file_get_contents(path, &buf, &len, NULL));
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    hlen = GUINT64_FROM_LE(hlen);
    g_assert_cmpuint(hlen % 8, ==, 0);
    char *header = g_strndup(buf + 8, hlen);
    g_assert_nonnull(strchr(header, '}'));
    g_assert_cmpint(strspn(strrchr(header, '}') + 1, " "), ==, strlen(strrchr(header, '}') + 1));
    g_assert_true((strstr(header, "__metadata__") != NULL) == with_meta);
    size_t data_bytes = 0;
    for (int i = 0; i < s.n; i++)
        data_bytes += s.t[i].numel * sizeof(float);
    g_assert_cmpuint(len, ==, 8 + hlen + data_bytes);
    g_free(header);
    g_free(buf);
    g_free(path);
    sample_clear(&s);
}

static void test_round_trip(void)
{
    check_round_trip(TRUE);
}

static void test_round_trip_no_metadata(void)
{
    check_round_trip(FALSE);
}

/* ---- rejected headers: one case each ---- */

typedef struct bad_header {
    const char *id;
    const char *header;
    size_t n_values; /* data block: this many 1.0f */
    const char *word;
    const char *tensor;
} bad_header;

#define ENTRY(shape, offsets) "{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static const bad_header bad_headers[] = {
    {"invalid-json", "{\"w\": ", 0, "JSON", NULL},
    {"json-comment", "/* c */ {}", 0, "JSON", NULL},
    {"json-single-quotes", "{'w': 1}", 0, "JSON", NULL},
    {"not-utf8", "{\"\xff\": 1}", 0, "UTF-8", NULL},
    {"deep-nesting", NULL, 0, "nested", NULL}, /* header built in the test */
    {"not-object", "[1, 2]", 0, "object", NULL},
    {"empty-header", "", 0, "object", NULL},
    {"entry-not-object", "{\"w\": 5}", 0, "object", "w"},
    {"missing-dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 2, "dtype", "w"},
    {"missing-shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 2, "shape", "w"},
    {"missing-offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 2, "data_offsets", "w"},
    {"dtype-f16", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 1, "F16", "w"},
    {"dtype-number", "{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 2, "dtype", "w"},
    {"shape-negative", "{\"w\":" ENTRY("[-2]", "[0,8]") "}", 2, "shape", "w"},
    {"shape-fraction", "{\"w\":" ENTRY("[1.5]", "[0,8]") "}", 2, "shape", "w"},
    {"shape-string", "{\"w\":" ENTRY("[\"2\"]", "[0,8]") "}", 2, "shape", "w"},
    {"shape-not-array", "{\"w\":" ENTRY("2", "[0,8]") "}", 2, "shape", "w"},
    {"shape-too-many-dims", "{\"w\":" ENTRY("[1,1,1,1,1,1,1,1,2]", "[0,8]") "}", 2, "dims", "w"},
    {"numel-overflow", "{\"w\":" ENTRY("[4294967296,4294967296,4]", "[0,8]") "}", 2, "overflow", "w"},
    {"numel-bytes-overflow", "{\"w\":" ENTRY("[4611686018427387904]", "[0,8]") "}", 2, "overflow", "w"},
    {"offsets-not-array", "{\"w\":" ENTRY("[2]", "8") "}", 2, "data_offsets", "w"},
    {"offsets-three", "{\"w\":" ENTRY("[2]", "[0,8,8]") "}", 2, "data_offsets", "w"},
    {"offsets-fraction", "{\"w\":" ENTRY("[2]", "[0,8.0]") "}", 2, "data_offsets", "w"},
    {"offsets-negative", "{\"w\":" ENTRY("[0]", "[-8,-8]") "}", 2, "data_offsets", "w"},
    {"offsets-huge", "{\"w\":" ENTRY("[0]", "[0,18446744073709551615]") "}", 2, "data_offsets", "w"},
    {"offsets-reversed", "{\"w\":" ENTRY("[2]", "[8,0]") "}", 2, "after", "w"},
    {"offsets-past-end", "{\"w\":" ENTRY("[4]", "[0,16]") "}", 2, "past the data block", "w"},
    {"size-mismatch", "{\"w\":" ENTRY("[3]", "[0,8]") "}", 3, "does not match", "w"},
    {"overlap", "{\"a\":" ENTRY("[2]", "[0,8]") ",\"b\":" ENTRY("[2]", "[4,12]") "}", 3, "overlap", "b"},
    {"overlap-contained", "{\"a\":" ENTRY("[4]", "[0,16]") ",\"b\":" ENTRY("[1]", "[4,8]") "}", 4,
     "overlap", "b"},
    {"duplicate-name", "{\"a\":" ENTRY("[1]", "[0,4]") ",\"a\":" ENTRY("[1]", "[4,8]") "}", 2,
     "duplicate", "a"},
    {"duplicate-key-in-entry", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     1, "duplicate", "dtype"},
    {"metadata-not-object", "{\"__metadata__\":[1]}", 0, "__metadata__", NULL},
    {"metadata-not-string", "{\"__metadata__\":{\"epoch\":12}}", 0, "__metadata__", "epoch"},
};

static void test_bad_header(gconstpointer data)
{
    const bad_header *c = data;
    char *name = g_strdup_printf("%s.safetensors", c->id);
    char *header = c->header ? g_strdup(c->header) : g_strnfill(100000, '[');
    float *values = g_new(float, MAX(c->n_values, 1));
    for (size_t i = 0; i < c->n_values; i++)
        values[i] = 1.0f;
    char *path = header_file(name, header, values, c->n_values);
    expect_reject(path, c->word, c->tensor);
    g_free(path);
    g_free(values);
    g_free(header);
    g_free(name);
}

/* ---- rejected framing and data ---- */

static void test_short_file(void)
{
    static const uint8_t bytes[7] = {8, 0, 0, 0, 0, 0, 0};
    char *path = tmp_path("short.safetensors");
    for (size_t len = 0; len < sizeof bytes; len++) {
        write_bytes(path, bytes, len);
        expect_reject(path, "short", NULL);
    }
    g_free(path);
}

static void test_header_past_end(void)
{
    char *path = raw_file("past.safetensors", 1000, "{}", NULL, 0);
    expect_reject(path, "past the end", NULL);
    g_free(path);
}

static void test_header_too_large(void)
{
    char *path = raw_file("large.safetensors", 200000000, "{}", NULL, 0);
    expect_reject(path, "too large", NULL);
    g_free(path);
    path = raw_file("max.safetensors", UINT64_MAX, "{}", NULL, 0);
    expect_reject(path, "too large", NULL);
    g_free(path);
}

static void test_non_finite(void)
{
    const char *header = "{\"w\":" ENTRY("[3]", "[0,12]") "}";
    float values[3] = {1, 2, 3};
    values[1] = NAN;
    char *path = header_file("nan.safetensors", header, values, 3);
    expect_reject(path, "finite", "w");
    g_free(path);
    values[1] = 2;
    values[2] = -INFINITY;
    path = header_file("inf.safetensors", header, values, 3);
    expect_reject(path, "finite", "w");
    g_free(path);
}

static void test_missing_file(void)
{
    char *path = tmp_path("does-not-exist.safetensors");
    expect_reject(path, "does-not-exist", NULL);
    g_free(path);
}

/* A folder, a FIFO (reading it would block) and a character device (reading /dev/zero never
 * ends) are refused by what they are, before any read. */
static void test_not_regular(void)
{
    char *dir = tmp_path("a-folder.safetensors"), *fifo = tmp_path("a-fifo.safetensors");
    g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
    g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
    expect_reject(dir, "not a regular file", NULL);
    expect_reject(fifo, "not a regular file", NULL);
    expect_reject("/dev/zero", "not a regular file", NULL);
    g_rmdir(dir), g_unlink(fifo);
    g_free(dir), g_free(fifo);
}

/* ---- fuzzing: never crash, failures always explained ---- */

/* A valid file's bytes (the sample with metadata). */
static char *valid_bytes(gsize *len)
{
    sample s;
    sample_init(&s, TRUE);
    char *path = tmp_path("fuzz-src.safetensors");
    GError *err = NULL;
    g_assert_true(ps_st_write(path, s.t, s.n, s.meta, &err));
    char *buf;
    g_assert_true(g_file_get_contents(path, &buf, len, NULL));
    g_free(path);
    sample_clear(&s);
    return buf;
}

static void test_fuzz_truncate(void)
{
    gsize len;
    char *buf = valid_bytes(&len);
    char *path = tmp_path("trunc.safetensors");
    for (gsize cut = 0; cut < len; cut++) {
        write_bytes(path, buf, cut);
        GError *err = NULL;
        ps_st_file *f = ps_st_read(path, &err);
        g_assert_null(f);
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err->message, path));
        g_error_free(err);
    }
    g_free(path);
    g_free(buf);
}

static void test_fuzz_flip(void)
{
    gsize len;
    char *buf = valid_bytes(&len);
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    hlen = GUINT64_FROM_LE(hlen);
    char *path = tmp_path("flip.safetensors");
    char *copy = g_malloc(len);
    GRand *r = g_rand_new_with_seed(20240611);
    int accepted = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(copy, buf, len);
        int flips = g_rand_int_range(r, 1, 4);
        for (int k = 0; k < flips; k++) /* the length field or the header */
            copy[g_rand_int_range(r, 0, (gint32)(8 + hlen))] = (char)g_rand_int_range(r, 0, 256);
        write_bytes(path, copy, len);
        GError *err = NULL;
        ps_st_file *f = ps_st_read(path, &err);
        if (f) {
            /* A flip in a name or padding can leave a valid file: it must be self-consistent. */
            accepted++;
            g_assert_no_error(err);
            for (int i = 0; i < f->n_tensors; i++)
                for (size_t j = 0; j < f->tensors[i].numel; j++)
                    g_assert_true(isfinite(f->tensors[i].data[j]));
            ps_st_free(f);
        } else {
            g_assert_nonnull(err);
            g_assert_nonnull(strstr(err->message, path));
            g_error_free(err);
        }
    }
    g_test_message("%d of 400 mutated files were still valid", accepted);
    g_rand_free(r);
    g_free(copy);
    g_free(path);
    g_free(buf);
}

/* ---- writer ---- */

static int count_entries(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    int n = 0;
    while (g_dir_read_name(d))
        n++;
    g_dir_close(d);
    return n;
}

static void test_write_missing_dir(void)
{
    sample s;
    sample_init(&s, FALSE);
    char *path = g_build_filename(tmpdir, "no-such-dir", "out.safetensors", NULL);
    GError *err = NULL;
    g_assert_false(ps_st_write(path, s.t, s.n, NULL, &err));
    g_assert_nonnull(err);
    g_assert_true(err->domain == PS_ST_ERROR);
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, path));
    g_error_free(err);
    g_free(path);
    sample_clear(&s);
}

/* The rename fails (the target is a folder): the temporary file must not stay behind. */
static void test_write_failure_removes_temp(void)
{
    sample s;
    sample_init(&s, FALSE);
    char *dir = tmp_path("rename-fails");
    char *path = g_build_filename(dir, "out.safetensors", NULL);
    g_assert_cmpint(g_mkdir_with_parents(path, 0755), ==, 0);
    GError *err = NULL;
    g_assert_false(ps_st_write(path, s.t, s.n, NULL, &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, path));
    g_error_free(err);
    g_assert_cmpint(count_entries(dir), ==, 1);
    g_assert_true(g_file_test(path, G_FILE_TEST_IS_DIR));
    g_free(path);
    g_free(dir);
    sample_clear(&s);
}

static void assert_reads_as(const char *path, const sample *s)
{
    GError *err = NULL;
    ps_st_file *f = ps_st_read(path, &err);
    g_assert_no_error(err);
    assert_same(f, s);
    ps_st_free(f);
}

static void test_write_replaces(void)
{
    char *dir = tmp_path("replace");
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    char *path = g_build_filename(dir, "model.safetensors", NULL);
    sample a, b;
    sample_init(&a, FALSE);
    sample_init(&b, TRUE);
    b.t[0].data[0] = 42;
    b.n = 3;
    GError *err = NULL;
    g_assert_true(ps_st_write(path, a.t, a.n, a.meta, &err));
    g_assert_true(ps_st_write(path, b.t, b.n, b.meta, &err));
    g_assert_no_error(err);
    assert_reads_as(path, &b);
    g_assert_cmpint(count_entries(dir), ==, 1);

    /* A refused write leaves the previous file as it was. */
    a.t[2].data[1] = NAN;
    g_assert_false(ps_st_write(path, a.t, a.n, NULL, &err));
    g_test_message("%s", err->message);
    g_assert_nonnull(strstr(err->message, "finite"));
    g_clear_error(&err);
    assert_reads_as(path, &b);
    g_assert_cmpint(count_entries(dir), ==, 1);

    sample_clear(&a);
    sample_clear(&b);
    g_free(path);
    g_free(dir);
}

static void test_write_rejects_invalid(void)
{
    sample s;
    sample_init(&s, FALSE);
    char *path = tmp_path("invalid.safetensors");
    GError *err = NULL;

    s.t[1].name = s.t[0].name;
    g_assert_false(ps_st_write(path, s.t, s.n, NULL, &err));
    g_assert_nonnull(strstr(err->message, "duplicate"));
    g_clear_error(&err);
    s.t[1].name = "empty";

    s.t[0].numel--;
    g_assert_false(ps_st_write(path, s.t, s.n, NULL, &err));
    g_assert_nonnull(strstr(err->message, "shape"));
    g_clear_error(&err);
    s.t[0].numel++;

    s.t[2].name = "__metadata__";
    g_assert_false(ps_st_write(path, s.t, s.n, NULL, &err));
    g_assert_nonnull(strstr(err->message, "name"));
    g_clear_error(&err);

    s.t[2].name = "conv.bias";

    GHashTable *meta = g_hash_table_new(g_str_hash, g_str_equal);
    g_hash_table_insert(meta, "note", NULL);
    g_assert_false(ps_st_write(path, s.t, s.n, meta, &err));
    g_assert_nonnull(strstr(err->message, "note"));
    g_clear_error(&err);
    g_hash_table_destroy(meta);

    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_free(path);
    sample_clear(&s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    GError *err = NULL;
    tmpdir = g_dir_make_tmp("polypseg-st-XXXXXX", &err);
    g_assert_no_error(err);

    g_test_add_func("/safetensors/round-trip", test_round_trip);
    g_test_add_func("/safetensors/round-trip-no-metadata", test_round_trip_no_metadata);
    for (size_t i = 0; i < G_N_ELEMENTS(bad_headers); i++) {
        char *name = g_strdup_printf("/safetensors/reject/%s", bad_headers[i].id);
        g_test_add_data_func(name, &bad_headers[i], test_bad_header);
        g_free(name);
    }
    g_test_add_func("/safetensors/reject/short-file", test_short_file);
    g_test_add_func("/safetensors/reject/header-past-end", test_header_past_end);
    g_test_add_func("/safetensors/reject/header-too-large", test_header_too_large);
    g_test_add_func("/safetensors/reject/non-finite", test_non_finite);
    g_test_add_func("/safetensors/reject/missing-file", test_missing_file);
    g_test_add_func("/safetensors/reject/not-regular", test_not_regular);
    g_test_add_func("/safetensors/fuzz/truncate", test_fuzz_truncate);
    g_test_add_func("/safetensors/fuzz/flip", test_fuzz_flip);
    g_test_add_func("/safetensors/write/missing-dir", test_write_missing_dir);
    g_test_add_func("/safetensors/write/failure-removes-temp", test_write_failure_removes_temp);
    g_test_add_func("/safetensors/write/replaces", test_write_replaces);
    g_test_add_func("/safetensors/write/rejects-invalid", test_write_rejects_invalid);
    int rc = g_test_run();

    tu_remove_tree(tmpdir);
    g_free(tmpdir);
    return rc;
}
