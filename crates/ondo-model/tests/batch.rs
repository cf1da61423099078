//! Continuous batching: `forward_batch` over several sequences gives each one the logits it
//! gets alone, bit for bit, whatever else shares the pass (decoding sequences beside a prompt
//! chunk, in any order). Checked on the tiny test model and on the default model when cached,
//! under llama.cpp's numerics and the server's block sums.

use std::sync::Arc;

use ondo_formats::GgufFile;
use ondo_model::{load_model, load_model_for, LlamaModel, Logits, Numerics, SeqInput};

/// Three prompts of different lengths, each fed as (prefill, then decode tokens).
fn prompts(n_vocab: u32) -> Vec<Vec<u32>> {
    let p = |seed: u32, len: u32| {
        (0..len)
            .map(|i| (seed * 31 + i * 7 + 1) % n_vocab)
            .collect()
    };
    vec![p(1, 9), p(2, 17), p(3, 5)]
}

/// Logits of every step of every sequence when each runs alone: prefill of the prompt, then
/// four decode steps of fixed tokens.
fn alone(model: &LlamaModel, prompts: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    prompts
        .iter()
        .map(|p| {
            let mut kv = model.new_cache(64).unwrap();
            let mut steps = vec![model.forward(p, &mut kv, Logits::Last).unwrap()];
            for t in 0..4u32 {
                steps.push(model.forward(&[t + 3], &mut kv, Logits::Last).unwrap());
            }
            steps
        })
        .collect()
}

/// The same steps with the sequences interleaved: sequence s starts its prompt at step s, so
/// every pass mixes decoding sequences with one prompt.
fn batched(model: &LlamaModel, prompts: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let n_vocab = model.config.n_vocab;
    let mut kvs: Vec<_> = prompts
        .iter()
        .map(|_| model.new_cache(64).unwrap())
        .collect();
    let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
    let mut logits = Vec::new();
    for step in 0..prompts.len() + 4 {
        let mut inputs = Vec::new();
        let mut who = Vec::new();
        let decode_tokens: Vec<[u32; 1]> = (0..prompts.len())
            .map(|s| [step.wrapping_sub(s + 1) as u32 + 3])
            .collect();
        for (s, kv) in kvs.iter_mut().enumerate() {
            let tokens: &[u32] = match step.checked_sub(s) {
                Some(0) => &prompts[s],
                Some(d) if d <= 4 => &decode_tokens[s],
                _ => continue,
            };
            who.push(s);
            inputs.push(SeqInput {
                tokens,
                kv,
                want: Logits::Last,
                adapter: None,
            });
        }
        // The prompt goes between the decoding sequences in odd steps, last in even ones.
        if step % 2 == 1 && inputs.len() > 1 {
            inputs.rotate_left(1);
            who.rotate_left(1);
        }
        model.forward_batch(&mut inputs, &mut logits).unwrap();
        assert_eq!(logits.len(), who.len() * n_vocab);
        for (row, &s) in logits.chunks_exact(n_vocab).zip(&who) {
            out[s].push(row.to_vec());
        }
    }
    out
}

fn check(model: &LlamaModel, what: &str) {
    let ps = prompts(model.config.n_vocab as u32);
    let (a, b) = (alone(model, &ps), batched(model, &ps));
    for (s, (sa, sb)) in a.iter().zip(&b).enumerate() {
        assert_eq!(sa.len(), sb.len(), "{what}: sequence {s} step count");
        for (step, (x, y)) in sa.iter().zip(sb).enumerate() {
            let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(
                same,
                "{what}: sequence {s}, step {step}: batched logits differ"
            );
        }
    }
}

#[test]
fn batched_sequences_match_each_run_alone() {
    let bytes = ondo_formats::testdata::tiny_llama_model().to_bytes();
    let model = load_model(&Arc::new(GgufFile::from_bytes(bytes).unwrap())).unwrap();
    check(&model, "tiny model");
    if let Some(path) = ondo_formats::testdata::cached_default_model() {
        let mut model = load_model(&Arc::new(GgufFile::open(&path).unwrap())).unwrap();
        check(&model, "default model");
        // the server's numerics: block sums at every token count, batch-independent too, in
        // the CLI's layout and in the one the server loads (Q4_1 and Q8_0 in strips)
        model.numerics = Numerics::BlockSums;
        check(&model, "default model, block sums");
        let file = Arc::new(GgufFile::open(&path).unwrap());
        let served = load_model_for(&file, Numerics::BlockSums).unwrap();
        check(&served, "default model, block sums, strips");
    }
}

#[test]
fn empty_and_logit_free_sequences_take_no_rows() {
    let bytes = ondo_formats::testdata::tiny_llama_model().to_bytes();
    let model = load_model(&Arc::new(GgufFile::from_bytes(bytes).unwrap())).unwrap();
    let (mut a, mut b, mut c) = (
        model.new_cache(8).unwrap(),
        model.new_cache(8).unwrap(),
        model.new_cache(8).unwrap(),
    );
    let mut logits = Vec::new();
    let mut inputs = [
        SeqInput {
            tokens: &[],
            kv: &mut a,
            want: Logits::Last,
            adapter: None,
        },
        SeqInput {
            tokens: &[1, 2],
            kv: &mut b,
            want: Logits::None,
            adapter: None,
        },
        SeqInput {
            tokens: &[3, 4],
            kv: &mut c,
            want: Logits::All,
            adapter: None,
        },
    ];
    model.forward_batch(&mut inputs, &mut logits).unwrap();
    assert_eq!(logits.len(), 2 * model.config.n_vocab);
    assert_eq!((a.len(), b.len(), c.len()), (0, 2, 2));
    // A sequence without room fails the whole call before anything is written.
    let mut full = model.new_cache(1).unwrap();
    let mut inputs = [
        SeqInput {
            tokens: &[5],
            kv: &mut b,
            want: Logits::Last,
            adapter: None,
        },
        SeqInput {
            tokens: &[1, 2],
            kv: &mut full,
            want: Logits::Last,
            adapter: None,
        },
    ];
    assert!(model.forward_batch(&mut inputs, &mut logits).is_err());
    assert_eq!(b.len(), 2);
}
