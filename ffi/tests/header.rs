//! The committed C header must be what cbindgen generates from the sources now.
//! Regenerate it with `AMAP_BLESS=1 cargo test -p atomic-map-ffi --test header`.

use std::fs;
use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed to generate the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let path = crate_dir.join("include/amap.h");
    if std::env::var_os("AMAP_BLESS").is_some() {
        fs::write(&path, &fresh).expect("write the header");
    }
    let committed = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/include/amap.h differs from a fresh generation: \
         run `AMAP_BLESS=1 cargo test -p atomic-map-ffi --test header` and commit it"
    );
}
