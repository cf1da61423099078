//! `QWeight`: a 2-D weight matrix in any supported dtype, either borrowed from the mapped
//! model file or owned (tests, merged or converted weights). The model sees only this type.

use std::cell::RefCell;
use std::sync::Arc;

use ondo_formats::{GgufFile, TensorInfo};
use ondo_kernels::rows8::Layout;
use ondo_kernels::DType;

use crate::lora::LoraDelta;
use crate::ModelError;

/// A weight's repacked rows: a range of the model's one anonymous map of repacked weights.
#[derive(Clone)]
struct Packed {
    map: Arc<memmap2::Mmap>,
    start: usize,
    len: usize,
    layout: Layout,
}

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
}

/// A row-major matrix: `rows` rows of `cols` elements, each row `dtype.row_bytes(cols)` bytes.
#[derive(Clone)]
pub struct QWeight {
    pub dtype: DType,
    pub rows: usize,
    pub cols: usize,
    storage: Storage,
    /// Rows repacked eight at a time (`ondo_kernels::q4_0x8` for Q4_0, `ondo_kernels::rows8`
    /// for Q4_1/Q8_0) for the integer path, in anonymous memory.
    packed: Option<Packed>,
    /// LoRA adapters added to every product with this matrix (`crate::lora`).
    pub(crate) lora: Vec<Arc<LoraDelta>>,
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
            lora: Vec::new(),
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
        }
    }

    /// Readies a weight for the CPU kernels: Q4_0 (rows a multiple of 8) gets the Q4_0x8
    /// repacked copy the integer path prefers, Q4_1 and Q8_0 the `rows8` one (which computes
    /// exactly what ggml's row dot does); other types stay in the mapped file. The copy lives
    /// in anonymous memory, populated in one go (no page fault per 4 KB), and the file pages
    /// it came from are released chunk by chunk, so the resident set holds one copy. The file
    /// pages come back (from the page cache) only if the plain rows are used again
    /// (`Numerics::Exact`). (Huge pages were tried: direct compaction made loading seconds
    /// slower on a fragmented machine for a few percent of decode speed.)
    pub fn prepare_for_cpu(&mut self) -> Result<(), ModelError> {
        prepare_all(vec![self], false)
    }

    fn repackable(&self) -> bool {
        let aligned = self.rows % 8 + self.cols % 32 == 0;
        matches!(self.storage, Storage::Mapped { .. })
            && ondo_kernels::rows8::has_layout(self.dtype)
            && aligned
            && self.rows > 0
            && self.packed.is_none()
    }

    /// The layout [`QWeight::prepare_for_cpu`] (or the model's loading) gives this matrix:
    /// Q4_1 and Q8_0 in strips if `strips`.
    fn layout(&self, strips: bool) -> Layout {
        Layout::new(
            self.dtype,
            self.rows,
            self.cols,
            strips && matches!(self.dtype, DType::Q4_1 | DType::Q8_0),
        )
    }

    /// Repacks into `dst` in chunks of rows, each chunk's source pages released as soon as it
    /// is copied, so the resident set never holds a whole matrix twice. (A group of 8
    /// repacked rows occupies the same byte range as the 8 plain rows, and a chunk of whole
    /// Q4_1 super-groups the same range as its rows, laid out as a matrix of its own.)
    fn repack_into(&self, dst: &mut [u8], strips: bool) {
        let src = self.bytes();
        let row_len = self.row_bytes();
        let unit = 8 * ondo_kernels::rows8::SUPER_GROUPS;
        let chunk_rows = ((4 << 20) / row_len.max(1)).max(unit) / unit * unit;
        let mut r0 = 0;
        while r0 < self.rows {
            let r1 = (r0 + chunk_rows).min(self.rows);
            let range = r0 * row_len..r1 * row_len;
            let (s, d) = (&src[range.clone()], &mut dst[range.clone()]);
            let lay = Layout::new(
                self.dtype,
                r1 - r0,
                self.cols,
                self.layout(strips).in_strips(),
            );
            ondo_kernels::rows8::repack_rows8(lay, s, d);
            if let Storage::Mapped { file, index } = &self.storage {
                file.release_tensor_range(&file.tensors()[*index], range.start, range.len());
            }
            r0 = r1;
        }
    }

    /// The repacked rows (Q4_0x8 for Q4_0, rows8 for Q4_1/Q8_0), when
    /// [`QWeight::prepare_for_cpu`] made them.
    pub fn packed(&self) -> Option<&[u8]> {
        self.packed
            .as_ref()
            .map(|p| &p.map[p.start..p.start + p.len])
    }

    /// How [`QWeight::packed`]'s rows are laid out.
    pub fn packed_layout(&self) -> Option<Layout> {
        self.packed.as_ref().map(|p| p.layout)
    }

    pub fn row_bytes(&self) -> usize {
        self.bytes().len() / self.rows.max(1)
    }

    /// Row `r` dequantized into `out` (`cols` floats). A repacked matrix answers from its
    /// resident copy (the file pages were released; touching them would fault 64 KB around
    /// each looked-up row back in).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        if let (Some(p), Some(lay)) = (self.packed(), self.packed_layout()) {
            return ROW.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.resize(rb, 0);
                ondo_kernels::rows8::unpack_row(lay, p, r, &mut buf);
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
            lora: Vec::new(),
        })
    }

    /// A 1-D tensor of `n` values, converted to f32.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self.matrix(name, 1, n)?.to_f32())
    }
}

/// Readies every given weight ([`QWeight::prepare_for_cpu`]): the repacked copies share one
/// anonymous map, populated in one go; whole matrices are shared among the pool's threads,
/// largest first. Q4_1 matrices are laid out in strips if `strips` (what the batched
/// products of `Numerics::BlockSums` read fastest; see `ondo_kernels::rows8`).
pub(crate) fn prepare_all(mut ws: Vec<&mut QWeight>, strips: bool) -> Result<(), ModelError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    ws.retain(|w| w.repackable());
    if ws.is_empty() {
        return Ok(());
    }
    ws.sort_by_key(|w| std::cmp::Reverse(w.bytes().len()));
    let total: usize = ws.iter().map(|w| w.bytes().len()).sum();
    let io = |e: std::io::Error| ModelError::BadHyperparameter(format!("repacking: {e}"));
    let mut buf = memmap2::MmapOptions::new()
        .len(total)
        .populate()
        .map_anon()
        .map_err(io)?;
    let mut places = Vec::with_capacity(ws.len());
    {
        let mut rest: &mut [u8] = &mut buf[..];
        let mut jobs = Vec::with_capacity(ws.len());
        let mut start = 0;
        for w in ws {
            let len = w.bytes().len();
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            places.push((start, len));
            start += len;
            jobs.push(Mutex::new((w, mine)));
        }
        let next = AtomicUsize::new(0);
        ondo_kernels::pool::run(&|_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            let mut job = job.lock().unwrap_or_else(|e| e.into_inner());
            let (w, dst) = &mut *job;
            w.repack_into(dst, strips);
        });
        let weights: Vec<&mut QWeight> = jobs
            .into_iter()
            .map(|job| job.into_inner().unwrap_or_else(|e| e.into_inner()).0)
            .collect();
        let map = Arc::new(buf.make_read_only().map_err(io)?);
        for (w, (start, len)) in weights.into_iter().zip(places.drain(..)) {
            w.packed = Some(Packed {
                map: Arc::clone(&map),
                start,
                len,
                layout: w.layout(strips),
            });
        }
    }
    Ok(())
}
