//! Istio's resource names, so `istioctl`-trained eyes and tools read ours:
//! `outbound|9080|v1|reviews.default.svc.cluster.local`.

use std::fmt;

/// Which way a cluster sends traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From this proxy's workload to a service.
    Outbound,
    /// From the mesh to this proxy's workload.
    Inbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        })
    }
}

/// A cluster name's parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterName<'a> {
    /// Direction.
    pub direction: Direction,
    /// Service port.
    pub port: u16,
    /// Subset name (empty for the whole service).
    pub subset: &'a str,
    /// Service host name.
    pub host: &'a str,
}

impl fmt::Display for ClusterName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}",
            self.direction, self.port, self.subset, self.host
        )
    }
}

/// `outbound|<port>|<subset>|<host>`.
pub fn outbound_cluster(port: u16, subset: &str, host: &str) -> String {
    ClusterName {
        direction: Direction::Outbound,
        port,
        subset,
        host,
    }
    .to_string()
}

/// `inbound|<port>||`: the cluster to the proxy's own application on
/// inbound `port` (Istio's name).
pub fn inbound_cluster(port: u16) -> String {
    ClusterName {
        direction: Direction::Inbound,
        port,
        subset: "",
        host: "",
    }
    .to_string()
}

/// Parses a cluster name made by [`outbound_cluster`] (or Istio).
pub fn parse_cluster(name: &str) -> Option<ClusterName<'_>> {
    let mut parts = name.splitn(4, '|');
    let direction = match parts.next()? {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        _ => return None,
    };
    let port = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    Some(ClusterName {
        direction,
        port,
        subset,
        host,
    })
}

/// `items` sorted by name (stable: equal names keep their order), each
/// moved once. Envoy's messages are large (a `Cluster` is over 3 KiB), and
/// sorting them in place moves each O(log n) times; this sorts positions
/// instead.
pub fn sort_by_name<T>(items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    reorder(items, &name, false)
}

/// Like [`sort_by_name`], keeping only the first item of each name (a
/// stable sort followed by `dedup_by` on the name).
pub fn sort_dedup_by_name<T>(items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    reorder(items, &name, true)
}

fn reorder<T>(items: Vec<T>, name: &impl Fn(&T) -> &str, dedup: bool) -> Vec<T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| name(&items[a]).cmp(name(&items[b])));
    if dedup {
        order.dedup_by(|later, kept| name(&items[*later]) == name(&items[*kept]));
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let n = outbound_cluster(9080, "v1", "reviews.default.svc.cluster.local");
        assert_eq!(n, "outbound|9080|v1|reviews.default.svc.cluster.local");
        let p = parse_cluster(&n).expect("parse");
        assert_eq!(
            (p.direction, p.port, p.subset, p.host),
            (
                Direction::Outbound,
                9080,
                "v1",
                "reviews.default.svc.cluster.local"
            )
        );
        assert_eq!(inbound_cluster(9080), "inbound|9080||");
        assert_eq!(
            parse_cluster("inbound|9080||").map(|p| (p.direction, p.port)),
            Some((Direction::Inbound, 9080))
        );
        assert_eq!(parse_cluster("outbound|x||a"), None);
        assert_eq!(parse_cluster("BlackHoleCluster"), None);
    }

    #[test]
    fn sorting_by_name_is_stable_and_dedup_keeps_the_first() {
        let items = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        assert_eq!(
            sort_by_name(items.clone(), |i| i.0),
            vec![("a", 2), ("a", 5), ("b", 1), ("b", 3), ("c", 4)]
        );
        assert_eq!(
            sort_dedup_by_name(items, |i| i.0),
            vec![("a", 2), ("b", 1), ("c", 4)]
        );
        assert!(sort_by_name(Vec::<(&str, u8)>::new(), |i| i.0).is_empty());
    }
}
