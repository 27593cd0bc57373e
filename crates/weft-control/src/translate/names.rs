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
}
