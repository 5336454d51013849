//! Where deliveries may not go: addresses no subscriber is at, but that would let a caller
//! who may subscribe reach what the server can (a cloud's metadata service at
//! `169.254.169.254`, other link-local services): link-local (`169.254.0.0/16`, `fe80::/10`),
//! unspecified, broadcast and multicast addresses. Checked at `Subscribe` for a literal
//! address, and at each connection for every address a host name resolves to (so a name
//! that later resolves elsewhere is caught too).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

/// Whether a delivery may connect to `ip`.
pub fn allowed(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_link_local() || v4.is_broadcast() || v4.is_multicast())
        }
        IpAddr::V6(v6) => {
            let link_local = v6.segments().first().is_some_and(|s| s & 0xffc0 == 0xfe80);
            !(v6.is_unspecified() || v6.is_multicast() || link_local)
        }
    }
}

/// The IP address an endpoint's host is, if it is a literal one (`[::1]` included).
pub fn literal_host(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The system's resolver, keeping only the addresses [`allowed`] lets through.
#[derive(Debug, Clone)]
pub struct GuardedResolver(GaiResolver);

impl Default for GuardedResolver {
    fn default() -> Self {
        Self(GaiResolver::new())
    }
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let mut inner = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = inner
                .call(name)
                .await?
                .filter(|a| allowed(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{host} resolves only to addresses deliveries may not go to (link-local, \
                         multicast, unspecified)"
                    ),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_refused() {
        for bad in [
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "::",
            "ff02::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!allowed(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "127.0.0.1",
            "192.168.1.20",
            "10.0.0.1",
            "8.8.8.8",
            "::1",
            "2001:db8::1",
        ] {
            assert!(allowed(good.parse().unwrap()), "{good}");
        }
        assert_eq!(literal_host("[fe80::1]"), Some("fe80::1".parse().unwrap()));
        assert_eq!(literal_host("example.com"), None);
    }
}
