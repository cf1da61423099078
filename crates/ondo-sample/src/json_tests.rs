//! Tests of the JSON object recognizer and of the vocabulary masks (object and schema mode).
use super::*;

fn accepts(text: &str) -> Option<JsonObjectState> {
    JsonObjectState::new().after(text.as_bytes())
}

#[test]
fn valid_objects_are_accepted_whole_and_byte_by_byte() {
    let docs = [
        "{}",
        " {\n  \"a\": 1, \"b\": [true, false, null, -0.5e+3, 0, 12.25E-2, \"x\"]\n}",
        r#"{"nested": {"deep": [[], {}, [{"k": "v"}]]}, "esc": "q\"\\\/\b\f\n\r\t\u00e9"}"#,
        "{\"utf8\": \"caf\u{e9} \u{1F600} \u{4e2d}\"}",
        "{\"n\": -12}  \n",
        "{\"pair\": \"\\ud83d\\ude00 \\uD7FF\\uE000\"}",
        "{\"edges\": \"\u{80}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{ffff}\u{10000}\u{10ffff}\"}",
    ];
    for doc in docs {
        let s = accepts(doc).unwrap_or_else(|| panic!("refused {doc:?}"));
        assert!(s.is_complete(), "{doc:?} not complete");
        serde_json::from_str::<serde_json::Value>(doc).expect("the test's JSON is valid");
        // every prefix is accepted and none but the whole is complete
        let mut st = JsonObjectState::new();
        let end = doc.trim_end().len();
        for (i, &b) in doc.as_bytes().iter().enumerate() {
            assert!(st.feed(b), "{doc:?} refused at byte {i}");
            assert_eq!(st.is_complete(), i + 1 >= end, "{doc:?} at byte {i}");
        }
    }
}

#[test]
fn invalid_text_is_refused_at_the_first_wrong_byte() {
    // (text, bytes accepted before the refusal)
    let cases: &[(&[u8], usize)] = &[
        (b"[1]", 0),
        (b"\"s\"", 0),
        (b"{a", 1),
        (b"{\"a\" 1", 5),
        (b"{\"a\":}", 5),
        (b"{\"a\":1,}", 7),
        (b"{\"a\":1]", 6),
        (b"{\"a\":[1}", 7),
        (b"{\"a\":01}", 6),
        (b"{\"a\":-}", 6),
        (b"{\"a\":1.}", 7),
        (b"{\"a\":1e}", 7),
        (b"{\"a\":tru}", 8),
        (b"{\"a\":nul1}", 8),
        (b"{\"a\":\"\\x\"}", 7),
        (b"{\"a\":\"\\u12g4\"}", 10),
        (b"{\"a\":\"\n\"}", 6),
        (b"{\"a\":\"\xff\"}", 6),
        (b"{\"a\":\"\xc3(\"}", 7),
        (b"{\"a\":\"\xe0\x80\x80\"}", 7),     // overlong
        (b"{\"a\":\"\xed\xa0\x80\"}", 7),     // a surrogate
        (b"{\"a\":\"\xf0\x80\x80\x80\"}", 7), // overlong
        (b"{\"a\":\"\xf4\x90\x80\x80\"}", 7), // past U+10FFFF
        (b"{\"a\":\"\xe4\xb8\"}", 8),
        (b"{\"a\":\"\\udc00\"}", 9),         // a lone low surrogate
        (b"{\"a\":\"\\ud800x\"}", 12),       // a high one not followed by its pair
        (b"{\"a\":\"\\ud800\\u0041\"}", 14), // nor by a low one
        (b"{\"a\":1e123}", 9),
        (b"{\"a\":12345678901234567890123e1}", 28), // no room left for the exponent's digit               // two exponent digits at most
        (b"{\"a\":1234567890123456789012345}", 29), // MAX_NUMBER_LEN bytes at most
        (b"{}x", 2),
        (b"{},", 2),
        (b"{}{}", 2),
    ];
    for &(text, good) in cases {
        let mut st = JsonObjectState::new();
        let n = text.iter().take_while(|&&b| st.feed(b)).count();
        assert_eq!(n, good, "{:?}", String::from_utf8_lossy(text));
        assert!(JsonObjectState::new().after(text).is_none());
    }
}

#[test]
fn the_vocabulary_mask_agrees_with_reading_every_token() {
    let pieces: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"}",
        b"{\"",
        b"\"",
        b"\":",
        b"\": ",
        b"name",
        b" cat",
        b"\\",
        b"\\n",
        b"\\u00",
        b"e9",
        b"12",
        b"-",
        b"0",
        b".5",
        b"e+",
        b"true",
        b"tr",
        b"ue",
        b"null",
        b"[",
        b"]",
        b"],",
        b",",
        b", \"",
        b"  ",
        b"\n",
        b"\t",
        b"caf\xc3\xa9",
        b"\xc3",
        b"\xa9",
        b"\xe4\xb8",
        b"\xad",
        b"\x01",
        b"a\"b",
        b"}\n",
        b"}}",
        b"\x7f",
    ];
    let vocab = JsonVocab::new(pieces.iter().copied());
    let prefixes = [
        "",
        " ",
        "{",
        "{\"",
        "{\"a",
        "{\"a\\",
        "{\"a\\u0",
        "{\"a\"",
        "{\"a\":",
        "{\"a\": 1",
        "{\"a\": -",
        "{\"a\": 0.",
        "{\"a\": [",
        "{\"a\": [1,",
        "{\"a\": t",
        "{\"a\": {\"b\": \"x",
        "{\"a\": \"\u{4e2d}",
        "{\"a\": 1}",
    ];
    let mid_char = [&b"{\"a\": \"\xe4"[..]];
    let states = prefixes.iter().map(|p| p.as_bytes()).chain(mid_char);
    for prefix in states {
        let state = JsonObjectState::new()
            .after(prefix)
            .expect("a valid prefix");
        let prefix = String::from_utf8_lossy(prefix);
        let mut logits = vec![0.0f32; pieces.len() + 3];
        let left = vocab.mask(&state, &mut logits);
        let mut again = vec![0.0f32; pieces.len() + 3];
        assert_eq!(
            vocab.mask(&state, &mut again),
            left,
            "remembered for {prefix:?}"
        );
        assert_eq!(again, logits);
        for (id, &l) in logits.iter().enumerate() {
            let want = pieces
                .get(id)
                .is_some_and(|p| !p.is_empty() && state.after(p).is_some());
            assert_eq!(l == 0.0, want, "{prefix:?} + {:?}", pieces.get(id));
            assert_eq!(vocab.after(&state, id as u32).is_some(), want);
        }
        assert_eq!(left, logits.iter().filter(|&&l| l == 0.0).count());
    }
}

#[test]
fn schema_masks_agree_with_reading_every_token() {
    let pieces: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"}",
        b"{\"",
        b"\"",
        b"\":",
        b"\": ",
        b"name",
        b"na",
        b"me",
        b"age",
        b"\"age\":",
        b" 3",
        b"3",
        b"-",
        b".5",
        b"true",
        b"tr",
        b"null",
        b"n",
        b"[",
        b"]",
        b",",
        b", \"",
        b"\"black\"",
        b"\"bl",
        b"ack\"",
        b"x",
        b" cat",
        b"\\n",
        b"\n",
    ];
    let vocab = Arc::new(JsonVocab::new(pieces.iter().copied()));
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "c": {"anyOf": [{"enum": ["black"]}, {"type": "null"}]},
            "l": {"type": "array", "items": {"type": "boolean"}}
        },
        "required": ["name"],
        "additionalProperties": false
    });
    let strict = Arc::new(JsonSchema::compile(&schema).expect("compiles"));
    let mut open = schema;
    open["additionalProperties"] = serde_json::json!({"type": "string"});
    let open = Arc::new(JsonSchema::compile(&open).expect("compiles"));
    // token paths to the states checked (ids into `pieces`), under each schema
    let paths: &[(&Arc<JsonSchema>, &[u32])] = &[
        (&strict, &[]),
        (&strict, &[1]),
        (&strict, &[3]),
        (&strict, &[3, 8]),
        (&strict, &[1, 11]),
        (&strict, &[1, 11, 12]),
        (&strict, &[3, 7, 6, 4, 28]),
        (&open, &[3]),
        (&open, &[3, 8]),
        (&open, &[3, 28]),
        (&open, &[3, 28, 5]),
    ];
    for &(schema, path) in paths {
        let mut js = JsonSampling::with_schema(vocab.clone(), schema.clone());
        for &id in path {
            assert!(js.take(id, true), "path {path:?} at {id}");
        }
        for round in 0..2 {
            let mut logits = vec![0.0f32; pieces.len() + 2];
            let left = js.mask(&mut logits);
            for (id, &l) in logits.iter().enumerate() {
                let want = js.take(id as u32, false);
                assert_eq!(
                    l == 0.0,
                    want,
                    "path {path:?} + {:?} (round {round})",
                    pieces.get(id)
                );
            }
            assert_eq!(left, logits.iter().filter(|&&l| l == 0.0).count());
        }
    }
}

#[test]
fn depth_and_whitespace_are_bounded() {
    let deep = format!("{{\"a\":{}", "[".repeat(MAX_DEPTH as usize - 1));
    let st = accepts(&deep).expect("64 levels");
    assert!(st.after(b"[").is_none(), "a 65th level");
    assert!(st.after(b"{").is_none(), "a 65th level");
    let spaces = " ".repeat(MAX_WHITESPACE as usize);
    let st = accepts(&format!("{{{spaces}")).expect("32 spaces");
    assert!(st.after(b" ").is_none(), "a 33rd space");
    assert!(st.after(b"}").is_some_and(|s| s.is_complete()));
    // spaces inside strings are text, not counted
    let long = format!("{{\"{}\": 1}}", " ".repeat(200));
    assert!(accepts(&long).is_some_and(|s| s.is_complete()));
}

/// Random walks under the object recognizer: from every accepted prefix some byte continues,
/// and every completed text is one object that serde_json reads.
#[test]
fn random_walks_give_objects_serde_json_reads() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut below = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut done = 0;
    for _ in 0..300 {
        let (mut st, mut text) = (JsonObjectState::new(), Vec::new());
        for step in 0..500 {
            if st.is_complete() {
                break;
            }
            let next: Vec<u8> = (0..=255u8).filter(|&b| st.after(&[b]).is_some()).collect();
            assert!(
                !next.is_empty(),
                "dead end after {:?}",
                String::from_utf8_lossy(&text)
            );
            let closing: Vec<u8> = next
                .iter()
                .copied()
                .filter(|b| b"}]\"0123456789eln".contains(b))
                .collect();
            let pick = if step > 250 && !closing.is_empty() {
                closing[below(closing.len())]
            } else {
                next[below(next.len())]
            };
            assert!(st.feed(pick));
            text.push(pick);
        }
        if st.is_complete() {
            done += 1;
            let doc = String::from_utf8(text).expect("UTF-8");
            let v: serde_json::Value =
                serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc:?}"));
            assert!(v.is_object(), "{doc:?}");
        }
    }
    assert!(done >= 150, "only {done} of 300 walks completed");
}
