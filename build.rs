fn main() {
    napi_build::setup();
    if std::env::var("CARGO_CFG_TARGET_VENDOR").as_deref() == Ok("apple") {
        // The addon's install name is otherwise the absolute path of the
        // build folder, which would ship in the `.node`.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/liblight_runner.dylib");
        // The `libc` crate asks for libiconv on every Apple target; nothing
        // here uses it: link only the dylibs whose symbols are used
        // (libSystem), as a check in `npm run test:platforms` requires.
        println!("cargo:rustc-link-arg=-Wl,-dead_strip_dylibs");
    }
}
