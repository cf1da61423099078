//! Gradient-check helpers shared by the test files: central finite differences in f64 and the
//! error measure every check uses.
//!
//! err(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, 1e-8)
//! (the worst element's error relative to the gradient's scale, so a tiny component's
//! rounding cannot dominate). With h = 1e-5 the central difference's truncation error is
//! ~h² ≈ 1e-10 of the scale and its rounding ~1e-16 / h ≈ 1e-11, so a correct backward gives
//! err ≈ 1e-9 or less; the bound is 1e-6, and a wrong sign or a dropped term gives err ≳ 1e-2.

#![allow(dead_code)]

pub use ondo_train::Rng;

/// The finite-difference step.
pub const H: f64 = 1e-5;
/// The bound on `err` for f64 gradients.
pub const TOL: f64 = 1e-6;

pub fn err(a: &[f64], n: &[f64]) -> f64 {
    assert_eq!(a.len(), n.len());
    let scale = a.iter().chain(n).fold(1e-8f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(n)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// Asserts err(analytic, numeric) < TOL and that the gradient is not trivially zero; prints
/// the figure (`cargo test -- --nocapture` shows them all).
pub fn check(name: &str, analytic: &[f64], numeric: &[f64]) -> f64 {
    let e = err(analytic, numeric);
    let scale = numeric.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!(
        "gradcheck {name:<32} n={:<5} scale={scale:.3e} err={e:.3e}",
        analytic.len()
    );
    assert!(
        scale > 1e-6,
        "{name}: the numeric gradient is ~0, the check would be vacuous"
    );
    assert!(e < TOL, "{name}: err {e:e} ≥ {TOL:e}");
    e
}

/// Central differences of `loss` with respect to every element of `x`.
pub fn numeric(x: &[f64], mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + H;
            let lp = loss(&xp);
            xp[i] = x[i] - H;
            let lm = loss(&xp);
            xp[i] = x[i];
            (lp - lm) / (2.0 * H)
        })
        .collect()
}

/// Central differences of `loss(obj)` with respect to every element of the tensors `get`
/// returns, one Vec per tensor. `obj` is perturbed in place and restored.
pub fn numeric_tensors<T>(
    obj: &mut T,
    get: impl Fn(&mut T) -> Vec<&mut [f64]>,
    loss: impl Fn(&T) -> f64,
) -> Vec<Vec<f64>> {
    let lens: Vec<usize> = get(obj).iter().map(|t| t.len()).collect();
    let mut out = Vec::new();
    for (ti, &len) in lens.iter().enumerate() {
        let mut g = Vec::with_capacity(len);
        for i in 0..len {
            let orig = get(obj)[ti][i];
            get(obj)[ti][i] = orig + H;
            let lp = loss(obj);
            get(obj)[ti][i] = orig - H;
            let lm = loss(obj);
            get(obj)[ti][i] = orig;
            g.push((lp - lm) / (2.0 * H));
        }
        out.push(g);
    }
    out
}

/// `len` values uniform in [-1, 1) from `seed`.
pub fn rand(len: usize, seed: u64) -> Vec<f64> {
    Rng::new(seed).vec_uniform(len, -1.0, 1.0)
}

/// Σ c_i y_i: the scalar loss whose gradient with respect to y is c.
pub fn dotc(c: &[f64], y: &[f64]) -> f64 {
    assert_eq!(c.len(), y.len());
    c.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Asserts a gradient is exactly zero (where the loss cannot depend on the parameter).
pub fn check_zero(name: &str, analytic: &[f64]) {
    eprintln!("gradcheck {name:<32} n={:<5} exactly zero", analytic.len());
    assert!(
        analytic.iter().all(|&g| g == 0.0),
        "{name}: expected a zero gradient"
    );
}
