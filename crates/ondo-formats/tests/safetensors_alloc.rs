//! Peak heap use while parsing pathological safetensors headers stays under 12 bytes per header
//! byte (8 per `0,` in a shape plus growth, a `String` pair per metadata entry), measured with
//! a counting global allocator; this binary holds a single test so no other thread allocates
//! concurrently.

#[path = "common/counting.rs"]
mod counting;

use ondo_formats::SafeTensors;

fn file(header: &str, data: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + data, 0);
    out
}

/// Peak bytes allocated above the starting level while parsing `bytes` (the file itself was
/// allocated before).
fn peak_parse(bytes: Vec<u8>) -> (usize, bool) {
    let (ok, peak) = counting::peak_above_start(|| SafeTensors::from_bytes(bytes).is_ok());
    (peak, ok)
}

#[test]
fn parsing_allocates_a_small_multiple_of_the_header() {
    let n = 200_000;
    let zeros = vec!["0"; n].join(",");
    let tensor = |i: usize| format!(r#""{i}":{{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#);
    let tensors: Vec<String> = (0..n / 4).map(tensor).collect();
    let metadata: Vec<String> = (0..n).map(|_| r#""":"""#.to_string()).collect();
    let distinct: Vec<String> = (0..n).map(|i| format!(r#""{i}":"""#)).collect();
    let cases = [
        (
            "long shape",
            format!(r#"{{"t":{{"dtype":"U8","shape":[{zeros}],"data_offsets":[0,0]}}}}"#),
        ),
        ("many tensors", format!("{{{}}}", tensors.join(","))),
        (
            "repeated metadata",
            format!(r#"{{"__metadata__":{{{}}}}}"#, metadata.join(",")),
        ),
        (
            "distinct metadata",
            format!(r#"{{"__metadata__":{{{}}}}}"#, distinct.join(",")),
        ),
    ];
    for (what, header) in cases {
        let len = header.len();
        let (peak, ok) = peak_parse(file(&header, 0));
        assert!(
            peak <= 12 * len + 64 * 1024,
            "{what}: peak {peak} bytes for a {len}-byte header"
        );
        assert_eq!(ok, what != "repeated metadata", "{what}");
    }
}
