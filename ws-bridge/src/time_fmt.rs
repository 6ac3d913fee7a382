//! Timestamps on the wire (DESIGN §4): the bridge writes ISO-8601 UTC with
//! exactly three fractional digits and `Z` (`2026-11-23T06:51:42.123Z`) and
//! reads any RFC 3339 timestamp a client sends, whatever its offset.
//!
//! Inside the system every instant is Unix milliseconds (`i64`); this module is
//! the only place that converts. It must never panic: formatting clamps to the
//! years 0000..=9999 that RFC 3339 can express, parsing returns an error.

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Always three fractional digits, so clients can compare timestamps as strings.
const WIRE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `0000-01-01T00:00:00.000Z`, the earliest instant RFC 3339 can write.
const MIN_UNIX_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the latest instant RFC 3339 can write.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// A client timestamp that is not RFC 3339, or names an instant out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TimestampError {
    reason: String,
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// Instants outside years 0000..=9999 are clamped to the nearest one that can
/// be written: a corrupt stored time should show as an odd date, not break an
/// envelope.
pub fn format_unix_ms(unix_ms: i64) -> String {
    let clamped = unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS);
    let formatted = OffsetDateTime::from_unix_timestamp_nanos(i128::from(clamped) * 1_000_000)
        .ok()
        .and_then(|instant| instant.format(WIRE_FORMAT).ok());
    // Both steps succeed for every clamped value (the tests walk the bounds);
    // the fallback only keeps this function total.
    formatted.unwrap_or_else(|| String::from("1970-01-01T00:00:00.000Z"))
}

/// Parses an RFC 3339 timestamp with any offset (`2026-11-23T07:51:42.5+01:00`)
/// to Unix milliseconds, dropping sub-millisecond digits (rounding toward the
/// past, so an instant never moves to a later millisecond).
pub fn parse_unix_ms(text: &str) -> Result<i64, TimestampError> {
    let instant = OffsetDateTime::parse(text, &Rfc3339).map_err(|err| TimestampError {
        reason: err.to_string(),
    })?;
    let millis = instant.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(millis).map_err(|_| TimestampError {
        reason: String::from("the instant is out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_digits_and_z() {
        assert_eq!(
            format_unix_ms(1_795_416_702_123),
            "2026-11-23T06:51:42.123Z"
        );
        assert_eq!(
            format_unix_ms(1_795_416_702_000),
            "2026-11-23T06:51:42.000Z"
        );
        assert_eq!(format_unix_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn formatting_clamps_to_what_rfc3339_can_write() {
        assert_eq!(format_unix_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_unix_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(format_unix_ms(MAX_UNIX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_unix_ms(MIN_UNIX_MS), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_any_offset_to_utc_millis() {
        assert_eq!(
            parse_unix_ms("2026-11-23T06:51:42.123Z"),
            Ok(1_795_416_702_123)
        );
        assert_eq!(
            parse_unix_ms("2026-11-23T07:51:42.123+01:00"),
            Ok(1_795_416_702_123)
        );
        assert_eq!(
            parse_unix_ms("2026-11-22T22:51:42.123-08:00"),
            Ok(1_795_416_702_123)
        );
        assert_eq!(parse_unix_ms("2026-11-23T06:51:42Z"), Ok(1_795_416_702_000));
    }

    #[test]
    fn sub_millisecond_digits_round_toward_the_past() {
        assert_eq!(
            parse_unix_ms("2026-11-23T06:51:42.123999Z"),
            Ok(1_795_416_702_123)
        );
        assert_eq!(parse_unix_ms("1969-12-31T23:59:59.9995Z"), Ok(-1));
    }

    #[test]
    fn round_trips() {
        for ms in [0, 1, -1, 1_795_416_702_123, MAX_UNIX_MS, MIN_UNIX_MS] {
            assert_eq!(parse_unix_ms(&format_unix_ms(ms)), Ok(ms));
        }
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-11-23T06:51:42",
            "2026-13-23T06:51:42Z",
            "1795409502123",
        ] {
            assert!(parse_unix_ms(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
