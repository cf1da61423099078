//! Writer → reader round trip, writer validation, and the real model if it is present.

use ondo_formats::testdata::{tiny_llama, tiny_llama_bytes, RawGguf};
use ondo_formats::{Array, GgmlType, GgufError, GgufFile, GgufWriter, Value};

#[test]
fn writer_round_trip() {
    let mut w = GgufWriter::new();
    let values = vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-5)),
        ("u16", Value::U16(60000)),
        ("i16", Value::I16(-30000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("f32", Value::F32(1.5)),
        ("bool", Value::Bool(true)),
        ("str", Value::Str("héllo\0world".into())),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(-2.25)),
        ("general.alignment", Value::U32(64)),
        ("a.u8", Value::Array(Array::U8(vec![1, 2, 3]))),
        ("a.bool", Value::Array(Array::Bool(vec![true, false]))),
        (
            "a.str",
            Value::Array(Array::Str(vec!["x".into(), String::new()])),
        ),
        ("a.f64", Value::Array(Array::F64(vec![0.5; 3]))),
        ("a.i16", Value::Array(Array::I16(vec![-1, 1]))),
        (
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::U32(vec![1]),
                Array::Array(vec![Array::Str(vec!["deep".into()])]),
            ])),
        ),
        ("a.empty", Value::Array(Array::I64(vec![]))),
    ];
    for (k, v) in &values {
        w.add_kv(*k, v.clone());
    }
    let q4: Vec<u8> = (0..36u8).collect();
    w.add_tensor("q", &[64], GgmlType::Q4_0, q4.clone());
    w.add_tensor("f", &[3, 2], GgmlType::F32, vec![7u8; 24]);
    w.add_tensor("k", &[256, 1, 1, 2], GgmlType::Q4_K, vec![9u8; 288]);
    w.validate().unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    let got: Vec<(&str, &Value)> = f.metadata().iter().collect();
    assert_eq!(got.len(), values.len());
    for ((k, v), (gk, gv)) in values.iter().zip(got) {
        assert_eq!((*k, v), (gk, gv));
    }
    let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["q", "f", "k"]);
    let q = f.tensor("q").unwrap();
    assert_eq!((q.n_elems, q.n_bytes, q.offset), (64, 36, 0));
    assert_eq!(f.tensor_data(q), &q4[..]);
    let t = f.tensor("f").unwrap();
    assert_eq!((t.dims.clone(), t.offset), (vec![3, 2], 64));
    assert_eq!(f.tensor_data(t), &[7u8; 24][..]);
    assert_eq!(f.tensor_data(f.tensor("k").unwrap()), &[9u8; 288][..]);
    assert!(f.tensor("missing").is_none());
}

#[test]
fn tiny_llama_is_valid_and_raw_view_is_exact() {
    let bytes = tiny_llama_bytes();
    tiny_llama().validate().unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(
        f.metadata().get_str("general.architecture").unwrap(),
        Some("llama")
    );
    assert_eq!(
        f.metadata()
            .get_str_array("tokenizer.ggml.tokens")
            .unwrap()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(f.tensors().len(), 3);
    assert_eq!(RawGguf::from_file(&f).to_bytes(), bytes);
}

#[test]
fn open_from_disk_and_write() {
    let dir = std::env::temp_dir().join(format!("ondo-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("tiny.gguf");
    tiny_llama().write(&p).unwrap();
    let f = GgufFile::open(&p).unwrap();
    assert!(f.is_mmapped());
    assert_eq!(f.bytes(), &tiny_llama_bytes()[..]);
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GgufFile::open(&empty),
        Err(GgufError::Truncated { .. })
    ));
    let e = GgufFile::open(&dir.join("nope.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.gguf"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writer_validation_rejects_bad_input() {
    let cases: Vec<(GgufWriter, &str)> = vec![
        (
            {
                let mut w = tiny_llama();
                w.add_kv("general.name", Value::Str("x".into()));
                w
            },
            "duplicate metadata key",
        ),
        (
            {
                let mut w = tiny_llama();
                w.add_tensor("output_norm.weight", &[8], GgmlType::F32, vec![0; 32]);
                w
            },
            "duplicate tensor name",
        ),
        (
            {
                let mut w = GgufWriter::new();
                w.add_tensor("t", &[8], GgmlType::F32, vec![0; 31]);
                w
            },
            "31 bytes of data",
        ),
        (
            {
                let mut w = GgufWriter::new();
                w.add_tensor("t", &[8], GgmlType(4), vec![]);
                w
            },
            "unknown ggml type id 4",
        ),
        (
            {
                let mut w = GgufWriter::new();
                w.add_tensor("t", &[8], GgmlType::Q8_0, vec![]);
                w
            },
            "block size 32",
        ),
        (
            {
                let mut w = GgufWriter::new();
                w.add_kv("general.alignment", Value::U32(48));
                w
            },
            "general.alignment",
        ),
        (
            {
                let mut w = GgufWriter::new();
                w.add_kv("", Value::U8(0));
                w
            },
            "metadata key",
        ),
    ];
    for (w, expect) in cases {
        let e = w.validate().unwrap_err().to_string();
        assert!(e.contains(expect), "{e:?} lacks {expect:?}");
    }
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GgufFile>();
    check::<GgufWriter>();
    check::<GgufError>();
}

#[test]
fn v2_is_read() {
    let mut raw = RawGguf::tiny_llama();
    raw.version = 2;
    let f = GgufFile::from_bytes(raw.to_bytes()).unwrap();
    assert_eq!(f.version(), 2);
}

#[test]
fn real_model_if_present() {
    let Some(path) = ondo_formats::testdata::cached_default_model() else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensors().len(), 272);
    assert_eq!(f.metadata().len(), 33);
    assert_eq!(
        f.metadata().get_str("general.architecture").unwrap(),
        Some("llama")
    );
    let mut total = 0u64;
    for t in f.tensors() {
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
        total += t.n_bytes;
    }
    assert!(total <= f.file_size() - f.data_offset());
    let mut types: Vec<&str> = f
        .tensors()
        .iter()
        .filter_map(|t| t.ggml_type.name())
        .collect();
    types.sort_unstable();
    types.dedup();
    println!(
        "{}: v{}, {} KVs, {} tensors, types {types:?}",
        path.display(),
        f.version(),
        f.metadata().len(),
        f.tensors().len()
    );
}
