//! BPE pre-tokenizers: the per-`tokenizer.ggml.pre` regex lists of llama.cpp and the
//! way llama.cpp applies them (`unicode_regex_split`): each expression splits every
//! piece produced by the previous one (matches *and* the gaps between them become
//! pieces); the GPT-2 and Llama-3 expressions use hand-written splitters, and other
//! expressions that use `\p{..}` classes run on a "collapsed" text where each
//! non-ASCII codepoint is replaced by a stand-in for its category.

use crate::unicode::{
    flags, is_whitespace, F_ACCENT, F_DEFINED, F_LETTER, F_NUMBER, F_PUNCT, F_SYMBOL, F_WHITESPACE,
};
use crate::TextError;
use fancy_regex::{Regex, RegexBuilder};

#[allow(dead_code)] // documents the hand-written splitter
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
#[allow(dead_code)] // documents the hand-written splitter
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+";
const DEEPSEEK3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
const BAILING: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const MINICPM5: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const EXAONE_MOE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+";
const JAIS2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}";
const GRANITE_EMB: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const YOUTU_CJK: &str = r"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+";
const YOUTU_MAIN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SPARK_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##;
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
const CJK_HANGUL: &str = r"[一-龥ࠀ-一가-퟿]+";
const CJK_KANA: &str = r"[一-龥぀-ゟ゠-ヿ]+";

/// Which splitting rules a `tokenizer.ggml.pre` name selects.
#[derive(Debug, Clone, Copy)]
enum Pre {
    Default,
    Llama3,
    Dbrx,
    Jais2,
    DeepseekLlm,
    Deepseek3,
    Spark25,
    Youtu,
    DeepseekCoder,
    Falcon,
    Starcoder,
    Gpt2,
    Qwen2,
    Qwen35,
    Bloom,
    ChatGlm4,
    Viking,
    Tekken,
    Gpt4o,
    GraniteEmb,
    SeedCoder,
    Bailing,
    Ufakzeka,
    Laguna,
    ExaoneMoe,
    MiniCpm5,
}

/// Flags that llama.cpp sets together with the pre-tokenizer type.
#[derive(Debug, Clone)]
pub(crate) struct PreInfo {
    /// The name was recognised (otherwise the default rules are used).
    pub known: bool,
    /// Whole pre-tokens found in the vocab are emitted without running merges.
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` when the GGUF does not say.
    pub default_add_bos: bool,
}

fn lookup(name: &str) -> Option<(Pre, bool, bool)> {
    // (pre, ignore_merges, default add_bos)
    let r = match name {
        "default" => (Pre::Default, false, false),
        "minicpm5" => (Pre::MiniCpm5, true, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => (Pre::Llama3, true, true),
        "deepseek-llm" => (Pre::DeepseekLlm, false, false),
        "deepseek-coder" => (Pre::DeepseekCoder, false, false),
        "deepseek-v3" | "hunyuan-dense" | "hy_v4" | "joyai-llm" => (Pre::Deepseek3, false, false),
        "spark2_5" => (Pre::Spark25, false, false),
        "youtu" => (Pre::Youtu, true, false),
        "falcon" => (Pre::Falcon, false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => (Pre::Starcoder, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" | "exaone4" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => {
            (Pre::Gpt2, false, false)
        }
        "jais-2" => (Pre::Jais2, false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan"
        | "solar-open" | "megrez" | "grok-2" => (Pre::Qwen2, false, false),
        "qwen35" => (Pre::Qwen35, false, false),
        "dbrx" | "smaug-bpe" => (Pre::Dbrx, false, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => (Pre::Bloom, false, false),
        "glm4" | "chatglm-bpe" => (Pre::ChatGlm4, false, false),
        "viking" => (Pre::Viking, false, false),
        "tekken" => (Pre::Tekken, true, true),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => (Pre::Gpt4o, false, false),
        "granite-embed-multi-97m" => (Pre::GraniteEmb, true, false),
        "seed-coder" => (Pre::SeedCoder, false, false),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => (Pre::Bailing, false, false),
        "ufakzeka" => (Pre::Ufakzeka, false, false),
        "laguna" => (Pre::Laguna, false, false),
        "exaone-moe" => (Pre::ExaoneMoe, false, false),
        _ => return None,
    };
    Some(r)
}

/// A splitting stage.
enum Stage {
    Gpt2,
    Llama3,
    /// A general regex; `collapsed` when it was rewritten to run on the collapsed text.
    Regex {
        re: Regex,
        collapsed: bool,
    },
}

/// A compiled pre-tokenizer.
pub(crate) struct PreTokenizer {
    stages: Vec<Stage>,
}

impl std::fmt::Debug for PreTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreTokenizer({} stages)", self.stages.len())
    }
}

const C_OTHER: char = '\u{E0D0}';
const C_NUMBER: char = '\u{E0D1}';
const C_LETTER: char = '\u{E0D2}';
const C_PUNCT: char = '\u{E0D3}';
const C_ACCENT: char = '\u{E0D4}';
const C_SYMBOL: char = '\u{E0D5}';

/// Stand-in for one codepoint in the collapsed text (llama.cpp's category bytes).
fn collapse(c: char) -> char {
    if (c as u32) < 128 {
        return c;
    }
    if is_whitespace(c) {
        return '\u{0B}';
    }
    let f = flags(c);
    // llama.cpp keys on the single category flag; codepoints in other categories
    // (controls, separators, unassigned) use the fallback.
    if f & F_NUMBER != 0 {
        C_NUMBER
    } else if f & F_LETTER != 0 {
        C_LETTER
    } else if f & F_PUNCT != 0 {
        C_PUNCT
    } else if f & F_ACCENT != 0 {
        C_ACCENT
    } else if f & F_SYMBOL != 0 {
        C_SYMBOL
    } else {
        C_OTHER
    }
}

/// Rewrite `\p{..}` classes into the collapsed alphabet, as llama.cpp does.
fn collapse_regex(expr: &str) -> Option<String> {
    fn class_for(p: &str) -> Option<(char, &'static str)> {
        Some(match p {
            "N" => (C_NUMBER, "0-9"),
            "L" | "Lu" | "Ll" | "Lt" | "Lm" | "Lo" => (C_LETTER, "A-Za-z"),
            "P" => (C_PUNCT, r"!-#%-*,-/:-;?-@\[-\]_\{\}"),
            "M" => (C_ACCENT, ""),
            "S" => (C_SYMBOL, r"\$\+<->^`\|"),
            _ => return None,
        })
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() * 2);
    let mut inside = false;
    let mut used = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' && (i == 0 || chars[i - 1] != '\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && c == ']' && chars[i - 1] != '\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if c == '\\' && i + 3 < chars.len() && chars[i + 1] == 'p' && chars[i + 2] == '{' {
            if let Some(close) = chars[i + 3..].iter().position(|&x| x == '}') {
                let name: String = chars[i + 3..i + 3 + close].iter().collect();
                if let Some((code, ascii)) = class_for(&name) {
                    used = true;
                    if !inside {
                        out.push('[');
                    }
                    out.push(code);
                    out.push_str(ascii);
                    if !inside {
                        out.push(']');
                    }
                    i += 3 + close + 1;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    used.then_some(out)
}

fn compile(expr: &str) -> Result<Stage, TextError> {
    let (src, collapsed) = match collapse_regex(expr) {
        Some(s) => (s, true),
        None => (expr.to_string(), false),
    };
    let re = RegexBuilder::new(&src)
        .backtrack_limit(10_000_000)
        .build()
        .map_err(|e| TextError::InvalidVocab(format!("pre-tokenizer regex {expr:?}: {e}")))?;
    Ok(Stage::Regex { re, collapsed })
}

enum S<'a> {
    Gpt2,
    Llama3,
    Re(&'a str),
}

fn stages_for(pre: Pre) -> Vec<S<'static>> {
    use S::*;
    match pre {
        Pre::Default => vec![
            Re(r"[\p{P}\$\+<=>\^~\|]+"),
            Gpt2,
            Re(r"\p{N}+"),
            Re(r"[0-9][0-9][0-9]"),
        ],
        Pre::Llama3 | Pre::Dbrx | Pre::ChatGlm4 => vec![Llama3],
        Pre::Jais2 => vec![Re(JAIS2)],
        Pre::DeepseekLlm => vec![
            Re(r"[\r\n]"),
            Re(DEEPSEEK_LLM_LETTERS),
            Re(r"\s?[!-/:-~！-／：-～‘-‟　-。]+"),
            Re(r"\s+$"),
            Re(CJK_HANGUL),
            Re(r"\p{N}+"),
        ],
        Pre::Deepseek3 => vec![Re(r"\p{N}{1,3}"), Re(CJK_KANA), Re(DEEPSEEK3_MAIN)],
        Pre::Spark25 => vec![
            Re(r"\p{N}{1,3}"),
            Re(CJK_KANA),
            Re(SPARK_MAIN),
            Re(r"\p{N}"),
        ],
        Pre::Youtu => vec![Re(YOUTU_CJK), Re(YOUTU_MAIN)],
        Pre::DeepseekCoder => vec![
            Re(r"[\r\n]"),
            Re(r"\s?\p{L}+"),
            Re(r"\s?\p{P}+"),
            Re(CJK_HANGUL),
            Re(r"\p{N}"),
        ],
        Pre::Falcon => vec![Re(r"[\p{P}\$\+<=>\^~\|`]+"), Gpt2, Re(r"[0-9][0-9][0-9]")],
        Pre::Starcoder => vec![Re(r"\p{N}"), Gpt2],
        Pre::Gpt2 => vec![Gpt2],
        Pre::Qwen2 => vec![Re(QWEN2)],
        Pre::Qwen35 => vec![Re(QWEN35)],
        Pre::Bloom => vec![Re(BLOOM)],
        Pre::Viking => vec![Re(BLOOM), Re(r"\p{N}")],
        Pre::Tekken => vec![Re(TEKKEN)],
        Pre::Gpt4o => vec![Re(GPT4O)],
        Pre::GraniteEmb => vec![Re(GRANITE_EMB)],
        Pre::SeedCoder => vec![Re(SEED_CODER)],
        Pre::Bailing => vec![Re(BAILING)],
        Pre::Ufakzeka => vec![Re(UFAKZEKA)],
        Pre::Laguna => vec![Re(r"[^\n]+|[\n]+"), Re(QWEN2)],
        Pre::ExaoneMoe => vec![Re(EXAONE_MOE)],
        Pre::MiniCpm5 => vec![Re(r"\p{N}{1,3}"), Re(MINICPM5)],
    }
}

impl PreTokenizer {
    /// Build the pre-tokenizer for a `tokenizer.ggml.pre` value (`None` or unknown
    /// names give llama.cpp's "default" rules; `info.known` tells which).
    pub(crate) fn new(name: Option<&str>) -> Result<(PreTokenizer, PreInfo), TextError> {
        let (pre, ignore_merges, default_add_bos, known) = match name.and_then(lookup) {
            Some((p, im, ab)) => (p, im, ab, true),
            None => (Pre::Default, false, false, false),
        };
        let mut stages = Vec::new();
        for s in stages_for(pre) {
            stages.push(match s {
                S::Gpt2 => Stage::Gpt2,
                S::Llama3 => Stage::Llama3,
                S::Re(e) => compile(e)?,
            });
        }
        let info = PreInfo {
            known,
            ignore_merges,
            default_add_bos,
        };
        Ok((PreTokenizer { stages }, info))
    }

    /// Split `text` into pre-tokens (as UTF-8 strings, not yet byte-encoded).
    pub(crate) fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let cpts: Vec<char> = text.chars().collect();
        let mut lens = vec![cpts.len()];
        let mut collapsed: Option<Vec<char>> = None;
        let mut cpt_flags: Option<Vec<u8>> = None;
        for stage in &self.stages {
            lens = match stage {
                Stage::Gpt2 | Stage::Llama3 => {
                    let f =
                        cpt_flags.get_or_insert_with(|| cpts.iter().map(|&c| flags(c)).collect());
                    let step = if matches!(stage, Stage::Gpt2) {
                        gpt2_step
                    } else {
                        llama3_step
                    };
                    split_custom(&cpts, f, &lens, step)
                }
                Stage::Regex {
                    re,
                    collapsed: true,
                } => {
                    let c = collapsed
                        .get_or_insert_with(|| cpts.iter().map(|&c| collapse(c)).collect());
                    split_regex(re, c, &lens)
                }
                Stage::Regex {
                    re,
                    collapsed: false,
                } => {
                    let w: Vec<char> = cpts
                        .iter()
                        .map(|&c| {
                            if (c as u32) > 0x7F && is_whitespace(c) {
                                '\u{0B}'
                            } else {
                                c
                            }
                        })
                        .collect();
                    split_regex(re, &w, &lens)
                }
            };
        }
        // Convert codepoint lengths into string slices.
        let offs: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .collect();
        let mut out = Vec::with_capacity(lens.len());
        let mut cp = 0usize;
        for len in lens {
            if len > 0 {
                out.push(&text[offs[cp]..offs[cp + len]]);
            }
            cp += len;
        }
        out
    }
}

/// Run `re` over every piece (given as codepoint lengths) of `chars`.
fn split_regex(re: &Regex, chars: &[char], lens: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &len in lens {
        let seg: String = chars[start..start + len].iter().collect();
        let mut last_cp = 0usize; // codepoint index of the end of the previous match
        let mut cp = 0usize; // codepoint index at byte `pos`
        let mut pos = 0usize;
        let count = |from: usize, to: usize| seg[from..to].chars().count();
        for m in re.find_iter(&seg) {
            let Ok(m) = m else { break };
            cp += count(pos, m.start());
            let m_start = cp;
            let m_len = count(m.start(), m.end());
            cp += m_len;
            pos = m.end();
            if m_start > last_cp {
                out.push(m_start - last_cp);
            }
            out.push(m_len);
            last_cp = m_start + m_len;
        }
        if last_cp < len {
            out.push(len - last_cp);
        }
        start += len;
    }
    out.retain(|&l| l > 0);
    out
}

/// Shared driver for the hand-written splitters: `step` consumes one pre-token
/// starting at `pos` within `[ini, end)` and returns its end.
fn split_custom(
    cpts: &[char],
    cpt_flags: &[u8],
    lens: &[usize],
    step: fn(&Cursor, usize) -> usize,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &len in lens {
        let cur = Cursor {
            cpts,
            cpt_flags,
            ini: start,
            end: start + len,
        };
        let mut pos = start;
        while pos < cur.end {
            let next = step(&cur, pos);
            debug_assert!(next > pos);
            out.push(next - pos);
            pos = next;
        }
        start += len;
    }
    out
}

struct Cursor<'a> {
    cpts: &'a [char],
    cpt_flags: &'a [u8],
    ini: usize,
    end: usize,
}

impl Cursor<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (self.ini <= pos && pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> u8 {
        if self.ini <= pos && pos < self.end {
            self.cpt_flags[pos]
        } else {
            0
        }
    }
    fn is(&self, pos: usize, c: char) -> bool {
        self.cpt(pos) == Some(c)
    }
    fn lower(&self, pos: usize) -> Option<char> {
        self.cpt(pos).map(|c| c.to_ascii_lowercase())
    }
    /// Length (1..=3) of a contraction `'s|'t|'re|'ve|'m|'ll|'d` at `pos`.
    fn contraction(&self, pos: usize, fold_case: bool) -> Option<usize> {
        if !self.is(pos, '\'') || pos + 1 >= self.end {
            return None;
        }
        let get = |p| {
            if fold_case {
                self.lower(p)
            } else {
                self.cpt(p)
            }
        };
        if matches!(get(pos + 1), Some('s' | 't' | 'm' | 'd')) {
            return Some(2);
        }
        if pos + 2 < self.end {
            match (get(pos + 1), get(pos + 2)) {
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                    return Some(3)
                }
                _ => {}
            }
        }
        None
    }
    /// Whitespace run at `pos`: (count, end of the last `\r`/`\n` in it, if any).
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut n = 0;
        let mut last_nl = None;
        while self.flags(pos + n) & F_WHITESPACE != 0 {
            if matches!(self.cpt(pos + n), Some('\r' | '\n')) {
                last_nl = Some(pos + n + 1);
            }
            n += 1;
        }
        (n, last_nl)
    }
}

const WLN: u8 = F_WHITESPACE | F_LETTER | F_NUMBER;

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2_step(c: &Cursor, mut pos: usize) -> usize {
    if let Some(n) = c.contraction(pos, false) {
        return pos + n;
    }
    let is_space = c.is(pos, ' ');
    let f2 = if is_space {
        c.flags(pos + 1)
    } else {
        c.flags(pos)
    };
    for class in [F_LETTER, F_NUMBER] {
        if f2 & class != 0 {
            pos += is_space as usize;
            while c.flags(pos) & class != 0 {
                pos += 1;
            }
            return pos;
        }
    }
    if f2 & WLN == 0 && f2 & F_DEFINED != 0 {
        pos += is_space as usize;
        loop {
            let f = c.flags(pos);
            if f & WLN != 0 || f & F_DEFINED == 0 {
                break;
            }
            pos += 1;
        }
        return pos;
    }
    let (n, _) = c.whitespace_run(pos);
    if n > 1 && c.cpt(pos + n).is_some() {
        return pos + n - 1;
    }
    if n > 0 {
        return pos + n;
    }
    pos + 1
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3_step(c: &Cursor, mut pos: usize) -> usize {
    if let Some(n) = c.contraction(pos, true) {
        return pos + n;
    }
    let cpt = c.cpt(pos);
    let f = c.flags(pos);
    if !matches!(cpt, Some('\r' | '\n'))
        && f & F_NUMBER == 0
        && (f & F_LETTER != 0 || c.flags(pos + 1) & F_LETTER != 0)
    {
        pos += 1;
        while c.flags(pos) & F_LETTER != 0 {
            pos += 1;
        }
        return pos;
    }
    if f & F_NUMBER != 0 {
        let ini = pos;
        while c.flags(pos) & F_NUMBER != 0 {
            pos += 1;
            if pos - ini >= 3 {
                return pos;
            }
        }
        return pos;
    }
    let is_space = cpt == Some(' ');
    let f2 = if is_space { c.flags(pos + 1) } else { f };
    if f2 & WLN == 0 && f & F_DEFINED != 0 {
        pos += is_space as usize;
        loop {
            let g = c.flags(pos);
            if g & WLN != 0 || g & F_DEFINED == 0 {
                break;
            }
            pos += 1;
        }
        while matches!(c.cpt(pos), Some('\r' | '\n')) {
            pos += 1;
        }
        return pos;
    }
    let (n, last_nl) = c.whitespace_run(pos);
    if let Some(e) = last_nl {
        return e;
    }
    if n > 1 && c.cpt(pos + n).is_some() {
        return pos + n - 1;
    }
    if n > 0 {
        return pos + n;
    }
    pos + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        let (p, _) = PreTokenizer::new(Some(pre)).unwrap();
        p.split(text).into_iter().map(String::from).collect()
    }

    #[test]
    fn gpt2_basic() {
        assert_eq!(
            split("gpt-2", "Hello world's  end"),
            ["Hello", " world", "'s", " ", " end"]
        );
        assert_eq!(split("gpt-2", "a  \n"), ["a", "  \n"]);
    }

    #[test]
    fn smollm_digits() {
        assert_eq!(split("smollm", "x 123!"), ["x", " ", "1", "2", "3", "!"]);
    }

    #[test]
    fn llama3_numbers_and_newlines() {
        assert_eq!(
            split("llama-bpe", "12345 ab\n\n  c"),
            ["123", "45", " ab", "\n\n", " ", " c"]
        );
        assert_eq!(split("llama-bpe", "I'M"), ["I", "'M"]);
    }

    #[test]
    fn qwen2_regex_path() {
        assert_eq!(
            split("qwen2", "Hi 12 ok!!\n"),
            ["Hi", " ", "1", "2", " ok", "!!\n"]
        );
        assert_eq!(split("qwen2", "안녕 세계"), ["안녕", " 세계"]);
    }

    #[test]
    fn all_known_names_compile() {
        for name in [
            "default",
            "llama-bpe",
            "deepseek-llm",
            "deepseek-coder",
            "deepseek-v3",
            "falcon",
            "starcoder",
            "gpt-2",
            "qwen2",
            "qwen35",
            "bloom",
            "viking",
            "tekken",
            "gpt-4o",
            "seed-coder",
            "bailingmoe",
            "ufakzeka",
            "laguna",
            "exaone-moe",
            "minicpm5",
            "jais-2",
            "youtu",
            "spark2_5",
            "granite-embed-multi-97m",
            "dbrx",
            "chatglm-bpe",
        ] {
            let (p, info) = PreTokenizer::new(Some(name)).unwrap();
            assert!(info.known, "{name}");
            let text = "Hello, World! 1234 안녕하세요 ça  va?\n\tend  ";
            assert_eq!(p.split(text).concat(), text, "{name}");
        }
    }
}
