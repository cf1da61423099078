//! Vocabulary validation and special-token behaviour on small synthetic vocabularies.

mod common;

use common::tiny_bpe;
use ondo_text::{TextError, Tokenizer, TokenizerKind, VocabConfig};

fn invalid(cfg: VocabConfig) -> String {
    match Tokenizer::new(cfg) {
        Err(TextError::InvalidVocab(m)) => m,
        other => panic!("expected InvalidVocab, got {other:?}"),
    }
}

#[test]
fn unknown_models_are_named() {
    assert_eq!(
        TokenizerKind::from_gguf_model("gpt2").unwrap(),
        TokenizerKind::Bpe
    );
    assert_eq!(
        TokenizerKind::from_gguf_model("llama").unwrap(),
        TokenizerKind::Spm
    );
    for m in ["bert", "rwkv", "t5", ""] {
        let e = TokenizerKind::from_gguf_model(m).unwrap_err();
        assert!(matches!(&e, TextError::UnsupportedModel(x) if x == m));
        assert!(e.to_string().contains(&format!("{m:?}")), "{e}");
    }
}

#[test]
fn malformed_vocabularies_are_errors() {
    assert!(invalid(VocabConfig::new(TokenizerKind::Bpe, vec![])).contains("empty"));

    let mut c = tiny_bpe(&[], &[]);
    c.scores = Some(vec![0.0; 3]);
    assert!(invalid(c).contains("scores"));

    let mut c = tiny_bpe(&[], &[]);
    c.token_types = Some(vec![1; 5]);
    assert!(invalid(c).contains("types"));

    let mut c = tiny_bpe(&[], &[]);
    c.eos_id = Some(256);
    assert!(invalid(c).contains("out of range"));

    let mut c = tiny_bpe(&[], &[]);
    c.add_bos = Some(true);
    assert!(invalid(c).contains("bos"));

    let c = tiny_bpe(&[("<0xZZ>", 6)], &[]);
    assert!(invalid(c).contains("<0xZZ>"));
    let c = tiny_bpe(&[("<0x4>", 6)], &[]);
    assert!(invalid(c).contains("<0x4>"));

    let c = tiny_bpe(&[("a", 1)], &[]);
    assert!(invalid(c).contains("duplicate"));
}

#[test]
fn unknown_pre_falls_back_with_warning() {
    let mut c = tiny_bpe(&[], &["h e"]);
    c.pre = Some("no-such-pre".into());
    let t = Tokenizer::new(c).unwrap();
    assert_eq!(t.warnings().len(), 1, "{:?}", t.warnings());
    assert!(t.warnings()[0].contains("no-such-pre"));
    assert_eq!(t.decode(&t.encode("hello", false), false), "hello");

    let mut c = tiny_bpe(&[], &["h e", "malformed"]);
    c.pre = None;
    let t = Tokenizer::new(c).unwrap();
    assert_eq!(t.warnings().len(), 2, "{:?}", t.warnings());
}

#[test]
fn control_tokens_only_with_special() {
    let c = tiny_bpe(
        &[("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool>", 4)],
        &[],
    );
    let t = Tokenizer::new(c).unwrap();
    let plain = t.encode("<|im_start|>x<|im_end|>", false);
    assert!(plain.iter().all(|&i| i < 256), "{plain:?}");
    assert_eq!(t.decode(&plain, true), "<|im_start|>x<|im_end|>");
    let special = t.encode_with_special("<|im_start|>x<|im_end|>", false);
    assert_eq!(special, vec![256, b'x' as u32, 257]);
    // User-defined tokens are matched even in plain text, as in llama.cpp.
    assert_eq!(t.encode("a<tool>", false), vec![b'a' as u32, 258]);
    // Control tokens vanish when decoding with skip_special.
    assert_eq!(t.decode(&special, true), "x");
    assert_eq!(t.decode(&special, false), "<|im_start|>x<|im_end|>");
    assert_eq!(t.token_piece(256, false), b"");
    assert_eq!(t.token_bytes(256), b"<|im_start|>");
    // "<|im_end|>" is end-of-generation by its text.
    assert!(t.is_eog(257));
    assert_eq!(t.eog_ids(), vec![257]);
    assert_eq!(t.eot_id(), Some(257));
}

#[test]
fn bos_eos_insertion() {
    let mut c = tiny_bpe(&[("<s>", 3), ("</s>", 3)], &[]);
    c.bos_id = Some(256);
    c.eos_id = Some(257);
    c.add_bos = Some(true);
    c.add_eos = Some(true);
    let t = Tokenizer::new(c).unwrap();
    assert_eq!(t.encode("a", true), vec![256, b'a' as u32, 257]);
    assert_eq!(t.encode("a", false), vec![b'a' as u32]);
    assert_eq!(t.encode("", true), vec![256, 257]);
    assert!(t.is_eog(257));
    assert_eq!(t.decode(&[256, b'a' as u32, 257], true), "a");
}

#[test]
fn spm_defaults_and_byte_fallback() {
    // <unk>, <s>, </s>, byte tokens for 'a'(0x61) and '\n', pieces.
    let tokens: Vec<String> = [
        "<unk>", "<s>", "</s>", "<0x61>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "b", "▁b", "bb",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut c = VocabConfig::new(TokenizerKind::Spm, tokens);
    c.token_types = Some(vec![2, 3, 3, 6, 6, 6, 6, 1, 1, 1, 1]);
    c.scores = Some(vec![
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -1.5, -0.5,
    ]);
    let t = Tokenizer::new(c).unwrap();
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.unk_id()),
        (Some(1), Some(2), Some(0))
    );
    assert!(t.add_bos() && t.add_space_prefix());
    // " bbb": "▁b" (-1.5) vs "bb" (-0.5): bb merges first → ▁, bb, b ... then ▁+bb no token.
    assert_eq!(t.encode("bbb", false), vec![7, 10, 8]);
    assert_eq!(t.encode("a\n", true), vec![1, 7, 3, 4]);
    assert_eq!(t.encode("é", false), vec![7, 5, 6]);
    // Characters without a byte token fall back to <unk>.
    assert_eq!(t.encode("z", false), vec![7, 0]);
    assert_eq!(t.decode(&t.encode("bbb a\né", true), true), "bbb a\né");
}
