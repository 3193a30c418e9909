//! A connection's outbound side: a bounded buffer that publishers append to, and the
//! writer task that drains it to the socket.
//!
//! Why this shape:
//! - Delivery happens on the *publisher's* task: it formats the `MSG` straight into the
//!   receiver's buffer under a short mutex, so no per-message allocation or channel hop.
//! - Coalescing: the writer swaps the whole buffer out and writes it in one call, so under
//!   load one syscall carries many messages, and when idle a message is written as soon as
//!   the writer wakes. Publishers wake the writer at most once per write cycle
//!   (`flush_pending`), and the reader batches wake-ups until it has handled everything in
//!   its read buffer (see `reader.rs`).
//! - Bounded: if pending bytes (buffered plus in flight) would exceed `max_pending`, the
//!   receiver is a slow consumer and is closed; the publisher never blocks on it.
//!
//! - Fast producers: when a receiver's pending bytes pass 3/4 of `max_pending`, the
//!   publisher's reader pauses for a few milliseconds (at most 10 ms per read) to let the
//!   writer catch up, as nats-server does. This turns a burst into TCP back-pressure on the
//!   publisher instead of cutting off a receiver that is only briefly behind.
//!
//! Lock order: a publisher may hold its own nothing-else while taking a receiver's
//! `Outbound` lock; code holding an `Outbound` lock never takes any other lock.

use super::{ClientConn, CloseReason};
use crate::protocol::write;

/// Pending data and flags for one connection. Guarded by `ClientConn::out`.
#[derive(Debug, Default)]
pub struct Outbound {
    /// Bytes waiting to be written.
    pub buf: Vec<u8>,
    /// Bytes the writer has taken and is writing now; they still count as pending.
    pub inflight: usize,
    /// The writer has been (or will be) woken for data in `buf`; avoids repeat wake-ups.
    pub flush_pending: bool,
    /// Set once the connection is closing; later deliveries are dropped.
    pub closing: Option<CloseReason>,
    /// Whether bytes still in `buf` should be written before the socket closes (true for
    /// `-ERR` then close; false for slow consumers, whose buffer is the problem).
    pub flush_before_close: bool,
    /// Messages delivered to this connection.
    pub out_msgs: u64,
    /// Payload bytes delivered to this connection.
    pub out_bytes: u64,
    /// A producer is waiting for this connection to drain (see "Fast producers" above);
    /// the writer signals `ClientConn::drained` after its next write.
    pub stall_waiters: bool,
}

/// What a delivery attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Buffered.
    Queued {
        /// The writer was idle: the caller must wake it (after its batch).
        wake: bool,
        /// The receiver is over 3/4 of `max_pending`: the producer should pause briefly.
        stall: bool,
    },
    /// Dropped: the connection is closing.
    Dropped,
    /// Dropped, and the receiver was just marked a slow consumer.
    SlowConsumer,
}

impl Delivery {
    /// Whether the message went into the buffer.
    pub fn queued(self) -> bool {
        matches!(self, Delivery::Queued { .. })
    }
}

impl ClientConn {
    /// Append one `MSG`/`HMSG` for `sid`. Headers are stripped for receivers that did not
    /// negotiate them, as nats-server does.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        payload: &[u8],
        max_pending: usize,
    ) -> Delivery {
        let headers = if self.supports_headers() {
            headers
        } else {
            None
        };
        let mut out = self.out.lock();
        if out.closing.is_some() {
            return Delivery::Dropped;
        }
        let need = write::msg_len(subject, sid, reply, headers, payload);
        if out.buf.len() + out.inflight + need > max_pending {
            out.closing = Some(CloseReason::SlowConsumerPendingBytes);
            out.flush_before_close = false;
            drop(out);
            self.writer_wake.notify_one();
            return Delivery::SlowConsumer;
        }
        write::append_msg(&mut out.buf, subject, sid, reply, headers, payload);
        out.out_msgs += 1;
        out.out_bytes += (headers.map_or(0, <[u8]>::len) + payload.len()) as u64;
        let wake = !out.flush_pending;
        out.flush_pending = true;
        let stall = out.buf.len() + out.inflight > max_pending / 4 * 3;
        Delivery::Queued { wake, stall }
    }

    /// Register a producer's wait for this connection to drain. Returns false if there is
    /// nothing to wait for (it already drained, or it is closing).
    pub fn prepare_stall(&self, max_pending: usize) -> bool {
        let mut out = self.out.lock();
        if out.closing.is_some() || out.buf.len() + out.inflight <= max_pending / 4 * 3 {
            return false;
        }
        out.stall_waiters = true;
        true
    }

    /// Queue raw protocol bytes (`+OK`, `PONG`, `-ERR`, `INFO`) and wake the writer.
    /// Control messages are never refused for size: they are small and the client must see
    /// them.
    pub fn send_proto(&self, bytes: &[u8]) {
        let mut out = self.out.lock();
        if out.closing.is_some() {
            return;
        }
        out.buf.extend_from_slice(bytes);
        let wake = !out.flush_pending;
        out.flush_pending = true;
        drop(out);
        if wake {
            self.writer_wake.notify_one();
        }
    }

    /// Queue `-ERR '<text>'`.
    pub fn send_err(&self, text: &str) {
        let mut b = Vec::with_capacity(text.len() + 10);
        write::append_err(&mut b, text);
        self.send_proto(&b);
    }

    /// Start closing: later deliveries are dropped, and the writer closes the socket after
    /// writing what is buffered (if `flush` is true). The first reason given wins.
    pub fn close(&self, reason: CloseReason, flush: bool) {
        let mut out = self.out.lock();
        if out.closing.is_none() {
            out.closing = Some(reason);
            out.flush_before_close = flush;
        }
        drop(out);
        self.writer_wake.notify_one();
    }

    /// Send `-ERR '<text>'` and then close.
    pub fn err_and_close(&self, text: &str, reason: CloseReason) {
        self.send_err(text);
        self.close(reason, true);
    }

    /// Pending outbound bytes, buffered plus in flight (for `/connz`).
    pub fn pending_bytes(&self) -> usize {
        let out = self.out.lock();
        out.buf.len() + out.inflight
    }

    /// Delivered message and byte counts.
    pub fn out_stats(&self) -> (u64, u64) {
        let out = self.out.lock();
        (out.out_msgs, out.out_bytes)
    }
}
