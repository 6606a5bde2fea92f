/* One pass over rows of a dense X for a single-output loss: each row's
 * prediction p = scale * (x . w) + b, its loss and derivative f = dL/dp
 * (times the row's sample weight), and its share of the gradient f x, all
 * while the row is in cache. Torch computes the same with two matrix-vector
 * products, each a read of X; this reads X once.
 *
 * rowpass(loss, param, double_precision, X, n, ld, d, rows, start, m, y,
 *         sw, w, b, scale, grad, threads) -> float
 *
 * The arguments after the first three are addresses (integers) of CPU
 * memory the caller keeps alive, or sizes: X (n rows of ld elements,
 * float32 or float64; the rows read are checked to lie among them), rows (int64 row numbers, or 0 for the rows start .. start +
 * m - 1; with rows, positions start .. start + m - 1 of it), y and sw
 * (indexed by row; sw 0 for none), w (d coefficients, X's dtype), grad
 * (d + 1 float64, added to: X' f, then sum f). Returns the sum of the
 * (weighted) losses. The rows are split over `threads` threads (POSIX
 * threads; one elsewhere), each into its own gradient; the GIL is released
 * during the pass. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if !defined(_WIN32)
#include <pthread.h>
#define SKLEARN_GD_THREADS
#endif

/* threads a pass is split over, at most */
#define MAX_THREADS 256

/* the loss numbers of sklearn_gd._losses (Loss.row_kernel_id) */
enum {
  SQUARED = 0,
  HUBER = 1,
  LOG = 2,
  HINGE = 3,
  SQUARED_HINGE = 4,
  MODIFIED_HUBER = 5,
  EPSILON_INSENSITIVE = 6,
  SQUARED_EPSILON_INSENSITIVE = 7,
  QUANTILE = 8,
  ABSOLUTE = 9,
  N_LOSSES = 10
};

/* rows a block: their predictions, then their losses (one loop a loss,
 * which the compiler vectorises), then their gradient, the rows still in
 * the first-level cache (64 rows of 100 float64 are 51 KB) */
#define BLOCK 64

/* exp(x) for x <= 0 and log1p(e) for e in [0, 1], in loops the compiler
 * can vectorise (libm's are calls, about 20 ns a row for the logistic
 * loss). exp: Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, then
 * Taylor's series to r^7 (float; error below 6e-9 relative) or r^13
 * (double; below 4e-18), times 2^n built in the exponent bits; x below
 * -104 (float) or -746 (double), where exp rounds to 0, gives 0.
 * log1p: 2 atanh(s), s = e / (2 + e) in [0, 1/3], as its odd series to
 * s^15 (float; error below 2e-9 relative) or s^35 (double; below 1e-18). */
static inline float exp_neg_float(float x) {
  x = x >= -104.0f ? x : -104.0f; /* NaN too: no float-to-int of NaN */
  int32_t n = -(int32_t)(0.5f - x * 1.44269504088896341f);
  float r = x - (float)n * 0.693359375f + (float)n * 2.12194440e-4f;
  float p = ((((((1.0f / 5040 * r + 1.0f / 720) * r + 1.0f / 120) * r +
                 1.0f / 24) * r + 1.0f / 6) * r + 0.5f) * r + 1.0f) * r + 1.0f;
  /* 2^n in two normal halves: the subnormal results round once, as libm's */
  int32_t h = n / 2;
  union {
    int32_t i;
    float f;
  } s1 = {(h + 127) << 23}, s2 = {(n - h + 127) << 23};
  return p * s1.f * s2.f;
}

static inline double exp_neg_double(double x) {
  x = x >= -746.0 ? x : -746.0;
  int32_t n = -(int32_t)(0.5 - x * 1.44269504088896340736);
  double r = x - (double)n * 0.693145751953125 -
             (double)n * 1.42860682030941723212e-6;
  /* Horner's rule on 1/k!, k = 13 .. 0, in two halves */
  double high = (((((1.0 / 6227020800 * r + 1.0 / 479001600) * r +
                    1.0 / 39916800) * r + 1.0 / 3628800) * r + 1.0 / 362880) *
                  r + 1.0 / 40320) * r + 1.0 / 5040;
  double p = (((((high * r + 1.0 / 720) * r + 1.0 / 120) * r + 1.0 / 24) * r +
               1.0 / 6) * r + 0.5) * r + 1.0;
  p = p * r + 1.0;
  int32_t h = n / 2;
  union {
    int64_t i;
    double f;
  } s1 = {(int64_t)(h + 1023) << 52}, s2 = {(int64_t)(n - h + 1023) << 52};
  return p * s1.f * s2.f;
}

static inline float log1p_unit_float(float e) {
  float s = e / (2.0f + e), t = s * s;
  float p = ((((((1.0f / 15 * t + 1.0f / 13) * t + 1.0f / 11) * t + 1.0f / 9) *
                  t + 1.0f / 7) * t + 1.0f / 5) * t + 1.0f / 3) * t + 1.0f;
  return 2.0f * s * p;
}

static inline double log1p_unit_double(double e) {
  double s = e / (2.0 + e), t = s * s, p = 1.0 / 35;
  p = p * t + 1.0 / 33, p = p * t + 1.0 / 31, p = p * t + 1.0 / 29;
  p = p * t + 1.0 / 27, p = p * t + 1.0 / 25, p = p * t + 1.0 / 23;
  p = p * t + 1.0 / 21, p = p * t + 1.0 / 19, p = p * t + 1.0 / 17;
  p = p * t + 1.0 / 15, p = p * t + 1.0 / 13, p = p * t + 1.0 / 11;
  p = p * t + 1.0 / 9, p = p * t + 1.0 / 7, p = p * t + 1.0 / 5;
  p = p * t + 1.0 / 3, p = p * t + 1.0;
  return 2.0 * s * p;
}

#define SIGN(T, r) ((T)((r) > 0) - (T)((r) < 0))
/* max(c, 0) as torch.clamp(c, min=0): NaN stays NaN */
#define CLAMP0(c) ((c) < 0 ? 0 : (c))

/* the losses of a block: p (predictions) in, f (derivatives, weighted) out;
 * returns the weighted loss sum and adds sum f to *fsum. The definitions
 * are sklearn_gd._losses' (value and derivative of each class). */
#define DEFINE_LOSSES(T, NAME, EXP_NEG, LOG1P_UNIT)                            \
  static inline double NAME(int loss, T a, const T *y, const T *s, const T *p, \
                            T *f, int q, double *fsum) {                       \
    T v[BLOCK];                                                                \
    switch (loss) {                                                            \
    case SQUARED:                                                              \
      for (int i = 0; i < q; i++) {                                            \
        T r = p[i] - y[i];                                                     \
        f[i] = r, v[i] = (T)0.5 * r * r;                                       \
      }                                                                        \
      break;                                                                   \
    case HUBER: /* a: epsilon */                                               \
      for (int i = 0; i < q; i++) {                                            \
        T r = p[i] - y[i], c = r > a ? a : (r < -a ? -a : r);                  \
        f[i] = c, v[i] = c * (r - (T)0.5 * c);                                 \
      }                                                                        \
      break;                                                                   \
    case LOG: /* softplus(z), -y sigmoid(z), z = -y p, from one exp */        \
      for (int i = 0; i < q; i++) {                                            \
        T z = -y[i] * p[i], e = EXP_NEG(z > 0 ? -z : z);                       \
        f[i] = z != z ? z : -y[i] * (z >= 0 ? (T)1 : e) / (1 + e);             \
        v[i] = CLAMP0(z) + LOG1P_UNIT(e);                                      \
      }                                                                        \
      break;                                                                   \
    case HINGE: /* a: threshold; derivative -y where y p <= a */              \
      for (int i = 0; i < q; i++) {                                            \
        T z = y[i] * p[i];                                                     \
        f[i] = z <= a ? -y[i] : 0, v[i] = CLAMP0(a - z);                       \
      }                                                                        \
      break;                                                                   \
    case SQUARED_HINGE:                                                        \
      for (int i = 0; i < q; i++) {                                            \
        T c = CLAMP0(a - y[i] * p[i]);                                         \
        f[i] = -2 * y[i] * c, v[i] = c * c;                                    \
      }                                                                        \
      break;                                                                   \
    case MODIFIED_HUBER:                                                       \
      for (int i = 0; i < q; i++) {                                            \
        T z = y[i] * p[i], c = CLAMP0(1 - z);                                  \
        f[i] = z >= -1 ? -2 * y[i] * c : -4 * y[i];                            \
        v[i] = z >= -1 ? c * c : -4 * z;                                       \
      }                                                                        \
      break;                                                                   \
    case EPSILON_INSENSITIVE:                                                  \
      for (int i = 0; i < q; i++) {                                            \
        T r = p[i] - y[i], c = CLAMP0((r > 0 ? r : -r) - a);                   \
        f[i] = c > 0 ? SIGN(T, r) : 0, v[i] = c;                               \
      }                                                                        \
      break;                                                                   \
    case SQUARED_EPSILON_INSENSITIVE:                                          \
      for (int i = 0; i < q; i++) {                                            \
        T r = p[i] - y[i], c = CLAMP0((r > 0 ? r : -r) - a);                   \
        f[i] = 2 * SIGN(T, r) * c, v[i] = c * c;                               \
      }                                                                        \
      break;                                                                   \
    case QUANTILE: /* a: the quantile; r = y - p */                           \
      for (int i = 0; i < q; i++) {                                            \
        T r = y[i] - p[i];                                                     \
        f[i] = r > 0 ? -a : (r < 0 ? 1 - a : 0);                               \
        v[i] = r > 0 ? a * r : (a - 1) * r;                                    \
      }                                                                        \
      break;                                                                   \
    default: /* ABSOLUTE */                                                    \
      for (int i = 0; i < q; i++) {                                            \
        T r = p[i] - y[i];                                                     \
        f[i] = SIGN(T, r), v[i] = r > 0 ? r : -r;                              \
      }                                                                        \
    }                                                                          \
    if (s)                                                                     \
      for (int i = 0; i < q; i++) {                                            \
        v[i] *= s[i];                                                          \
        f[i] *= s[i];                                                          \
      }                                                                        \
    double total = 0, fs = 0;                                                  \
    for (int i = 0; i < q; i++) {                                              \
      total += v[i];                                                           \
      fs += f[i];                                                              \
    }                                                                          \
    *fsum += fs;                                                               \
    return total;                                                              \
  }

DEFINE_LOSSES(float, losses_float, exp_neg_float, log1p_unit_float)
DEFINE_LOSSES(double, losses_double, exp_neg_double, log1p_unit_double)

/* Rows taken by number are read in no order the hardware can foresee: the
 * next block's rows are asked for while this block is computed. */
static inline void prefetch_rows(const void *X, Py_ssize_t ld, Py_ssize_t d,
                                 const int64_t *rows, Py_ssize_t at,
                                 Py_ssize_t count, size_t size) {
#if defined(__GNUC__)
  for (Py_ssize_t i = 0; i < count; i++) {
    const char *row = (const char *)X + (size_t)rows[at + i] * ld * size;
    for (size_t byte = 0; byte < (size_t)d * size; byte += 64)
      __builtin_prefetch(row + byte, 0, 3);
  }
#else
  (void)X, (void)ld, (void)d, (void)rows, (void)at, (void)count, (void)size;
#endif
}

/* On x86-64 Linux with GCC 12 or later (the first to dispatch on the
 * x86-64-v3 and v4 levels) the pass is also compiled for AVX2 and AVX-512,
 * the variant picked when the module loads; elsewhere, for the compiler's
 * default target. */
#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__) &&              \
    defined(__x86_64__) && defined(__linux__)
#define CLONES                                                                 \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3",              \
                               "default")))
#else
#define CLONES
#endif

/* the pass in precision T: eight rows at a time, a block of BLOCK rows'
 * predictions, losses, then gradient; the gradient of a block in T (in the
 * workspace g of d elements), added to the float64 one block by block */
#define DEFINE_PASS(T, NAME, LOSSES)                                           \
  CLONES static double NAME(int loss, double a, const T *X, Py_ssize_t ld,     \
                            Py_ssize_t d, const int64_t *rows,                 \
                            Py_ssize_t start, Py_ssize_t m, const T *y,        \
                            const T *sw, const T *w, double b, double scale,   \
                            double *grad, T *g) {                              \
    double total = 0, fsum = 0;                                                \
    const T *x[BLOCK];                                                         \
    T yb[BLOCK], sb[BLOCK], p[BLOCK], f[BLOCK];                                \
    for (Py_ssize_t i0 = 0; i0 < m; i0 += BLOCK) {                             \
      int q = m - i0 < BLOCK ? (int)(m - i0) : BLOCK;                          \
      for (int i = 0; i < q; i++) {                                            \
        Py_ssize_t r = rows ? (Py_ssize_t)rows[start + i0 + i] : start + i0 + i; \
        x[i] = X + r * ld;                                                     \
        yb[i] = y[r];                                                          \
        if (sw)                                                                \
          sb[i] = sw[r];                                                       \
      }                                                                        \
      if (rows)                                                                \
        prefetch_rows(X, ld, d, rows, start + i0 + q,                          \
                      m - i0 - q < BLOCK ? m - i0 - q : BLOCK, sizeof(T));      \
      /* short of a multiple of 8: the first row again, with f = 0 */          \
      int q8 = (q + 7) & ~7;                                                   \
      for (int i = q; i < q8; i++)                                             \
        x[i] = x[0];                                                           \
      for (int i = 0; i < q8; i += 8) {                                        \
        const T *x0 = x[i], *x1 = x[i + 1], *x2 = x[i + 2], *x3 = x[i + 3];    \
        const T *x4 = x[i + 4], *x5 = x[i + 5], *x6 = x[i + 6], *x7 = x[i + 7]; \
        T z0 = 0, z1 = 0, z2 = 0, z3 = 0, z4 = 0, z5 = 0, z6 = 0, z7 = 0;      \
        _Pragma("omp simd reduction(+ : z0, z1, z2, z3, z4, z5, z6, z7)")      \
        for (Py_ssize_t j = 0; j < d; j++) {                                   \
          T wj = w[j];                                                         \
          z0 += x0[j] * wj, z1 += x1[j] * wj, z2 += x2[j] * wj;                \
          z3 += x3[j] * wj, z4 += x4[j] * wj, z5 += x5[j] * wj;                \
          z6 += x6[j] * wj, z7 += x7[j] * wj;                                  \
        }                                                                      \
        T z[8] = {z0, z1, z2, z3, z4, z5, z6, z7};                             \
        for (int k = 0; k < 8; k++)                                            \
          p[i + k] = (T)(scale * z[k] + b);                                    \
      }                                                                        \
      total += LOSSES(loss, (T)a, yb, sw ? sb : NULL, p, f, q, &fsum);         \
      for (int i = q; i < q8; i++)                                             \
        f[i] = 0;                                                              \
      memset(g, 0, sizeof(T) * (size_t)d);                                     \
      for (int i = 0; i < q8; i += 8) {                                        \
        const T *x0 = x[i], *x1 = x[i + 1], *x2 = x[i + 2], *x3 = x[i + 3];    \
        const T *x4 = x[i + 4], *x5 = x[i + 5], *x6 = x[i + 6], *x7 = x[i + 7]; \
        const T f0 = f[i], f1 = f[i + 1], f2 = f[i + 2], f3 = f[i + 3];        \
        const T f4 = f[i + 4], f5 = f[i + 5], f6 = f[i + 6], f7 = f[i + 7];    \
        _Pragma("omp simd")                                                    \
        for (Py_ssize_t j = 0; j < d; j++)                                     \
          g[j] += f0 * x0[j] + f1 * x1[j] + f2 * x2[j] + f3 * x3[j] +          \
                  f4 * x4[j] + f5 * x5[j] + f6 * x6[j] + f7 * x7[j];           \
      }                                                                        \
      for (Py_ssize_t j = 0; j < d; j++)                                       \
        grad[j] += g[j];                                                       \
    }                                                                          \
    grad[d] += fsum;                                                           \
    return total;                                                              \
  }

DEFINE_PASS(float, pass_float, losses_float)
DEFINE_PASS(double, pass_double, losses_double)

/* one thread's share of a pass: rows [start, start + m) of the batch, into
 * its own gradient (d + 1 float64) and workspace */
typedef struct {
  int loss, double_precision;
  double a, b, scale, total;
  const void *X, *y, *sw, *w;
  const int64_t *rows;
  Py_ssize_t ld, d, start, m;
  double *grad;
  void *work;
} Share;

static void *run_share(void *arg) {
  Share *s = (Share *)arg;
  if (s->double_precision)
    s->total = pass_double(s->loss, s->a, s->X, s->ld, s->d, s->rows,
                           s->start, s->m, s->y, s->sw, s->w, s->b, s->scale,
                           s->grad, s->work);
  else
    s->total = pass_float(s->loss, s->a, s->X, s->ld, s->d, s->rows, s->start,
                          s->m, s->y, s->sw, s->w, s->b, s->scale, s->grad,
                          s->work);
  return NULL;
}

/* the shares on `threads` threads (the calling one and threads - 1 new
 * ones; where a thread cannot start, its share runs on the calling one),
 * their gradients and totals then added in a fixed order: the result
 * depends on the thread count only. Starting and joining a thread costs
 * about 0.1-0.2 ms, which a batch of 2**21 elements repays; a kept pool of
 * threads measured no better here (waking a waiting thread took 50 us) */
static double run_shares(Share *shares, int threads) {
#ifdef SKLEARN_GD_THREADS
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int t = 1; t < threads; t++)
    started[t] = pthread_create(&ids[t], NULL, run_share, &shares[t]) == 0;
  run_share(&shares[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t])
      pthread_join(ids[t], NULL);
    else
      run_share(&shares[t]);
  }
#else
  for (int t = 0; t < threads; t++)
    run_share(&shares[t]);
#endif
  double total = 0;
  for (int t = 0; t < threads; t++) {
    total += shares[t].total;
    if (t > 0)
      for (Py_ssize_t j = 0; j <= shares[0].d; j++)
        shares[0].grad[j] += shares[t].grad[j];
  }
  return total;
}

static PyObject *rowpass(PyObject *self, PyObject *args) {
  (void)self;
  int loss, double_precision, threads;
  double a, b, scale, total;
  Py_ssize_t X, n, ld, d, rows, start, m, y, sw, w, grad;
  if (!PyArg_ParseTuple(args, "idpnnnnnnnnnnddni", &loss, &a,
                        &double_precision, &X, &n, &ld, &d, &rows, &start, &m,
                        &y, &sw, &w, &b, &scale, &grad, &threads))
    return NULL;
  if (loss < 0 || loss >= N_LOSSES) {
    PyErr_Format(PyExc_ValueError, "unknown loss number %d", loss);
    return NULL;
  }
  if (d < 0 || m < 0) {
    PyErr_Format(PyExc_ValueError, "%zd features and %zd rows: out of range",
                 d, m);
    return NULL;
  }
  /* the rows read must be rows of X: checked here, on the calling thread
   * (a torch reduction over the row numbers would leave torch's OpenMP
   * threads spinning against the pass's own, 3 ms a batch of 65536) */
  if (rows) {
    const int64_t *numbers = (const int64_t *)rows;
    for (Py_ssize_t i = start; i < start + m; i++)
      if (numbers[i] < 0 || numbers[i] >= n) {
        PyErr_Format(PyExc_IndexError, "row number %lld outside 0 .. %zd",
                     (long long)numbers[i], n - 1);
        return NULL;
      }
  } else if (start < 0 || start + m > n) {
    PyErr_Format(PyExc_IndexError, "rows %zd .. %zd outside 0 .. %zd", start,
                 start + m - 1, n - 1);
    return NULL;
  }
  threads = threads < 1 ? 1 : (threads > MAX_THREADS ? MAX_THREADS : threads);
  if (threads > m / 8 + 1)
    threads = (int)(m / 8 + 1);
  /* a workspace a thread, and a gradient for each but the first */
  size_t row = (size_t)(d + 1);
  double *work = PyMem_RawCalloc(row * (2 * (size_t)threads - 1), sizeof(double));
  Share *shares = PyMem_RawMalloc(sizeof(Share) * (size_t)threads);
  if (work == NULL || shares == NULL) {
    PyMem_RawFree(work);
    PyMem_RawFree(shares);
    return PyErr_NoMemory();
  }
  for (int t = 0; t < threads; t++) {
    Py_ssize_t lo = m * t / threads, hi = m * (t + 1) / threads;
    Share s = {loss, double_precision, a, b, scale, 0.0,
               (const void *)X, (const void *)y, (const void *)sw,
               (const void *)w, (const int64_t *)rows, ld, d, start + lo,
               hi - lo, t == 0 ? (double *)grad : work + row * (size_t)(threads + t - 1),
               work + row * (size_t)t};
    shares[t] = s;
  }
  Py_BEGIN_ALLOW_THREADS;
  total = run_shares(shares, threads);
  Py_END_ALLOW_THREADS;
  PyMem_RawFree(work);
  PyMem_RawFree(shares);
  return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"rowpass", rowpass, METH_VARARGS,
     "rowpass(loss, param, double_precision, X, n, ld, d, rows, start, m, "
     "y, sw, w, b, scale, grad, threads) -> loss sum: one pass over rows of X "
     "(addresses as integers) on up to `threads` threads, adding the "
     "gradient of the sum to grad."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowpass",
    "A loss and its gradient in one pass over the rows of X.", -1, methods,
    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rowpass(void) { return PyModule_Create(&module); }
