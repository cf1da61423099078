//! Tables derived from a compiled schema's nodes, computed once when it compiles, so that the
//! recognizer never searches the graph (unions may refer to themselves through `$ref`):
//!
//! - the bytes each node's values can start with (a fixed point over unions);
//! - the containers its smallest value nests (`min_depth`; a node with no finite value, or a
//!   top level that cannot fit [`MAX_NEST`], refuses the schema: the sampler would be stuck);
//! - for each node and each byte a JSON value can start with, the concrete shape (not a union)
//!   that a value starting so takes: the first choice in order whose values can start with
//!   it, looking through nested unions once each.
//!
//! It also checks the schema's `anyOf`/`oneOf`/type-list unions: their choices must start
//! with different bytes, as the recognizer picks a choice by a value's first byte.

use crate::schema::{err, Node, NodeId, SchemaError};
use crate::schema_state::MAX_NEST;

/// A set of bytes.
type ByteSet = [u64; 4];

/// No shape.
const NONE: NodeId = NodeId::MAX;
/// Bytes a JSON value can start with, in table order.
const STARTS: &[u8; 17] = b"{[\"-0123456789tfn";
/// Unknown or infinite nesting.
const INFINITE: u16 = u16::MAX;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    first: Vec<ByteSet>,
    min_depth: Vec<u16>,
    /// `resolved[id][slot(b)]`: the concrete shape of a value of `id` starting with `b`.
    resolved: Vec<[NodeId; 17]>,
}

fn slot(b: u8) -> Option<usize> {
    STARTS.iter().position(|&s| s == b)
}

fn has(set: &ByteSet, b: u8) -> bool {
    set[(b >> 6) as usize] >> (b & 63) & 1 == 1
}

fn byte_set(bytes: impl IntoIterator<Item = u8>) -> ByteSet {
    let mut s = [0u64; 4];
    for b in bytes {
        s[(b >> 6) as usize] |= 1 << (b & 63);
    }
    s
}

impl Graph {
    /// The tables of `nodes`; `unions`: the unions written in the schema (node, where, and
    /// whether a `oneOf`).
    pub(crate) fn new(
        nodes: &[Node],
        root: NodeId,
        unions: &[(NodeId, String, bool)],
    ) -> Result<Graph, SchemaError> {
        let first = first_sets(nodes);
        // Only a cycle of bare references leaves a shape with no first byte.
        if first.contains(&[0; 4]) {
            return err("json_schema: a cycle of $ref with no value in it");
        }
        if first[root as usize]
            .iter()
            .zip(byte_set(*b"{["))
            .any(|(t, o)| t & !o != 0)
        {
            return err("the top level of a json_schema must be an object or an array");
        }
        for (id, at, one_of) in unions {
            let Node::Union(alts) = &nodes[*id as usize] else {
                continue;
            };
            let mut seen = [0u64; 4];
            for &a in alts {
                let f = first[a as usize];
                if seen.iter().zip(f).any(|(s, x)| s & x != 0) {
                    let what = if *one_of {
                        "oneOf"
                    } else {
                        "anyOf or a type list"
                    };
                    return err(format!(
                        "json_schema at {at}: the choices of {what} must start differently \
                         (e.g. a string or null; not two strings, two objects or two numbers)"
                    ));
                }
                for (s, x) in seen.iter_mut().zip(f) {
                    *s |= x;
                }
            }
        }
        let min_depth = min_depths(nodes);
        if min_depth.contains(&INFINITE) {
            return err(
                "json_schema: a shape has no finite value (a required property or a \
                 non-empty array that always contains itself)",
            );
        }
        if min_depth[root as usize] as usize > MAX_NEST {
            return err(format!(
                "json_schema: its smallest value nests more than {MAX_NEST} containers"
            ));
        }
        let resolved = (0..nodes.len())
            .map(|id| STARTS.map(|b| resolve_slow(nodes, &first, id as NodeId, b)))
            .collect();
        Ok(Graph {
            first,
            min_depth,
            resolved,
        })
    }

    pub(crate) fn resolve(&self, id: NodeId, b: u8) -> Option<NodeId> {
        let r = self.resolved[id as usize][slot(b)?];
        (r != NONE).then_some(r)
    }

    pub(crate) fn min_depth(&self, id: NodeId) -> usize {
        self.min_depth[id as usize] as usize
    }
}

/// The first bytes of every node, unions included (a fixed point: unions can recurse).
fn first_sets(nodes: &[Node]) -> Vec<ByteSet> {
    let mut first: Vec<ByteSet> = nodes
        .iter()
        .map(|n| match n {
            Node::Object { .. } => byte_set(*b"{"),
            Node::Array { .. } => byte_set(*b"["),
            Node::String { .. } | Node::Format(_) => byte_set(*b"\""),
            Node::Number { .. } => byte_set(*b"-0123456789"),
            Node::Literals(l) => byte_set(l.iter().filter_map(|t| t.first().copied())),
            Node::Union(_) => [0; 4],
        })
        .collect();
    loop {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            if let Node::Union(alts) = n {
                let mut s = first[i];
                for &a in alts {
                    for (w, x) in s.iter_mut().zip(first[a as usize]) {
                        *w |= x;
                    }
                }
                changed |= s != first[i];
                first[i] = s;
            }
        }
        if !changed {
            return first;
        }
    }
}

/// The containers each node's smallest value nests (a fixed point from "infinite" down).
fn min_depths(nodes: &[Node]) -> Vec<u16> {
    let mut d = vec![INFINITE; nodes.len()];
    let plus1 = |x: u16| {
        if x == INFINITE {
            INFINITE
        } else {
            x.saturating_add(1).min(INFINITE - 1)
        }
    };
    loop {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            let v = match n {
                Node::String { .. } | Node::Format(_) | Node::Number { .. } | Node::Literals(_) => {
                    0
                }
                Node::Array { items, min, .. } => {
                    plus1(if *min == 0 { 0 } else { d[*items as usize] })
                }
                Node::Object {
                    props, required, ..
                } => plus1(
                    props
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| required >> j & 1 == 1)
                        .map(|(_, (_, p))| d[*p as usize])
                        .max()
                        .unwrap_or(0),
                ),
                Node::Union(alts) => alts
                    .iter()
                    .map(|&a| d[a as usize])
                    .min()
                    .unwrap_or(INFINITE),
            };
            if v < d[i] {
                d[i] = v;
                changed = true;
            }
        }
        if !changed {
            return d;
        }
    }
}

/// The concrete shape of a value of `id` starting with `b`: the first choice in order that
/// can start with `b`, each union visited once.
fn resolve_slow(nodes: &[Node], first: &[ByteSet], id: NodeId, b: u8) -> NodeId {
    let mut visited = vec![false; nodes.len()];
    let mut stack = vec![id];
    // Depth first, choices in order: push them reversed.
    while let Some(n) = stack.pop() {
        if visited[n as usize] || !has(&first[n as usize], b) {
            continue;
        }
        visited[n as usize] = true;
        match &nodes[n as usize] {
            Node::Union(alts) => stack.extend(alts.iter().rev()),
            _ => return n,
        }
    }
    NONE
}
