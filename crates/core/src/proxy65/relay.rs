//! XEP-0065: SOCKS5 Bytestreams — relaying an activated stream (§6.3.5):
//! bytes are copied both ways until both sides have finished, a side
//! fails, the stream has been idle for `idle_timeout` in both directions,
//! or the server shuts down; `max_rate` paces the two directions together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes read at once; at most half a second's worth under `max_rate`, so
/// that pacing one chunk never looks like idleness (`idle_timeout` >= 1 s).
const CHUNK: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Close when no byte moved either way for this long.
    pub idle: Duration,
    /// Bytes per second over both directions; 0 is unlimited.
    pub max_rate: u64,
}

/// How a relay ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed their sending half, or one of them failed.
    Finished,
    Idle,
    Shutdown,
}

/// When bytes last moved, either way.
struct Activity(Mutex<Instant>);

impl Activity {
    fn touch(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Instant::now();
        }
    }

    fn last(&self) -> Instant {
        self.0.lock().map(|l| *l).unwrap_or_else(|_| Instant::now())
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.last() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A shared schedule of send slots: each chunk is sent at the end of the
/// slot its size takes at `bytes_per_second`, slots following each other.
struct Pace {
    bytes_per_second: u64,
    next_slot: Mutex<Instant>,
}

impl Pace {
    async fn wait_for(&self, bytes: usize) {
        let slot_end = {
            let Ok(mut next) = self.next_slot.lock() else {
                return;
            };
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
            *next
        };
        tokio::time::sleep_until(slot_end).await;
    }
}

/// Copy one direction until end of file, then pass the end on.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    activity: &Activity,
    pace: Option<&Pace>,
    relayed: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let chunk = match pace {
        Some(p) => CHUNK.min((p.bytes_per_second / 2).max(1) as usize),
        None => CHUNK,
    };
    let mut buf = vec![0u8; chunk];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other side still may send.
            return to.shutdown().await;
        }
        activity.touch();
        if let Some(p) = pace {
            p.wait_for(n).await;
        }
        to.write_all(&buf[..n]).await?;
        activity.touch();
        relayed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Relay between `a` and `b` under `limits`; `relayed` counts the bytes.
pub async fn relay<A, B>(
    a: A,
    b: B,
    limits: RelayLimits,
    relayed: &AtomicU64,
    mut shutdown: watch::Receiver<bool>,
) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity(Mutex::new(Instant::now()));
    let pace = (limits.max_rate > 0).then(|| Pace {
        bytes_per_second: limits.max_rate,
        next_slot: Mutex::new(Instant::now()),
    });
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let both_ways = async {
        tokio::try_join!(
            pump(a_read, b_write, &activity, pace.as_ref(), relayed),
            pump(b_read, a_write, &activity, pace.as_ref(), relayed),
        )
    };
    tokio::select! {
        _ = both_ways => RelayEnd::Finished,
        _ = activity.idle_for(limits.idle) => RelayEnd::Idle,
        _ = crate::server::until_shutdown(&mut shutdown) => RelayEnd::Shutdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle_ms: u64, max_rate: u64) -> RelayLimits {
        RelayLimits {
            idle: Duration::from_millis(idle_ms),
            max_rate,
        }
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_the_relay_ends_when_both_sides_close() {
        let (mut alice, a) = tokio::io::duplex(4096);
        let (mut bob, b) = tokio::io::duplex(4096);
        let (_keep, rx) = watch::channel(false);
        let relayed = AtomicU64::new(0);
        let peers = async {
            alice.write_all(b"hello bob").await.unwrap();
            bob.write_all(b"hi alice!").await.unwrap();
            alice.shutdown().await.unwrap();
            bob.shutdown().await.unwrap();
            let (mut to_bob, mut to_alice) = (Vec::new(), Vec::new());
            bob.read_to_end(&mut to_bob).await.unwrap();
            alice.read_to_end(&mut to_alice).await.unwrap();
            (to_bob, to_alice)
        };
        let (end, (to_bob, to_alice)) =
            tokio::join!(relay(a, b, limits(5000, 0), &relayed, rx), peers);
        assert_eq!(end, RelayEnd::Finished);
        assert_eq!(to_bob, b"hello bob");
        assert_eq!(to_alice, b"hi alice!");
        assert_eq!(relayed.load(Ordering::Relaxed), 18);
    }

    #[tokio::test]
    async fn a_silent_stream_is_closed_as_idle() {
        let (_alice, a) = tokio::io::duplex(64);
        let (_bob, b) = tokio::io::duplex(64);
        let (_keep, rx) = watch::channel(false);
        let end = relay(a, b, limits(50, 0), &AtomicU64::new(0), rx).await;
        assert_eq!(end, RelayEnd::Idle);
    }

    #[tokio::test]
    async fn shutdown_ends_the_relay() {
        let (_alice, a) = tokio::io::duplex(64);
        let (_bob, b) = tokio::io::duplex(64);
        let (tx, rx) = watch::channel(false);
        tx.send_replace(true);
        let end = relay(a, b, limits(5000, 0), &AtomicU64::new(0), rx).await;
        assert_eq!(end, RelayEnd::Shutdown);
    }

    #[tokio::test]
    async fn max_rate_paces_the_bytes() {
        let (mut alice, a) = tokio::io::duplex(64 * 1024);
        let (mut bob, b) = tokio::io::duplex(64 * 1024);
        let (_keep, rx) = watch::channel(false);
        let relayed = AtomicU64::new(0);
        let started = Instant::now();
        let peers = async {
            // 3000 bytes at 10 kB/s take 0.3 s, however they are split.
            alice.write_all(&[7u8; 3000]).await.unwrap();
            alice.shutdown().await.unwrap();
            bob.shutdown().await.unwrap();
            let mut got = Vec::new();
            bob.read_to_end(&mut got).await.unwrap();
            got.len()
        };
        let (_, got) = tokio::join!(relay(a, b, limits(5000, 10_000), &relayed, rx), peers);
        assert_eq!(got, 3000);
        assert!(started.elapsed() >= Duration::from_millis(290));
    }
}
