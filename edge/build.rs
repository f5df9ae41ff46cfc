//! Bakes the names under `[vars]` of `wrangler.toml` into the Worker: at run time a
//! secret and a plain var are both strings on `env`, so this is how the Worker knows
//! that an `ORIGIN_SECRET` came from `[vars]` (visible in the dashboard) and refuses it.

fn main() {
    let path = std::env::var("KILN_WRANGLER_TOML").unwrap_or_else(|_| "wrangler.toml".into());
    println!("cargo:rerun-if-changed={path}");
    println!("cargo:rerun-if-env-changed=KILN_WRANGLER_TOML");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let config: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{path} is not valid TOML: {e}"));
    let mut names: Vec<&str> = config
        .get("vars")
        .and_then(|v| v.as_table())
        .map(|vars| vars.keys().map(String::as_str).collect())
        .unwrap_or_default();
    names.sort_unstable();
    println!("cargo:rustc-env=KILN_PLAIN_VARS={}", names.join(","));
}
