//! The queues between sessions and accounts: bounded, many senders, one
//! receiver, and no memory held while empty.
//!
//! Every session has two queues (stanzas, and the order to close) and every
//! account one. tokio's mpsc channel allocates a cache-padded channel
//! state and a first block of 32 slots when it is created, about 750 bytes
//! per queue before anything is sent, which made the three queues the
//! largest cost of an idle session after TLS. Here a queue is one small
//! shared state; its slots exist only while messages wait in it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

use crate::limits::queue_budget;

/// Slots kept after the queue drains; a queue that grew beyond this gives
/// its memory back when it is empty again.
const KEEP_SLOTS: usize = 8;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes senders waiting for room (`Sender::send`).
    room: Notify,
    /// Session queues also count bytes (`weighed_channel`).
    weigher: Option<Weigher<T>>,
}

/// How a queue weighs its messages: each queue may hold `max` bytes, and
/// all weighed queues together what `limits::queue_budget` allows.
pub struct Weigher<T> {
    pub weigh: fn(&T) -> usize,
    pub max: usize,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Bytes queued, for a weighed queue.
    weight: usize,
    capacity: usize,
    senders: usize,
    /// The receiver closed the queue or is gone: sends fail.
    closed: bool,
    receiver: Option<Waker>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing in this module panics while holding the lock; should a
        // panic elsewhere poison it, the state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bounded queue of `capacity` messages (at least one).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    make(capacity, None)
}

/// A queue bounded by `capacity` messages and by the bytes `weigher`
/// allows. One message always fits an empty queue, so a large stanza is
/// delayed, never refused forever.
pub fn weighed_channel<T>(capacity: usize, weigher: Weigher<T>) -> (Sender<T>, Receiver<T>) {
    make(capacity, Some(weigher))
}

fn make<T>(capacity: usize, weigher: Option<Weigher<T>>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        weigher,
        state: Mutex::new(State {
            queue: VecDeque::new(),
            weight: 0,
            capacity: capacity.max(1),
            senders: 1,
            closed: false,
            receiver: None,
        }),
        room: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Why `try_send` gave the message back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` messages.
    Full(T),
    /// The receiver closed the queue or is gone.
    Closed(T),
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        let waker = if last { state.receiver.take() } else { None };
        drop(state);
        // The receiver learns that nothing more can come.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Queue a message if there is room, without waiting.
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(msg));
        }
        if state.queue.len() >= state.capacity {
            return Err(TrySendError::Full(msg));
        }
        if let Some(w) = &self.shared.weigher {
            let n = (w.weigh)(&msg);
            let empty = state.queue.is_empty();
            if (!empty && state.weight.saturating_add(n) > w.max) || !queue_budget::take(n) {
                return Err(TrySendError::Full(msg));
            }
            state.weight += n;
        }
        state.queue.push_back(msg);
        let waker = state.receiver.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queue a message, waiting for room; gives it back if the queue is
    /// closed.
    pub async fn send(&self, mut msg: T) -> Result<(), T> {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before trying, so room made in between is seen.
            room.as_mut().enable();
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(m)) => return Err(m),
                Err(TrySendError::Full(m)) => msg = m,
            }
            room.await;
        }
    }

    /// The receiver closed the queue or is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next message; `None` once the queue is empty and either closed
    /// or without senders. Cancel-safe: a message is taken only when
    /// returned.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        self.take(&mut state)
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        if let Some(msg) = self.take(&mut state) {
            return Poll::Ready(Some(msg));
        }
        if state.closed || state.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut state.receiver {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn take(&self, state: &mut MutexGuard<'_, State<T>>) -> Option<T> {
        let msg = state.queue.pop_front()?;
        if let Some(w) = &self.shared.weigher {
            let n = (w.weigh)(&msg).min(state.weight);
            state.weight -= n;
            queue_budget::give(n);
        }
        if state.queue.is_empty() && state.queue.capacity() > KEEP_SLOTS {
            state.queue = VecDeque::new();
        }
        // One sender waiting for room may go on (or the next to wait
        // will not wait): one notification per slot freed, so no waiting
        // sender is missed while there is room.
        self.shared.room.notify_one();
        Some(msg)
    }

    /// Refuse further messages; those already queued can still be read.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.notify_waiters();
    }

    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // Messages nobody will read are freed now, not when the last
        // sender goes.
        let unread = std::mem::take(&mut state.queue);
        queue_budget::give(std::mem::take(&mut state.weight));
        drop(state);
        drop(unread);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_in_order_and_refuses_beyond_capacity() {
        let (tx, mut rx) = channel::<u32>(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), None);
        assert!(rx.is_empty());
    }

    #[tokio::test]
    async fn ends_when_the_last_sender_is_gone() {
        let (tx, mut rx) = channel::<u32>(4);
        let tx2 = tx.clone();
        tx.try_send(7).unwrap();
        drop(tx);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Still one sender: the receiver waits, then sees the end.
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), (Some(7), None));
    }

    #[tokio::test]
    async fn a_closed_queue_gives_messages_back_and_drains() {
        let (tx, mut rx) = channel::<u32>(4);
        tx.try_send(1).unwrap();
        rx.close();
        assert!(tx.is_closed());
        assert_eq!(tx.try_send(2), Err(TrySendError::Closed(2)));
        assert_eq!(tx.send(3).await, Err(3));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_dropped_receiver_closes_the_queue() {
        let (tx, rx) = channel::<u32>(1);
        drop(rx);
        assert_eq!(tx.try_send(1), Err(TrySendError::Closed(1)));
    }

    #[tokio::test]
    async fn send_waits_for_room() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.try_send(1).unwrap();
        let sender = tokio::spawn(async move { tx.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sender.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(sender.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn a_waiting_sender_learns_of_the_close() {
        let (tx, mut rx) = channel::<u32>(1);
        tx.try_send(1).unwrap();
        let sender = tokio::spawn(async move { tx.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        rx.close();
        assert_eq!(sender.await.unwrap(), Err(2));
    }

    #[tokio::test]
    async fn a_drained_queue_gives_its_slots_back() {
        let (tx, mut rx) = channel::<u32>(1000);
        for i in 0..100 {
            tx.try_send(i).unwrap();
        }
        for i in 0..100 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.shared.lock().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn a_weighed_queue_refuses_past_its_bytes_but_takes_one_of_any_size() {
        let weigher = Weigher {
            weigh: |m: &usize| *m,
            max: 100,
        };
        let (tx, mut rx) = weighed_channel::<usize>(10, weigher);
        assert_eq!(tx.try_send(500), Ok(()), "alone it fits, however large");
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(rx.recv().await, Some(500));
        assert_eq!(tx.try_send(60), Ok(()));
        assert_eq!(tx.try_send(40), Ok(()));
        assert_eq!(tx.try_send(1), Err(TrySendError::Full(1)));
        assert_eq!(rx.recv().await, Some(60));
        assert_eq!(tx.try_send(50), Ok(()));
        assert_eq!(rx.shared.lock().weight, 90);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_senders_on_other_threads_lose_nothing() {
        let (tx, mut rx) = channel::<(u32, u32)>(16);
        let mut tasks = Vec::new();
        for s in 0..4 {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..2000 {
                    tx.send((s, i)).await.unwrap();
                }
            }));
        }
        drop(tx);
        let mut next = [0u32; 4];
        while let Some((s, i)) = rx.recv().await {
            assert_eq!(next[s as usize], i, "order per sender");
            next[s as usize] += 1;
        }
        assert_eq!(next, [2000; 4]);
        for t in tasks {
            t.await.unwrap();
        }
    }
}
