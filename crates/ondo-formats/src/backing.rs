//! The bytes behind an opened file: a read-only memory map of it, or an owned buffer (an
//! empty file, or bytes handed in). Shared by the GGUF and safetensors readers.

use std::path::Path;

pub(crate) enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    /// Maps `path` read-only (an empty file becomes an empty buffer: an empty mapping is an
    /// error on some platforms).
    pub(crate) fn map(path: &Path) -> std::io::Result<Backing> {
        let file = std::fs::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Backing::Owned(Vec::new()));
        }
        // SAFETY: the mapping is read-only and private to this process. Memory-mapped files
        // are UB in Rust only if another process modifies or truncates the file while it is
        // mapped; model and adapter files are treated as immutable while they are open (the
        // contract every mmap-based loader relies on). All reads are bounds-checked against
        // the length observed at map time.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        Ok(Backing::Mmap(map))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}
