//! What a proxy holds of one type, encoded: the shared segment of its
//! shape and its own, interleaved by name, without copying either.

use std::sync::Arc;

use weft_xds::pb::google::protobuf::Any;

/// A proxy's resources of one type, encoded, in name order. Most of them
/// are a segment every proxy of its shape shares; the few of its own
/// workload go in between, at the positions `at` gives.
#[derive(Clone, Debug, Default)]
pub struct Held {
    shared: Arc<[Any]>,
    own: Arc<[Any]>,
    /// For each of `own`, how many of `shared` come before it
    /// (non-decreasing).
    at: Arc<[usize]>,
}

impl Held {
    /// `shared` with `own` interleaved: `own[j]` goes after the first
    /// `at[j]` of `shared`.
    pub(crate) fn new(shared: Arc<[Any]>, own: Arc<[Any]>, at: Arc<[usize]>) -> Held {
        debug_assert_eq!(own.len(), at.len());
        Held { shared, own, at }
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.shared.len() + self.own.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every resource, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Any> + '_ {
        let mut i = 0;
        let mut j = 0;
        std::iter::from_fn(move || {
            if j < self.own.len() && self.at[j] <= i {
                j += 1;
                return self.own.get(j - 1);
            }
            let next = self.shared.get(i);
            i += 1;
            next.or_else(|| {
                j += 1;
                self.own.get(j - 1)
            })
        })
    }

    /// The resources, copied, as a response carries them.
    pub fn to_vec(&self) -> Vec<Any> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter().cloned());
        out
    }

    /// Whether both hold the same resources: by pointer when both are
    /// the same segments (the usual case), else by content.
    pub fn same(&self, other: &Held) -> bool {
        let segments = Arc::ptr_eq(&self.shared, &other.shared)
            && Arc::ptr_eq(&self.own, &other.own)
            && self.at[..] == other.at[..];
        segments || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl From<Vec<Any>> for Held {
    fn from(all: Vec<Any>) -> Held {
        Held {
            shared: all.into(),
            ..Held::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(name: &str) -> Any {
        Any {
            type_url: "t".into(),
            value: name.as_bytes().to_vec(),
        }
    }

    fn names(h: &Held) -> Vec<String> {
        h.iter()
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .collect()
    }

    #[test]
    fn own_resources_go_between_the_shared_ones() {
        let shared: Arc<[Any]> = vec![any("b"), any("d"), any("f")].into();
        let own: Arc<[Any]> = vec![any("a"), any("c"), any("e"), any("g")].into();
        let held = Held::new(shared.clone(), own.clone(), vec![0, 1, 2, 3].into());
        assert_eq!(names(&held), ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(held.len(), 7);
        assert_eq!(held.to_vec().len(), 7);
        let two_at_end = Held::new(shared.clone(), own.clone(), vec![3, 3, 3, 3].into());
        assert_eq!(names(&two_at_end), ["b", "d", "f", "a", "c", "e", "g"]);
        assert_eq!(names(&Held::from(vec![any("x")])), ["x"]);
        assert!(Held::default().is_empty());

        // Same segments: the same; equal content from other buffers too.
        let again = Held::new(shared.clone(), own, vec![0, 1, 2, 3].into());
        assert!(held.same(&again));
        let copied = Held::from(held.to_vec());
        assert!(held.same(&copied) && copied.same(&held));
        assert!(!held.same(&two_at_end));
        assert!(!held.same(&Held::from(shared.to_vec())));
    }
}
