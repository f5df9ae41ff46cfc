//! Worker configuration from `wrangler.toml` vars and secrets.
//!
//! A bad or missing value never stops the Worker: it falls back to a default (or, for
//! the origin, to serving the last known good snapshot) and is logged by variable name
//! only; `/healthz` says publicly only *that* the Worker is misconfigured. Values (the
//! secret in particular) are never echoed, not even by `Debug`.

use kiln_shared::signing::DEFAULT_WINDOW_SECS;

pub const ORIGIN_URL: &str = "ORIGIN_URL";
pub const ORIGIN_SECRET: &str = "ORIGIN_SECRET";
/// Optional: a second secret accepted on origin answers and `/ingest` pushes, never used
/// to sign (a rotation in progress: `kiln secret rotate`).
pub const ORIGIN_SECRET_SECONDARY: &str = "ORIGIN_SECRET_SECONDARY";
pub const CACHE_TTL_SECS: &str = "CACHE_TTL_SECS";
pub const STALE_WHILE_REVALIDATE_SECS: &str = "STALE_WHILE_REVALIDATE_SECS";
pub const ORIGIN_TIMEOUT_MS: &str = "ORIGIN_TIMEOUT_MS";
pub const SIGNATURE_WINDOW_SECS: &str = "SIGNATURE_WINDOW_SECS";
pub const PAGE_REFRESH_SECS: &str = "PAGE_REFRESH_SECS";
pub const MAX_CLOCK_SKEW_SECS: &str = "MAX_CLOCK_SKEW_SECS";
/// The KV namespace binding holding the last known good snapshot.
pub const KV_BINDING: &str = "KILN_STATUS";
/// HMAC-SHA256 keys shorter than its block-size half are guessable offline from one
/// signed response; `wrangler secret put` of a 32-byte random value is the floor.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} must be {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the status origin, without a trailing slash.
    pub origin_url: Option<String>,
    pub origin_secret: Option<Vec<u8>>,
    /// Verifies besides `origin_secret`; never signs.
    pub origin_secret_secondary: Option<Vec<u8>>,
    /// How long a snapshot is served without asking the origin again.
    pub cache_ttl_secs: u32,
    /// After the TTL, how long the old snapshot is still served while it is refreshed in
    /// the background.
    pub stale_while_revalidate_secs: u32,
    pub origin_timeout_ms: u32,
    pub signature_window_secs: i64,
    pub page_refresh_secs: u32,
    /// How far ahead of this clock a signed timestamp or a snapshot's `generatedAt` may
    /// be. A push dated further ahead is refused: accepted, it would make every on-time
    /// push look like a replay until the clock caught up.
    pub max_clock_skew_secs: i64,
    /// What was wrong, for `/healthz`.
    pub problems: Vec<ConfigError>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            origin_url: None,
            origin_secret: None,
            origin_secret_secondary: None,
            cache_ttl_secs: 15,
            stale_while_revalidate_secs: 60,
            origin_timeout_ms: 2_500,
            signature_window_secs: DEFAULT_WINDOW_SECS,
            page_refresh_secs: 30,
            max_clock_skew_secs: 120,
            problems: Vec::new(),
        }
    }
}

/// Everything but the secret, which shows only whether it is set.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("origin_url", &self.origin_url)
            .field(
                "origin_secret",
                &self.origin_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "origin_secret_secondary",
                &self.origin_secret_secondary.as_ref().map(|_| "<redacted>"),
            )
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field(
                "stale_while_revalidate_secs",
                &self.stale_while_revalidate_secs,
            )
            .field("origin_timeout_ms", &self.origin_timeout_ms)
            .field("signature_window_secs", &self.signature_window_secs)
            .field("page_refresh_secs", &self.page_refresh_secs)
            .field("max_clock_skew_secs", &self.max_clock_skew_secs)
            .field("problems", &self.problems)
            .finish()
    }
}

/// `http://` is for a loopback origin only (`kiln dev`, the tests): on the internet the
/// signed status would travel in the clear and be open to tampering by the path.
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// The secrets a signature from the origin or a push may verify against: the
    /// primary, then the secondary. Empty without a primary (nothing is trusted).
    pub fn accepted(&self) -> Vec<&[u8]> {
        match &self.origin_secret {
            Some(p) => std::iter::once(p)
                .chain(&self.origin_secret_secondary)
                .map(Vec::as_slice)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Reads every setting through `lookup` (vars and secrets by name).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        Self::from_env(lookup, &[])
    }

    /// As [`Config::from_lookup`]; `plain_vars` are the names declared under `[vars]` in
    /// the `wrangler.toml` the Worker was built with. The runtime cannot tell a secret
    /// from a var (both are strings on `env`), so a secret declared there is refused:
    /// plain vars are shown in the dashboard and in the deployed configuration.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>, plain_vars: &[&str]) -> Config {
        let mut c = Config::default();
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        match get(ORIGIN_URL) {
            None => c.problems.push(ConfigError::Missing(ORIGIN_URL)),
            Some(url)
                if url.len() > "https://".len()
                    && (url.starts_with("https://") || loopback_http(&url)) =>
            {
                c.origin_url = Some(url.trim_end_matches('/').to_owned());
            }
            Some(_) => c.problems.push(ConfigError::Invalid {
                name: ORIGIN_URL,
                expected: "an https:// URL (http:// only for a loopback origin)",
            }),
        }
        // Secrets are not trimmed: they are used byte for byte by both sides.
        let mut secret = |name: &'static str| match lookup(name).filter(|s| !s.is_empty()) {
            None => None,
            Some(_) if plain_vars.contains(&name) => {
                c.problems.push(ConfigError::Invalid {
                    name,
                    expected: "set with `wrangler secret put`, not under [vars]",
                });
                None
            }
            Some(s) if s.len() < MIN_SECRET_BYTES => {
                c.problems.push(ConfigError::Invalid {
                    name,
                    expected: "at least 32 bytes (e.g. `openssl rand -hex 32`)",
                });
                None
            }
            Some(s) => Some(s.into_bytes()),
        };
        let primary = secret(ORIGIN_SECRET);
        let secondary = secret(ORIGIN_SECRET_SECONDARY);
        if lookup(ORIGIN_SECRET).is_none_or(|s| s.is_empty()) {
            c.problems.push(ConfigError::Missing(ORIGIN_SECRET));
        }
        c.origin_secret = primary;
        c.origin_secret_secondary = secondary;

        let mut number = |name: &'static str, min: u32, max: u32, slot: &mut u32| {
            if let Some(v) = get(name) {
                match v.parse::<u32>() {
                    Ok(n) if (min..=max).contains(&n) => *slot = n,
                    _ => c.problems.push(ConfigError::Invalid {
                        name,
                        expected: match name {
                            CACHE_TTL_SECS => "whole seconds from 1 to 3600",
                            STALE_WHILE_REVALIDATE_SECS => "whole seconds from 0 to 86400",
                            ORIGIN_TIMEOUT_MS => "milliseconds from 100 to 30000",
                            SIGNATURE_WINDOW_SECS => "whole seconds from 5 to 3600",
                            MAX_CLOCK_SKEW_SECS => "whole seconds from 0 to 600",
                            _ => "whole seconds from 5 to 3600",
                        },
                    }),
                }
            }
        };
        let mut ttl = c.cache_ttl_secs;
        let mut swr = c.stale_while_revalidate_secs;
        let mut timeout = c.origin_timeout_ms;
        let mut window = c.signature_window_secs as u32;
        let mut refresh = c.page_refresh_secs;
        let mut skew = c.max_clock_skew_secs as u32;
        number(CACHE_TTL_SECS, 1, 3_600, &mut ttl);
        number(STALE_WHILE_REVALIDATE_SECS, 0, 86_400, &mut swr);
        number(ORIGIN_TIMEOUT_MS, 100, 30_000, &mut timeout);
        number(SIGNATURE_WINDOW_SECS, 5, 3_600, &mut window);
        number(PAGE_REFRESH_SECS, 5, 3_600, &mut refresh);
        number(MAX_CLOCK_SKEW_SECS, 0, 600, &mut skew);
        c.cache_ttl_secs = ttl;
        c.stale_while_revalidate_secs = swr;
        c.origin_timeout_ms = timeout;
        c.signature_window_secs = i64::from(window);
        c.page_refresh_secs = refresh;
        c.max_clock_skew_secs = i64::from(skew);
        c
    }

    /// How much longer than the TTL an isolate serves a snapshot another isolate of the
    /// colo pulled before refreshing it itself: enough for that owner's pull (timeout +
    /// 1 s), within the stale-while-revalidate allowance.
    pub fn owner_grace_secs(&self) -> u32 {
        (self.origin_timeout_ms.div_ceil(1000) + 1).min(self.stale_while_revalidate_secs)
    }

    /// `Cache-Control` for a fresh snapshot.
    pub fn cache_control(&self) -> String {
        format!(
            "public, max-age={}, stale-while-revalidate={}",
            self.cache_ttl_secs, self.stale_while_revalidate_secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn from(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn full_config() {
        let c = from(&[
            (ORIGIN_URL, " https://origin.example/ "),
            (ORIGIN_SECRET, SECRET),
            (CACHE_TTL_SECS, "5"),
            (STALE_WHILE_REVALIDATE_SECS, "0"),
            (ORIGIN_TIMEOUT_MS, "800"),
            (SIGNATURE_WINDOW_SECS, "120"),
            (PAGE_REFRESH_SECS, "10"),
            (MAX_CLOCK_SKEW_SECS, "30"),
        ]);
        assert_eq!(c.problems, vec![]);
        assert_eq!(c.origin_url.as_deref(), Some("https://origin.example"));
        assert_eq!(c.origin_secret.as_deref(), Some(SECRET.as_bytes()));
        assert_eq!(
            (
                c.cache_ttl_secs,
                c.stale_while_revalidate_secs,
                c.origin_timeout_ms
            ),
            (5, 0, 800)
        );
        assert_eq!((c.signature_window_secs, c.page_refresh_secs), (120, 10));
        assert_eq!(c.max_clock_skew_secs, 30);
        assert_eq!(
            c.owner_grace_secs(),
            0,
            "never beyond stale-while-revalidate"
        );
        assert_eq!(Config::default().owner_grace_secs(), 4);
        assert_eq!(
            c.cache_control(),
            "public, max-age=5, stale-while-revalidate=0"
        );
    }

    #[test]
    fn problems_are_named_and_defaults_kept() {
        let c = from(&[
            (ORIGIN_URL, "origin.example"),
            (CACHE_TTL_SECS, "0"),
            (ORIGIN_TIMEOUT_MS, "soon"),
            (MAX_CLOCK_SKEW_SECS, "3601"),
        ]);
        assert_eq!(c.origin_url, None);
        assert_eq!(c.cache_ttl_secs, 15);
        assert_eq!(c.origin_timeout_ms, 2_500);
        assert_eq!(c.max_clock_skew_secs, 120);
        let msgs: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "ORIGIN_URL must be an https:// URL (http:// only for a loopback origin)",
                "ORIGIN_SECRET is not set",
                "CACHE_TTL_SECS must be whole seconds from 1 to 3600",
                "ORIGIN_TIMEOUT_MS must be milliseconds from 100 to 30000",
                "MAX_CLOCK_SKEW_SECS must be whole seconds from 0 to 600",
            ]
        );
    }

    #[test]
    fn weak_or_plain_secrets_and_public_http_origins_are_refused() {
        let short = from(&[(ORIGIN_URL, "https://o.example"), (ORIGIN_SECRET, "k")]);
        assert_eq!(short.origin_secret, None);
        assert!(short.problems[0].to_string().contains("at least 32 bytes"));

        let lookup = |k: &str| (k == ORIGIN_SECRET).then(|| SECRET.to_owned());
        let plain = Config::from_env(lookup, &[ORIGIN_URL, ORIGIN_SECRET]);
        assert_eq!(plain.origin_secret, None);
        assert!(
            plain
                .problems
                .iter()
                .any(|p| p.to_string().contains("wrangler secret put"))
        );
        assert!(
            Config::from_env(lookup, &[ORIGIN_URL])
                .origin_secret
                .is_some()
        );

        for url in [
            "http://origin.example",
            "http://127.0.0.1.example.com",
            "http://localhost.evil",
            "https://",
        ] {
            assert_eq!(from(&[(ORIGIN_URL, url)]).origin_url, None, "{url}");
        }
        for url in [
            "http://127.0.0.1:9000",
            "http://localhost:3000/x",
            "http://[::1]:8080",
            "https://abc.lambda-url.us-east-1.on.aws/",
        ] {
            assert!(from(&[(ORIGIN_URL, url)]).origin_url.is_some(), "{url}");
        }
    }

    #[test]
    fn a_secondary_secret_is_accepted_under_the_same_rules() {
        const NEXT: &str = "the-next-secret-of-at-least-32-bytes!!";
        let c = from(&[(ORIGIN_SECRET, SECRET), (ORIGIN_SECRET_SECONDARY, NEXT)]);
        assert_eq!(c.accepted(), vec![SECRET.as_bytes(), NEXT.as_bytes()]);
        let short = from(&[(ORIGIN_SECRET, SECRET), (ORIGIN_SECRET_SECONDARY, "k")]);
        assert_eq!(short.accepted(), vec![SECRET.as_bytes()]);
        assert!(
            short.problems.iter().any(|p| p
                .to_string()
                .starts_with("ORIGIN_SECRET_SECONDARY must be at least 32 bytes")),
            "{:?}",
            short.problems
        );
        let lookup = |k: &str| Some(if k == ORIGIN_SECRET { SECRET } else { NEXT }.to_owned());
        let plain = Config::from_env(lookup, &[ORIGIN_SECRET_SECONDARY]);
        assert_eq!(plain.accepted(), vec![SECRET.as_bytes()]);
        assert!(plain.problems.iter().any(|p| p.to_string()
            == "ORIGIN_SECRET_SECONDARY must be set with `wrangler secret put`, not under [vars]"));
        // Without a primary nothing is trusted, not even the secondary.
        let alone = from(&[(ORIGIN_SECRET_SECONDARY, NEXT)]);
        assert!(alone.accepted().is_empty());
        assert!(
            alone
                .problems
                .contains(&ConfigError::Missing(ORIGIN_SECRET))
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = from(&[(ORIGIN_SECRET, SECRET), (ORIGIN_SECRET_SECONDARY, SECRET)]);
        let shown = format!("{c:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
