//! Exact numbers: decimal parsing into rationals and small helpers.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};

/// An exact rational number (all money, endowments and prices).
pub type Q = BigRational;

/// Why a number cell could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    /// The cell is empty.
    Empty,
    /// A comma was used as the decimal separator (`1,5`); Pabulib requires `.`.
    Comma,
    /// Not a decimal number.
    Invalid,
}

/// Parses a decimal number (`12`, `-3`, `1546168.66`, `1e3`) exactly.
pub fn parse_decimal(s: &str) -> Result<Q, NumberError> {
    if s.is_empty() {
        return Err(NumberError::Empty);
    }
    if s.contains(',') {
        return Err(NumberError::Comma);
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => {
            let e: i32 = s[i + 1..].parse().map_err(|_| NumberError::Invalid)?;
            if e.abs() > 40 {
                return Err(NumberError::Invalid);
            }
            (&s[..i], e)
        }
        None => (s, 0),
    };
    let (neg, body) = match mantissa.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 200
    {
        return Err(NumberError::Invalid);
    }
    let digits = format!("{int}{frac}");
    let mut num: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().map_err(|_| NumberError::Invalid)?
    };
    if neg {
        num = -num;
    }
    let scale = exp - i32::try_from(frac.len()).map_err(|_| NumberError::Invalid)?;
    let ten = BigInt::from(10u32);
    let q = if scale >= 0 {
        Q::from_integer(num * num_traits::pow(ten, scale.unsigned_abs() as usize))
    } else {
        Q::new(num, num_traits::pow(ten, scale.unsigned_abs() as usize))
    };
    Ok(q)
}

/// Formats a rational as a decimal when it has a finite one, else as `a/b`.
pub fn fmt_q(q: &Q) -> String {
    if q.is_integer() {
        return q.to_integer().to_string();
    }
    // finite decimal iff the denominator has only factors 2 and 5
    let mut d = q.denom().clone();
    let (two, five) = (BigInt::from(2u32), BigInt::from(5u32));
    let mut k2 = 0usize;
    let mut k5 = 0usize;
    while (&d % &two).is_zero() {
        d /= &two;
        k2 += 1;
    }
    while (&d % &five).is_zero() {
        d /= &five;
        k5 += 1;
    }
    if d.is_one() && k2.max(k5) <= 30 {
        let k = k2.max(k5);
        let scaled = q * Q::from_integer(num_traits::pow(BigInt::from(10u32), k));
        let n = scaled.to_integer();
        let neg = n.is_negative();
        let s = n.abs().to_string();
        let s = format!("{s:0>width$}", width = k + 1);
        let (a, b) = s.split_at(s.len() - k);
        let b = b.trim_end_matches('0');
        return format!("{}{a}.{b}", if neg { "-" } else { "" });
    }
    format!("{}/{}", q.numer(), q.denom())
}

/// Money for people: the exact decimal when it has at most 2 decimals, else rounded to cents
/// with a leading `≈`.
pub fn fmt_money(q: &Q) -> String {
    let cents = q * Q::from_integer(100.into());
    if cents.is_integer() {
        fmt_q(q)
    } else {
        format!("≈{:.2}", q_f64(q))
    }
}

/// A close `f64` approximation of a rational (for display and filtering only).
pub fn q_f64(q: &Q) -> f64 {
    ratio_f64(q.numer(), q.denom())
}

/// `n / d` as `f64`, accurate to a few ulps even when `n` and `d` exceed the `f64` range
/// (no allocation: only the top 128 bits of each are read).
pub fn ratio_f64(n: &BigInt, d: &BigInt) -> f64 {
    let (mn, en) = top_f64(n.magnitude());
    let (md, ed) = top_f64(d.magnitude());
    let r = mn / md * 2f64.powi((en - ed).clamp(-2000, 2000) as i32);
    if n.is_negative() != d.is_negative() {
        -r
    } else {
        r
    }
}

/// `x ≈ m · 2^e`: `m` from the two most significant 64-bit digits.
fn top_f64(x: &num_bigint::BigUint) -> (f64, i64) {
    let mut it = x.iter_u64_digits();
    let len = it.len();
    let hi = it.next_back().unwrap_or(0) as f64;
    match it.next_back() {
        None => (hi, 0),
        Some(lo) => (
            hi * 18_446_744_073_709_551_616.0 + lo as f64,
            64 * (len as i64 - 2),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(
            parse_decimal("1546168.66").unwrap(),
            Q::new(154616866.into(), 100.into())
        );
        assert_eq!(parse_decimal("-3").unwrap(), Q::from_integer((-3).into()));
        assert_eq!(parse_decimal("1e3").unwrap(), Q::from_integer(1000.into()));
        assert_eq!(parse_decimal("1,5"), Err(NumberError::Comma));
        assert_eq!(parse_decimal("x"), Err(NumberError::Invalid));
        assert_eq!(parse_decimal("."), Err(NumberError::Invalid));
        assert_eq!(parse_decimal(""), Err(NumberError::Empty));
    }

    #[test]
    fn formats_decimals() {
        assert_eq!(fmt_q(&parse_decimal("1546168.66").unwrap()), "1546168.66");
        assert_eq!(fmt_q(&Q::new(1.into(), 3.into())), "1/3");
        assert_eq!(fmt_q(&Q::new((-1).into(), 4.into())), "-0.25");
        assert!((q_f64(&Q::new(1.into(), 3.into())) - 1.0 / 3.0).abs() < 1e-15);
        assert!((q_f64(&Q::new((-7).into(), 2.into())) + 3.5).abs() < 1e-15);
        // beyond the f64 range, numerator and denominator alike
        let big = num_traits::pow(BigInt::from(10u32), 400);
        let q = Q::new(&big * BigInt::from(2u32), &big * BigInt::from(3u32));
        assert!((q_f64(&q) - 2.0 / 3.0).abs() < 1e-15);
        let q = Q::new(
            &big + BigInt::from(1u32),
            BigInt::from(7u32) * num_traits::pow(BigInt::from(10u32), 399),
        );
        assert!((q_f64(&q) - 10.0 / 7.0).abs() < 1e-14);
        assert_eq!(fmt_money(&Q::new(1.into(), 3.into())), "≈0.33");
        assert_eq!(fmt_money(&Q::new(5.into(), 4.into())), "1.25");
    }
}
