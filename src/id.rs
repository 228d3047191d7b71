//! Run ids: `light-runner-` + 12 lowercase hex digits. The id names the
//! run's container, volume and state file.

use rand::Rng;

pub const PREFIX: &str = "light-runner-";

pub fn new_run_id() -> String {
    let n: u64 = rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff;
    format!("{PREFIX}{n:012x}")
}

pub fn is_run_id(id: &str) -> bool {
    id.strip_prefix(PREFIX).is_some_and(|h| {
        h.len() == 12
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids() {
        for _ in 0..100 {
            let id = new_run_id();
            assert!(is_run_id(&id), "{id}");
            assert_eq!(id.len(), PREFIX.len() + 12);
        }
        assert!(!is_run_id("light-runner-XYZ"));
        assert!(!is_run_id("light-runner-0123456789AB"));
        assert!(!is_run_id("../etc/passwd"));
    }
}
