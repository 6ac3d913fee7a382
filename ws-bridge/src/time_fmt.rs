//! Timestamps on the wire (DESIGN §4): the bridge writes ISO-8601 UTC with
//! exactly three fractional digits and `Z` (`2026-11-23T06:51:42.123Z`) and
//! reads any RFC 3339 timestamp a client sends, whatever its offset.
//!
//! Inside the system every instant is Unix milliseconds (`i64`); this module is
//! the only place that converts. It must never panic: formatting clamps to the
//! years 0000..=9999 that RFC 3339 can express, parsing returns an error.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
    WireTime::new(unix_ms).as_str().to_owned()
}

/// A formatted timestamp without an allocation (`YYYY-MM-DDTHH:MM:SS.mmmZ`,
/// as [`format_unix_ms`] writes it): for encoders that write many, such as
/// a roster's `lastSeen`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireTime([u8; 24]);

impl WireTime {
    /// Formats `unix_ms`, clamped as [`format_unix_ms`] says.
    pub fn new(unix_ms: i64) -> Self {
        // By hand, not with `time`'s formatter: every presence entry of every
        // snapshot carries a timestamp, and the generic formatter cost about
        // 250 instructions each where this takes a few dozen. The tests hold
        // it to `time`'s output over the whole range.
        const DAY_MS: i64 = 86_400_000;
        let clamped = unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS);
        let (year, month, day) = civil_from_days(clamped.div_euclid(DAY_MS));
        let in_day = clamped.rem_euclid(DAY_MS);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[5..7], month);
        put_digits(&mut out[8..10], day);
        put_digits(&mut out[11..13], in_day / 3_600_000);
        put_digits(&mut out[14..16], in_day / 60_000 % 60);
        put_digits(&mut out[17..19], in_day / 1_000 % 60);
        put_digits(&mut out[20..23], in_day % 1_000);
        Self(out)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

impl serde::Serialize for WireTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Year, month (1..=12) and day (1..=31) of a day count from 1970-01-01, in
/// the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `value` (non-negative, below `10^slot.len()`) zero-padded into `slot`.
fn put_digits(slot: &mut [u8], mut value: i64) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
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
    use proptest::prelude::*;
    use time::format_description::BorrowedFormatItem;
    use time::macros::format_description;

    /// The wire format (always three fractional digits, so clients can
    /// compare timestamps as strings), by `time`'s formatter.
    const WIRE_FORMAT: &[BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

    fn by_the_time_crate(unix_ms: i64) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
            .expect("in range")
            .format(WIRE_FORMAT)
            .expect("formattable")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn formats_as_the_time_crate_does(unix_ms in MIN_UNIX_MS..=MAX_UNIX_MS) {
            prop_assert_eq!(format_unix_ms(unix_ms), by_the_time_crate(unix_ms));
        }
    }

    #[test]
    fn formats_every_day_boundary_and_leap_day_as_the_time_crate_does() {
        // Every midnight and the millisecond before it, 1900-2100 (leap
        // years, 1900 and 2100 not, 2000 yes), and the first and last days.
        let day = 86_400_000_i64;
        let days = (-25_567..=47_482)
            .chain(-719_528..=-719_520)
            .chain(2_932_890..=2_932_896);
        for n in days {
            for ms in [n * day, n * day - 1, n * day + 43_200_123] {
                let ms = ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS);
                assert_eq!(format_unix_ms(ms), by_the_time_crate(ms), "{ms}");
            }
        }
    }

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
