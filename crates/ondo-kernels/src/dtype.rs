//! Tensor element types and their ggml block geometry.
//!
//! Ids, names, block sizes and byte sizes follow llama.cpp's `ggml.h` (`enum ggml_type`)
//! and `ggml-common.h` (`block_q4_0` .. `block_q6_K`, with `QK_K = 256`).

/// A tensor element type, as stored in GGUF files.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
}

impl DType {
    /// Every supported type, in declaration order.
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
    ];

    /// Maps a ggml type id (`enum ggml_type`) to a [`DType`]; `None` for unsupported ids.
    pub fn from_ggml_id(id: u32) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::Q4_0,
            3 => DType::Q4_1,
            6 => DType::Q5_0,
            7 => DType::Q5_1,
            8 => DType::Q8_0,
            10 => DType::Q2_K,
            11 => DType::Q3_K,
            12 => DType::Q4_K,
            13 => DType::Q5_K,
            14 => DType::Q6_K,
            30 => DType::BF16,
            _ => return None,
        })
    }

    /// The ggml type id (`enum ggml_type`).
    pub fn ggml_id(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 6,
            DType::Q5_1 => 7,
            DType::Q8_0 => 8,
            DType::Q2_K => 10,
            DType::Q3_K => 11,
            DType::Q4_K => 12,
            DType::Q5_K => 13,
            DType::Q6_K => 14,
            DType::BF16 => 30,
        }
    }

    /// The name llama.cpp prints for this type (`ggml_type_name`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q2_K => "Q2_K",
            DType::Q3_K => "Q3_K",
            DType::Q4_K => "Q4_K",
            DType::Q5_K => "Q5_K",
            DType::Q6_K => "Q6_K",
        }
    }

    /// Elements per block: 1 for float types, 32 for Q4_0..Q8_0, 256 (`QK_K`) for K-quants.
    pub fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => 32,
            DType::Q2_K | DType::Q3_K | DType::Q4_K | DType::Q5_K | DType::Q6_K => 256,
        }
    }

    /// Bytes per block (`sizeof(block_xxx)` in ggml).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q2_K => 84,
            DType::Q3_K => 110,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
        }
    }

    /// Bytes needed for `n_elems` elements; `None` if `n_elems` is not a multiple of
    /// [`block_elems`](Self::block_elems) or the size overflows `usize`.
    pub fn row_bytes(self, n_elems: usize) -> Option<usize> {
        let be = self.block_elems();
        if !n_elems.is_multiple_of(be) {
            return None;
        }
        (n_elems / be).checked_mul(self.block_bytes())
    }

    /// True for the block-quantized types (everything except F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_ids_round_trip_and_sizes_match_ggml() {
        for t in DType::ALL {
            assert_eq!(DType::from_ggml_id(t.ggml_id()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        for id in [4, 5, 9, 15, 16, 29, 31, 1000] {
            assert_eq!(DType::from_ggml_id(id), None, "id {id}");
        }
        // sizeof(block_*) from ggml-common.h, spelled out from the field lists.
        assert_eq!(DType::Q4_0.block_bytes(), 2 + 16);
        assert_eq!(DType::Q4_1.block_bytes(), 2 + 2 + 16);
        assert_eq!(DType::Q5_0.block_bytes(), 2 + 4 + 16);
        assert_eq!(DType::Q5_1.block_bytes(), 2 + 2 + 4 + 16);
        assert_eq!(DType::Q8_0.block_bytes(), 2 + 32);
        assert_eq!(DType::Q2_K.block_bytes(), 16 + 64 + 2 + 2);
        assert_eq!(DType::Q3_K.block_bytes(), 32 + 64 + 12 + 2);
        assert_eq!(DType::Q4_K.block_bytes(), 2 + 2 + 12 + 128);
        assert_eq!(DType::Q5_K.block_bytes(), 2 + 2 + 12 + 32 + 128);
        assert_eq!(DType::Q6_K.block_bytes(), 128 + 64 + 16 + 2);
    }

    #[test]
    fn row_bytes_checks_alignment_and_overflow() {
        assert_eq!(DType::F32.row_bytes(7), Some(28));
        assert_eq!(DType::F16.row_bytes(0), Some(0));
        assert_eq!(DType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(DType::Q4_0.row_bytes(33), None);
        assert_eq!(DType::Q6_K.row_bytes(512), Some(420));
        assert_eq!(DType::Q6_K.row_bytes(128), None);
        assert_eq!(DType::F32.row_bytes(usize::MAX), None);
        assert_eq!(DType::Q8_0.row_bytes(usize::MAX / 32 * 32), None);
    }
}
