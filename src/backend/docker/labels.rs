//! The labels that mark what this package created: every container and
//! volume carries the run id; reclaimers never touch anything without it.

use std::collections::HashMap;

/// Label put on every container and volume this package creates.
pub const RUN_ID_LABEL: &str = "light-runner.run-id";
/// Set on detached containers: their result belongs to a state file.
pub const DETACHED_LABEL: &str = "light-runner.detached";
/// Set on warm containers: `<hostname>:<pid>` of the process that keeps
/// them ready (reclaimers remove a dead owner's, even running).
pub const WARM_LABEL: &str = "light-runner.warm";

/// The labels of run `id`'s container and volume.
pub fn labels(id: &str, detached: bool) -> HashMap<String, String> {
    let mut l = HashMap::from([(RUN_ID_LABEL.to_string(), id.to_string())]);
    if detached {
        l.insert(DETACHED_LABEL.to_string(), "true".to_string());
    }
    l
}

/// A `label` filter for listing what this package created.
pub fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}
