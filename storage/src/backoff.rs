//! Retry delays shared by the parts of the server that retry failed I/O (webhook deliveries,
//! live uploads): an exponential ceiling with full jitter, so retries of many failures spread
//! out instead of arriving together.

use std::time::Duration;

use rand::Rng;

/// The delay before retrying after the `attempts_made`-th failed attempt: drawn uniformly below
/// `base * 2^(attempts_made - 1)`, that ceiling capped at `cap`.
pub fn full_jitter_delay(
    base: Duration,
    cap: Duration,
    attempts_made: u32,
    rng: &mut impl Rng,
) -> Duration {
    let doublings = attempts_made.saturating_sub(1).min(32);
    let ceiling = base
        .mul_f64(2f64.powi(i32::try_from(doublings).unwrap_or(32)))
        .min(cap);
    ceiling.mul_f64(rng.gen_range(0.0..1.0))
}
