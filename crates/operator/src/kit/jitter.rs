//! Jitter for every backoff of the operator, so that objects and replicas that failed together
//! do not all try again at the same instant.

use std::time::Duration;

/// `wait` shortened by a random part of up to `fraction` of it (0 ≤ `fraction` ≤ 1): never
/// longer than `wait`, so a documented cap stays the cap.
pub fn shorten(wait: Duration, fraction: f64) -> Duration {
    wait.mul_f64(1.0 - fraction.clamp(0.0, 1.0) * fastrand::f64())
}

/// `wait` lengthened by a random part of up to `fraction` of it: for waits that must not be
/// shorter than asked (a server's `Retry-After`).
pub fn lengthen(wait: Duration, fraction: f64) -> Duration {
    wait.mul_f64(1.0 + fraction.clamp(0.0, 1.0) * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_the_fraction_and_varies() {
        let wait = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..1000).map(|_| shorten(wait, 0.2)).collect();
        assert!(waits.iter().all(|w| *w <= wait && *w >= wait.mul_f64(0.8)));
        assert!(waits.iter().any(|w| *w < wait.mul_f64(0.9)));
        assert!(waits.iter().any(|w| *w > wait.mul_f64(0.9)));
        assert_eq!(shorten(wait, 0.0), wait);
        let longer: Vec<Duration> = (0..1000).map(|_| lengthen(wait, 0.2)).collect();
        assert!(longer.iter().all(|w| *w >= wait && *w <= wait.mul_f64(1.2)));
        assert!(longer.iter().any(|w| *w != longer[0]));
    }
}
