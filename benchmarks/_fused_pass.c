/* One huber epoch's loss and gradient in a single pass over the rows of a
 * C-contiguous float32 X: each row's prediction, its loss derivative and
 * its share of the gradient are taken while the row is in cache, four rows
 * at a time, the rows split over `threads` OpenMP threads, compiled for the
 * machine it runs on. A reference for benchmarks/epochs.py, against which the
 * package's portable kernel (sklearn_gd/_rowpass.c) is measured.
 *
 * Returns the sum of the losses; writes the gradient of that sum, X' f and
 * sum(f), to grad[0 .. d] (d <= MAX_D). */
#include <omp.h>
#include <string.h>

#define MAX_D 1024

static inline float clip(float r, float eps) {
  return r > eps ? eps : (r < -eps ? -eps : r);
}

double huber_pass(const float *X, const float *y, const float *w, float b,
                  long n, long d, float eps, float *grad, int threads) {
  double total = 0.0;
  memset(grad, 0, (size_t)(d + 1) * sizeof(float));
  if (d > MAX_D) return -1.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    /* a gradient per thread, on its own stack: one shared array written
     * every row would bounce its cache lines between the cores */
    float g[MAX_D] __attribute__((aligned(64)));
    float gb = 0.0f;
    memset(g, 0, (size_t)d * sizeof(float));
#pragma omp for schedule(static)
    for (long i = 0; i < n; i += 4) {
      long m = n - i < 4 ? n - i : 4;
      const float *x[4];
      float z[4] = {b, b, b, b}, f[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (long k = 0; k < 4; k++) x[k] = X + (i + (k < m ? k : 0)) * d;
      float z0 = 0.0f, z1 = 0.0f, z2 = 0.0f, z3 = 0.0f;
#pragma omp simd reduction(+ : z0, z1, z2, z3)
      for (long j = 0; j < d; j++) {
        z0 += x[0][j] * w[j];
        z1 += x[1][j] * w[j];
        z2 += x[2][j] * w[j];
        z3 += x[3][j] * w[j];
      }
      z[0] += z0, z[1] += z1, z[2] += z2, z[3] += z3;
      for (long k = 0; k < m; k++) {
        float r = z[k] - y[i + k];
        f[k] = clip(r, eps);
        total += f[k] * (r - 0.5f * f[k]);
        gb += f[k];
      }
#pragma omp simd
      for (long j = 0; j < d; j++)
        g[j] += f[0] * x[0][j] + f[1] * x[1][j] + f[2] * x[2][j] + f[3] * x[3][j];
    }
#pragma omp critical
    {
      for (long j = 0; j < d; j++) grad[j] += g[j];
      grad[d] += gb;
    }
  }
  return total;
}
