//! Token-bucket rate limiting as Jira/Confluence DC implement it (8.6+, off by default): a bucket
//! of `capacity` tokens, refilled by `fill_rate` tokens every `interval_seconds`; one token per
//! authenticated REST request; an empty bucket answers 429.
//! Source: "Adjusting your code for rate limiting" (Jira admin docs) and the Confluence DC
//! `_RateLimiting_HTTPheaders` page (api-contracts.md G). Bitbucket's header names are not
//! verified; the simulator uses the same `X-RateLimit-*` set for every product.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// Bucket settings for one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Bucket size ("Max requests"); also the starting number of tokens.
    pub capacity: u32,
    /// Tokens added per interval ("Requests allowed").
    pub fill_rate: u32,
    /// Seconds between two refills.
    pub interval_seconds: u32,
}

impl Default for RateLimit {
    /// Bitbucket's documented default (60 tokens, 5 per second) is the most common setting.
    fn default() -> Self {
        RateLimit {
            capacity: 60,
            fill_rate: 5,
            interval_seconds: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub limit: RateLimit,
    tokens: f64,
    last: Instant,
}

/// What one request got from the bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Taken {
    pub limit: RateLimit,
    pub remaining: u32,
    /// `None` when a token was taken; the seconds to wait when the bucket was empty.
    pub retry_after: Option<u64>,
}

impl Bucket {
    pub fn new(limit: RateLimit) -> Self {
        Bucket {
            limit,
            tokens: f64::from(limit.capacity),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let interval = f64::from(self.limit.interval_seconds.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let added = elapsed / interval * f64::from(self.limit.fill_rate);
        self.tokens = (self.tokens + added).min(f64::from(self.limit.capacity));
        self.last = now;
    }

    pub fn take(&mut self, now: Instant) -> Taken {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Taken {
                limit: self.limit,
                remaining: self.tokens.floor() as u32,
                retry_after: None,
            }
        } else {
            let missing = 1.0 - self.tokens;
            let per_token = if self.limit.fill_rate == 0 {
                // A bucket that never refills: tell the client to come back after an interval.
                f64::from(self.limit.interval_seconds.max(1))
            } else {
                f64::from(self.limit.interval_seconds.max(1)) / f64::from(self.limit.fill_rate)
            };
            let wait = Duration::from_secs_f64(missing * per_token);
            Taken {
                limit: self.limit,
                remaining: 0,
                retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            }
        }
    }
}

impl Taken {
    /// The headers Jira/Confluence DC add to every rate-limited response.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("X-RateLimit-Limit", HeaderValue::from(self.limit.capacity));
        headers.insert("X-RateLimit-Remaining", HeaderValue::from(self.remaining));
        headers.insert(
            "X-RateLimit-Interval-Seconds",
            HeaderValue::from(self.limit.interval_seconds),
        );
        headers.insert(
            "X-RateLimit-FillRate",
            HeaderValue::from(self.limit.fill_rate),
        );
        headers.insert(
            "retry-after",
            HeaderValue::from(self.retry_after.unwrap_or(0)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_then_refuses_then_refills() {
        let start = Instant::now();
        let mut bucket = Bucket::new(RateLimit {
            capacity: 2,
            fill_rate: 1,
            interval_seconds: 10,
        });
        assert_eq!(bucket.take(start).remaining, 1);
        assert_eq!(bucket.take(start).remaining, 0);
        let refused = bucket.take(start);
        assert_eq!(refused.retry_after, Some(10));
        let later = bucket.take(start + Duration::from_secs(10));
        assert!(
            later.retry_after.is_none(),
            "one token back after one interval"
        );
    }
}
