//! Token attributes and llama.cpp's detection of special tokens by their text: the
//! end-of-turn/end-of-message/FIM tokens, the end-of-generation (EOG) set, and the
//! attribute fixes llama.cpp applies to such tokens.

use std::collections::BTreeSet;

// llama.cpp's token attributes.
pub(crate) const A_UNKNOWN: u16 = 1 << 0;
pub(crate) const A_UNUSED: u16 = 1 << 1;
pub(crate) const A_NORMAL: u16 = 1 << 2;
pub(crate) const A_CONTROL: u16 = 1 << 3;
pub(crate) const A_USER_DEFINED: u16 = 1 << 4;
pub(crate) const A_BYTE: u16 = 1 << 5;

pub(crate) fn attr_from_type(t: i32) -> u16 {
    match t {
        1 => A_NORMAL,
        2 => A_UNKNOWN,
        3 => A_CONTROL,
        4 => A_USER_DEFINED,
        5 => A_UNUSED,
        6 => A_BYTE,
        _ => 0,
    }
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP: &[&str] = &["<|file_sep|>"];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Find EOT/EOM (when not given), FIM tokens and the EOG set by token text, as
/// llama.cpp's `llama_vocab::load` does, adjusting `attrs` the same way (tokens that look
/// like control tokens become control tokens). Returns `(eot, eom, eog)`.
pub(crate) fn detect_special(
    tokens: &[String],
    attrs: &mut [u16],
    eos: Option<u32>,
    mut eot: Option<u32>,
    mut eom: Option<u32>,
) -> (Option<u32>, Option<u32>, BTreeSet<u32>) {
    let n = tokens.len();
    // Special tokens found by their text, as llama.cpp does; such tokens become
    // control tokens even when their type says otherwise.
    let find = |list: &[&str]| {
        (0..n)
            .find(|&i| list.contains(&tokens[i].as_str()))
            .map(|i| i as u32)
    };
    let force_control = |id: Option<u32>, attrs: &mut [u16]| {
        if let Some(id) = id {
            attrs[id as usize] |= A_CONTROL;
        }
    };
    if eot.is_none() {
        eot = find(EOT_TEXTS);
        force_control(eot, attrs);
    }
    if eom.is_none() {
        eom = find(EOM_TEXTS);
        force_control(eom, attrs);
    }
    let mut fims = [None; 6];
    for (slot, list) in fims
        .iter_mut()
        .zip([FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD, FIM_REP, FIM_SEP])
    {
        *slot = find(list);
        force_control(*slot, attrs);
    }
    for (a, t) in attrs.iter_mut().zip(tokens) {
        if *a & A_CONTROL != 0 && t.contains("unused") {
            *a |= A_UNUSED;
        }
    }
    let mut eog: BTreeSet<u32> = fims[3..].iter().flatten().copied().collect();
    for (i, t) in tokens.iter().enumerate() {
        if EOG_TEXTS.contains(&t.as_str()) {
            eog.insert(i as u32);
            attrs[i] |= A_CONTROL;
        }
        if matches!(
            t.as_str(),
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        ) {
            attrs[i] = A_USER_DEFINED;
        }
    }
    eog.extend([eos, eot, eom].into_iter().flatten());
    let has =
        |eog: &BTreeSet<u32>, t: &str| eog.iter().find(|&&i| tokens[i as usize] == t).copied();
    // gpt-oss / solar-open: "<|end|>" ends a message, not the generation.
    if let Some(end) = has(&eog, "<|end|>") {
        let call = has(&eog, "<|call|>").or(has(&eog, "<|calls|>")).is_some();
        if call && (has(&eog, "<|return|>").is_some() || has(&eog, "<|flush|>").is_some()) {
            eog.remove(&end);
            attrs[end as usize] = A_USER_DEFINED;
        }
    }
    // gemma4 / paddleocr: "</s>" is not an end-of-generation token there.
    if has(&eog, "<|tool_response>").is_some() {
        if let Some(s) = has(&eog, "</s>") {
            eog.remove(&s);
            attrs[s as usize] = A_NORMAL;
        }
    }
    (eot, eom, eog)
}
