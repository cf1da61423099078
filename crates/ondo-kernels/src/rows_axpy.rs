//! `out[c] += Σ_j g[j] · rows[j][c]` over eight rows at once: the inner step of the
//! transposed product a training backward pass runs through a frozen weight
//! (`ondo_model::grad::matmul_t`). Each output element is loaded and stored once per eight
//! rows; AVX2/FMA when the CPU has it, with the scalar twin as the reference.

/// Rows per call.
pub const ROWS: usize = 8;

/// `block`: [8][cols] row-major, `out`: [cols].
pub fn add_scaled_rows8(out: &mut [f32], block: &[f32], g: &[f32; ROWS]) {
    let cols = out.len();
    assert_eq!(block.len(), ROWS * cols, "block is [8][cols]");
    #[cfg(target_arch = "x86_64")]
    if crate::quant::avx2_available() {
        // SAFETY: AVX2/FMA detected; lengths checked above.
        unsafe { avx2(out, block, g) };
        return;
    }
    add_scaled_rows8_scalar(out, block, g);
}

/// The scalar twin of [`add_scaled_rows8`] (rows summed in order).
pub fn add_scaled_rows8_scalar(out: &mut [f32], block: &[f32], g: &[f32; ROWS]) {
    let cols = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        for (j, gj) in g.iter().enumerate() {
            *o += gj * block[j * cols + c];
        }
    }
}

/// # Safety
/// AVX2 and FMA available; `block.len() == 8 * out.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(out: &mut [f32], block: &[f32], g: &[f32; ROWS]) {
    use std::arch::x86_64::*;
    let cols = out.len();
    let main = cols / 8 * 8;
    let gv: [__m256; ROWS] = std::array::from_fn(|j| _mm256_set1_ps(g[j]));
    let (o, b) = (out.as_mut_ptr(), block.as_ptr());
    let mut c = 0;
    while c < main {
        let mut acc = _mm256_loadu_ps(o.add(c));
        for (j, gj) in gv.iter().enumerate() {
            acc = _mm256_fmadd_ps(*gj, _mm256_loadu_ps(b.add(j * cols + c)), acc);
        }
        _mm256_storeu_ps(o.add(c), acc);
        c += 8;
    }
    for c in main..cols {
        for (j, gj) in g.iter().enumerate() {
            *o.add(c) = gj.mul_add(*b.add(j * cols + c), *o.add(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scalar_twin() {
        for cols in [0usize, 1, 7, 8, 9, 31, 576] {
            let block: Vec<f32> = (0..8 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let g: [f32; 8] = std::array::from_fn(|j| (j as f32 - 3.5) * 0.25);
            let mut a: Vec<f32> = (0..cols).map(|i| i as f32 * 0.01).collect();
            let mut b = a.clone();
            add_scaled_rows8(&mut a, &block, &g);
            add_scaled_rows8_scalar(&mut b, &block, &g);
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{cols}: {x} vs {y}"
                );
            }
        }
    }
}
