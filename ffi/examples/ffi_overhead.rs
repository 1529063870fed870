//! What the C ABI costs: a retained `amap_get` + `amap_value_release`, a
//! read-section `amap_read_get`, and a one-call `amap_get_with` (and, for
//! comparison, a read section begun and ended around each get), called through the
//! exported `extern "C"` functions, against the same retained `get` and pinned `get`
//! (one pin per get for the last two) on the Rust API, in one process,
//! single-threaded, over the same 100,000 eight-byte keys (`--keys`) in the same
//! random order; and `amap_clear_async` (without a ticket, and with one, freed) against
//! `AtomicMap::clear_async` (its `Retired` dropped), each clear timed on its own on a
//! 16-entry map refilled between clears, `--clears` of each, taking turns. First it
//! prints what each map's fill added to the process's resident memory, per entry.
//!
//! The C ABI is measured twice: the exported functions linked into this program
//! (the code of `libamap.a`, which a C program links statically) and the same
//! functions from `libamap.so`, loaded with `dlopen` (as a C program linked
//! dynamically calls them). Both are called through function pointers the
//! optimiser cannot see through, as C calls them.
//!
//! The loops take turns for `--rounds` rounds; each round runs every pair (Rust,
//! C ABI) back to back, in alternating order, and its ratio is taken from that pair,
//! so that a slow phase of a shared machine hits both sides of a ratio alike. The
//! figures printed are the median ratio over the rounds, its range, and the best
//! round of each loop in nanoseconds.
//!
//! ```text
//! cargo run --release -p atomic-map-ffi --example ffi_overhead [-- --ops N --keys K --rounds R --clears C --library PATH]
//! ```
//!
//! `--library` defaults to the `libamap.so` built with this example
//! (`target/release/deps/`).

use std::ffi::{CStr, CString, c_void};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Instant;

use amap::*;
use atomic_map::AtomicMap;
use smallvec::SmallVec;

const SECTION: usize = 64; // gets per read section, for both sides
const SMALL: usize = 16; // entries of the maps the clears empty

/// `amap_get_with`'s callback in the loop above: keeps the data it is lent in
/// `*user` (a `*mut c_void`), as a C caller reading one field would.
unsafe extern "C" fn keep_data(data: *mut c_void, user: *mut c_void) {
    // SAFETY: `user` is the loop's `&mut data`, live for the call.
    unsafe { *user.cast::<*mut c_void>() = data };
}

/// The Rust map's value: three words, as the C ABI's (`data`, `dtor`, `ctx`), so
/// that both maps' value cells are the same size and the two loops walk the same
/// number of cache lines and pages (with a one-word value, the Rust map's cells
/// were smaller and its loops faster over 100,000 keys for that reason alone);
/// the loops read its first word, as C reads `data`.
type RustValue = [usize; 3];

/// The Rust map's key: bytes kept in the key up to 16 and on the heap above, as
/// the C ABI keeps its keys (`ffi/src/key.rs`), so that both maps' cells hold
/// their keys alike. (With `Box<[u8]>` keys, which the C ABI used until
/// 2026-12-06, every get of either map read one more line, the key's own
/// allocation.)
type RustKey = SmallVec<[u8; 16]>;

/// A key as the Rust loops pass it: through `black_box`, so that the compiler
/// does not see its length (8) and compares it with `bcmp`, as the library must
/// for a C caller's key (whose length comes at run time), and for any Rust
/// caller's whose keys are not arrays of a fixed size. Where the compiler sees
/// the length (`&keys[i][..]` in place of this call), it inlines the compare of
/// 8 bytes into the Rust loops, which then read 1,000 cached keys about a third
/// faster than any caller of the C ABI can (`docs/C-API.md`, "What the C ABI
/// costs").
#[inline(always)]
fn rust_key(key: &[u8; 8]) -> &[u8] {
    black_box(&key[..])
}

/// The process's resident memory, in bytes (`/proc/self/statm`), or 0 where it
/// cannot be read.
fn resident_bytes() -> usize {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}

/// Nanoseconds per operation of one run of `f` (which performs `ops` operations).
fn time_per_op(ops: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / ops as f64
}

fn main() {
    let mut ops = 100_000usize;
    let mut key_count = 100_000usize;
    let mut rounds = 101usize;
    let mut clears = 4001usize;
    let mut library = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut count = |name| {
            args.next()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage(name))
        };
        match a.as_str() {
            "--ops" => ops = count("--ops"),
            "--keys" => key_count = count("--keys"),
            "--rounds" => rounds = count("--rounds"),
            "--clears" => clears = count("--clears"),
            "--library" => library = Some(PathBuf::from(args.next().unwrap_or_else(|| usage(&a)))),
            _ => usage(&a),
        }
    }
    let library = library.unwrap_or_else(built_library);
    let keys: Vec<[u8; 8]> = (0..key_count as u64).map(u64::to_le_bytes).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let order: Vec<usize> = (0..ops)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % key_count as u64) as usize
        })
        .collect();

    let before = resident_bytes();
    let rust: AtomicMap<RustKey, RustValue> = AtomicMap::new();
    for (i, k) in keys.iter().enumerate() {
        rust.insert(RustKey::from_slice(k), [i, 0, 0]);
    }
    let per_entry = |bytes: usize| bytes as f64 / key_count as f64;
    print!(
        "memory a fill added (resident, bytes per entry): Rust map {:.1}",
        per_entry(resident_bytes().saturating_sub(before))
    );
    for abi in [CAbi::linked(), CAbi::load(&library)] {
        let before = resident_bytes();
        let c = abi.filled_map(&keys);
        print!(
            ", C ABI map ({}) {:.1}",
            abi.origin,
            per_entry(resident_bytes().saturating_sub(before))
        );
        // SAFETY: the map from this library's amap_new, freed once.
        unsafe { (abi.free)(c) };
    }
    println!();
    let mut rust_get = || {
        for &i in &order {
            black_box(rust.get(rust_key(&keys[i])).unwrap()[0]);
        }
    };
    let mut rust_pin_each = || {
        for &i in &order {
            black_box(rust.pin().get_borrowed(rust_key(&keys[i])).map(|v| v[0]));
        }
    };
    let mut rust_pinned = || {
        for chunk in order.chunks(SECTION) {
            let guard = rust.pin();
            for &i in chunk {
                black_box(guard.get_borrowed(rust_key(&keys[i])).map(|v| v[0])); // reads the value, as C must
            }
        }
    };

    println!(
        "{ops} gets per loop over {key_count} keys, single thread, {rounds} rounds of paired loops \
         (the Rust loops' key length hidden from the compiler, as C's)"
    );
    for abi in [CAbi::linked(), CAbi::load(&library)] {
        let c = abi.filled_map(&keys);
        let mut c_get = || {
            for &i in &order {
                let mut v = ptr::null_mut();
                // SAFETY: valid map, key and out-pointer; the value is released once.
                unsafe {
                    (abi.get)(c, keys[i].as_ptr(), 8, &mut v);
                    black_box((abi.value_data)(v));
                    (abi.value_release)(v);
                }
            }
        };
        let mut c_read = || {
            for chunk in order.chunks(SECTION) {
                let mut read = ptr::null_mut();
                // SAFETY: valid map and out-pointers; the section is ended on this thread.
                unsafe {
                    (abi.read_begin)(c, &mut read);
                    for &i in chunk {
                        let mut data = ptr::null_mut();
                        (abi.read_get)(read, keys[i].as_ptr(), 8, &mut data);
                        black_box(data);
                    }
                    (abi.read_end)(read);
                }
            }
        };
        let mut c_get_with = || {
            for &i in &order {
                let mut data: *mut c_void = ptr::null_mut();
                // SAFETY: valid map, key and callback, whose `user` is `data`.
                unsafe {
                    (abi.get_with)(
                        c,
                        keys[i].as_ptr(),
                        8,
                        Some(keep_data),
                        (&raw mut data).cast(),
                    );
                }
                black_box(data);
            }
        };
        let mut c_read_each = || {
            for &i in &order {
                let mut read = ptr::null_mut();
                let mut data = ptr::null_mut();
                // SAFETY: valid map and out-pointers; the section is ended on this thread.
                unsafe {
                    (abi.read_begin)(c, &mut read);
                    (abi.read_get)(read, keys[i].as_ptr(), 8, &mut data);
                    (abi.read_end)(read);
                }
                black_box(data);
            }
        };
        let retained = Pair::measure(rounds, ops, &mut rust_get, &mut c_get);
        let section = Pair::measure(rounds, ops, &mut rust_pinned, &mut c_read);
        let get_with = Pair::measure(rounds, ops, &mut rust_pin_each, &mut c_get_with);
        let read_each = Pair::measure(rounds, ops, &mut rust_pin_each, &mut c_read_each);
        // SAFETY: the map from this library's amap_new, freed once.
        unsafe { (abi.free)(c) };
        let cleared = Clears::measure(&abi, &keys[..SMALL], clears);
        println!("C ABI {}:", abi.origin);
        retained.print("  retained get + release");
        section.print(&format!("  read-section get ({SECTION} per section)"));
        get_with.print("  amap_get_with (one pin per get)");
        read_each.print("  read section per get (one pin per get)");
        cleared.print();
    }
}

/// Single clears, each timed on its own: Rust, C ABI without a ticket, C ABI with
/// a ticket (then freed), in rotating order, each on its own map of `keys.len()`
/// entries refilled (untimed) before every clear.
struct Clears {
    rust: Vec<f64>,
    c: Vec<f64>,
    c_ticket: Vec<f64>,
}

impl Clears {
    fn measure(abi: &CAbi, keys: &[[u8; 8]], clears: usize) -> Clears {
        let rust: AtomicMap<RustKey, usize> = AtomicMap::new();
        let c = abi.filled_map(&[]);
        let c_ticket = abi.filled_map(&[]);
        let mut out = Clears {
            rust: Vec::with_capacity(clears),
            c: Vec::with_capacity(clears),
            c_ticket: Vec::with_capacity(clears),
        };
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        };
        for round in 0..clears {
            for (i, k) in keys.iter().enumerate() {
                rust.insert(RustKey::from_slice(k), i);
            }
            abi.fill(c, keys);
            abi.fill(c_ticket, keys);
            for turn in 0..3 {
                match (round + turn) % 3 {
                    0 => out
                        .rust
                        .push(time(&mut || drop(black_box(rust.clear_async())))),
                    1 => out.c.push(time(&mut || {
                        // SAFETY: a live map of this library; no ticket wanted.
                        let s = unsafe { (abi.clear_async)(c, ptr::null_mut()) };
                        black_box(s);
                    })),
                    _ => out.c_ticket.push(time(&mut || {
                        let mut ticket = ptr::null_mut();
                        // SAFETY: a live map of this library and a valid out-pointer;
                        // the ticket is freed once.
                        unsafe {
                            black_box((abi.clear_async)(c_ticket, &mut ticket));
                            (abi.ticket_free)(ticket);
                        }
                    })),
                }
            }
        }
        // SAFETY: maps of this library, freed once.
        unsafe {
            (abi.free)(c);
            (abi.free)(c_ticket);
        }
        out
    }

    fn print(mut self) {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (rust, c, c_ticket) = (
            median(&mut self.rust),
            median(&mut self.c),
            median(&mut self.c_ticket),
        );
        println!(
            "  clear_async on a {SMALL}-entry map ({} clears each), median ns: Rust {rust:.0}, \
             C ABI {c:.0} ({:.2}x), C ABI with a ticket (+ amap_ticket_free) {c_ticket:.0} ({:.2}x)",
            self.rust.len(),
            c / rust,
            c_ticket / rust,
        );
    }
}

/// The `libamap.so` cargo built with this example: `target/<profile>/deps/`.
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of this program");
    // target/<profile>/examples/ffi_overhead -> target/<profile>/deps/libamap.so
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples/");
    profile_dir.join("deps").join("libamap.so")
}

type NewFn = extern "C" fn() -> *mut amap_t;
type InsertFn = unsafe extern "C" fn(
    *const amap_t,
    *const u8,
    usize,
    *mut c_void,
    amap_dtor_fn,
    *mut c_void,
) -> amap_status_t;
type FreeFn = unsafe extern "C" fn(*mut amap_t);
type GetFn =
    unsafe extern "C" fn(*const amap_t, *const u8, usize, *mut *mut amap_value_t) -> amap_status_t;
type ValueFn<T> = unsafe extern "C" fn(*const amap_value_t) -> T;
type BeginFn = unsafe extern "C" fn(*const amap_t, *mut *mut amap_read_t) -> amap_status_t;
type ReadGetFn =
    unsafe extern "C" fn(*const amap_read_t, *const u8, usize, *mut *mut c_void) -> amap_status_t;
type EndFn = unsafe extern "C" fn(*mut amap_read_t);
type GetWithFn = unsafe extern "C" fn(
    *const amap_t,
    *const u8,
    usize,
    amap_visit_fn,
    *mut c_void,
) -> amap_status_t;
type ClearFn = unsafe extern "C" fn(*const amap_t, *mut *mut amap_ticket_t) -> amap_status_t;
type TicketFreeFn = unsafe extern "C" fn(*mut amap_ticket_t);

/// The exported functions the loops call, from one copy of the library. A map
/// made by one copy must only be used with that copy's functions.
struct CAbi {
    origin: String,
    new: NewFn,
    insert: InsertFn,
    free: FreeFn,
    get: GetFn,
    value_data: ValueFn<*mut c_void>,
    value_release: ValueFn<amap_status_t>,
    read_begin: BeginFn,
    read_get: ReadGetFn,
    read_end: EndFn,
    get_with: GetWithFn,
    clear_async: ClearFn,
    ticket_free: TicketFreeFn,
}

impl CAbi {
    /// The functions linked into this program, behind `black_box` so that calls
    /// through them are not inlined (not even with link-time optimisation).
    fn linked() -> CAbi {
        CAbi {
            origin: "linked into the program (the code of libamap.a)".into(),
            new: black_box(amap_new),
            insert: black_box(amap_insert),
            free: black_box(amap_free),
            get: black_box(amap_get),
            value_data: black_box(amap_value_data),
            value_release: black_box(amap_value_release),
            read_begin: black_box(amap_read_begin),
            read_get: black_box(amap_read_get),
            read_end: black_box(amap_read_end),
            get_with: black_box(amap_get_with),
            clear_async: black_box(amap_clear_async),
            ticket_free: black_box(amap_ticket_free),
        }
    }

    /// The functions of the shared library at `path`, loaded with `dlopen`; exits
    /// with a message if it cannot be loaded. The library stays loaded until exit.
    fn load(path: &Path) -> CAbi {
        let name = CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL");
        // SAFETY: `name` is a NUL-terminated path; loading runs the library's
        // initialisers, which for libamap.so are Rust's (none of ours).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            eprintln!(
                "ffi_overhead: cannot load {}: {}",
                path.display(),
                dl_error()
            );
            eprintln!(
                "(build it with `cargo build --release -p atomic-map-ffi`, or pass --library)"
            );
            std::process::exit(1);
        }
        let symbol = |name: &CStr| {
            // SAFETY: `handle` is a live library handle and `name` NUL-terminated.
            let f = unsafe { libc::dlsym(handle, name.as_ptr()) };
            if f.is_null() {
                eprintln!(
                    "ffi_overhead: {} has no {name:?}: {}",
                    path.display(),
                    dl_error()
                );
                std::process::exit(1);
            }
            f
        };
        // SAFETY: (each transmute) the symbol is the exported function of that name,
        // whose signature in `ffi/include/amap.h` is the type it is cast to;
        // data and function pointers have the same size on the platforms dlsym serves.
        unsafe {
            CAbi {
                origin: format!("from {} (dlopen)", path.display()),
                new: std::mem::transmute::<*mut c_void, NewFn>(symbol(c"amap_new")),
                insert: std::mem::transmute::<*mut c_void, InsertFn>(symbol(c"amap_insert")),
                free: std::mem::transmute::<*mut c_void, FreeFn>(symbol(c"amap_free")),
                get: std::mem::transmute::<*mut c_void, GetFn>(symbol(c"amap_get")),
                value_data: std::mem::transmute::<*mut c_void, ValueFn<*mut c_void>>(symbol(
                    c"amap_value_data",
                )),
                value_release: std::mem::transmute::<*mut c_void, ValueFn<amap_status_t>>(symbol(
                    c"amap_value_release",
                )),
                read_begin: std::mem::transmute::<*mut c_void, BeginFn>(symbol(c"amap_read_begin")),
                read_get: std::mem::transmute::<*mut c_void, ReadGetFn>(symbol(c"amap_read_get")),
                read_end: std::mem::transmute::<*mut c_void, EndFn>(symbol(c"amap_read_end")),
                get_with: std::mem::transmute::<*mut c_void, GetWithFn>(symbol(c"amap_get_with")),
                clear_async: std::mem::transmute::<*mut c_void, ClearFn>(symbol(
                    c"amap_clear_async",
                )),
                ticket_free: std::mem::transmute::<*mut c_void, TicketFreeFn>(symbol(
                    c"amap_ticket_free",
                )),
            }
        }
    }

    /// A new map of this copy of the library, holding `keys` (data: the key's index).
    fn filled_map(&self, keys: &[[u8; 8]]) -> *mut amap_t {
        let map = (self.new)();
        assert!(!map.is_null(), "amap_new failed");
        self.fill(map, keys);
        map
    }

    /// Inserts `keys` into `map`, a live map of this copy (data: the key's index).
    fn fill(&self, map: *mut amap_t, keys: &[[u8; 8]]) {
        for (i, k) in keys.iter().enumerate() {
            // SAFETY: a live map of this library and a valid key; the data is an
            // integer, with no destructor.
            let s = unsafe {
                (self.insert)(
                    map,
                    k.as_ptr(),
                    k.len(),
                    i as *mut c_void,
                    None,
                    ptr::null_mut(),
                )
            };
            assert_eq!(s, amap_status_t::AMAP_OK);
        }
    }
}

/// The last `dlerror()` message.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message, valid until the
    // next dl* call on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        // SAFETY: as above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn usage(bad: &str) -> ! {
    eprintln!(
        "ffi_overhead: bad argument {bad:?}; usage: ffi_overhead [--ops N] [--keys K] [--rounds R] [--clears C] [--library PATH]"
    );
    std::process::exit(2);
}

/// Per-round timings of a Rust loop and its C ABI counterpart.
struct Pair {
    rust: Vec<f64>,
    c: Vec<f64>,
}

impl Pair {
    /// Runs both loops once per round, back to back, alternating which goes first.
    fn measure(rounds: usize, ops: usize, rust: &mut dyn FnMut(), c: &mut dyn FnMut()) -> Pair {
        let mut pair = Pair {
            rust: Vec::with_capacity(rounds),
            c: Vec::with_capacity(rounds),
        };
        for round in 0..rounds {
            if round % 2 == 0 {
                pair.rust.push(time_per_op(ops, rust));
                pair.c.push(time_per_op(ops, c));
            } else {
                pair.c.push(time_per_op(ops, c));
                pair.rust.push(time_per_op(ops, rust));
            }
        }
        pair
    }

    fn print(&self, what: &str) {
        let mut ratios: Vec<f64> = self.c.iter().zip(&self.rust).map(|(c, r)| c / r).collect();
        ratios.sort_by(f64::total_cmp);
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{what}: C / Rust median {:.2}x (rounds {:.2}x..{:.2}x); best ns per get: Rust {:.1}, C ABI {:.1}",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            best(&self.rust),
            best(&self.c),
        );
    }
}
