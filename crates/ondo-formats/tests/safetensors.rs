//! safetensors: writer → reader round trips, and the malformed cases of the robustness guide
//! (section 5b): every one ends in the expected typed error, quickly and without a panic.

use std::time::{Duration, Instant};

use ondo_formats::safetensors::{Dtype, MAX_HEADER_LEN};
use ondo_formats::{SafeTensors, SafeTensorsWriter, SafetensorsError as E};

/// A file from a header given as text (N = its length) and `data` zero bytes.
fn file(header: &str, data: usize) -> Vec<u8> {
    file_raw(header.as_bytes(), data)
}

fn file_raw(header: &[u8], data: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.resize(out.len() + data, 0);
    out
}

/// A file that claims header length `n` followed by `rest`.
fn with_len(n: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

/// Parses `bytes`, checks it fails within a second with a one-line message, returns the error.
fn fail(bytes: Vec<u8>) -> E {
    let start = Instant::now();
    let r = SafeTensors::from_bytes(bytes);
    assert!(start.elapsed() < Duration::from_secs(1), "slow: {r:?}");
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    e
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

const A: &str = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;

#[test]
fn round_trip_in_memory_and_on_disk() {
    let (a, b) = (f32_bytes(&[1.0, -2.5, 3.25, 4.0]), vec![7u8, 8, 9]);
    let bf16: Vec<u8> = (0u8..12).collect();
    let mut w = SafeTensorsWriter::new();
    w.set_metadata("format", "pt")
        .set_metadata("quote\"and\\slash\n", "ünïcode ✓");
    w.add_tensor(
        "base_model.model.layers.0.q_proj.lora_A.weight",
        Dtype::F32,
        &[2, 2],
        &a[..],
    )
    .unwrap()
    .add_tensor("b", Dtype::U8, &[3], b.clone())
    .unwrap()
    .add_tensor("a_bf16", Dtype::BF16, &[2, 3], bf16.clone())
    .unwrap()
    .add_tensor("empty", Dtype::F32, &[2, 0], Vec::new())
    .unwrap()
    .add_tensor("scalar", Dtype::I64, &[], 42i64.to_le_bytes().to_vec())
    .unwrap();
    let bytes = w.to_bytes().unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!((8 + n) % 8, 0, "header padded to 8 bytes");

    let path = std::env::temp_dir().join(format!("ondo-st-{}.safetensors", std::process::id()));
    w.write(&path).unwrap();
    assert!(!path.with_extension("safetensors.partial").exists());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mapped = SafeTensors::open(&path).unwrap();
    assert!(mapped.is_mmapped());
    let owned = SafeTensors::from_bytes(bytes).unwrap();
    for st in [&mapped, &owned] {
        assert_eq!(st.metadata().len(), 2);
        assert_eq!(st.metadata()["format"], "pt");
        assert_eq!(st.metadata()["quote\"and\\slash\n"], "ünïcode ✓");
        // Data order is name order for the writer's files.
        let names: Vec<&str> = st.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a_bf16",
                "b",
                "base_model.model.layers.0.q_proj.lora_A.weight",
                "empty",
                "scalar"
            ]
        );
        let q = st
            .tensor("base_model.model.layers.0.q_proj.lora_A.weight")
            .unwrap();
        assert_eq!(
            (q.dtype, &q.shape[..], q.n_elems),
            (Dtype::F32, &[2, 2][..], 4)
        );
        assert_eq!(st.data(q), &a[..]);
        assert_eq!(st.data(st.tensor("b").unwrap()), &b[..]);
        assert_eq!(st.data(st.tensor("a_bf16").unwrap()), &bf16[..]);
        let empty = st.tensor("empty").unwrap();
        assert_eq!((empty.n_elems, st.data(empty).len()), (0, 0));
        let scalar = st.tensor("scalar").unwrap();
        assert_eq!((scalar.n_elems, scalar.shape.len()), (1, 0));
        assert_eq!(st.data(scalar), &42i64.to_le_bytes());
        assert!(st.tensor("missing").is_none());
    }
    drop(mapped);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn writer_matches_the_reference_layout() {
    // What the reference (`safetensors.torch.save_file({"a": zeros(2), "b": ...}, metadata=
    // {"format": "pt"})`) writes: compact JSON, __metadata__ first, space padding.
    let mut w = SafeTensorsWriter::new();
    w.set_metadata("format", "pt");
    w.add_tensor("b", Dtype::I8, &[1], vec![5]).unwrap();
    w.add_tensor("a", Dtype::F32, &[2], vec![0; 8]).unwrap();
    let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I8","shape":[1],"data_offsets":[8,9]}}"#;
    let mut expected = format!("{h:<width$}", width = h.len().next_multiple_of(8)).into_bytes();
    expected = file_raw(&expected, 0);
    expected.extend_from_slice(&[0; 8]);
    expected.push(5);
    assert_eq!(w.to_bytes().unwrap(), expected);
    // And an empty writer yields `{}` padded: a valid, empty file.
    let empty = SafeTensorsWriter::new().to_bytes().unwrap();
    assert_eq!(empty, file("{}      ", 0));
    assert!(SafeTensors::from_bytes(empty).unwrap().tensors().is_empty());
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = SafeTensorsWriter::new();
    assert!(matches!(
        w.add_tensor("x", Dtype::F32, &[3], vec![0; 8]),
        Err(E::Write(_))
    ));
    assert!(matches!(
        w.add_tensor("__metadata__", Dtype::U8, &[0], vec![]),
        Err(E::Write(_))
    ));
    assert!(matches!(
        w.add_tensor("x", Dtype::F16, &[2, u64::MAX / 2], vec![]),
        Err(E::Write(_))
    ));
    w.add_tensor("x", Dtype::U8, &[1], vec![1]).unwrap();
    assert!(matches!(
        w.add_tensor("x", Dtype::U8, &[1], vec![1]),
        Err(E::Write(_))
    ));
    // A failed write leaves neither the file nor the partial file behind.
    let dir = std::env::temp_dir().join(format!("ondo-st-missing-{}", std::process::id()));
    let path = dir.join("out.safetensors");
    assert!(matches!(w.write(&path), Err(E::Io(_))));
    assert!(!path.exists() && !dir.join("out.safetensors.partial").exists());
}

#[test]
fn length_prefix() {
    for short in [vec![], vec![1u8], vec![0u8; 7]] {
        assert!(matches!(fail(short), E::TooShort { .. }));
    }
    // N > 100 MB (checked before N against the file), N = u64::MAX.
    let e = fail(with_len(MAX_HEADER_LEN + 1, b"{}"));
    assert!(matches!(e, E::HeaderTooLarge { .. }), "{e}");
    assert!(matches!(
        fail(with_len(u64::MAX, b"{}")),
        E::HeaderTooLarge { .. }
    ));
    assert!(matches!(
        fail(with_len(1 << 63, b"{}")),
        E::HeaderTooLarge { .. }
    ));
    // N > file − 8, including N = 1 with nothing after the prefix.
    assert!(matches!(fail(with_len(3, b"{}")), E::HeaderPastEnd { .. }));
    assert!(matches!(fail(with_len(1, b"")), E::HeaderPastEnd { .. }));
    assert!(matches!(
        fail(with_len(MAX_HEADER_LEN, b"{}")),
        E::HeaderPastEnd { .. }
    ));
    // N = 0: an empty header is not a JSON object.
    assert!(matches!(fail(with_len(0, b"")), E::Json { .. }));
}

#[test]
fn header_text() {
    // Not UTF-8 (in a key, and a lone continuation byte), with the offset of the bad byte.
    let e = fail(file_raw(b"{\"\xff\":{}}", 0));
    assert!(matches!(e, E::HeaderNotUtf8 { offset: 10 }), "{e}");
    assert!(matches!(
        fail(file_raw(b"{}\x80", 0)),
        E::HeaderNotUtf8 { .. }
    ));
    // Not JSON, cut at `{`, not an object.
    for h in [
        "{",
        "hello",
        "{\"a\"",
        "{\"a\":",
        r#"{"a":{"dtype":"F32""#,
        "[]",
        "\"s\"",
        "42",
        "null",
        "{,}",
        r#"{"a" "b"}"#,
        "{'a':1}",
    ] {
        let e = fail(file(h, 0));
        assert!(
            matches!(e, E::Json { .. } | E::BadTensor { .. }),
            "{h}: {e}"
        );
    }
    // A key whose string never ends, and invalid escapes.
    assert!(matches!(fail(file("{\"ab", 0)), E::Json { .. }));
    assert!(matches!(fail(file(r#"{"\x":{}}"#, 0)), E::Json { .. }));
    assert!(matches!(fail(file(r#"{"\ud800":{}}"#, 0)), E::Json { .. }));
    assert!(matches!(fail(file("{\"a\u{1}\":{}}", 0)), E::Json { .. }));
    // Leading whitespace: rejected.
    for h in [" {}", "\n{}", "\t{}", "\u{feff}{}"] {
        assert!(
            matches!(fail(file(h, 0)), E::Json { offset: 8, .. }),
            "{h:?}"
        );
    }
    // Trailing spaces (the reference writer's padding) are accepted, nothing else.
    let ok = SafeTensors::from_bytes(file(&format!("{{{A}}}     "), 8)).unwrap();
    assert_eq!(ok.tensors().len(), 1);
    for h in ["{}\n", "{} \t", "{}\0", "{}}", "{}{}", "{} x"] {
        assert!(matches!(fail(file(h, 0)), E::Json { .. }), "{h:?}");
    }
    // Whitespace between tokens is JSON's.
    let spaced = "{ \"a\" :\n{\"dtype\" : \"F32\",\t\"shape\":[ 2 ],\"data_offsets\":[0 , 8 ]} }";
    assert_eq!(
        SafeTensors::from_bytes(file(spaced, 8))
            .unwrap()
            .tensors()
            .len(),
        1
    );
}

#[test]
fn duplicate_keys() {
    // Identical tensor entries, different ones, and an escaped spelling of the same name.
    let b = r#""a":{"dtype":"U8","shape":[8],"data_offsets":[8,16]}"#;
    for h in [
        format!("{{{A},{A}}}"),
        format!("{{{A},{b}}}"),
        format!("{{{A},{}}}", b.replacen('a', "\\u0061", 1)),
    ] {
        let e = fail(file(&h, 16));
        assert!(
            matches!(&e, E::DuplicateKey { key, .. } if key == "a"),
            "{h}: {e}"
        );
    }
    // A name with a newline: the message stays on one line (`fail` checks).
    let nl = r#""a\nb":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}"#;
    let e = fail(file(&format!("{{{nl},{nl}}}"), 0));
    assert!(
        matches!(&e, E::DuplicateKey { key, .. } if key == "a\nb"),
        "{e}"
    );
    // Inside __metadata__, __metadata__ twice, and a field twice in one entry.
    for h in [
        r#"{"__metadata__":{"k":"v","k":"v"}}"#,
        r#"{"__metadata__":{"k":"v","k":"w"}}"#,
        r#"{"__metadata__":{},"__metadata__":{}}"#,
        r#"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"data_offsets":[0,8]}}"#,
    ] {
        assert!(matches!(fail(file(h, 8)), E::DuplicateKey { .. }), "{h}");
    }
}

#[test]
fn metadata_must_be_a_string_map() {
    for m in [
        "\"x\"",
        "null",
        "[]",
        "1",
        r#"{"k":1}"#,
        r#"{"k":null}"#,
        r#"{"k":{"n":"v"}}"#,
        r#"{"k":["v"]}"#,
        r#"{"k":true}"#,
    ] {
        let e = fail(file(&format!("{{\"__metadata__\":{m},{A}}}"), 8));
        assert!(matches!(e, E::BadMetadata { .. }), "{m}: {e}");
    }
    let ok = file(
        &format!("{{\"__metadata__\":{{\"format\":\"pt\",\"\":\"\"}},{A}}}"),
        8,
    );
    assert_eq!(SafeTensors::from_bytes(ok).unwrap().metadata().len(), 2);
}

/// A one-tensor file `{"t": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}`.
fn one(dtype: &str, shape: &str, offsets: &str, data: usize) -> Vec<u8> {
    file(
        &format!(r#"{{"t":{{"dtype":{dtype},"shape":{shape},"data_offsets":{offsets}}}}}"#),
        data,
    )
}

#[test]
fn tensor_entries() {
    // Unknown dtypes (names are case-sensitive), and a dtype that is not a string.
    for d in ["\"F33\"", "\"f32\"", "\"\"", "\"Q4_0\""] {
        assert!(
            matches!(fail(one(d, "[1]", "[0,4]", 4)), E::UnknownDtype { .. }),
            "{d}"
        );
    }
    assert!(matches!(
        fail(one("4", "[1]", "[0,4]", 4)),
        E::BadTensor { .. }
    ));
    // F4 (and the other sub-byte types): rejected whatever the count, odd or even.
    for (d, shape, off) in [
        ("\"F4\"", "[3]", "[0,2]"),
        ("\"F4\"", "[2]", "[0,1]"),
        ("\"F6_E2M3\"", "[4]", "[0,3]"),
    ] {
        let e = fail(one(d, shape, off, 3));
        assert!(matches!(e, E::UnsupportedDtype { .. }), "{d}: {e}");
    }
    // Unknown fields and missing fields.
    let extra = r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offset":0}}"#;
    assert!(matches!(fail(file(extra, 1)), E::UnknownField { .. }));
    for h in [
        r#"{"t":{"shape":[1],"data_offsets":[0,1]}}"#,
        r#"{"t":{"dtype":"U8","data_offsets":[0,1]}}"#,
        r#"{"t":{"dtype":"U8","shape":[1]}}"#,
        r#"{"t":{}}"#,
    ] {
        assert!(matches!(fail(file(h, 1)), E::BadTensor { .. }), "{h}");
    }
    // An entry that is not an object.
    for v in ["1", "\"x\"", "[]", "null"] {
        assert!(
            matches!(
                fail(file(&format!("{{\"t\":{v}}}"), 0)),
                E::BadTensor { .. }
            ),
            "{v}"
        );
    }
    // Shapes: negative, fractional, exponent, too big for u64, not a list, nested.
    for s in [
        "[-1]",
        "[1.0]",
        "[1e2]",
        "[18446744073709551616]",
        "4",
        "[[4]]",
        "[01]",
        "[4,]",
        "[,4]",
        "null",
    ] {
        let e = fail(one("\"U8\"", s, "[0,4]", 4));
        assert!(matches!(e, E::BadTensor { .. }), "{s}: {e}");
    }
}

#[test]
fn data_offsets() {
    // end < begin, negatives, floats, 3 items, 1 item, not a list.
    for o in [
        "[8,0]", "[-8,0]", "[0,-8]", "[0.0,8]", "[0,8.5]", "[0,4,8]", "[8]", "[]", "8", "[0,1e1]",
    ] {
        let e = fail(one("\"U8\"", "[8]", o, 8));
        assert!(matches!(e, E::BadTensor { .. }), "{o}: {e}");
    }
    // end − begin ≠ numel × dtype size (both ways).
    assert!(matches!(
        fail(one("\"F32\"", "[3]", "[0,8]", 8)),
        E::SizeMismatch {
            expected: 12,
            actual: 8,
            ..
        }
    ));
    assert!(matches!(
        fail(one("\"F32\"", "[1]", "[0,8]", 8)),
        E::SizeMismatch { .. }
    ));
    // Overflow: shape [2, 2^64 − 2] (element count), and a byte size past u64 (2^62 × 8).
    let e = fail(one("\"U8\"", "[2,18446744073709551614]", "[0,4]", 4));
    assert!(matches!(e, E::Overflow { .. }), "{e}");
    assert!(matches!(
        fail(one("\"F64\"", "[4611686018427387904]", "[0,4]", 4)),
        E::Overflow { .. }
    ));
    // Offsets past the buffer (consistent with the shape, and at u64::MAX).
    assert!(matches!(
        fail(one("\"F32\"", "[2]", "[0,8]", 4)),
        E::OutOfBounds { .. }
    ));
    let e = fail(one(
        "\"U8\"",
        "[1]",
        "[18446744073709551614,18446744073709551615]",
        4,
    ));
    assert!(matches!(e, E::OutOfBounds { .. }), "{e}");
}

#[test]
fn layout() {
    let t = |name: &str, o: [u64; 2]| {
        format!(
            r#""{name}":{{"dtype":"U8","shape":[{}],"data_offsets":[{},{}]}}"#,
            o[1] - o[0],
            o[0],
            o[1]
        )
    };
    let h = |ts: &[String]| format!("{{{}}}", ts.join(","));
    // A gap, an overlap, the same range twice (test_json_attack), a first begin ≠ 0.
    let cases = [
        (h(&[t("a", [0, 4]), t("b", [6, 8])]), 8),
        (h(&[t("a", [0, 4]), t("b", [2, 8])]), 8),
        (h(&[t("a", [0, 8]), t("b", [0, 8])]), 8),
        (h(&[t("a", [0, 8]), t("b", [4, 4])]), 8),
        (h(&[t("a", [4, 8])]), 8),
        (h(&[t("a", [2, 2]), t("b", [0, 0])]), 2),
    ];
    for (header, data) in cases {
        let e = fail(file(&header, data));
        assert!(matches!(e, E::Layout { .. }), "{header}: {e}");
    }
    // Trailing bytes after the last tensor: zero padding, or a polyglot ZIP appended.
    assert!(matches!(
        fail(file(&h(&[t("a", [0, 4])]), 5)),
        E::TrailingBytes {
            used: 4,
            buffer_len: 5
        }
    ));
    assert!(matches!(fail(file("{}", 1)), E::TrailingBytes { .. }));
    let mut polyglot = file(&h(&[t("a", [0, 4])]), 4);
    polyglot.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x08\x00 zip local file header");
    assert!(matches!(fail(polyglot), E::TrailingBytes { .. }));
    // Tensors listed out of data order, and zero-sized tensors sharing positions, are fine.
    let ok = h(&[
        t("c", [4, 8]),
        t("z", [8, 8]),
        t("a", [0, 4]),
        t("e", [0, 0]),
        t("y", [8, 8]),
    ]);
    let st = SafeTensors::from_bytes(file(&ok, 8)).unwrap();
    let order: Vec<&str> = st.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, ["e", "a", "c", "y", "z"]);
}

#[test]
fn zero_sized_and_scalar_tensors_load() {
    let h = r#"{"e":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"z":{"dtype":"BF16","shape":[0],"data_offsets":[4,4]}}"#;
    let mut bytes = file(h, 0);
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    let st = SafeTensors::from_bytes(bytes).unwrap();
    let e = st.tensor("e").unwrap();
    assert_eq!(
        (&e.shape[..], e.n_elems, e.n_bytes(), st.data(e)),
        (&[2, 0][..], 0, 0, &[][..])
    );
    let s = st.tensor("s").unwrap();
    assert_eq!(
        (s.shape.len(), s.n_elems, st.data(s)),
        (0, 1, &1.5f32.to_le_bytes()[..])
    );
    assert_eq!(st.tensor("z").unwrap().n_bytes(), 0);
    // Element counts are multiplied left to right with checks, as in the reference: [0, 2^63]
    // is empty ([2^63, 4, 0] would overflow before reaching the 0).
    let big_zero = one("\"U8\"", "[0,9223372036854775808]", "[0,0]", 0);
    assert_eq!(
        SafeTensors::from_bytes(big_zero).unwrap().tensors()[0].n_elems,
        0
    );
}

#[test]
fn large_pathological_headers_fail_fast() {
    // A 2 MB shape list, 100 000 nested brackets, and 50 000 metadata entries: linear work,
    // no recursion.
    let zeros = vec!["0"; 1 << 20].join(",");
    assert!(matches!(
        fail(one("\"U8\"", &format!("[{zeros}]"), "[0,1]", 1)),
        E::SizeMismatch { .. }
    ));
    let deep = "[".repeat(100_000);
    assert!(matches!(
        fail(one("\"U8\"", &deep, "[0,1]", 1)),
        E::BadTensor { .. }
    ));
    let deep_meta = format!("{{\"__metadata__\":{{\"k\":{}", "{\"k\":".repeat(100_000));
    assert!(matches!(fail(file(&deep_meta, 0)), E::BadMetadata { .. }));
    let entries: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":\"v\"")).collect();
    let meta = format!("{{\"__metadata__\":{{{}}},\"k\":1}}", entries.join(","));
    assert!(matches!(fail(file(&meta, 0)), E::BadTensor { .. }));
}

#[test]
fn no_panic_on_truncation_or_byte_flips() {
    let mut w = SafeTensorsWriter::new();
    w.set_metadata("format", "pt");
    w.add_tensor("x", Dtype::F16, &[2, 3], vec![1; 12]).unwrap();
    w.add_tensor("y", Dtype::I32, &[1], vec![2; 4]).unwrap();
    let good = w.to_bytes().unwrap();
    for len in 0..good.len() {
        assert!(
            SafeTensors::from_bytes(good[..len].to_vec()).is_err(),
            "prefix {len}"
        );
    }
    for i in 0..good.len() {
        for v in [0u8, b'"', b'{', b'}', b'[', b',', b'-', b'9', b'\\', 0xff] {
            let mut bad = good.clone();
            bad[i] = v;
            let _ = SafeTensors::from_bytes(bad).map(|st| {
                for t in st.tensors() {
                    assert_eq!(st.data(t).len() as u64, t.n_bytes());
                }
            });
        }
    }
}
