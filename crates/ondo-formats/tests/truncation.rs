//! Prefix-truncation sweep: every proper prefix of the valid tiny model is rejected with a
//! one-line error, and nothing panics. Also byte-flip robustness (no panic).

use ondo_formats::testdata::tiny_llama_bytes;
use ondo_formats::GgufFile;

#[test]
fn every_prefix_is_rejected() {
    let full = tiny_llama_bytes();
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    let data_end = f
        .tensors()
        .iter()
        .map(|t| f.data_offset() + t.offset + t.n_bytes)
        .max()
        .unwrap();
    // tiny_llama has no trailing padding: the last tensor ends at EOF.
    assert_eq!(data_end, f.file_size());
    for n in 0..full.len() {
        let e = GgufFile::from_bytes(full[..n].to_vec())
            .map(|_| ())
            .expect_err(&format!("prefix of {n} bytes was accepted"));
        assert!(!e.to_string().contains('\n'));
    }
    assert!(GgufFile::from_bytes(full).is_ok());
}

#[test]
fn trailing_bytes_are_accepted() {
    let mut b = tiny_llama_bytes();
    let n = GgufFile::from_bytes(b.clone()).unwrap().tensors().len();
    b.extend_from_slice(b"trailing garbage");
    let f = GgufFile::from_bytes(b).unwrap();
    assert_eq!(f.tensors().len(), n);
}

#[test]
fn single_byte_corruptions_never_panic() {
    let full = tiny_llama_bytes();
    for i in 0..full.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut b = full.clone();
            b[i] = v;
            if let Ok(f) = GgufFile::from_bytes(b) {
                for t in f.tensors() {
                    assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
                }
            }
        }
    }
}
