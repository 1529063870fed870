//! Gives the shared library its SONAME, `libamap.so.MAJOR` (MAJOR from this crate's
//! version, which is the C library's version: docs/C-API.md, "Versions"). A program
//! linked with `-lamap` then records `libamap.so.0`, not `libamap.so`, and keeps
//! working when a compatible `libamap.so.0.x.y` replaces the one it was linked with.
//! `make -C ffi install` installs `libamap.so.MAJOR.MINOR.PATCH` and both symlinks.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF systems whose linkers take GNU ld's `-soname` (the list cargo-c uses,
    // without Android, where libraries are not versioned). Only Linux is tested.
    let elf = matches!(
        os.as_str(),
        "linux" | "freebsd" | "dragonfly" | "netbsd" | "openbsd" | "illumos" | "hurd"
    );
    if elf {
        let major = env!("CARGO_PKG_VERSION_MAJOR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libamap.so.{major}");
    }
}
