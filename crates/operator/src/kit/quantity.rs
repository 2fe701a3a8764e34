//! Kubernetes quantities (`10Gi`, `500m`, `5k`) as numbers, so values the API server
//! rewrote into canonical form still compare equal to what was rendered.

/// The value of a quantity such as `10Gi`, `500m`, `5k` or `1.5Ti`.
pub fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("5000"), quantity("5k"));
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("10Gi"), Some(10.0 * 1024f64.powi(3)));
        assert_eq!(quantity("500M"), Some(5e8));
        assert_eq!(quantity("1.5Ki"), Some(1536.0));
        assert_eq!(quantity("12"), Some(12.0));
        assert_eq!(quantity("3Zi"), None);
    }
}
