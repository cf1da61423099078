//! The whole Llama block and the tiny model against f64 finite differences: the block's dx,
//! every LoRA A/B and every weight (full fine-tuning) under L = Σ c·block(x); the model's
//! masked cross-entropy with respect to every adapter and every weight, tied and untied
//! output; a batch of sequences in one pass against the sequences alone. Then the f32
//! instantiation against f64, the errors a batch can carry, and a few steps of SGD that lower
//! the loss. Error measure and bound: `common/mod.rs`.

mod common;

use common::{check, check_zero, dotc, numeric, numeric_tensors, rand, Rng};
use ondo_train::data::Example;
use ondo_train::ops::rope::RopeTable;
use ondo_train::{
    block_backward, block_forward, BlockConfig, BlockLora, BlockWeights, Model, ModelConfig,
    ModelLora, ModelWeights, Target, TrainError,
};

const WEIGHT_NAMES: [&str; 9] = [
    "attn_norm",
    "wq",
    "wk",
    "wv",
    "wo",
    "ffn_norm",
    "w_gate",
    "w_up",
    "w_down",
];

/// dim 10, 4 query heads over 2 kv heads of 6 dims (q_dim 24 ≠ dim), 4 of them rotated, ffn 14.
fn block_cfg() -> BlockConfig {
    BlockConfig {
        dim: 10,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 6,
        rope_dim: 4,
        ffn_dim: 14,
        eps: 1e-5,
        rope_base: 10000.0,
    }
}

/// Adapters of rank 3 on `targets`, with B random (at PEFT's B = 0 every dA is 0).
fn lora_random_b(c: &BlockConfig, targets: &[Target], seed: u64) -> BlockLora<f64> {
    let mut l = BlockLora::new(c, targets, 3, 6.0, seed);
    let mut rng = Rng::new(seed + 100);
    for a in l.adapters.iter_mut().flatten() {
        a.b.w = rng.vec_uniform(a.b.w.len(), -0.5, 0.5);
    }
    l
}

/// "q.A", "q.B", ... for the adapters present, in `tensors_mut` order.
fn lora_names(l: &BlockLora<f64>) -> Vec<String> {
    let present = Target::ALL.into_iter().filter(|&t| l.get(t).is_some());
    present
        .flat_map(|t| [format!("{}.A", t.name()), format!("{}.B", t.name())])
        .collect()
}

/// Compares analytic and numeric gradients tensor by tensor; tensors in `zero` (the loss does
/// not depend on them) must be exactly zero instead. Returns the worst error.
fn check_all(
    what: &str,
    names: &[String],
    a: Vec<&mut [f64]>,
    n: &[Vec<f64>],
    zero: &[&str],
) -> f64 {
    assert_eq!(a.len(), n.len());
    let mut worst = 0.0f64;
    for ((name, a), n) in names.iter().zip(a).zip(n) {
        let label = format!("{what} {name}");
        if zero.iter().any(|z| name.contains(z)) {
            check_zero(&label, a);
        } else {
            worst = worst.max(check(&label, a, n));
        }
    }
    worst
}

#[test]
fn block_grads() {
    let c = block_cfg();
    let rope = RopeTable::<f64>::new(c.head_dim, c.rope_dim, c.rope_base, 16);
    let all = Target::ALL;
    // (sequence lengths, first position, adapters): 5 tokens with LoRA everywhere; one token
    // at position 3 (q and k then cannot matter: one key, softmax 1); LoRA on q and v only;
    // a batch of three sequences side by side.
    let cases: [(&[usize], usize, &[Target]); 4] = [
        (&[5], 0, &all),
        (&[1], 3, &all),
        (&[5], 2, &[Target::Q, Target::V]),
        (&[2, 3, 1], 1, &all),
    ];
    for (lens, pos0, targets) in cases {
        let n: usize = lens.iter().sum();
        let what = format!("block lens={lens:?} pos0={pos0}");
        let mut w = BlockWeights::<f64>::random(&c, 1);
        let mut l = lora_random_b(&c, targets, 2);
        let (x, cout) = (rand(n * c.dim, 3), rand(n * c.dim, 4));
        let loss = |w: &BlockWeights<f64>, l: &BlockLora<f64>, x: &[f64]| {
            dotc(&cout, &block_forward(&c, &rope, w, l, x, lens, pos0).0)
        };

        let (_, acts) = block_forward(&c, &rope, &w, &l, &x, lens, pos0);
        let (mut lg, mut full) = (l.zeros_like(), w.zeros_like());
        let dx = block_backward(&c, &rope, &w, &l, &acts, &cout, &mut lg, Some(&mut full));

        check(
            &format!("{what} dx"),
            &dx,
            &numeric(&x, |x| loss(&w, &l, x)),
        );
        let zero: &[&str] = if n == 1 {
            &["q.", "k.", "wq", "wk"]
        } else {
            &[]
        };
        let nl = numeric_tensors(&mut l, |l| l.tensors_mut(), |l| loss(&w, l, &x));
        check_all(&what, &lora_names(&l), lg.tensors_mut(), &nl, zero);
        let nw = numeric_tensors(&mut w, |w| w.tensors_mut(), |w| loss(w, &l, &x));
        let names: Vec<String> = WEIGHT_NAMES.iter().map(|s| s.to_string()).collect();
        check_all(&what, &names, full.tensors_mut(), &nw, zero);

        // LoRA-only backward (no full gradients) gives the same dx and adapter gradients
        let mut lg2 = l.zeros_like();
        let dx2 = block_backward(&c, &rope, &w, &l, &acts, &cout, &mut lg2, None);
        assert_eq!((dx2, lg2), (dx, lg));
    }
}

#[test]
fn block_at_peft_init_has_zero_da() {
    // B = 0: the adapters change nothing yet, dA = 0 exactly, dB is the signal.
    let c = block_cfg();
    let rope = RopeTable::<f64>::new(c.head_dim, c.rope_dim, c.rope_base, 8);
    let w = BlockWeights::<f64>::random(&c, 5);
    let mut l = BlockLora::<f64>::new(&c, &Target::ALL, 2, 4.0, 6);
    let (x, cout) = (rand(5 * c.dim, 7), rand(5 * c.dim, 8));
    let (out, acts) = block_forward(&c, &rope, &w, &l, &x, &[5], 0);
    assert_eq!(
        out,
        block_forward(&c, &rope, &w, &BlockLora::none(), &x, &[5], 0).0
    );
    let mut lg = l.zeros_like();
    block_backward(&c, &rope, &w, &l, &acts, &cout, &mut lg, None);
    let nl = numeric_tensors(
        &mut l,
        |l| l.tensors_mut(),
        |l| dotc(&cout, &block_forward(&c, &rope, &w, l, &x, &[5], 0).0),
    );
    check_all(
        "block peft-init",
        &lora_names(&l),
        lg.tensors_mut(),
        &nl,
        &[".A"],
    );
}

fn model_cfg() -> ModelConfig {
    ModelConfig {
        n_vocab: 11,
        n_layers: 2,
        max_seq: 8,
        block: block_cfg(),
    }
}

const TOKENS: [u32; 5] = [3, 7, 1, 3, 10];
const TARGETS: [u32; 5] = [7, 1, 3, 10, 0];
const MASK: [bool; 5] = [false, true, true, false, true];

fn model_lora(c: &ModelConfig) -> ModelLora<f64> {
    ModelLora {
        blocks: (0..c.n_layers)
            .map(|l| lora_random_b(&c.block, &Target::ALL, 10 + l as u64))
            .collect(),
    }
}

#[test]
fn model_grads() {
    let c = model_cfg();
    for tied in [true, false] {
        let what = format!("model tied={tied}");
        let mut m = Model::new(c.clone(), ModelWeights::<f64>::random(&c, tied, 20)).unwrap();
        let mut l = model_lora(&c);
        let (mut lg, mut full) = (l.zeros_like(), m.weights.zeros_like());
        let loss = m
            .forward_backward(&l, &TOKENS, &TARGETS, &MASK, &mut lg, Some(&mut full))
            .unwrap();
        let f = |m: &Model<f64>, l: &ModelLora<f64>| m.loss(l, &TOKENS, &TARGETS, &MASK).unwrap();
        assert_eq!(loss, f(&m, &l));

        let nl = numeric_tensors(&mut l, |l| l.tensors_mut(), |l| f(&m, l));
        let names: Vec<String> = (0..c.n_layers)
            .flat_map(|b| {
                lora_names(&l.blocks[b])
                    .into_iter()
                    .map(move |s| format!("{b}.{s}"))
            })
            .collect();
        check_all(&what, &names, lg.tensors_mut(), &nl, &[]);

        let nw = numeric_tensors(&mut m, |m| m.weights.tensors_mut(), |m| f(m, &l));
        let mut names = vec!["embd".to_string()];
        for b in 0..c.n_layers {
            names.extend(WEIGHT_NAMES.iter().map(|s| format!("{b}.{s}")));
        }
        names.push("norm".into());
        if !tied {
            names.push("output".into());
        }
        check_all(&what, &names, full.tensors_mut(), &nw, &[]);
    }
}

#[test]
fn a_batch_is_its_sequences_weighted_by_their_trained_tokens() {
    // One pass over [a, b] = a and b alone, combined by their masked-token counts: the loss
    // and every gradient, to f64 rounding.
    let c = model_cfg();
    let m = Model::new(c.clone(), ModelWeights::<f64>::random(&c, false, 40)).unwrap();
    let l = model_lora(&c);
    let a = Example {
        tokens: TOKENS.to_vec(),
        targets: TARGETS.to_vec(),
        mask: MASK.to_vec(),
    };
    let b = Example {
        tokens: vec![4, 4, 9],
        targets: vec![4, 9, 2],
        mask: vec![true, false, true],
    };
    let run = |batch: &[&Example]| {
        let (mut lg, mut full) = (l.zeros_like(), m.weights.zeros_like());
        let loss = m
            .forward_backward_batch(&l, batch, &mut lg, Some(&mut full))
            .unwrap();
        let mut g: Vec<f64> = Vec::new();
        for t in lg.tensors_mut().into_iter().chain(full.tensors_mut()) {
            g.extend(t.iter());
        }
        (loss, g)
    };
    let ((la, ga), (lb, gb), (lab, gab)) = (run(&[&a]), run(&[&b]), run(&[&a, &b]));
    let (wa, wb) = (3.0 / 5.0, 2.0 / 5.0);
    assert!((lab - (wa * la + wb * lb)).abs() < 1e-12, "{lab} {la} {lb}");
    let want: Vec<f64> = ga.iter().zip(&gb).map(|(x, y)| wa * x + wb * y).collect();
    let e = common::err(&gab, &want);
    eprintln!("batch vs weighted sequences: worst gradient err {e:.1e}");
    assert!(e < 1e-9, "{e}");
    // the single-sequence call is the batch of one
    let (mut lg, mut full) = (l.zeros_like(), m.weights.zeros_like());
    let one = m
        .forward_backward(&l, &a.tokens, &a.targets, &a.mask, &mut lg, Some(&mut full))
        .unwrap();
    assert_eq!(one, la);
}

/// Worst relative difference of an f32 result from the f64 one (same measure as the checks).
fn f32_vs_f64(a: &[f32], b: &[f64]) -> f64 {
    let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    common::err(&a, b)
}

#[test]
fn f32_agrees_with_f64() {
    const TOL_F32: f64 = 1e-4;
    let c = model_cfg();
    let w64 = ModelWeights::<f64>::random(&c, true, 30);
    let l64 = model_lora(&c);
    let (w32, l32) = (w64.cast::<f32>(), l64.cast::<f32>());
    let m64 = Model::new(c.clone(), w64).unwrap();
    let m32 = Model::new(c.clone(), w32).unwrap();
    let (mut g64, mut f64g) = (l64.zeros_like(), m64.weights.zeros_like());
    let (mut g32, mut f32g) = (l32.zeros_like(), m32.weights.zeros_like());
    let loss64 = m64
        .forward_backward(&l64, &TOKENS, &TARGETS, &MASK, &mut g64, Some(&mut f64g))
        .unwrap();
    let loss32 = m32
        .forward_backward(&l32, &TOKENS, &TARGETS, &MASK, &mut g32, Some(&mut f32g))
        .unwrap();
    let e = ((loss32 as f64 - loss64) / loss64).abs();
    eprintln!("f32 vs f64 loss err={e:.3e}");
    assert!(e < TOL_F32);
    let mut worst = 0.0f64;
    let pairs = g32.tensors_mut().into_iter().zip(g64.tensors_mut());
    for (a, b) in pairs.chain(f32g.tensors_mut().into_iter().zip(f64g.tensors_mut())) {
        worst = worst.max(f32_vs_f64(a, b));
    }
    eprintln!("f32 vs f64 gradients worst err={worst:.3e}");
    assert!(worst < TOL_F32);
}

#[test]
fn bad_configs_and_batches_are_errors() {
    let c = model_cfg();
    let w = ModelWeights::<f64>::random(&c, true, 1);
    let l = ModelLora::<f64>::none(&c);
    let m = Model::new(c.clone(), w.clone()).unwrap();
    assert_eq!(
        m.loss(&l, &[1, 11], &[0, 0], &[true; 2]),
        Err(TrainError::BadToken {
            id: 11,
            n_vocab: 11
        })
    );
    assert!(matches!(
        m.loss(&l, &[1, 2], &[0], &[true]),
        Err(TrainError::Batch(_))
    ));
    assert!(matches!(
        m.loss(&l, &[1; 9], &[1; 9], &[true; 9]),
        Err(TrainError::Batch(_))
    ));
    assert!(matches!(
        m.loss(&l, &[], &[], &[]),
        Err(TrainError::Batch(_))
    ));
    // gradient holders must have the adapters' and the weights' shapes
    let l2 = ModelLora::<f64>::new(&c, &[Target::Q], 2, 4.0, 1);
    let mut g = ModelLora::<f64>::new(&c, &[Target::V], 2, 4.0, 1);
    let e = m.forward_backward(&l2, &[1], &[2], &[true], &mut g, None);
    assert!(matches!(e, Err(TrainError::Batch(_))));
    let (mut g, mut untied) = (l2.zeros_like(), ModelWeights::random(&c, false, 1));
    let e = m.forward_backward(&l2, &[1], &[2], &[true], &mut g, Some(&mut untied));
    assert!(matches!(e, Err(TrainError::Batch(_))));
    let mut bad = c.clone();
    bad.block.n_kv_heads = 3;
    assert!(matches!(
        Model::new(bad, w.clone()),
        Err(TrainError::Config(_))
    ));
    let mut bad = c.clone();
    bad.block.rope_dim = 7;
    assert!(matches!(
        Model::new(bad, w.clone()),
        Err(TrainError::Config(_))
    ));
    let mut bad = c.clone();
    bad.n_layers = 3;
    assert!(matches!(Model::new(bad, w), Err(TrainError::Config(_))));
}

#[test]
fn sgd_on_lora_lowers_the_loss() {
    // The tiny model in f32 memorizes one sequence through its adapters alone.
    let c = model_cfg();
    let m = Model::new(c.clone(), ModelWeights::<f32>::random(&c, true, 40)).unwrap();
    let mut l = ModelLora::<f32>::new(&c, &Target::ALL, 4, 8.0, 41);
    let mask = [true; 5];
    let first = m.loss(&l, &TOKENS, &TARGETS, &mask).unwrap();
    let mut last = first;
    for _ in 0..40 {
        let mut g = l.zeros_like();
        last = m
            .forward_backward(&l, &TOKENS, &TARGETS, &mask, &mut g, None)
            .unwrap();
        for (p, d) in l.tensors_mut().into_iter().zip(g.tensors_mut()) {
            for (pi, di) in p.iter_mut().zip(d.iter()) {
                *pi -= 0.2 * di;
            }
        }
    }
    eprintln!("sgd: loss {first:.4} → {last:.4}");
    assert!(last < 0.5 * first, "loss {first} → {last}");
}
