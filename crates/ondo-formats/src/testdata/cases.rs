//! The malformed GGUF corpus: one small file per case, each patching one field of
//! [`super::tiny_llama`] (or, for the tiniest cases, a hand-built header).
//!
//! `Container` cases must be rejected by this crate with an error whose message contains
//! `expect`. `Model` cases are valid containers that the model layer must reject.
//! Robustness guide 5a item numbers are given in brackets in each description.

use super::{gguf_string, tiny_llama_model, RawGguf, RawKv};
use crate::{Array, GgmlType, GgufWriter, Value};

/// Which layer must reject a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The GGUF reader rejects it.
    Container,
    /// The container is valid; the model/tokenizer layer must reject it.
    Model,
}

impl Layer {
    /// `"container"` or `"model"` (the manifest's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Container => "container",
            Layer::Model => "model",
        }
    }
}

/// One malformed file.
#[derive(Clone, Debug)]
pub struct Case {
    /// File name, `NN-short-name.gguf`.
    pub file: String,
    pub layer: Layer,
    /// What is wrong (one line, no tabs).
    pub what: &'static str,
    /// A substring of the expected error message (container cases; empty: any error).
    pub expect: &'static str,
    pub bytes: Vec<u8>,
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn push(
        &mut self,
        name: &str,
        layer: Layer,
        what: &'static str,
        expect: &'static str,
        bytes: Vec<u8>,
    ) {
        let file = format!("{:02}-{name}.gguf", self.0.len() + 1);
        self.0.push(Case {
            file,
            layer,
            what,
            expect,
            bytes,
        });
    }
    fn c(&mut self, name: &str, what: &'static str, expect: &'static str, bytes: Vec<u8>) {
        self.push(name, Layer::Container, what, expect, bytes);
    }
    fn m(&mut self, name: &str, what: &'static str, edit: impl FnOnce(&mut GgufWriter)) {
        let mut w = tiny_llama_model();
        edit(&mut w);
        self.push(name, Layer::Model, what, "", w.to_bytes());
    }
}

fn with(edit: impl FnOnce(&mut RawGguf)) -> Vec<u8> {
    let mut r = RawGguf::tiny_llama();
    edit(&mut r);
    r.to_bytes()
}

fn header(tensor_count: u64, kv_count: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&tensor_count.to_le_bytes());
    out.extend_from_slice(&kv_count.to_le_bytes());
    out
}

fn tokens_payload(tokens: &[&[u8]]) -> Vec<u8> {
    let mut p = 8u32.to_le_bytes().to_vec();
    p.extend_from_slice(&u64::try_from(tokens.len()).unwrap_or(0).to_le_bytes());
    for t in tokens {
        p.extend_from_slice(&gguf_string(t));
    }
    p
}

fn strs(v: &[&str]) -> Value {
    Value::Array(Array::Str(v.iter().map(|s| s.to_string()).collect()))
}

/// The whole corpus, in file-name order.
pub fn cases() -> Vec<Case> {
    let mut k = Corpus(Vec::new());
    let base = super::tiny_llama_bytes();
    let prefix = |n: usize| base.get(..n).unwrap_or(&[]).to_vec();

    // [1] [2] [3] header
    k.c("empty-file", "empty file [1]", "magic", Vec::new());
    k.c(
        "truncated-magic",
        "2-byte file \"GG\" [1]",
        "magic",
        prefix(2),
    );
    k.c(
        "truncated-version",
        "6 bytes: magic + half a version [1]",
        "version at offset 4",
        prefix(6),
    );
    k.c(
        "truncated-counts",
        "23 bytes: header cut inside the KV count [1]",
        "metadata KV count at offset 16",
        prefix(23),
    );
    k.c(
        "bad-magic",
        "magic is \"FUGG\" [2]",
        "bad magic",
        with(|r| r.magic = *b"FUGG"),
    );
    k.c(
        "version-0",
        "version 0 [3]",
        "version 0",
        with(|r| r.version = 0),
    );
    k.c(
        "version-1",
        "version 1 (u32 counts, unsupported) [3]",
        "version 1",
        with(|r| r.version = 1),
    );
    k.c(
        "version-4",
        "version 4 [3]",
        "version 4",
        with(|r| r.version = 4),
    );
    k.c(
        "version-u32max",
        "version u32::MAX [3]",
        "version 4294967295",
        with(|r| r.version = u32::MAX),
    );
    k.c(
        "version-big-endian",
        "version 3 stored big-endian [3]",
        "big-endian",
        with(|r| r.version = 3u32.swap_bytes()),
    );
    // [4] [5] counts
    k.c(
        "tensor-count-u64max",
        "tensor count u64::MAX [4]",
        "tensor count",
        with(|r| r.tensor_count = u64::MAX),
    );
    k.c(
        "tensor-count-wraps",
        "tensor count 0x1D1D1D1D1D1D1D1D (n*88 wraps) [4]",
        "tensor count",
        with(|r| r.tensor_count = 0x1D1D_1D1D_1D1D_1D1D),
    );
    k.c(
        "kv-count-u64max-24-bytes",
        "KV count u64::MAX in a 24-byte file [5]",
        "metadata KV count",
        header(0, u64::MAX),
    );
    k.c(
        "kv-count-plus-one",
        "KV count one more than stored: tensor infos parse as a KV [5]",
        "",
        with(|r| r.kv_count += 1),
    );
    // [6] [7] [8] strings and keys
    k.c(
        "key-empty",
        "first key has length 0 [8]",
        "it is empty",
        with(|r| r.kvs[0].key.clear()),
    );
    k.c(
        "key-len-u64max",
        "key length u64::MAX (len+1 wraps) [6]",
        "length of key of metadata KV #0",
        with(|r| r.kvs[0].key_len = Some(u64::MAX)),
    );
    let mut f = header(0, 1);
    f.extend_from_slice(&1_000_000_000_000u64.to_le_bytes());
    f.extend_from_slice(&[0u8; 8]);
    k.c(
        "key-len-1e12-short-file",
        "key length 10^12 in a 40-byte file [6]",
        "length of key",
        f,
    );
    k.c(
        "string-len-past-eof",
        "general.name length 1000000 > remaining bytes [7]",
        "value of key 'general.name'",
        with(|r| {
            let mut p = 1_000_000u64.to_le_bytes().to_vec();
            p.extend_from_slice(b"tiny");
            r.kv("general.name").payload = p;
        }),
    );
    k.c(
        "key-not-utf8",
        "key contains byte 0xFF [8]",
        "not valid UTF-8",
        with(|r| r.kvs[1].key = b"general.\xffname".to_vec()),
    );
    k.c(
        "key-contains-nul",
        "key contains a NUL byte [8]",
        "NUL",
        with(|r| r.kvs[1].key = b"general.na\0me".to_vec()),
    );
    k.c(
        "string-value-not-utf8",
        "general.name value is not UTF-8 (policy: error) [8]",
        "not valid UTF-8",
        with(|r| r.kv("general.name").payload = gguf_string(b"\xc3\x28")),
    );
    k.c(
        "token-not-utf8",
        "a vocabulary token is not UTF-8 [18]",
        "not valid UTF-8",
        with(|r| {
            r.kv("tokenizer.ggml.tokens").payload = tokens_payload(&[
                b"<|endoftext|>",
                b"a",
                b"b",
                b"\xff\xfe",
                b"x",
                b"ab",
                b"abc",
                b"y",
            ]);
        }),
    );
    // [9] value types
    k.c(
        "value-type-13",
        "value type id 13 [9]",
        "unknown value type id 13",
        with(|r| r.kvs[1].type_id = 13),
    );
    k.c(
        "value-type-255",
        "value type id 255 [9]",
        "unknown value type id 255",
        with(|r| r.kvs[1].type_id = 255),
    );
    k.c(
        "value-type-u32max",
        "value type id u32::MAX [9]",
        "unknown value type id 4294967295",
        with(|r| r.kvs[1].type_id = u32::MAX),
    );
    k.c(
        "array-elem-type-13",
        "array element type id 13 [9]",
        "unknown value type id 13 for elements",
        with(|r| {
            r.kv("tokenizer.ggml.tokens").payload[..4].copy_from_slice(&13u32.to_le_bytes());
        }),
    );
    // [10] [11] [12] arrays
    let mut f = header(0, 1);
    f.extend_from_slice(&gguf_string(b"k"));
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&12u32.to_le_bytes());
    f.extend_from_slice(&10u64.to_le_bytes());
    k.c(
        "array-10-f64-in-49-bytes",
        "array of 10 f64 in a 49-byte file [10]",
        "10 f64 elements",
        f,
    );
    k.c(
        "string-array-count-u64max",
        "token array count u64::MAX [11]",
        "string elements",
        with(|r| {
            r.kv("tokenizer.ggml.tokens").payload[4..12].copy_from_slice(&u64::MAX.to_le_bytes());
        }),
    );
    let mut f = header(0, 1);
    f.extend_from_slice(&gguf_string(b"test.nested"));
    f.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..99 {
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
    }
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    k.c(
        "array-nested-100-deep",
        "ARRAY in ARRAY nested 100 deep (cap 4) [12]",
        "nested deeper than 4",
        f,
    );
    k.c(
        "bool-value-2",
        "BOOL value byte 2 (must be 0 or 1)",
        "bool byte is 2",
        with(|r| {
            r.push_kv(RawKv {
                key: b"test.flag".to_vec(),
                key_len: None,
                type_id: 7,
                payload: vec![2],
            });
        }),
    );
    // [13] [14]
    k.c(
        "duplicate-key",
        "general.name appears twice [13]",
        "duplicate metadata key 'general.name'",
        with(|r| r.push_kv(RawKv::new("general.name", &Value::Str("again".into())))),
    );
    k.c(
        "alignment-zero",
        "general.alignment = 0 [14]",
        "general.alignment",
        with(|r| {
            r.set("general.alignment", &Value::U32(0));
        }),
    );
    k.c(
        "alignment-13",
        "general.alignment = 13 [14]",
        "general.alignment",
        with(|r| {
            r.set("general.alignment", &Value::U32(13));
        }),
    );
    k.c(
        "alignment-2p31",
        "general.alignment = 2^31 (> 1 MiB cap) [14]",
        "general.alignment",
        with(|r| {
            r.set("general.alignment", &Value::U32(1 << 31));
        }),
    );
    k.c(
        "alignment-int32",
        "general.alignment stored as INT32 [14]",
        "stored as i32",
        with(|r| {
            r.set("general.alignment", &Value::I32(32));
        }),
    );
    k.c(
        "alignment-string",
        "general.alignment stored as STRING [14]",
        "stored as string",
        with(|r| {
            r.set("general.alignment", &Value::Str("32".into()));
        }),
    );
    // [19] tensor names
    k.c(
        "tensor-name-64-bytes",
        "tensor name of 64 bytes (limit 63) [19]",
        "limit 63",
        with(|r| r.tensors[0].name = vec![b'x'; 64]),
    );
    k.c(
        "tensor-name-len-u64max",
        "tensor name length u64::MAX [19]",
        "length of name of tensor #0",
        with(|r| r.tensors[0].name_len = Some(u64::MAX)),
    );
    k.c(
        "duplicate-tensor-name",
        "two tensors named blk.0.attn_norm.weight [19]",
        "duplicate tensor name 'blk.0.attn_norm.weight'",
        with(|r| r.tensors[2].name = r.tensors[1].name.clone()),
    );
    // [20] [21] [22] [23] shapes
    k.c(
        "n-dims-0",
        "n_dims = 0 [20]",
        "n_dims is 0",
        with(|r| r.tensors[0].n_dims = 0),
    );
    k.c(
        "n-dims-5",
        "n_dims = 5 (GGML_MAX_DIMS is 4) [20]",
        "n_dims is 5",
        with(|r| {
            r.tensors[0].n_dims = 5;
            r.tensors[0].dims = vec![8, 8, 1, 1, 1];
        }),
    );
    k.c(
        "n-dims-u32max",
        "n_dims = 0xFFFFFFFF [20]",
        "n_dims is 4294967295",
        with(|r| r.tensors[0].n_dims = u32::MAX),
    );
    k.c(
        "dim-zero",
        "a dimension of 0 [21]",
        "dimension 1 is 0",
        with(|r| r.tensors[0].dims[1] = 0),
    );
    k.c(
        "dim-minus-one",
        "a dimension of -1 (u64::MAX) [21]",
        "negative as int64",
        with(|r| r.tensors[0].dims[1] = u64::MAX),
    );
    k.c(
        "dims-2p32-squared",
        "dims 2^32 x 2^32: element count overflows [22]",
        "overflows u64",
        with(|r| r.tensors[0].dims = vec![1 << 32, 1 << 32]),
    );
    k.c(
        "dim-2p42-plus-1",
        "token_embd rows = 2^42+1: data far past EOF [22]",
        "lies past the end of the file",
        with(|r| r.tensors[0].dims[1] = (1 << 42) + 1),
    );
    k.c(
        "quantized-count-too-large",
        "Q8_0 dims 2^32 x 31*2^27: elements fit u64, Q8_0 bytes would not [23]",
        "element count",
        with(|r| {
            r.tensors[0].type_id = 8;
            r.tensors[0].dims = vec![1 << 32, 31 << 27];
        }),
    );
    k.c(
        "byte-size-overflow",
        "F32 dims 2^31 x 2^31: 2^62 elements, 2^64 bytes overflow [23]",
        "byte size of",
        with(|r| r.tensors[0].dims = vec![1 << 31, 1 << 31]),
    );
    k.c(
        "row-not-block-multiple",
        "Q4_0 tensor with a row of 8 (block size 32) [23]",
        "not a multiple of the Q4_0 block size 32",
        with(|r| r.tensors[1].type_id = GgmlType::Q4_0.0),
    );
    // [24] tensor types
    k.c(
        "type-43-unknown",
        "ggml type 43 (past the last known type) [24]",
        "ggml type id 43",
        with(|r| r.tensors[1].type_id = 43),
    );
    k.c(
        "type-255",
        "ggml type 255 [24]",
        "ggml type id 255",
        with(|r| r.tensors[1].type_id = 255),
    );
    k.c(
        "type-4-removed",
        "ggml type 4 (removed Q4_2) [24]",
        "ggml type id 4",
        with(|r| r.tensors[1].type_id = 4),
    );
    k.c(
        "type-31-removed",
        "ggml type 31 (removed Q4_0_4_4) [24]",
        "ggml type id 31",
        with(|r| r.tensors[1].type_id = 31),
    );
    k.c(
        "type-negative",
        "ggml type -1 (u32::MAX) [24]",
        "ggml type id 4294967295",
        with(|r| r.tensors[1].type_id = u32::MAX),
    );
    // [25] [26] [27] offsets and data
    k.c(
        "offset-u64max",
        "tensor offset u64::MAX [25]",
        "not a multiple of the alignment",
        with(|r| r.tensors[2].offset = u64::MAX),
    );
    k.c(
        "offset-wraps",
        "tensor offset 2^64-32 (aligned; offset+size wraps) [25]",
        "overflows u64",
        with(|r| r.tensors[2].offset = u64::MAX - 31),
    );
    k.c(
        "offset-unaligned",
        "tensor offset not a multiple of 32 [25]",
        "not a multiple of the alignment 32",
        with(|r| r.tensors[1].offset += 4),
    );
    k.c(
        "offset-past-eof",
        "tensor offset = data section size: range past EOF [25]",
        "lies past the end of the file",
        with(|r| r.tensors[2].offset = 320),
    );
    k.c(
        "tensors-overlap",
        "two tensors share one data range [26]",
        "overlap",
        with(|r| r.tensors[2].offset = r.tensors[1].offset),
    );
    k.c(
        "out-of-order-overlap",
        "first tensor moved after the second, overlapping it [26]",
        "overlap",
        with(|r| r.tensors[0].offset = 32),
    );
    k.c(
        "data-1-byte-short",
        "data section 1 byte short [27]",
        "lies past the end of the file",
        prefix(base.len().saturating_sub(1)),
    );
    k.c(
        "data-section-missing",
        "file ends right after the tensor infos [27]",
        "",
        RawGguf::tiny_llama().header_bytes(),
    );

    // [15]-[18], [28]: valid containers, invalid models.
    let u32v = Value::U32;
    k.m(
        "model-n-head-zero",
        "llama.attention.head_count = 0 [28]",
        |w| {
            w.set_kv("llama.attention.head_count", u32v(0));
        },
    );
    k.m(
        "model-n-head-kv-3",
        "head_count_kv 3 does not divide head_count 2 [28]",
        |w| {
            w.set_kv("llama.attention.head_count_kv", u32v(3));
        },
    );
    k.m(
        "model-block-count-string",
        "llama.block_count stored as STRING [28]",
        |w| {
            w.set_kv("llama.block_count", Value::Str("1".into()));
        },
    );
    k.m(
        "model-embedding-length-f32",
        "llama.embedding_length stored as FLOAT32 [28]",
        |w| {
            w.set_kv("llama.embedding_length", Value::F32(8.0));
        },
    );
    k.m(
        "model-missing-output-norm",
        "tensor output_norm.weight missing [28]",
        |w| {
            w.remove_tensor("output_norm.weight");
        },
    );
    k.m(
        "model-embd-rows-vs-vocab",
        "token_embd has 4 rows, vocabulary has 8 [28]",
        |w| {
            w.remove_tensor("token_embd.weight");
            w.add_tensor("token_embd.weight", &[8, 4], GgmlType::F32, vec![0u8; 128]);
        },
    );
    k.m(
        "model-scores-int8",
        "tokenizer.ggml.scores stored as INT8 [15]",
        |w| {
            w.set_kv("tokenizer.ggml.scores", Value::Array(Array::I8(vec![0; 8])));
        },
    );
    k.m(
        "model-token-type-int8",
        "tokenizer.ggml.token_type stored as INT8 [15]",
        |w| {
            w.set_kv(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I8(vec![1; 8])),
            );
        },
    );
    k.m("model-scores-length-7", "8 tokens but 7 scores [16]", |w| {
        w.set_kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0; 7])),
        );
    });
    k.m("model-vocab-empty", "empty vocabulary [16]", |w| {
        w.set_kv("tokenizer.ggml.tokens", strs(&[]));
        w.set_kv("tokenizer.ggml.scores", Value::Array(Array::F32(vec![])));
        w.set_kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![])),
        );
    });
    k.m(
        "model-bos-out-of-vocab",
        "bos_token_id 8 = n_vocab [17]",
        |w| {
            w.set_kv("tokenizer.ggml.bos_token_id", u32v(8));
        },
    );
    k.m("model-eos-negative", "eos_token_id -1 (INT32) [17]", |w| {
        w.set_kv("tokenizer.ggml.eos_token_id", Value::I32(-1));
    });
    k.m(
        "model-byte-token-minus-one",
        "byte token \"<0x-1>\" [18]",
        |w| {
            w.set_kv(
                "tokenizer.ggml.tokens",
                strs(&["<|endoftext|>", "a", "b", "c", "<0x-1>", "ab", "abc", "Ġa"]),
            );
            // A SentencePiece vocabulary marks it as a BYTE token (type 6), so it must parse.
            w.set_kv("tokenizer.ggml.model", Value::Str("llama".into()));
            w.set_kv(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![3, 1, 1, 1, 6, 1, 1, 1])),
            );
        },
    );
    k.m("model-byte-token-zz", "byte token \"<0xZZ>\" [18]", |w| {
        w.set_kv(
            "tokenizer.ggml.tokens",
            strs(&["<|endoftext|>", "a", "b", "c", "<0xZZ>", "ab", "abc", "Ġa"]),
        );
        // A SentencePiece vocabulary marks it as a BYTE token (type 6), so it must parse.
        w.set_kv("tokenizer.ggml.model", Value::Str("llama".into()));
        w.set_kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![3, 1, 1, 1, 6, 1, 1, 1])),
        );
    });
    k.m("model-empty-token", "an empty token string [18]", |w| {
        w.set_kv(
            "tokenizer.ggml.tokens",
            strs(&["<|endoftext|>", "a", "b", "c", "", "ab", "abc", "Ġa"]),
        );
    });
    k.0
}
