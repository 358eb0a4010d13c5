//! Times as RFC 3339 in UTC with milliseconds (`2026-11-30T04:40:32.358Z`), for the job
//! status in JSON and for the dashboard's pages.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last time RFC 3339 can write, 9999-12-31T23:59:59.999Z.
const LAST: Duration = Duration::from_millis(253_402_300_799_999);

/// `at`, written as RFC 3339; a time before 1970 or after 9999 (a job scheduled that far
/// ahead) is written as the nearest one that can be.
pub(crate) fn format(at: SystemTime) -> impl Display {
    humantime::format_rfc3339_millis(at.clamp(UNIX_EPOCH, UNIX_EPOCH + LAST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_and_bounded() {
        assert_eq!(format(UNIX_EPOCH).to_string(), "1970-01-01T00:00:00.000Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        assert_eq!(format(at).to_string(), "2026-11-30T00:53:20.123Z");
        let far = UNIX_EPOCH + Duration::from_millis(i64::MAX as u64);
        assert_eq!(format(far).to_string(), "9999-12-31T23:59:59.999Z");
    }
}
