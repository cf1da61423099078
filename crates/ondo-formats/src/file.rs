//! [`GgufFile`]: an opened, fully validated GGUF file backed by a read-only memory map or an
//! owned buffer.

use std::path::Path;

use crate::backing::Backing;
use crate::parse::{parse, to_u64, Parsed};
use crate::{GgufError, Metadata, TensorInfo};

/// A validated GGUF file. Every tensor's data range was checked against the file at open.
pub struct GgufFile {
    backing: Backing,
    parsed: Parsed,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.parsed.version)
            .field("file_size", &self.file_size())
            .field("kv_count", &self.parsed.metadata.len())
            .field("tensor_count", &self.parsed.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` read-only and validates it.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let backing = Backing::map(path).map_err(|e| GgufError::io_at(path, e))?;
        GgufFile::from_backing(backing)
    }

    /// Validates an in-memory GGUF file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::from_backing(Backing::Owned(bytes))
    }

    fn from_backing(backing: Backing) -> Result<GgufFile, GgufError> {
        let parsed = parse(backing.bytes())?;
        Ok(GgufFile { backing, parsed })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.parsed.version
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &Metadata {
        &self.parsed.metadata
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.parsed.tensors
    }

    /// The tensor named `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        let t = &self.parsed.tensors;
        let i = self
            .parsed
            .by_name
            .binary_search_by(|&i| t[i].name.as_str().cmp(name))
            .ok()?;
        t.get(self.parsed.by_name[i])
    }

    /// The data of tensor `t`: exactly `t.n_bytes` bytes. For a `TensorInfo` that does not
    /// belong to this file and lies outside it, returns an empty slice (never panics).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let range = self
            .parsed
            .data_offset
            .checked_add(t.offset)
            .and_then(|s| Some((s, s.checked_add(t.n_bytes)?)))
            .and_then(|(s, e)| Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?));
        range
            .and_then(|r| self.backing.bytes().get(r))
            .unwrap_or(&[])
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        to_u64(self.backing.bytes().len())
    }

    /// Absolute offset of the data section (header end rounded up to the alignment).
    pub fn data_offset(&self) -> u64 {
        self.parsed.data_offset
    }

    /// The alignment in force (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.parsed.alignment
    }

    /// Tells the OS that this process does not need tensor `t`'s pages resident any more
    /// (for example after copying them into another layout): they leave the process's
    /// resident set, stay in the page cache, and come back on the next access. A hint: errors
    /// are ignored, and it does nothing for owned buffers.
    pub fn release_pages(&self, t: &TensorInfo) {
        self.release_tensor_range(t, 0, usize::MAX);
    }

    /// [`GgufFile::release_pages`] for bytes `start..start + len` of tensor `t`'s data only
    /// (clamped to the tensor; whole pages inside the range).
    pub fn release_tensor_range(&self, t: &TensorInfo, start: usize, len: usize) {
        let Backing::Mmap(map) = &self.backing else {
            return;
        };
        let all = self.tensor_data(t);
        let from = start.min(all.len());
        let data = &all[from..from.saturating_add(len).min(all.len())];
        if data.is_empty() {
            return;
        }
        const PAGE: usize = 4096;
        let start = data.as_ptr() as usize - map.as_ptr() as usize;
        let (first, end) = (
            start.next_multiple_of(PAGE),
            (start + data.len()) / PAGE * PAGE,
        );
        if end > first {
            // SAFETY: the map is a read-only shared file mapping; MADV_DONTNEED only drops
            // this process's page-table entries, and later reads fault the same file contents
            // back in from the page cache, so every outstanding borrow still sees the same
            // bytes. The range lies inside the map (it is inside `data`).
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, end - first)
            };
        }
    }

    /// Whether the file is memory-mapped (as opposed to an owned buffer).
    pub fn is_mmapped(&self) -> bool {
        matches!(self.backing, Backing::Mmap(_))
    }
}
