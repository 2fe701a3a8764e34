//! Kubernetes quantities (`10Gi`, `500m`, `5k`) as numbers, so values the API server
//! rewrote into canonical form still compare equal to what was rendered.

/// The value of a quantity such as `10Gi`, `500m`, `5k`, `1.5Ti`, `1e10` or `+.5`, read as the
/// API server reads it: a signed decimal number, then a binary or decimal SI suffix or a decimal
/// exponent (`e`/`E` and an integer; `E` alone is exa).
pub fn quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    if number.is_empty() || number.ends_with(['+', '-']) {
        return None;
    }
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
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse().ok()?)
        }
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
        // Exponents, signs and bare fractions, as the API server reads them.
        assert_eq!(quantity("1e10"), quantity("10G"));
        assert_eq!(quantity("2.5e8"), quantity("250M"));
        assert_eq!(quantity("5E8"), quantity("500M"));
        assert_eq!(quantity("1E"), Some(1e18), "E alone is exa");
        assert_eq!(quantity("2e-3"), quantity("2m"));
        assert_eq!(quantity("1e+3"), quantity("1k"));
        assert_eq!(quantity("+.5"), Some(0.5));
        for bad in ["e3", "1e", "1e+", "1ex", "1.5.5", "+", "Gi"] {
            assert_eq!(quantity(bad), None, "{bad}");
        }
    }
}
