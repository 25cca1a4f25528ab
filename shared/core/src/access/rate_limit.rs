//! Requests per client and minute, counted in this process.
//!
//! A sliding-window counter per client: the count of the current minute plus the previous
//! minute's count weighted by how much of it the sliding minute still covers. A client that
//! starts fresh gets exactly `limit` requests in its first minute (the (limit+1)-th within a
//! minute is refused, however fast or slow they come); afterwards the estimate smooths the
//! burst a fixed window would allow at each window boundary. Each client costs one small
//! entry whatever the limit; entries idle for two windows are dropped (they would count
//! nothing), and past [`MAX_CLIENTS`] new clients share one entry, so memory stays bounded
//! even under a flood of distinct addresses.
//!
//! Refused requests are not counted: a client that keeps retrying too early is not pushed
//! further back, and `retry_after` stays true.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window of `requests_per_minute`.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Clients tracked at once; beyond, new clients share [`OVERFLOW_CLIENT`]'s count.
pub const MAX_CLIENTS: usize = 100_000;

/// The entry new clients share once [`MAX_CLIENTS`] are tracked.
const OVERFLOW_CLIENT: &str = "\u{0}overflow";

/// Leaves room for floating-point rounding, so that a client coming back exactly when
/// told to is let through.
const ROUNDING_SLACK: f64 = 1e-6;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitDecision {
    Allowed,
    /// Over the limit; the earliest moment the same client would be let through.
    Limited {
        retry_after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window_start: Instant,
    previous: u32,
    current: u32,
}

impl Counter {
    fn fresh(now: Instant) -> Self {
        Self {
            window_start: now,
            previous: 0,
            current: 0,
        }
    }

    /// Moves the window forward to the one `now` falls in.
    fn roll(&mut self, now: Instant, window: Duration) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= window * 2 {
            *self = Self::fresh(now);
        } else if elapsed >= window {
            self.previous = self.current;
            self.current = 0;
            self.window_start += window;
        }
    }

    /// Share of the current window gone at `now` (0 to 1).
    fn progress(&self, now: Instant, window: Duration) -> f64 {
        (now.saturating_duration_since(self.window_start).as_secs_f64() / window.as_secs_f64()).clamp(0.0, 1.0)
    }

    fn estimate(&self, now: Instant, window: Duration) -> f64 {
        f64::from(self.previous) * (1.0 - self.progress(now, window)) + f64::from(self.current)
    }

    fn idle(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.window_start) >= window * 2
    }

    /// How long from `now` until one more request fits under `limit`.
    fn wait(&self, now: Instant, window: Duration, limit: u32) -> Duration {
        let room = f64::from(limit) - 1.0;
        let window_secs = window.as_secs_f64();
        // Within this window: the previous count must fade to `room - current`.
        let in_this_window = if f64::from(self.current) <= room {
            let fade_to = room - f64::from(self.current);
            let progress = if self.previous == 0 {
                0.0
            } else {
                (1.0 - fade_to / f64::from(self.previous)).max(0.0)
            };
            Some(progress)
        } else {
            None
        };
        let ready_at = match in_this_window {
            Some(progress) => self.window_start + Duration::from_secs_f64(progress * window_secs),
            // In the next window this window's count is the one fading.
            None => {
                let progress = (1.0 - room / f64::from(self.current.max(1))).clamp(0.0, 1.0);
                self.window_start + window + Duration::from_secs_f64(progress * window_secs)
            }
        };
        ready_at.saturating_duration_since(now)
    }
}

struct Clients {
    counters: HashMap<String, Counter>,
    last_sweep: Instant,
}

/// Counts requests per client (an API key's id, or an IP address).
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    clients: Mutex<Clients>,
}

impl RateLimiter {
    /// `per_minute` 0: never limits.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, WINDOW)
    }

    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            clients: Mutex::new(Clients {
                counters: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn is_enabled(&self) -> bool {
        self.limit > 0
    }

    /// Counts one request of `client` now, unless it is over the limit.
    pub fn check(&self, client: &str) -> RateLimitDecision {
        self.check_at(client, Instant::now())
    }

    pub fn check_at(&self, client: &str, now: Instant) -> RateLimitDecision {
        if self.limit == 0 {
            return RateLimitDecision::Allowed;
        }
        // A poisoned lock only means another request panicked mid-count: the counts are
        // still usable.
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.window;
        if now.saturating_duration_since(clients.last_sweep) >= window {
            clients.counters.retain(|_, counter| !counter.idle(now, window));
            clients.last_sweep = now;
        }
        let key = if clients.counters.contains_key(client) || clients.counters.len() < MAX_CLIENTS {
            client
        } else {
            clients.counters.retain(|_, counter| !counter.idle(now, window));
            if clients.counters.len() < MAX_CLIENTS {
                client
            } else {
                OVERFLOW_CLIENT
            }
        };
        let counter = clients
            .counters
            .entry(key.to_owned())
            .or_insert_with(|| Counter::fresh(now));
        counter.roll(now, window);
        if counter.estimate(now, window) + 1.0 > f64::from(self.limit) + ROUNDING_SLACK {
            return RateLimitDecision::Limited {
                retry_after: counter.wait(now, window, self.limit),
            };
        }
        counter.current = counter.current.saturating_add(1);
        RateLimitDecision::Allowed
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .counters
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(limiter: &RateLimiter, client: &str, at: Instant) -> bool {
        limiter.check_at(client, at) == RateLimitDecision::Allowed
    }

    #[test]
    fn a_fresh_client_gets_exactly_the_limit_in_its_first_minute() {
        let limiter = RateLimiter::per_minute(100);
        let start = Instant::now();
        // Spread over 59 seconds: no refill within the first window.
        for n in 0..100u32 {
            let at = start + Duration::from_millis(u64::from(n) * 590);
            assert!(allowed(&limiter, "key:a", at), "request {}", n + 1);
        }
        let last = start + Duration::from_secs(59);
        let RateLimitDecision::Limited { retry_after } = limiter.check_at("key:a", last) else {
            panic!("the 101st request within a minute is refused");
        };
        // The first minute's 100 fade in the next one: room again 0.6 s into it.
        assert!(
            retry_after > Duration::from_secs(1) && retry_after <= Duration::from_secs(2),
            "{retry_after:?}"
        );
        assert!(allowed(&limiter, "key:b", last), "other clients are counted apart");
        assert!(!allowed(
            &limiter,
            "key:a",
            last + retry_after - Duration::from_millis(100)
        ));
        assert!(allowed(&limiter, "key:a", last + retry_after));
    }

    #[test]
    fn a_burst_is_told_when_to_come_back() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(allowed(&limiter, "ip:1", start));
        }
        let RateLimitDecision::Limited { retry_after } = limiter.check_at("ip:1", start) else {
            panic!("4th in a burst of a limit of 3 is refused");
        };
        // 3 in the first window: in the next one they must fade to 2, a third of the way in.
        assert_eq!(retry_after.as_secs(), 80);
        assert!(!allowed(&limiter, "ip:1", start + Duration::from_secs(79)));
        assert!(allowed(&limiter, "ip:1", start + Duration::from_secs(80)));
        // Long idle: a fresh start.
        assert!(allowed(&limiter, "ip:1", start + Duration::from_secs(400)));
    }

    #[test]
    fn idle_clients_are_forgotten_and_zero_means_no_limit() {
        let limiter = RateLimiter::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for n in 0..50 {
            assert!(allowed(&limiter, &format!("ip:{n}"), start));
        }
        assert_eq!(limiter.tracked(), 50);
        assert!(allowed(&limiter, "ip:late", start + Duration::from_secs(121)));
        assert_eq!(limiter.tracked(), 1, "idle entries swept");

        let open = RateLimiter::per_minute(0);
        assert!((0..1000).all(|_| allowed(&open, "key:x", start)));
        assert_eq!(open.tracked(), 0);
    }
}
