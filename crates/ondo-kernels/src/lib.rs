//! ondo-kernels: quantized tensor kernels for the ondo runtime.
//!
//! * [`DType`]: the ggml tensor element types ondo understands (F32/F16/BF16, the legacy
//!   32-element quants Q4_0..Q8_0 and the 256-element K-quants Q2_K..Q6_K), with ggml's
//!   exact block layouts (llama.cpp `ggml-common.h`).
//! * [`dequantize_row`], [`dot_row`], [`matvec`]: fast paths (AVX2/FMA/F16C on x86_64,
//!   chosen at run time) with a plain scalar twin in [`reference`].
//! * [`quantize_row`]: llama.cpp's reference quantizers (`quantize_row_*_ref`).
//! * [`round_activations`]: activations rounded as llama.cpp rounds them for each weight type.
//! * [`q8`]: integer dots of Q4_0/Q4_1/Q8_0 rows with 8-bit quantized activations, one at a
//!   time ([`dot_q8`]) or as a register-blocked GEMM ([`gemm_q8`]) for many tokens;
//!   [`gemv_q8`]: the decode product, eight rows per pass; [`q4_0x8`]: Q4_0 repacked eight
//!   rows at a time.
//! * [`q8k`]: integer dots of the K-quants (Q2_K..Q6_K) with Q8_K quantized activations;
//!   [`gemm_q8k`]: their matrix-matrix product for prompt processing.
//! * [`pool`]: the low-latency thread pool for per-token parallel regions.
//! * [`ops`]: the f32 building blocks the model needs (rmsnorm, softmax, silu, dot, axpy).
//!
//! SIMD selection happens once per process; [`simd_level`] reports it, and setting the
//! environment variable `ONDO_NO_SIMD` (any value) before the first kernel call forces the
//! portable path (useful for debugging and for testing that path on x86 machines);
//! `ONDO_NO_AVX512` keeps the batched block-sum kernels on AVX2 where AVX-512 VNNI exists.

mod actq;
pub mod attn;
mod dtype;
mod error;
pub mod ggml_math;
pub mod ops;
pub mod pool;
pub mod q4_0x8;
pub mod q8;
#[cfg(target_arch = "x86_64")]
mod q8_avx2;
pub mod q8_broadcast;
#[cfg(target_arch = "x86_64")]
mod q8_gemm_avx2;
mod q8_gemv;
pub mod q8k;
#[cfg(target_arch = "x86_64")]
mod q8k_avx2;
mod q8k_gemm;
#[cfg(target_arch = "x86_64")]
mod q8k_gemm_avx2;
pub mod quant;
pub mod rows8;
pub mod rows8_sums;
mod rows8_sums_avx2;
mod rows8_sums_avx512;
pub mod rows_axpy;

pub use actq::{act_rounding, round_activations, ActRounding};
pub use dtype::DType;
pub use error::KernelError;
pub use ops::{axpy, dot_f32, rmsnorm, silu, softmax_inplace};
pub use q8::{
    dot_q8, dot_q8_reference, dot_q8_x4, gemm_q8, gemm_q8_rows, has_q8_path, quantize_q8,
    quantize_q8_into, BlockQ8,
};
pub use q8_gemv::gemv_q8;
pub use q8k::{
    dot_q8k, dot_q8k_reference, dot_q8k_x4, gemv_q8k, has_q8k_path, quantize_q8k, BlockQ8K,
};
pub use q8k_gemm::{gemm_q8k, gemm_q8k_reference};
pub use quant::{
    bf16_to_f32, dequantize_row, dot_row, f16_to_f32, f32_to_bf16, f32_to_f16, matvec,
    matvec_serial, quantize_row, reference, simd_level,
};
