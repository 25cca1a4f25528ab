//! Requests per client and minute, counted in this process.
//!
//! A sliding-window counter per client: the count of the current minute plus the previous
//! minute's count weighted by how much of it the sliding minute still covers. A client that
//! starts fresh gets exactly `limit` requests in its first minute (the (limit+1)-th within a
//! minute is refused, however fast or slow they come); afterwards the estimate smooths the
//! burst a fixed window would allow at each window boundary. Each client costs one small
//! entry whatever the limit; entries idle for two windows are dropped (they would count
//! nothing).
//!
//! Clients are API keys (authenticated: as many as an admin made) and addresses (callers
//! without a valid key: as many as the internet has). Each kind has its own table with its
//! own capacity ([`MAX_KEYS`], [`MAX_ADDRESSES`]); past it, new clients of that kind share one
//! overflow count, so memory stays bounded under a flood of distinct addresses, and such a
//! flood can never push a key, even one idle for a while, into a shared count.
//!
//! Refused requests are not counted: a client that keeps retrying too early is not pushed
//! further back, and `retry_after` stays true. A request counted before it is known whether
//! it should be (a key counted against its address before the key is looked up) can be
//! handed back with [`RateLimiter::refund`].

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window of `requests_per_minute`.
pub const WINDOW: Duration = Duration::from_secs(60);

/// API keys tracked at once; beyond, new keys share one count (keys are made by admins, so
/// this is never reached in practice).
pub const MAX_KEYS: usize = 100_000;

/// Addresses tracked at once; beyond, new addresses share one count.
pub const MAX_ADDRESSES: usize = 100_000;

/// Leaves room for floating-point rounding, so that a client coming back exactly when
/// told to is let through.
const ROUNDING_SLACK: f64 = 1e-6;

/// Who a request is counted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client<'a> {
    /// An authenticated API key, by its id.
    Key(&'a str),
    /// A caller without a valid key, by its address.
    Address(IpAddr),
}

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

/// The counters of one kind of client, at most `capacity` of them plus the overflow.
struct Table<K> {
    counters: HashMap<K, Counter>,
    /// Shared by new clients while `capacity` others are tracked.
    overflow: Counter,
    capacity: usize,
    last_sweep: Instant,
}

impl<K: Hash + Eq> Table<K> {
    fn new(capacity: usize, now: Instant) -> Self {
        Self {
            counters: HashMap::new(),
            overflow: Counter::fresh(now),
            capacity,
            last_sweep: now,
        }
    }

    /// The counter of `client` (made on its first request), or the overflow when the table
    /// is full of clients that are not idle.
    fn counter(&mut self, client: K, now: Instant, window: Duration) -> &mut Counter {
        if now.saturating_duration_since(self.last_sweep) >= window {
            self.sweep(now, window);
        }
        if !self.counters.contains_key(&client) && self.counters.len() >= self.capacity {
            self.sweep(now, window);
            if self.counters.len() >= self.capacity {
                return &mut self.overflow;
            }
        }
        self.counters.entry(client).or_insert_with(|| Counter::fresh(now))
    }

    fn sweep(&mut self, now: Instant, window: Duration) {
        self.counters.retain(|_, counter| !counter.idle(now, window));
        self.last_sweep = now;
    }
}

struct Tables {
    keys: Table<String>,
    addresses: Table<IpAddr>,
}

impl Tables {
    fn counter(&mut self, client: Client<'_>, now: Instant, window: Duration) -> &mut Counter {
        match client {
            Client::Key(id) => self.keys.counter(id.to_owned(), now, window),
            Client::Address(address) => self.addresses.counter(address, now, window),
        }
    }
}

/// Counts requests per client (an API key's id, or an IP address).
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    tables: Mutex<Tables>,
}

impl RateLimiter {
    /// `per_minute` 0: never limits.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(per_minute, WINDOW)
    }

    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, MAX_KEYS, MAX_ADDRESSES)
    }

    /// With room for `keys` keys and `addresses` addresses before new ones share a count.
    pub fn with_capacity(limit: u32, window: Duration, keys: usize, addresses: usize) -> Self {
        let now = Instant::now();
        Self {
            limit,
            window,
            tables: Mutex::new(Tables {
                keys: Table::new(keys, now),
                addresses: Table::new(addresses, now),
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
    pub fn check(&self, client: Client<'_>) -> RateLimitDecision {
        self.check_at(client, Instant::now())
    }

    pub fn check_at(&self, client: Client<'_>, now: Instant) -> RateLimitDecision {
        if self.limit == 0 {
            return RateLimitDecision::Allowed;
        }
        let window = self.window;
        let mut tables = self.lock();
        let counter = tables.counter(client, now, window);
        counter.roll(now, window);
        if counter.estimate(now, window) + 1.0 > f64::from(self.limit) + ROUNDING_SLACK {
            return RateLimitDecision::Limited {
                retry_after: counter.wait(now, window, self.limit),
            };
        }
        counter.current = counter.current.saturating_add(1);
        RateLimitDecision::Allowed
    }

    /// Takes back one request of `client` counted by an allowed [`check`](Self::check): one
    /// that turned out not to be this client's to pay for.
    pub fn refund(&self, client: Client<'_>) {
        self.refund_at(client, Instant::now());
    }

    pub fn refund_at(&self, client: Client<'_>, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let window = self.window;
        let mut tables = self.lock();
        let counter = tables.counter(client, now, window);
        counter.roll(now, window);
        counter.current = counter.current.saturating_sub(1);
    }

    /// Clients tracked now: keys and addresses.
    pub fn tracked(&self) -> usize {
        let tables = self.lock();
        tables.keys.counters.len() + tables.addresses.counters.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A poisoned lock only means another request panicked mid-count: the counts are
        // still usable.
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(limiter: &RateLimiter, client: Client<'_>, at: Instant) -> bool {
        limiter.check_at(client, at) == RateLimitDecision::Allowed
    }

    /// The address `10.0.x.y` for `n`.
    fn ip(n: u32) -> Client<'static> {
        Client::Address(IpAddr::from([10, 0, (n >> 8) as u8, n as u8]))
    }

    #[test]
    fn a_fresh_client_gets_exactly_the_limit_in_its_first_minute() {
        let limiter = RateLimiter::per_minute(100);
        let start = Instant::now();
        // Spread over 59 seconds: no refill within the first window.
        for n in 0..100u32 {
            let at = start + Duration::from_millis(u64::from(n) * 590);
            assert!(allowed(&limiter, Client::Key("a"), at), "request {}", n + 1);
        }
        let last = start + Duration::from_secs(59);
        let RateLimitDecision::Limited { retry_after } = limiter.check_at(Client::Key("a"), last) else {
            panic!("the 101st request within a minute is refused");
        };
        // The first minute's 100 fade in the next one: room again 0.6 s into it.
        assert!(
            retry_after > Duration::from_secs(1) && retry_after <= Duration::from_secs(2),
            "{retry_after:?}"
        );
        assert!(
            allowed(&limiter, Client::Key("b"), last),
            "other clients are counted apart"
        );
        assert!(!allowed(
            &limiter,
            Client::Key("a"),
            last + retry_after - Duration::from_millis(100)
        ));
        assert!(allowed(&limiter, Client::Key("a"), last + retry_after));
    }

    #[test]
    fn a_burst_is_told_when_to_come_back() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(allowed(&limiter, ip(1), start));
        }
        let RateLimitDecision::Limited { retry_after } = limiter.check_at(ip(1), start) else {
            panic!("4th in a burst of a limit of 3 is refused");
        };
        // 3 in the first window: in the next one they must fade to 2, a third of the way in.
        assert_eq!(retry_after.as_secs(), 80);
        assert!(!allowed(&limiter, ip(1), start + Duration::from_secs(79)));
        assert!(allowed(&limiter, ip(1), start + Duration::from_secs(80)));
        // Long idle: a fresh start.
        assert!(allowed(&limiter, ip(1), start + Duration::from_secs(400)));
    }

    /// The flood of hole 4: anonymous callers from more addresses than the table holds, while
    /// a real key sits idle for two minutes. The key comes back to a count of its own.
    #[test]
    fn an_address_flood_cannot_push_a_key_into_a_shared_count() {
        let limiter = RateLimiter::new(3, WINDOW);
        let start = Instant::now();
        assert!(allowed(&limiter, Client::Key("real"), start));
        let flood = start + WINDOW * 2 + Duration::from_secs(5);
        for n in 0..(MAX_ADDRESSES as u32 + 50) {
            let address = Client::Address(IpAddr::from((0xC000_0000_u32 + n).to_be_bytes()));
            for _ in 0..3 {
                limiter.check_at(address, flood);
            }
        }
        let newcomer = Client::Address(IpAddr::from([203, 0, 113, 7]));
        assert!(
            !allowed(&limiter, newcomer, flood),
            "new addresses past the capacity share one exhausted count"
        );
        let back = flood + Duration::from_secs(1);
        for n in 0..3 {
            assert!(
                allowed(&limiter, Client::Key("real"), back),
                "request {} of the key",
                n + 1
            );
        }
        assert!(
            !allowed(&limiter, Client::Key("real"), back),
            "and its own limit still holds"
        );
        assert!(
            allowed(&limiter, Client::Key("another"), back),
            "every key has its own count"
        );
    }

    #[test]
    fn a_refund_gives_back_one_counted_request() {
        let limiter = RateLimiter::new(2, WINDOW);
        let start = Instant::now();
        assert!(allowed(&limiter, ip(1), start));
        assert!(allowed(&limiter, ip(1), start));
        assert!(!allowed(&limiter, ip(1), start));
        limiter.refund_at(ip(1), start);
        assert!(allowed(&limiter, ip(1), start), "room for one more after the refund");
        assert!(!allowed(&limiter, ip(1), start));
        limiter.refund_at(Client::Key("never seen"), start);
        assert!(
            allowed(&limiter, Client::Key("never seen"), start),
            "a refund never goes below zero"
        );
        assert!(allowed(&limiter, Client::Key("never seen"), start));
        assert!(!allowed(&limiter, Client::Key("never seen"), start));
    }

    #[test]
    fn idle_clients_are_forgotten_and_zero_means_no_limit() {
        let limiter = RateLimiter::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for n in 0..50 {
            assert!(allowed(&limiter, ip(n), start));
        }
        assert_eq!(limiter.tracked(), 50);
        assert!(allowed(&limiter, ip(999), start + Duration::from_secs(121)));
        assert_eq!(limiter.tracked(), 1, "idle entries swept");

        let open = RateLimiter::per_minute(0);
        assert!((0..1000).all(|_| allowed(&open, Client::Key("x"), start)));
        assert_eq!(open.tracked(), 0);
    }
}
