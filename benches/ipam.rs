//! IPAM benchmark (being written).

fn main() {}
