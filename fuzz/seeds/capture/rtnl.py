# Dumps links, addresses, routes, neighbours and FDB entries, an extended-ACK error, an
# ACK and an RTM_NEWNSID reply of the current network namespace, one file per datagram,
# into the directory given. Run by capture.sh inside a throwaway namespace.
import socket, struct, sys, os
out = sys.argv[1]
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.setsockopt(270, 11, 1)  # NETLINK_EXT_ACK
s.bind((0, 0))
seq = [0]
def req(ty, flags, payload):
    seq[0] += 1
    return struct.pack('=IHHII', 16 + len(payload), ty, flags, seq[0], 0) + payload
def recv_all(name):
    n = 0
    while True:
        d = s.recv(65536)
        n += 1
        open(os.path.join(out, f'{name}_{n}'), 'wb').write(d[:4096])
        at = 0
        while at + 16 <= len(d):
            ln, ty = struct.unpack_from('=IH', d, at)
            if ty in (2, 3) or ln < 16:
                return
            at += (ln + 3) & ~3
        if n > 20:
            return
DUMP = 0x301
s.send(req(18, DUMP, struct.pack('=BxHiII', 0, 0, 0, 0, 0))); recv_all('links')
s.send(req(22, DUMP, struct.pack('=BBBBI', 0, 0, 0, 0, 0))); recv_all('addrs')
for fam in (2, 10):
    s.send(req(26, DUMP, struct.pack('=BBBBBBBBI', fam, 0, 0, 0, 0, 0, 0, 0, 0))); recv_all(f'routes{fam}')
s.send(req(30, DUMP, struct.pack('=BxxxiHBB', 0, 0, 0, 0, 0))); recv_all('neigh')
s.send(req(30, DUMP, struct.pack('=BxxxiHBB', 7, 0, 0, 0, 0))); recv_all('fdb')
# An error with an extended ACK: a link of an unknown kind.
kind = b'nosuchkind\0'
info = struct.pack('=HH', 4 + len(kind), 1) + kind + b'\0' * ((4 - len(kind) % 4) % 4)
linkinfo = struct.pack('=HH', 4 + len(info), 18) + info
s.send(req(16, 0x605, struct.pack('=BxHiII', 0, 0, 0, 0, 0) + linkinfo)); recv_all('error')
# An ACK for a harmless change (lo up).
s.send(req(16, 0x5, struct.pack('=BxHiII', 0, 0, 1, 1, 1))); recv_all('ack')
# RTM_GETNSID on our own namespace fd.
fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
s.send(req(90, 0x5, struct.pack('=Bxxx', 0) + struct.pack('=HHI', 8, 3, fd))); recv_all('nsid')
