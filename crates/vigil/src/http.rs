//! The accept loop: plain TCP or TLS on one port, HTTP/1.1 served by hyper, connections
//! tracked for a graceful shutdown.
//!
//! axum's own `serve` has no TLS; this loop is the small part of it Vigil needs, plus rustls.
//! Each connection is served by hyper's HTTP/1 server, which supports what PutMedia needs: a
//! response streamed while the request body is still being read (full duplex), and
//! `Expect: 100-continue` answered when the handler starts reading the body.
//!
//! Connections are capped ([`ConnectionLimits`]): in all, and per client address, so that one
//! client cannot take every socket the server has. A connection over a cap is closed at once,
//! before TLS or HTTP (the client sees a reset and retries), and counted:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_connections_open` | gauge | | connections open now |
//! | `vigil_connections_refused_total` | counter | `limit` | connections closed at accept: `total` or `address` |

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send its request head, or finish a TLS handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a connection buffers, each way (hyper's default is about 400 KB): what a client
/// that does not read can hold of a streamed response in the server's memory, beside the one
/// piece the response itself holds; and the largest request head.
const MAX_BUF: usize = 96 * 1024;

/// How many connections the server keeps open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// In all.
    pub total: usize,
    /// From one client address (IPv6 clients by their address, not their /64).
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            total: 10_000,
            per_address: 2_500,
        }
    }
}

/// The open connections, by client address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place among the open ones, given back when dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.by_address.remove(&self.address);
            }
        }
        families()
            .open
            .set(i64::try_from(o.total).unwrap_or(i64::MAX));
    }
}

/// A place for a connection from `address`, or the limit it met.
fn admit(
    open: &Arc<Mutex<Open>>,
    limits: ConnectionLimits,
    address: IpAddr,
) -> Result<Slot, &'static str> {
    let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
    if o.total >= limits.total {
        return Err("total");
    }
    if o.by_address.get(&address).copied().unwrap_or(0) >= limits.per_address {
        return Err("address");
    }
    *o.by_address.entry(address).or_insert(0) += 1;
    o.total += 1;
    families()
        .open
        .set(i64::try_from(o.total).unwrap_or(i64::MAX));
    Ok(Slot {
        open: open.clone(),
        address,
    })
}

#[derive(Debug)]
struct ConnectionFamilies {
    open: vigil_api_common::metrics::Gauge,
    refused: vigil_api_common::metrics::CounterVec,
}

impl vigil_api_common::metrics::Family for ConnectionFamilies {
    fn render(&self, out: &mut String) {
        self.open.render(out);
        self.refused.render(out);
    }
}

static FAMILIES: ConnectionFamilies = ConnectionFamilies {
    open: vigil_api_common::metrics::Gauge::new("vigil_connections_open", "Connections open now."),
    refused: vigil_api_common::metrics::CounterVec::new(
        "vigil_connections_refused_total",
        "Connections closed at accept because a cap was reached (total or per address).",
        &["limit"],
    ),
};

fn families() -> &'static ConnectionFamilies {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| vigil_api_common::metrics::global().register(&FAMILIES));
    &FAMILIES
}

/// Accepts connections until `shutdown` completes; returns the tracker of the connections
/// still open, for [`GracefulShutdown::shutdown`].
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Mutex::new(Open::default()));
    families();
    let local = listener.local_addr().ok();
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match admit(&open, limits, peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                families().refused.inc(&[limit]);
                tracing::debug!(%peer, limit, "connection refused: too many open");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Each request knows the address it came in on (GetDataEndpoint without
        // `--public-url`) and the client's (throttles keyed by address).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                if let Some(local) = local {
                    req.extensions_mut()
                        .insert(vigil_api_common::config::LocalAddr(local));
                }
                req.extensions_mut()
                    .insert(vigil_api_common::config::PeerAddr(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_BUF)
                .keep_alive(true);
            let result = match acceptor {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let conn = http.serve_connection(TokioIo::new(tls), service);
                            watcher.watch(conn).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    graceful
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_in_all_and_per_address() {
        let open = Arc::new(Mutex::new(Open::default()));
        let limits = ConnectionLimits {
            total: 3,
            per_address: 2,
        };
        let a: IpAddr = "192.168.1.2".parse().unwrap();
        let b: IpAddr = "192.168.1.3".parse().unwrap();
        let a1 = admit(&open, limits, a).unwrap();
        let _a2 = admit(&open, limits, a).unwrap();
        assert_eq!(admit(&open, limits, a).err(), Some("address"));
        let _b1 = admit(&open, limits, b).unwrap();
        assert_eq!(admit(&open, limits, b).err(), Some("total"));
        drop(a1);
        let _b2 = admit(&open, limits, b).unwrap();
        assert_eq!(open.lock().unwrap().total, 3);
    }
}
