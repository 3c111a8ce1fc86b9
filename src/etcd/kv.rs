//! Keys, values and transactions: the public types of the KV calls, and how they look as
//! the gateway's JSON (keys and values in base64, 64-bit integers as strings, fields at
//! their zero value left out).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// A key with its value and metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty in a delete event).
    pub value: Vec<u8>,
    /// The revision of the transaction that created the key.
    pub create_revision: i64,
    /// The revision of the last change to the key.
    pub mod_revision: i64,
    /// How many times the key was written since it was created (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

impl KeyValue {
    /// The key as text, if it is UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// What a range read returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The keys found, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store's revision the read saw.
    pub revision: i64,
    /// Whether more keys matched than the limit let through.
    pub more: bool,
    /// How many keys matched in all.
    pub count: i64,
}

/// How a [`Compare`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`.
    Equal,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `<`.
    Less,
}

impl CmpOp {
    fn wire(self) -> &'static str {
        match self {
            CmpOp::Equal => "EQUAL",
            CmpOp::NotEqual => "NOT_EQUAL",
            CmpOp::Greater => "GREATER",
            CmpOp::Less => "LESS",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Vec<u8>),
}

/// One condition of a [`TxnRequest`]. A missing key has version, create revision and mod
/// revision 0 (so `Compare::create_revision(k, CmpOp::Equal, 0)` means "k does not
/// exist"), and no value: a value comparison on a missing key is false.
///
/// ```
/// use netplumb::etcd::{CmpOp, Compare};
/// let absent = Compare::create_revision("/lock", CmpOp::Equal, 0);
/// let unchanged = Compare::mod_revision("/cfg", CmpOp::Equal, 42);
/// let none_newer = Compare::mod_revision("/jobs/", CmpOp::Less, 43).range_end(b"/jobs0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Compare {
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    op: CmpOp,
    target: Target,
}

impl Compare {
    fn new(key: impl AsRef<[u8]>, op: CmpOp, target: Target) -> Self {
        Compare {
            key: key.as_ref().to_vec(),
            range_end: None,
            op,
            target,
        }
    }

    /// Compares the key's version (number of writes since creation).
    pub fn version(key: impl AsRef<[u8]>, op: CmpOp, version: i64) -> Self {
        Compare::new(key, op, Target::Version(version))
    }

    /// Compares the revision that created the key.
    pub fn create_revision(key: impl AsRef<[u8]>, op: CmpOp, revision: i64) -> Self {
        Compare::new(key, op, Target::Create(revision))
    }

    /// Compares the revision of the key's last change.
    pub fn mod_revision(key: impl AsRef<[u8]>, op: CmpOp, revision: i64) -> Self {
        Compare::new(key, op, Target::Mod(revision))
    }

    /// Compares the key's value.
    pub fn value(key: impl AsRef<[u8]>, op: CmpOp, value: impl AsRef<[u8]>) -> Self {
        Compare::new(key, op, Target::Value(value.as_ref().to_vec()))
    }

    /// Applies the comparison to every key in `key..range_end` instead of one key.
    pub fn range_end(mut self, range_end: impl AsRef<[u8]>) -> Self {
        self.range_end = Some(range_end.as_ref().to_vec());
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("key".into(), b64(&self.key).into());
        if let Some(end) = &self.range_end {
            m.insert("range_end".into(), b64(end).into());
        }
        m.insert("result".into(), self.op.wire().into());
        let (target, field, v): (&str, &str, Value) = match &self.target {
            Target::Version(n) => ("VERSION", "version", n.to_string().into()),
            Target::Create(n) => ("CREATE", "create_revision", n.to_string().into()),
            Target::Mod(n) => ("MOD", "mod_revision", n.to_string().into()),
            Target::Value(v) => ("VALUE", "value", b64(v).into()),
        };
        m.insert("target".into(), target.into());
        m.insert(field.into(), v);
        Value::Object(m)
    }
}

/// One operation of a [`TxnRequest`] branch.
///
/// ```
/// use netplumb::etcd::TxnOp;
/// let ops = [
///     TxnOp::put("/a", "1", None),
///     TxnOp::delete("/b"),
///     TxnOp::range("/c/", Some(b"/c0"), 0),
/// ];
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct TxnOp(OpKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpKind {
    Put(Vec<u8>, Vec<u8>, Option<i64>),
    Delete(Vec<u8>, Option<Vec<u8>>),
    Range(Vec<u8>, Option<Vec<u8>>, i64),
}

impl TxnOp {
    /// Writes `value` at `key`, attached to `lease` if given.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, lease: Option<i64>) -> Self {
        TxnOp(OpKind::Put(
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
            lease,
        ))
    }

    /// Deletes `key`.
    pub fn delete(key: impl AsRef<[u8]>) -> Self {
        TxnOp(OpKind::Delete(key.as_ref().to_vec(), None))
    }

    /// Deletes every key in `key..range_end` (see [`super::prefix_end`]).
    pub fn delete_range(key: impl AsRef<[u8]>, range_end: impl AsRef<[u8]>) -> Self {
        TxnOp(OpKind::Delete(
            key.as_ref().to_vec(),
            Some(range_end.as_ref().to_vec()),
        ))
    }

    /// Reads `key`, or every key in `key..range_end`, at most `limit` of them (0: all).
    pub fn range(key: impl AsRef<[u8]>, range_end: Option<&[u8]>, limit: i64) -> Self {
        TxnOp(OpKind::Range(
            key.as_ref().to_vec(),
            range_end.map(<[u8]>::to_vec),
            limit,
        ))
    }

    fn to_json(&self) -> Value {
        match &self.0 {
            OpKind::Put(k, v, lease) => json!({ "request_put": put_json(k, v, *lease) }),
            OpKind::Delete(k, end) => {
                json!({ "request_delete_range": range_json(k, end.as_deref(), 0, 0) })
            }
            OpKind::Range(k, end, limit) => {
                json!({ "request_range": range_json(k, end.as_deref(), *limit, 0) })
            }
        }
    }
}

/// An etcd transaction request (`etcdctl txn`, etcd's `TxnRequest`): if every comparison
/// holds, the `then` operations run, otherwise the `otherwise` ones, all at one revision
/// ([`super::Etcd::txn`]). Not to be confused with the undo journal,
/// [`crate::journal::Txn`].
///
/// ```
/// use netplumb::etcd::{CmpOp, Compare, TxnRequest, TxnOp};
/// // Create /leader only if nobody holds it.
/// let txn = TxnRequest::new()
///     .when(Compare::create_revision("/leader", CmpOp::Equal, 0))
///     .then(TxnOp::put("/leader", "host-a", None))
///     .otherwise(TxnOp::range("/leader", None, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
#[doc(alias = "Txn")]
pub struct TxnRequest {
    compares: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl TxnRequest {
    /// A transaction with no comparisons (it always succeeds) and no operations.
    pub fn new() -> Self {
        TxnRequest::default()
    }

    /// Adds a comparison; all of them must hold.
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    /// Adds an operation run when every comparison holds.
    pub fn then(mut self, op: TxnOp) -> Self {
        self.success.push(op);
        self
    }

    /// Adds an operation run when a comparison fails.
    pub fn otherwise(mut self, op: TxnOp) -> Self {
        self.failure.push(op);
        self
    }

    /// The number of comparisons and the number of operations in the larger branch
    /// (etcd refuses transactions above `--max-txn-ops`, 128 by default, in either).
    pub fn size(&self) -> (usize, usize) {
        (
            self.compares.len(),
            self.success.len().max(self.failure.len()),
        )
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "compare": self.compares.iter().map(Compare::to_json).collect::<Vec<_>>(),
            "success": self.success.iter().map(TxnOp::to_json).collect::<Vec<_>>(),
            "failure": self.failure.iter().map(TxnOp::to_json).collect::<Vec<_>>(),
        })
    }
}

/// What a [`TxnRequest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every comparison held (so the `then` branch ran).
    pub succeeded: bool,
    /// The store's revision after the transaction.
    pub revision: i64,
    /// One response per operation of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

/// What one operation of a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// A [`TxnOp::range`].
    Range(RangeResponse),
    /// A [`TxnOp::put`].
    Put {
        /// The revision of the write.
        revision: i64,
    },
    /// A [`TxnOp::delete`] or [`TxnOp::delete_range`].
    Delete {
        /// How many keys were deleted.
        deleted: i64,
    },
}

// ---- JSON building ----

pub(super) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(super) fn put_json(key: &[u8], value: &[u8], lease: Option<i64>) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key).into());
    m.insert("value".into(), b64(value).into());
    if let Some(l) = lease {
        m.insert("lease".into(), l.to_string().into());
    }
    Value::Object(m)
}

/// A range or delete-range request; `limit` and `revision` 0 are left out.
pub(super) fn range_json(key: &[u8], end: Option<&[u8]>, limit: i64, revision: i64) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key).into());
    if let Some(e) = end {
        m.insert("range_end".into(), b64(e).into());
    }
    if limit != 0 {
        m.insert("limit".into(), limit.to_string().into());
    }
    if revision != 0 {
        m.insert("revision".into(), revision.to_string().into());
    }
    Value::Object(m)
}

// ---- JSON reading ----

/// An int64 as the gateway writes it: a JSON string (or, leniently, a number).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct I64(pub(super) i64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = I64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer, as a string or a number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<I64, E> {
                s.parse().map(I64).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<I64, E> {
                Ok(I64(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<I64, E> {
                i64::try_from(n).map(I64).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes in base64.
#[derive(Debug, Default, Clone)]
pub(super) struct B64(pub(super) Vec<u8>);

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map(B64)
            .map_err(de::Error::custom)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Header {
    pub(super) revision: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireKv {
    key: B64,
    value: B64,
    create_revision: I64,
    mod_revision: I64,
    version: I64,
    lease: I64,
}

impl From<WireKv> for KeyValue {
    fn from(w: WireKv) -> Self {
        KeyValue {
            key: w.key.0,
            value: w.value.0,
            create_revision: w.create_revision.0,
            mod_revision: w.mod_revision.0,
            version: w.version.0,
            lease: w.lease.0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireRange {
    header: Header,
    kvs: Vec<WireKv>,
    more: bool,
    count: I64,
}

impl From<WireRange> for RangeResponse {
    fn from(w: WireRange) -> Self {
        RangeResponse {
            kvs: w.kvs.into_iter().map(KeyValue::from).collect(),
            revision: w.header.revision.0,
            more: w.more,
            count: w.count.0,
        }
    }
}

/// A put's or a delete's reply.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireWrite {
    pub(super) header: Header,
    pub(super) deleted: I64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireOpResponse {
    response_range: Option<WireRange>,
    response_put: Option<WireWrite>,
    response_delete_range: Option<WireWrite>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireTxn {
    header: Header,
    succeeded: bool,
    responses: Vec<WireOpResponse>,
}

impl TryFrom<WireTxn> for TxnResponse {
    type Error = String;
    fn try_from(w: WireTxn) -> Result<Self, String> {
        let responses = w
            .responses
            .into_iter()
            .map(|r| match r {
                WireOpResponse {
                    response_range: Some(r),
                    ..
                } => Ok(TxnOpResponse::Range(r.into())),
                WireOpResponse {
                    response_put: Some(p),
                    ..
                } => Ok(TxnOpResponse::Put {
                    revision: p.header.revision.0,
                }),
                WireOpResponse {
                    response_delete_range: Some(d),
                    ..
                } => Ok(TxnOpResponse::Delete {
                    deleted: d.deleted.0,
                }),
                _ => Err("a transaction response of no known kind".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(TxnResponse {
            succeeded: w.succeeded,
            revision: w.header.revision.0,
            responses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_json_matches_the_gateway() {
        let t = TxnRequest::new()
            .when(Compare::mod_revision("k", CmpOp::Equal, 0))
            .when(Compare::value("k", CmpOp::NotEqual, "v").range_end("l"))
            .then(TxnOp::put("k", "v", Some(7)))
            .otherwise(TxnOp::range("k", None, 1));
        assert_eq!(
            t.to_json(),
            json!({
                "compare": [
                    {"key": "aw==", "result": "EQUAL", "target": "MOD", "mod_revision": "0"},
                    {"key": "aw==", "range_end": "bA==", "result": "NOT_EQUAL",
                     "target": "VALUE", "value": "dg=="},
                ],
                "success": [{"request_put": {"key": "aw==", "value": "dg==", "lease": "7"}}],
                "failure": [{"request_range": {"key": "aw==", "limit": "1"}}],
            })
        );
        assert_eq!(t.size(), (2, 1));
    }

    #[test]
    fn replies_with_omitted_fields_parse() {
        // What etcd 3.4 sends: zero values left out, int64 as strings.
        let r: WireTxn = serde_json::from_str(
            r#"{"header":{"revision":"4"},"responses":[{"response_delete_range":
                {"header":{"revision":"4"},"deleted":"1"}},{"response_range":{"header":{},
                "kvs":[{"key":"Zm9v","mod_revision":"3"}],"count":"1"}},
                {"response_put":{"header":{"revision":"4"}}}]}"#,
        )
        .unwrap();
        let r = TxnResponse::try_from(r).unwrap();
        assert!(!r.succeeded);
        assert_eq!(r.revision, 4);
        assert_eq!(r.responses[0], TxnOpResponse::Delete { deleted: 1 });
        let TxnOpResponse::Range(rr) = &r.responses[1] else {
            panic!("{r:?}")
        };
        assert_eq!(rr.kvs[0].key, b"foo");
        assert_eq!(rr.kvs[0].value, b"");
        assert_eq!(rr.kvs[0].mod_revision, 3);
        assert_eq!(r.responses[2], TxnOpResponse::Put { revision: 4 });
        assert!(serde_json::from_str::<WireKv>(r#"{"key":"!!"}"#).is_err());
        assert!(serde_json::from_str::<WireKv>(r#"{"version":"x"}"#).is_err());
    }
}
