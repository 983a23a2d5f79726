//! Config parsing and validation: `Config::parse` on any text.
//!
//! Invariants: no panic; every error renders; an accepted config validates again, survives a
//! YAML round trip unchanged (so what `--print-config`-style output shows is what runs), and
//! renders user names without panicking.
#![no_main]

use eks_iam_sync::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(config) => config,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    config
        .validate()
        .expect("an accepted config validates again");
    let yaml = serde_yaml_ng::to_string(&config).expect("a config serialises");
    let again = Config::parse(&yaml)
        .unwrap_or_else(|error| panic!("the serialised config is refused: {error}\n{yaml}"));
    assert_eq!(
        again, config,
        "the config changed in a YAML round trip:\n{yaml}"
    );
    let _ = config.render_username("alice", "123456789012");
});
