//! What a delta stream's proxy holds of one type, by name and version,
//! without a map per stream: the [`Listing`] of its last response (the
//! cache's shared name and version arrays — a few pointers) plus small
//! exceptions kept since: names it dropped (unsubscribed) and names it
//! said it holds (`initial_resource_versions`).
//!
//! After every response the proxy holds exactly what was in scope, so the
//! exceptions empty again; at 10 000 streams of one shape that is one
//! copy of the names for all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::iter::Peekable;

use super::current::Listing;

/// A proxy's holdings of one type.
#[derive(Debug, Default)]
pub(crate) struct Holding {
    /// What the last response left it holding; `None` before any.
    base: Option<Listing>,
    /// Names of `base` it no longer holds.
    gone: BTreeSet<String>,
    /// Names it holds at these versions, over `base`.
    extra: BTreeMap<String, u64>,
}

impl Holding {
    /// What the proxy holds once it applies a response that leaves it
    /// with exactly `listing`.
    pub(crate) fn set(&mut self, listing: Listing) {
        self.base = Some(listing);
        self.gone.clear();
        self.extra.clear();
    }

    /// The last response's listing, when nothing changed since.
    pub(crate) fn plain(&self) -> Option<&Listing> {
        self.base
            .as_ref()
            .filter(|_| self.gone.is_empty() && self.extra.is_empty())
    }

    /// What it holds when that is exactly what the last response left
    /// (`Some(Some(listing))`) or nothing, before any response
    /// (`Some(None)`); `None` when there are exceptions.
    pub(crate) fn exact(&self) -> Option<Option<&Listing>> {
        (self.gone.is_empty() && self.extra.is_empty()).then_some(self.base.as_ref())
    }

    /// The proxy says it holds `name` at `version`.
    pub(crate) fn insert(&mut self, name: String, version: u64) {
        self.gone.remove(&name);
        self.extra.insert(name, version);
    }

    /// The proxy forgot `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        self.extra.remove(name);
        if self.base.is_some() {
            self.gone.insert(name.to_string());
        }
    }

    /// The proxy forgot every name `covered` says yes to (walking the
    /// last response's names too only when `base` may have such names).
    pub(crate) fn retain(&mut self, covered: impl Fn(&str) -> bool, base: bool) {
        self.extra.retain(|n, _| covered(n));
        if base && let Some(listing) = &self.base {
            for (n, _) in listing.iter() {
                if !covered(n) {
                    self.gone.insert(n.to_string());
                }
            }
        }
    }

    /// Everything held, name and version, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let base = self
            .base
            .iter()
            .flat_map(Listing::iter)
            .filter(|(n, _)| self.gone.is_empty() || !self.gone.contains(*n));
        let extra = self.extra.iter().map(|(n, v)| (n.as_str(), *v));
        Merge {
            a: base.peekable(),
            b: extra.peekable(),
        }
    }
}

/// Two name-ordered lists as one; `b` wins a name both have.
struct Merge<'a, A: Iterator<Item = (&'a str, u64)>, B: Iterator<Item = (&'a str, u64)>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<'a, A, B> Iterator for Merge<'a, A, B>
where
    A: Iterator<Item = (&'a str, u64)>,
    B: Iterator<Item = (&'a str, u64)>,
{
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) if a.0 < b.0 => self.a.next(),
            (Some(a), Some(b)) if a.0 == b.0 => {
                self.a.next();
                self.b.next()
            }
            (Some(_), None) => self.a.next(),
            _ => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(h: &Holding) -> Vec<(String, u64)> {
        h.iter().map(|(n, v)| (n.to_string(), v)).collect()
    }

    #[test]
    fn exceptions_merge_in_name_order_and_the_later_wins() {
        let mut h = Holding::default();
        assert!(h.plain().is_none(), "nothing sent yet");
        assert!(matches!(h.exact(), Some(None)), "holds nothing");
        h.insert("b".into(), 2);
        h.insert("a".into(), 1);
        h.insert("c".into(), 3);
        h.insert("b".into(), 4);
        assert_eq!(
            listed(&h),
            [("a".into(), 1), ("b".into(), 4), ("c".into(), 3)]
        );
        assert!(h.exact().is_none(), "exceptions");
        h.remove("a");
        h.retain(|n| n != "c", false);
        assert_eq!(listed(&h), [("b".into(), 4)]);
        h.set(Listing::default());
        assert!(h.plain().is_some() && listed(&h).is_empty());
        assert!(matches!(h.exact(), Some(Some(_))));
        let merged: Vec<(&str, u64)> = Merge {
            a: [("a", 1), ("c", 3), ("d", 4)].into_iter().peekable(),
            b: [("b", 2), ("c", 9)].into_iter().peekable(),
        }
        .collect();
        assert_eq!(merged, [("a", 1), ("b", 2), ("c", 9), ("d", 4)]);
    }
}
