//! Incremental detokenization: output is always complete UTF-8, characters split across
//! tokens are held back, invalid bytes become U+FFFD exactly once it is certain, and the
//! concatenated stream equals `decode` of the whole sequence.

mod common;

use common::tiny_bpe;
use ondo_text::{Detokenizer, Tokenizer};

fn stream(tok: &Tokenizer, ids: &[u32], mut d: Detokenizer) -> (Vec<String>, String) {
    let mut parts: Vec<String> = ids.iter().map(|&id| d.push(tok, id)).collect();
    parts.push(d.flush());
    let all = parts.concat();
    (parts, all)
}

#[test]
fn byte_tokens_are_held_until_complete() {
    // Byte-level vocab without merges: every UTF-8 byte is its own token.
    let tok = Tokenizer::new(tiny_bpe(&[], &[])).unwrap();
    let text = "한글 😀 ok";
    let ids = tok.encode(text, false);
    assert_eq!(ids.len(), text.len());
    let (parts, all) = stream(&tok, &ids, Detokenizer::new(true));
    assert_eq!(all, text);
    assert_eq!(all, tok.decode(&ids, true));
    // '한' is 3 bytes: nothing until the third byte, then the whole character.
    assert_eq!(&parts[..3], &["", "", "한"]);
    assert!(parts.iter().all(|p| !p.contains('\u{FFFD}')));
}

#[test]
fn invalid_bytes_become_replacement_once_certain() {
    let tok = Tokenizer::new(tiny_bpe(&[], &[])).unwrap();
    let mut d = Detokenizer::new(true);
    assert_eq!(d.push(&tok, 0xFF), "\u{FFFD}"); // can never start a character
    assert_eq!(d.push(&tok, 0xE2), ""); // could start a 3-byte character
    assert_eq!(d.push(&tok, 0x82), "");
    assert_eq!(d.push(&tok, b'A' as u32), "\u{FFFD}A"); // broken by 'A'
    assert_eq!(d.push(&tok, 0xF0), "");
    assert_eq!(d.flush(), "\u{FFFD}"); // incomplete at the end
    assert_eq!(d.flush(), "");
    let ids = [0xFF, 0xE2, 0x82, b'A' as u32, 0xF0];
    assert_eq!(tok.decode(&ids, true), "\u{FFFD}\u{FFFD}A\u{FFFD}");
}

#[test]
fn control_tokens_follow_skip_special() {
    let tok = Tokenizer::new(tiny_bpe(&[("<|im_end|>", 3)], &[])).unwrap();
    let ids = [b'a' as u32, 256, b'b' as u32];
    assert_eq!(stream(&tok, &ids, Detokenizer::new(true)).1, "ab");
    assert_eq!(
        stream(&tok, &ids, Detokenizer::new(false)).1,
        "a<|im_end|>b"
    );
}

const MULTILINGUAL: &[&str] = &[
    "안녕하세요, 세계! 오늘 날씨가 정말 좋네요.",
    "Emoji: 😀🎉👩‍👩‍👧‍👦🇰🇷 and flags 🏳️‍🌈",
    "日本語のテキストと中文文本混合。",
    "Ünïcödé çhäràctérs — “quotes” … ½ ∑ ∫",
    "русский текст, ελληνικά, עברית, العربية",
];

#[test]
fn smollm2_streams_multilingual_text() {
    let Some(path) = common::smollm2_path() else {
        println!("note: SmolLM2 model not found, skipping");
        return;
    };
    let (cfg, _) = common::load_vocab(&path);
    let tok = Tokenizer::new(cfg).unwrap();
    for text in MULTILINGUAL {
        let ids = tok.encode(text, false);
        let (parts, all) = stream(&tok, &ids, Detokenizer::new(true));
        assert_eq!(all, *text);
        assert_eq!(all, tok.decode(&ids, true));
        assert!(
            parts.iter().all(|p| !p.contains('\u{FFFD}')),
            "{text}: {parts:?}"
        );
        // Some character really was split across tokens (the test exercises holding back).
        if text.starts_with('안') {
            assert!(parts.iter().any(String::is_empty), "{parts:?}");
        }
    }
}

#[test]
fn spm_stream_matches_decode() {
    let Some(path) = common::vocab_gguf("llama-spm") else {
        println!("note: ggml-vocab-llama-spm.gguf not found, skipping");
        return;
    };
    let (cfg, _) = common::load_vocab(&path);
    let tok = Tokenizer::new(cfg).unwrap();
    for text in MULTILINGUAL {
        let ids = tok.encode(text, true);
        let d = Detokenizer::new(true).strip_leading_space(true);
        let (parts, all) = stream(&tok, &ids, d);
        assert_eq!(all, *text);
        assert_eq!(all, tok.decode(&ids, true));
        assert!(parts.iter().all(|p| !p.contains('\u{FFFD}')));
        // Without stripping, the SentencePiece prefix space is kept (generation mode).
        assert_eq!(
            stream(&tok, &ids, Detokenizer::new(true)).1,
            format!(" {text}")
        );
    }
}
