//! A serde `Deserializer` over our positioned [`Node`] tree.
//!
//! It does three things the usual YAML deserializers don't:
//! - every error carries the field path and the line of the node at fault;
//! - unknown fields of a struct are *collected* (with a "did you mean"
//!   suggestion from the struct's own field list) instead of ending the
//!   whole document at the first one, so a user sees every typo at once;
//! - Istio's decoder leniencies are applied in one place: `snake_case`
//!   field names map to their camelCase field, `null` means "not set", and
//!   a plain scalar read as a string keeps its source text (`8080`).

use std::cell::RefCell;
use std::fmt;

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::path::{FieldPath, Seg};
use crate::yaml::{Node, Pos, Value, snake_to_camel};

/// A field the target type does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// Path of the unknown field itself.
    pub path: FieldPath,
    /// Where its key stands.
    pub pos: Pos,
    /// The closest known field name, if one is close.
    pub suggestion: Option<&'static str>,
}

/// A deserialization error with the path and position of the bad node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeError {
    /// Path of the field at fault (set as the error leaves that field).
    pub path: Option<FieldPath>,
    /// Where the field stands.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we know.
    pub hint: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) if !p.is_empty() => write!(f, "{p}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: None,
            pos: None,
            message: msg.to_string(),
            hint: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "wrong type: expected {exp}, found {}",
            describe(&unexp)
        ))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "Invalid value {}: expected {exp}",
            describe(&unexp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format_args!(
            "Unsupported value: {variant:?}: supported values: {}",
            expected
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        e.hint = suggest(variant, expected).map(|s| format!("did you mean {s:?}?"));
        e
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("{field}: Required value"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format_args!(
            "field {field:?} is given twice (camelCase and snake_case?)"
        ))
    }
}

fn describe(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Str(s) => format!("string {s:?}"),
        de::Unexpected::Signed(i) => format!("integer {i}"),
        de::Unexpected::Unsigned(i) => format!("integer {i}"),
        de::Unexpected::Float(f) => format!("number {f}"),
        de::Unexpected::Bool(b) => format!("boolean {b}"),
        de::Unexpected::Unit => "null".to_string(),
        de::Unexpected::Seq => "a list".to_string(),
        de::Unexpected::Map => "an object".to_string(),
        other => other.to_string(),
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a
/// likely typo (or differs only in case or separators).
pub fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = norm(word);
    if let Some(exact) = candidates.iter().find(|c| norm(c) == w) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&w, &norm(c)), *c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Deserializes `node` (found at `path`) into `T`, returning the value and
/// the unknown fields met on the way.
pub fn from_node<T: DeserializeOwned>(
    node: &Node,
    path: FieldPath,
) -> Result<(T, Vec<UnknownField>), DeError> {
    let unknown = RefCell::new(Vec::new());
    let value = T::deserialize(NodeDe {
        node,
        path,
        unknown: &unknown,
    })?;
    Ok((value, unknown.into_inner()))
}

struct NodeDe<'a> {
    node: &'a Node,
    path: FieldPath,
    unknown: &'a RefCell<Vec<UnknownField>>,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, seg: Seg) -> NodeDe<'a> {
        NodeDe {
            node,
            path: self.path.join(seg),
            unknown: self.unknown,
        }
    }

    /// Attaches this node's path and position to an error that has none yet
    /// (errors raised by visitors know neither).
    fn locate<R>(&self, r: Result<R, DeError>) -> Result<R, DeError> {
        r.map_err(|mut e| {
            if e.path.is_none() {
                e.path = Some(self.path.clone());
                e.pos = Some(self.node.pos);
            }
            e
        })
    }

    fn unexpected(&self) -> de::Unexpected<'a> {
        match &self.node.value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b, _) => de::Unexpected::Bool(*b),
            Value::Int(i, _) => de::Unexpected::Signed(*i),
            Value::Float(f, _) => de::Unexpected::Float(*f),
            Value::String(s) => de::Unexpected::Str(s),
            Value::Seq(_) => de::Unexpected::Seq,
            Value::Map(_) => de::Unexpected::Map,
        }
    }

    fn wrong_type<R>(&self, exp: &dyn de::Expected) -> Result<R, DeError> {
        self.locate(Err(de::Error::invalid_type(self.unexpected(), exp)))
    }
}

struct Expecting(&'static str);
impl de::Expected for Expecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

macro_rules! int_method {
    ($method:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.node.value {
                Value::Int(i, _) => {
                    let r = visitor.visit_i64(*i);
                    self.locate(r)
                }
                _ => self.wrong_type(&Expecting("an integer")),
            }
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b, _) => visitor.visit_bool(*b),
            Value::Int(i, _) => visitor.visit_i64(*i),
            Value::Float(f, _) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                de: &self,
                items: items.iter(),
                index: 0,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                de: &self,
                entries: entries.iter(),
                fields: None,
                pending: None,
            }),
        };
        self.locate(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Bool(b, _) => {
                let r = visitor.visit_bool(*b);
                self.locate(r)
            }
            _ => self.wrong_type(&Expecting("true or false")),
        }
    }

    int_method!(deserialize_i8);
    int_method!(deserialize_i16);
    int_method!(deserialize_i32);
    int_method!(deserialize_i64);
    int_method!(deserialize_u8);
    int_method!(deserialize_u16);
    int_method!(deserialize_u32);
    int_method!(deserialize_u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Int(i, _) => visitor.visit_f64(*i as f64),
            Value::Float(f, _) => visitor.visit_f64(*f),
            _ => return self.wrong_type(&Expecting("a number")),
        };
        self.locate(r)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value.scalar_text() {
            Some(s) => {
                let r = visitor.visit_str(s);
                self.locate(r)
            }
            None => self.wrong_type(&Expecting("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_unit(),
            _ => self.wrong_type(&Expecting("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => {
                let r = visitor.visit_seq(SeqDe {
                    de: &self,
                    items: items.iter(),
                    index: 0,
                });
                self.locate(r)
            }
            _ => self.wrong_type(&Expecting("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let r = visitor.visit_map(MapDe {
                    de: &self,
                    entries: entries.iter(),
                    fields: None,
                    pending: None,
                });
                self.locate(r)
            }
            _ => self.wrong_type(&Expecting("an object (key: value pairs)")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let r = visitor.visit_map(MapDe {
                    de: &self,
                    entries: entries.iter(),
                    fields: Some(fields),
                    pending: None,
                });
                self.locate(r)
            }
            _ => self.wrong_type(&Expecting("an object (key: value pairs)")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.node.value.scalar_text() {
            Some(s) => {
                let r = visitor.visit_enum(s.to_string().into_deserializer());
                self.locate(r)
            }
            None => self.wrong_type(&Expecting("one of the named values (a string)")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a, 'b> {
    de: &'b NodeDe<'a>,
    items: std::slice::Iter<'a, Node>,
    index: usize,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let child = self.de.child(item, Seg::Index(self.index));
        self.index += 1;
        seed.deserialize(child).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'b> {
    de: &'b NodeDe<'a>,
    entries: std::slice::Iter<'a, (crate::yaml::Key, Node)>,
    /// The struct's fields; `None` for a free-form map.
    fields: Option<&'static [&'static str]>,
    pending: Option<(Seg, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            let Some(fields) = self.fields else {
                self.pending = Some((Seg::Key(key.name.clone()), value));
                let k: StringDeserializer<DeError> = key.name.clone().into_deserializer();
                return seed.deserialize(k).map(Some);
            };
            // `null` means "not set", as in Kubernetes and protobuf JSON.
            if value.value == Value::Null {
                continue;
            }
            let camel = snake_to_camel(&key.name);
            let name = if fields.contains(&key.name.as_str()) {
                key.name.clone()
            } else if fields.contains(&camel.as_ref()) {
                camel.into_owned()
            } else {
                self.de.unknown.borrow_mut().push(UnknownField {
                    path: self.de.path.join(Seg::Field(key.name.clone())),
                    pos: key.pos,
                    suggestion: suggest(&key.name, fields),
                });
                continue;
            };
            self.pending = Some((Seg::Field(name.clone()), value));
            let k: StringDeserializer<DeError> = name.into_deserializer();
            return seed.deserialize(k).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.pending.take() {
            Some((seg, node)) => seed.deserialize(self.de.child(node, seg)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
}

/// Deserializes a whole typed document and reports nothing unknown; for tests.
#[cfg(test)]
pub(crate) fn from_str_for_test<T: DeserializeOwned>(
    text: &str,
) -> Result<(T, Vec<UnknownField>), DeError> {
    let docs = crate::yaml::parse_stream(text);
    let node = docs
        .into_iter()
        .next()
        .and_then(|d| d.result.ok().flatten())
        .ok_or_else(|| <DeError as de::Error>::custom("no document"))?;
    from_node(&node, FieldPath::root())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Route {
        destination: Dest,
        weight: Option<u32>,
        labels: BTreeMap<String, String>,
        mode: Mode,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Dest {
        host: String,
        subset: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Mode {
        #[default]
        Unset,
        Strict,
        Permissive,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", default)]
    struct Top {
        routes: Vec<Route>,
    }

    #[test]
    fn reads_typed_values_and_keeps_scalar_text() {
        let (t, unknown): (Top, _) =
            from_str_for_test("routes:\n- destination: {host: a, subset: 1}\n  weight: 5\n  labels: {v: 1.0}\n  mode: STRICT\n")
                .expect("ok");
        assert!(unknown.is_empty());
        assert_eq!(t.routes[0].destination.subset, "1");
        assert_eq!(t.routes[0].labels.get("v").map(String::as_str), Some("1.0"));
        assert_eq!(t.routes[0].mode, Mode::Strict);
        assert_eq!(t.routes[0].weight, Some(5));
    }

    #[test]
    fn collects_every_unknown_field_with_suggestions() {
        let (_, unknown): (Top, _) =
            from_str_for_test("routes:\n- destinaton: {host: a}\n  wieght: 5\n  zzz: 1\n")
                .expect("ok");
        let found: Vec<_> = unknown
            .iter()
            .map(|u| (u.path.to_string(), u.pos.line, u.suggestion))
            .collect();
        assert_eq!(
            found,
            vec![
                ("routes[0].destinaton".to_string(), 2, Some("destination")),
                ("routes[0].wieght".to_string(), 3, Some("weight")),
                ("routes[0].zzz".to_string(), 4, None),
            ]
        );
    }

    #[test]
    fn type_errors_name_path_and_line() {
        let e = from_str_for_test::<Top>("routes:\n- destination: {host: a}\n  weight: -3\n")
            .expect_err("negative");
        assert_eq!(
            e.path.map(|p| p.to_string()).as_deref(),
            Some("routes[0].weight")
        );
        assert_eq!(e.pos.map(|p| p.line), Some(3));
        let e = from_str_for_test::<Top>("routes:\n- destination: [a]\n").expect_err("list");
        assert_eq!(
            e.path.map(|p| p.to_string()).as_deref(),
            Some("routes[0].destination")
        );
        assert!(e.message.contains("expected an object"), "{}", e.message);
    }

    #[test]
    fn bad_enum_values_list_the_choices() {
        let e = from_str_for_test::<Top>("routes:\n- mode: STRICTT\n").expect_err("bad enum");
        assert!(
            e.message.starts_with("Unsupported value: \"STRICTT\""),
            "{}",
            e.message
        );
        assert_eq!(e.hint.as_deref(), Some("did you mean \"STRICT\"?"));
    }

    #[test]
    fn snake_case_and_null_are_accepted() {
        let (t, unknown): (Top, _) =
            from_str_for_test("routes:\n- destination: {host: a, subset: null}\n  weight: ~\n")
                .expect("ok");
        assert!(unknown.is_empty());
        assert_eq!(t.routes[0].weight, None);
        #[derive(Debug, Default, Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        struct S {
            export_to: Vec<String>,
        }
        let (s, unknown): (S, _) = from_str_for_test("export_to: [a]\n").expect("ok");
        assert!(unknown.is_empty());
        assert_eq!(s.export_to, vec!["a".to_string()]);
    }
}
