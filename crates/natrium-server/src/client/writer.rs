//! The writer task: drains a connection's outbound buffer and runs its timers.
//!
//! One task per connection. It sleeps until woken by a delivery or a timer, swaps the whole
//! pending buffer out (so publishers can keep appending to the other one), and writes it
//! with as few syscalls as the socket allows. A write first tries without waiting; only if
//! the socket is full does it wait, bounded by `write_deadline`, so the common case arms no
//! timer.
//!
//! The timers live here because this task is the one that talks to the socket anyway:
//! - server PINGs every `ping_interval`, skipped when the client was recently active;
//!   `ping_max` unanswered ones close the connection as stale;
//! - the auth timeout, when the server requires authentication.

use super::transport::{ConnWriter, WriteFail};
use super::{ClientConn, CloseReason, mono_nanos};
use crate::protocol::write;
use crate::server::ServerShared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Above this capacity an idle buffer is given back to the allocator.
const SHRINK_ABOVE: usize = 8 * 1024 * 1024;

/// The first server PING comes after min(ping_interval, 2s) plus up to 20% jitter, as in
/// nats-server, so a fleet of clients that connected together does not ping in lockstep.
fn first_ping_delay(interval: Duration) -> Duration {
    let d = interval.min(Duration::from_secs(2));
    let jitter_max = (d.as_nanos() / 5) as u64;
    let jitter = if jitter_max > 0 {
        rand::random::<u64>() % jitter_max
    } else {
        0
    };
    d + Duration::from_nanos(jitter)
}

/// Run the writer until the connection closes. Shuts the socket down in both directions
/// on the way out, which ends the reader's pending read.
pub async fn run(
    conn: Arc<ClientConn>,
    mut wr: ConnWriter,
    server: Arc<ServerShared>,
    auth_deadline: Option<Instant>,
) {
    let mut spare: Vec<u8> = Vec::new();
    let opts = server.opts();
    let mut ping_at = Instant::now() + first_ping_delay(opts.ping_interval);
    let mut auth_at = auth_deadline;
    drop(opts);
    let sleep = tokio::time::sleep_until(ping_at);
    tokio::pin!(sleep);
    let mut sleep_for = ping_at;
    // Whether a PING was ever sent; the first one always goes out, to measure RTT.
    let mut pinged = false;
    // `out_msgs` as of the last write: whether the next one carried messages.
    let mut msgs_flushed = 0u64;
    // The CONNECT time the PING schedule is based on (0: accept time).
    let mut ping_base = 0u64;

    loop {
        // CONNECT restarts the first-PING timer (nats-server does the same).
        let connected_at = conn.connected_at.load(Ordering::Acquire);
        if connected_at != ping_base {
            ping_base = connected_at;
            ping_at = tokio::time::Instant::from_std(super::mono_to_instant(connected_at))
                + first_ping_delay(server.opts().ping_interval);
        }
        // A JWT login's expiry: a fixed deadline, so the timer is not re-armed per loop.
        let expiry = conn.expires_mono.load(Ordering::Relaxed);
        let expires_at = (expiry > 0).then(|| Instant::from_std(super::mono_to_instant(expiry)));
        let next = auth_at.map_or(ping_at, |a| a.min(ping_at));
        let next = expires_at.map_or(next, |e| e.min(next));
        if next != sleep_for {
            sleep.as_mut().reset(next);
            sleep_for = next;
        }
        tokio::select! {
            biased;
            _ = conn.writer_wake.notified() => {}
            _ = &mut sleep => {
                let now = Instant::now();
                if let Some(e) = expires_at
                    && now >= e
                {
                    let text = if conn.expires_account.load(Ordering::Relaxed) {
                        "Account Authentication Expired"
                    } else {
                        "User Authentication Expired"
                    };
                    conn.err_and_close(text, CloseReason::AuthenticationExpired);
                }
                if let Some(a) = auth_at
                    && now >= a
                {
                    auth_at = None;
                    if !conn.is_connected() && !conn.callout_pending.load(Ordering::Acquire) {
                        conn.err_and_close("Authentication Timeout", CloseReason::AuthenticationTimeout);
                    }
                }
                if now >= ping_at && conn.connected_at.load(Ordering::Acquire) == ping_base {
                    let opts = server.opts();
                    ping_at = now + opts.ping_interval;
                    // No PING before CONNECT (nats-server waits for it too; the auth
                    // timeout deals with a client that never sends one).
                    if conn.is_connected() {
                        ping_timer(&conn, opts.ping_interval, opts.ping_max, &mut pinged);
                    }
                }
            }
        }

        let (closing, flush) = {
            let mut out = conn.out.lock();
            std::mem::swap(&mut out.buf, &mut spare);
            out.inflight = spare.len();
            out.flush_pending = false;
            (out.closing, out.flush_before_close)
        };
        if closing.is_some() && !flush {
            conn.drained.notify_waiters();
            break;
        }
        // WebSocket pongs and close answers the reader queued (nothing for other
        // transports).
        if spare.is_empty()
            && wr.is_websocket()
            && wr
                .flush_control(server.opts().write_deadline)
                .await
                .is_err()
        {
            conn.close(CloseReason::WriteError, false);
            break;
        }
        if !spare.is_empty() {
            let deadline = server.opts().write_deadline;
            match wr.write_all(&spare, deadline).await {
                Ok(()) => {}
                Err(fail) => {
                    let reason = match fail {
                        WriteFail::Io => CloseReason::WriteError,
                        WriteFail::Deadline => {
                            server.slow_consumer_write_deadline(&conn, deadline, spare.len());
                            CloseReason::SlowConsumerWriteDeadline
                        }
                    };
                    conn.close(reason, false);
                    break;
                }
            }
            let mut out = conn.out.lock();
            out.inflight = 0;
            // A write that carried messages is activity (a PONG alone is not).
            if out.out_msgs != msgs_flushed {
                msgs_flushed = out.out_msgs;
                conn.last_activity.store(mono_nanos(), Ordering::Relaxed);
            }
            let stalled = std::mem::take(&mut out.stall_waiters);
            drop(out);
            if stalled {
                conn.drained.notify_waiters();
            }
            spare.clear();
            if spare.capacity() > SHRINK_ABOVE {
                spare = Vec::new();
            }
        }
        if closing.is_some() {
            break;
        }
    }
    // Ends the reader's read too; the fd stays open until both halves drop.
    wr.shutdown(conn.closing().unwrap_or(CloseReason::ClientClosed))
        .await;
}

/// One tick of the PING timer. As in nats-server, a PING is skipped when the client sent
/// something within the last interval, except the first one, which measures RTT.
fn ping_timer(conn: &ClientConn, interval: Duration, ping_max: i64, pinged: &mut bool) {
    if conn.closing().is_some() {
        return;
    }
    let now = mono_nanos();
    let idle = now.saturating_sub(conn.last_in.load(Ordering::Relaxed));
    if *pinged && idle < interval.as_nanos() as u64 {
        return;
    }
    *pinged = true;
    let out = conn.pings_out.load(Ordering::Relaxed);
    if i64::from(out) + 1 > ping_max {
        conn.err_and_close("Stale Connection", CloseReason::StaleConnection);
        return;
    }
    conn.pings_out.store(out + 1, Ordering::Relaxed);
    let _ = conn
        .ping_sent_at
        .compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    conn.send_proto(write::PING);
}
