//! nf_tables userdata: the TLVs `nft` stores beside rules, elements and sets (a rule's or
//! element's comment; a set's `typeof` description), which the kernel keeps but never
//! reads.

use super::consts::{PayloadBase, NFPROTO_IPV6};

/// `NFTNL_UDATA_RULE_COMMENT` / `NFTNL_UDATA_SET_ELEM_COMMENT`: userdata TLV type that
/// `nft` shows as `comment "..."`.
pub const UDATA_COMMENT: u8 = 0;

/// Writes `comment` as the userdata TLV `nft` reads as a comment; returns its length.
pub fn comment_udata(comment: &[u8], out: &mut [u8; 128]) -> usize {
    let n = comment.len().min(out.len() - 3);
    out[0] = UDATA_COMMENT;
    out[1] = (n + 1) as u8;
    out[2..2 + n].copy_from_slice(&comment[..n]);
    out[2 + n] = 0;
    n + 3
}

/// Reads the comment out of userdata written by [`comment_udata`] (or by `nft`).
pub fn udata_comment(udata: &[u8]) -> Option<&[u8]> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (ty, len) = (rest[0], rest[1] as usize);
        let val = rest.get(2..2 + len)?;
        if ty == UDATA_COMMENT {
            return Some(val.split(|&c| c == 0).next().unwrap_or(val));
        }
        rest = &rest[2 + len..];
    }
    None
}

/// One field of a set key as `nft` names it after `typeof`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// `ip saddr` (`NFPROTO_IPV4`) or `ip6 saddr` (`NFPROTO_IPV6`).
    Saddr(u8),
    /// A raw payload field, offset and length in bits: `@th,96,24` is
    /// `Raw(PayloadBase::Transport, 96, 24)`.
    Raw(PayloadBase, u32, u32),
}

/// `NFTNL_UDATA_SET_KEYBYTEORDER`.
pub const UDATA_SET_KEYBYTEORDER: u8 = 0;
/// `NFTNL_UDATA_SET_KEY_TYPEOF`.
pub const UDATA_SET_KEY_TYPEOF: u8 = 3;
/// `nft`'s `EXPR_PAYLOAD` and `EXPR_CONCAT`, as its `typeof` userdata names them.
const NFT_EXPR_PAYLOAD: u32 = 7;
const NFT_EXPR_CONCAT: u32 = 13;
/// `nft`'s `BYTEORDER_BIG_ENDIAN`.
const NFT_BYTEORDER_BIG_ENDIAN: u32 = 2;

/// Userdata TLVs (type, length byte, value; integers host-endian, as libnftnl writes
/// them) in a fixed buffer; what does not fit is left out.
struct Udata<'a> {
    out: &'a mut [u8; 128],
    n: usize,
}

impl Udata<'_> {
    fn put(&mut self, ty: u8, v: &[u8]) {
        if let Some(d) = self.out.get_mut(self.n..self.n + 2 + v.len()) {
            d[0] = ty;
            d[1] = v.len() as u8;
            d[2..].copy_from_slice(v);
            self.n += 2 + v.len();
        }
    }

    fn u32(&mut self, ty: u8, v: u32) {
        self.put(ty, &v.to_ne_bytes());
    }

    fn nest(&mut self, ty: u8, inner: impl FnOnce(&mut Self)) {
        let at = self.n;
        self.put(ty, &[]);
        inner(self);
        if let Some(l) = self.out.get_mut(at + 1) {
            *l = (self.n - at - 2).min(255) as u8;
        }
    }

    /// `NFTNL_UDATA_SET_TYPEOF_{EXPR,DATA}` (or `..._KEY_CONCAT_SUB_*`: same numbers).
    fn payload(&mut self, f: &KeyField) {
        self.u32(0, NFT_EXPR_PAYLOAD);
        // NFTNL_UDATA_SET_KEY_PAYLOAD_{DESC,TYPE,BASE,OFFSET,LEN}
        self.nest(1, |u| match *f {
            KeyField::Saddr(af) => {
                // nft's PROTO_DESC_IP / IP6 and its IPHDR_SADDR / IP6HDR_SADDR
                let (desc, field) = if af == NFPROTO_IPV6 {
                    (13, 8)
                } else {
                    (12, 11)
                };
                u.u32(0, desc);
                u.u32(1, field);
            }
            KeyField::Raw(base, offset, len) => {
                u.u32(0, 0);
                u.u32(1, 0);
                u.u32(2, base as u32 + 1);
                u.u32(3, offset);
                u.u32(4, len);
            }
        });
    }
}

/// Writes the set userdata that `nft` stores for `typeof F1 . F2 ...`, so that it can
/// print keys it has no data type for; returns its length.
pub fn typeof_udata(fields: &[KeyField], out: &mut [u8; 128]) -> usize {
    let mut u = Udata { out, n: 0 };
    let order = if fields.len() == 1 {
        NFT_BYTEORDER_BIG_ENDIAN
    } else {
        0
    };
    u.u32(UDATA_SET_KEYBYTEORDER, order);
    u.nest(UDATA_SET_KEY_TYPEOF, |u| match fields {
        [one] => u.payload(one),
        _ => {
            u.u32(0, NFT_EXPR_CONCAT);
            u.nest(1, |u| {
                for (i, f) in fields.iter().enumerate() {
                    u.nest(i as u8, |u| u.payload(f));
                }
            });
        }
    });
    u.n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::nft::consts::NFPROTO_IPV4;

    /// The bytes `nft` 1.0.6 stores for `typeof @th,96,24` and
    /// `typeof ip saddr . @th,96,24` (little-endian host).
    #[cfg(target_endian = "little")]
    #[test]
    fn typeof_udata_is_what_nft_writes() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let vni = KeyField::Raw(PayloadBase::Transport, 96, 24);
        let mut out = [0u8; 128];
        let n = typeof_udata(&[vni], &mut out);
        assert_eq!(
            hex(&out[..n]),
            "0004020000000326000407000000011e00040000000001040000000002040300000003046000000004041800\
             0000"
        );
        let n = typeof_udata(&[KeyField::Saddr(NFPROTO_IPV4), vni], &mut out);
        assert_eq!(
            hex(&out[..n]),
            "000400000000034600040d000000013e0014000407000000010c00040c00000001040b00000001260004070000\
             00011e000400000000010400000000020403000000030460000000040418000000"
        );
        let n = typeof_udata(&[KeyField::Saddr(NFPROTO_IPV6), vni], &mut out);
        assert!(hex(&out[..n]).contains("0c00040d0000000104080000000126"));
    }
}
