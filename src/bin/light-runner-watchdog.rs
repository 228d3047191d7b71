//! The watchdog process of attached runs (see `watchdog.rs`): a few MiB of
//! native code instead of a second Node process. Argument: the host's pid.

fn main() {
    let parent = std::env::args().nth(1).and_then(|p| p.parse().ok());
    let stdin = std::io::BufReader::new(std::io::stdin());
    light_runner::watchdog::serve(stdin, parent);
}
