//! JSONL → examples. On the default model's tokenizer and chat template (when cached), each
//! shape's loss mask decoded back to text is exactly the assistant content / the completion /
//! the text. Malformed lines (on a tiny tokenizer, always available) are errors naming their
//! line and what is wrong.

use ondo_formats::testdata::{cached_default_model, tiny_llama_bytes};
use ondo_formats::GgufFile;
use ondo_text::{template_from_gguf, tokenizer_from_gguf, ChatTemplate, Tokenizer};
use ondo_train::data::{DataError, Dataset, Encoder, Example};

/// SmolLM2's tokenizer and template, None (skip) when the model is not cached.
fn smollm2() -> Option<(Tokenizer, ChatTemplate)> {
    let f = GgufFile::open(&cached_default_model()?).unwrap();
    let tok = tokenizer_from_gguf(f.metadata()).unwrap();
    let tmpl = template_from_gguf(f.metadata(), &tok).unwrap();
    Some((tok, tmpl))
}

/// The maximal runs of trained targets, each decoded (special tokens as text).
fn trained_spans(tok: &Tokenizer, ex: &Example) -> Vec<String> {
    let mut spans = Vec::new();
    let mut run = Vec::new();
    for (t, &m) in ex.targets.iter().zip(&ex.mask) {
        if m {
            run.push(*t);
        } else if !run.is_empty() {
            spans.push(tok.decode(&std::mem::take(&mut run), false));
        }
    }
    if !run.is_empty() {
        spans.push(tok.decode(&run, false));
    }
    spans
}

fn encode(tok: &Tokenizer, tmpl: &ChatTemplate, max_ctx: usize, text: &str) -> Dataset {
    let enc = Encoder {
        tok,
        template: tmpl,
        max_ctx,
    };
    enc.encode_jsonl(text).unwrap()
}

#[test]
fn messages_train_on_assistant_turns_only() {
    let Some((tok, tmpl)) = smollm2() else { return };
    let line = r#"{"messages":[{"role":"system","content":"Answer in one word."},{"role":"user","content":"Capital of France?"},{"role":"assistant","content":"Paris"},{"role":"user","content":"서울은 어느 나라?"},{"role":"assistant","content":"한국 (Korea)."}],"id":7}"#;
    let ds = encode(&tok, &tmpl, 4096, &format!("{line}\n"));
    assert_eq!((ds.examples.len(), ds.truncated, ds.dropped), (1, 0, 0));
    let ex = &ds.examples[0];
    assert_eq!(ex.tokens[1..], ex.targets[..ex.targets.len() - 1]);
    let spans = trained_spans(&tok, ex);
    eprintln!("assistant spans: {spans:?}");
    // each span is the content, then the template's end of turn
    assert_eq!(spans, ["Paris<|im_end|>\n", "한국 (Korea).<|im_end|>\n"]);
    // the whole sequence is the rendered conversation
    let all: Vec<u32> = [&ex.tokens[..1], &ex.targets[..]].concat();
    let text = tok.decode(&all, false);
    assert!(text.starts_with("<|im_start|>system\nAnswer in one word.<|im_end|>"));
}

#[test]
fn prompt_completion_trains_on_the_completion() {
    let Some((tok, tmpl)) = smollm2() else { return };
    let line = r#"{"prompt":"Q: 2+2?\nA:","completion":" 4"}"#;
    let ds = encode(&tok, &tmpl, 4096, line);
    let ex = &ds.examples[0];
    let eos = tok.token_text(tok.eos_id().unwrap()).unwrap();
    assert_eq!(trained_spans(&tok, ex), [format!(" 4{eos}")]);
    let first = tok.decode(
        &ex.tokens[..ex.mask.iter().position(|&m| m).unwrap() + 1],
        false,
    );
    let bos = if tok.add_bos() {
        tok.token_text(tok.bos_id().unwrap()).unwrap()
    } else {
        ""
    };
    assert_eq!(first, format!("{bos}Q: 2+2?\nA:"));
}

#[test]
fn text_trains_on_every_token_but_the_first_and_truncates() {
    let Some((tok, tmpl)) = smollm2() else { return };
    let text = "The quick brown fox jumps over the lazy dog. 다람쥐 헌 쳇바퀴에 타고파.";
    let line = serde_json::json!({ "text": text }).to_string();
    let ds = encode(&tok, &tmpl, 4096, &line);
    let ex = &ds.examples[0];
    assert!(ex.mask.iter().all(|&m| m));
    let all: Vec<u32> = [&ex.tokens[..1], &ex.targets[..]].concat();
    assert_eq!(tok.decode(&all, false), text);
    // cut to 5 tokens: the first 6 ids, one truncation counted
    let cut = encode(&tok, &tmpl, 5, &format!("{line}\n{line}"));
    assert_eq!((cut.examples.len(), cut.truncated), (2, 2));
    assert_eq!(cut.examples[0].tokens, ex.tokens[..5]);
    assert_eq!(cut.examples[0].targets, ex.targets[..5]);
    // a completion entirely past the cut leaves nothing to train: dropped
    let long = serde_json::json!({ "prompt": text, "completion": "x" }).to_string();
    let d = encode(&tok, &tmpl, 5, &long);
    assert_eq!((d.examples.len(), d.truncated, d.dropped), (0, 1, 1));
}

/// The tiny GGUF's tokenizer and ChatML: enough for the errors, always available.
fn tiny() -> (Tokenizer, ChatTemplate) {
    let f = GgufFile::from_bytes(tiny_llama_bytes()).unwrap();
    (
        tokenizer_from_gguf(f.metadata()).unwrap(),
        ChatTemplate::chatml(),
    )
}

#[test]
fn malformed_lines_name_their_line_and_fault() {
    let (tok, tmpl) = tiny();
    let enc = Encoder {
        tok: &tok,
        template: &tmpl,
        max_ctx: 64,
    };
    let good = r#"{"text":"abc abc"}"#;
    let cases: [(&str, &str); 15] = [
        ("{\"text\": ", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ("", "empty line"),
        ("   ", "empty line"),
        (r#"{"txt":"a"}"#, "unknown shape"),
        (
            r#"{"text":"ab","prompt":"a","completion":"b"}"#,
            "more than one shape",
        ),
        (r#"{"text":5}"#, "\"text\" must be a string, got a number"),
        (r#"{"text":""}"#, "\"text\" is empty"),
        (r#"{"text":"a"}"#, "nothing to predict"),
        (r#"{"prompt":"a"}"#, "\"completion\" is missing"),
        (
            r#"{"prompt":"a","completion":null}"#,
            "\"completion\" must be a string, got null",
        ),
        (r#"{"messages":{}}"#, "\"messages\" must be an array"),
        (r#"{"messages":[]}"#, "\"messages\" is empty"),
        (
            r#"{"messages":[{"role":"user","content":1}]}"#,
            "messages[0].content must be a string",
        ),
        (
            r#"{"messages":[{"role":"user","content":"a"}]}"#,
            "no assistant message",
        ),
    ];
    for (bad, want) in cases {
        // the bad line is line 3, after two good ones
        let text = format!("{good}\n{good}\n{bad}\n{good}\n");
        match enc.encode_jsonl(&text) {
            Err(DataError::Line { line: 3, what }) => {
                assert!(what.contains(want), "{bad:?}: {what:?} lacks {want:?}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // a role with control-token text is refused by the template, with the line
    let bad = r#"{"messages":[{"role":"<|endoftext|>","content":"a"},{"role":"assistant","content":"b"}]}"#;
    let e = enc.encode_jsonl(bad).unwrap_err();
    assert!(
        matches!(&e, DataError::Line { line: 1, what } if what.contains("chat template")),
        "{e}"
    );
    assert_eq!(e.to_string().split(':').next(), Some("line 1"));
    // good lines alone are fine; max_ctx 0 is refused
    assert_eq!(
        enc.encode_jsonl(&format!("{good}\n{good}"))
            .unwrap()
            .examples
            .len(),
        2
    );
    let zero = Encoder { max_ctx: 0, ..enc };
    assert_eq!(zero.encode_jsonl(good), Err(DataError::Context));
}
