//! What the C ABI costs: a retained `amap_get` + `amap_value_release`, and a
//! read-section `amap_read_get`, called through the exported `extern "C"` functions,
//! against the same retained `get` and pinned `get` on the Rust API, in one process,
//! single-threaded, over the same 100,000 eight-byte keys in the same random order.
//! The four loops take turns for 9 rounds (so that drift on a shared machine hits
//! them alike); each figure is the best round.
//!
//! ```text
//! cargo run --release -p atomic-map-ffi --example ffi_overhead [-- --ops N]
//! ```

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use amap::*;
use atomic_map::AtomicMap;

const KEYS: usize = 100_000;
const SECTION: usize = 64; // gets per read section, for both sides

/// Nanoseconds per operation of one run of `f` (which performs `ops` operations).
fn time_per_op(ops: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / ops as f64
}

fn main() {
    let mut ops = 2_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => ops = args.next().and_then(|v| v.parse().ok()).expect("--ops N"),
            _ => {
                eprintln!("usage: ffi_overhead [--ops N]");
                std::process::exit(2);
            }
        }
    }
    let keys: Vec<[u8; 8]> = (0..KEYS as u64).map(u64::to_le_bytes).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let order: Vec<usize> = (0..ops)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % KEYS as u64) as usize
        })
        .collect();

    let rust: AtomicMap<Box<[u8]>, usize> = AtomicMap::new();
    let c = amap_new();
    assert!(!c.is_null());
    for (i, k) in keys.iter().enumerate() {
        rust.insert(Box::from(&k[..]), i);
        // SAFETY: valid map and key; the data is an integer, with no destructor.
        let s = unsafe {
            amap_insert(
                c,
                k.as_ptr(),
                k.len(),
                i as *mut c_void,
                None,
                ptr::null_mut(),
            )
        };
        assert_eq!(s, amap_status_t::AMAP_OK);
    }

    // The C ABI is called through function pointers the optimiser cannot see through,
    // as a C caller calls it: no inlining of the exported functions into this loop,
    // even when the library is built with link-time optimisation.
    type GetFn = unsafe extern "C" fn(
        *const amap_t,
        *const u8,
        usize,
        *mut *mut amap_value_t,
    ) -> amap_status_t;
    type ValueFn<T> = unsafe extern "C" fn(*const amap_value_t) -> T;
    type BeginFn = unsafe extern "C" fn(*const amap_t, *mut *mut amap_read_t) -> amap_status_t;
    type ReadGetFn = unsafe extern "C" fn(
        *const amap_read_t,
        *const u8,
        usize,
        *mut *mut c_void,
    ) -> amap_status_t;
    type EndFn = unsafe extern "C" fn(*mut amap_read_t);
    let get: GetFn = black_box(amap_get);
    let value_data: ValueFn<*mut c_void> = black_box(amap_value_data);
    let value_release: ValueFn<amap_status_t> = black_box(amap_value_release);
    let read_begin: BeginFn = black_box(amap_read_begin);
    let read_get: ReadGetFn = black_box(amap_read_get);
    let read_end: EndFn = black_box(amap_read_end);

    let mut rust_get = || {
        for &i in &order {
            black_box(*rust.get(&keys[i][..]).unwrap());
        }
    };
    let mut c_get = || {
        for &i in &order {
            let mut v = ptr::null_mut();
            // SAFETY: valid map, key and out-pointer; the value is released once.
            unsafe {
                get(c, keys[i].as_ptr(), 8, &mut v);
                black_box(value_data(v));
                value_release(v);
            }
        }
    };
    let mut c_read = || {
        for chunk in order.chunks(SECTION) {
            let mut read = ptr::null_mut();
            // SAFETY: valid map and out-pointers; the section is ended on this thread.
            unsafe {
                read_begin(c, &mut read);
                for &i in chunk {
                    let mut data = ptr::null_mut();
                    read_get(read, keys[i].as_ptr(), 8, &mut data);
                    black_box(data);
                }
                read_end(read);
            }
        }
    };
    let mut rust_pinned = || {
        for chunk in order.chunks(SECTION) {
            let guard = rust.pin();
            for &i in chunk {
                black_box(guard.get(&keys[i][..]).copied()); // reads the value, as C must
            }
        }
    };
    let mut best = [f64::INFINITY; 4];
    for _ in 0..9 {
        let loops: [&mut dyn FnMut(); 4] =
            [&mut rust_get, &mut c_get, &mut rust_pinned, &mut c_read];
        for (b, f) in best.iter_mut().zip(loops) {
            *b = b.min(time_per_op(ops, f));
        }
    }
    let [rust_get, c_get, rust_pinned, c_read] = best;
    // SAFETY: the map from amap_new, freed once.
    unsafe { amap_free(c) };

    println!(
        "{ops} gets over {KEYS} keys, single thread, best of 9 alternating rounds (ns per get)"
    );
    println!(
        "retained get + release: Rust {rust_get:.1}, C ABI {c_get:.1}  (C / Rust = {:.2}x)",
        c_get / rust_get
    );
    println!(
        "read-section get ({SECTION} per section): Rust {rust_pinned:.1}, C ABI {c_read:.1}  (C / Rust = {:.2}x)",
        c_read / rust_pinned
    );
}
