/* Adaptive average pooling from an integral image, compiled: the same values as preprocess.py's numpy.
 *
 * pool(sums, H, W, C, regions, oh, ow, mean, inv, swap, out)
 *   sums     int32 (H + 1, W + 1, C): the image's integral (cv2.integral: the sum of image[:y, :x] at [y, x])
 *   regions  int64 (n, 4): x0, y0, x1, y1, each a non-empty pixel range [x0, x1) x [y0, y1) inside the image
 *   mean,inv float32 (C): per output channel, out = (bin mean - mean[k]) * inv[k]
 *   swap     1: output channel k is input channel C - 1 - k (BGR in, RGB out)
 *   out      float32 (n, C, oh, ow), written
 *
 * Each output bin i of a range of n pixels averages [floor(i n / o), ceil((i + 1) n / o)): torch's
 * adaptive_avg_pool2d, which interpolate(mode="area") is. The bin's sum is exact (integers) and its mean is
 * the sum divided by the count in double, rounded once to float32 (numpy's `total / area` then astype);
 * the normalization is float32 arithmetic in numpy's order. The build turns floating-point contraction off
 * (setup.py), so no fused multiply-add changes a rounding.
 * Plain C99 and the buffer protocol: no numpy headers are needed to build it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

static int check(Py_buffer *b, Py_ssize_t want, const char *name) {
    if (b->len != want) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", name, b->len, want);
        return 0;
    }
    return 1;
}

/* bin edges of a range [lo, lo + len) cut into o bins: e0[i] = lo + floor(i len / o), e1[i] = lo + ceil(...) */
static void edges(int64_t lo, int64_t len, Py_ssize_t o, int64_t *e0, int64_t *e1) {
    for (Py_ssize_t i = 0; i < o; i++) {
        e0[i] = lo + (i * len) / o;
        e1[i] = lo + ((i + 1) * len + o - 1) / o;
    }
}

static PyObject *pool(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer sums_b, reg_b, mean_b, inv_b, out_b;
    Py_ssize_t h, w, c, oh, ow;
    int swap;
    if (!PyArg_ParseTuple(args, "y*nnny*nny*y*pw*", &sums_b, &h, &w, &c, &reg_b, &oh, &ow, &mean_b, &inv_b, &swap,
                          &out_b))
        return NULL;
    PyObject *result = NULL;
    int64_t *e = NULL;
    Py_ssize_t n = reg_b.len / (4 * (Py_ssize_t)sizeof(int64_t));
    if (h < 1 || w < 1 || c < 1 || oh < 1 || ow < 1 ||
        !check(&sums_b, (h + 1) * (w + 1) * c * (Py_ssize_t)sizeof(int32_t), "sums") ||
        !check(&reg_b, n * 4 * (Py_ssize_t)sizeof(int64_t), "regions") ||
        !check(&mean_b, c * (Py_ssize_t)sizeof(float), "mean") || !check(&inv_b, c * (Py_ssize_t)sizeof(float), "inv") ||
        !check(&out_b, n * c * oh * ow * (Py_ssize_t)sizeof(float), "out"))
        goto done;
    const int32_t *s = (const int32_t *)sums_b.buf;
    const int64_t *reg = (const int64_t *)reg_b.buf;
    const float *mean = (const float *)mean_b.buf, *inv = (const float *)inv_b.buf;
    float *out = (float *)out_b.buf;
    for (Py_ssize_t j = 0; j < n; j++) {
        const int64_t *r = reg + 4 * j;
        if (r[0] < 0 || r[1] < 0 || r[2] > w || r[3] > h || r[2] <= r[0] || r[3] <= r[1]) {
            PyErr_Format(PyExc_ValueError, "region %zd is empty or outside the %zdx%zd image", j, w, h);
            goto done;
        }
    }
    e = (int64_t *)malloc(sizeof(int64_t) * 2 * (size_t)(oh + ow) + sizeof(double) * (size_t)ow);
    if (e == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *r0 = e, *r1 = e + oh, *c0 = e + 2 * oh, *c1 = e + 2 * oh + ow;
    double *area = (double *)(e + 2 * (oh + ow));
    Py_ssize_t row = (w + 1) * c, plane = oh * ow;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t j = 0; j < n; j++) {
        const int64_t *r = reg + 4 * j;
        edges(r[1], r[3] - r[1], oh, r0, r1);
        edges(r[0], r[2] - r[0], ow, c0, c1);
        for (Py_ssize_t y = 0; y < oh; y++) {
            const int32_t *top = s + r0[y] * row, *bottom = s + r1[y] * row;
            int64_t most = 0; /* the row's largest bin */
            for (Py_ssize_t x = 0; x < ow; x++) {
                int64_t cells = (r1[y] - r0[y]) * (c1[x] - c0[x]);
                area[x] = (double)cells;
                most = cells > most ? cells : most;
            }
            /* A uint8 image's bin sums below 2^24 and areas below 2^24 are exact in float32, and then one float32
             * division rounds as the double division rounded to float32 does (a quotient p/q with q < 2^29 is
             * never within half a double ulp of a float32 rounding midpoint unless it is one, and then both are
             * exact). That is the usual case; larger bins (a tiny level of a huge frame) divide in double. */
            int small = most * 255 < (1 << 24);
            for (Py_ssize_t k = 0; k < c; k++) { /* one output row of one channel: contiguous stores */
                Py_ssize_t o = swap ? c - 1 - k : k;
                float *dst = out + (j * c + o) * plane + y * ow;
                float mk = mean[o], ik = inv[o];
                for (Py_ssize_t x = 0; x < ow; x++) {
                    Py_ssize_t a = c0[x] * c + k, b = c1[x] * c + k;
                    int64_t total = (int64_t)bottom[b] - top[b] - bottom[a] + top[a];
                    float m = small ? (float)total / (float)area[x] : (float)((double)total / area[x]);
                    dst[x] = (m - mk) * ik;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS;
    result = Py_None;
    Py_INCREF(result);
done:
    free(e);
    PyBuffer_Release(&sums_b);
    PyBuffer_Release(&reg_b);
    PyBuffer_Release(&mean_b);
    PyBuffer_Release(&inv_b);
    PyBuffer_Release(&out_b);
    return result;
}

static PyMethodDef methods[] = {
    {"pool", pool, METH_VARARGS, "Adaptive average pooling of regions from an integral image, normalized, NCHW."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pool", "Adaptive average pooling from an integral image, compiled.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pool(void) { return PyModule_Create(&module); }
