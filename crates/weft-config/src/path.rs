//! Field paths such as `spec.http[0].route[1].weight`, the way Kubernetes
//! and Istio name the field an error is about.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A struct field (`.weight`).
    Field(String),
    /// A list index (`[0]`).
    Index(usize),
    /// A key of a free-form map such as labels (`[app]`).
    Key(String),
}

/// A path from the document root to a field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    /// The empty path (the document itself).
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses the dotted form (`spec.http[0].route`); `[n]` is an index,
    /// `[text]` a map key.
    pub fn parse(s: &str) -> Self {
        let mut p = FieldPath::default();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let (name, rest) = part.split_once('[').map_or((part, ""), |(a, b)| (a, b));
            if !name.is_empty() {
                p.push(Seg::Field(name.to_string()));
            }
            for idx in rest.split('[').filter(|s| !s.is_empty()) {
                let idx = idx.trim_end_matches(']');
                match idx.parse() {
                    Ok(i) => p.push(Seg::Index(i)),
                    Err(_) => p.push(Seg::Key(idx.to_string())),
                }
            }
        }
        p
    }

    /// Appends a step.
    pub fn push(&mut self, seg: Seg) {
        self.0.push(seg);
    }

    /// Removes the last step.
    pub fn pop(&mut self) {
        self.0.pop();
    }

    /// A copy with `seg` appended.
    pub fn join(&self, seg: Seg) -> Self {
        let mut p = self.clone();
        p.push(seg);
        p
    }

    /// A copy with field `name` appended.
    pub fn field(&self, name: &str) -> Self {
        self.join(Seg::Field(name.to_string()))
    }

    /// The steps.
    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    /// Whether `prefix` is this path or one of its parents.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// This path without `prefix`, if it starts with it.
    pub fn strip_prefix(&self, prefix: &FieldPath) -> Option<FieldPath> {
        self.0
            .strip_prefix(prefix.0.as_slice())
            .map(|rest| FieldPath(rest.to_vec()))
    }

    /// The path up to and including its last struct field (`spec.http[0].route[1]`
    /// gives `spec.http[0].route`), if it has one.
    pub fn up_to_last_field(&self) -> Option<FieldPath> {
        let i = self.0.iter().rposition(|s| matches!(s, Seg::Field(_)))?;
        Some(FieldPath(self.0[..=i].to_vec()))
    }

    /// Whether this is the root.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Field(name) if i == 0 => f.write_str(name)?,
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Index(idx) => write!(f, "[{idx}]")?,
                Seg::Key(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kubernetes() {
        let p = FieldPath::parse("spec.http[0].route[1].weight");
        assert_eq!(p.to_string(), "spec.http[0].route[1].weight");
        assert_eq!(p.segments().len(), 6);
        let labels = FieldPath::parse("spec.selector.matchLabels[app]");
        assert_eq!(labels.segments()[3], Seg::Key("app".into()));
        assert_eq!(labels.to_string(), "spec.selector.matchLabels[app]");
    }
}
