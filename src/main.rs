//! The `switchyard` command line: runs the broker (and dashboard) or acts as a client.

fn main() {}
