//! Console sign-ins, throttled per client address: at most [`MAX_FAILURES`] sign-ins that do
//! not succeed within [`WINDOW_MS`]; beyond, sign-ins from that address are refused with
//! `ClientLimitExceededException` (KVS's error for a throttled client) until the window has
//! passed, whatever they carry, so that the sign-in page cannot be used to guess secrets.
//! Counted in `vigil_console_login_throttled_total`.
//!
//! Every attempt takes a place under one lock before its signature is checked (concurrent
//! attempts cannot all pass the check first), and only a successful one gives its own place
//! back: holding one valid key does not buy more guesses at another. IPv6 clients are counted
//! by their /64 (one host usually holds the whole /64).
//!
//! The table holds at most [`MAX_ADDRESSES`] addresses; past that, addresses whose window has
//! passed are forgotten first, then those that are not locked out, and if every one is locked
//! out a new address is refused too (an attacker with that many addresses is refused rather
//! than given a fresh start).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Sign-ins that may fail from one address within [`WINDOW_MS`].
pub const MAX_FAILURES: u32 = 10;
/// The window attempts are counted in, in ms.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;
/// Most addresses remembered.
pub const MAX_ADDRESSES: usize = 10_000;

/// The attempts of each address: how many, since when.
#[derive(Debug, Default)]
pub struct SignInThrottle(Mutex<HashMap<IpAddr, (u32, u64)>>);

/// An IPv4 address, or an IPv6 address's /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl SignInThrottle {
    /// Takes a place for an attempt from `ip`, or `Err(seconds to wait)`.
    pub fn attempt(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let ip = bucket(ip);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = |&(_, since): &(u32, u64)| now_ms < since.saturating_add(WINDOW_MS);
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, e| open(e));
            if map.len() >= MAX_ADDRESSES {
                map.retain(|_, e| e.0 >= MAX_FAILURES);
            }
            if map.len() >= MAX_ADDRESSES {
                return Err(WINDOW_MS / 1000);
            }
        }
        let e = map.entry(ip).or_insert((0, now_ms));
        if !open(e) {
            *e = (0, now_ms);
        }
        if e.0 >= MAX_FAILURES {
            return Err((e.1.saturating_add(WINDOW_MS) - now_ms).div_ceil(1000));
        }
        e.0 += 1;
        Ok(())
    }

    /// The attempt from `ip` succeeded: its place is given back.
    pub fn succeeded(&self, ip: IpAddr) {
        let ip = bucket(ip);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&ip) {
            e.0 = e.0.saturating_sub(1);
            if e.0 == 0 {
                map.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ten_failures_close_the_window_and_successes_buy_no_more() {
        let t = SignInThrottle::default();
        let a: IpAddr = "192.168.1.9".parse().unwrap();
        let b: IpAddr = "192.168.1.10".parse().unwrap();
        for i in 0..MAX_FAILURES {
            // A valid sign-in between the guesses gives back its own place only.
            t.attempt(a, 1_000 + u64::from(i)).unwrap();
            t.succeeded(a);
            t.attempt(a, 1_000 + u64::from(i)).unwrap();
        }
        assert_eq!(t.attempt(a, 2_000), Err(299));
        assert!(
            t.attempt(b, 2_000).is_ok(),
            "other addresses are not affected"
        );
        assert!(t.attempt(a, 1_000 + WINDOW_MS).is_ok(), "the window passes");
    }

    #[test]
    fn an_ipv6_64_is_one_address() {
        let t = SignInThrottle::default();
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            t.attempt(ip, 1_000).unwrap();
        }
        assert!(
            t.attempt("2001:db8:1:2::ffff".parse().unwrap(), 1_000)
                .is_err()
        );
        assert!(t.attempt("2001:db8:1:3::1".parse().unwrap(), 1_000).is_ok());
    }
}
