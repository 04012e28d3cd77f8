//! Checks for the value formats of xAPI that JSON Schema's built-ins do not
//! express exactly (registered as custom formats in `schema.rs`, and used by
//! the query-parameter parser).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// An absolute IRI: a scheme, `:`, and at least one more character, with no
/// character RFC 3987 forbids outright (whitespace, controls, `<>"{}|\^` and backtick).
pub fn is_iri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !rest.is_empty()
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
        })
}

/// `mailto:` followed by an address with exactly one `@` and non-empty parts.
pub fn is_mailto(s: &str) -> bool {
    let Some(addr) = s.strip_prefix("mailto:") else {
        return false;
    };
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// SHA-1 as 40 hex digits (`mbox_sha1sum`).
pub fn is_sha1(s: &str) -> bool {
    is_hex(s, 40)
}

/// A SHA-2 digest in hex: SHA-224, -256, -384 or -512.
pub fn is_sha2(s: &str) -> bool {
    [56, 64, 96, 128].iter().any(|&n| is_hex(s, n))
}

/// A UUID in its standard hyphenated form (any case).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

/// An RFC 5646 language tag.
pub fn is_language_tag(s: &str) -> bool {
    // Content sends a handful of tags ("en-US") in every statement, several
    // times each; a full BCP 47 parse and validation each time was 4 % of a
    // worker's time. Valid tags seen are kept per thread, a bounded few.
    const KEPT: usize = 64;
    thread_local! {
        static VALID: RefCell<HashSet<Box<str>>> = RefCell::new(HashSet::new());
    }
    if VALID.with(|v| v.borrow().contains(s)) {
        return true;
    }
    let valid = language_tags::LanguageTag::parse(s).is_ok_and(|t| t.validate().is_ok());
    if valid {
        VALID.with(|v| {
            let mut v = v.borrow_mut();
            if v.len() < KEPT {
                v.insert(s.into());
            }
        });
    }
    valid
}

/// An ISO 8601 duration: `PnYnMnDTnHnMnS` (fraction allowed on the last
/// component, at least one component, `T` only before a time part) or `PnW`.
pub fn is_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    if let Some(weeks) = rest.strip_suffix('W') {
        return is_decimal(weeks);
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return false;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut parts = 0;
    let mut fraction_seen = false;
    for (text, units) in [(date, &['Y', 'M', 'D'][..]), (time.unwrap_or(""), &['H', 'M', 'S'][..])] {
        let mut remaining = text;
        let mut unit_index = 0;
        while !remaining.is_empty() {
            let Some(pos) = remaining.find(|c: char| c.is_ascii_alphabetic()) else {
                return false;
            };
            let (number, tail) = remaining.split_at(pos);
            let unit = tail.chars().next().unwrap_or(' ');
            let Some(found) = units[unit_index..].iter().position(|&u| u == unit) else {
                return false;
            };
            if !is_decimal(number) || fraction_seen {
                return false;
            }
            fraction_seen = number.contains(['.', ',']);
            unit_index += found + 1;
            parts += 1;
            remaining = &tail[1..];
        }
    }
    parts > 0
}

/// An ISO 8601 duration in seconds (a year is 365 days, a month 30):
/// `PnYnMnDTnHnMnS` or `PnW`, a fraction on any component. For durations
/// `is_duration` accepted; `None` for text it would not.
pub fn duration_secs(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    const DAY: f64 = 86_400.0;
    let mut total = 0.0;
    let mut in_time = false;
    let mut number = String::new();
    for c in rest.chars() {
        let unit = match (c, in_time) {
            ('T', false) => {
                in_time = true;
                continue;
            }
            ('0'..='9' | '.', _) => {
                number.push(c);
                continue;
            }
            (',', _) => {
                number.push('.');
                continue;
            }
            ('Y', false) => 365.0 * DAY,
            ('M', false) => 30.0 * DAY,
            ('W', false) => 7.0 * DAY,
            ('D', false) => DAY,
            ('H', true) => 3_600.0,
            ('M', true) => 60.0,
            ('S', true) => 1.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    (number.is_empty() && total.is_finite()).then_some(total)
}

fn is_decimal(s: &str) -> bool {
    let (int, frac) = match s.split_once(['.', ',']) {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses an ISO 8601 timestamp in the extended format xAPI uses:
/// `YYYY-MM-DDThh:mm[:ss[.f+]]` with `Z`, `±hh`, `±hhmm` or `±hh:mm`; without
/// an offset the time is taken as UTC. The offsets `-00`, `-0000` and `-00:00`
/// ("unknown local offset") are refused, as the spec requires.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 16 || b[10] != b'T' && b[10] != b't' {
        return None;
    }
    let (local, offset) = split_offset(s)?;
    // `HH:MM` alone means seconds 0.
    let local: Cow<str> = if local.len() == 16 { Cow::Owned(format!("{local}:00")) } else { Cow::Borrowed(local) };
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, &local, LOCAL_TIME.iter()).ok()?;
    let naive = parsed.to_naive_datetime_with_offset(0).ok()?;
    if !local[..4].bytes().all(|c| c.is_ascii_digit()) || local.as_bytes()[4] != b'-' {
        return None;
    }
    let offset: i32 = offset.unwrap_or_default();
    let fixed = FixedOffset::east_opt(offset)?;
    fixed.from_local_datetime(&naive).single().map(|dt| dt.with_timezone(&Utc))
}

/// A timestamp's local part, as `NaiveDateTime::parse_from_str` with
/// `%Y-%m-%dT%H:%M:%S%.f` reads it, the format compiled once: compiling it
/// at each call was most of parsing's cost (4 % of a worker's time).
static LOCAL_TIME: LazyLock<Vec<Item<'static>>> =
    LazyLock::new(|| StrftimeItems::new("%Y-%m-%dT%H:%M:%S%.f").collect());

/// Splits the offset off a timestamp, returning it in seconds east of UTC
/// (`None` when there is no offset).
fn split_offset(s: &str) -> Option<(&str, Option<i32>)> {
    if let Some(local) = s.strip_suffix(['Z', 'z']) {
        return Some((local, Some(0)));
    }
    // The offset starts at the last '+' or '-' after the time separator.
    let t = s.find(['T', 't'])?;
    let Some(pos) = s[t..].rfind(['+', '-']).map(|p| p + t) else {
        return Some((s, None));
    };
    let (local, off) = s.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits = off[1..].replace(':', "");
    let colon_ok = match off[1..].len() {
        2 => true,
        4 => !off.contains(':'),
        5 => off.as_bytes()[3] == b':',
        _ => false,
    };
    if !colon_ok || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    if hours > 23 || minutes > 59 || (sign < 0 && hours == 0 && minutes == 0) {
        return None;
    }
    Some((local, Some(sign * (hours * 3600 + minutes * 60))))
}

pub fn is_timestamp(s: &str) -> bool {
    parse_timestamp(s).is_some()
}

/// The same instant in UTC with a `Z`, keeping the precision sent (0, 3, 6
/// or 9 fractional digits, as few as hold it exactly); `None` when `s` is
/// already written with `Z` or is no timestamp. xAPI 2.0 has the LRS store
/// timestamps in UTC rather than reject other offsets.
pub fn timestamp_in_utc(s: &str) -> Option<String> {
    if s.ends_with(['Z', 'z']) {
        return None;
    }
    parse_timestamp(s).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// The form in which the LRS writes `stored` (and a defaulted `timestamp`):
/// UTC, microseconds, `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(timestamp_in_utc("2013-05-18T05:32:34.804+01:00").as_deref(), Some("2013-05-18T04:32:34.804Z"));
        assert_eq!(timestamp_in_utc("2013-05-18T22:32-0230").as_deref(), Some("2013-05-19T01:02:00Z"));
        assert_eq!(
            timestamp_in_utc("2013-05-18T05:32:34.1234567+00:00").as_deref(),
            Some("2013-05-18T05:32:34.123456700Z")
        );
        assert_eq!(timestamp_in_utc("2013-05-18T05:32:34"), Some("2013-05-18T05:32:34Z".into()));
        assert_eq!(timestamp_in_utc("2013-05-18T05:32:34.5Z"), None);
        assert_eq!(timestamp_in_utc("not a time"), None);
    }

    #[test]
    fn durations() {
        for ok in ["PT1H0M0.5S", "P1Y", "P3W", "PT0S", "P1DT12H", "PT4.25S", "P0.5D"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["P", "PT", "1H", "PT1H2", "P1H", "PT1.5H2M", "P1M1Y", "PT-1S", "P1W1D"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        for ok in [
            "2013-05-18T05:32:34.804Z",
            "2013-05-18T05:32:34+00:00",
            "2013-05-18T05:32:34.804+0530",
            "2013-05-18T05:32:34-07",
            "2013-05-18T05:32Z",
            "2013-05-18T05:32:34",
        ] {
            assert!(is_timestamp(ok), "{ok}");
        }
        for bad in [
            "2013-05-18T05:32:34-00:00",
            "2013-05-18T05:32:34-0000",
            "2013-05-18T05:32:34-00",
            "2013-05-18 05:32:34Z",
            "2013-13-18T05:32:34Z",
            "yesterday",
            "2013-05-18T05:32:34+25:00",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
        // The compiled format reads as chrono's parse_from_str does.
        let chrono_reads = |local: &str| {
            chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
        };
        for local in [
            "2013-05-18T05:32:34",
            "2013-05-18T05:32:34.8",
            "2013-05-18T05:32:34.804",
            "2013-05-18T05:32:34.123456789",
            "2016-02-29T23:59:59.000001",
            "2015-02-29T05:32:34",
            "2013-05-18T24:00:00",
            "2013-05-18T05:61:00",
            "2013-05-18t05:32:34",
            "2013-05-18T05:32:60",
            "2013-05-18T05:32:34.",
            "2013-05-18T05:32:34.1234567891",
        ] {
            assert_eq!(parse_timestamp(&format!("{local}Z")), chrono_reads(local), "{local}");
        }
        assert!(parse_timestamp("+2013-05-18T05:32:34Z").is_none(), "a year of four digits only");
        assert!(is_timestamp("2016-12-31T23:59:60Z"), "a leap second");
        let t = parse_timestamp("2013-05-18T05:32:34.804+01:00").unwrap();
        assert_eq!(format_timestamp(t), "2013-05-18T04:32:34.804000Z");
    }

    #[test]
    fn iris_and_mboxes() {
        assert!(is_iri("http://adlnet.gov/expapi/verbs/completed"));
        assert!(is_iri("urn:uuid:1234"));
        assert!(!is_iri("not an iri"));
        assert!(!is_iri("completed"));
        assert!(!is_iri("http://x y"));
        assert!(is_mailto("mailto:a@b.c"));
        assert!(!is_mailto("a@b.c"));
        assert!(!is_mailto("mailto:ab.c"));
        assert!(is_language_tag("en-US"));
        assert!(!is_language_tag("not a tag"));
    }
}
