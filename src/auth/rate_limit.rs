//! A token bucket per client address, for the requests that cost the upstream a TokenReview.
//! IPv6 clients are counted per /64, the block one host usually owns, so rotating addresses
//! within it gains nothing. The table is bounded (least recently seen addresses go first); a
//! client pushed out only starts again with a full bucket, as a new one would.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::lru::Lru;

/// Most client addresses tracked at once.
const MAX_CLIENTS: usize = 65_536;

/// Tokens per client: `rate` per second, up to `burst` saved.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Lru<IpAddr, Bucket>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` tokens per second (above zero), at most `burst` (at least one) in store.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self { rate, burst: f64::from(burst.max(1)), buckets: Lru::new(MAX_CLIENTS) }
    }

    /// Takes a token for `client`, or says how long until one is there.
    pub fn take(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = block_of(client);
        let bucket = match self.buckets.get(&key) {
            Some(bucket) => {
                let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
                Bucket { tokens: (bucket.tokens + refill).min(self.burst), at: now }
            }
            None => Bucket { tokens: self.burst, at: now },
        };
        let (result, tokens) = if bucket.tokens >= 1.0 {
            (Ok(()), bucket.tokens - 1.0)
        } else {
            (Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate)), bucket.tokens)
        };
        self.buckets.insert(key, Bucket { tokens, at: now });
        result
    }
}

/// The address a client is counted under.
fn block_of(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut limiter = RateLimiter::new(2.0, 3);
        let (client, now) = ("10.0.0.1".parse().unwrap(), Instant::now());
        for _ in 0..3 {
            assert_eq!(limiter.take(client, now), Ok(()));
        }
        assert_eq!(limiter.take(client, now), Err(Duration::from_millis(500)));
        // Another client has a bucket of its own.
        assert_eq!(limiter.take("10.0.0.2".parse().unwrap(), now), Ok(()));
        assert_eq!(limiter.take(client, now + Duration::from_millis(500)), Ok(()));
        assert!(limiter.take(client, now + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let mut limiter = RateLimiter::new(1.0, 1);
        let now = Instant::now();
        assert_eq!(limiter.take("2001:db8::1".parse().unwrap(), now), Ok(()));
        assert!(limiter.take("2001:db8::ffff:2".parse().unwrap(), now).is_err());
        assert_eq!(limiter.take("2001:db8:0:1::1".parse().unwrap(), now), Ok(()));
        // An IPv4 client seen through an IPv6 socket is the IPv4 client.
        assert_eq!(limiter.take("10.0.0.9".parse().unwrap(), now), Ok(()));
        assert!(limiter.take("::ffff:10.0.0.9".parse().unwrap(), now).is_err());
    }
}
