//! Caps on the reads that cost the most: GetClip (its fragments scanned and remuxed) and
//! GetImages (decoding, scaling and encoding; one 4K PNG page is seconds of CPU), and on the
//! GetMediaForFragmentList responses one caller may hold open, and on the HLS and DASH media
//! segments a client address may hold open. The budgets themselves (per
//! caller and in all, `ClientLimitExceededException` beyond, the metrics) are
//! [`vigil_api_kvs_common::budget`]'s; here are this service's defaults.
//!
//! A GetImages permit is held while the page is made; a GetClip permit while the clip is made
//! and sent, at most [`CLIP_HOLD`] in all, so that a client that does not read cannot keep a
//! place for ever; a GetMediaForFragmentList permit while its body is sent.

use std::time::Duration;

pub use vigil_api_kvs_common::budget::{HeavyLimits, HeavyPermit, HeavyReads, budget_key};

/// The longest a GetClip permit is held, from the call's start: its client's reading too.
pub const CLIP_HOLD: Duration = Duration::from_secs(120);

/// GetClip's default: 2 per key, and as many in all as the machine has cores (at least 2):
/// a clip's first pass reads all of its up to 100 MB of fragments.
pub fn clip_limits() -> HeavyLimits {
    HeavyLimits {
        per_key: 2,
        total: cores().max(2),
        wait: Duration::ZERO,
    }
}

/// GetImages' default: 4 per key (the web console asks for four thumbnails at once), and
/// twice the cores in all (at least 4); a call over it waits up to 10 s for a place (the
/// console starts a new row of thumbnails while the last one is still being made).
pub fn image_limits() -> HeavyLimits {
    HeavyLimits {
        per_key: 4,
        total: (2 * cores()).max(4),
        wait: Duration::from_secs(10),
    }
}

/// GetMediaForFragmentList's default: 100 responses open per key, 1000 in all. Each holds
/// about one stored chunk (64 KiB) and a connection's buffers whatever its fragments' sizes,
/// so this bounds what one key's clients that do not read can hold (KVS allows 5 per stream).
pub fn fragment_list_limits() -> HeavyLimits {
    HeavyLimits {
        per_key: 100,
        total: 1000,
        wait: Duration::ZERO,
    }
}

/// The playback segments' default (HLS fMP4 and TS, DASH media segments; the GETs carry no
/// signature, so the budget is per client address): 100 open per address (a console showing
/// sixteen cameras fetches a few segments of each at once), 2000 in all.
pub fn segment_limits() -> HeavyLimits {
    HeavyLimits {
        per_key: 100,
        total: 2000,
        wait: Duration::ZERO,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
