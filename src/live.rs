//! The runs this process drives (launched or attached), by id, so every
//! handle on one id shares one driver, and so maintenance never reaps a run
//! this process is still setting up or watching.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::execution::Execution;

static LIVE: Mutex<Option<HashMap<String, Execution>>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut HashMap<String, Execution>) -> T) -> T {
    let mut guard = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

pub fn get(id: &str) -> Option<Execution> {
    with(|m| m.get(id).cloned())
}

pub fn insert(exec: &Execution) {
    with(|m| m.insert(exec.id().to_string(), exec.clone()));
}

pub fn remove(id: &str) {
    with(|m| m.remove(id));
}

/// Ids this process is setting up or watching.
pub fn ids() -> Vec<String> {
    with(|m| m.keys().cloned().collect())
}
