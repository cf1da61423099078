//! RMSNorm: y = x / sqrt(mean(x²) + eps) * w, per token row.
//!
//! With r = (mean(x²) + eps)^(-1/2) and d = dim, for one row:
//!   dy/dx:  dx_j = r w_j dy_j - (r³ / d) x_j Σ_i dy_i w_i x_i
//!   dy/dw:  dw_i += dy_i x_i r

use crate::Float;

/// x: [n][dim], w: [dim] → y: [n][dim], inv_rms: [n] (r per row, kept for the backward).
pub fn forward<F: Float>(x: &[F], w: &[F], eps: F, y: &mut [F], inv_rms: &mut [F]) {
    let dim = w.len();
    assert!(dim > 0 && x.len().is_multiple_of(dim) && y.len() == x.len());
    assert_eq!(inv_rms.len(), x.len() / dim);
    for ((xr, yr), r) in x
        .chunks_exact(dim)
        .zip(y.chunks_exact_mut(dim))
        .zip(inv_rms.iter_mut())
    {
        let ms = xr.iter().map(|&v| v * v).sum::<F>() / F::from_usize(dim);
        *r = F::ONE / (ms + eps).sqrt();
        for i in 0..dim {
            yr[i] = xr[i] * *r * w[i];
        }
    }
}

/// x: [n][dim], w: [dim], inv_rms: [n], dy: [n][dim] → dx += [n][dim], dw += [dim] (if given).
pub fn backward<F: Float>(
    x: &[F],
    w: &[F],
    inv_rms: &[F],
    dy: &[F],
    dx: &mut [F],
    mut dw: Option<&mut [F]>,
) {
    let dim = w.len();
    assert!(dim > 0 && x.len().is_multiple_of(dim) && dy.len() == x.len() && dx.len() == x.len());
    assert_eq!(inv_rms.len(), x.len() / dim);
    let d = F::from_usize(dim);
    for (((xr, dyr), dxr), &r) in x
        .chunks_exact(dim)
        .zip(dy.chunks_exact(dim))
        .zip(dx.chunks_exact_mut(dim))
        .zip(inv_rms)
    {
        // s = Σ_i dy_i w_i x_i
        let s: F = (0..dim).map(|i| dyr[i] * w[i] * xr[i]).sum();
        let c = r * r * r / d * s;
        for j in 0..dim {
            dxr[j] += r * w[j] * dyr[j] - c * xr[j];
        }
        if let Some(dw) = dw.as_deref_mut() {
            for i in 0..dim {
                dw[i] += dyr[i] * xr[i] * r;
            }
        }
    }
}
