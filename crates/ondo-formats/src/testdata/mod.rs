//! Test data shared by this crate's tests, its fixture generator and other crates' tests:
//! a tiny valid llama-like GGUF ([`tiny_llama`]), a raw field-level view of a GGUF file that
//! can express invalid files ([`RawGguf`]), and the malformed-file corpus ([`cases`]).
//!
//! This module is for tests and tools; its helpers panic on misuse (a missing key or tensor
//! name), which is a bug in the caller, never a property of input data.

mod cases;

pub use cases::{cases, Case, Layer};

use crate::writer::{put_string, put_value};
use crate::{Array, GgmlType, GgufFile, GgufWriter, Value, GGUF_MAGIC};

/// The default model's file in ondo's cache (`$ONDO_HOME/models`, default
/// `$XDG_CACHE_HOME/ondo` or `~/.cache/ondo`), for tests that need the real model. Absent, it
/// returns None (the test skips with a note), unless `ONDO_REQUIRE_MODEL=1` (set by
/// scripts/test.sh and so by CI): then absence panics, so a missing model never passes as green.
pub fn cached_default_model() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = var("ONDO_HOME")
        .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("ondo")))
        .unwrap_or_else(|| var("HOME").unwrap_or_default().join(".cache/ondo"));
    let p = home.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("ONDO_REQUIRE_MODEL").as_deref() == Ok("1") {
        panic!("{} is missing (run `ondo pull`)", p.display());
    }
    eprintln!(
        "note: {} is missing; skipping (run `ondo pull`)",
        p.display()
    );
    None
}

/// Vocabulary of [`tiny_llama`] (a byte-level BPE in GPT-2 style; `Ġ` is the space marker).
pub const TINY_TOKENS: [&str; 8] = ["<|endoftext|>", "a", "b", "c", "Ġ", "ab", "abc", "Ġa"];
/// Embedding width of [`tiny_llama`].
pub const TINY_N_EMBD: u64 = 8;

fn f32_bytes(n: u64, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (f32::from(u16::try_from(i % 1000).unwrap_or(0)) * scale).to_le_bytes())
        .collect()
}

/// A minimal valid llama-like model: hparams, a GPT-2 style tokenizer and three small F32
/// tensors (`token_embd.weight` 8×8, `blk.0.attn_norm.weight` 8, `output_norm.weight` 8).
/// Every tensor's size is a multiple of 32, so the file has no trailing padding.
pub fn tiny_llama() -> GgufWriter<'static> {
    let n_vocab = u64::try_from(TINY_TOKENS.len()).unwrap_or(0);
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::Str("llama".into()))
        .add_kv("general.name", Value::Str("tiny".into()))
        .add_kv("llama.context_length", Value::U32(64))
        .add_kv("llama.embedding_length", Value::U32(8))
        .add_kv("llama.block_count", Value::U32(1))
        .add_kv("llama.feed_forward_length", Value::U32(16))
        .add_kv("llama.attention.head_count", Value::U32(2))
        .add_kv("llama.attention.head_count_kv", Value::U32(1))
        .add_kv("llama.rope.dimension_count", Value::U32(4))
        .add_kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .add_kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
        .add_kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::Str(
                TINY_TOKENS.iter().map(|s| s.to_string()).collect(),
            )),
        )
        .add_kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0; TINY_TOKENS.len()])),
        )
        .add_kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![3, 1, 1, 1, 1, 1, 1, 1])),
        )
        .add_kv(
            "tokenizer.ggml.merges",
            Value::Array(Array::Str(vec!["a b".into(), "ab c".into(), "Ġ a".into()])),
        )
        .add_kv("tokenizer.ggml.bos_token_id", Value::U32(0))
        .add_kv("tokenizer.ggml.eos_token_id", Value::U32(0));
    w.add_tensor(
        "token_embd.weight",
        &[TINY_N_EMBD, n_vocab],
        GgmlType::F32,
        f32_bytes(TINY_N_EMBD * n_vocab, 0.01),
    )
    .add_tensor(
        "blk.0.attn_norm.weight",
        &[TINY_N_EMBD],
        GgmlType::F32,
        f32_bytes(TINY_N_EMBD, 0.5),
    )
    .add_tensor(
        "output_norm.weight",
        &[TINY_N_EMBD],
        GgmlType::F32,
        f32_bytes(TINY_N_EMBD, 0.25),
    );
    w
}

/// [`tiny_llama`] plus the rest of layer 0 (dim 8, 2 heads of 4, 1 KV head, ffn 16): a complete
/// model that ondo loads, the base of the model-level cases, so each of them fails on its own
/// defect rather than on a missing tensor.
pub fn tiny_llama_model() -> GgufWriter<'static> {
    let mut w = tiny_llama();
    let kv_dim = 4;
    for (name, dims) in [
        ("blk.0.attn_q.weight", [TINY_N_EMBD, TINY_N_EMBD]),
        ("blk.0.attn_k.weight", [TINY_N_EMBD, kv_dim]),
        ("blk.0.attn_v.weight", [TINY_N_EMBD, kv_dim]),
        ("blk.0.attn_output.weight", [TINY_N_EMBD, TINY_N_EMBD]),
        ("blk.0.ffn_gate.weight", [TINY_N_EMBD, 16]),
        ("blk.0.ffn_up.weight", [TINY_N_EMBD, 16]),
        ("blk.0.ffn_down.weight", [16, TINY_N_EMBD]),
        ("blk.0.ffn_norm.weight", [TINY_N_EMBD, 1]),
    ] {
        let n = dims[0] * dims[1];
        let dims: &[u64] = if dims[1] == 1 { &dims[..1] } else { &dims };
        w.add_tensor(name, dims, GgmlType::F32, f32_bytes(n, 0.02));
    }
    w
}

/// The serialized [`tiny_llama`].
pub fn tiny_llama_bytes() -> Vec<u8> {
    tiny_llama().to_bytes()
}

/// One metadata entry as raw fields.
#[derive(Clone, Debug)]
pub struct RawKv {
    pub key: Vec<u8>,
    /// Written instead of `key.len()` when set.
    pub key_len: Option<u64>,
    pub type_id: u32,
    /// The value's encoding (everything after the type id).
    pub payload: Vec<u8>,
}

impl RawKv {
    /// An entry holding `value`, encoded as the writer would.
    pub fn new(key: &str, value: &Value) -> RawKv {
        let mut payload = Vec::new();
        put_value(&mut payload, value);
        RawKv {
            key: key.as_bytes().to_vec(),
            key_len: None,
            type_id: value.value_type().id(),
            payload,
        }
    }
}

/// One tensor info as raw fields.
#[derive(Clone, Debug)]
pub struct RawTensor {
    pub name: Vec<u8>,
    /// Written instead of `name.len()` when set.
    pub name_len: Option<u64>,
    /// Written as is; the dims written are `dims`, whatever their number.
    pub n_dims: u32,
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub offset: u64,
}

/// A GGUF file as raw fields, serialized verbatim: it can express any malformed file.
#[derive(Clone, Debug)]
pub struct RawGguf {
    pub magic: [u8; 4],
    pub version: u32,
    pub tensor_count: u64,
    pub kv_count: u64,
    pub kvs: Vec<RawKv>,
    pub tensors: Vec<RawTensor>,
    /// The header is zero-padded to a multiple of this (if non-zero) before `data`.
    pub pad_to: u64,
    /// The data section.
    pub data: Vec<u8>,
}

impl RawGguf {
    /// The raw view of a valid file; `to_bytes` reproduces it byte for byte.
    pub fn from_file(f: &GgufFile) -> RawGguf {
        let kvs = f.metadata().iter().map(|(k, v)| RawKv::new(k, v)).collect();
        let tensors = f
            .tensors()
            .iter()
            .map(|t| RawTensor {
                name: t.name.as_bytes().to_vec(),
                name_len: None,
                n_dims: u32::try_from(t.dims.len()).unwrap_or(0),
                dims: t.dims.clone(),
                type_id: t.ggml_type.0,
                offset: t.offset,
            })
            .collect();
        let start = usize::try_from(f.data_offset()).unwrap_or(usize::MAX);
        RawGguf {
            magic: GGUF_MAGIC,
            version: f.version(),
            tensor_count: u64::try_from(f.tensors().len()).unwrap_or(0),
            kv_count: u64::try_from(f.metadata().len()).unwrap_or(0),
            kvs,
            tensors,
            pad_to: f.alignment(),
            data: f.bytes().get(start..).unwrap_or(&[]).to_vec(),
        }
    }

    /// The raw view of [`tiny_llama`].
    pub fn tiny_llama() -> RawGguf {
        match GgufFile::from_bytes(tiny_llama_bytes()) {
            Ok(f) => RawGguf::from_file(&f),
            Err(e) => panic!("tiny_llama is invalid: {e}"),
        }
    }

    /// The header bytes (through the last tensor info, before padding).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.tensor_count.to_le_bytes());
        out.extend_from_slice(&self.kv_count.to_le_bytes());
        for kv in &self.kvs {
            let len = kv
                .key_len
                .unwrap_or(u64::try_from(kv.key.len()).unwrap_or(0));
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&kv.key);
            out.extend_from_slice(&kv.type_id.to_le_bytes());
            out.extend_from_slice(&kv.payload);
        }
        for t in &self.tensors {
            let len = t
                .name_len
                .unwrap_or(u64::try_from(t.name.len()).unwrap_or(0));
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&t.name);
            out.extend_from_slice(&t.n_dims.to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        out
    }

    /// The whole file: header, zero padding to `pad_to`, data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        if self.pad_to > 0 && self.pad_to <= 1 << 20 {
            let len = u64::try_from(out.len()).unwrap_or(0);
            let pad = (self.pad_to - len % self.pad_to) % self.pad_to;
            out.resize(out.len() + usize::try_from(pad).unwrap_or(0), 0);
        }
        out.extend_from_slice(&self.data);
        out
    }

    /// The entry for `key`.
    ///
    /// # Panics
    /// If there is none.
    pub fn kv(&mut self, key: &str) -> &mut RawKv {
        match self.kvs.iter_mut().find(|kv| kv.key == key.as_bytes()) {
            Some(kv) => kv,
            None => panic!("no key {key}"),
        }
    }

    /// Replaces the value of `key` (appending the entry if absent).
    pub fn set(&mut self, key: &str, value: &Value) -> &mut RawGguf {
        let new = RawKv::new(key, value);
        match self.kvs.iter_mut().find(|kv| kv.key == key.as_bytes()) {
            Some(kv) => *kv = new,
            None => self.push_kv(new),
        }
        self
    }

    /// Appends an entry and bumps `kv_count`.
    pub fn push_kv(&mut self, kv: RawKv) {
        self.kvs.push(kv);
        self.kv_count += 1;
    }

    /// The tensor info named `name`.
    ///
    /// # Panics
    /// If there is none.
    pub fn tensor(&mut self, name: &str) -> &mut RawTensor {
        match self.tensors.iter_mut().find(|t| t.name == name.as_bytes()) {
            Some(t) => t,
            None => panic!("no tensor {name}"),
        }
    }
}

/// A GGUF string (u64 length + bytes) as raw bytes.
pub fn gguf_string(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, s);
    out
}
