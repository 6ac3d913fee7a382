//! The client's address: the TCP peer, or, when the peer is a trusted proxy
//! (`--trusted-proxies`), what that proxy says in `X-Forwarded-For`.
//!
//! The header is read from the right: each address a trusted proxy appended
//! is skipped, and the first one that is not a trusted proxy is the client.
//! A peer that is not trusted is never believed, whatever it sends, so a
//! client cannot pick the address the registry records.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which peers may say who the client is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From `--trusted-proxies`: addresses or CIDR ranges.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address behind `peer`, given the request's
    /// `X-Forwarded-For` values (each may list several, comma-separated).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // A malformed hop: trust nothing before it.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_the_header_is_read_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        let untrusted = ip("203.0.113.9");
        assert_eq!(
            proxies.client_ip(untrusted, ["198.51.100.1"].into_iter()),
            untrusted
        );
        let proxy = ip("10.1.2.3");
        assert_eq!(
            proxies.client_ip(proxy, ["1.2.3.4, 198.51.100.1, 192.0.2.7"].into_iter()),
            ip("198.51.100.1"),
            "a spoofed leftmost entry is ignored"
        );
        assert_eq!(proxies.client_ip(proxy, std::iter::empty()), proxy);
        assert_eq!(proxies.client_ip(proxy, ["garbage"].into_iter()), proxy);
        assert!(TrustedProxies::parse(&["not-an-ip".into()]).is_err());
    }
}
