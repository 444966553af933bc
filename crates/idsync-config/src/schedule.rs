//! When an app syncs on its own under `idsync serve`: a fixed interval (`"30m"`, `"2h"`, `"90s"`)
//! or a cron expression (`"0 */2 * * *"`, evaluated in UTC). Parsed when the file is loaded, so
//! that a schedule that cannot fire is a config error with its line, not a silent service.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The shortest interval accepted: a shorter one would start a run before the last one's
/// source read could have finished on any real tenant.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// An app's schedule, as written in its `schedule` field.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    text: String,
    kind: ScheduleKind,
}

#[derive(Clone)]
enum ScheduleKind {
    Every(Duration),
    Cron(Box<Cron>),
}

/// Why a schedule was refused; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {text:?} {why}")]
pub struct ScheduleError {
    text: String,
    why: String,
}

impl Schedule {
    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The fixed interval, when the schedule is one.
    pub fn interval(&self) -> Option<Duration> {
        match &self.kind {
            ScheduleKind::Every(every) => Some(*every),
            ScheduleKind::Cron(_) => None,
        }
    }

    /// When the app next syncs, given when it last started a run (`None`: never, or not known)
    /// and the time now. An interval counts from the last start, so that restarting the
    /// service does not start a run the schedule did not ask for; a missed one starts at once.
    /// `None` when a cron expression has no further occurrence.
    pub fn next_run(
        &self,
        last_started: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match &self.kind {
            ScheduleKind::Every(every) => Some(match last_started {
                Some(last) => (last + *every).max(now),
                None => now,
            }),
            ScheduleKind::Cron(cron) => {
                let from = to_chrono(now)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
            }
        }
    }
}

fn to_chrono(t: OffsetDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
}

/// `30m`, `2h`, `90s`, `1d`: a number and one unit.
fn parse_interval(text: &str) -> Option<Duration> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(number.checked_mul(seconds)?))
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let refuse = |why: String| ScheduleError {
            text: text.to_owned(),
            why,
        };
        let trimmed = text.trim();
        if trimmed.starts_with(|c: char| c.is_ascii_digit()) && !trimmed.contains(' ') {
            let every = parse_interval(trimmed).ok_or_else(|| {
                refuse(
                    "is not an interval: write a number and one unit, such as \"30m\", \"2h\" or \"90s\" (or a cron expression such as \"*/30 * * * *\")".into(),
                )
            })?;
            if every < MIN_INTERVAL {
                return Err(refuse(format!(
                    "is shorter than {} seconds, the shortest interval idsync runs at",
                    MIN_INTERVAL.as_secs()
                )));
            }
            return Ok(Schedule {
                text: text.to_owned(),
                kind: ScheduleKind::Every(every),
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| {
                refuse(format!(
                    "is not a cron expression ({e}): write five fields (minute hour day-of-month month day-of-week, in UTC), such as \"0 */2 * * *\", or an interval such as \"30m\""
                ))
            })?;
        Ok(Schedule {
            text: text.to_owned(),
            kind: ScheduleKind::Cron(Box::new(cron)),
        })
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;

    fn try_from(text: String) -> Result<Self, ScheduleError> {
        text.parse()
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn schedule(text: &str) -> Schedule {
        match text.parse() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn intervals_count_from_the_last_start() {
        let every = schedule("30m");
        assert_eq!(every.interval(), Some(Duration::from_secs(1800)));
        let now = datetime!(2026-11-29 12:00 UTC);
        assert_eq!(every.next_run(None, now), Some(now));
        assert_eq!(
            every.next_run(Some(datetime!(2026-11-29 11:50 UTC)), now),
            Some(datetime!(2026-11-29 12:20 UTC))
        );
        // A run the schedule missed (the service was down) starts at once, not twice.
        assert_eq!(
            every.next_run(Some(datetime!(2026-11-29 09:00 UTC)), now),
            Some(now)
        );
    }

    #[test]
    fn cron_expressions_fire_at_their_next_occurrence_in_utc() {
        let cron = schedule("0 */2 * * *");
        assert_eq!(cron.interval(), None);
        assert_eq!(
            cron.next_run(None, datetime!(2026-11-29 12:00 UTC)),
            Some(datetime!(2026-11-29 14:00 UTC))
        );
        assert_eq!(
            cron.next_run(None, datetime!(2026-11-29 13:59:30 UTC)),
            Some(datetime!(2026-11-29 14:00 UTC))
        );
    }

    #[test]
    fn bad_schedules_say_what_is_accepted() {
        for (text, says) in [
            ("30x", "is not an interval"),
            ("5s", "shorter than 10 seconds"),
            ("every day", "is not a cron expression"),
            ("61 * * * *", "is not a cron expression"),
        ] {
            match text.parse::<Schedule>() {
                Ok(_) => panic!("{text:?} was accepted"),
                Err(e) => assert!(e.to_string().contains(says), "{text:?}: {e}"),
            }
        }
    }
}
