//! `ehub`: the Event Hubs command-line tool.

fn main() {}
