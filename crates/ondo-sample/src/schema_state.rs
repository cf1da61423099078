//! A byte-level recognizer of one JSON value valid under a compiled [`JsonSchema`], for
//! constrained sampling (`response_format: {"type": "json_schema"}`): the same lexical rules
//! as [`crate::json::JsonObjectState`] (shared string and number steps, the same whitespace
//! cap), plus a stack of the open containers' schema nodes, which properties each object has
//! seen and how many items each array holds.
//!
//! The state is `Copy` (a fixed stack of [`MAX_NEST`] frames, unused frames kept zeroed so
//! that equal states compare and hash equal), so trying a token costs no allocation.

use crate::json::{string_step, Escape, Number, StrStep, MAX_WHITESPACE};
use crate::schema::{JsonSchema, Node, NodeId};
use crate::schema_format::{FormatState, FormatStep};

/// Nested objects and arrays at most.
pub const MAX_NEST: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Frame {
    /// The container's node (an `Object` or an `Array`).
    node: NodeId,
    /// Arrays: items begun.
    count: u16,
    /// Objects: bit `i` set once property `i` was given.
    seen: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    /// Before the top-level value.
    Start,
    /// A value of this node must start.
    Value(NodeId),
    /// After `[`: an item or `]`.
    ArrayFirst,
    /// After `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    /// Inside a key: the declared properties it still matches (bit set), its length so far,
    /// and whether other keys are allowed.
    KeyStr {
        cand: u64,
        pos: u16,
        free: bool,
        continuation: u8,
    },
    /// After a key: `:`, then a value of this node.
    Colon(NodeId),
    /// After a value inside a container: `,` or the closing bracket.
    After,
    Str {
        escape: Escape,
        continuation: u8,
    },
    /// Inside a string of `node`, which bounds its length: `len` characters so far.
    Bounded {
        node: NodeId,
        escape: Escape,
        continuation: u8,
        len: u16,
    },
    /// Inside a string of a format (date, time, date-time, uuid).
    Formatted(FormatState),
    Number {
        integer: bool,
        n: Number,
    },
    /// Inside one of a `Literals` node's texts: those still matching, bytes matched.
    Lit {
        node: NodeId,
        cand: u64,
        pos: u16,
    },
    Done,
}

/// Where the recognizer stands after the bytes fed so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SchemaState {
    frames: [Frame; MAX_NEST],
    depth: u8,
    mode: Mode,
    spaces: u8,
}

impl Default for SchemaState {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaState {
    /// Nothing read yet.
    pub fn new() -> Self {
        SchemaState {
            frames: [Frame::default(); MAX_NEST],
            depth: 0,
            mode: Mode::Start,
            spaces: 0,
        }
    }

    /// The top-level value is complete (whitespace may still follow).
    pub fn is_complete(&self) -> bool {
        self.mode == Mode::Done
    }

    /// Inside a free string (a value, or a key where other keys than the declared ones are
    /// allowed) with no escape or UTF-8 sequence under way: any plain text continues it.
    pub(crate) fn in_plain_string(&self) -> bool {
        matches!(
            self.mode,
            Mode::Str {
                escape: Escape::None,
                continuation: 0
            } | Mode::KeyStr {
                free: true,
                continuation: 0,
                ..
            }
        )
    }

    /// The state after `bytes`, if they keep the text a prefix of a valid value.
    pub fn after(&self, s: &JsonSchema, bytes: &[u8]) -> Option<Self> {
        let mut st = *self;
        bytes.iter().all(|&b| st.feed(s, b)).then_some(st)
    }

    /// Reads one byte; false (the state then undefined) if no valid value continues so.
    pub fn feed(&mut self, s: &JsonSchema, b: u8) -> bool {
        match self.mode {
            Mode::Str {
                escape,
                continuation,
            } => {
                return match string_step(escape, continuation, b) {
                    StrStep::Reject => false,
                    StrStep::End => {
                        self.value_done();
                        true
                    }
                    StrStep::Go(escape, continuation) => {
                        self.mode = Mode::Str {
                            escape,
                            continuation,
                        };
                        true
                    }
                }
            }
            Mode::Bounded {
                node,
                escape,
                continuation,
                len,
            } => return self.bounded_byte(s, node, escape, continuation, len, b),
            Mode::Formatted(mut f) => {
                return match f.feed(b) {
                    FormatStep::Reject => false,
                    FormatStep::End => {
                        self.value_done();
                        true
                    }
                    FormatStep::Go => {
                        self.mode = Mode::Formatted(f);
                        true
                    }
                }
            }
            Mode::KeyStr {
                cand,
                pos,
                free,
                continuation,
            } => return self.key_byte(s, cand, pos, free, continuation, b),
            Mode::Number { integer, n } => {
                if let Some(n) = n.next(b, integer) {
                    self.mode = Mode::Number { integer, n };
                    return true;
                }
                if !n.can_end() {
                    return false;
                }
                // The number ended before `b`, which the container reads.
                self.value_done();
            }
            Mode::Lit { node, cand, pos } => {
                let Node::Literals(lits) = &s.nodes[node as usize] else {
                    return false;
                };
                let p = pos as usize;
                let next = bits(lits, cand, |t| t.len() > p && t[p] == b);
                if next != 0 {
                    self.lit_advance(lits, node, next, p + 1);
                    return true;
                }
                if bits(lits, cand, |t| t.len() == p) == 0 {
                    return false;
                }
                // The literal ended before `b`, which the container reads.
                self.value_done();
            }
            _ => {}
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            self.spaces += 1;
            return self.spaces <= MAX_WHITESPACE;
        }
        self.spaces = 0;
        match self.mode {
            Mode::Start => self.value_start(s, s.root, b),
            Mode::Value(node) => self.value_start(s, node, b),
            Mode::ArrayFirst => {
                let Node::Array {
                    items, min, max, ..
                } = s.nodes[self.top().node as usize]
                else {
                    return false;
                };
                if b == b']' {
                    return min == 0 && self.close();
                }
                if max == 0 {
                    return false;
                }
                self.top_mut().count = 1;
                self.value_start(s, items, b)
            }
            Mode::ObjectFirst | Mode::Key => self.object_byte(s, b),
            Mode::Colon(node) if b == b':' => {
                self.mode = Mode::Value(node);
                true
            }
            Mode::After => self.after_value(s, b),
            _ => false,
        }
    }

    fn top(&self) -> Frame {
        self.frames[self.depth as usize - 1]
    }

    fn top_mut(&mut self) -> &mut Frame {
        &mut self.frames[self.depth as usize - 1]
    }

    fn value_start(&mut self, s: &JsonSchema, node: NodeId, b: u8) -> bool {
        let Some(id) = s.resolve(node, b) else {
            return false;
        };
        self.mode = match (&s.nodes[id as usize], b) {
            (Node::Object { .. }, b'{') => return self.open(s, id, Mode::ObjectFirst),
            (Node::Array { .. }, b'[') => return self.open(s, id, Mode::ArrayFirst),
            (Node::String { min: 0, max }, b'"') if *max == u16::MAX => Mode::Str {
                escape: Escape::None,
                continuation: 0,
            },
            (Node::Format(f), b'"') => Mode::Formatted(FormatState::new(*f)),
            (Node::String { .. }, b'"') => Mode::Bounded {
                node: id,
                escape: Escape::None,
                continuation: 0,
                len: 0,
            },
            (Node::Number { integer }, _) => match Number::start(b) {
                Some(n) => Mode::Number {
                    integer: *integer,
                    n,
                },
                None => return false,
            },
            (Node::Literals(lits), _) => {
                let cand = bits(lits, u64::MAX, |t| t.first() == Some(&b));
                if cand == 0 {
                    return false;
                }
                self.lit_advance(lits, id, cand, 1);
                return true;
            }
            _ => return false,
        };
        true
    }

    /// One byte of a string whose length `node` bounds. A character begins at a byte outside
    /// an escape or UTF-8 sequence (a backslash begins an escape: one character); `\u`
    /// escapes are refused, so that each counted character is one code point.
    fn bounded_byte(
        &mut self,
        s: &JsonSchema,
        node: NodeId,
        escape: Escape,
        continuation: u8,
        len: u16,
        b: u8,
    ) -> bool {
        let Node::String { min, max } = s.nodes[node as usize] else {
            return false;
        };
        let begins = escape == Escape::None && continuation == 0 && b != b'"';
        if (begins && len >= max) || (escape == Escape::Backslash && b == b'u') {
            return false;
        }
        match string_step(escape, continuation, b) {
            StrStep::Reject => false,
            StrStep::End => {
                if len < min {
                    return false;
                }
                self.value_done();
                true
            }
            StrStep::Go(escape, continuation) => {
                self.mode = Mode::Bounded {
                    node,
                    escape,
                    continuation,
                    len: len + u16::from(begins),
                };
                true
            }
        }
    }

    /// `cand` matched `pos` bytes: the value ends here when every one of them is complete.
    fn lit_advance(&mut self, lits: &[Vec<u8>], node: NodeId, cand: u64, pos: usize) {
        if bits(lits, cand, |t| t.len() > pos) == 0 {
            self.value_done();
        } else {
            self.mode = Mode::Lit {
                node,
                cand,
                pos: pos as u16,
            };
        }
    }

    /// A value of `node` begun here can be completed within [`MAX_NEST`] containers.
    fn fits(&self, s: &JsonSchema, node: NodeId) -> bool {
        self.depth as usize + s.min_depth(node) <= MAX_NEST
    }

    fn open(&mut self, s: &JsonSchema, node: NodeId, mode: Mode) -> bool {
        if !self.fits(s, node) {
            return false;
        }
        self.frames[self.depth as usize] = Frame {
            node,
            count: 0,
            seen: 0,
        };
        self.depth += 1;
        self.mode = mode;
        true
    }

    fn close(&mut self) -> bool {
        self.depth -= 1;
        self.frames[self.depth as usize] = Frame::default();
        self.value_done();
        true
    }

    fn value_done(&mut self) {
        self.mode = if self.depth == 0 {
            Mode::Done
        } else {
            Mode::After
        };
    }

    /// The keys that may still start in the innermost object: the declared properties not
    /// given yet whose values fit, and whether other keys may (their values fit).
    fn keys_left(
        &self,
        s: &JsonSchema,
        props: &[(Vec<u8>, NodeId)],
        additional: Option<NodeId>,
    ) -> (u64, bool) {
        let seen = self.top().seen;
        let declared = (0..props.len())
            .filter(|&i| seen >> i & 1 == 0 && self.fits(s, props[i].1))
            .fold(0u64, |m, i| m | 1 << i);
        (declared, additional.is_some_and(|n| self.fits(s, n)))
    }

    /// `{`'s contents: a key's opening quote, or `}` when every required property is there.
    fn object_byte(&mut self, s: &JsonSchema, b: u8) -> bool {
        let f = self.top();
        let Node::Object {
            props,
            required,
            additional,
        } = &s.nodes[f.node as usize]
        else {
            return false;
        };
        match b {
            b'}' if self.mode == Mode::ObjectFirst => required & !f.seen == 0 && self.close(),
            b'"' => {
                let (declared, free) = self.keys_left(s, props, *additional);
                if declared == 0 && !free {
                    return false;
                }
                // A free key may spell any name: one given already, or whose value does not
                // fit, is refused at the closing quote.
                self.mode = Mode::KeyStr {
                    cand: if free {
                        bits_len(props.len())
                    } else {
                        declared
                    },
                    pos: 0,
                    free,
                    continuation: 0,
                };
                true
            }
            _ => false,
        }
    }

    fn key_byte(
        &mut self,
        s: &JsonSchema,
        cand: u64,
        pos: u16,
        free: bool,
        continuation: u8,
        b: u8,
    ) -> bool {
        let Node::Object {
            props, additional, ..
        } = &s.nodes[self.top().node as usize]
        else {
            return false;
        };
        let p = pos as usize;
        if b == b'"' && continuation == 0 {
            let exact = (0..props.len()).find(|&i| cand >> i & 1 == 1 && props[i].0.len() == p);
            let (declared, _) = self.keys_left(s, props, *additional);
            return match (exact, additional) {
                (Some(i), _) if declared >> i & 1 == 1 => {
                    self.top_mut().seen |= 1 << i;
                    self.mode = Mode::Colon(props[i].1);
                    true
                }
                (Some(_), _) => false,
                (None, Some(node)) if free => {
                    self.mode = Mode::Colon(*node);
                    true
                }
                (None, _) => false,
            };
        }
        // Free keys take any text without escapes; declared names are matched byte by byte.
        let continuation = if free {
            match string_step(Escape::None, continuation, b) {
                StrStep::Go(Escape::None, c) if b != b'\\' => c,
                _ => return false,
            }
        } else {
            0
        };
        // Only the names still matching are looked at: most keys leave them at once.
        let (mut next, mut left) = (0u64, cand);
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            left &= left - 1;
            if props.get(i).and_then(|(name, _)| name.get(p)) == Some(&b) {
                next |= 1 << i;
            }
        }
        if next == 0 && !free {
            return false;
        }
        self.mode = Mode::KeyStr {
            cand: next,
            // A free key that no name matches any more keeps one state (masks remembered).
            pos: if next == 0 { 0 } else { pos + 1 },
            free,
            continuation,
        };
        true
    }

    /// After a value inside a container.
    fn after_value(&mut self, s: &JsonSchema, b: u8) -> bool {
        let f = self.top();
        match (&s.nodes[f.node as usize], b) {
            (Node::Array { min, .. }, b']') => f.count >= *min && self.close(),
            (Node::Array { items, max, .. }, b',') if f.count < *max => {
                self.top_mut().count += 1;
                self.mode = Mode::Value(*items);
                true
            }
            (Node::Object { required, .. }, b'}') => required & !f.seen == 0 && self.close(),
            (
                Node::Object {
                    props, additional, ..
                },
                b',',
            ) => {
                let (declared, free) = self.keys_left(s, props, *additional);
                let more = declared != 0 || free;
                if more {
                    self.mode = Mode::Key;
                }
                more
            }
            _ => false,
        }
    }
}

/// The first `n` bits set.
fn bits_len(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The members of `cand` (indices into `lits`) whose text satisfies `f`.
fn bits(lits: &[Vec<u8>], cand: u64, f: impl Fn(&[u8]) -> bool) -> u64 {
    lits.iter()
        .enumerate()
        .take(64)
        .filter(|&(i, t)| cand >> i & 1 == 1 && f(t))
        .fold(0, |m, (i, _)| m | 1 << i)
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
