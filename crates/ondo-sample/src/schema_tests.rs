//! Tests of the schema compiler and recognizer: documents valid under a schema are accepted
//! whole and byte by byte, invalid ones are refused at the first byte that breaks the schema,
//! and unsupported schemas are refused with the keyword's name.

use serde_json::{json, Value};

use super::*;
use crate::schema::SchemaError;

fn compile(v: Value) -> JsonSchema {
    JsonSchema::compile(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// Bytes accepted before the first refusal, and whether the whole text was complete.
fn run(s: &JsonSchema, text: &str) -> (usize, bool) {
    let mut st = SchemaState::new();
    let n = text.bytes().take_while(|&b| st.feed(s, b)).count();
    (n, n == text.len() && st.is_complete())
}

fn accepts(s: &JsonSchema, doc: &str) {
    let (n, done) = run(s, doc);
    assert!(done, "refused {doc:?} at byte {n}");
    // no proper prefix (but trailing whitespace) is complete
    let mut st = SchemaState::new();
    let end = doc.trim_end().len();
    for (i, b) in doc.bytes().enumerate() {
        assert!(st.feed(s, b));
        assert_eq!(st.is_complete(), i + 1 >= end, "{doc:?} at byte {i}");
    }
}

fn refuses_at(s: &JsonSchema, doc: &str, at: usize) {
    assert_eq!(run(s, doc), (at, false), "{doc:?}");
}

fn person() -> JsonSchema {
    compile(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["a", "ab", 1, null]}, "maxItems": 2},
            "nick": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "ok": {"type": "boolean"}
        },
        "required": ["name", "age"],
        "additionalProperties": false
    }))
}

#[test]
fn documents_valid_under_the_schema_are_accepted() {
    let s = person();
    for doc in [
        r#"{"name": "Kim", "age": 30}"#,
        r#"{"age": -4, "name": "caf\u00e9 \"x\""}"#,
        "{\"name\":\"\u{c628}\u{b3c4}\",\"age\":0,\"tags\":[\"ab\", 1],\"nick\":null,\"ok\":true}\n",
        r#"{ "tags": [], "nick": "k", "name": "", "age": 7 }"#,
    ] {
        serde_json::from_str::<Value>(doc).expect("the test's JSON is valid");
        accepts(&s, doc);
    }
}

#[test]
fn documents_breaking_the_schema_are_refused_at_the_first_wrong_byte() {
    let s = person();
    let cases = [
        (r#"[1]"#, 0),
        (r#"{"nam": 1}"#, 5),   // not a declared name
        (r#"{"name": 1}"#, 9),  // a string expected
        (r#"{"age": 1.5}"#, 9), // an integer: '.' ends it, then ',' or '}'
        (r#"{"age": 1e3}"#, 9),
        (r#"{"name": "x"}"#, 12),                      // "age" is required
        (r#"{"name": "x", "name": "y"}"#, 16),         // a duplicate key ("n" may begin "nick")
        (r#"{"age": 1, "x": 2}"#, 12),                 // no other keys
        (r#"{"age": 1, "tags": ["b"]}"#, 21),          // not in the enum
        (r#"{"age": 1, "tags": ["a", 1, null]}"#, 26), // maxItems 2
        (r#"{"age": 1, "tags": [12]}"#, 21),           // 1 ended, 2 cannot follow
        (r#"{"age": 1, "nick": 3}"#, 19),              // a string or null
        (r#"{"age": 1, "ok": nul}"#, 17),              // a boolean
        (r#"{"age": 1,}"#, 10),
    ];
    for (doc, at) in cases {
        refuses_at(&s, doc, at);
    }
    // prefixes of longer literals stay open; a complete literal ends at the next byte
    accepts(&s, r#"{"age": 1, "tags": ["a", "ab"], "name": "x"}"#);
}

#[test]
fn additional_properties_and_any_values() {
    let s = compile(json!({
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "additionalProperties": {"type": "number"}
    }));
    accepts(&s, r#"{"x": 1.5, "id": 2, "idx": -0.5e+2}"#);
    refuses_at(&s, r#"{"id": 1, "id": 2}"#, 13);
    refuses_at(&s, r#"{"x": "s"}"#, 6);
    refuses_at(&s, r#"{"a\u0041": 1}"#, 3); // free keys take no escapes
    let any = compile(json!({"type": "object"}));
    accepts(&any, r#"{"a": [1, {"b": null}, "c", true], "d": {}}"#);
    let any = compile(json!({"type": "array", "items": true, "minItems": 1}));
    accepts(&any, r#"[{"k": [false]}]"#);
    refuses_at(&any, "[]", 1);
    // an object with no properties and no other keys is only {}
    let empty = compile(json!({"type": "object", "properties": {}, "additionalProperties": false}));
    accepts(&empty, "{}");
    refuses_at(&empty, "{\"", 1);
}

#[test]
fn references_and_recursion() {
    let s = compile(json!({
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}
                },
                "required": ["v"]
            }
        },
        "$ref": "#/$defs/node"
    }));
    accepts(
        &s,
        r#"{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4, "kids": []}]}]}"#,
    );
    refuses_at(&s, r#"{"v": 1, "kids": [{"w": 2}]}"#, 20);
    // nesting is bounded: MAX_NEST containers
    let deep = r#"{"v":0,"kids":["#.repeat(MAX_NEST / 2);
    let (n, _) = run(&s, &format!("{deep}{{"));
    assert_eq!(n, deep.len(), "the container past MAX_NEST is refused");
    // a cycle of bare references has no value: refused, not looping
    let cyc = JsonSchema::compile(
        &json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
    );
    assert!(cyc.is_err());
    // ... also where it is not the top level
    let m = JsonSchema::compile(&json!({"$defs": {"a": {"$ref": "#/$defs/a"}},
        "type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}}));
    assert!(m.is_err_and(|e| e.0.contains("cycle")));
}

#[test]
fn unsupported_or_ambiguous_schemas_are_refused_with_a_reason() {
    let msg = |v: Value| -> String {
        match JsonSchema::compile(&v) {
            Err(SchemaError(m)) => m,
            Ok(_) => panic!("{v} compiled"),
        }
    };
    let m = msg(json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}));
    assert!(
        m.contains("'pattern'") && m.contains("#/properties/a"),
        "{m}"
    );
    assert!(msg(json!({"type": "string"})).contains("top level"));
    assert!(
        msg(json!({"anyOf": [{"type": "object"}, {"type": "object"}]}))
            .contains("start differently")
    );
    assert!(msg(json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"enum": ["x"]}]}}})).contains("start differently"));
    assert!(
        msg(json!({"type": "object", "required": ["a"], "properties": {}})).contains("required")
    );
    assert!(msg(json!({"$ref": "#/$defs/missing"})).contains("cannot resolve"));
    assert!(msg(json!({"type": "array", "minItems": 3, "maxItems": 2})).contains("minItems"));
    assert!(msg(json!({"type": "object", "properties": {"a\"b": {}}})).contains("escapes"));
    assert!(msg(json!([1])).contains("must be an object"));
    // numbers of both kinds merge into one choice
    let s = compile(
        json!({"type": "object", "properties": {"n": {"type": ["integer", "number", "null"]}}}),
    );
    accepts(&s, r#"{"n": 1.5}"#);
    accepts(&s, r#"{"n": null}"#);
}

#[test]
fn bounds_and_combinations_are_enforced_or_refused() {
    let none = compile(json!({"type": "array", "maxItems": 0}));
    accepts(&none, "[]");
    refuses_at(&none, "[1]", 1);
    let msg = |v: Value| JsonSchema::compile(&v).expect_err("refused").0;
    assert!(msg(json!({"type": "array", "minItems": 70000})).contains("minItems"));
    let long = "x".repeat(crate::schema::MAX_LITERAL + 1);
    assert!(
        msg(json!({"type": "object", "properties": {"a": {"const": long}}})).contains("longer")
    );
    // oneOf: overlapping choices are refused (no merging of numbers), also through $ref
    assert!(
        msg(json!({"oneOf": [{"type": "object"}, {"type": "array"}, {"type": "array"}]}))
            .contains("oneOf")
    );
    let one = json!({"type": "object", "properties": {"n": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}});
    assert!(msg(one).contains("oneOf"));
    let any = json!({"type": "object", "properties": {"n": {"oneOf": [{}, {"type": "integer"}]}}});
    assert!(msg(any).contains("oneOf"));
    let via_ref = json!({"$defs": {"s": {"type": "string"}}, "type": "object",
        "properties": {"n": {"anyOf": [{"$ref": "#/$defs/s"}, {"type": "string"}]}}});
    assert!(msg(via_ref).contains("start differently"));
    // keywords beside enum/const/anyOf/oneOf/$ref
    let e = json!({"type": "object", "properties": {"e": {"type": "string", "enum": ["x", 1]}}});
    assert!(msg(e).contains("not of type"));
    let both = json!({"type": "object", "properties": {"e": {"anyOf": [{"type": "string"}], "oneOf": [{"type": "null"}]}}});
    assert!(msg(both).contains("beside"));
    let mixed = json!({"type": "object", "required": ["a"], "properties": {"a": {}},
        "anyOf": [{"type": "object"}, {"type": "null"}]});
    assert!(msg(mixed).contains("beside"));
    // keywords alone say which type they constrain
    let add = compile(json!({"additionalProperties": {"type": "string"}}));
    accepts(&add, r#"{"a": "x"}"#);
    refuses_at(&add, r#"{"a": 1}"#, 6);
    assert!(msg(json!({"items": {}, "properties": {}})).contains("without a 'type'"));
    // an enum that fits its type
    let ok = compile(
        json!({"type": "object", "properties": {"e": {"type": ["string", "null"], "enum": ["x", null]}}}),
    );
    accepts(&ok, r#"{"e": null}"#);
}

#[test]
fn recursion_is_resolved_and_dead_ends_are_refused() {
    // a reference reached while its target is still being compiled
    let s = compile(json!({"$defs": {"N": {"type": "object", "properties": {
        "kids": {"type": "array", "minItems": 1, "items": {"$ref": "#"}}}}},
        "$ref": "#/$defs/N"}));
    accepts(&s, r#"{"kids": [{"kids": [{}]}, {}]}"#);
    refuses_at(&s, r#"{"kids": []}"#, 10);
    // an alias of an alias
    let s = compile(
        json!({"$defs": {"A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
        "B": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}),
    );
    accepts(&s, r#"{"b": {"b": {}}}"#);
    // a union that lists itself first is ambiguous: refused, not looping
    let cyc = json!({"$defs": {"A": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "object"}]},
        "B": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "string"}]}},
        "type": "object", "properties": {"x": {"$ref": "#/$defs/A"}}});
    assert!(JsonSchema::compile(&cyc).is_err());
    // no finite value: refused
    let inf =
        json!({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]});
    assert!(JsonSchema::compile(&inf)
        .expect_err("refused")
        .0
        .contains("finite"));
    // nesting past MAX_NEST: refused up front when the smallest value needs it
    let mut deep = json!({"type": "object", "properties": {}, "additionalProperties": false});
    for _ in 0..MAX_NEST {
        deep = json!({"type": "object", "properties": {"a": deep}, "required": ["a"]});
    }
    assert!(JsonSchema::compile(&deep)
        .expect_err("refused")
        .0
        .contains("nests"));
    // ...and at the limit, what cannot fit is refused while the way out stays open
    let k = compile(json!({"$defs": {"k": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/k"}}}}},
        "type": "array", "items": {"$ref": "#/$defs/k"}}));
    let mut text = String::from("[");
    for _ in 0..MAX_NEST / 2 - 1 {
        text.push_str(r#"{"kids":["#);
    }
    text.push('{');
    let st = SchemaState::new()
        .after(&k, text.as_bytes())
        .expect("a valid prefix");
    assert!(
        st.after(&k, b"\"kids\":[").is_none(),
        "an array past MAX_NEST"
    );
    let close = format!("}}{}", "]}".repeat(MAX_NEST / 2 - 1)) + "]";
    assert!(st
        .after(&k, close.as_bytes())
        .is_some_and(|s| s.is_complete()));
    // a ref chain deeper than the compiler follows
    let mut defs = serde_json::Map::new();
    for i in 0..200 {
        defs.insert(
            format!("a{i}"),
            json!({"$ref": format!("#/$defs/a{}", i + 1)}),
        );
    }
    defs.insert("a200".into(), json!({"type": "object"}));
    let chain = json!({"$defs": defs, "$ref": "#/$defs/a0"});
    assert!(JsonSchema::compile(&chain)
        .expect_err("refused")
        .0
        .contains("nested"));
}

#[test]
fn free_keys_keep_one_state_once_no_name_matches() {
    let s = compile(
        json!({"type": "object", "properties": {"name": {"type": "string"}},
        "additionalProperties": true}),
    );
    let a = SchemaState::new().after(&s, b"{\"zz").unwrap();
    let b = SchemaState::new().after(&s, b"{\"zzzzzz").unwrap();
    assert_eq!(a, b);
    assert!(a.in_plain_string());
    accepts(&s, "{\"zz\u{e9}\": [1], \"nam\": 2, \"name\": \"x\"}");
    refuses_at(&s, r#"{"name": "x", "name": 1}"#, 19);
}

/// An independent check of a document against the schema subset (and this crate's reading of
/// an absent `additionalProperties`), written from the JSON Schema text, not from the graph.
fn valid(v: &Value, s: &Value, root: &Value) -> bool {
    let Some(o) = s.as_object() else {
        return s == &Value::Bool(true);
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let target = match r {
            "#" => root,
            _ => &root["$defs"][r.trim_start_matches("#/$defs/")],
        };
        return valid(v, target, root);
    }
    if let Some(alts) = o.get("anyOf").and_then(Value::as_array) {
        return alts.iter().any(|a| valid(v, a, root));
    }
    if let Some(alts) = o.get("oneOf").and_then(Value::as_array) {
        return alts.iter().filter(|a| valid(v, a, root)).count() == 1;
    }
    if let Some(c) = o.get("const") {
        return v == c;
    }
    if let Some(e) = o.get("enum").and_then(Value::as_array) {
        return e.contains(v);
    }
    let kind_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    let ok = match o.get("type") {
        Some(Value::String(t)) => kind_ok(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(kind_ok),
        _ => true,
    };
    if !ok {
        return false;
    }
    if let (Some(t), Some(f)) = (v.as_str(), o.get("format").and_then(Value::as_str)) {
        return formatted(t, f);
    }
    if let Some(t) = v.as_str() {
        let n = t.chars().count() as u64;
        let min = o.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let max = o
            .get("maxLength")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        return n >= min && n <= max;
    }
    if let Some(m) = v.as_object() {
        let props = o.get("properties").and_then(Value::as_object);
        for r in o
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !m.contains_key(r.as_str().unwrap_or_default()) {
                return false;
            }
        }
        for (k, x) in m {
            let ok = match (props.and_then(|p| p.get(k)), o.get("additionalProperties")) {
                (Some(ps), _) => valid(x, ps, root),
                (None, Some(Value::Bool(b))) => *b,
                (None, Some(a)) => valid(x, a, root),
                (None, None) => props.is_none(),
            };
            if !ok {
                return false;
            }
        }
    }
    if let Some(a) = v.as_array() {
        let n = a.len() as u64;
        let min = o.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = o
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let items = o.get("items").unwrap_or(&Value::Bool(true));
        return n >= min && n <= max && a.iter().all(|x| valid(x, items, root));
    }
    true
}

/// `t` is of format `f` (an independent reading: split at the separators, parse numbers).
fn formatted(t: &str, f: &str) -> bool {
    let num = |s: &str, lo: u32, hi: u32| {
        s.len() == 2
            && s.bytes().all(|b| b.is_ascii_digit())
            && (lo..=hi).contains(&s.parse().unwrap_or(99))
    };
    let date = |d: &str| {
        let p: Vec<&str> = d.split('-').collect();
        let (Some(y), true) = (p[0].parse::<u32>().ok(), p.len() == 3 && p[0].len() == 4) else {
            return false;
        };
        let m: u32 = p[1].parse().unwrap_or(0);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let dim = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        y >= 1 && num(p[1], 1, 12) && num(p[2], 1, dim[m as usize - 1])
    };
    let time = |t: &str| {
        let (clock, off) = match t.find(['Z', '+', '-']) {
            Some(i) => t.split_at(i),
            None => return false,
        };
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, "1"));
        let p: Vec<&str> = hms.split(':').collect();
        let off_ok = off == "Z"
            || (off.len() == 6
                && num(&off[1..3], 0, 23)
                && &off[3..4] == ":"
                && num(&off[4..], 0, 59));
        p.len() == 3
            && num(p[0], 0, 23)
            && num(p[1], 0, 59)
            && num(p[2], 0, 59)
            && (1..=9).contains(&frac.len())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && off_ok
    };
    match f {
        "date" => date(t),
        "time" => time(t),
        "date-time" => t.split_once('T').is_some_and(|(d, tm)| date(d) && time(tm)),
        "uuid" => {
            t.len() == 36
                && t.bytes().enumerate().all(|(i, b)| {
                    if [8, 13, 18, 23].contains(&i) {
                        b == b'-'
                    } else {
                        b.is_ascii_hexdigit()
                    }
                })
        }
        _ => false,
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A random schema of the supported subset, `depth` levels at most.
fn random_schema(r: &mut Rng, depth: usize) -> Value {
    let leaf = [
        json!({"type": "string"}),
        json!({"type": "integer"}),
        json!({"type": "number"}),
        json!({"type": "boolean"}),
        json!({"enum": ["a", "ab", 1, 12, null, true]}),
        json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
        json!({"type": ["integer", "null"]}),
        json!({"const": {"k": [1, "x"]}}),
        json!({}),
        json!({"$ref": "#/$defs/leaf"}),
        json!({"type": "string", "minLength": 1, "maxLength": 3}),
        json!({"maxLength": 0}),
        json!({"type": "string", "format": "date"}),
        json!({"format": "date-time"}),
        json!({"format": "time"}),
        json!({"type": "string", "format": "uuid"}),
    ];
    if depth == 0 || r.below(3) == 0 {
        return leaf[r.below(leaf.len())].clone();
    }
    if r.below(2) == 0 {
        let mut a = json!({"type": "array", "items": random_schema(r, depth - 1)});
        if r.below(2) == 0 {
            a["minItems"] = json!(r.below(2));
            a["maxItems"] = json!(1 + r.below(3));
        }
        return a;
    }
    let names = ["a", "ab", "b", "name", "nick", "x"];
    let mut props = serde_json::Map::new();
    let mut required = Vec::new();
    for n in names.iter().take(1 + r.below(names.len())) {
        props.insert(n.to_string(), random_schema(r, depth - 1));
        if r.below(2) == 0 {
            required.push(json!(n));
        }
    }
    let mut o = json!({"type": "object", "properties": props, "required": required});
    match r.below(3) {
        0 => o["additionalProperties"] = json!(false),
        1 => o["additionalProperties"] = json!({"type": "integer"}),
        _ => {}
    }
    o
}

/// Random walks through random schemas: no byte ever makes the recognizer panic; from every
/// prefix it accepts some byte continues (no dead end); every document it completes is JSON
/// valid under the schema by [`valid`].
#[test]
fn random_walks_stay_valid_and_never_get_stuck() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut done, mut walks) = (0, 0);
    while walks < 300 {
        let mut schema = random_schema(&mut r, 4);
        if !schema
            .get("type")
            .is_some_and(|t| t == "object" || t == "array")
        {
            continue;
        }
        schema["$defs"] =
            json!({"leaf": {"type": "object", "properties": {"v": {"type": "integer"}}}});
        walks += 1;
        let s = compile(schema.clone());
        let (mut st, mut text) = (SchemaState::new(), Vec::new());
        for step in 0..600 {
            if st.is_complete() {
                break;
            }
            let next: Vec<u8> = (0..=255u8)
                .filter(|&b| st.after(&s, &[b]).is_some())
                .collect();
            assert!(
                !next.is_empty(),
                "dead end after {:?} under {schema}",
                String::from_utf8_lossy(&text)
            );
            // Late in a walk, prefer what closes values, so that most walks complete.
            let closing: Vec<u8> = next
                .iter()
                .copied()
                .filter(|b| b"}]\"0123456789ln".contains(b) && !(*b == b'"' && step < 400))
                .collect();
            let pick = if step > 300 && !closing.is_empty() {
                closing[r.below(closing.len())]
            } else {
                next[r.below(next.len())]
            };
            assert!(st.feed(&s, pick));
            text.push(pick);
        }
        if st.is_complete() {
            done += 1;
            let doc = String::from_utf8(text.clone()).expect("UTF-8");
            let v: Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
            assert!(
                valid(&v, &schema, &schema),
                "{doc} is not valid under {schema}"
            );
        }
    }
    assert!(done >= 150, "only {done} of {walks} walks completed");
}

#[test]
fn string_lengths_count_code_points() {
    let s = compile(json!({"type": "object", "properties": {
        "s": {"type": "string", "minLength": 2, "maxLength": 3}}}));
    accepts(&s, r#"{"s": "ab"}"#);
    accepts(&s, "{\"s\": \"a\\n\u{e9}\"}");
    accepts(&s, "{\"s\": \"\u{1F600}\u{4e2d}\"}");
    refuses_at(&s, r#"{"s": "a"}"#, 8);
    refuses_at(&s, r#"{"s": "abcd"}"#, 10);
    refuses_at(&s, r#"{"s": "\u0041b"}"#, 8);
    let msg = |v: Value| JsonSchema::compile(&v).expect_err("refused").0;
    assert!(msg(json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 3, "maxLength": 2}}})).contains("minLength"));
    assert!(
        msg(json!({"type": "object", "properties": {"s": {"minLength": 1, "items": {}}}}))
            .contains("without a 'type'")
    );
}

#[test]
fn formats_are_compiled_and_refused_by_name() {
    let s = compile(
        json!({"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}),
    );
    accepts(&s, r#"{"at": "2024-02-29T23:59:59.5+09:00"}"#);
    refuses_at(&s, r#"{"at": "2023-02-29T00:00:00Z"}"#, 17);
    let msg = |v: Value| JsonSchema::compile(&v).expect_err("refused").0;
    assert!(msg(
        json!({"type": "object", "properties": {"e": {"type": "string", "format": "email"}}})
    )
    .contains("format"));
    assert!(msg(
        json!({"type": "object", "properties": {"e": {"format": "date", "maxLength": 3}}})
    )
    .contains("beside 'format'"));
}
