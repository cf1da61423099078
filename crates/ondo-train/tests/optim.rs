//! AdamW against the formula written out by hand in f64, clipping, accumulation, the
//! schedule's values at its key steps, and AdamW converging on a small quadratic.

use ondo_train::optim::{clip_grad_norm, global_norm, AdamW, AdamWConfig, Schedule};

/// One AdamW step on one element, written straight from torch.optim.AdamW's documentation.
fn adamw_by_hand(p: f64, g: f64, m: f64, v: f64, t: i32, lr: f64, c: AdamWConfig) -> [f64; 3] {
    let p = p - lr * c.weight_decay * p;
    let m = c.beta1 * m + (1.0 - c.beta1) * g;
    let v = c.beta2 * v + (1.0 - c.beta2) * g * g;
    let m_hat = m / (1.0 - c.beta1.powi(t));
    let v_hat = v / (1.0 - c.beta2.powi(t));
    [p - lr * m_hat / (v_hat.sqrt() + c.eps), m, v]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-14 * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn adamw_two_steps_match_the_formula() {
    let c = AdamWConfig {
        beta1: 0.8,
        beta2: 0.95,
        eps: 1e-6,
        weight_decay: 0.1,
    };
    let mut p0 = vec![0.5, -1.0, 2.0];
    let mut p1 = vec![-0.25];
    let grads = [[0.1, -0.2, 0.0], [3.0, 0.0, 0.0]];
    let g1 = [[0.3], [-0.05]];
    let mut opt = AdamW::<f64>::new(c, &[3, 1]);
    let mut want: Vec<[f64; 3]> = [0.5, -1.0, 2.0, -0.25].map(|p| [p, 0.0, 0.0]).to_vec();
    for (t, lr) in [(1, 1e-2), (2, 5e-3)] {
        let (mut ga, mut gb) = (grads[t as usize - 1].to_vec(), g1[t as usize - 1].to_vec());
        opt.update(&mut [&mut p0, &mut p1], &[&mut ga, &mut gb], lr)
            .unwrap();
        let g_all = [ga[0], ga[1], ga[2], gb[0]];
        for (w, g) in want.iter_mut().zip(g_all) {
            *w = adamw_by_hand(w[0], g, w[1], w[2], t, lr, c);
        }
        let got = [p0[0], p0[1], p0[2], p1[0]];
        for (i, (w, g)) in want.iter().zip(got).enumerate() {
            assert!(close(w[0], g), "step {t} param {i}: {g} vs {}", w[0]);
        }
        assert!(close(want[3][1], opt.m[1][0]) && close(want[3][2], opt.v[1][0]));
    }
    assert_eq!(opt.step, 2);
}

#[test]
fn adamw_first_step_moves_each_param_by_lr() {
    // At t = 1, m̂ = g and v̂ = g², so without decay every element moves by lr · sign(g).
    let c = AdamWConfig {
        weight_decay: 0.0,
        eps: 1e-12,
        ..Default::default()
    };
    let mut p = vec![1.0f64, 1.0, 1.0];
    let mut g = vec![1e-3, -7.0, 0.0];
    AdamW::new(c, &[3])
        .update(&mut [&mut p], &[&mut g], 0.1)
        .unwrap();
    assert!((p[0] - 0.9).abs() < 1e-9 && (p[1] - 1.1).abs() < 1e-9 && p[2] == 1.0);
}

#[test]
fn adamw_rejects_mismatched_lists() {
    let mut opt = AdamW::<f32>::new(AdamWConfig::default(), &[2]);
    let (mut p, mut g) = (vec![0.0f32; 3], vec![0.0f32; 3]);
    assert!(opt.update(&mut [&mut p], &[&mut g], 0.1).is_err());
    assert!(opt
        .apply(&mut [&mut p], &mut [&mut g], 0, None, 0.1)
        .is_err());
    assert_eq!(opt.step, 0);
}

#[test]
fn clipping_scales_to_the_max_norm_and_returns_the_norm_before() {
    let (mut a, mut b) = (vec![3.0f64], vec![0.0f64, 4.0]);
    let n = clip_grad_norm(&mut [&mut a, &mut b], 1.0);
    assert_eq!(n, 5.0);
    let coef = 1.0 / (5.0 + 1e-6);
    assert!(close(a[0], 3.0 * coef) && close(b[1], 4.0 * coef) && b[0] == 0.0);
    assert!((global_norm(&[&mut a, &mut b]) - 1.0).abs() < 1e-6);
    // under the bound: untouched
    let n = clip_grad_norm(&mut [&mut a, &mut b], 10.0);
    assert!(close(n, 5.0 * coef) && close(a[0], 3.0 * coef));
}

#[test]
fn accumulation_averages_then_clips_then_zeroes() {
    let c = AdamWConfig::default();
    let mut p_acc = vec![0.5f64, -0.5];
    let mut p_ref = p_acc.clone();
    // two micro-batches summed (3, 4) + (1, 0) = (4, 4) → averaged (2, 2), norm √8
    let mut g_sum = vec![4.0f64, 4.0];
    let mut a = AdamW::new(c, &[2]);
    let norm = a
        .apply(&mut [&mut p_acc], &mut [&mut g_sum], 2, Some(1.0), 1e-2)
        .unwrap();
    assert!(close(norm, 8f64.sqrt()));
    assert_eq!(g_sum, [0.0, 0.0]);
    let s = 1.0 / (8f64.sqrt() + 1e-6);
    let mut g_ref = vec![2.0 * s, 2.0 * s];
    AdamW::new(c, &[2])
        .update(&mut [&mut p_ref], &[&mut g_ref], 1e-2)
        .unwrap();
    assert_eq!(p_acc, p_ref);
}

#[test]
fn schedule_key_steps() {
    let s = Schedule {
        peak_lr: 1e-3,
        min_lr: 1e-4,
        warmup: 10,
        total: 110,
    };
    s.validate().unwrap();
    assert!(close(s.lr(0), 1e-4)); // 1/10 of the peak
    assert!(close(s.lr(4), 5e-4));
    assert!(close(s.lr(9), 1e-3)); // warm-up ends at the peak
    assert!(close(s.lr(10), 1e-3)); // cosine starts at the peak
    assert!(close(s.lr(60), 5.5e-4)); // halfway: the mean of peak and floor
    assert!(close(
        s.lr(35),
        1e-4 + 9e-4 * (1.0 + (std::f64::consts::PI / 4.0).cos()) / 2.0
    ));
    assert!(close(s.lr(110), 1e-4) && close(s.lr(10_000), 1e-4));
    let decay: Vec<f64> = (10..=110).map(|t| s.lr(t)).collect();
    assert!(decay.windows(2).all(|w| w[1] <= w[0]));
    // no warm-up: step 0 at the peak
    let s0 = Schedule { warmup: 0, ..s };
    assert!(close(s0.lr(0), 1e-3));
    // invalid ones
    assert!(Schedule { min_lr: 2e-3, ..s }.validate().is_err());
    assert!(Schedule { warmup: 200, ..s }.validate().is_err());
}

#[test]
fn adamw_converges_on_a_quadratic() {
    // f(p) = ½ Σ a_i (p_i − c_i)², badly conditioned (a from 0.01 to 100), in f32.
    let a = [0.01f32, 1.0, 100.0, 3.0];
    let c = [1.0f32, -2.0, 0.5, 3.0];
    let mut p = vec![0.0f32; 4];
    let cfg = AdamWConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let sched = Schedule {
        peak_lr: 0.1,
        min_lr: 0.0,
        warmup: 20,
        total: 2000,
    };
    let mut opt = AdamW::new(cfg, &[4]);
    for t in 0..2000 {
        let mut g: Vec<f32> = (0..4).map(|i| a[i] * (p[i] - c[i])).collect();
        opt.apply(&mut [&mut p], &mut [&mut g], 1, Some(10.0), sched.lr(t))
            .unwrap();
    }
    for i in 0..4 {
        assert!((p[i] - c[i]).abs() < 1e-3, "p = {p:?}, c = {c:?}");
    }
    // with zero gradients only the decoupled decay acts: p ← p · (1 − lr · wd) each step
    let mut q = vec![1.0f64];
    let mut opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.5,
            ..cfg
        },
        &[1],
    );
    for _ in 0..10 {
        opt.apply(&mut [&mut q], &mut [&mut [0.0]], 1, None, 0.1)
            .unwrap();
    }
    assert!(close(q[0], 0.95f64.powi(10)), "{}", q[0]);
}
