//! Chat templates: HF-style Jinja templates (`tokenizer.chat_template`) rendered with a
//! sandboxed minijinja environment, and tokenized so that only the template scaffold
//! can produce control tokens.
//!
//! Sandbox: no loader (no `include`/`import` of other files), no host globals, a fuel
//! budget bounding instructions and allocations, a recursion limit and an output cap.
//! Python compatibility: `trim_blocks`/`lstrip_blocks` as in transformers, Python string
//! and dict methods (`.strip()`, `.startswith()`, `.items()`...), `raise_exception`,
//! `strftime_now`, and a `tojson` that matches `json.dumps(ensure_ascii=False)`.

use crate::{TextError, Tokenizer};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

/// Instruction/allocation budget for one render (about 64 bytes of data per unit).
pub const TEMPLATE_FUEL: u64 = 4_000_000;
/// Maximum size of a rendered prompt in bytes.
pub const TEMPLATE_MAX_OUTPUT: usize = 4 << 20;
/// Maximum template recursion depth (macros, nested blocks).
pub const TEMPLATE_RECURSION_LIMIT: usize = 100;

const EXC_MARK: &str = "\u{1}raise_exception:";
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `"system"`, `"user"`, `"assistant"`, `"tool"`...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// Convenience constructor.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Arc<Environment<'static>>,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

fn make_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.remove_global("debug");
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION_LIMIT);
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", crate::pyjson::tojson);
    env.add_function(
        "raise_exception",
        |msg: Option<String>| -> Result<Value, Error> {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{EXC_MARK}{}", msg.unwrap_or_default()),
            ))
        },
    );
    env.add_function("strftime_now", |fmt: String| strftime_utc(&fmt, now_unix()));
    env
}

impl ChatTemplate {
    /// Compile a template; `bos_token`/`eos_token` are exposed to it under those names.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, TextError> {
        let mut env = make_env();
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TextError::TemplateSyntax(describe(&e)))?;
        Ok(ChatTemplate {
            env: Arc::new(env),
            bos: bos_token.to_string(),
            eos: eos_token.to_string(),
        })
    }

    /// The ChatML template, for models whose GGUF has no `tokenizer.chat_template`.
    pub fn chatml() -> ChatTemplate {
        match ChatTemplate::new(CHATML, "", "<|im_end|>") {
            Ok(t) => t,
            Err(e) => unreachable!("built-in ChatML template must compile: {e}"),
        }
    }

    /// Render the prompt text.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String, TextError> {
        self.render_raw(messages, add_generation_prompt, tools)
    }

    fn render_raw(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String, TextError> {
        let tools = match tools {
            Some(t) => Value::from(Serde(t)),
            None => Value::from(()),
        };
        let ctx = minijinja::context! {
            messages => Value::from(Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
            tools => tools,
        };
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TextError::TemplateRender(describe(&e)))?;
        let mut sink = CappedSink {
            buf: Vec::new(),
            exceeded: false,
        };
        let result = tmpl.render_captured_to(ctx, &mut sink);
        if sink.exceeded {
            return Err(TextError::TemplateOutputTooLarge {
                limit: TEMPLATE_MAX_OUTPUT,
            });
        }
        if let Err(e) = result {
            return Err(render_error(&e));
        }
        String::from_utf8(sink.buf)
            .map_err(|_| TextError::TemplateRender("output is not UTF-8".into()))
    }

    /// Render and tokenize. Control tokens come only from the template scaffold:
    /// message contents are wrapped in noncharacter sentinels (U+FDD0 … U+FDD1, removed
    /// from the contents first) while rendering, and inside them control-token text is
    /// tokenized as plain text. The prompt is tokenized as one text (so tokens across
    /// the scaffold/content boundary match llama.cpp). BOS is prepended when the
    /// tokenizer adds BOS and the rendered text does not already start with its text.
    /// Roles must not contain control-token text.
    pub fn render_tokens(
        &self,
        tok: &Tokenizer,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>, TextError> {
        let mut wrapped = Vec::with_capacity(messages.len());
        for m in messages {
            if tok
                .encode_with_special(&m.role, false)
                .iter()
                .any(|&id| tok.is_control(id))
            {
                return Err(TextError::TemplateRender(format!(
                    "message role {:?} contains special-token text",
                    m.role
                )));
            }
            wrapped.push(ChatMessage {
                role: m.role.replace([OPEN, CLOSE], ""),
                content: wrap_content(&m.content),
            });
        }
        let rendered = self.render_raw(&wrapped, add_generation_prompt, tools)?;
        let (text, plain) = strip_sentinels(&rendered);
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        if tok.add_bos() {
            let bos_text = tok.bos_id().and_then(|b| tok.token_text(b)).unwrap_or("");
            if bos_text.is_empty() || !text.starts_with(bos_text) {
                ids.extend(tok.bos_id());
            }
        }
        ids.extend(tok.encode_chat(&text, &plain));
        Ok(ids)
    }
}

/// `ws + OPEN + core + CLOSE + ws`, so that a template's `| trim` on the content gives
/// the same text as without sentinels.
fn wrap_content(content: &str) -> String {
    let clean = content.replace([OPEN, CLOSE], "");
    let core = clean.trim();
    let lead = clean.len() - clean.trim_start().len();
    let mut s = String::with_capacity(clean.len() + 6);
    s.push_str(&clean[..lead]);
    s.push(OPEN);
    s.push_str(core);
    s.push(CLOSE);
    s.push_str(&clean[lead + core.len()..]);
    s
}

/// Remove the sentinels; returns the text and the byte ranges that were inside them.
/// An unterminated opening sentinel extends to the end of the text.
fn strip_sentinels(rendered: &str) -> (String, Vec<Range<usize>>) {
    let mut text = String::with_capacity(rendered.len());
    let mut ranges = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for c in rendered.chars() {
        match c {
            OPEN => {
                if depth == 0 {
                    start = text.len();
                }
                depth += 1;
            }
            CLOSE if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    ranges.push(start..text.len());
                }
            }
            CLOSE => {}
            c => text.push(c),
        }
    }
    if depth > 0 {
        ranges.push(start..text.len());
    }
    (text, ranges)
}

struct CappedSink {
    buf: Vec<u8>,
    exceeded: bool,
}

impl Write for CappedSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > TEMPLATE_MAX_OUTPUT {
            self.exceeded = true;
            return Err(std::io::Error::other("template output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn render_error(e: &Error) -> TextError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(me) = err.downcast_ref::<Error>() {
            if let Some(msg) = me.detail().and_then(|d| d.strip_prefix(EXC_MARK)) {
                return TextError::TemplateException(msg.to_string());
            }
        }
        cur = err.source();
    }
    TextError::TemplateRender(describe(e))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A small `strftime` over UTC time (the conversions chat templates use).
fn strftime_utc(fmt: &str, unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut chars = fmt.chars().take(1024);
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('-') => match chars.next() {
                Some('d') => out.push_str(&d.to_string()),
                Some('m') => out.push_str(&m.to_string()),
                Some(o) => out.extend(['%', '-', o]),
                None => out.push_str("%-"),
            },
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') | Some('h') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('H') => out.push_str(&format!("{hh:02}")),
            Some('I') => out.push_str(&format!("{:02}", (hh + 11) % 12 + 1)),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{mm:02}")),
            Some('S') => out.push_str(&format!("{ss:02}")),
            Some('F') => out.push_str(&format!("{y}-{m:02}-{d:02}")),
            Some('%') => out.push('%'),
            Some(o) => out.extend(['%', o]),
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(strftime_utc("%Y-%m-%d %H:%M:%S", 0), "1970-01-01 00:00:00");
        // 2024-07-26 12:34:56 UTC, a Friday
        assert_eq!(
            strftime_utc("%d %b %Y %A %j", 1_721_997_296),
            "26 Jul 2024 Friday 208"
        );
        assert_eq!(days_from_civil(2024, 7, 26), 19_930);
    }

    #[test]
    fn sentinels() {
        let w = wrap_content("  hi \u{FDD0}there ");
        assert_eq!(w, "  \u{FDD0}hi there\u{FDD1} ");
        let (t, r) = strip_sentinels("a\u{FDD0}bc\u{FDD1}d\u{FDD0}e");
        assert_eq!(t, "abcde");
        assert_eq!(r, vec![1..3, 4..5]);
    }
}
