/* One pass of OverFeat's greedy merge, compiled: the same steps as merge.py's numpy pass.
 *
 * merge_pass(acc, order, rx, ry, cls, t, gone, cells) -> number of merges
 * nms_sorted(boxes, t, over_min, keep) -> number kept (merge.nms's pass; see the function)
 *
 *   acc    float64 (n, 6), C order, written in place: x1, y1, x2, y2 sums, member count, confidence sum
 *   order  int64 (n): box indices sorted by (class, centre x)
 *   rx, ry float64 (n): how far another centre may lie for the pair to score <= t (merge._reach)
 *   cls    int64 (n): class of each box
 *   t      the merge threshold
 *   gone   uint8 (n), written: 1 for each box merged away (into the lower index of its pair)
 *   cells  a group's K x K score matrix is cached when K * K <= cells; larger groups rescore rows instead
 *
 * 1. Pairs that can score <= t: a sweep over `order`, each box against the boxes after it within its reach.
 * 2. Boxes linked by a pair <= t form groups (union-find).
 * 3. Inside each group the paper's loop: merge the best pair (lowest score; ties: lowest row, then lowest
 *    column, as numpy's row-major argmin over the score matrix) while its score is <= t. Each row keeps its
 *    minimum and where it lies; a merge rescores the merged row only. A row whose minimum the merge raised
 *    (it lay at the merged pair) keeps the old value as a lower bound and is rescanned only if that bound
 *    comes up as the smallest (the lazy update of Muellner's generic clustering algorithm, 2011). The group's score matrix is cached (up to `cells`); beyond that rows are rescored instead, so
 *    memory stays O(K) for a group of K boxes however large it grows.
 *
 * The caller repeats passes on the surviving boxes until one makes no merge (merge.py's docstring).
 * Plain C99 and the buffer protocol: no numpy headers are needed to build it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    double x1, y1, x2, y2, diag, area;
} Box;

#define STALE 2 /* alive[] value of a row whose cached minimum is only a lower bound */
#define TILE 64  /* the score matrix is filled in TILE x TILE blocks */

typedef struct {
    double cx, cy, rx, ry;
    int64_t cls;
} Sweep;

static inline double max2(double a, double b) { return a > b ? a : b; }
static inline double min2(double a, double b) { return a < b ? a : b; }

static void set_box(Box *b, const double *acc) {
    b->x1 = acc[0] / acc[4];
    b->y1 = acc[1] / acc[4];
    b->x2 = acc[2] / acc[4];
    b->y2 = acc[3] / acc[4];
    b->diag = hypot(b->x2 - b->x1, b->y2 - b->y1);
    b->area = max2(b->x2 - b->x1, 0.0) * max2(b->y2 - b->y1, 0.0);
}

/* match_score: (1 - IoU) + centre distance / mean diagonal, as merge.py's _match computes it (the centre
 * distance through sqrt, not hypot: the same value to the last bit or two, at a third of the cost). */
static inline double score(const Box *a, const Box *b) {
    double iw = max2(min2(a->x2, b->x2) - max2(a->x1, b->x1), 0.0);
    double ih = max2(min2(a->y2, b->y2) - max2(a->y1, b->y1), 0.0);
    double inter = iw * ih;
    double iou = inter / max2(a->area + b->area - inter, 1e-12);
    double dx = a->x1 + a->x2 - b->x1 - b->x2;
    double dy = a->y1 + a->y2 - b->y1 - b->y2;
    return (1.0 - iou) + sqrt(dx * dx + dy * dy) / max2(a->diag + b->diag, 2e-6);
}

static Py_ssize_t find(Py_ssize_t *parent, Py_ssize_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* The entry of the group's score matrix: the score, or infinity when it is above t or a box is gone. */
static inline double entry(const Box *box, const char *alive, Py_ssize_t r, Py_ssize_t c, double t) {
    if (r == c || !alive[r] || !alive[c]) return INFINITY;
    double s = r < c ? score(&box[r], &box[c]) : score(&box[c], &box[r]); /* symmetric by construction */
    return s <= t ? s : INFINITY;
}

/* Row r's minimum and its first column. From the cached matrix `s` (k x k) where there is one: a merge
 * rewrites only its own row (contiguous; writing its column too would touch k cache lines), and `stamp`
 * says which of rows r and c was rewritten last, so entry (r, c) is read from that one. */
static void scan_row(const Box *box, const char *alive, const double *s, const Py_ssize_t *stamp, Py_ssize_t k,
                     Py_ssize_t r, double t, double *rmin, Py_ssize_t *rarg) {
    double best = INFINITY;
    Py_ssize_t at = -1;
    for (Py_ssize_t c = 0; c < k; c++) {
        double e;
        if (!s)
            e = entry(box, alive, r, c, t);
        else if (c == r || !alive[c])
            e = INFINITY;
        else
            e = stamp[c] > stamp[r] ? s[c * k + r] : s[r * k + c];
        if (e < best) best = e, at = c;
    }
    rmin[r] = best;
    rarg[r] = at;
}

/* The paper's loop inside one group; `m` lists its boxes in ascending index order. Returns the merges made,
 * or -1 when memory ran out. */
static Py_ssize_t merge_group(double *acc, const Py_ssize_t *m, Py_ssize_t k, double t, Py_ssize_t cells,
                              uint8_t *gone, Box *box, char *alive, double *rmin, Py_ssize_t *rarg, double *row) {
    Py_ssize_t merges = 0;
    double *s = NULL;
    Py_ssize_t *stamp = NULL, clock = 0;
    if (k * k <= cells) {
        s = malloc(k * k * sizeof *s);
        stamp = calloc(k, sizeof *stamp);
        if (!s || !stamp) {
            free(s), free(stamp);
            return -1;
        }
    }
    for (Py_ssize_t r = 0; r < k; r++) set_box(&box[r], acc + 6 * m[r]), alive[r] = 1;
    if (s) /* in tiles, so that writing the transposed half stays within a few cache lines */
        for (Py_ssize_t rb = 0; rb < k; rb += TILE)
            for (Py_ssize_t cb = rb; cb < k; cb += TILE)
                for (Py_ssize_t r = rb; r < rb + TILE && r < k; r++)
                    for (Py_ssize_t c = cb > r ? cb : r; c < cb + TILE && c < k; c++)
                        s[r * k + c] = s[c * k + r] = entry(box, alive, r, c, t);
    for (Py_ssize_t r = 0; r < k; r++) scan_row(box, alive, s, stamp, k, r, t, rmin, rarg);
    /* alive[r]: 0 merged away, 1 rmin[r] is row r's minimum, STALE rmin[r] is only a lower bound of it */
    for (;;) {
        Py_ssize_t i = -1;
        double best = INFINITY;
        for (Py_ssize_t r = 0; r < k; r++)
            if (rmin[r] < best) best = rmin[r], i = r;
        if (i < 0) break; /* no pair <= t is left (entries above t are infinite) */
        if (alive[i] == STALE) {
            alive[i] = 1; /* the lowest bound belongs to a row not scanned since: scan it, choose again */
            scan_row(box, alive, s, stamp, k, i, t, rmin, rarg);
            continue;
        }
        Py_ssize_t j = rarg[i]; /* i < j: row j holds the same minimum at column i, a later row */
        double *ai = acc + 6 * m[i], *aj = acc + 6 * m[j];
        for (int q = 0; q < 6; q++) ai[q] += aj[q];
        set_box(&box[i], ai);
        alive[j] = 0, gone[m[j]] = 1, rmin[j] = INFINITY, rarg[j] = -1;
        merges++;
        rmin[i] = INFINITY, rarg[i] = -1;
        for (Py_ssize_t c = 0; c < k; c++) {
            row[c] = entry(box, alive, i, c, t);
            if (row[c] < rmin[i]) rmin[i] = row[c], rarg[i] = c;
            if (s) s[i * k + c] = row[c];
        }
        if (s) stamp[i] = ++clock;
        for (Py_ssize_t r = 0; r < k; r++) {
            if (!alive[r] || r == i) continue;
            double e = row[r]; /* entry (r, i): changed; entry (r, j): now infinite; the rest unchanged */
            if (alive[r] == STALE) {
                if (e < rmin[r]) rmin[r] = e, rarg[r] = i, alive[r] = 1; /* below every other entry */
            } else if (rarg[r] == j || (rarg[r] == i && e > rmin[r])) {
                alive[r] = STALE; /* its minimum went up: the old one stays a lower bound until it matters */
            } else if (e < rmin[r] || (e == rmin[r] && i < rarg[r])) {
                rmin[r] = e, rarg[r] = i;
            }
        }
    }
    free(s), free(stamp);
    return merges;
}

static int check(Py_buffer *b, Py_ssize_t n, Py_ssize_t item, const char *name) {
    if (b->len != n * item) {
        PyErr_Format(PyExc_ValueError, "%s has %zd bytes, expected %zd", name, b->len, n * item);
        return 0;
    }
    return 1;
}

static PyObject *merge_pass(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer acc_b, order_b, rx_b, ry_b, cls_b, gone_b;
    double t;
    Py_ssize_t cells;
    if (!PyArg_ParseTuple(args, "w*y*y*y*y*dw*n", &acc_b, &order_b, &rx_b, &ry_b, &cls_b, &t, &gone_b, &cells))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = order_b.len / (Py_ssize_t)sizeof(int64_t);
    double *acc = acc_b.buf;
    const int64_t *order = order_b.buf, *cls = cls_b.buf;
    const double *rx = rx_b.buf, *ry = ry_b.buf;
    uint8_t *gone = gone_b.buf;
    Py_ssize_t *parent = NULL, *start = NULL, *members = NULL, *rarg = NULL;
    double *rmin = NULL, *row = NULL;
    Box *box = NULL;
    Sweep *sweep = NULL;
    char *alive = NULL;
    if (!check(&acc_b, n, 6 * sizeof(double), "acc") || !check(&rx_b, n, sizeof(double), "rx") ||
        !check(&ry_b, n, sizeof(double), "ry") || !check(&cls_b, n, sizeof(int64_t), "cls") ||
        !check(&gone_b, n, 1, "gone"))
        goto done;
    Py_ssize_t merges = 0;
    Py_BEGIN_ALLOW_THREADS;
    parent = malloc((n + 1) * sizeof *parent);
    start = calloc(n + 2, sizeof *start);
    members = malloc((n + 1) * sizeof *members);
    rarg = malloc((n + 1) * sizeof *rarg);
    rmin = malloc((n + 1) * sizeof *rmin);
    row = malloc((n + 1) * sizeof *row);
    box = malloc((n + 1) * sizeof *box);
    sweep = malloc((n + 1) * sizeof *sweep);
    alive = malloc(n + 1);
    if (parent && start && members && rarg && rmin && row && box && sweep && alive) {
        for (Py_ssize_t i = 0; i < n; i++) parent[i] = i, set_box(&box[i], acc + 6 * i);
        /* 1-2: pairs within reach that score <= t, joined into groups; the sweep reads in sorted order */
        for (Py_ssize_t p = 0; p < n; p++) {
            Py_ssize_t a = order[p];
            double cx = (box[a].x1 + box[a].x2) / 2, cy = (box[a].y1 + box[a].y2) / 2;
            sweep[p] = (Sweep){cx, cy, rx[a], ry[a], cls[a]};
        }
        for (Py_ssize_t p = 0; p < n; p++) {
            const Sweep *u = &sweep[p];
            for (Py_ssize_t q = p + 1; q < n; q++) {
                const Sweep *v = &sweep[q];
                double dx = v->cx - u->cx;
                if (v->cls != u->cls || dx > u->rx) break;
                if (dx > v->rx || fabs(u->cy - v->cy) > min2(u->ry, v->ry)) continue;
                Py_ssize_t a = order[p], b = order[q];
                Py_ssize_t ra = find(parent, a), rb = find(parent, b);
                if (ra == rb) continue; /* already linked: the score cannot change the groups */
                if ((a < b ? score(&box[a], &box[b]) : score(&box[b], &box[a])) <= t)
                    parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
            }
        }
        /* each group's boxes in ascending index order: a counting sort by root */
        for (Py_ssize_t i = 0; i < n; i++) parent[i] = find(parent, i), start[parent[i] + 1]++;
        for (Py_ssize_t i = 0; i < n; i++) start[i + 1] += start[i];
        for (Py_ssize_t i = 0; i < n; i++) members[start[parent[i]]++] = i;
        Py_ssize_t lo = 0;
        for (Py_ssize_t i = 0; i < n; i++) { /* start[root] now ends the root's run */
            if (parent[i] != i) continue;
            Py_ssize_t k = start[i] - lo;
            Py_ssize_t done = 0;
            if (k > 1) done = merge_group(acc, members + lo, k, t, cells, gone, box, alive, rmin, rarg, row);
            if (done < 0) {
                merges = -1;
                break;
            }
            merges += done;
            lo = start[i];
        }
    } else {
        merges = -1;
    }
    Py_END_ALLOW_THREADS;
    if (merges < 0)
        PyErr_NoMemory();
    else
        result = PyLong_FromSsize_t(merges);
done:
    free(parent), free(start), free(members), free(rarg);
    free(rmin), free(row), free(box), free(sweep), free(alive);
    PyBuffer_Release(&acc_b), PyBuffer_Release(&order_b), PyBuffer_Release(&rx_b), PyBuffer_Release(&ry_b);
    PyBuffer_Release(&cls_b), PyBuffer_Release(&gone_b);
    return result;
}

/* nms_sorted(boxes, t, over_min, keep) -> number kept: merge._nms_sorted's greedy NMS in float32, its steps in
 * its order (so every rounding is numpy's): boxes (n, 4) float32 sorted best first; each kept box drops the
 * later alive boxes whose intersection over the union (over the smaller box with over_min) exceeds t; keep
 * int64 (n) gets the kept indices, best first. */
static Py_ssize_t nms_run(const float *bx, Py_ssize_t n, float t, int over_min, int64_t *keep, Py_ssize_t *idx,
                          float *area) {
    for (Py_ssize_t i = 0; i < n; i++) {
        float w = bx[4 * i + 2] - bx[4 * i], h = bx[4 * i + 3] - bx[4 * i + 1];
        area[i] = (w > 0 ? w : 0) * (h > 0 ? h : 0);
        idx[i] = i;
    }
    Py_ssize_t alive = n, kept = 0;
    while (alive > 0) {
        Py_ssize_t i = idx[0], m = 0;
        keep[kept++] = i;
        const float *a = bx + 4 * i;
        for (Py_ssize_t k = 1; k < alive; k++) {
            Py_ssize_t r = idx[k];
            const float *b = bx + 4 * r;
            float w = (a[2] < b[2] ? a[2] : b[2]) - (a[0] > b[0] ? a[0] : b[0]);
            float h = (a[3] < b[3] ? a[3] : b[3]) - (a[1] > b[1] ? a[1] : b[1]);
            w = w > 0 ? w : 0;
            h = h > 0 ? h : 0;
            float inter = w * h;
            float u = over_min ? (area[i] < area[r] ? area[i] : area[r]) : area[i] + area[r] - inter;
            u = u > 1e-12f ? u : 1e-12f;
            if (inter / u <= t)
                idx[m++] = r;
        }
        alive = m;
    }
    return kept;
}

static PyObject *nms_sorted(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer box_b, keep_b;
    double t;
    int over_min;
    if (!PyArg_ParseTuple(args, "y*dpw*", &box_b, &t, &over_min, &keep_b))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = box_b.len / (4 * (Py_ssize_t)sizeof(float));
    Py_ssize_t *idx = NULL;
    float *area = NULL;
    if (!check(&box_b, n, 4 * (Py_ssize_t)sizeof(float), "boxes") || !check(&keep_b, n, sizeof(int64_t), "keep"))
        goto done;
    idx = (Py_ssize_t *)malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    area = (float *)malloc(sizeof(float) * (size_t)(n + 1));
    if (idx == NULL || area == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t kept;
    Py_BEGIN_ALLOW_THREADS;
    kept = nms_run((const float *)box_b.buf, n, (float)t, over_min, (int64_t *)keep_b.buf, idx, area);
    Py_END_ALLOW_THREADS;
    result = PyLong_FromSsize_t(kept);
done:
    free(idx), free(area);
    PyBuffer_Release(&box_b), PyBuffer_Release(&keep_b);
    return result;
}

static PyMethodDef methods[] = {
    {"merge_pass", merge_pass, METH_VARARGS, "One greedy-merge pass in place; returns the number of merges."},
    {"nms_sorted", nms_sorted, METH_VARARGS, "Greedy NMS of float32 boxes sorted best first; returns the kept count."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_greedy", "OverFeat's greedy merge, compiled.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__greedy(void) { return PyModule_Create(&module); }
