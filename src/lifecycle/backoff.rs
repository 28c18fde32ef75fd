//! Capped exponential backoff with jitter for retries after errors.

use std::time::Duration;

/// Delay before retry number `attempt` (1-based): `base · 2^(attempt-1)`, capped at `max`, then
/// scaled by `jitter` ∈ [0, 1) into [½·d, d) so that many failing objects do not retry in step.
pub fn delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exponent).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    raw.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn doubles_per_attempt() {
        assert_eq!(delay(1, BASE, MAX, 1.0), Duration::from_secs(1));
        assert_eq!(delay(2, BASE, MAX, 1.0), Duration::from_secs(2));
        assert_eq!(delay(5, BASE, MAX, 1.0), Duration::from_secs(16));
    }

    #[test]
    fn is_capped() {
        assert_eq!(delay(9, BASE, MAX, 1.0), Duration::from_secs(256));
        assert_eq!(delay(10, BASE, MAX, 1.0), MAX);
        assert_eq!(delay(u32::MAX, BASE, MAX, 1.0), MAX);
    }

    #[test]
    fn jitter_spreads_into_upper_half() {
        assert_eq!(delay(3, BASE, MAX, 0.0), Duration::from_secs(2));
        assert_eq!(delay(3, BASE, MAX, 0.5), Duration::from_secs(3));
        assert_eq!(delay(0, BASE, MAX, f64::NAN), Duration::from_millis(500));
        assert_eq!(delay(3, BASE, MAX, 7.0), Duration::from_secs(4));
    }
}
