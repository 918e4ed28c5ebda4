//! Connections per peer address, capped, so one address cannot take a worker's slots and file
//! descriptors from everyone else. Each worker counts its own connections against its share of
//! the server-wide cap (the kernel spreads one address's connections over the workers by the
//! hash of the whole address and port tuple, so the shares fill evenly).

use std::collections::HashMap;
use std::net::IpAddr;

/// Live connections per peer address in one worker.
#[derive(Debug)]
pub(super) struct PeerCounts {
    /// This worker's share of the cap; 0 = no cap.
    cap: u32,
    /// Addresses not counted (reverse proxies).
    exempt: Vec<IpAddr>,
    /// Only addresses with live connections are kept, so the table is bounded by the
    /// connection count.
    counts: HashMap<IpAddr, u32>,
}

/// An IPv4 peer seen through an IPv6 socket counts as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl PeerCounts {
    /// A table for a server-wide cap of `per_ip` split over `workers`.
    pub(super) fn new(per_ip: usize, workers: usize, exempt: &[IpAddr]) -> PeerCounts {
        let share = per_ip.div_ceil(workers.max(1));
        PeerCounts {
            cap: u32::try_from(share).unwrap_or(u32::MAX),
            exempt: exempt.iter().copied().map(canonical).collect(),
            counts: HashMap::new(),
        }
    }

    fn counted(&self, ip: IpAddr) -> bool {
        self.cap > 0 && !self.exempt.contains(&ip)
    }

    /// Count a new connection from `ip`; false (and nothing counted) if the address is at its cap.
    pub(super) fn admit(&mut self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if !self.counted(ip) {
            return true;
        }
        let n = self.counts.entry(ip).or_insert(0);
        if *n >= self.cap {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` admitted earlier is gone.
    pub(super) fn release(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if !self.counted(ip) {
            return;
        }
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_forgets_empty_entries() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        // 5 server-wide over 2 workers: 3 here.
        let mut p = PeerCounts::new(5, 2, &[proxy]);
        assert!(p.admit(a) && p.admit(a) && p.admit(a));
        assert!(!p.admit(a), "the fourth from one address is refused");
        assert!(p.admit(b), "another address is not affected");
        for _ in 0..100 {
            assert!(p.admit(proxy), "proxies are not capped");
        }
        p.release(a);
        assert!(p.admit(a), "a freed slot is usable again");
        for _ in 0..3 {
            p.release(a);
        }
        p.release(b);
        assert!(p.counts.is_empty(), "no entry outlives its connections");
        // The mapped and plain forms are one address.
        let mut p = PeerCounts::new(1, 1, &[]);
        assert!(p.admit("10.0.0.2".parse().unwrap()));
        assert!(!p.admit(b));
    }

    #[test]
    fn zero_means_no_cap() {
        let mut p = PeerCounts::new(0, 4, &[]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert!(p.admit(a));
        }
        assert!(p.counts.is_empty());
    }
}
