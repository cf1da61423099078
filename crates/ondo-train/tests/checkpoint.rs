//! Checkpoints: N steps straight equal N/2 steps, save, load, N/2 steps, bit for bit (the
//! tiny model of the gradient checks, with accumulation, clipping, warm-up and epochs crossed;
//! LoRA and full fine-tuning);
//! and every damaged file (cut at any length, a flipped byte, a wrong magic or version, a
//! huge header length) is a typed error, never a panic.

use ondo_train::checkpoint::{self, partial_path, CheckpointError};
use ondo_train::data::Example;
use ondo_train::optim::{AdamWConfig, Schedule};
use ondo_train::{
    BlockConfig, Model, ModelConfig, ModelLora, ModelWeights, Rng, Target, TrainConfig, TrainState,
};
use std::path::PathBuf;

fn model() -> Model<f32> {
    let c = ModelConfig {
        n_vocab: 11,
        n_layers: 2,
        max_seq: 8,
        block: BlockConfig {
            dim: 10,
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 6,
            rope_dim: 4,
            ffn_dim: 14,
            eps: 1e-5,
            rope_base: 10000.0,
        },
    };
    Model::new(c.clone(), ModelWeights::random(&c, false, 7)).unwrap()
}

/// Five random sequences of 3 to 8 tokens, every other target masked.
fn data() -> Vec<Example> {
    let mut rng = Rng::new(99);
    (0..5)
        .map(|i| {
            let n = 3 + rng.below(6);
            let ids: Vec<u32> = (0..=n).map(|_| rng.below(11) as u32).collect();
            Example {
                tokens: ids[..n].to_vec(),
                targets: ids[1..].to_vec(),
                mask: (0..n).map(|t| (t + i) % 2 == 0).collect(),
            }
        })
        .collect()
}

fn fresh(m: &Model<f32>) -> TrainState {
    fresh_run(m, false)
}

fn fresh_run(m: &Model<f32>, full: bool) -> TrainState {
    let config = TrainConfig {
        adamw: AdamWConfig {
            weight_decay: 0.05,
            ..Default::default()
        },
        schedule: Schedule {
            peak_lr: 3e-2,
            min_lr: 1e-3,
            warmup: 2,
            total: 8,
        },
        grad_accum: 2,
        batch: if full { 2 } else { 1 },
        max_grad_norm: Some(0.5),
        seed: 5,
        full,
    };
    let lora = if full {
        ModelLora::none(&m.config)
    } else {
        ModelLora::new(&m.config, &[Target::Q, Target::V, Target::Down], 2, 4.0, 3)
    };
    TrainState::new(config, lora, &m.weights).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ondo-train-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Every f32 of the state and the model's weights, as bits.
fn bits(s: &mut TrainState, m: &Model<f32>) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    for t in s.lora.tensors_mut() {
        v.extend(t.iter().map(|x| x.to_bits()));
    }
    for t in m.weights.tensors() {
        v.extend(t.iter().map(|x| x.to_bits()));
    }
    for t in s.opt.m.iter().chain(&s.opt.v) {
        v.extend(t.iter().map(|x| x.to_bits()));
    }
    v
}

fn resume_is_bit_identical(full: bool) {
    let d = data();
    let mut m_straight = model();
    let mut straight = fresh_run(&m_straight, full);
    let mut losses = Vec::new();
    for _ in 0..8 {
        losses.push(straight.step(&mut m_straight, &d).unwrap().loss);
    }
    assert!(straight.pos.epoch >= 2, "16 examples of 5 cross epochs");

    let mut m_half = model();
    let mut half = fresh_run(&m_half, full);
    for _ in 0..4 {
        half.step(&mut m_half, &d).unwrap();
    }
    let path = tmp(&format!("resume-{full}.ckpt"));
    let extra = serde_json::json!({"base": "tiny", "lr": 0.1 + 0.2});
    checkpoint::save(&path, &half, &m_half.weights, &extra).unwrap();
    assert!(!partial_path(&path).exists());
    let loaded = checkpoint::load(&path).unwrap();
    loaded.check_model(&m_half.config).unwrap();
    assert_eq!(loaded.extra, extra);
    assert_eq!(loaded.state, half);
    assert_eq!(loaded.weights.is_empty(), !full);
    let mut m_resumed = model();
    loaded.restore_weights(&mut m_resumed.weights).unwrap();
    assert_eq!(m_resumed.weights, m_half.weights);
    if full {
        assert_ne!(
            m_resumed.weights,
            model().weights,
            "full training moved the weights"
        );
    }
    let mut resumed = loaded.state;
    assert_eq!(bits(&mut resumed, &m_resumed), bits(&mut half, &m_half));
    for (i, want) in losses.iter().enumerate().skip(4) {
        let got = resumed.step(&mut m_resumed, &d).unwrap().loss;
        assert_eq!(got.to_bits(), want.to_bits(), "step {i}");
    }
    assert_eq!(
        bits(&mut resumed, &m_resumed),
        bits(&mut straight, &m_straight)
    );
    assert_eq!(resumed, straight);
    eprintln!("full {full}: loss {:.4} → {:.4}", losses[0], losses[7]);
    assert!(losses[7] < losses[0]);
}

#[test]
fn lora_resume_is_bit_identical() {
    resume_is_bit_identical(false);
}

#[test]
fn full_resume_is_bit_identical() {
    resume_is_bit_identical(true);
}

#[test]
fn full_training_decays_matrices_but_not_norms() {
    let m = model();
    let s = fresh_run(&m, true);
    let mask = m.weights.decay_mask();
    assert_eq!(mask.len(), m.weights.tensors().len());
    assert_eq!(s.opt.decay, mask);
    let dim = m.config.block.dim;
    for (t, decays) in m.weights.tensors().iter().zip(&mask) {
        assert_eq!(!decays, t.len() == dim, "norms are the [dim] tensors here");
    }
    // a full checkpoint restored into a model of another shape is an error
    let path = tmp("full-shape.ckpt");
    checkpoint::save(&path, &s, &m.weights, &serde_json::Value::Null).unwrap();
    let c = checkpoint::load(&path).unwrap();
    let mut other = model();
    other.weights.blocks.pop();
    assert!(matches!(
        c.restore_weights(&mut other.weights),
        Err(CheckpointError::Mismatch(_))
    ));
}

#[test]
fn damaged_files_are_errors() {
    let mut m = model();
    let mut s = fresh(&m);
    s.step(&mut m, &data()).unwrap();
    let path = tmp("good.ckpt");
    checkpoint::save(&path, &s, &m.weights, &serde_json::Value::Null).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = tmp("bad.ckpt");
    let load = |bytes: &[u8]| {
        std::fs::write(&bad, bytes).unwrap();
        checkpoint::load(&bad)
    };
    // cut anywhere (every length through the header, then every 7th byte)
    let header_end = 20 + u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
    let cuts = (0..header_end + 8).chain((header_end..good.len()).step_by(7));
    for n in cuts {
        assert!(load(&good[..n]).is_err(), "cut at {n} of {}", good.len());
    }
    // one extra byte
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(load(&longer), Err(CheckpointError::Size(_))));
    // a flipped bit in the data, anywhere
    for at in (header_end..good.len()).step_by(13) {
        let mut f = good.clone();
        f[at] ^= 0x10;
        assert!(
            matches!(load(&f), Err(CheckpointError::Checksum)),
            "at {at}"
        );
    }
    // every byte of the header flipped in turn: an error, or a load when the flip leaves
    // valid JSON of consistent sizes (a digit of the step, say); never a panic
    for at in 0..header_end {
        let mut f = good.clone();
        f[at] ^= 0x01;
        let _ = load(&f);
    }
    let mut f = good.clone();
    f[0] = b'X';
    assert!(matches!(load(&f), Err(CheckpointError::NotACheckpoint)));
    let mut f = good.clone();
    f[8] = 9;
    assert!(matches!(load(&f), Err(CheckpointError::Version(9))));
    let mut f = good.clone();
    f[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(load(&f), Err(CheckpointError::Size(_))));
    // a missing file
    let missing = checkpoint::load(&tmp("absent.ckpt"));
    assert!(matches!(missing, Err(CheckpointError::Io { .. })));
    // a valid checkpoint for a model of another shape
    let ok = checkpoint::load(&path).unwrap();
    let mut other = m.config.clone();
    other.block.dim = 12;
    assert!(matches!(
        ok.check_model(&other),
        Err(CheckpointError::Mismatch(_))
    ));
    other = m.config.clone();
    other.n_layers = 3;
    assert!(matches!(
        ok.check_model(&other),
        Err(CheckpointError::Mismatch(_))
    ));
}

#[test]
fn a_header_with_adapter_shapes_too_big_for_the_file_is_a_size_error() {
    // Rewrite the header so one adapter claims a rank of 2^40: the data length the header
    // implies overflows or disagrees with the file, and nothing that size is allocated.
    let m = model();
    let s = fresh(&m);
    let path = tmp("shape.ckpt");
    checkpoint::save(&path, &s, &m.weights, &serde_json::Value::Null).unwrap();
    let good = std::fs::read(&path).unwrap();
    let hl = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[20..20 + hl]).unwrap();
    for rank in ["1099511627776", "18446744073709551615"] {
        let h = header.replacen("\"rank\":2", &format!("\"rank\":{rank}"), 1);
        let mut f = good[..12].to_vec();
        f.extend((h.len() as u64).to_le_bytes());
        f.extend(h.as_bytes());
        f.extend(&good[20 + hl..]);
        let bad = tmp("shape-bad.ckpt");
        std::fs::write(&bad, &f).unwrap();
        assert!(matches!(
            checkpoint::load(&bad),
            Err(CheckpointError::Size(_))
        ));
    }
}
