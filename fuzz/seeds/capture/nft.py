# Dumps the nf_tables tables, rules and port-map elements of table `netplumb` (IPv4 and
# IPv6), one file per datagram, into the directory given. Run by capture.sh inside a
# throwaway namespace after `nft -f rules.nft`.
import socket, struct, sys, os
out = sys.argv[1]
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
s.bind((0, 0))
seq = [0]
def attr(ty, val):
    a = struct.pack('=HH', 4 + len(val), ty) + val
    return a + b'\0' * ((4 - len(a) % 4) % 4)
def req(msg, fam, attrs):
    seq[0] += 1
    payload = struct.pack('=BBH', fam, 0, 0) + attrs
    return struct.pack('=IHHII', 16 + len(payload), (10 << 8) | msg, 0x301, seq[0], 0) + payload
def recv_all(name):
    n = 0
    while n < 20:
        d = s.recv(65536)
        n += 1
        open(os.path.join(out, f'{name}_{n}'), 'wb').write(d[:8192])
        at = 0
        while at + 16 <= len(d):
            ln, ty = struct.unpack_from('=IH', d, at)
            if ty in (2, 3) or ln < 16:
                return
            at += (ln + 3) & ~3
for fam in (2, 10):
    s.send(req(1, fam, b'')); recv_all(f'tables{fam}')
    s.send(req(7, fam, attr(1, b'netplumb\0'))); recv_all(f'rules{fam}')
    for st in (b'ports\0', b'ports_any\0'):
        s.send(req(13, fam, attr(1, b'netplumb\0') + attr(2, st))); recv_all(f'elems{fam}_{st[:-1].decode()}')
