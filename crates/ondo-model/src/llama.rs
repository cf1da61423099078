//! The Llama block stack (Llama 2/3/3.x, TinyLlama, Mistral, Solar, SmolLM2): token embedding,
//! per layer RMSNorm → GQA attention with RoPE → residual → RMSNorm → SwiGLU → residual, final
//! RMSNorm and the output head (tied to the embedding when `output.weight` is absent).
//!
//! `forward` evaluates a batch of consecutive tokens of one sequence; it is the fast path and is
//! tested against [`crate::reference`].

use std::cell::RefCell;
use std::sync::Arc;

use ondo_formats::GgufFile;
use ondo_kernels::{rmsnorm, silu};

use crate::attention::{attend, attend_decode, attend_decode_fresh, attend_token_fresh};
use crate::kv::round_f16;
use crate::kv::LayerHeads;
use crate::matmul::{
    makes_rows_in_region, matmul, matmul_group_made, MakeRows, OutPtr, ResidualRows,
};
use crate::rope::Rope;
use crate::weights::TensorLoader;
use crate::{KvCache, LlamaConfig, ModelError, Numerics, QWeight, RopeScaling};

pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    /// [dim][dim]
    pub wq: QWeight,
    /// [kv_dim][dim]
    pub wk: QWeight,
    /// [kv_dim][dim]
    pub wv: QWeight,
    /// [dim][dim]
    pub wo: QWeight,
    pub ffn_norm: Vec<f32>,
    /// [ffn_dim][dim]
    pub w_gate: QWeight,
    /// [ffn_dim][dim]
    pub w_up: QWeight,
    /// [dim][ffn_dim]
    pub w_down: QWeight,
}

pub struct LlamaModel {
    pub config: LlamaConfig,
    /// [n_vocab][dim]
    pub token_embd: QWeight,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// [n_vocab][dim]; the embedding itself when tied.
    pub output: QWeight,
    pub numerics: Numerics,
    pub(crate) rope: Rope,
}

/// Which positions of a batch need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prompt chunk that does not end the prompt).
    None,
    /// Only the last token (generation).
    Last,
    /// Every token (perplexity, teacher forcing).
    All,
}

impl LlamaModel {
    pub fn from_gguf(
        file: &Arc<GgufFile>,
        arch: &str,
        numerics: Numerics,
    ) -> Result<LlamaModel, ModelError> {
        let t = TensorLoader { file };
        let embd = file
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
        let n_vocab = match embd.dims.as_slice() {
            [_, rows] => usize::try_from(*rows).unwrap_or(usize::MAX),
            other => {
                return Err(ModelError::BadShape {
                    name: "token_embd.weight".into(),
                    expected: vec![0, 0],
                    found: other.to_vec(),
                })
            }
        };
        let mut config = LlamaConfig::from_metadata(file.metadata(), arch, n_vocab)?;
        let (dim, kv_dim, ffn) = (config.dim, config.kv_dim(), config.ffn_dim);
        if t.has("rope_freqs.weight") {
            let factors = t.vector("rope_freqs.weight", config.rope_dim / 2)?;
            if factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
                return Err(ModelError::BadHyperparameter(
                    "rope_freqs has a non-positive factor".into(),
                ));
            }
            config.rope_scaling = Some(RopeScaling::FreqFactors(factors));
        }
        let mut token_embd = t.matrix("token_embd.weight", n_vocab, dim)?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(LayerWeights {
                attn_norm: t.vector(&n("attn_norm"), dim)?,
                wq: t.matrix(&n("attn_q"), dim, dim)?,
                wk: t.matrix(&n("attn_k"), kv_dim, dim)?,
                wv: t.matrix(&n("attn_v"), kv_dim, dim)?,
                wo: t.matrix(&n("attn_output"), dim, dim)?,
                ffn_norm: t.vector(&n("ffn_norm"), dim)?,
                w_gate: t.matrix(&n("ffn_gate"), ffn, dim)?,
                w_up: t.matrix(&n("ffn_up"), ffn, dim)?,
                w_down: t.matrix(&n("ffn_down"), dim, ffn)?,
            });
        }
        let output = if t.has("output.weight") {
            t.matrix("output.weight", n_vocab, dim)?
        } else {
            token_embd.clone()
        };
        let tied = !t.has("output.weight");
        let mut output = output;
        {
            let mut all: Vec<&mut QWeight> = vec![&mut output];
            for l in &mut layers {
                all.extend([
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.w_gate,
                    &mut l.w_up,
                    &mut l.w_down,
                ]);
            }
            crate::weights::prepare_all(all, numerics == Numerics::BlockSums)?;
        }
        if tied {
            // The lookups then read the same resident copy.
            token_embd = output.clone();
        }
        Ok(LlamaModel {
            output_norm: t.vector("output_norm.weight", dim)?,
            rope: Rope::new(&config),
            numerics,
            config,
            token_embd,
            layers,
            output,
        })
    }

    /// A new empty KV cache for `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache, ModelError> {
        KvCache::new(&self.config, capacity)
    }

    /// Evaluates `tokens` at positions `kv.len()..` and appends them to the cache.
    /// Returns logits: [n_vocab] for `Logits::Last`, [tokens.len()][n_vocab] for `Logits::All`.
    pub fn forward(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        want: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let mut logits = Vec::new();
        self.forward_into(tokens, kv, want, &mut logits)?;
        Ok(logits)
    }

    /// [`LlamaModel::forward`] into a caller-owned buffer: with the buffer and the per-thread
    /// workspace reused, decoding a token allocates nothing.
    pub fn forward_into(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        want: Logits,
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        self.forward_batch(
            &mut [SeqInput {
                tokens,
                kv,
                want,
                adapter: None,
            }],
            logits,
        )
    }

    /// Evaluates several sequences in one pass (continuous batching): the linear layers run
    /// over all their tokens at once, so the weights are read once per call; attention and the
    /// cache stay per sequence. Sequence `s` appends its tokens at `seqs[s].kv.len()..`.
    /// `logits` receives, in sequence order, the rows each one asked for (none, its last
    /// token, or all its tokens), [rows][n_vocab]. A sequence's results do not depend on what
    /// else is in the batch for models whose products use one kernel for any token count
    /// (Q4_0, Q4_1, Q8_0, F32, F16); see ARCHITECTURE.md.
    pub fn forward_batch(
        &self,
        seqs: &mut [SeqInput<'_>],
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        WORKSPACE.with(|ws| self.forward_ws(seqs, logits, &mut ws.borrow_mut()))
    }

    fn forward_ws(
        &self,
        seqs: &mut [SeqInput<'_>],
        logits: &mut Vec<f32>,
        ws: &mut Workspace,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let mut n = 0usize;
        for s in seqs.iter() {
            let bad = match s.kv.check_room(s.tokens.len()) {
                Err(e) => Some(e),
                Ok(()) => s
                    .tokens
                    .iter()
                    .find(|&&t| t as usize >= c.n_vocab)
                    .map(|&id| ModelError::BadToken {
                        id,
                        n_vocab: c.n_vocab,
                    }),
            };
            if let Some(e) = bad {
                logits.clear();
                return Err(e);
            }
            n += s.tokens.len();
        }
        // Taken and given back filled: every element is written by the output product, so a
        // buffer of the right length is not zeroed first (a 1.5 MB memset per step at 8
        // sequences, on the caller alone).
        let mut out = std::mem::take(logits);
        if n == 0 {
            out.clear();
            *logits = out;
            return Ok(());
        }
        let (dim, kv_dim) = (c.dim, c.kv_dim());
        let Workspace {
            x,
            xb,
            q,
            k,
            v,
            att,
            proj,
            gate,
            up,
            angles,
            rows,
            out_rows,
            heads,
        } = ws;
        rows.clear();
        for s in seqs.iter() {
            rows.extend(std::iter::repeat_n(s.adapter, s.tokens.len()));
        }
        let rows = &rows[..];
        // x: [n][dim], the residual stream of all sequences' tokens, one after the other
        let x = sized(x, n * dim);
        let tokens = seqs.iter().flat_map(|s| s.tokens.iter());
        for (row, &tok) in x.chunks_exact_mut(dim).zip(tokens) {
            self.token_embd.dequantize_row(tok as usize, row);
        }
        let xb = sized(xb, n * dim);
        let q = sized(q, n * dim);
        let k = sized(k, n * kv_dim);
        let v = sized(v, n * kv_dim);
        let att = sized(att, n * dim);
        let proj = sized(proj, n * dim);
        let gate = sized(gate, n * c.ffn_dim);
        let up = sized(up, n * c.ffn_dim);
        // (cos, sin) per token and rotated pair: [n][rope_dim / 2]
        let half = self.rope.pairs();
        angles.resize(n * half, (0.0, 0.0));
        let positions = seqs
            .iter()
            .flat_map(|s| s.kv.len()..s.kv.len() + s.tokens.len());
        for (a, pos) in angles.chunks_exact_mut(half.max(1)).zip(positions) {
            self.rope.angles_into(pos, a);
        }
        // One token per sequence: RoPE, the cache writes and the attention share one region
        // (the output projection's, for a batch whose rows are made in the product's region).
        let decoding = seqs.iter().all(|s| s.tokens.len() == 1);
        let num = self.numerics;
        // True while x still lacks the last projection (`+= proj`): a product whose rows are
        // made in its region adds it per token before its norm, any other consumer first.
        let mut pending = false;
        for (l, w) in self.layers.iter().enumerate() {
            let qkv = [&w.wq, &w.wk, &w.wv];
            let fold = makes_rows_in_region(&qkv, n, num);
            let make = norm_rows(x, proj, pending, fold, &w.attn_norm, c.norm_eps);
            let outs = &mut [&mut *q, &mut *k, &mut *v];
            matmul_group_made(&qkv, &mut *xb, make, n, outs, num, rows);
            if decoding {
                heads.clear();
                heads.extend(seqs.iter_mut().map(|s| s.kv.layer_heads(l)));
            }
            if decoding && makes_rows_in_region(&[&w.wo], n, num) {
                let (q_ptr, k_ptr) = (OutPtr(q.as_mut_ptr()), OutPtr(k.as_mut_ptr()));
                let (heads, angles, v) = (&heads[..], &angles[..], &v[..]);
                let attend = |row: &mut [f32], t: usize| {
                    // SAFETY: token t's rows of q and k are touched by this call alone (one
                    // per token), as is its sequence's cache (one token per sequence); the
                    // caches stay lent and q, k borrowed until the product returns.
                    unsafe {
                        let q_t = std::slice::from_raw_parts_mut(q_ptr.get().add(t * dim), dim);
                        let k_t =
                            std::slice::from_raw_parts_mut(k_ptr.get().add(t * kv_dim), kv_dim);
                        let (a, v_t) = (
                            &angles[t * half..(t + 1) * half],
                            &v[t * kv_dim..(t + 1) * kv_dim],
                        );
                        attend_token_fresh(c, &self.rope, a, q_t, k_t, v_t, heads[t], row, num);
                    }
                };
                let outs = &mut [&mut *proj];
                matmul_group_made(
                    &[&w.wo],
                    &mut *att,
                    MakeRows::With(&attend),
                    n,
                    outs,
                    num,
                    rows,
                );
            } else {
                if decoding {
                    attend_decode_fresh(c, &self.rope, angles, q, k, v, heads, att, num);
                } else {
                    for i in 0..n {
                        let a = &angles[i * half..(i + 1) * half];
                        self.rope.apply_angles(&mut q[i * dim..(i + 1) * dim], a);
                        self.rope
                            .apply_angles(&mut k[i * kv_dim..(i + 1) * kv_dim], a);
                    }
                    // f16 values in the cache, f16 q for K·q, f16 probabilities for the V sum:
                    // the precision of llama.cpp's default f16 KV cache.
                    let mut off = 0;
                    for s in seqs.iter_mut() {
                        let (m, start) = (s.tokens.len(), s.kv.len());
                        let r = off * kv_dim..(off + m) * kv_dim;
                        s.kv.write(l, start, &k[r.clone()], &v[r]);
                        off += m;
                    }
                    round_f16(q, num);
                    attend_batch(c, q, seqs, l, &mut *att, num);
                }
                matmul(&w.wo, att, n, &mut *proj, num, rows);
            }

            let gate_up = [&w.w_gate, &w.w_up];
            let fold = makes_rows_in_region(&gate_up, n, num);
            let make = norm_rows(x, proj, true, fold, &w.ffn_norm, c.norm_eps);
            let outs = &mut [&mut *gate, &mut *up];
            matmul_group_made(&gate_up, &mut *xb, make, n, outs, num, rows);
            let swiglu = match num {
                Numerics::LlamaCpp | Numerics::BlockSums => MakeRows::SwiGlu { up: &*up },
                Numerics::Exact => {
                    gate.iter_mut()
                        .zip(up.iter())
                        .for_each(|(g, u)| *g = silu(*g) * u);
                    MakeRows::Ready
                }
            };
            let (down, out) = (&[&w.w_down], &mut [&mut *proj]);
            matmul_group_made(down, &mut *gate, swiglu, n, out, num, rows);
            pending = true;
        }
        if pending {
            add_into(x, proj);
        }
        // The views must not outlive this call's loan of the caches.
        heads.clear();

        // The rows that want logits, normed into xb: [m][dim]
        let (mut off, mut m) = (0, 0);
        out_rows.clear();
        for s in seqs.iter_mut() {
            let len = s.tokens.len();
            let rows = match s.want {
                Logits::None => 0..0,
                Logits::Last => off + len.saturating_sub(1)..off + len,
                Logits::All => off..off + len,
            };
            for r in rows {
                let out = &mut xb[m * dim..(m + 1) * dim];
                rmsnorm(
                    out,
                    &x[r * dim..(r + 1) * dim],
                    &self.output_norm,
                    c.norm_eps,
                );
                out_rows.push(s.adapter);
                m += 1;
            }
            s.kv.set_len(s.kv.len() + len);
            off += len;
        }
        if out.len() != m * c.n_vocab {
            out.clear();
            out.resize(m * c.n_vocab, 0.0);
        }
        if m > 0 {
            matmul(
                &self.output,
                &xb[..m * dim],
                m,
                &mut out,
                self.numerics,
                out_rows,
            );
        }
        *logits = out;
        Ok(())
    }
}

/// One sequence's part of [`LlamaModel::forward_batch`].
pub struct SeqInput<'a> {
    /// New tokens, evaluated at positions `kv.len()..`.
    pub tokens: &'a [u32],
    pub kv: &'a mut KvCache,
    pub want: Logits,
    /// Which selectable LoRA adapter this sequence uses (see `crate::lora`); adapters loaded
    /// for every sequence apply regardless.
    pub adapter: Option<u32>,
}

impl<'a> SeqInput<'a> {
    /// One decoding step of several sequences: token `toks[i]` for the cache `kvs[i]`, the
    /// logits of each wanted, no selectable adapter.
    pub fn decoding(kvs: &'a mut [KvCache], toks: &'a [u32]) -> Vec<SeqInput<'a>> {
        assert_eq!(kvs.len(), toks.len(), "one token per sequence");
        kvs.iter_mut()
            .zip(toks)
            .map(|(kv, t)| SeqInput {
                tokens: std::slice::from_ref(t),
                kv,
                want: Logits::Last,
                adapter: None,
            })
            .collect()
    }
}

/// Attention of every sequence of a batch against its own cache, whose length does not yet
/// count this batch's tokens. Runs of consecutive one-token sequences (decoding) share one
/// parallel region; a sequence's arithmetic is the same as when it runs alone.
fn attend_batch(
    c: &LlamaConfig,
    q: &[f32],
    seqs: &[SeqInput<'_>],
    layer: usize,
    att: &mut [f32],
    numerics: Numerics,
) {
    let dim = c.dim;
    let (mut i, mut off) = (0, 0);
    while i < seqs.len() {
        let run = seqs[i..].iter().take_while(|s| s.tokens.len() == 1).count();
        if run > 1 {
            let rows = off * dim..(off + run) * dim;
            let run_seqs = &seqs[i..i + run];
            attend_decode(
                c,
                &q[rows.clone()],
                &|r| (&*run_seqs[r].kv, run_seqs[r].kv.len()),
                layer,
                &mut att[rows],
                numerics,
            );
            i += run;
            off += run;
            continue;
        }
        let s = &seqs[i];
        let m = s.tokens.len();
        if m > 0 {
            let rows = off * dim..(off + m) * dim;
            attend(
                c,
                &q[rows.clone()],
                s.kv,
                layer,
                s.kv.len(),
                m,
                &mut att[rows],
                numerics,
            );
        }
        i += 1;
        off += m;
    }
}

/// Activation buffers of one forward pass, kept per thread so decoding does not allocate.
#[derive(Default)]
struct Workspace {
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    angles: Vec<(f32, f32)>,
    /// The adapter choice of every token row, then of every logits row.
    rows: Vec<Option<u32>>,
    out_rows: Vec<Option<u32>>,
    /// A decoding step's cache views of the current layer, one per sequence.
    heads: Vec<LayerHeads>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// `buf` resized to `len` (contents unspecified: every user overwrites it).
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..]
}

/// The input rows of one product reading the normed residual stream, `x += proj` first if
/// `pending`: per token inside the product's region when it makes its rows there
/// (`in_region`), here otherwise. The caller hands the result to one product call.
fn norm_rows<'a>(
    x: &'a mut [f32],
    proj: &'a [f32],
    pending: bool,
    in_region: bool,
    weight: &'a [f32],
    eps: f32,
) -> MakeRows<'a> {
    if pending && in_region {
        // SAFETY: the caller hands the rows to one product call, which makes each once.
        let x = unsafe { ResidualRows::new(x) };
        return MakeRows::AddNorm {
            x,
            add: proj,
            weight,
            eps,
        };
    }
    if pending {
        add_into(x, proj);
    }
    MakeRows::Norm { x, weight, eps }
}

/// `x += y`, element by element.
fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
