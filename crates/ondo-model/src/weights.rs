//! `QWeight`: a 2-D weight matrix in any supported dtype, either borrowed from the mapped
//! model file or owned (tests, merged or converted weights). The model sees only this type.

use std::cell::RefCell;
use std::sync::Arc;

use ondo_formats::{GgufFile, TensorInfo};
use ondo_kernels::DType;

use crate::ModelError;

thread_local! {
    /// One row's bytes, unpacked from a repacked matrix for an embedding lookup.
    static ROW: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone)]
enum Storage {
    /// Tensor `index` of the mapped file.
    Mapped {
        file: Arc<GgufFile>,
        index: usize,
    },
    Owned(Arc<Vec<u8>>),
    /// A copy in anonymous memory with transparent huge pages requested (see
    /// [`QWeight::prepare_for_cpu`]).
    Anon(Arc<memmap2::Mmap>),
}

/// A row-major matrix: `rows` rows of `cols` elements, each row `dtype.row_bytes(cols)` bytes.
#[derive(Clone)]
pub struct QWeight {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    storage: Storage,
    /// Rows repacked eight at a time (`ondo_kernels::q4_0x8` for Q4_0, `ondo_kernels::rows8`
    /// for Q4_1/Q8_0) for the integer path, in anonymous memory with huge pages requested.
    packed: Option<Arc<memmap2::Mmap>>,
}

impl QWeight {
    /// Wraps owned bytes; the length must match the shape.
    pub fn from_bytes(
        dtype: DType,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, ModelError> {
        let expected = dtype
            .row_bytes(cols)
            .and_then(|r| r.checked_mul(rows))
            .ok_or_else(|| {
                ModelError::BadHyperparameter(format!(
                    "{rows}x{cols} {} is too large",
                    dtype.name()
                ))
            })?;
        if bytes.len() != expected {
            return Err(ModelError::BadHyperparameter(format!(
                "{rows}x{cols} {} needs {expected} bytes, got {}",
                dtype.name(),
                bytes.len()
            )));
        }
        Ok(QWeight {
            dtype,
            rows,
            cols,
            storage: Storage::Owned(Arc::new(bytes)),
            packed: None,
        })
    }

    /// An f32 matrix from values.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, ModelError> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::from_bytes(DType::F32, rows, cols, bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { file, index } => file.tensor_data(&file.tensors()[*index]),
            Storage::Owned(b) => b,
            Storage::Anon(m) => m,
        }
    }

    /// Readies a weight for the CPU kernels: Q4_0 (rows a multiple of 8) gets the Q4_0x8
    /// repacked copy the integer path prefers, Q4_1 and Q8_0 the `rows8` one (which computes
    /// exactly what ggml's row dot does); other matrices of 1 MB or more are copied as
    /// they are. Both copies live in anonymous memory with transparent huge pages requested
    /// (2 MB pages: fewer TLB misses, and hardware prefetchers that do not stop every 4 KB),
    /// and the file pages they came from are released, so the resident set holds one copy.
    /// The file pages come back (from the page cache) only if the plain rows are used again
    /// (`Numerics::Exact`, embedding lookups of a tied output).
    pub fn prepare_for_cpu(&mut self) -> Result<(), ModelError> {
        let Storage::Mapped { file, index } = &self.storage else {
            return Ok(());
        };
        let (file, index) = (Arc::clone(file), *index);
        let src = self.bytes();
        let aligned = self.rows % 8 + self.cols % 32 == 0;
        let layout = self.dtype == DType::Q4_0 || ondo_kernels::rows8::has_rows8(self.dtype);
        let repack = layout && aligned && self.rows > 0;
        if !repack && src.len() < (1 << 20) {
            return Ok(());
        }
        let io = |e: std::io::Error| ModelError::BadHyperparameter(format!("copying weights: {e}"));
        let mut buf = memmap2::MmapMut::map_anon(src.len()).map_err(io)?;
        #[cfg(target_os = "linux")]
        let _ = buf.advise(memmap2::Advice::HugePage);
        // In chunks of rows, each chunk's source pages released as soon as it is copied, so
        // the resident set never holds a whole matrix twice. (A group of 8 repacked rows
        // occupies the same byte range as the 8 plain rows.)
        let info = &file.tensors()[index];
        let row_len = self.row_bytes();
        let chunk_rows = ((4 << 20) / row_len.max(1)).max(8) / 8 * 8;
        let mut r0 = 0;
        while r0 < self.rows {
            let r1 = (r0 + chunk_rows).min(self.rows);
            let range = r0 * row_len..r1 * row_len;
            let (s, d) = (&src[range.clone()], &mut buf[range.clone()]);
            match (repack, self.dtype) {
                (true, DType::Q4_0) => {
                    ondo_kernels::q4_0x8::repack_q4_0x8_into(s, r1 - r0, self.cols, d)
                }
                (true, dtype) => ondo_kernels::rows8::repack_rows8(dtype, s, r1 - r0, self.cols, d),
                (false, _) => d.copy_from_slice(s),
            }
            file.release_tensor_range(info, range.start, range.len());
            r0 = r1;
        }
        let copy = Arc::new(buf.make_read_only().map_err(io)?);
        if repack {
            self.packed = Some(copy);
        } else {
            self.storage = Storage::Anon(copy);
        }
        Ok(())
    }

    /// The repacked rows (Q4_0x8 for Q4_0, rows8 for Q4_1/Q8_0), when
    /// [`QWeight::prepare_for_cpu`] made them.
    pub fn packed(&self) -> Option<&[u8]> {
        self.packed.as_deref().map(|m| &m[..])
    }

    pub fn row_bytes(&self) -> usize {
        self.bytes().len() / self.rows.max(1)
    }

    /// Row `r` dequantized into `out` (`cols` floats). A repacked matrix answers from its
    /// resident copy (the file pages were released; touching them would fault 64 KB around
    /// each looked-up row back in).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        if let Some(p) = self.packed() {
            return ROW.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.resize(rb, 0);
                if self.dtype == DType::Q4_0 {
                    ondo_kernels::q4_0x8::unpack_row(p, self.cols, r, &mut buf);
                } else {
                    ondo_kernels::rows8::unpack_row(self.dtype, p, self.cols, r, &mut buf);
                }
                ondo_kernels::dequantize_row(self.dtype, &buf, out);
            });
        }
        ondo_kernels::dequantize_row(self.dtype, &self.bytes()[r * rb..(r + 1) * rb], out);
    }

    /// All of it as f32 (for small tensors such as norms).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        if self.cols > 0 {
            ondo_kernels::dequantize_row(self.dtype, self.bytes(), &mut out);
        }
        out
    }
}

/// Looks tensors up by name and checks dtype support and shape before anything uses them.
pub(crate) struct TensorLoader<'a> {
    pub file: &'a Arc<GgufFile>,
}

impl TensorLoader<'_> {
    fn find(&self, name: &str) -> Option<(usize, &TensorInfo)> {
        self.file
            .tensors()
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    /// A matrix with ggml dims [cols, rows] (ggml lists the contiguous dimension first).
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QWeight, ModelError> {
        let (index, t) = self
            .find(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        let expected = vec![cols as u64, rows as u64];
        let dims_match = t.dims == expected || (rows == 1 && t.dims == [cols as u64]);
        if !dims_match {
            return Err(ModelError::BadShape {
                name: name.to_string(),
                expected,
                found: t.dims.clone(),
            });
        }
        let dtype =
            DType::from_ggml_id(t.ggml_type.0).ok_or_else(|| ModelError::UnsupportedType {
                name: name.to_string(),
                type_name: t
                    .ggml_type
                    .name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("#{}", t.ggml_type.0)),
                supported: DType::ALL
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(QWeight {
            dtype,
            rows,
            cols,
            storage: Storage::Mapped {
                file: Arc::clone(self.file),
                index,
            },
            packed: None,
        })
    }

    /// A 1-D tensor of `n` values, converted to f32.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self.matrix(name, 1, n)?.to_f32())
    }
}
