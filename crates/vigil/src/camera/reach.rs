//! Which addresses the server may dial for a camera (`camera_networks`).
//!
//! A camera is an address the server connects to. Unchecked, a key allowed to add cameras
//! could make the server probe any host it can reach (a port scan by error message, or a
//! request into a network the caller cannot reach). So every camera's host is resolved
//! before each connection (and when a camera is added through the API), and every address it
//! resolves to must lie in one of the allowed networks. The default is the private and local
//! ranges, where home cameras live: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`,
//! `100.64.0.0/10` (carrier-grade NAT, Tailscale), `fc00::/7`, and loopback (`127.0.0.0/8`,
//! `::1/128`: RTSP proxies such as go2rtc and MediaMTX run beside the server). Link-local
//! ranges are left out (`169.254.0.0/16` holds cloud metadata services). `any` allows every
//! address.
//!
//! The check applies to cameras added through the API (`PutCamera`), which a key can do;
//! cameras of the configuration file are the operator's own and are not checked.
//!
//! The check runs before the RTSP client resolves the name again, so a DNS answer that
//! changes between the two (rebinding) is not caught; name cameras by address where that
//! matters.

use std::net::IpAddr;

use ipnet::IpNet;

/// The default networks (private and local ranges).
pub const DEFAULT_NETWORKS: [&str; 7] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "fc00::/7",
    "::1/128",
];

/// The networks cameras may be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks(Vec<IpNet>);

impl Default for Networks {
    fn default() -> Self {
        Self(
            DEFAULT_NETWORKS
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        )
    }
}

impl Networks {
    /// Parses a list of CIDR networks (`192.168.1.0/24`, a bare address for one host) or the
    /// word `any`.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in items {
            let s = item.as_ref().trim();
            if s.eq_ignore_ascii_case("any") {
                nets.push(IpNet::V4(ipnet::Ipv4Net::default()));
                nets.push(IpNet::V6(ipnet::Ipv6Net::default()));
                continue;
            }
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a network such as 192.168.1.0/24, nor `any`"))?;
            nets.push(net);
        }
        if nets.is_empty() {
            return Err("camera networks: at least one network (or `any`) is needed".into());
        }
        Ok(Self(nets))
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address as its IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Checks an `rtsp://` URL's host: every address it resolves to must be allowed.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
        let port = parsed.port().unwrap_or(554);
        let addrs: Vec<IpAddr> = match parsed.host() {
            Some(url::Host::Ipv4(a)) => vec![IpAddr::V4(a)],
            Some(url::Host::Ipv6(a)) => vec![IpAddr::V6(a)],
            Some(url::Host::Domain(d)) => tokio::net::lookup_host((d, port))
                .await
                .map_err(|e| format!("cannot resolve {d}: {e}"))?
                .map(|a| a.ip())
                .collect(),
            None => return Err("the url has no host".into()),
        };
        if addrs.is_empty() {
            return Err("the camera's host resolves to no address".into());
        }
        match addrs.iter().find(|a| !self.allows(**a)) {
            Some(a) => Err(format!(
                "{a} is outside the networks cameras may be in (camera_networks: {}); \
                 add its network to camera_networks (--camera-networks) to allow it",
                self.describe()
            )),
            None => Ok(()),
        }
    }

    /// The networks, comma-separated.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_ranges_by_default() {
        let n = Networks::default();
        for ok in [
            "192.168.1.20",
            "10.1.2.3",
            "172.20.0.1",
            "127.0.0.1",
            "::1",
            "fd00::5",
        ] {
            assert!(n.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "169.254.169.254",
            "fe80::1",
        ] {
            assert!(!n.allows(no.parse().unwrap()), "{no}");
        }
        assert!(n.allows("::ffff:192.168.1.2".parse().unwrap()));
    }

    #[test]
    fn parsed_lists() {
        let n = Networks::parse(&["192.168.7.0/24", "203.0.113.9"]).unwrap();
        assert!(n.allows("192.168.7.200".parse().unwrap()));
        assert!(n.allows("203.0.113.9".parse().unwrap()));
        assert!(!n.allows("192.168.8.1".parse().unwrap()));
        let any = Networks::parse(&["any"]).unwrap();
        assert!(any.allows("8.8.8.8".parse().unwrap()));
        assert!(any.allows("2001:db8::1".parse().unwrap()));
        assert!(Networks::parse(&["192.168.1.0/33"]).is_err());
        assert!(Networks::parse(&["cameras"]).is_err());
        assert!(Networks::parse::<&str>(&[]).is_err());
    }

    #[tokio::test]
    async fn urls_are_checked_by_every_address() {
        let n = Networks::default();
        n.check_url("rtsp://u:p@192.168.1.20/stream1")
            .await
            .unwrap();
        n.check_url("rtsp://localhost:8554/cam").await.unwrap();
        let e = n.check_url("rtsp://8.8.8.8/x").await.unwrap_err();
        assert!(e.contains("8.8.8.8 is outside"), "{e}");
        assert!(n.check_url("rtsp://[2001:db8::1]/x").await.is_err());
    }
}
