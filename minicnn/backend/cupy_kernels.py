"""The CuPy backend's kernels (see minicnn/backend/cupy_gpu.py for what each computes and why in gather form):
elementwise and raw CUDA sources compiled by CuPy on first use."""

from __future__ import annotations

import cupy  # imported by cupy_gpu.py only after it has checked that CuPy is there

GEOMETRY = "int32 H, int32 W, int32 C, int32 KH, int32 KW, int32 SH, int32 SW, int32 PT, int32 PL, int32 OH, int32 OW"

im2col = cupy.ElementwiseKernel(
    "raw T x, " + GEOMETRY,
    "T col",
    """
    const int P = KH * KW * C;
    const int r = i / P, q = i % P;
    const int ch = q % C, kk = q / C, kj = kk % KW, ki = kk / KW;
    const int xo = r % OW, t = r / OW, yo = t % OH, b = t / OH;
    const int hh = yo * SH + ki - PT, ww = xo * SW + kj - PL;
    col = (hh >= 0 && hh < H && ww >= 0 && ww < W) ? x[((b * H + hh) * W + ww) * C + ch] : (T)0;
    """,
    "minicnn_im2col",
)


def gather_kernel(params, declarations, tap_body, name):
    """A kernel with one thread per input pixel ``(b, hh, ww, ch)`` that adds up ``tap_body`` over every window
    ``(yo, xo)`` and tap ``(ki, kj)`` that reads this pixel, into ``sum`` (the gather form of col2im and max-pool
    backward: each pixel collects its own contributions, so no two threads write the same place)."""
    return cupy.ElementwiseKernel(
        params + ", " + GEOMETRY,
        "T dx",
        declarations
        + """
    const int ch = i % C, t1 = i / C, ww = t1 % W, t2 = t1 / W, hh = t2 % H, b = t2 / H;
    T sum = 0;
    for (int ki = 0; ki < KH; ++ki) {
        const int t = hh + PT - ki;
        if (t < 0 || t % SH != 0) continue;
        const int yo = t / SH;
        if (yo >= OH) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int u = ww + PL - kj;
            if (u < 0 || u % SW != 0) continue;
            const int xo = u / SW;
            if (xo >= OW) continue;
"""
        + tap_body
        + """        }
    }
    dx = sum;
    """,
        name,
    )


col2im = gather_kernel(
    "raw T cols",
    """
    const int P = KH * KW * C;""",
    """\
            sum += cols[((b * OH + yo) * OW + xo) * P + (ki * KW + kj) * C + ch];
""",
    "minicnn_col2im",
)

maxpool_forward = cupy.ElementwiseKernel(
    "raw T x, " + GEOMETRY,
    "T y, int32 argmax",
    """
    const int ch = i % C, t1 = i / C, xo = t1 % OW, t2 = t1 / OW, yo = t2 % OH, b = t2 / OH;
    T best = 0;
    int best_k = -1;
    for (int ki = 0; ki < KH; ++ki) {
        const int hh = yo * SH + ki - PT;
        if (hh < 0 || hh >= H) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int ww = xo * SW + kj - PL;
            if (ww < 0 || ww >= W) continue;
            const T v = x[((b * H + hh) * W + ww) * C + ch];
            if (best_k < 0 || v > best) { best = v; best_k = ki * KW + kj; }  // strict: first maximum wins
        }
    }
    y = best;
    argmax = best_k;
    """,
    "minicnn_maxpool_forward",
)

maxpool_backward = gather_kernel(
    "raw T dy, raw int32 argmax",
    "",
    """\
            const int o = ((b * OH + yo) * OW + xo) * C + ch;
            if (argmax[o] == ki * KW + kj) sum += dy[o];
""",
    "minicnn_maxpool_backward",
)

# the number of real (not padded) cells of window (yo, xo): what average pooling divides by (Keras's rule)
WINDOW_COUNT = """
            const int h0 = yo * SH - PT, w0 = xo * SW - PL;
            const int rows = (h0 + KH < H ? h0 + KH : H) - (h0 > 0 ? h0 : 0);
            const int cols = (w0 + KW < W ? w0 + KW : W) - (w0 > 0 ? w0 : 0);
"""

avgpool_forward = cupy.ElementwiseKernel(
    "raw T x, " + GEOMETRY,
    "T y",
    """
    const int ch = i % C, t1 = i / C, xo = t1 % OW, t2 = t1 / OW, yo = t2 % OH, b = t2 / OH;"""
    + WINDOW_COUNT
    + """
    T sum = 0;
    for (int ki = 0; ki < KH; ++ki) {
        const int hh = h0 + ki;
        if (hh < 0 || hh >= H) continue;
        for (int kj = 0; kj < KW; ++kj) {
            const int ww = w0 + kj;
            if (ww < 0 || ww >= W) continue;
            sum += x[((b * H + hh) * W + ww) * C + ch];
        }
    }
    y = sum / (T)(rows * cols);
    """,
    "minicnn_avgpool_forward",
)

avgpool_backward = gather_kernel(
    "raw T dy",
    "",
    WINDOW_COUNT
    + """\
            sum += dy[((b * OH + yo) * OW + xo) * C + ch] / (T)(rows * cols);
""",
    "minicnn_avgpool_backward",
)

# NaN stays NaN, as in np.maximum (CUDA's max would return 0 and hide a diverging run from the NaN guard)
bias_relu = cupy.ElementwiseKernel(
    "T z, T bias", "T y", "const T v = z + bias; y = (v > (T)0 || v != v) ? v : (T)0", "minicnn_bias_relu"
)
relu_backward = cupy.ElementwiseKernel("T dy, T y", "T dz", "dz = y > (T)0 ? dy : (T)0", "minicnn_relu_backward")
dropout_mask = cupy.ElementwiseKernel(
    "T u, T rate, T scale", "T m", "m = u >= rate ? scale : (T)0", "minicnn_dropout_mask"
)
dropout_apply = cupy.ElementwiseKernel(
    "T x, T u, T rate, T scale", "T y, T m", "m = u >= rate ? scale : (T)0; y = x * m", "minicnn_dropout_apply"
)

adadelta = cupy.ElementwiseKernel(
    "T g, T lr, T rho, T one_minus_rho, T eps, raw bool gate",
    "T param, T eg2, T edx2",
    """
    if (gate[0]) {   // the NaN guard's flag, read on the device: no host synchronisation
        eg2 = rho * eg2 + one_minus_rho * (g * g);
        const T delta = sqrt(edx2 + eps) / sqrt(eg2 + eps) * g;
        edx2 = rho * edx2 + one_minus_rho * (delta * delta);
        param -= lr * delta;
    }
    """,
    "minicnn_adadelta",
)

# Adam (AdamW with wd != 0), Keras 3's rule as minicnn.optimizers.Adam.update_rule writes it; the AMSGrad variant
# keeps v_hat = max(v_hat, v) (NaN if either is) and divides by its root instead of v's
ADAM_BODY = """
    if (gate[0]) {   // the NaN guard's flag, read on the device: no host synchronisation
        if (wd != (T)0) param = param - param * wd * lr;
        m = m + (g - m) * one_minus_b1;
        v = v + (g * g - v) * one_minus_b2;
        %s
        param = param - m * lr_t / (sqrt(%s) + eps);
    }
    """
ADAM_IN = "T g, T lr, T lr_t, T one_minus_b1, T one_minus_b2, T eps, T wd, raw bool gate"
adam = cupy.ElementwiseKernel(ADAM_IN, "T param, T m, T v", ADAM_BODY % ("", "v"), "minicnn_adam")
adam_amsgrad = cupy.ElementwiseKernel(
    ADAM_IN,
    "T param, T m, T v, T v_hat",
    ADAM_BODY % ("v_hat = (v > v_hat || v != v) ? v : v_hat;", "v_hat"),
    "minicnn_adam_amsgrad",
)

softmax_xent = cupy.ElementwiseKernel(
    "raw T p, raw T y, int32 K, T eps, T inv_n",
    "T row_loss, T row_hit, raw T grad",
    """
    // one thread per sample: Keras's clipped cross-entropy, argmax agreement, and the fused gradient
    T total = 0;
    for (int k = 0; k < K; ++k) total += p[i * K + k];
    T loss = 0, best_p = p[i * K], best_y = y[i * K];
    int arg_p = 0, arg_y = 0;
    for (int k = 0; k < K; ++k) {
        const T pk = p[i * K + k], yk = y[i * K + k];
        T q = pk / total;                       // clip written with comparisons so that NaN stays NaN
        q = q < eps ? eps : (q > (T)1 - eps ? (T)1 - eps : q);
        if (yk != (T)0) loss -= yk * log(q);
        if (pk > best_p) { best_p = pk; arg_p = k; }
        if (yk > best_y) { best_y = yk; arg_y = k; }
        grad[i * K + k] = (pk - yk) * inv_n;
    }
    row_loss = loss;
    row_hit = arg_p == arg_y ? (T)1 : (T)0;
    """,
    "minicnn_softmax_xent",
)

# batch normalization of a matrix (M, C): the (C,) statistics broadcast along the rows, one thread per element
bn_squared_deviation = cupy.ElementwiseKernel(
    "T x, T mean", "T d2", "const T d = x - mean; d2 = d * d", "minicnn_bn_squared_deviation"
)
bn_normalize = cupy.ElementwiseKernel(
    "T x, T mean, T inv_std, T gamma, T beta",
    "T xhat, T y",
    "const T h = (x - mean) * inv_std; xhat = h; y = h * gamma + beta",
    "minicnn_bn_normalize",
)
bn_input_gradient = cupy.ElementwiseKernel(
    "T dy, T xhat, T mean_dy, T mean_dyx, T scale",
    "T dx",
    "T v = dy - mean_dy; v -= xhat * mean_dyx; dx = v * scale",
    "minicnn_bn_input_gradient",
)
