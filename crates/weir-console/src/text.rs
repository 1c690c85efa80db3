//! How the console shows bytes and times: a value as its UTF-8 text when
//! it is text, else as hex (both cut at a bound), JSON compactly, and
//! epoch milliseconds as UTC date-times.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Most characters of a value, a key or a header shown in a table cell.
pub const SHOWN_CHARS_MAX: usize = 2_000;

/// A record's value as the console shows it: `("text", …)` when the bytes
/// are UTF-8, `("hex", …)` otherwise, cut at [`SHOWN_CHARS_MAX`].
pub fn value(value_base64: Option<&str>) -> (&'static str, String) {
    let Some(encoded) = value_base64 else {
        return ("null", String::new());
    };
    let Ok(bytes) = B64.decode(encoded) else {
        return ("hex", String::new());
    };
    match std::str::from_utf8(&bytes) {
        Ok(s) => ("text", cut(s)),
        Err(_) => ("hex", hex(&bytes)),
    }
}

/// `bytes` as lowercase hex pairs separated by spaces, cut at the bound.
pub fn hex(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_CHARS_MAX / 3)];
    let mut out = String::with_capacity(shown.len() * 3);
    for (i, b) in shown.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    if shown.len() < bytes.len() {
        out.push_str(&format!(" … ({} bytes)", bytes.len()));
    }
    out
}

/// `s` cut at [`SHOWN_CHARS_MAX`] characters, with a marker when cut.
pub fn cut(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS_MAX) {
        Some((at, _)) => format!("{}… ({} bytes)", &s[..at], s.len()),
        None => s.to_owned(),
    }
}

/// A JSON value as compact text, cut at the bound.
pub fn json(v: &serde_json::Value) -> String {
    cut(&v.to_string())
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn time_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{milli:03}")
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_show_as_text_when_utf8_else_as_hex() {
        let text = B64.encode("héllo");
        assert_eq!(value(Some(&text)), ("text", "héllo".to_owned()));
        let binary = B64.encode([0xff, 0x00, 0x10]);
        assert_eq!(value(Some(&binary)), ("hex", "ff 00 10".to_owned()));
        assert_eq!(value(None).0, "null");
        let long = "x".repeat(SHOWN_CHARS_MAX + 5);
        let shown = value(Some(&B64.encode(&long))).1;
        assert!(
            shown.ends_with(&format!("… ({} bytes)", long.len())),
            "{shown}"
        );
        let big = vec![0xffu8; SHOWN_CHARS_MAX];
        assert!(hex(&big).len() <= SHOWN_CHARS_MAX + 20);
    }

    #[test]
    fn times_are_utc_date_times() {
        assert_eq!(time_ms(0), "1970-01-01 00:00:00.000");
        assert_eq!(time_ms(1_769_860_800_250), "2026-01-31 12:00:00.250");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(time_ms(-1), "1969-12-31 23:59:59.999");
    }
}
