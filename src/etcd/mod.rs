//! A synchronous etcd v3 client (placeholder: being written).
