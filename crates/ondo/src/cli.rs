//! Command-line arguments (clap derive). Defaults follow llama.cpp's where both have a flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ondo",
    version,
    about = "Run Llama-family language models on your own device",
    long_about = "Run Llama-family language models (GGUF) on the CPU.\n\nThe default model is SmolLM2-135M-Instruct (Q4_1); it is fetched into $ONDO_HOME (default ~/.cache/ondo) the first time it is needed.\n\nExamples:\n  ondo run --chat -p \"What is the capital of France?\"\n  ondo chat\n  ondo tokenize -p \"Hello world\"\n  ondo perplexity -m model.gguf -f text.txt -c 512"
)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(short = 't', long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a continuation of a prompt (streams to stdout).
    Run(RunArgs),
    /// Interactive multi-turn chat in the terminal.
    Chat(ChatArgs),
    /// Print the token ids of a text.
    Tokenize(TokenizeArgs),
    /// Perplexity of a text file, in non-overlapping chunks of CTX tokens.
    Perplexity(PerplexityArgs),
    /// Describe a model file: architecture, sizes, quant types, tokenizer, template.
    Info(InfoArgs),
    /// Measure prompt-processing and generation speed (llama-bench style).
    Bench(BenchArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (see docs/serve.md).
    Serve(ServeArgs),
    /// Teach the model a task from JSONL data: LoRA on the frozen base, or every weight with
    /// --full (see `--help`).
    Finetune(FinetuneArgs),
    /// Convert a LoRA adapter between PEFT (HF) and llama.cpp's GGUF adapter format.
    ConvertLora(ConvertLoraArgs),
    /// Bake LoRA adapters into a new GGUF (base + scale · B A per adapted matrix).
    Merge(MergeArgs),
    /// Depth up-scaling (SOLAR): a deeper model from copies of the base's layers.
    Upscale(UpscaleArgs),
    /// Fetch the default model into the cache (no-op when present).
    Pull,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArg {
    /// A GGUF file, or the name of a known model (default: smollm2, fetched if missing).
    #[arg(short = 'm', long = "model")]
    pub model: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct LoraArgs {
    /// A LoRA adapter (llama.cpp's GGUF adapter format) to apply, with an optional scale
    /// (FILE:SCALE, default 1); repeat for several.
    #[arg(long = "lora", value_name = "FILE[:SCALE]")]
    pub lora: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// Maximum tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    pub n_predict: usize,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Presence penalty (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// RNG seed (default: random); the same seed reproduces a run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Context size in tokens (default: 4096, at most the model's).
    #[arg(short = 'c', long = "ctx")]
    pub ctx: Option<usize>,
    /// `text`; `json`: sample only tokens that keep the reply one JSON object, and stop when
    /// it closes; or the path of a JSON Schema file: a reply valid under it (the subset of
    /// the server's `response_format` json_schema). Ask for JSON in the prompt too.
    #[arg(long, default_value = "text", value_name = "text|json|SCHEMA.json")]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// The prompt.
    #[arg(short = 'p', long)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(short = 's', long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sample: SampleArgs,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// System message.
    #[arg(short = 's', long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sample: SampleArgs,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Text to tokenize.
    #[arg(
        short = 'p',
        long,
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    pub prompt: Option<String>,
    /// File to tokenize.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Print a JSON array of ids.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Text file to score.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Chunk size in tokens.
    #[arg(short = 'c', long = "ctx", default_value_t = 512)]
    pub ctx: usize,
    /// Print {"ppl":…,"tokens_scored":…}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A GGUF file or a known model name.
    pub model: String,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Prompt tokens to process (pp).
    #[arg(short = 'p', long = "prompt", default_value_t = 128)]
    pub prompt: usize,
    /// Tokens to generate (tg).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub n_gen: usize,
    /// Measure the machine's memory read bandwidth (GB/s, with -t threads) and the cost of an
    /// empty parallel region (ns: the round trips between the cores) instead of a model.
    #[arg(long)]
    pub bandwidth: bool,
    /// Positions already in the cache before the prompt.
    #[arg(long, default_value_t = 0)]
    pub depth: usize,
    /// Repetitions after one warm-up run; figures are medians.
    #[arg(short = 'r', long, default_value_t = 3)]
    pub reps: usize,
    /// Skip the warm-up run (for long --depth runs, where the depth prefill warms up anyway).
    #[arg(long)]
    pub no_warmup: bool,
    /// Decode N sequences together, as `ondo serve --parallel N` does (its batched pass and
    /// numerics): each gets its own -p token prompt, then -n steps advance all of them; tg is
    /// the aggregate tokens/s (llama-batched-bench's S_TG).
    #[arg(long, value_name = "N", conflicts_with = "depth",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Address to bind (loopback by default; 0.0.0.0 exposes the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Sum Q4_1/Q8_0 products in llama.cpp's order, as `ondo run` does (the same answers as
    /// the CLI, about half the batched throughput), instead of the server's block-sum kernels.
    #[arg(long)]
    pub llamacpp_numerics: bool,
    /// Port (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Context per sequence in tokens (default: 4096, at most the model's).
    #[arg(short = 'c', long = "ctx")]
    pub ctx: Option<usize>,
    /// Sequences decoded together, each with its own KV cache slot.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Requests that may wait for a slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health (also $ONDO_API_KEY).
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from the first line of a file.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Also let web pages from this origin call the server (e.g. https://chat.example.com);
    /// repeatable, `*` allows every page. Pages on localhost are always allowed; a browser
    /// request from any other origin gets 403, and a loopback-bound server answers only to
    /// loopback host names and these origins' hosts.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// No request log: by default each generation prints one line to stderr when it ends
    /// (tokens, cache, time to first token, rate) and each refused request its status.
    #[arg(short, long)]
    pub quiet: bool,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// A LoRA adapter requests can choose by naming it as their `model` (NAME=FILE[:SCALE],
    /// listed by /v1/models); repeatable. `--lora` adapters apply to every request.
    #[arg(long = "adapter", value_name = "NAME=FILE[:SCALE]")]
    pub adapters: Vec<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  ondo upscale -m base.gguf -o deeper.gguf --drop 8        # n layers -> 2(n-8), as SOLAR 10.7B\n  ondo upscale -m base.gguf -o deeper.gguf --layers 0..24,8..32   # mergekit passthrough slices"
)]
pub struct UpscaleArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Where to write the deeper GGUF.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Two copies of the base, the last M layers dropped from the first and the first M from
    /// the second, concatenated: 2(n - M) layers.
    #[arg(long, conflicts_with = "layers", required_unless_present = "layers")]
    pub drop: Option<usize>,
    /// Explicit layer slices, half-open and comma-separated (e.g. 0..24,8..32), concatenated
    /// in order, as mergekit's passthrough merge takes them.
    #[arg(long)]
    pub layers: Option<String>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Adapters to bake in (FILE[:SCALE], llama.cpp's GGUF adapter format); repeatable.
    #[arg(long = "lora", value_name = "FILE[:SCALE]", required = true)]
    pub lora: Vec<String>,
    /// Where to write the merged GGUF.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Type of the adapted matrices: keep (each one's own type), f32, f16, bf16, q8_0, q5_1,
    /// q5_0, q4_1 or q4_0. Other matrices are copied unchanged.
    #[arg(long = "type", default_value = "keep")]
    pub dtype: String,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ConvertLoraArgs {
    /// The base model the adapter belongs to (for its shapes and head counts).
    #[command(flatten)]
    pub model: ModelArg,
    /// The adapter: a PEFT directory or adapter_model.safetensors, or a GGUF adapter.
    pub input: PathBuf,
    /// Output: a .gguf file (llama.cpp's adapter format) or a directory (PEFT).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Data: one JSON object per line: {\"messages\": [...]} (loss on the assistant turns), {\"prompt\": ..., \"completion\": ...} (loss on the completion) or {\"text\": ...} (loss on all of it).\n\nExample:\n  ondo finetune --data train/tasks/dates/train.jsonl -o dates.gguf --epochs 1\n  ondo run --chat --lora dates.gguf -p \"March 5, 2021\"\n  ondo upscale --drop 8 -o deep.gguf && ondo finetune -m deep.gguf --full --data text.jsonl -o deep-trained.gguf"
)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Training data (JSONL); repeat to mix files (e.g. a task and replay text).
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Held-out data (JSONL): its loss is reported after every epoch.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// The adapter to write: NAME.gguf (llama.cpp's format) or a directory (PEFT); with
    /// --full, the fine-tuned model (NAME.gguf).
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Projections to adapt, comma-separated: q,k,v,o,gate,up,down.
    #[arg(long, default_value = "q,k,v,o")]
    pub targets: String,
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Peak learning rate (linear warm-up, then cosine decay to a tenth of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Sequences per micro-batch, run side by side in one pass, their loss the mean over all
    /// their trained tokens (more memory; on 2 cores no faster than --grad-accum).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Micro-batches per optimizer step (gradient accumulation): a step sees batch × grad-accum
    /// sequences.
    #[arg(long, default_value_t = 4)]
    pub grad_accum: usize,
    /// Longest training sequence in tokens (longer ones are cut).
    #[arg(short = 'c', long = "ctx", default_value_t = 256)]
    pub ctx: usize,
    /// Stop after this many optimizer steps (default: the epochs' worth).
    #[arg(long)]
    pub max_steps: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save a checkpoint here every --save-every steps and at the end.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    pub save_every: u64,
    /// Continue the run a checkpoint holds (same data and settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Full-parameter fine-tuning: every weight trains (in f32; a quantized base starts from
    /// its dequantized values) and -o names the new model, a .gguf.
    #[arg(long)]
    pub full: bool,
    /// LoRA on the base dequantized to f32 (about 4x its memory) instead of on the quantized
    /// matrices inference uses.
    #[arg(long)]
    pub f32_base: bool,
    /// With --full: the type of the written matrices (f32, f16, bf16, q8_0, q5_1, q5_0, q4_1,
    /// q4_0); norms stay f32.
    #[arg(long = "type", default_value = "f32")]
    pub dtype: String,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
}
