//! Placing a camera's frames on the server's wall clock, sans-IO.
//!
//! A camera stamps its frames with RTP timestamps: a counter at the codec's clock rate
//! (90 kHz for video), started at a random value, driven by the camera's own crystal. That
//! crystal is off by some parts per million to (on cheap cameras) a few percent, so a camera's
//! second is not the server's second, and a camera's time line slowly walks away from the
//! wall clock (moonfire-nvr's `design/time.md` describes the problem at length). KVS fragments
//! carry absolute times, which viewers take for wall-clock times, and KVS refuses a fragment
//! that starts before the previous one ends (ERROR 4004). So:
//!
//! - at the start of a session (each RTSP `PLAY`), the first frame is anchored to the server's
//!   clock at its arrival;
//! - from then on, the media time line (`media_ns`: RTP time since the session's first frame,
//!   in ns) maps to the wall clock through a **continuous, piecewise-linear, increasing**
//!   function: each piece starts where the previous one ended and has its own rate (wall ns
//!   per media ns), so placed times never go backwards and fragments never overlap, whatever
//!   the corrections;
//! - at each update ([`ClockMap::observe`] on a video key frame, at most once per
//!   [`UPDATE_EVERY_NS`] of media), the placed time of the frame is compared with the server's
//!   clock at its arrival (the *error*), and the next piece's rate is set to the camera's
//!   measured rate (wall time over media time since the anchor, once [`RATE_AFTER_NS`] of
//!   media has passed) plus the error divided by [`CORRECT_OVER_NS`], clamped to
//!   1 ± [`MAX_SLEW`].
//!
//! The result: a camera whose clock runs up to ±10 % fast or slow stays on the server's
//! clock; the error settles within a few updates, to the arrival jitter of key frames (tens
//! of ms on a LAN). docs/cameras.md gives the measured figures. A camera off by more than
//! [`MAX_SLEW`] drifts away at the difference; once the error passes [`MAX_ERROR_NS`] the
//! session is restarted (a new anchor), which [`ClockMap::observe`] reports.

/// Media time between two updates of the rate, ns.
pub const UPDATE_EVERY_NS: i64 = 1_000_000_000;
/// Media time after which the camera's rate is measured (before: 1), ns.
pub const RATE_AFTER_NS: i64 = 4_000_000_000;
/// The time over which an error is corrected, ns.
pub const CORRECT_OVER_NS: f64 = 2_000_000_000.0;
/// The most a piece's rate may differ from 1.
pub const MAX_SLEW: f64 = 0.15;
/// An error beyond which the session is restarted, ns.
pub const MAX_ERROR_NS: i64 = 10_000_000_000;

/// One piece of the map: from `media_ns` on, `placed_ns + (t - media_ns) * rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    media_ns: i64,
    placed_ns: i64,
    rate: f64,
}

impl Piece {
    fn place(&self, media_ns: i64) -> i64 {
        let d = media_ns.saturating_sub(self.media_ns) as f64 * self.rate;
        self.placed_ns.saturating_add(d as i64)
    }
}

/// What an update found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    /// Wall clock minus placed time, before the correction, ns.
    pub error_ns: i64,
    /// The rate of the new piece (wall ns per media ns).
    pub rate: f64,
    /// The camera's measured rate since the anchor (wall ns per media ns), once measured.
    pub measured_rate: Option<f64>,
}

/// The map from a session's media time to the wall clock.
#[derive(Debug, Clone, Default)]
pub struct ClockMap {
    /// The session's first frame: media time and wall time.
    anchor: Option<(i64, i64)>,
    piece: Option<Piece>,
    /// The piece before `piece`, for frames that arrive after an update but lie before it
    /// (audio interleaved with video).
    prev: Option<Piece>,
}

impl ClockMap {
    /// Anchors `media_ns` at `wall_ns` if the map has no anchor yet.
    pub fn anchor(&mut self, media_ns: i64, wall_ns: i64) {
        if self.anchor.is_none() {
            self.anchor = Some((media_ns, wall_ns));
            self.piece = Some(Piece {
                media_ns,
                placed_ns: wall_ns,
                rate: 1.0,
            });
        }
    }

    /// Where a frame at `media_ns` lands on the wall clock, ns since the epoch; `None` before
    /// the anchor.
    pub fn place(&self, media_ns: i64) -> Option<i64> {
        let piece = self.piece?;
        Some(match self.prev {
            Some(prev) if media_ns < piece.media_ns => prev.place(media_ns).min(piece.placed_ns),
            _ => piece.place(media_ns),
        })
    }

    /// A video key frame at `media_ns` arrived at `wall_ns`: anchors the map if need be, and
    /// updates the rate if the current piece has lasted [`UPDATE_EVERY_NS`]. `Err(error_ns)`
    /// when the error is beyond [`MAX_ERROR_NS`]: the session must restart.
    pub fn observe(&mut self, media_ns: i64, wall_ns: i64) -> Result<Option<Update>, i64> {
        self.anchor(media_ns, wall_ns);
        let (Some(piece), Some((anchor_media, anchor_wall))) = (self.piece, self.anchor) else {
            return Ok(None);
        };
        if media_ns.saturating_sub(piece.media_ns) < UPDATE_EVERY_NS {
            return Ok(None);
        }
        let placed_ns = piece.place(media_ns);
        let error_ns = wall_ns.saturating_sub(placed_ns);
        if error_ns.saturating_abs() > MAX_ERROR_NS {
            return Err(error_ns);
        }
        let media_span = media_ns.saturating_sub(anchor_media);
        let measured_rate = (media_span >= RATE_AFTER_NS)
            .then(|| wall_ns.saturating_sub(anchor_wall) as f64 / media_span as f64);
        let rate = (measured_rate.unwrap_or(1.0) + error_ns as f64 / CORRECT_OVER_NS)
            .clamp(1.0 - MAX_SLEW, 1.0 + MAX_SLEW);
        self.prev = Some(piece);
        self.piece = Some(Piece {
            media_ns,
            placed_ns,
            rate,
        });
        Ok(Some(Update {
            error_ns,
            rate,
            measured_rate,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const S: i64 = 1_000_000_000;

    /// Runs a camera whose clock runs at `camera_rate` (media ns per wall ns) with 25 fps and a
    /// key frame every second, for `secs` seconds, with arrival jitter from `jitter(i)`;
    /// returns the largest |error| after `settle` seconds and checks that placed times only
    /// increase.
    fn run(camera_rate: f64, secs: i64, settle: i64, jitter: impl Fn(i64) -> i64) -> i64 {
        let mut map = ClockMap::default();
        let wall0 = 1_800_000_000 * S;
        let mut last_placed = i64::MIN;
        let mut worst = 0;
        let frames = secs * 25;
        for i in 0..frames {
            let wall = wall0 + i * S / 25;
            let media = ((wall - wall0) as f64 * camera_rate) as i64;
            let arrival = wall + 20_000_000 + jitter(i);
            if i % 25 == 0 {
                map.observe(media, arrival).unwrap();
            }
            let placed = map.place(media).unwrap();
            assert!(
                placed > last_placed,
                "frame {i}: {placed} after {last_placed}"
            );
            last_placed = placed;
            if wall - wall0 >= settle * S {
                worst = worst.max((placed - arrival).abs());
            }
        }
        worst
    }

    #[test]
    fn a_true_clock_stays_put() {
        assert!(run(1.0, 60, 0, |_| 0) < 1_000_000);
    }

    #[test]
    fn fast_and_slow_clocks_are_followed() {
        for rate in [1.05, 0.95, 1.08, 0.92, 1.0001] {
            let worst = run(rate, 120, 10, |_| 0);
            assert!(worst < 50_000_000, "rate {rate}: worst error {worst} ns");
        }
        // At ±10 % the first seconds (before the rate is measured) take longer to settle.
        for rate in [1.1, 0.9] {
            let worst = run(rate, 120, 20, |_| 0);
            assert!(worst < 50_000_000, "rate {rate}: worst error {worst} ns");
        }
    }

    #[test]
    fn jitter_does_not_break_monotonicity_and_stays_bounded() {
        // ±40 ms of pseudo-random arrival jitter.
        let jitter = |i: i64| ((i * 7919) % 81 - 40) * 1_000_000;
        let worst = run(1.05, 120, 10, jitter);
        assert!(worst < 150_000_000, "worst error {worst} ns");
    }

    #[test]
    fn a_clock_beyond_the_slew_asks_for_a_restart() {
        let mut map = ClockMap::default();
        let mut restarted = false;
        for sec in 0..400 {
            if map.observe(sec * S * 13 / 10, sec * S).is_err() {
                restarted = true;
                break;
            }
        }
        assert!(restarted);
    }

    #[test]
    fn frames_before_an_update_use_the_previous_piece() {
        let mut map = ClockMap::default();
        map.observe(0, 100 * S).unwrap();
        map.observe(S, 100 * S + S + S / 2).unwrap();
        // Audio at 0.9 s, arriving after the update at 1 s.
        let a = map.place(9 * S / 10).unwrap();
        assert_eq!(a, 100 * S + 9 * S / 10);
        assert!(map.place(S + 1).unwrap() > a);
    }
}
