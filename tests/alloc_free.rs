//! Encoding a request into a warm [`MsgBuf`] performs no heap allocation.
//!
//! A counting global allocator wraps the system allocator and counts, per thread, every
//! `alloc`, `alloc_zeroed` and `realloc`. Counting per thread keeps the test harness's
//! other threads (tests run in parallel) out of the measurement. Each request is built
//! outside the measured section, encoded once to warm the buffer, then encoded again while
//! counting; the count must be exactly 0.
//!
//! None of these tests touch the kernel: `Netns::current()` only opens a file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use netplumb::addr::Addr;
use netplumb::link::{Bridge, LinkDel, LinkSet, Veth, Vxlan};
use netplumb::route::Route;
use netplumb::wire::MsgBuf;
use netplumb::{Netns, Request};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the thread's slot may be gone while the thread is being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call unchanged to `System`; counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: `ptr` was allocated by this allocator, hence by `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, hence by `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations this thread made while running `f`.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// Encodes `req` once into `buf` to warm it, then counts the allocations of a second
/// encode (after `clear`, as a caller reusing the buffer does).
fn warm_encode_allocations(req: &impl Request, buf: &mut MsgBuf) -> usize {
    buf.clear();
    req.encode(buf, 1);
    let len = buf.len();
    assert!(len > 0);
    let n = allocations(|| {
        buf.clear();
        black_box(req).encode(black_box(&mut *buf), black_box(2));
        black_box(buf.as_bytes());
    });
    assert_eq!(buf.len(), len, "the second encode wrote a different size");
    n
}

/// Asserts that encoding `req` into a warm buffer allocates nothing, starting from a
/// buffer that is empty and has no capacity (so that warming really is what counts).
#[track_caller]
fn assert_alloc_free(req: &impl Request) {
    let mut buf = MsgBuf::with_capacity(0);
    assert_eq!(
        warm_encode_allocations(req, &mut buf),
        0,
        "`{req}` allocated on a warm buffer"
    );
}

#[test]
fn the_counter_counts() {
    // Without this, a broken counter would make every other test pass.
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(1);
        black_box(&v);
    });
    assert_eq!(n, 1);
    let n = allocations(|| {
        black_box(Box::new(black_box(7u64)));
        black_box(Box::new(black_box(8u64)));
    });
    assert_eq!(n, 2);
}

#[test]
fn the_first_encode_into_an_empty_buffer_allocates() {
    // The buffer does grow when it is cold: the measurement sees allocations when they
    // happen in `encode`.
    let req = Bridge::new("br0");
    let mut buf = MsgBuf::with_capacity(0);
    let n = allocations(|| req.encode(&mut buf, 1));
    assert!(n >= 1, "a cold encode allocated {n} times");
}

#[test]
fn veth_create_peer_in_netns() {
    let ns = Netns::current().expect("open /proc/thread-self/ns/net");
    let req = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ns);
    assert_alloc_free(&req);
    let req = Veth::new("veth1")
        .mtu(1450)
        .mac([2, 0x42, 0xac, 0x11, 0, 2])
        .up()
        .peer("eth0")
        .peer_mtu(1450)
        .peer_mac([2, 0x42, 0xac, 0x11, 0, 3])
        .peer_netns(4242u32);
    assert_alloc_free(&req);
}

#[test]
fn bridge_create() {
    assert_alloc_free(&Bridge::new("br0"));
    assert_alloc_free(
        &Bridge::new("docker0")
            .mtu(1500)
            .stp(true)
            .forward_delay(1500)
            .vlan_filtering(true)
            .up(),
    );
}

#[test]
fn vxlan_create() {
    let req = Vxlan::new("vxlan0", 4096)
        .remote("192.0.2.2".parse().unwrap())
        .local("192.0.2.1".parse().unwrap())
        .port(4789)
        .learning(false)
        .dev(3)
        .ttl(64);
    assert_alloc_free(&req);
}

#[test]
fn link_set_up() {
    assert_alloc_free(&LinkSet::new(7).up());
    assert_alloc_free(&LinkSet::new("eth0").up());
}

#[test]
fn link_set_controller() {
    assert_alloc_free(&LinkSet::new(7).controller(3));
    assert_alloc_free(&LinkSet::new(7).no_controller());
}

#[test]
fn link_set_netns() {
    let ns = Netns::current().expect("open /proc/thread-self/ns/net");
    assert_alloc_free(&LinkSet::new(7).netns(&ns).name("eth0"));
}

#[test]
fn addr_add() {
    assert_alloc_free(&Addr::new(5, "172.17.0.2/16".parse().unwrap()));
    assert_alloc_free(&Addr::new(5, "2001:db8::2/64".parse().unwrap()).nodad());
    assert_alloc_free(
        &Addr::new(5, "10.0.0.1/32".parse().unwrap()).peer("10.0.0.2".parse().unwrap()),
    );
}

#[test]
fn route_add() {
    assert_alloc_free(
        &Route::default_v4()
            .via("172.17.0.1".parse().unwrap())
            .dev(7),
    );
    assert_alloc_free(&Route::default_v6().via("fe80::1".parse().unwrap()).dev(7));
    assert_alloc_free(
        &Route::new("10.1.0.0/16".parse().unwrap())
            .dev(7)
            .metric(100)
            .table(1000),
    );
}

#[test]
fn link_del() {
    assert_alloc_free(&LinkDel::new(7));
    assert_alloc_free(&LinkDel::new("veth0"));
    assert_alloc_free(&LinkDel::group(0x6e70_0001));
}

#[test]
fn batch_into_warm_buffer() {
    // A batch of mixed requests, appended one after another, once the buffer has held it.
    let ns = Netns::current().expect("open /proc/thread-self/ns/net");
    let veth = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ns);
    let up = LinkSet::new(7).controller(3).up();
    let addr = Addr::new(5, "172.17.0.2/16".parse().unwrap());
    let route = Route::default_v4().via("172.17.0.1".parse().unwrap());
    let del = LinkDel::new(7);
    let mut buf = MsgBuf::with_capacity(0);
    let encode_all = |buf: &mut MsgBuf| {
        buf.clear();
        for (seq, req) in [&veth as &dyn Request, &up, &addr, &route, &del]
            .into_iter()
            .enumerate()
        {
            req.encode(buf, seq as u32);
        }
    };
    encode_all(&mut buf);
    assert_eq!(allocations(|| encode_all(black_box(&mut buf))), 0);
}
