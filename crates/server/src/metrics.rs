//! What the web console adds to the metrics (`/metrics`).
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vigil_console_sessions` | gauge | | signed-in console sessions kept now |
//! | `vigil_console_logins_total` | counter | | console sign-ins |
//! | `vigil_console_login_throttled_total` | counter | | sign-ins refused: too many failures from the address |
//! | `vigil_console_requests_total` | counter | `route` | console API requests, by route |

use std::sync::Once;

use vigil_api_common::metrics::{CounterVec, Family, Gauge, global};

/// The console's families.
#[derive(Debug)]
pub struct ConsoleMetrics {
    /// Signed-in web console sessions kept now.
    pub console_sessions: Gauge,
    /// Web console sign-ins.
    pub console_logins: CounterVec,
    /// Sign-ins refused for too many failures from the address.
    pub console_login_throttled: CounterVec,
    /// Web console requests, by route.
    pub console_requests: CounterVec,
}

impl Family for ConsoleMetrics {
    fn render(&self, out: &mut String) {
        self.console_sessions.render(out);
        self.console_logins.render(out);
        self.console_login_throttled.render(out);
        self.console_requests.render(out);
    }
}

static METRICS: ConsoleMetrics = ConsoleMetrics {
    console_sessions: Gauge::new(
        "vigil_console_sessions",
        "Signed-in web console sessions kept now.",
    ),
    console_logins: CounterVec::new("vigil_console_logins_total", "Web console sign-ins.", &[]),
    console_login_throttled: CounterVec::new(
        "vigil_console_login_throttled_total",
        "Web console sign-ins refused because their address failed too often lately.",
        &[],
    ),
    console_requests: CounterVec::new(
        "vigil_console_requests_total",
        "Web console API requests, by route.",
        &["route"],
    ),
};

/// The console's families, added to the process's registry on first use.
pub fn metrics() -> &'static ConsoleMetrics {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| global().register(&METRICS));
    &METRICS
}
