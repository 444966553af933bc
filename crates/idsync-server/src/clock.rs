//! The time the scheduler lives by. The service runs on the system clock; tests drive a
//! [`ManualClock`] forward by hand, so that "the schedule fires after 30 minutes" is checked
//! without waiting 30 minutes, or any real time at all.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

/// A source of the current time that can also wait for a moment to come.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> OffsetDateTime;
    /// Resolves once [`Clock::now`] has reached `when` (at once if it already has).
    fn sleep_until(&self, when: OffsetDateTime) -> futures::future::BoxFuture<'static, ()>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep_until(&self, when: OffsetDateTime) -> futures::future::BoxFuture<'static, ()> {
        let wait = when - OffsetDateTime::now_utc();
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); sleepers wake as soon as
/// it passes their moment.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: watch::Sender<OffsetDateTime>,
}

impl ManualClock {
    /// A clock standing at `start` until it is moved.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock forward, waking whoever's moment has come.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, when: OffsetDateTime) -> futures::future::BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, nothing will ever wake us.
            while *now.borrow_and_update() < when {
                if now.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_only_when_moved_past_their_moment() {
        let clock = ManualClock::new(datetime!(2026-11-29 12:00 UTC));
        let mut sleeper = tokio::spawn(clock.sleep_until(datetime!(2026-11-29 12:30 UTC)));
        clock.advance(Duration::from_secs(29 * 60));
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut sleeper).is_pending(),
            "woke before its time"
        );
        clock.advance(Duration::from_secs(60));
        sleeper.await.expect("the sleeper ends");
        assert_eq!(clock.now(), datetime!(2026-11-29 12:30 UTC));
    }
}
