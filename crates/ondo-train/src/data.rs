//! JSONL training data → examples of (tokens, targets, loss mask). Each line is one of:
//!
//! - `{"messages": [{"role": …, "content": …}, …]}`: rendered with the model's chat template;
//!   loss only on the assistant messages' tokens;
//! - `{"prompt": …, "completion": …}`: loss on the completion's tokens;
//! - `{"text": …}`: loss on every token but the first.
//!
//! Other keys on a line are ignored; the shape is chosen by which of `messages`, `prompt` /
//! `completion` and `text` it has (exactly one shape). A line that is not JSON, has no
//! shape or two, has a value of the wrong type or is empty (an empty line, an empty string,
//! no messages, no assistant message) is a [`DataError`] naming its 1-based line number.
//!
//! Tokens: with ids = the whole sequence, tokens = ids[..n-1], targets = ids[1..] and
//! mask[t] says whether target t is trained on. A sequence longer than `max_ctx` + 1 ids is
//! cut to that length (counted in [`Dataset::truncated`]); one left with no trained target
//! is dropped (counted in [`Dataset::dropped`]).
//!
//! Assistant spans: a template is a program, not a format, so the span of assistant message
//! i is found by rendering prefixes: start = len(render(messages[..i], generation prompt
//! on)), end = len(render(messages[..=i], generation prompt off)), both of which must be
//! prefixes of the whole conversation's tokens (checked; a template that rewrites earlier
//! turns is an error for that line). The span so covers the content and whatever the
//! template closes the turn with (SmolLM2: `<|im_end|>` and a newline), so the model learns
//! to end its turn.
//!
//! Prompt/completion: [BOS if the tokenizer adds one], tokens(prompt), tokens(completion),
//! [EOS if the tokenizer has one], the two texts tokenized separately (the boundary is a
//! token boundary). Text: [BOS if the tokenizer adds one], tokens(text); no EOS.

use ondo_text::{ChatMessage, ChatTemplate, Tokenizer};
use serde_json::{Map, Value};

/// One training sequence: tokens: [n], targets: [n] (the next token), mask: [n].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    pub mask: Vec<bool>,
}

/// The examples of a file and what had to be cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// Sequences cut to `max_ctx`.
    pub truncated: usize,
    /// Sequences with no trained target left after the cut, not in `examples`.
    pub dropped: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DataError {
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("max_ctx must be at least 1")]
    Context,
}

/// What turns text into ids: the model's tokenizer and chat template.
pub struct Encoder<'a> {
    pub tok: &'a Tokenizer,
    pub template: &'a ChatTemplate,
    /// The longest example (tokens per sequence).
    pub max_ctx: usize,
}

impl Encoder<'_> {
    /// Every line of a JSONL text; the first malformed line is the error.
    pub fn encode_jsonl(&self, text: &str) -> Result<Dataset, DataError> {
        if self.max_ctx == 0 {
            return Err(DataError::Context);
        }
        let mut ds = Dataset::default();
        for (i, line) in text.lines().enumerate() {
            let err = |what: String| DataError::Line { line: i + 1, what };
            let (ids, trained) = self.encode_line(line).map_err(err)?;
            let cut = ids.len().min(self.max_ctx + 1);
            if cut < ids.len() {
                ds.truncated += 1;
            }
            let mask: Vec<bool> = trained[1..cut].to_vec();
            if !mask.contains(&true) {
                ds.dropped += 1;
                continue;
            }
            ds.examples.push(Example {
                tokens: ids[..cut - 1].to_vec(),
                targets: ids[1..cut].to_vec(),
                mask,
            });
        }
        Ok(ds)
    }

    /// One line → (ids, trained[i]: whether ids[i] is a trained target), ≥ 2 ids.
    pub fn encode_line(&self, line: &str) -> Result<(Vec<u32>, Vec<bool>), String> {
        if line.trim().is_empty() {
            return Err("empty line".into());
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(obj) = v else {
            return Err(format!("expected a JSON object, got {}", type_name(&v)));
        };
        let has = |k: &str| obj.contains_key(k);
        let shapes = [
            has("messages"),
            has("prompt") || has("completion"),
            has("text"),
        ];
        let (ids, trained) =
            match shapes {
                [true, false, false] => self.messages(&obj)?,
                [false, true, false] => self.prompt_completion(&obj)?,
                [false, false, true] => self.text(&obj)?,
                [false, false, false] => return Err(
                    "unknown shape: expected \"messages\", \"prompt\"+\"completion\" or \"text\""
                        .into(),
                ),
                _ => return Err("more than one shape (messages, prompt/completion, text)".into()),
            };
        if ids.len() < 2 {
            return Err(format!("{} token(s): nothing to predict", ids.len()));
        }
        Ok((ids, trained))
    }

    fn messages(&self, obj: &Map<String, Value>) -> Result<(Vec<u32>, Vec<bool>), String> {
        let Some(Value::Array(list)) = obj.get("messages") else {
            return Err("\"messages\" must be an array".into());
        };
        if list.is_empty() {
            return Err("\"messages\" is empty".into());
        }
        let mut msgs = Vec::with_capacity(list.len());
        for (j, m) in list.iter().enumerate() {
            let field = |k: &str| match m.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(format!("messages[{j}].{k} must be a string")),
            };
            if !m.is_object() {
                return Err(format!("messages[{j}] must be an object"));
            }
            msgs.push(ChatMessage::new(field("role")?, field("content")?));
        }
        if !msgs.iter().any(|m| m.role == "assistant") {
            return Err("no assistant message".into());
        }
        let render = |m: &[ChatMessage], gen: bool| {
            self.template
                .render_tokens(self.tok, m, gen, None)
                .map_err(|e| format!("chat template: {e}"))
        };
        let ids = render(&msgs, false)?;
        let mut trained = vec![false; ids.len()];
        for (j, m) in msgs.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = render(&msgs[..j], true)?;
            let through = render(&msgs[..=j], false)?;
            let prefix_ok = |p: &[u32]| ids.get(..p.len()) == Some(p);
            if !prefix_ok(&before) || !prefix_ok(&through) || before.len() > through.len() {
                return Err(format!(
                    "the chat template does not render messages[{j}] as a prefix of the \
                     conversation, so its tokens cannot be found"
                ));
            }
            trained[before.len()..through.len()].fill(true);
        }
        Ok((ids, trained))
    }

    fn prompt_completion(&self, obj: &Map<String, Value>) -> Result<(Vec<u32>, Vec<bool>), String> {
        let prompt = string_field(obj, "prompt")?;
        let completion = string_field(obj, "completion")?;
        let mut ids = self.bos();
        ids.extend(self.tok.encode(prompt, false));
        let n_prompt = ids.len();
        ids.extend(self.tok.encode(completion, false));
        ids.extend(self.tok.eos_id());
        let mut trained = vec![true; ids.len()];
        trained[..n_prompt].fill(false);
        Ok((ids, trained))
    }

    fn text(&self, obj: &Map<String, Value>) -> Result<(Vec<u32>, Vec<bool>), String> {
        let mut ids = self.bos();
        ids.extend(self.tok.encode(string_field(obj, "text")?, false));
        let trained = vec![true; ids.len()];
        Ok((ids, trained))
    }

    fn bos(&self) -> Vec<u32> {
        match self.tok.bos_id() {
            Some(b) if self.tok.add_bos() => vec![b],
            _ => Vec::new(),
        }
    }
}

/// `obj[key]` as a non-empty string.
fn string_field<'v>(obj: &'v Map<String, Value>, key: &str) -> Result<&'v str, String> {
    match obj.get(key) {
        Some(Value::String(s)) if s.is_empty() => Err(format!("\"{key}\" is empty")),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("\"{key}\" must be a string, got {}", type_name(v))),
        None => Err(format!("\"{key}\" is missing")),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
