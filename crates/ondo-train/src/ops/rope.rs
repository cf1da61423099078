//! Rotary position embeddings, llama.cpp's "normal" mode (as `ondo_model::rope`): in each head,
//! the adjacent pairs (x[2i], x[2i+1]) of the first `rope_dim` dims rotate by
//! theta_i = pos · base^(-2i/rope_dim); dims from `rope_dim` to `head_dim` pass through.
//! theta_i is computed as ggml does, theta_0 = pos and theta_{i+1} = theta_i · base^(-2/rope_dim),
//! so in f32 the angles are those of inference. (No Llama 3.1 / linear scaling yet.)
//!
//! A rotation is orthogonal, so the backward is the inverse rotation (by -theta) of the gradient:
//!   forward:  y_a = x_a cos - x_b sin,   y_b = x_a sin + x_b cos
//!   backward: dx_a = dy_a cos + dy_b sin, dx_b = -dy_a sin + dy_b cos

use crate::Float;

/// cos and sin of every rotated pair at every position.
pub struct RopeTable<F> {
    pub head_dim: usize,
    pub rope_dim: usize,
    n_pos: usize,
    /// [n_pos][rope_dim / 2]
    cos: Vec<F>,
    /// [n_pos][rope_dim / 2]
    sin: Vec<F>,
}

impl<F: Float> RopeTable<F> {
    /// Angles for positions 0..n_pos. `rope_dim` must be even and at most `head_dim`.
    pub fn new(head_dim: usize, rope_dim: usize, base: F, n_pos: usize) -> RopeTable<F> {
        assert!(rope_dim.is_multiple_of(2) && rope_dim <= head_dim && head_dim > 0);
        let pairs = rope_dim / 2;
        let scale = base.powf(F::from_f64(-2.0) / F::from_usize(rope_dim.max(1)));
        let mut cos = Vec::with_capacity(n_pos * pairs);
        let mut sin = Vec::with_capacity(n_pos * pairs);
        for pos in 0..n_pos {
            let mut theta = F::from_usize(pos);
            for _ in 0..pairs {
                let (s, c) = theta.sin_cos();
                cos.push(c);
                sin.push(s);
                theta *= scale;
            }
        }
        RopeTable {
            head_dim,
            rope_dim,
            n_pos,
            cos,
            sin,
        }
    }

    /// Rotates x: [n][width] in place (width = n_heads · head_dim), token t at position
    /// pos0 + t; `inverse` rotates by -theta.
    fn rotate(&self, x: &mut [F], width: usize, pos0: usize, inverse: bool) {
        let (hd, pairs) = (self.head_dim, self.rope_dim / 2);
        assert!(width > 0 && width.is_multiple_of(hd) && x.len().is_multiple_of(width));
        assert!(
            pos0 + x.len() / width <= self.n_pos,
            "position beyond the rope table"
        );
        for (t, row) in x.chunks_exact_mut(width).enumerate() {
            let at = (pos0 + t) * pairs;
            let (cos, sin) = (&self.cos[at..at + pairs], &self.sin[at..at + pairs]);
            for head in row.chunks_exact_mut(hd) {
                for i in 0..pairs {
                    let (a, b) = (head[2 * i], head[2 * i + 1]);
                    let s = if inverse { -sin[i] } else { sin[i] };
                    head[2 * i] = a * cos[i] - b * s;
                    head[2 * i + 1] = a * s + b * cos[i];
                }
            }
        }
    }

    /// x: [n][n_heads · head_dim], rotated in place; token t is at position pos0 + t.
    pub fn forward(&self, x: &mut [F], width: usize, pos0: usize) {
        self.rotate(x, width, pos0, false);
    }

    /// dy: [n][n_heads · head_dim] → dx in place (the inverse rotation).
    pub fn backward(&self, d: &mut [F], width: usize, pos0: usize) {
        self.rotate(d, width, pos0, true);
    }
}
