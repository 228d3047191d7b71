//! Wake-ups fanned out by run id: many waiters, each with its own
//! [`Notify`], subscribed to news about one run. The events stream and the
//! state-file watch share this bookkeeping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Subscription keys, unique in the process: a counter, not shared state
/// (no subscriber can see another's through it).
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A fresh key for one subscription.
pub fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Waiters by run id, each with its own wake-up.
pub type Subs = HashMap<String, Vec<(u64, Arc<Notify>)>>;

pub fn add(subs: &mut Subs, id: &str, key: u64, n: &Arc<Notify>) {
    subs.entry(id.to_string())
        .or_default()
        .push((key, n.clone()));
}

pub fn remove(subs: &mut Subs, id: &str, key: u64) {
    if let Some(v) = subs.get_mut(id) {
        v.retain(|(k, _)| *k != key);
        if v.is_empty() {
            subs.remove(id);
        }
    }
}

pub fn wake(subs: &Subs, id: &str) {
    for (_, n) in subs.get(id).into_iter().flatten() {
        n.notify_one();
    }
}

pub fn wake_all(subs: &Subs) {
    for (_, n) in subs.values().flatten() {
        n.notify_one();
    }
}
