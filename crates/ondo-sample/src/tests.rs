//! Unit tests for the sampler chain.

use super::*;

fn cfg(temperature: f32) -> SamplerConfig {
    SamplerConfig {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplerConfig::default()
    }
}

#[test]
fn greedy_picks_the_argmax() {
    let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
    assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9]), 1);
}

#[test]
fn argmax_ignores_nan_and_prefers_lowest_index() {
    assert_eq!(argmax(&[f32::NAN, 1.0, 1.0]), 1);
    assert_eq!(argmax(&[]), 0);
}

/// The first index of the largest non-NaN value, 0 when there is none above -inf: the
/// plain loop the vectorized [`argmax`] must agree with.
fn argmax_plain(xs: &[f32]) -> u32 {
    let (mut best, mut best_v) = (0, f32::NEG_INFINITY);
    for (i, &v) in xs.iter().enumerate() {
        if v > best_v {
            (best, best_v) = (i, v);
        }
    }
    best as u32
}

#[test]
fn argmax_agrees_with_the_plain_loop() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let specials = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -0.0, 0.0];
    for case in 0..3000 {
        let len = (next() % 70) as usize;
        let xs: Vec<f32> = (0..len)
            .map(|_| match next() % 10 {
                // few distinct values, so that ties are common
                0..=5 => (next() % 7) as f32 - 3.0,
                6 | 7 => specials[(next() % 5) as usize],
                _ => f32::NEG_INFINITY,
            })
            .collect();
        assert_eq!(argmax(&xs), argmax_plain(&xs), "case {case}: {xs:?}");
    }
}

#[test]
fn same_seed_same_tokens_and_other_seed_differs() {
    let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.1).collect();
    let run = |seed| {
        let mut s = Sampler::new(SamplerConfig { seed, ..cfg(1.0) }).unwrap();
        (0..50)
            .map(|_| s.sample(&mut logits.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn top_k_one_is_greedy() {
    let mut s = Sampler::new(SamplerConfig {
        top_k: 1,
        ..cfg(5.0)
    })
    .unwrap();
    for _ in 0..20 {
        assert_eq!(s.sample(&mut [0.0, 0.5, 0.4]), 1);
    }
}

#[test]
fn top_p_cuts_the_tail() {
    // probabilities ~ [0.89, 0.11, ~0]: top_p 0.5 keeps only the first.
    let mut s = Sampler::new(SamplerConfig {
        top_p: 0.5,
        ..cfg(1.0)
    })
    .unwrap();
    for _ in 0..50 {
        assert_eq!(s.sample(&mut [4.0, 2.0, -10.0]), 0);
    }
}

#[test]
fn min_p_cuts_unlikely_tokens() {
    let mut s = Sampler::new(SamplerConfig {
        min_p: 0.5,
        ..cfg(1.0)
    })
    .unwrap();
    for _ in 0..50 {
        let id = s.sample(&mut [3.0, 3.0, 0.0, -1.0]);
        assert!(id < 2, "{id}");
    }
}

#[test]
fn distribution_follows_the_softmax() {
    let mut s = Sampler::new(cfg(1.0)).unwrap();
    let mut hits = [0u32; 2];
    let n = 20_000;
    for _ in 0..n {
        hits[s.sample(&mut [0.0, (3.0f32).ln()]) as usize] += 1;
    }
    let share = hits[1] as f32 / n as f32;
    assert!((share - 0.75).abs() < 0.02, "share {share}");
}

#[test]
fn repetition_penalty_demotes_seen_tokens() {
    let mut s = Sampler::new(SamplerConfig {
        repeat_penalty: 2.0,
        ..SamplerConfig::greedy()
    })
    .unwrap();
    s.accept(0);
    assert_eq!(s.sample(&mut [2.0, 1.5]), 1);
}

#[test]
fn frequency_and_presence_penalties_subtract() {
    let mut s = Sampler::new(SamplerConfig {
        frequency_penalty: 0.5,
        presence_penalty: 0.25,
        ..SamplerConfig::greedy()
    })
    .unwrap();
    s.accept(0);
    s.accept(0);
    let mut logits = [2.0, 0.0];
    s.sample(&mut logits);
    assert!((logits[0] - (2.0 - 1.0 - 0.25)).abs() < 1e-6);
}

#[test]
fn invalid_settings_are_rejected() {
    for bad in [
        SamplerConfig {
            temperature: -1.0,
            ..cfg(1.0)
        },
        SamplerConfig {
            temperature: f32::NAN,
            ..cfg(1.0)
        },
        SamplerConfig {
            top_p: 0.0,
            ..cfg(1.0)
        },
        SamplerConfig {
            top_p: 2.0,
            ..cfg(1.0)
        },
        SamplerConfig {
            min_p: -0.1,
            ..cfg(1.0)
        },
        SamplerConfig {
            repeat_penalty: 0.0,
            ..cfg(1.0)
        },
    ] {
        assert!(Sampler::new(bad).is_err());
    }
}

#[test]
fn top_k_keeps_exactly_the_k_best_with_ties_broken_by_id() {
    // Many ties: the top k by (logit desc, id asc) must be the candidates, in that order. The
    // same draws come from a sampler without top-k over logits where every other token is
    // NaN (filtered out before sorting).
    let logits: Vec<f32> = (0..5000).map(|i| ((i * 7919) % 97) as f32 * 0.05).collect();
    for k in [1usize, 2, 40, 333, 4999] {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let mut masked = vec![f32::NAN; logits.len()];
        for &i in &order[..k] {
            masked[i] = logits[i];
        }
        let draw = |top_k: usize, l: &[f32]| {
            let mut s = Sampler::new(SamplerConfig {
                top_k,
                seed: 11,
                ..cfg(1.3)
            })
            .unwrap();
            (0..64)
                .map(|_| s.sample(&mut l.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(k, &logits), draw(0, &masked), "top_k {k}");
    }
}
