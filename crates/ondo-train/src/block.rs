//! One Llama block, forward keeping its activations and backward to the block input, the LoRA
//! adapters and (for full fine-tuning) every weight:
//!
//!   xn1 = rmsnorm(x, attn_norm)
//!   q = rope(xn1 Wqᵀ), k = rope(xn1 Wkᵀ), v = xn1 Wvᵀ        (each projection + its LoRA)
//!   h = x + attention(q, k, v) Woᵀ
//!   xn2 = rmsnorm(h, ffn_norm)
//!   out = h + swiglu(xn2 Wgateᵀ, xn2 Wupᵀ) Wdownᵀ
//!
//! The backward runs the same lines bottom-up; every gradient is added (see `ops`).
//!
//! The rows of x may be several sequences one after another (a batch): the projections, norms
//! and MLP take all rows at once, RoPE and attention run per sequence, each from position pos0.

use crate::ops::attention;
use crate::ops::linear::{self, Dense};
use crate::ops::lora::{self, Lora};
use crate::ops::rmsnorm;
use crate::ops::rope::RopeTable;
use crate::ops::swiglu;
use crate::params::{BlockConfig, BlockLora, BlockWeights, Target};
use crate::Float;

/// What the forward keeps for the backward. n tokens: sequences of `lens` tokens, each from
/// position pos0.
pub struct BlockActs<F> {
    pub n: usize,
    pub lens: Vec<usize>,
    pub pos0: usize,
    /// block input [n][dim]
    pub x: Vec<F>,
    /// 1/rms of x and its normed rows: [n], [n][dim]
    pub r1: Vec<F>,
    pub xn1: Vec<F>,
    /// after rope: [n][q_dim], [n][kv_dim]; v: [n][kv_dim]
    pub q: Vec<F>,
    pub k: Vec<F>,
    pub v: Vec<F>,
    /// per sequence of m tokens, [n_heads][m][m], one after another
    pub probs: Vec<F>,
    /// attention output [n][q_dim]
    pub att: Vec<F>,
    /// after the attention residual [n][dim]
    pub h: Vec<F>,
    /// [n], [n][dim]
    pub r2: Vec<F>,
    pub xn2: Vec<F>,
    /// [n][ffn] each
    pub gate: Vec<F>,
    pub up: Vec<F>,
    pub sw: Vec<F>,
    /// per target, the adapter's x Aᵀ: [n][r] (empty without an adapter)
    pub xa: [Vec<F>; 7],
}

/// y = x Wᵀ (+ scale · (x Aᵀ) Bᵀ): x: [n][in] → (y: [n][out], xa: [n][r] or empty).
/// `linear::forward` is the frozen product a quantized base will replace.
fn proj_forward<F: Float>(w: &Dense<F>, lora: Option<&Lora<F>>, x: &[F]) -> (Vec<F>, Vec<F>) {
    let n = x.len() / w.cols;
    let mut y = vec![F::ZERO; n * w.rows];
    linear::forward(w, x, &mut y);
    let mut xa = Vec::new();
    if let Some(l) = lora {
        xa = vec![F::ZERO; n * l.rank()];
        lora::forward_add(l, x, &mut xa, &mut y);
    }
    (y, xa)
}

/// Backward of [`proj_forward`]: dy: [n][out] → dx += [n][in], adapter grads, and dW if full.
#[allow(clippy::too_many_arguments)]
fn proj_backward<F: Float>(
    w: &Dense<F>,
    lora: Option<&Lora<F>>,
    lora_grad: Option<&mut Lora<F>>,
    full: Option<&mut Dense<F>>,
    x: &[F],
    xa: &[F],
    dy: &[F],
    dx: &mut [F],
) {
    linear::backward_x(w, dy, dx);
    if let Some(l) = lora {
        let g = lora_grad.expect("a gradient holder for every adapter");
        lora::backward_add(l, x, xa, dy, dx, g);
    }
    if let Some(dw) = full {
        linear::backward_w(x, dy, dw);
    }
}

/// Each sequence of `lens` (summing to n) as (first row, length, offset of its attention
/// probabilities).
fn sequences(lens: &[usize], n_heads: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let (mut row, mut p) = (0, 0);
    lens.iter().map(move |&m| {
        let at = (row, m, p);
        row += m;
        p += n_heads * m * m;
        at
    })
}

/// x: [n][dim], sequences of `lens` tokens one after another, each at positions pos0.. →
/// (out: [n][dim], activations).
pub fn block_forward<F: Float>(
    c: &BlockConfig,
    rope: &RopeTable<F>,
    w: &BlockWeights<F>,
    l: &BlockLora<F>,
    x: &[F],
    lens: &[usize],
    pos0: usize,
) -> (Vec<F>, BlockActs<F>) {
    let (dim, s) = (c.dim, c.attn());
    let n = x.len() / dim;
    assert!(n > 0 && x.len() == n * dim);
    assert_eq!(
        lens.iter().sum::<usize>(),
        n,
        "the sequences' lengths add up to n"
    );
    assert!(rope.head_dim == c.head_dim && rope.rope_dim == c.rope_dim);
    let eps = F::from_f64(c.eps);
    // y = projection t of x (+ its adapter), the adapter's x Aᵀ kept in xa[t]
    let mut xa: [Vec<F>; 7] = Default::default();
    let mut proj = |t: Target, x: &[F]| {
        let (y, a) = proj_forward(w.proj(t), l.get(t), x);
        xa[t as usize] = a;
        y
    };

    // attention
    let (mut r1, mut xn1) = (vec![F::ZERO; n], vec![F::ZERO; n * dim]);
    rmsnorm::forward(x, &w.attn_norm, eps, &mut xn1, &mut r1);
    let mut q = proj(Target::Q, &xn1);
    let mut k = proj(Target::K, &xn1);
    let v = proj(Target::V, &xn1);
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let mut att = vec![F::ZERO; n * qd];
    let n_probs: usize = lens.iter().map(|&m| s.n_heads * m * m).sum();
    let mut probs = vec![F::ZERO; n_probs];
    for (r, m, p) in sequences(lens, s.n_heads) {
        let (qr, kr) = (r * qd..(r + m) * qd, r * kvd..(r + m) * kvd);
        rope.forward(&mut q[qr.clone()], qd, pos0);
        rope.forward(&mut k[kr.clone()], kvd, pos0);
        let pr = &mut probs[p..p + s.n_heads * m * m];
        attention::forward(s, &q[qr.clone()], &k[kr.clone()], &v[kr], &mut att[qr], pr);
    }
    let o = proj(Target::O, &att);
    let h: Vec<F> = x.iter().zip(&o).map(|(&a, &b)| a + b).collect();

    // feed-forward
    let (mut r2, mut xn2) = (vec![F::ZERO; n], vec![F::ZERO; n * dim]);
    rmsnorm::forward(&h, &w.ffn_norm, eps, &mut xn2, &mut r2);
    let gate = proj(Target::Gate, &xn2);
    let up = proj(Target::Up, &xn2);
    let mut sw = vec![F::ZERO; n * c.ffn_dim];
    swiglu::forward(&gate, &up, &mut sw);
    let down = proj(Target::Down, &sw);
    let out: Vec<F> = h.iter().zip(&down).map(|(&a, &b)| a + b).collect();

    let acts = BlockActs {
        n,
        lens: lens.to_vec(),
        pos0,
        x: x.to_vec(),
        r1,
        xn1,
        q,
        k,
        v,
        probs,
        att,
        h,
        r2,
        xn2,
        gate,
        up,
        sw,
        xa,
    };
    (out, acts)
}

/// The backward's state: what it reads and the gradient holders it adds into.
struct Back<'a, F> {
    w: &'a BlockWeights<F>,
    l: &'a BlockLora<F>,
    a: &'a BlockActs<F>,
    lg: &'a mut BlockLora<F>,
    full: Option<&'a mut BlockWeights<F>>,
}

impl<F: Float> Back<'_, F> {
    /// Projection t, whose input was x: dy: [n][out] → dx += [n][in], adapter and full grads.
    fn proj(&mut self, t: Target, x: &[F], dy: &[F], dx: &mut [F]) {
        let lg = self.lg.adapters[t as usize].as_mut();
        let dw = self.full.as_deref_mut().map(|f| f.proj_mut(t));
        let xa = &self.a.xa[t as usize];
        proj_backward(self.w.proj(t), self.l.get(t), lg, dw, x, xa, dy, dx);
    }
}

/// dout: [n][dim] → dx: [n][dim]; adds the adapters' gradients into `lg` (same shape as `l`)
/// and, if `full` is given, every weight's gradient into it.
#[allow(clippy::too_many_arguments)]
pub fn block_backward<F: Float>(
    c: &BlockConfig,
    rope: &RopeTable<F>,
    w: &BlockWeights<F>,
    l: &BlockLora<F>,
    a: &BlockActs<F>,
    dout: &[F],
    lg: &mut BlockLora<F>,
    full: Option<&mut BlockWeights<F>>,
) -> Vec<F> {
    let (dim, ffn, s, n) = (c.dim, c.ffn_dim, c.attn(), a.n);
    assert_eq!(dout.len(), n * dim);
    let mut b = Back { w, l, a, lg, full };

    // feed-forward: out = h + down(swiglu(gate(xn2), up(xn2))), xn2 = rmsnorm(h)
    let mut dsw = vec![F::ZERO; n * ffn];
    b.proj(Target::Down, &a.sw, dout, &mut dsw);
    let (mut dgate, mut dup) = (vec![F::ZERO; n * ffn], vec![F::ZERO; n * ffn]);
    swiglu::backward(&a.gate, &a.up, &dsw, &mut dgate, &mut dup);
    let mut dxn2 = vec![F::ZERO; n * dim];
    b.proj(Target::Gate, &a.xn2, &dgate, &mut dxn2);
    b.proj(Target::Up, &a.xn2, &dup, &mut dxn2);
    let mut dh = dout.to_vec(); // [n][dim], through the residual
    let dw = b.full.as_deref_mut().map(|f| f.ffn_norm.as_mut_slice());
    rmsnorm::backward(&a.h, &w.ffn_norm, &a.r2, &dxn2, &mut dh, dw);

    // attention: h = x + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))), xn1 = rmsnorm(x)
    let mut datt = vec![F::ZERO; n * s.q_dim()];
    b.proj(Target::O, &a.att, &dh, &mut datt);
    let (qd, kvd) = (s.q_dim(), s.kv_dim());
    let mut dq = vec![F::ZERO; n * qd];
    let (mut dk, mut dv) = (vec![F::ZERO; n * kvd], vec![F::ZERO; n * kvd]);
    for (r, m, p) in sequences(&a.lens, s.n_heads) {
        let (qr, kr) = (r * qd..(r + m) * qd, r * kvd..(r + m) * kvd);
        let (q, k, v) = (&a.q[qr.clone()], &a.k[kr.clone()], &a.v[kr.clone()]);
        let probs = &a.probs[p..p + s.n_heads * m * m];
        let (dqs, dks, dvs) = (&mut dq[qr.clone()], &mut dk[kr.clone()], &mut dv[kr]);
        attention::backward(s, q, k, v, probs, &datt[qr], dqs, dks, dvs);
        rope.backward(dqs, qd, a.pos0);
        rope.backward(dks, kvd, a.pos0);
    }
    let mut dxn1 = vec![F::ZERO; n * dim];
    b.proj(Target::Q, &a.xn1, &dq, &mut dxn1);
    b.proj(Target::K, &a.xn1, &dk, &mut dxn1);
    b.proj(Target::V, &a.xn1, &dv, &mut dxn1);
    let mut dx = dh; // through the residual
    let dw = b.full.map(|f| f.attn_norm.as_mut_slice());
    rmsnorm::backward(&a.x, &w.attn_norm, &a.r1, &dxn1, &mut dx, dw);
    dx
}
