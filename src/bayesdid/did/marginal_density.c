/* The marginal HierarchicalDiD log-density on its dense, block-arrow and per-unit scaled
 * kernels, as nutpie C callbacks, and the exact conditional draws of the coefficients after
 * NUTS: the same arithmetic as the numba path
 *   did/nutpie_density.py            _hyper_prior, *_logp_grad, _chain_rule, _store
 *   did/block_marginal.py            _merged_weights, _factor, block_loglik_grad_nb,
 *                                    block_draw_batch_nb
 *   did/marginal_likelihood_numba.py _weights, _loglik_and_scalar_grad,
 *                                    marginal_loglik_grad_nb, conditional_factor_batch_nb,
 *                                    _conditional_draw, _scaled_S, scaled_loglik_grad_nb,
 *                                    scaled_conditional_batch_nb
 *   bayes/small_linalg.py            small_spd_inverse
 * on the float64 buffer of did/nutpie_density.pack_user_data (header slots listed there).
 * Compiled by bayes/native.py with the system C compiler (well under a second, against
 * 8-13 s for numba to compile the block kernel); tests hold it to the numba kernels at
 * 1e-10. Keep the two in step: a change to either is a change to both. One file, because
 * native.py names the build by the hash of this file's text alone.
 *
 * The products and the Cholesky factorisations go to the BLAS / LAPACK numba's kernels call
 * (scipy's, whose pointers bayesdid_set_lapack receives once per process); the small group
 * inverses are written out, as in small_linalg.py. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 16

/* Fortran BLAS / LAPACK, as scipy.linalg.cython_blas / cython_lapack export them */
typedef void (*dgemm_t)(const char *, const char *, const int *, const int *, const int *,
                        const double *, const double *, const int *, const double *,
                        const int *, const double *, double *, const int *);
typedef void (*dgemv_t)(const char *, const int *, const int *, const double *,
                        const double *, const int *, const double *, const int *,
                        const double *, double *, const int *);
typedef void (*dpotr_t)(const char *, const int *, double *, const int *, int *);
static dgemm_t dgemm_;
static dgemv_t dgemv_;
static dpotr_t dpotrf_, dpotri_;

/* Set the BLAS / LAPACK entry points (before any call of bayesdid_logp). */
void bayesdid_set_lapack(void *dgemm, void *dgemv, void *dpotrf, void *dpotri) {
    dgemm_ = (dgemm_t)dgemm;
    dgemv_ = (dgemv_t)dgemv;
    dpotrf_ = (dpotr_t)dpotrf;
    dpotri_ = (dpotr_t)dpotri;
}

/* Row-major C (m x n, ldc) = op(A) op(B), op = transpose where the flag is 'T': the same
 * call in column-major terms is C' = op(B)' op(A)', so the operands swap. */
static void gemm_rm(char ta, char tb, int m, int n, int k, const double *A, int lda,
                    const double *B, int ldb, double *C, int ldc) {
    const double one = 1.0, zero = 0.0;
    dgemm_(&tb, &ta, &n, &m, &k, &one, B, &ldb, A, &lda, &zero, C, &ldc);
}

/* y = basis' v (trans 'N': v has K entries, y has n) or basis v ('T': v has n, y has K),
 * for the row-major K x n basis, i.e. the column-major n x K matrix */
static void gemv_basis(char trans, const double *basis, int K, int n, const double *v,
                       double *y) {
    const double one = 1.0, zero = 0.0;
    const int inc = 1;
    dgemv_(&trans, &n, &K, &one, basis, &n, v, &inc, &zero, y, &inc);
}
static const double LOG_2PI = 1.8378770664093453;           /* log(2 pi) */
static const double LOG_HALF_NORMAL_CONST = -0.22579135264472738; /* log 2 - log(2 pi)/2 */

/* C^-1 in place for a small SPD C (n x n, row-major) by C = L L'; work: 2 n^2 doubles;
 * fac (NULL to skip) receives U = L' in its upper triangle. Returns 1 and adds 1/2 log|C|
 * to *half_logdet, or 0 if C is not positive definite. */
static int spd_inverse(double *C, int n, double *work, double *half_logdet, double *fac) {
    double *L = work, *Li = work + n * n;
    memset(L, 0, sizeof(double) * n * n);
    memset(Li, 0, sizeof(double) * n * n);
    double half = 0.0;
    for (int j = 0; j < n; j++) {
        double d = C[j * n + j];
        for (int k = 0; k < j; k++) d -= L[j * n + k] * L[j * n + k];
        if (!(d > 0.0)) return 0; /* also NaN */
        double ljj = sqrt(d);
        L[j * n + j] = ljj;
        half += log(ljj);
        for (int i = j + 1; i < n; i++) {
            double acc = C[i * n + j];
            for (int k = 0; k < j; k++) acc -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = acc / ljj;
        }
    }
    for (int j = 0; j < n; j++) { /* L^-1, lower */
        Li[j * n + j] = 1.0 / L[j * n + j];
        for (int i = j + 1; i < n; i++) {
            double acc = 0.0;
            for (int k = j; k < i; k++) acc -= L[i * n + k] * Li[k * n + j];
            Li[i * n + j] = acc / L[i * n + i];
        }
    }
    for (int i = 0; i < n; i++) { /* C^-1 = L^-T L^-1 */
        for (int j = i; j < n; j++) {
            double acc = 0.0;
            for (int k = j; k < n; k++) acc += Li[k * n + i] * Li[k * n + j];
            C[i * n + j] = acc;
            C[j * n + i] = acc;
        }
    }
    if (fac)
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) fac[i * n + j] = L[j * n + i];
    *half_logdet += half;
    return 1;
}

/* marginal_likelihood_numba._weights: weights of S, dS/drho and dS/ds on the basis rows
 * (w: 3 x K) and D_L(rho), dD_L/drho. Rows: the first four, then per run length the nine
 * Q_L(a, b) (dense basis, K = 4 + 9 nL) or, merged, the six pairs a <= b (block_marginal.
 * _merged_weights, K = 4 + 6 nL). */
static void weights(const double *run_lengths, int nL, double lam_a, double s, double rho,
                    int merged, double *w, double *D, double *dD) {
    int per_run = merged ? 6 : 9, K = 4 + per_run * nL;
    int no_unit = isinf(lam_a);
    double c[3] = {1 - rho * rho, 1 - rho, -rho * (1 - rho)};
    double dc[3] = {-2 * rho, -1.0, -(1 - 2 * rho)};
    memset(w, 0, sizeof(double) * 3 * K);
    w[0] = 1.0; w[1] = -rho; w[2] = rho * rho; w[3] = 1 - rho * rho;
    w[K + 1] = -1.0; w[K + 2] = 2 * rho; w[K + 3] = -2 * rho;
    for (int li = 0; li < nL; li++) {
        double rl = run_lengths[li];
        D[li] = (1 - rho * rho) + (rl - 1) * ((1 - rho) * (1 - rho));
        dD[li] = -2 * rho - 2 * (rl - 1) * (1 - rho);
        double kappa = no_unit ? 0.0 : 1.0 / (D[li] + lam_a * s);
        int j = 0;
        for (int a = 0; a < 3; a++) {
            for (int b = merged ? a : 0; b < 3; b++) {
                int k = 4 + per_run * li + j;
                double cc = c[a] * c[b];
                double dcc = dc[a] * c[b] + c[a] * dc[b];
                w[k] = -kappa * cc;
                w[K + k] = kappa * kappa * dD[li] * cc - kappa * dcc;
                w[2 * K + k] = no_unit ? 0.0 : kappa * kappa * lam_a * cc;
                j++;
            }
        }
    }
}

/* a . b with four running sums: a single sum is latency-bound (no reassociation without
 * -ffast-math), and this is the kernel's hottest loop (the basis against V) */
static double dot(const double *a, const double *b, int n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

typedef struct {
    int p, R, K, nL, n_compact, pa, pc, n_groups, has_rho;
    double n_obs, lam_a, sigma_sd, g_alpha, g_beta;
    const double *cnst, *masks, *basis, *run_lengths, *upl;
    int *head, *tail, *starts;
} Layout;

static void read_layout(const double *buf, Layout *L, int *idx) {
    L->n_obs = buf[1]; L->lam_a = buf[2]; L->sigma_sd = buf[3];
    L->g_alpha = buf[4]; L->g_beta = buf[5];
    L->has_rho = buf[6] > 0; L->R = (int)buf[7]; L->p = (int)buf[8]; L->K = (int)buf[9];
    L->nL = (int)buf[10]; L->pa = (int)buf[14]; L->n_groups = (int)buf[15];
    L->n_compact = buf[13] > 0 ? (int)buf[13] : (L->p + 1) * (L->p + 1); /* 0: dense */
    L->pc = L->p - L->pa;
    size_t at = HEADER;
    L->cnst = buf + at; at += L->p;
    L->masks = buf + at; at += (size_t)L->R * L->p;
    L->basis = buf + at; at += (size_t)L->K * L->n_compact;
    L->run_lengths = buf + at; at += L->nL;
    L->upl = buf + at; at += L->nL;
    if (buf[13] > 0) { /* the block layout's index sets follow */
        L->head = idx; L->tail = idx + L->pa; L->starts = idx + L->p;
        for (int i = 0; i < L->p + L->n_groups + 1; i++) idx[i] = (int)buf[at + i];
    }
}

/* marginal_likelihood_numba._loglik_and_scalar_grad: the log-likelihood and its sigma / rho
 * derivatives from half log|H|, y'y, b'H^-1 b and the traces of the weighted basis against V.
 * Returns 1. */
static int scalar_terms(const Layout *L, double s, double sigma, double rho,
                        const double *lam_phi, const double *D, const double *dD,
                        double half_logdet, double yy, double quad, double tr_S, double tr_rho,
                        double tr_s, double *logp, double *g_sigma, double *g_rho) {
    double lam_a = L->lam_a, n_units = 0.0, unit_log = 0.0, sum_s = 0.0, sum_rho = 0.0;
    for (int li = 0; li < L->nL; li++) {
        n_units += L->upl[li];
        if (!isinf(lam_a)) unit_log += L->upl[li] * log(D[li] / s + lam_a);
        sum_s += L->upl[li] * D[li] / (s * (D[li] + lam_a * s));
        sum_rho += L->upl[li] * dD[li] / (D[li] + lam_a * s);
    }
    double unit_terms = isinf(lam_a) ? 0.0 : 0.5 * n_units * log(lam_a) - 0.5 * unit_log;
    double log_lam = 0.0;
    for (int i = 0; i < L->p; i++) log_lam += log(lam_phi[i]);
    *logp = (-0.5 * L->n_obs * (LOG_2PI + log(s)) + 0.5 * n_units * log(1 - rho * rho)
             + unit_terms + 0.5 * log_lam - half_logdet - 0.5 * yy / s + 0.5 * quad);
    double g_s = (-0.5 * L->n_obs / s + 0.5 * sum_s - 0.5 * tr_s / s + 0.5 * tr_S / (s * s));
    *g_sigma = g_s * 2 * sigma;
    *g_rho = -n_units * rho / (1 - rho * rho) - 0.5 * sum_rho - 0.5 * tr_rho / s;
    return 1;
}

/* LAPACK Cholesky of a symmetric row-major P (n x n), adding 1/2 log|P| to *half_logdet;
 * then, with invert, its full inverse in place. LAPACK sees the C buffer as P' = P: 'L'
 * there fills the C view's upper triangle with L' (= U, U'U = P), where dpotri leaves the
 * inverse. Returns 0 if P is not positive definite. */
static int spd_factor_inverse(double *P, int n, double *half_logdet, int invert) {
    int info = 0;
    const char lower = 'L';
    dpotrf_(&lower, &n, P, &n, &info);
    if (info != 0) return 0;
    for (int i = 0; i < n; i++) *half_logdet += log(P[i * n + i]);
    if (!invert) return 1;
    dpotri_(&lower, &n, P, &n, &info);
    if (info != 0) return 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) P[j * n + i] = P[i * n + j];
    return 1;
}

/* Scratch of one factorisation (pointers into one workspace; see workspace_size). */
typedef struct {
    double *w, *D, *dD, *Sc, *V, *Bf, *X, *cinv, *G, *P, *r, *m_a, *m_c, *Y, *u, *work;
} Work;

static void carve(const Layout *L, double *ws, Work *W) {
    int pa = L->pa, pc = L->pc, a1 = pa + 1, nc = L->n_compact;
    W->w = ws; ws += 3 * L->K;
    W->D = ws; ws += L->nL;
    W->dD = ws; ws += L->nL;
    W->Sc = ws; ws += nc;
    W->V = ws; ws += nc;
    W->Bf = ws; ws += (size_t)pc * a1;      /* [B, b_C] */
    W->X = ws; ws += (size_t)pc * a1;       /* C^-1 [B, b_C] */
    W->cinv = ws; ws += nc - a1 * a1 - pc * a1;
    W->G = ws; ws += a1 * a1;               /* [B, b_C]' C^-1 [B, b_C] */
    W->P = ws; ws += (size_t)pa * pa;
    W->r = ws; ws += pa;
    W->m_a = ws; ws += pa;
    W->m_c = ws; ws += pc;
    W->Y = ws; ws += (size_t)pc * (pa > 0 ? pa : 1);
    W->u = ws; ws += L->K;
    W->work = ws;                           /* 2 n^2, n = the largest group or the head */
}

static size_t workspace_size(const Layout *L) {
    int a1 = L->pa + 1, nmax = L->pa;
    for (int g = 0; g < L->n_groups; g++) {
        int n = L->starts[g + 1] - L->starts[g];
        if (n > nmax) nmax = n;
    }
    return 3 * (size_t)L->K + 2 * (size_t)L->nL + 3 * (size_t)L->n_compact
           + 2 * (size_t)L->pc * a1 + (size_t)a1 * a1 + (size_t)L->pa * L->pa + 2 * (size_t)L->pa
           + L->pc + (size_t)L->pc * (L->pa > 0 ? L->pa : 1) + L->K
           + 2 * (size_t)nmax * nmax + 16;
}

/* block_marginal._factor: H on the block-arrow layout from the compact cross-products
 * W->Sc. Fills W->cinv (C_g^-1 per group), W->X = C^-1 [B, b_C], W->G, W->r and W->P:
 * P_AA = (A - B'C^-1 B)^-1, or for the draws (cfac not NULL: then also the groups' factors
 * U_g = L_g', upper triangles) the factor U of the Schur complement (U'U = A - B'C^-1 B,
 * in P's upper triangle). Returns 0 if H is not positive definite. */
static int factor(const Layout *L, double s, const double *lam_phi, Work *W, double *cfac,
                  double *half_logdet) {
    int pa = L->pa, pc = L->pc, a1 = pa + 1, n_hh = a1 * a1;
    const int *head = L->head, *tail = L->tail, *starts = L->starts;
    const double *Sc = W->Sc;
    double *P = W->P, *G = W->G;
    for (int i = 0; i < pc * a1; i++) W->Bf[i] = Sc[n_hh + i] / s;
    *half_logdet = 0.0;
    int off = n_hh + pc * a1, at = 0;
    for (int g = 0; g < L->n_groups; g++) {
        int lo = starts[g], n = starts[g + 1] - starts[g];
        double *C = W->cinv + at;
        for (int i = 0; i < n * n; i++) C[i] = Sc[off + i] / s;
        for (int i = 0; i < n; i++) C[i * n + i] += lam_phi[tail[lo + i]];
        if (!spd_inverse(C, n, W->work, half_logdet, cfac ? cfac + at : NULL)) return 0;
        gemm_rm('N', 'N', n, a1, n, C, n, W->Bf + (size_t)lo * a1, a1,
                W->X + (size_t)lo * a1, a1);
        off += n * n;
        at += n * n;
    }
    gemm_rm('T', 'N', a1, a1, pc, W->Bf, a1, W->X, a1, G, a1);
    for (int i = 0; i < pa; i++) {
        for (int j = 0; j < pa; j++) P[i * pa + j] = Sc[i * a1 + j] / s - G[i * a1 + j];
        P[i * pa + i] += lam_phi[head[i]];
        W->r[i] = Sc[i * a1 + pa] / s - G[i * a1 + pa];
    }
    if (pa > 0 && !spd_factor_inverse(P, pa, half_logdet, cfac == NULL)) return 0;
    return 1;
}

/* (logp, d/dsigma, d/drho, d/dlam_phi) of the marginal likelihood on the block layout.
 * Returns 0 (logp = -inf, gradient zero) where the numba kernel returns -inf. */
static int block_loglik_grad(const Layout *L, double sigma, double rho, const double *lam_phi,
                             double *logp, double *g_sigma, double *g_rho, double *g_lam,
                             double *ws) {
    int p = L->p, pa = L->pa, pc = L->pc, a1 = pa + 1, n_hh = a1 * a1, K = L->K;
    int nc = L->n_compact, nL = L->nL;
    const int *head = L->head, *tail = L->tail, *starts = L->starts;
    memset(g_lam, 0, sizeof(double) * p);
    *logp = -INFINITY; *g_sigma = 0.0; *g_rho = 0.0;
    double s = sigma * sigma;
    if (!(fabs(rho) < 1.0 && s > 0.0 && s < INFINITY)) return 0;
    for (int i = 0; i < p; i++) if (!isfinite(lam_phi[i])) return 0;

    Work W;
    carve(L, ws, &W);
    double *w = W.w, *D = W.D, *dD = W.dD, *Sc = W.Sc, *V = W.V, *X = W.X, *cinv = W.cinv;
    double *G = W.G, *P = W.P, *r = W.r, *m_a = W.m_a, *m_c = W.m_c, *Y = W.Y, *u = W.u;
    double *work = W.work;
    weights(L->run_lengths, nL, L->lam_a, s, rho, 1, w, D, dD);
    gemv_basis('N', L->basis, K, nc, w, Sc);
    double half_logdet;
    if (!factor(L, s, lam_phi, &W, NULL, &half_logdet)) return 0;
    double quad_c = G[pa * a1 + pa];

    /* posterior means, Y = C^-1 B P_AA and the bordered matrix V on the compact layout */
    for (int i = 0; i < pa; i++) m_a[i] = dot(P + (size_t)i * pa, r, pa);
    for (int c = 0; c < pc; c++) {
        const double *xc = X + (size_t)c * a1;
        m_c[c] = xc[pa] - dot(xc, m_a, pa);
    }
    if (pa > 0) gemm_rm('N', 'N', pc, pa, pa, X, a1, P, pa, Y, pa);
    for (int i = 0; i < pa; i++) {
        for (int j = 0; j < pa; j++) V[i * a1 + j] = P[i * pa + j] + m_a[i] * m_a[j];
        V[i * a1 + pa] = -m_a[i];
        V[pa * a1 + i] = -m_a[i];
        int k = head[i];
        g_lam[k] = 0.5 / lam_phi[k] - 0.5 * P[i * pa + i] - 0.5 * m_a[i] * m_a[i];
    }
    V[n_hh - 1] = 1.0;
    for (int c = 0; c < pc; c++) {
        for (int j = 0; j < pa; j++)
            V[n_hh + c * a1 + j] = 2.0 * (m_c[c] * m_a[j] - Y[(size_t)c * pa + j]);
        V[n_hh + c * a1 + pa] = -2.0 * m_c[c];
    }
    int off = n_hh + pc * a1, at = 0;
    for (int g = 0; g < L->n_groups; g++) {
        int lo = starts[g], n = starts[g + 1] - starts[g];
        double *Pg = work;
        if (pa > 0)
            gemm_rm('N', 'T', n, n, pa, Y + (size_t)lo * pa, pa, X + (size_t)lo * a1, a1, Pg, n);
        else
            memset(Pg, 0, sizeof(double) * n * n);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double pg = Pg[i * n + j] + cinv[at + i * n + j];
                V[off + i * n + j] = pg + m_c[lo + i] * m_c[lo + j];
                if (i == j) {
                    int k = tail[lo + i];
                    g_lam[k] = 0.5 / lam_phi[k] - 0.5 * pg - 0.5 * m_c[lo + i] * m_c[lo + i];
                }
            }
        }
        off += n * n;
        at += n * n;
    }
    gemv_basis('T', L->basis, K, nc, V, u);

    return scalar_terms(L, s, sigma, rho, lam_phi, D, dD, half_logdet, Sc[n_hh - 1],
                        quad_c + dot(r, m_a, pa), dot(w, u, K), dot(w + K, u, K),
                        dot(w + 2 * K, u, K), logp, g_sigma, g_rho);
}

/* From the cross-products S ((p+1)^2, last column X'y): P = H^-1 with H = S_pp / s +
 * diag(lam_phi), b = S_py / s, mean = P b, V = [[P + mean mean', -mean], [-mean', 1]] and
 * d/dlam_phi of the log-likelihood's lam_phi terms; adds 1/2 log|H| to *half_logdet. The
 * step the dense and scaled kernels share. Returns 0 if H is not positive definite. */
static int conditional_moments(const double *S, int p, double s, const double *lam_phi,
                               double *P, double *b, double *mean, double *V, double *g_lam,
                               double *half_logdet) {
    int m1 = p + 1;
    for (int i = 0; i < p; i++) {
        for (int j = 0; j < p; j++) P[i * p + j] = S[i * m1 + j] / s;
        P[i * p + i] += lam_phi[i];
        b[i] = S[i * m1 + p] / s;
    }
    if (!spd_factor_inverse(P, p, half_logdet, 1)) return 0;
    for (int i = 0; i < p; i++) mean[i] = dot(P + (size_t)i * p, b, p);
    for (int i = 0; i < p; i++) {
        for (int j = 0; j < p; j++) V[i * m1 + j] = P[i * p + j] + mean[i] * mean[j];
        V[i * m1 + p] = -mean[i];
        V[p * m1 + i] = -mean[i];
        g_lam[i] = 0.5 / lam_phi[i] - 0.5 * P[i * p + i] - 0.5 * mean[i] * mean[i];
    }
    V[p * m1 + p] = 1.0;
    return 1;
}

/* marginal_likelihood_numba.marginal_loglik_grad_nb: the same on the dense (p+1)^2 basis */
static int dense_loglik_grad(const Layout *L, double sigma, double rho, const double *lam_phi,
                             double *logp, double *g_sigma, double *g_rho, double *g_lam,
                             double *ws) {
    int p = L->p, m1 = p + 1, K = L->K, nL = L->nL;
    memset(g_lam, 0, sizeof(double) * p);
    *logp = -INFINITY; *g_sigma = 0.0; *g_rho = 0.0;
    double s = sigma * sigma;
    if (!(fabs(rho) < 1.0 && s > 0.0 && s < INFINITY)) return 0;
    for (int i = 0; i < p; i++) if (!isfinite(lam_phi[i])) return 0;
    double *w = ws; ws += 3 * K;
    double *D = ws; ws += nL;
    double *dD = ws; ws += nL;
    double *S = ws; ws += (size_t)m1 * m1;
    double *V = ws; ws += (size_t)m1 * m1;
    double *P = ws; ws += (size_t)p * p;
    double *b = ws; ws += p;
    double *mean = ws; ws += p;
    double *u = ws;
    weights(L->run_lengths, nL, L->lam_a, s, rho, 0, w, D, dD);
    gemv_basis('N', L->basis, K, m1 * m1, w, S);
    double half_logdet = 0.0;
    if (!conditional_moments(S, p, s, lam_phi, P, b, mean, V, g_lam, &half_logdet)) return 0;
    gemv_basis('T', L->basis, K, m1 * m1, V, u);
    return scalar_terms(L, s, sigma, rho, lam_phi, D, dD, half_logdet, S[p * m1 + p],
                        dot(b, mean, p), dot(w, u, K), dot(w + K, u, K), dot(w + 2 * K, u, K),
                        logp, g_sigma, g_rho);
}

static size_t dense_workspace_size(const Layout *L) {
    size_t m1 = L->p + 1;
    return 3 * (size_t)L->K + 2 * (size_t)L->nL + 2 * m1 * m1 + (size_t)L->p * L->p
           + 2 * (size_t)L->p + L->K + 16;
}

/* ---------------------------------------------------------------- per-unit precision scales
 * The scaled kernel (pack_user_data with header slot 11 > 0: panel weights, unit_variance):
 * after the dense basis (4 rows per variance class) come the projection groups' cross-
 * products, Q (9 rows per group) when grouped (slot 12) or G (3 x (p+1) per unit) when not,
 * then T, w, cls and count per group (slot 10 groups, slot 11 classes). */
typedef struct {
    int p, m1, n_classes, J, grouped;
    double lam_a;
    const double *basis, *Q, *G, *T, *w, *count;
    int *cls;
} Scaled;

/* the scaled layout's arrays in the buffer (cls: J ints, filled here) */
static void read_scaled(const double *buf, const Layout *L, Scaled *Z, int *cls) {
    Z->p = L->p; Z->m1 = L->p + 1; Z->n_classes = (int)buf[11]; Z->J = L->nL;
    Z->grouped = buf[12] > 0; Z->lam_a = L->lam_a; Z->basis = L->basis;
    size_t n2 = (size_t)Z->m1 * Z->m1, at = HEADER + L->p + (size_t)L->R * L->p
                + (size_t)L->K * n2;
    Z->Q = buf + at; at += Z->grouped ? 9 * (size_t)Z->J * n2 : 0;
    Z->G = buf + at; at += Z->grouped ? 0 : 3 * (size_t)Z->J * Z->m1;
    Z->T = buf + at; Z->w = Z->T + Z->J;
    const double *c = Z->w + Z->J;
    Z->count = c + Z->J;
    for (int i = 0; i < Z->J; i++) cls[i] = (int)c[i];
    Z->cls = cls;
}

/* marginal_likelihood_numba._scaled_S: S ((p+1)^2) for the class precisions v, and per
 * group u, D, den = u D + lam_a s, kappa; g (J x (p+1)) when per unit. work: n2 + 9 J + 4 K
 * + J (p+1) doubles */
static void scaled_S(const Scaled *Z, double s, double rho, const double *v, double *S,
                     double *g, double *u, double *D, double *den, double *kappa,
                     double *work) {
    int K = Z->n_classes, J = Z->J, m1 = Z->m1, n2 = m1 * m1;
    double a[4] = {1.0, -rho, rho * rho, 1 - rho * rho};
    double c[3] = {1 - rho * rho, 1 - rho, -rho * (1 - rho)};
    double *tmp = work, *wq = tmp + n2, *wk = wq + 9 * J, *gk = wk + 4 * K;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < 4; j++) wk[4 * k + j] = v[k] * a[j];
    gemv_basis('N', Z->basis, 4 * K, n2, wk, S);
    for (int i = 0; i < J; i++) {
        u[i] = Z->w[i] * v[Z->cls[i]];
        D[i] = (1 - rho * rho) + (Z->T[i] - 1) * (1 - rho) * (1 - rho);
        den[i] = u[i] * D[i] + Z->lam_a * s;
        kappa[i] = u[i] * u[i] / den[i];
    }
    if (isinf(Z->lam_a)) return;
    if (Z->grouped) {
        for (int i = 0; i < J; i++)
            for (int x = 0; x < 3; x++)
                for (int y = 0; y < 3; y++) wq[9 * i + 3 * x + y] = -kappa[i] * c[x] * c[y];
        gemv_basis('N', Z->Q, 9 * J, n2, wq, tmp);
        for (int i = 0; i < n2; i++) S[i] += tmp[i];
        return;
    }
    for (int i = 0; i < J; i++) {
        const double *Gi = Z->G + (size_t)i * 3 * m1;
        for (int x = 0; x < m1; x++) {
            g[i * m1 + x] = c[0] * Gi[x] + c[1] * Gi[m1 + x] + c[2] * Gi[2 * m1 + x];
            gk[i * m1 + x] = kappa[i] * g[i * m1 + x];
        }
    }
    gemm_rm('T', 'N', m1, m1, J, gk, m1, g, m1, tmp, m1); /* sum_i kappa_i g_i g_i' */
    for (int i = 0; i < n2; i++) S[i] -= tmp[i];
}

static size_t scaled_work_size(const Scaled *Z) {
    size_t n2 = (size_t)Z->m1 * Z->m1, J = Z->J;
    return n2 + 9 * J + 4 * (size_t)Z->n_classes + J * Z->m1;
}

/* marginal_likelihood_numba.scaled_loglik_grad_nb: (logp, d/dsigma, d/drho, d/dlam_phi,
 * d/dv) with per-unit precision scales. Returns 0 (logp -inf) outside the support. */
static int scaled_loglik_grad(const Scaled *Z, double n_obs, double sigma, double rho,
                              const double *lam_phi, const double *v, double *logp,
                              double *g_sigma, double *g_rho, double *g_lam, double *g_v,
                              double *ws) {
    int p = Z->p, m1 = Z->m1, K = Z->n_classes, J = Z->J, n2 = m1 * m1;
    double lam_a = Z->lam_a, s = sigma * sigma;
    memset(g_lam, 0, sizeof(double) * p);
    memset(g_v, 0, sizeof(double) * K);
    *logp = -INFINITY; *g_sigma = 0.0; *g_rho = 0.0;
    if (!(fabs(rho) < 1.0 && s > 0.0 && s < INFINITY)) return 0;
    for (int i = 0; i < p; i++) if (!isfinite(lam_phi[i])) return 0;
    for (int k = 0; k < K; k++) if (!(v[k] > 0.0 && isfinite(v[k]))) return 0;
    double *S = ws; ws += n2;
    double *V = ws; ws += n2;
    double *g = ws; ws += (size_t)J * m1;
    double *gV = ws; ws += (size_t)J * m1;
    double *u = ws; ws += J;
    double *D = ws; ws += J;
    double *den = ws; ws += J;
    double *kappa = ws; ws += J;
    double *qf = ws; ws += J;
    double *r = ws; ws += J;
    double *trQ = ws; ws += 9 * (size_t)J;
    double *P = ws; ws += (size_t)p * p;
    double *b = ws; ws += p;
    double *mean = ws; ws += p;
    double *tr_all = ws; ws += 4 * (size_t)K;
    double *tr_v = ws; ws += K;
    double *work = ws;
    scaled_S(Z, s, rho, v, S, g, u, D, den, kappa, work);
    double half_logdet = 0.0;
    if (!conditional_moments(S, p, s, lam_phi, P, b, mean, V, g_lam, &half_logdet)) return 0;
    int no_unit = isinf(lam_a);
    double n_units = 0.0, unit_terms = 0.0, t_log_u = 0.0, log_lam = 0.0;
    for (int i = 0; i < J; i++) {
        n_units += Z->count[i];
        t_log_u += 0.5 * Z->count[i] * Z->T[i] * log(u[i]);
        if (!no_unit) unit_terms += 0.5 * Z->count[i] * (log(lam_a) - log(u[i] * D[i] / s + lam_a));
    }
    for (int i = 0; i < p; i++) log_lam += log(lam_phi[i]);
    *logp = (-0.5 * n_obs * (LOG_2PI + log(s)) + t_log_u + 0.5 * n_units * log(1 - rho * rho)
             + unit_terms + 0.5 * log_lam - half_logdet - 0.5 * S[p * m1 + p] / s
             + 0.5 * dot(b, mean, p));
    gemv_basis('T', Z->basis, 4 * K, n2, V, tr_all); /* tr(V A_j), every class and part */
    double a[4] = {1.0, -rho, rho * rho, 1 - rho * rho};
    double da[4] = {0.0, -1.0, 2 * rho, -2 * rho};
    double tr_S = dot(V, S, n2), tr_rho = 0.0, tr_s = 0.0;
    for (int k = 0; k < K; k++) {
        tr_v[k] = 0.0;
        for (int j = 0; j < 4; j++) {
            tr_v[k] += a[j] * tr_all[4 * k + j];
            tr_rho += v[k] * da[j] * tr_all[4 * k + j];
        }
    }
    double g_s_unit = 0.0, g_rho_unit = 0.0;
    if (!no_unit) {
        double c[3] = {1 - rho * rho, 1 - rho, -rho * (1 - rho)};
        double dc[3] = {-2 * rho, -1.0, -(1 - 2 * rho)};
        for (int i = 0; i < J; i++) qf[i] = r[i] = 0.0;
        if (Z->grouped) { /* per group, from tr(V Q_j(a, b)) */
            gemv_basis('T', Z->Q, 9 * J, n2, V, trQ);
            for (int i = 0; i < J; i++)
                for (int x = 0; x < 3; x++)
                    for (int y = 0; y < 3; y++) {
                        qf[i] += c[x] * c[y] * trQ[9 * i + 3 * x + y];
                        r[i] += dc[x] * c[y] * trQ[9 * i + 3 * x + y];
                    }
        } else {
            gemm_rm('N', 'N', J, m1, m1, g, m1, V, m1, gV, m1);
            for (int i = 0; i < J; i++) {
                const double *Gi = Z->G + (size_t)i * 3 * m1;
                for (int x = 0; x < m1; x++) {
                    qf[i] += gV[i * m1 + x] * g[i * m1 + x];
                    r[i] += gV[i * m1 + x] * (dc[0] * Gi[x] + dc[1] * Gi[m1 + x]
                                              + dc[2] * Gi[2 * m1 + x]);
                }
            }
        }
        for (int i = 0; i < J; i++) {
            double dDi = -2 * rho - 2 * (Z->T[i] - 1) * (1 - rho), d2 = den[i] * den[i];
            tr_s += u[i] * u[i] * lam_a / d2 * qf[i];
            tr_rho -= -(u[i] * u[i] * u[i]) * dDi / d2 * qf[i] + 2 * kappa[i] * r[i];
            tr_v[Z->cls[i]] -= u[i] * (u[i] * D[i] + 2 * lam_a * s) / d2 * Z->w[i] * qf[i];
            g_s_unit += 0.5 * Z->count[i] * u[i] * D[i] / (s * den[i]);
            g_rho_unit -= 0.5 * Z->count[i] * u[i] * dDi / den[i];
            g_v[Z->cls[i]] -= 0.5 * Z->count[i] * Z->w[i] * D[i] / den[i];
        }
    }
    for (int i = 0; i < J; i++) g_v[Z->cls[i]] += 0.5 * Z->count[i] * Z->T[i] / v[Z->cls[i]];
    for (int k = 0; k < K; k++) g_v[k] -= 0.5 * tr_v[k] / s;
    double g_s = -0.5 * n_obs / s + g_s_unit - 0.5 * tr_s / s + 0.5 * tr_S / (s * s);
    *g_sigma = g_s * 2 * sigma;
    *g_rho = -n_units * rho / (1 - rho * rho) + g_rho_unit - 0.5 * tr_rho / s;
    return 1;
}

static size_t scaled_workspace_size(const Scaled *Z) {
    size_t n2 = (size_t)Z->m1 * Z->m1, J = Z->J, p = Z->p;
    return 2 * n2 + 2 * J * Z->m1 + 6 * J + 9 * J + p * p + 2 * p + 5 * (size_t)Z->n_classes
           + scaled_work_size(Z) + 16;
}

/* nutpie's logp callback on the kernel the buffer is packed for (block-arrow if header
 * slot 13 > 0, else dense): x = [log sigma, (logit rho'), log sd_1, ...]; status 0 ok,
 * 3 gradient not finite, 4 value not finite, 5 out of memory. */
static int64_t logp_callback(uint64_t dim, const double *x, double *out, double *logp_out,
                             const double *buf) {
    Layout L;
    Scaled Z;
    int block = buf[13] > 0, scaled = buf[11] > 0;
    int n_idx = block ? (int)buf[8] + (int)buf[15] + 1 : scaled ? (int)buf[10] : 1;
    int *idx = malloc(sizeof(int) * n_idx);
    if (!idx) return 5;
    read_layout(buf, &L, idx);
    if (scaled) read_scaled(buf, &L, &Z, idx);
    int R = L.R, p = L.p, n_classes = scaled ? Z.n_classes : 0;
    size_t n_ws = block ? workspace_size(&L)
                  : scaled ? scaled_workspace_size(&Z) : dense_workspace_size(&L);
    double *lam_phi = malloc(sizeof(double) * (p + R + p + 2 * n_classes + n_ws));
    if (!lam_phi) { free(idx); return 5; }
    double *sds = lam_phi + p, *g_lam = sds + R, *v = g_lam + p, *g_v = v + n_classes;
    double *ws = g_v + n_classes;
    double *grad = out;
    for (uint64_t i = 0; i < dim; i++) grad[i] = 0.0;

    /* _hyper_prior */
    double sigma = exp(x[0]);
    double logp = (LOG_HALF_NORMAL_CONST - log(L.sigma_sd)
                   - 0.5 * (sigma / L.sigma_sd) * (sigma / L.sigma_sd) + x[0]);
    double rho = 0.0, drho_dx = 0.0;
    int k = 1;
    if (L.has_rho) {
        double z = x[1];
        double sig = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
        rho = -1.0 + 2.0 * sig;
        drho_dx = 2.0 * sig * (1.0 - sig);
        logp += log(sig) + log1p(-sig);
        grad[1] = 1.0 - 2.0 * sig;
        k = 2;
    }
    memcpy(lam_phi, L.cnst, sizeof(double) * p);
    double gamma_const = L.g_alpha * log(L.g_beta) - lgamma(L.g_alpha);
    for (int r = 0; r < R; r++) {
        sds[r] = exp(x[k + r]);
        const double *mask = L.masks + (size_t)r * p;
        double inv_var = 1.0 / (sds[r] * sds[r]);
        for (int j = 0; j < p; j++) lam_phi[j] += mask[j] * inv_var;
        logp += (gamma_const + (L.g_alpha - 1) * log(sds[r]) - L.g_beta * sds[r] + x[k + r]);
    }

    double ll, g_sig, g_rho;
    if (block) {
        block_loglik_grad(&L, sigma, rho, lam_phi, &ll, &g_sig, &g_rho, g_lam, ws);
    } else if (scaled) {
        /* nutpie_density.scaled_logp_grad: unit_sd_ratio ~ LogNormal(0, 1) on the log
         * scale (Normal(0, 1) with the log Jacobian); class precision v_j = ratio_j^-2 */
        int j0 = k + R;
        v[0] = 1.0;
        for (int j = 1; j < n_classes; j++) {
            double xj = x[j0 + j - 1];
            v[j] = exp(-2.0 * xj);
            logp += -0.5 * xj * xj - 0.5 * LOG_2PI;
        }
        scaled_loglik_grad(&Z, L.n_obs, sigma, rho, lam_phi, v, &ll, &g_sig, &g_rho, g_lam,
                           g_v, ws);
        for (int j = 1; j < n_classes; j++)
            grad[j0 + j - 1] = -x[j0 + j - 1] - 2.0 * v[j] * g_v[j];
    } else {
        dense_loglik_grad(&L, sigma, rho, lam_phi, &ll, &g_sig, &g_rho, g_lam, ws);
    }

    /* _chain_rule */
    logp += ll;
    grad[0] = (-sigma / (L.sigma_sd * L.sigma_sd) + g_sig) * sigma + 1.0;
    if (L.has_rho) grad[1] += g_rho * drho_dx;
    for (int r = 0; r < R; r++) {
        double d_sd = ((L.g_alpha - 1) / sds[r] - L.g_beta
                       - 2.0 / (sds[r] * sds[r] * sds[r]) * dot(g_lam, L.masks + (size_t)r * p, p));
        grad[k + r] = d_sd * sds[r] + 1.0;
    }
    free(lam_phi);
    free(idx);

    /* _store */
    *logp_out = logp;
    for (uint64_t i = 0; i < dim; i++) if (!isfinite(grad[i])) return 3;
    if (!isfinite(logp)) return 4;
    return 0;
}

/* the nutpie callback of every kernel: the buffer says which (header slots 11 and 13) */
int64_t bayesdid_logp(uint64_t dim, const double *x, double *out, double *logp_out,
                      const void *user_data) {
    return logp_callback(dim, x, out, logp_out, (const double *)user_data);
}

/* nutpie's expand callback: [x..., sigma, (rho), sd_1, ...] (the trace layout) */
int64_t bayesdid_expand(uint64_t dim, uint64_t expanded, const double *x, double *out,
                        const void *user_data) {
    const double *buf = (const double *)user_data;
    int has_rho = buf[6] > 0;
    (void)expanded;
    for (uint64_t i = 0; i < dim; i++) out[i] = x[i];
    for (uint64_t i = 0; i < dim; i++)
        out[dim + i] = (has_rho && i == 1) ? -1.0 + 2.0 / (1.0 + exp(-x[i])) : exp(x[i]);
    return 0;
}

/* out = U^-1 v for an upper-triangular U (n x n, row-major; back substitution) */
static void upper_solve(const double *U, int n, const double *v, double *out) {
    for (int i = n - 1; i >= 0; i--) {
        double acc = v[i];
        for (int k = i + 1; k < n; k++) acc -= U[i * n + k] * out[k];
        out[i] = acc / U[i * n + i];
    }
}

/* block_marginal.block_draw_batch_nb: exact draws of phi (rows of out, n_draws x p) given
 * each hyperparameter draw, from standard normals z (n_draws x p): phi_A = m_A + U^-1 z_A
 * with U'U the Schur complement, then phi_g = C_g^-1 (b_g - B_g phi_A) + U_g^-1 z_g.
 * A row whose H is not positive definite is NaN. Returns 0, or 5 if out of memory. */
int64_t bayesdid_block_draws(int64_t p, int64_t pa, int64_t n_groups, int64_t K, int64_t nL,
                             int64_t nc, const double *basis, const int64_t *head,
                             const int64_t *tail, const int64_t *starts,
                             const double *run_lengths, double lam_a, int64_t n_draws,
                             const double *sigma, const double *rho, const double *lam_phi,
                             const double *z, double *out) {
    Layout L;
    memset(&L, 0, sizeof(L));
    L.p = (int)p; L.pa = (int)pa; L.pc = (int)(p - pa); L.n_groups = (int)n_groups;
    L.K = (int)K; L.nL = (int)nL; L.n_compact = (int)nc; L.lam_a = lam_a;
    L.basis = basis; L.run_lengths = run_lengths;
    int *idx = malloc(sizeof(int) * (p + n_groups + 1));
    if (!idx) return 5;
    for (int i = 0; i < pa; i++) idx[i] = (int)head[i];
    for (int i = 0; i < p - pa; i++) idx[pa + i] = (int)tail[i];
    for (int i = 0; i <= n_groups; i++) idx[p + i] = (int)starts[i];
    L.head = idx; L.tail = idx + pa; L.starts = idx + p;
    int a1 = L.pa + 1, n_cfac = L.n_compact - a1 * a1 - L.pc * a1;
    double *ws = malloc(sizeof(double) * (workspace_size(&L) + n_cfac + 3 * (size_t)p));
    if (!ws) { free(idx); return 5; }
    double *cfac = ws + workspace_size(&L), *y = cfac + n_cfac, *phi_a = y + p, *noise = phi_a + p;
    Work W;
    carve(&L, ws, &W);
    for (int64_t d = 0; d < n_draws; d++) {
        const double *lam = lam_phi + d * p, *zd = z + d * p;
        double *od = out + d * p;
        double s = sigma[d] * sigma[d], half;
        weights(run_lengths, L.nL, lam_a, s, rho[d], 1, W.w, W.D, W.dD);
        gemv_basis('N', basis, L.K, L.n_compact, W.w, W.Sc);
        if (!factor(&L, s, lam, &W, cfac, &half)) {
            for (int i = 0; i < p; i++) od[i] = NAN;
            continue;
        }
        const double *U = W.P;
        for (int i = 0; i < pa; i++) { /* U'y = r (forward), then U phi_A = y + z_A */
            double acc = W.r[i];
            for (int k = 0; k < i; k++) acc -= U[k * pa + i] * y[k];
            y[i] = acc / U[i * pa + i];
        }
        for (int i = 0; i < pa; i++) y[i] += zd[L.head[i]];
        upper_solve(U, (int)pa, y, phi_a);
        int at = 0;
        for (int g = 0; g < L.n_groups; g++) {
            int lo = L.starts[g], n = L.starts[g + 1] - L.starts[g];
            double *zg = y; /* y is free again: the group's normals */
            for (int i = 0; i < n; i++) zg[i] = zd[L.tail[lo + i]];
            upper_solve(cfac + at, n, zg, noise);
            for (int i = 0; i < n; i++) {
                int c = lo + i;
                const double *xc = W.X + (size_t)c * a1;
                double acc = xc[pa] + noise[i];
                for (int j = 0; j < pa; j++) acc -= xc[j] * phi_a[j];
                od[L.tail[c]] = acc;
            }
            at += n * n;
        }
        for (int i = 0; i < pa; i++) od[L.head[i]] = phi_a[i];
    }
    free(ws);
    free(idx);
    return 0;
}

/* marginal_likelihood_numba._conditional_draw: one exact draw of phi from the cross-products
 * S ((p+1)^2, last column X'y): H = S_pp / s + diag(lam), phi = H^-1 b + U^-1 z with U'U = H
 * (U and y: p^2 and p doubles of scratch). Returns 0 if H is not positive definite. */
static int draw_from_S(const double *S, int p, double s, const double *lam, const double *z,
                       double *U, double *y, double *out) {
    int m1 = p + 1;
    double half = 0.0;
    for (int i = 0; i < p; i++) {
        for (int j = 0; j < p; j++) U[i * p + j] = S[i * m1 + j] / s;
        U[i * p + i] += lam[i];
    }
    if (!spd_factor_inverse(U, p, &half, 0)) return 0;
    for (int i = 0; i < p; i++) { /* U'y = b, then U phi = y + z */
        double acc = S[i * m1 + p] / s;
        for (int k = 0; k < i; k++) acc -= U[k * p + i] * y[k];
        y[i] = acc / U[i * p + i];
    }
    for (int i = 0; i < p; i++) y[i] += z[i];
    upper_solve(U, p, y, out);
    return 1;
}

/* marginal_likelihood_numba.conditional_factor_batch_nb: exact draws of phi on the dense
 * basis (rows of out: n_draws x p; NaN where H is not positive definite). Returns 0, or 5
 * if out of memory. */
int64_t bayesdid_dense_draws(int64_t p, int64_t K, int64_t nL, const double *basis,
                             const double *run_lengths, double lam_a, int64_t n_draws,
                             const double *sigma, const double *rho, const double *lam_phi,
                             const double *z, double *out) {
    int64_t m1 = p + 1;
    double *ws = malloc(sizeof(double) * (3 * K + 2 * nL + m1 * m1 + p * p + p + 16));
    if (!ws) return 5;
    double *w = ws, *D = w + 3 * K, *dD = D + nL, *S = dD + nL, *U = S + m1 * m1, *y = U + p * p;
    for (int64_t d = 0; d < n_draws; d++) {
        double s = sigma[d] * sigma[d];
        weights(run_lengths, (int)nL, lam_a, s, rho[d], 0, w, D, dD);
        gemv_basis('N', basis, (int)K, (int)(m1 * m1), w, S);
        if (!draw_from_S(S, (int)p, s, lam_phi + d * p, z + d * p, U, y, out + d * p))
            for (int i = 0; i < p; i++) out[d * p + i] = NAN;
    }
    free(ws);
    return 0;
}

/* marginal_likelihood_numba.scaled_conditional_batch_nb: exact draws of phi with per-unit
 * precision scales, v (n_draws x n_classes) the class precisions of each draw; the arrays
 * are those of marginal_likelihood_numba.scaled_args (Q: 9 J rows when grouped, else G).
 * Returns 0, or 5 if out of memory. */
int64_t bayesdid_scaled_draws(int64_t p, int64_t n_classes, int64_t J, int64_t grouped,
                              const double *basis, const double *Q, const double *G,
                              const double *T, const double *w, const int64_t *cls,
                              double lam_a, int64_t n_draws, const double *sigma,
                              const double *rho, const double *lam_phi, const double *v,
                              const double *z, double *out) {
    Scaled Z;
    Z.p = (int)p; Z.m1 = (int)p + 1; Z.n_classes = (int)n_classes; Z.J = (int)J;
    Z.grouped = grouped != 0; Z.lam_a = lam_a; Z.basis = basis; Z.Q = Q; Z.G = G;
    Z.T = T; Z.w = w; Z.count = NULL;
    size_t m1 = Z.m1, n2 = m1 * m1;
    int *icls = malloc(sizeof(int) * (J > 0 ? J : 1));
    double *ws = malloc(sizeof(double) * (n2 + J * m1 + 4 * J + p * p + p
                                          + scaled_work_size(&Z) + 16));
    if (!icls || !ws) { free(icls); free(ws); return 5; }
    for (int64_t i = 0; i < J; i++) icls[i] = (int)cls[i];
    Z.cls = icls;
    double *S = ws, *g = S + n2, *u = g + J * m1, *D = u + J, *den = D + J, *kappa = den + J;
    double *U = kappa + J, *y = U + p * p, *work = y + p;
    for (int64_t d = 0; d < n_draws; d++) {
        double s = sigma[d] * sigma[d];
        scaled_S(&Z, s, rho[d], v + d * n_classes, S, g, u, D, den, kappa, work);
        if (!draw_from_S(S, (int)p, s, lam_phi + d * p, z + d * p, U, y, out + d * p))
            for (int i = 0; i < p; i++) out[d * p + i] = NAN;
    }
    free(ws);
    free(icls);
    return 0;
}
