//! A JSON Schema compiled for constrained sampling (`response_format: {"type": "json_schema"}`):
//! a graph of value shapes ([`Node`]) that [`crate::schema_state::SchemaState`] walks byte by
//! byte. Everything the sampler emits is valid under the schema; the subset understood is:
//!
//! - `type` (one or a list), `properties`, `required`, `additionalProperties` (false, true or
//!   a schema; when absent, an object with `properties` takes no other keys, one without takes
//!   any), `items`, `minItems`, `maxItems`, `minLength`, `maxLength` (code points; no `\u`
//!   escapes in such strings), `format` `date`, `time`, `date-time` and `uuid`
//!   (`schema_format.rs`), `enum`, `const` (with a `type` they must match),
//!   `anyOf` / `oneOf` whose choices start with different characters (`["string", "null"]`,
//!   an object or null...), `$ref` to `#`, `#/$defs/..` or `#/definitions/..` (recursion
//!   included), `{}` and `true` (any value);
//! - annotations are ignored (`title`, `description`, `default`, `examples`, `$schema`...);
//! - any other keyword (`pattern`, `minimum`, `format`...), or one combined with `enum`,
//!   `const`, `anyOf` or `oneOf`, is refused with its name rather than silently not enforced;
//!   so is a schema with no finite value, or whose smallest value nests deeper than
//!   [`crate::schema_state::MAX_NEST`].
//!
//! The graph's derived tables (first bytes, smallest nesting, which choice of a union a byte
//! selects) are in `schema_graph.rs`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::schema_format::Format;
use crate::schema_graph::Graph;

/// Index of a [`Node`] in [`JsonSchema::nodes`].
pub type NodeId = u16;

/// Properties of one object, or values of one `enum`, at most (bit sets of 64).
pub const MAX_CHOICES: usize = 64;
/// Bytes of one property name, or of one `enum` or `const` value's JSON text, at most.
pub const MAX_LITERAL: usize = 4096;
/// Nodes of one compiled schema at most.
pub const MAX_NODES: usize = 1024;
/// Nested schemas (and `$ref` followed) at most while compiling.
pub const MAX_SCHEMA_DEPTH: usize = 128;

/// The shape a value must take.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Object {
        /// Names (their UTF-8 bytes as they appear between the quotes) and value shapes.
        props: Vec<(Vec<u8>, NodeId)>,
        /// Bit `i`: `props[i]` is required.
        required: u64,
        /// The shape of keys not in `props`; `None`: no other keys.
        additional: Option<NodeId>,
    },
    Array {
        items: NodeId,
        min: u16,
        max: u16,
    },
    /// A string of `min..=max` characters (code points; `u16::MAX`: no maximum).
    String {
        min: u16,
        max: u16,
    },
    /// A string of a [`Format`] (`date`, `time`, `date-time`, `uuid`).
    Format(Format),
    Number {
        integer: bool,
    },
    /// One of these exact texts (compact JSON): `enum`, `const`, booleans, `null`.
    Literals(Vec<Vec<u8>>),
    /// One of these shapes, told apart by the value's first byte (also a `$ref`: one choice).
    Union(Vec<NodeId>),
}

/// A compiled schema: `nodes[root]` is the top-level value, an object or an array.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchema {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    pub(crate) graph: Graph,
}

/// Why a schema cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct SchemaError(pub String);

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError(msg.into()))
}

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "deprecated",
    "readOnly",
    "writeOnly",
    "strict",
];
const OBJECT_WORDS: &[&str] = &["properties", "required", "additionalProperties"];
const ARRAY_WORDS: &[&str] = &["items", "minItems", "maxItems"];
const STRING_WORDS: &[&str] = &["minLength", "maxLength", "format"];

impl JsonSchema {
    /// Compiles `schema`; the top level must be an object or an array.
    pub fn compile(schema: &Value) -> Result<JsonSchema, SchemaError> {
        let mut c = Compiler {
            root: schema,
            nodes: Vec::new(),
            refs: HashMap::new(),
            any: None,
            unions: Vec::new(),
        };
        let root = c.node(schema, "#", 0)?;
        let graph = Graph::new(&c.nodes, root, &c.unions)?;
        Ok(JsonSchema {
            nodes: c.nodes,
            root,
            graph,
        })
    }

    /// The shape, not a union, that a value of node `id` starting with `b` takes.
    pub fn resolve(&self, id: NodeId, b: u8) -> Option<NodeId> {
        self.graph.resolve(id, b)
    }

    /// Containers that the smallest value of node `id` nests (0 for a scalar).
    pub fn min_depth(&self, id: NodeId) -> usize {
        self.graph.min_depth(id)
    }
}

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    refs: HashMap<String, NodeId>,
    any: Option<NodeId>,
    /// Unions written in the schema (`anyOf`, `oneOf`, type lists), checked once the graph is
    /// whole: where, and whether it is a `oneOf`.
    unions: Vec<(NodeId, String, bool)>,
}

impl<'a> Compiler<'a> {
    fn push(&mut self, n: Node) -> Result<NodeId, SchemaError> {
        if self.nodes.len() >= MAX_NODES {
            return err(format!(
                "json_schema too large (more than {MAX_NODES} shapes)"
            ));
        }
        self.nodes.push(n);
        Ok((self.nodes.len() - 1) as NodeId)
    }

    /// Any JSON value (a union of every kind, objects and arrays of any values).
    fn any(&mut self) -> Result<NodeId, SchemaError> {
        if let Some(id) = self.any {
            return Ok(id);
        }
        let id = self.push(Node::Union(Vec::new()))?;
        self.any = Some(id);
        let object = self.push(Node::Object {
            props: Vec::new(),
            required: 0,
            additional: Some(id),
        })?;
        let array = self.push(Node::Array {
            items: id,
            min: 0,
            max: u16::MAX,
        })?;
        let string = self.push(Node::String {
            min: 0,
            max: u16::MAX,
        })?;
        let number = self.push(Node::Number { integer: false })?;
        let lits = self.push(literals(["true", "false", "null"]))?;
        self.nodes[id as usize] = Node::Union(vec![object, array, string, number, lits]);
        Ok(id)
    }

    fn node(&mut self, s: &'a Value, at: &str, depth: usize) -> Result<NodeId, SchemaError> {
        if depth > MAX_SCHEMA_DEPTH {
            return err(format!(
                "json_schema at {at}: nested more than {MAX_SCHEMA_DEPTH} levels (with $ref)"
            ));
        }
        let o = match s {
            Value::Bool(true) => return self.any(),
            Value::Object(o) => o,
            _ => return err(format!("json_schema at {at}: a schema must be an object")),
        };
        let words: Vec<&str> = o
            .keys()
            .map(String::as_str)
            .filter(|k| !ANNOTATIONS.contains(k))
            .collect();
        for &k in &words {
            let known = k == "type"
                || k == "$ref"
                || k == "enum"
                || k == "const"
                || k == "anyOf"
                || k == "oneOf"
                || OBJECT_WORDS.contains(&k)
                || ARRAY_WORDS.contains(&k)
                || STRING_WORDS.contains(&k);
            if !known {
                return err(format!(
                    "json_schema at {at}: the keyword '{k}' is not supported"
                ));
            }
        }
        // Keywords that take the whole schema, each with what may stand beside it.
        for (word, beside) in [
            ("$ref", &[][..]),
            ("anyOf", &[]),
            ("oneOf", &[]),
            ("const", &["type"]),
            ("enum", &["type"]),
        ] {
            if !o.contains_key(word) {
                continue;
            }
            if let Some(k) = words.iter().find(|&&k| k != word && !beside.contains(&k)) {
                return err(format!(
                    "json_schema at {at}: '{k}' beside '{word}' is not supported"
                ));
            }
        }
        if let Some(r) = o.get("$ref") {
            return self.reference(r, at, depth);
        }
        if let Some(alts) = o.get("anyOf") {
            return self.union(alts, at, false, depth);
        }
        if let Some(alts) = o.get("oneOf") {
            return self.union(alts, at, true, depth);
        }
        let types: Vec<&str> = match o.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) if ts.iter().all(Value::is_string) => {
                ts.iter().filter_map(Value::as_str).collect()
            }
            Some(_) => return err(format!("json_schema at {at}: bad 'type'")),
            None => Vec::new(),
        };
        if o.contains_key("const") || o.contains_key("enum") {
            return self.literals(o, &types, at);
        }
        let types = if !types.is_empty() {
            types
        } else {
            let has = |words: &[&str]| words.iter().any(|k| o.contains_key(*k));
            let kinds: Vec<&str> = [
                ("object", OBJECT_WORDS),
                ("array", ARRAY_WORDS),
                ("string", STRING_WORDS),
            ]
            .into_iter()
            .filter(|(_, w)| has(w))
            .map(|(k, _)| k)
            .collect();
            match kinds.len() {
                0 => return self.any(),
                1 => kinds,
                _ => {
                    return err(format!(
                        "json_schema at {at}: keywords of {kinds:?} without a 'type'"
                    ))
                }
            }
        };
        let mut ids = Vec::new();
        for t in types {
            ids.push(match t {
                "object" => self.object(o, at, depth)?,
                "array" => self.array(o, at, depth)?,
                "string" => self.string(o, at)?,
                "number" => self.push(Node::Number { integer: false })?,
                "integer" => self.push(Node::Number { integer: true })?,
                "boolean" => self.push(literals(["true", "false"]))?,
                "null" => self.push(literals(["null"]))?,
                _ => return err(format!("json_schema at {at}: unknown type '{t}'")),
            });
        }
        self.checked_union(ids, at, false)
    }

    /// `const` or `enum`, each value of one of `types` when given.
    fn literals(
        &mut self,
        o: &Map<String, Value>,
        types: &[&str],
        at: &str,
    ) -> Result<NodeId, SchemaError> {
        let vals: Vec<&Value> = match (o.get("const"), o.get("enum")) {
            (Some(v), None) => vec![v],
            (None, Some(Value::Array(a))) if !a.is_empty() && a.len() <= MAX_CHOICES => {
                a.iter().collect()
            }
            (Some(_), Some(_)) => return err(format!("json_schema at {at}: enum beside const")),
            _ => {
                return err(format!(
                    "json_schema at {at}: enum must list 1 to {MAX_CHOICES} values"
                ))
            }
        };
        let mut texts = Vec::new();
        for v in vals {
            let kind = match v {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let fits = types.is_empty()
                || types.contains(&kind)
                || (kind == "integer" && types.contains(&"number"));
            if !fits {
                return err(format!(
                    "json_schema at {at}: the value {v} is not of type {types:?}"
                ));
            }
            let text = serde_json::to_vec(v).unwrap_or_default();
            if text.len() > MAX_LITERAL {
                return err(format!(
                    "json_schema at {at}: an enum or const value longer than {MAX_LITERAL} \
                     bytes of JSON"
                ));
            }
            if !texts.contains(&text) {
                texts.push(text);
            }
        }
        self.push(Node::Literals(texts))
    }

    /// A `$ref`: a one-choice union naming the target (not a copy: the target may still be
    /// being compiled when a recursive schema refers to itself).
    fn reference(&mut self, r: &Value, at: &str, depth: usize) -> Result<NodeId, SchemaError> {
        let Some(r) = r.as_str() else {
            return err(format!("json_schema at {at}: $ref must be a string"));
        };
        if let Some(&id) = self.refs.get(r) {
            return Ok(id);
        }
        let target = if r == "#" {
            Some(self.root)
        } else {
            r.strip_prefix("#/$defs/")
                .map(|n| ("$defs", n))
                .or_else(|| r.strip_prefix("#/definitions/").map(|n| ("definitions", n)))
                .and_then(|(defs, n)| self.root.get(defs)?.get(n))
        };
        let Some(target) = target else {
            return err(format!("json_schema at {at}: cannot resolve $ref '{r}'"));
        };
        let id = self.push(Node::Union(Vec::new()))?;
        self.refs.insert(r.to_string(), id);
        let body = self.node(target, r, depth + 1)?;
        self.nodes[id as usize] = Node::Union(vec![body]);
        Ok(id)
    }

    fn object(
        &mut self,
        o: &'a Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<NodeId, SchemaError> {
        let mut props = Vec::new();
        if let Some(p) = o.get("properties") {
            let Some(p) = p.as_object() else {
                return err(format!("json_schema at {at}: properties must be an object"));
            };
            if p.len() > MAX_CHOICES {
                return err(format!(
                    "json_schema at {at}: more than {MAX_CHOICES} properties"
                ));
            }
            for (name, s) in p {
                if name.len() > MAX_LITERAL {
                    return err(format!(
                        "json_schema at {at}: a property name longer than {MAX_LITERAL} bytes"
                    ));
                }
                if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
                    return err(format!(
                        "json_schema at {at}: property name {name:?} needs escapes, not supported"
                    ));
                }
                let id = self.node(s, &format!("{at}/properties/{name}"), depth + 1)?;
                props.push((name.as_bytes().to_vec(), id));
            }
        }
        let mut required = 0u64;
        let names = match o.get("required") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return err(format!("json_schema at {at}: required must be an array")),
        };
        for r in names {
            let name = r.as_str().map(str::as_bytes);
            let Some(i) = props.iter().position(|(n, _)| Some(&n[..]) == name) else {
                return err(format!(
                    "json_schema at {at}: required property {r} is not in 'properties'"
                ));
            };
            required |= 1 << i;
        }
        let additional = match o.get("additionalProperties") {
            None if props.is_empty() => Some(self.any()?),
            None | Some(Value::Bool(false)) => None,
            Some(s) => Some(self.node(s, &format!("{at}/additionalProperties"), depth + 1)?),
        };
        self.push(Node::Object {
            props,
            required,
            additional,
        })
    }

    fn array(
        &mut self,
        o: &'a Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<NodeId, SchemaError> {
        let items = match o.get("items") {
            Some(s) => self.node(s, &format!("{at}/items"), depth + 1)?,
            None => self.any()?,
        };
        let (min, max) = bounds(o, at, "minItems", "maxItems")?;
        self.push(Node::Array { items, min, max })
    }

    fn string(&mut self, o: &Map<String, Value>, at: &str) -> Result<NodeId, SchemaError> {
        if let Some(f) = o.get("format") {
            let Some(f) = f.as_str().and_then(Format::named) else {
                return err(format!(
                    "json_schema at {at}: format {f} is not supported (date, time, date-time \
                     and uuid are)"
                ));
            };
            if let Some(k) = ["minLength", "maxLength"]
                .iter()
                .find(|k| o.contains_key(**k))
            {
                return err(format!(
                    "json_schema at {at}: '{k}' beside 'format' is not supported"
                ));
            }
            return self.push(Node::Format(f));
        }
        let (min, max) = bounds(o, at, "minLength", "maxLength")?;
        self.push(Node::String { min, max })
    }

    fn union(
        &mut self,
        alts: &'a Value,
        at: &str,
        one_of: bool,
        depth: usize,
    ) -> Result<NodeId, SchemaError> {
        let Some(alts) = alts.as_array().filter(|a| !a.is_empty()) else {
            return err(format!(
                "json_schema at {at}: anyOf/oneOf must list schemas"
            ));
        };
        let mut ids = Vec::new();
        for (i, a) in alts.iter().enumerate() {
            ids.push(self.node(a, &format!("{at}/anyOf/{i}"), depth + 1)?);
        }
        self.checked_union(ids, at, one_of)
    }

    /// A union of `ids`, its choices checked once the graph is whole (see
    /// `Graph::new`). Numbers of both kinds in an `anyOf` or a type list merge into one.
    fn checked_union(
        &mut self,
        mut ids: Vec<NodeId>,
        at: &str,
        one_of: bool,
    ) -> Result<NodeId, SchemaError> {
        let is_number = |n: &Node| matches!(n, Node::Number { .. });
        let numbers: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|&i| is_number(&self.nodes[i as usize]))
            .collect();
        if numbers.len() > 1 && !one_of {
            let integer = numbers
                .iter()
                .all(|&i| self.nodes[i as usize] == Node::Number { integer: true });
            ids.retain(|i| !numbers.contains(i));
            ids.push(self.push(Node::Number { integer })?);
        }
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        let id = self.push(Node::Union(ids))?;
        self.unions.push((id, at.to_string(), one_of));
        Ok(id)
    }
}

/// The whole numbers `lo` and `hi` of `o` (0 and `u16::MAX`, no maximum, when absent; a
/// larger maximum means none).
fn bounds(o: &Map<String, Value>, at: &str, lo: &str, hi: &str) -> Result<(u16, u16), SchemaError> {
    let read = |k: &str| -> Result<Option<u64>, SchemaError> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => err(format!("json_schema at {at}: {k} must be a whole number")),
            },
        }
    };
    let min = read(lo)?.unwrap_or(0);
    let max = read(hi)?.unwrap_or(u64::MAX).min(u16::MAX as u64);
    if min > u16::MAX as u64 {
        return err(format!(
            "json_schema at {at}: {lo} above {} is not supported",
            u16::MAX
        ));
    }
    if min > max {
        return err(format!("json_schema at {at}: {lo} exceeds {hi}"));
    }
    Ok((min as u16, max as u16))
}

fn literals<const N: usize>(texts: [&str; N]) -> Node {
    Node::Literals(texts.iter().map(|t| t.as_bytes().to_vec()).collect())
}
