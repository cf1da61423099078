//! Every op's backward against central finite differences of its forward, in f64, on odd sizes
//! (dims not powers of two, 1 and 5 tokens, 4 query heads over 2 kv heads, rope_dim <
//! head_dim). Each op's scalar loss is L = Σ c·y for a fixed random c, so dy = c.
//! The error measure and its bound are in `common/mod.rs`.

mod common;

use common::{check, dotc, numeric, rand};
use ondo_train::ops::attention::{self, AttnShape};
use ondo_train::ops::rope::RopeTable;
use ondo_train::ops::{cross_entropy, embedding, linear, lora, rmsnorm, swiglu};
use ondo_train::{Dense, Lora};

const GQA: AttnShape = AttnShape {
    n_heads: 4,
    n_kv_heads: 2,
    head_dim: 6,
};

#[test]
fn rmsnorm_grads() {
    let (dim, eps) = (7, 1e-5);
    for n in [1, 5] {
        let (x, w, c) = (rand(n * dim, 1), rand(dim, 2), rand(n * dim, 3));
        let f = |x: &[f64], w: &[f64]| {
            let (mut y, mut r) = (vec![0.0; x.len()], vec![0.0; n]);
            rmsnorm::forward(x, w, eps, &mut y, &mut r);
            (dotc(&c, &y), r)
        };
        let r = f(&x, &w).1;
        let (mut dx, mut dw) = (vec![0.0; n * dim], vec![0.0; dim]);
        rmsnorm::backward(&x, &w, &r, &c, &mut dx, Some(&mut dw));
        check(
            &format!("rmsnorm dx n={n}"),
            &dx,
            &numeric(&x, |x| f(x, &w).0),
        );
        check(
            &format!("rmsnorm dw n={n}"),
            &dw,
            &numeric(&w, |w| f(&x, w).0),
        );
    }
}

#[test]
fn rope_grads() {
    let width = GQA.q_dim(); // 4 heads × 6, 4 of 6 dims rotated
    let rope = RopeTable::<f64>::new(6, 4, 10000.0, 16);
    for (n, pos0) in [(1, 0), (5, 0), (5, 7)] {
        let (x, c) = (rand(n * width, 4), rand(n * width, 5));
        let f = |x: &[f64]| {
            let mut y = x.to_vec();
            rope.forward(&mut y, width, pos0);
            dotc(&c, &y)
        };
        let mut dx = c.clone();
        rope.backward(&mut dx, width, pos0);
        check(&format!("rope dx n={n} pos0={pos0}"), &dx, &numeric(&x, f));
    }
}

#[test]
fn rope_forward_is_the_normal_mode_rotation() {
    // theta_i = pos · base^(-2i/rope_dim) on pairs (2i, 2i+1); dims ≥ rope_dim untouched.
    let (hd, rd, base) = (6, 4, 10000.0f64);
    let rope = RopeTable::<f64>::new(hd, rd, base, 8);
    let x = rand(3 * 2 * hd, 6); // 3 tokens × 2 heads
    let mut y = x.clone();
    rope.forward(&mut y, 2 * hd, 4);
    for t in 0..3 {
        for h in 0..2 {
            let o = t * 2 * hd + h * hd;
            for i in 0..rd / 2 {
                let th = (4 + t) as f64 * base.powf(-2.0 * i as f64 / rd as f64);
                let (a, b) = (x[o + 2 * i], x[o + 2 * i + 1]);
                assert!((y[o + 2 * i] - (a * th.cos() - b * th.sin())).abs() < 1e-12);
                assert!((y[o + 2 * i + 1] - (a * th.sin() + b * th.cos())).abs() < 1e-12);
            }
            assert_eq!(y[o + rd..o + hd], x[o + rd..o + hd]);
        }
    }
}

#[test]
fn attention_grads() {
    let s = GQA;
    for n in [1, 5] {
        let q = rand(n * s.q_dim(), 7);
        let (k, v) = (rand(n * s.kv_dim(), 8), rand(n * s.kv_dim(), 9));
        let c = rand(n * s.q_dim(), 10);
        let f = |q: &[f64], k: &[f64], v: &[f64]| {
            let mut out = vec![0.0; q.len()];
            let mut p = vec![0.0; s.n_heads * n * n];
            attention::forward(s, q, k, v, &mut out, &mut p);
            (dotc(&c, &out), p)
        };
        let p = f(&q, &k, &v).1;
        let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        attention::backward(s, &q, &k, &v, &p, &c, &mut dq, &mut dk, &mut dv);
        if n == 1 {
            // one token: the softmax of one score is 1 whatever q and k are
            assert!(dq.iter().chain(&dk).all(|&g| g == 0.0));
        } else {
            check(
                &format!("attention dq n={n}"),
                &dq,
                &numeric(&q, |q| f(q, &k, &v).0),
            );
            check(
                &format!("attention dk n={n}"),
                &dk,
                &numeric(&k, |k| f(&q, k, &v).0),
            );
        }
        check(
            &format!("attention dv n={n}"),
            &dv,
            &numeric(&v, |v| f(&q, &k, v).0),
        );
    }
}

#[test]
fn attention_forward_is_causal_grouped_softmax() {
    let (s, n) = (GQA, 5);
    let (q, k, v) = (
        rand(n * s.q_dim(), 11),
        rand(n * s.kv_dim(), 12),
        rand(n * s.kv_dim(), 13),
    );
    let mut out = vec![0.0; q.len()];
    let mut p = vec![0.0; s.n_heads * n * n];
    attention::forward(s, &q, &k, &v, &mut out, &mut p);
    // token 0 attends only to itself: its output is v_0 of its kv head (heads 0,1 → 0; 2,3 → 1)
    for h in 0..4 {
        let g = h / 2;
        assert_eq!(out[h * 6..(h + 1) * 6], v[g * 6..(g + 1) * 6]);
    }
    // a direct evaluation of head 3, token 4
    let (h, i, g) = (3, 4, 1);
    let sc: Vec<f64> = (0..=i)
        .map(|j| linear::dot(&q[i * 24 + h * 6..][..6], &k[j * 12 + g * 6..][..6]) / 6f64.sqrt())
        .collect();
    let z: f64 = sc.iter().map(|x| x.exp()).sum();
    for d in 0..6 {
        let o: f64 = (0..=i)
            .map(|j| sc[j].exp() / z * v[j * 12 + g * 6 + d])
            .sum();
        assert!((out[i * 24 + h * 6 + d] - o).abs() < 1e-12);
    }
    // changing a later token leaves earlier outputs as they were
    let mut k2 = k.clone();
    k2[4 * 12] += 1.0;
    let mut out2 = vec![0.0; q.len()];
    attention::forward(s, &q, &k2, &v, &mut out2, &mut p);
    assert_eq!(out[..4 * 24], out2[..4 * 24]);
    assert_ne!(out[4 * 24..], out2[4 * 24..]);
}

#[test]
fn swiglu_grads() {
    let len = 5 * 13;
    let (g, u, c) = (rand(len, 14), rand(len, 15), rand(len, 16));
    let f = |g: &[f64], u: &[f64]| {
        let mut h = vec![0.0; len];
        swiglu::forward(g, u, &mut h);
        dotc(&c, &h)
    };
    let (mut dg, mut du) = (vec![0.0; len], vec![0.0; len]);
    swiglu::backward(&g, &u, &c, &mut dg, &mut du);
    check("swiglu dgate", &dg, &numeric(&g, |g| f(g, &u)));
    check("swiglu dup", &du, &numeric(&u, |u| f(&g, u)));
}

#[test]
fn linear_grads() {
    let (n_in, n_out) = (7, 5);
    for n in [1, 5] {
        let (x, c) = (rand(n * n_in, 17), rand(n * n_out, 18));
        let w = Dense::new(n_out, n_in, rand(n_out * n_in, 19));
        let f = |x: &[f64], w: &[f64]| {
            let mut y = vec![0.0; n * n_out];
            linear::forward(&Dense::new(n_out, n_in, w.to_vec()), x, &mut y);
            dotc(&c, &y)
        };
        let (mut dx, mut dw) = (vec![0.0; x.len()], w.zeros_like());
        linear::backward_x(&w, &c, &mut dx);
        linear::backward_w(&x, &c, &mut dw);
        check(
            &format!("linear dx n={n}"),
            &dx,
            &numeric(&x, |x| f(x, &w.w)),
        );
        check(
            &format!("linear dW n={n}"),
            &dw.w,
            &numeric(&w.w, |ww| f(&x, ww)),
        );
    }
}

#[test]
fn lora_grads() {
    let (n_in, n_out, r) = (7, 5, 3);
    let w = Dense::new(n_out, n_in, rand(n_out * n_in, 20));
    let mut l = Lora::<f64>::new(n_in, n_out, r, 6.0, 21);
    l.b.w = rand(n_out * r, 22); // B ≠ 0, or dA would be 0
    for n in [1, 5] {
        let (x, c) = (rand(n * n_in, 23), rand(n * n_out, 24));
        let f = |l: &Lora<f64>, x: &[f64]| {
            let (mut y, mut xa) = (vec![0.0; n * n_out], vec![0.0; n * r]);
            lora::forward(&w, l, x, &mut y, &mut xa);
            (dotc(&c, &y), xa)
        };
        let xa = f(&l, &x).1;
        let (mut dx, mut g) = (vec![0.0; x.len()], l.zeros_like());
        lora::backward(&w, &l, &x, &xa, &c, &mut dx, &mut g);
        check(&format!("lora dx n={n}"), &dx, &numeric(&x, |x| f(&l, x).0));
        let na = numeric(&l.a.w, |a| {
            let mut l2 = l.clone();
            l2.a.w = a.to_vec();
            f(&l2, &x).0
        });
        let nb = numeric(&l.b.w, |b| {
            let mut l2 = l.clone();
            l2.b.w = b.to_vec();
            f(&l2, &x).0
        });
        check(&format!("lora dA n={n}"), &g.a.w, &na);
        check(&format!("lora dB n={n}"), &g.b.w, &nb);
    }
}

#[test]
fn lora_init_is_peft_and_starts_at_the_base() {
    let (n_in, n_out) = (7, 5);
    let l = Lora::<f64>::new(n_in, n_out, 4, 8.0, 7);
    assert_eq!(l.scale, 2.0);
    assert!(l.b.w.iter().all(|&v| v == 0.0));
    let bound = 1.0 / (n_in as f64).sqrt();
    assert!(l.a.w.iter().all(|v| v.abs() <= bound) && l.a.w.iter().any(|&v| v != 0.0));
    assert_eq!(
        l,
        Lora::new(n_in, n_out, 4, 8.0, 7),
        "same seed, same adapter"
    );
    assert_ne!(l.a, Lora::<f64>::new(n_in, n_out, 4, 8.0, 8).a);
    let (w, x) = (Dense::new(n_out, n_in, rand(35, 1)), rand(2 * n_in, 2));
    let (mut y, mut y0, mut xa) = (vec![0.0; 2 * n_out], vec![0.0; 2 * n_out], vec![0.0; 8]);
    lora::forward(&w, &l, &x, &mut y, &mut xa);
    linear::forward(&w, &x, &mut y0);
    assert_eq!(y, y0);
}

#[test]
fn embedding_grads() {
    let (vocab, dim) = (6, 7);
    let tokens = [2u32, 0, 2, 5, 2]; // a repeated token gets the sum of its rows' gradients
    let e = Dense::new(vocab, dim, rand(vocab * dim, 25));
    let c = rand(tokens.len() * dim, 26);
    let f = |ew: &[f64]| {
        let mut x = vec![0.0; tokens.len() * dim];
        embedding::forward(&Dense::new(vocab, dim, ew.to_vec()), &tokens, &mut x);
        dotc(&c, &x)
    };
    let mut de = e.zeros_like();
    embedding::backward(&tokens, &c, &mut de);
    check("embedding dE", &de.w, &numeric(&e.w, f));
    assert!(
        de.row(1).iter().all(|&v| v == 0.0),
        "an unused row gets no gradient"
    );
}

#[test]
fn cross_entropy_grads() {
    let vocab = 7;
    let cases: [(&[u32], &[bool]); 3] = [
        (&[3], &[true]),
        (&[0, 6, 2, 2, 5], &[true, false, true, true, false]),
        (&[1, 1, 1, 1, 1], &[true; 5]),
    ];
    for (targets, mask) in cases {
        let n = targets.len();
        let z: Vec<f64> = rand(n * vocab, 27).iter().map(|v| 3.0 * v).collect();
        let mut dz = vec![0.0; z.len()];
        let loss = cross_entropy::forward_backward(&z, targets, mask, 1.0, &mut dz);
        assert_eq!(loss, cross_entropy::loss(&z, targets, mask));
        check(
            &format!("cross_entropy dz n={n}"),
            &dz,
            &numeric(&z, |z| cross_entropy::loss(z, targets, mask)),
        );
        for t in (0..n).filter(|&t| !mask[t]) {
            assert!(dz[t * vocab..(t + 1) * vocab].iter().all(|&v| v == 0.0));
        }
    }
    // the loss is -log p(target): uniform logits give ln(vocab)
    let l = cross_entropy::loss(&[0.5; 7], &[4], &[true]);
    assert!((l - 7f64.ln()).abs() < 1e-12);
    // no masked position: no loss, no gradient
    let mut dz = vec![1.0; 14];
    assert_eq!(
        cross_entropy::forward_backward(&[0.3; 14], &[1, 2], &[false; 2], 1.0, &mut dz),
        0.0
    );
    assert!(dz.iter().all(|&v| v == 0.0));
}

#[test]
fn a_wrong_backward_fails_the_check() {
    // The checks are not vacuous: swiglu's dgate with its derivative's second term dropped
    // (silu'(g) taken as σ(g)) is caught.
    let len = 13;
    let (g, u, c) = (rand(len, 28), rand(len, 29), rand(len, 30));
    let wrong: Vec<f64> = (0..len)
        .map(|i| c[i] * u[i] / (1.0 + (-g[i]).exp()))
        .collect();
    let num = numeric(&g, |g| {
        let mut h = vec![0.0; len];
        swiglu::forward(g, &u, &mut h);
        dotc(&c, &h)
    });
    let e = common::err(&wrong, &num);
    eprintln!("gradcheck wrong swiglu dgate err={e:.3e} (must fail)");
    assert!(e > 1e-2);
    let flipped: Vec<f64> = num.iter().map(|v| -v).collect();
    assert!(common::err(&flipped, &num) > 1.0);
}
