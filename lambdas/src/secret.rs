//! The edge secret, read from Secrets Manager by ARN at init and cached per container.
//!
//! A cached read is used for [`crate::Config::edge_secret_ttl`] (default 5 min), then
//! read again, so `kiln secret rotate` reaches warm containers. A signature that
//! verifies against neither cached version may mean the edge already uses a newer
//! secret: [`EdgeSecret::refresh_on_mismatch`] reads again, but at most once per
//! [`MIN_REFRESH`], so forged requests cannot turn into a stream of Secrets Manager
//! calls. A failed read keeps the last good versions (logged) and is not retried
//! within [`MIN_REFRESH`]; with no versions at all, callers refuse to sign or verify.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_aws::AwsError;
use kiln_aws::secrets::{EdgeKeys, SecretVersions};
use kiln_shared::signing::{self, SignatureError, SignedRequest};
use tokio::sync::Mutex;

/// Reads of the secret outside the TTL are at most this frequent.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("KILN_EDGE_SECRET_ARN is not set")]
    NotConfigured,
    #[error("reading the edge secret: {0}")]
    Read(#[from] AwsError),
    #[error("the edge secret could not be read recently; next try in under {0:?}")]
    Backoff(Duration),
}

#[derive(Default)]
struct Cached {
    keys: Option<Arc<EdgeKeys>>,
    /// When `keys` were read.
    read_at: Option<Instant>,
    /// The last read attempt, successful or not (rate limit after a failure).
    tried_at: Option<Instant>,
    /// The last read a signature mismatch asked for (rate limit).
    forced_at: Option<Instant>,
}

pub struct EdgeSecret {
    arn: Option<String>,
    source: Arc<dyn SecretVersions>,
    ttl: Duration,
    cached: Mutex<Cached>,
}

impl EdgeSecret {
    pub fn new(arn: Option<String>, source: Arc<dyn SecretVersions>, ttl: Duration) -> Self {
        EdgeSecret {
            arn,
            source,
            ttl,
            cached: Mutex::new(Cached::default()),
        }
    }

    pub fn configured(&self) -> bool {
        self.arn.is_some()
    }

    /// The versions to use now: cached within the TTL, else read again (rate-limited;
    /// on a failed read the stale versions are kept).
    pub async fn keys(&self) -> Result<Arc<EdgeKeys>, SecretError> {
        self.keys_at(Instant::now()).await
    }

    pub(crate) async fn keys_at(&self, now: Instant) -> Result<Arc<EdgeKeys>, SecretError> {
        let mut c = self.cached.lock().await;
        if let (Some(keys), Some(at)) = (&c.keys, c.read_at)
            && now.saturating_duration_since(at) < self.ttl
        {
            return Ok(keys.clone());
        }
        self.read(&mut c, now).await
    }

    /// Reads again after a signature matched neither cached version, unless such a
    /// read happened within [`MIN_REFRESH`]. `Some` only when the read brought other
    /// versions.
    pub async fn refresh_on_mismatch(&self) -> Option<Arc<EdgeKeys>> {
        self.refresh_on_mismatch_at(Instant::now()).await
    }

    pub(crate) async fn refresh_on_mismatch_at(&self, now: Instant) -> Option<Arc<EdgeKeys>> {
        let mut c = self.cached.lock().await;
        if c.forced_at
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_REFRESH)
        {
            return None;
        }
        c.forced_at = Some(now);
        let before = c.keys.clone();
        let after = self.fetch(&mut c, now).await.ok()?;
        (before.as_deref() != Some(&*after)).then_some(after)
    }

    /// Reads unless a read was tried within [`MIN_REFRESH`] (or the TTL, if shorter).
    async fn read(&self, c: &mut Cached, now: Instant) -> Result<Arc<EdgeKeys>, SecretError> {
        if let Some(tried) = c.tried_at {
            let since = now.saturating_duration_since(tried);
            let gap = MIN_REFRESH.min(self.ttl);
            if since < gap {
                return c.keys.clone().ok_or(SecretError::Backoff(gap - since));
            }
        }
        self.fetch(c, now).await
    }

    async fn fetch(&self, c: &mut Cached, now: Instant) -> Result<Arc<EdgeKeys>, SecretError> {
        let arn = self.arn.as_deref().ok_or(SecretError::NotConfigured)?;
        c.tried_at = Some(now);
        match self.source.read_versions(arn).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                if c.keys
                    .as_ref()
                    .is_some_and(|old| old.current != keys.current)
                {
                    tracing::info!("edge secret rotated: signing with its new version");
                }
                c.keys = Some(keys.clone());
                c.read_at = Some(now);
                Ok(keys)
            }
            Err(e) => match &c.keys {
                Some(stale) => {
                    tracing::warn!(error = %e, "reading the edge secret failed; keeping the cached versions");
                    Ok(stale.clone())
                }
                None => Err(e.into()),
            },
        }
    }
}

/// Verifies against the current version, then the previous one (a rotation in
/// progress: the edge may still sign with either).
pub fn verify(
    keys: &EdgeKeys,
    req: &SignedRequest<'_>,
    now: i64,
    window_secs: i64,
) -> Result<i64, SignatureError> {
    signing::verify_any(&keys.accepted(), req, now, window_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_aws::mock::fakes::MemSecretVersions;
    use kiln_aws::mock::faults::{Fault, FaultPlan, Faulty, Rule};

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:1:secret:e";
    const OLD: &str = "old-secret-old-secret-old-secret-0";
    const NEW: &str = "new-secret-new-secret-new-secret-1";

    fn cache(ttl: u64) -> (EdgeSecret, Arc<MemSecretVersions>, Arc<FaultPlan>) {
        let mem = Arc::new(MemSecretVersions::default());
        mem.set(ARN, OLD);
        let plan = Arc::new(FaultPlan::new());
        let faulty = Arc::new(Faulty::new(mem.clone(), plan.clone()));
        (
            EdgeSecret::new(Some(ARN.into()), faulty, Duration::from_secs(ttl)),
            mem,
            plan,
        )
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[tokio::test]
    async fn read_once_then_cached_until_the_ttl() {
        let (s, mem, plan) = cache(300);
        let t0 = Instant::now();
        assert_eq!(s.keys_at(t0).await.unwrap().current.expose(), OLD);
        mem.rotate(ARN, NEW);
        let k = s.keys_at(t0 + secs(299)).await.unwrap();
        assert_eq!(k.current.expose(), OLD, "cached within the TTL");
        assert_eq!(mem.reads(), 1);
        let k = s.keys_at(t0 + secs(300)).await.unwrap();
        assert_eq!(
            k.current.expose(),
            NEW,
            "a warm container picks up the rotation"
        );
        assert_eq!(k.previous.as_ref().unwrap().expose(), OLD);
        assert_eq!(mem.reads(), 2);
        assert_eq!(plan.calls()["secretsmanager:GetSecretValue"], 4);
    }

    #[tokio::test]
    async fn mismatch_refreshes_at_most_once_per_min_refresh() {
        const NEWER: &str = "newer-secret-newer-secret-newer-s-2";
        let (s, mem, _) = cache(300);
        let t0 = Instant::now();
        s.keys_at(t0).await.unwrap();
        mem.rotate(ARN, NEW);
        // Rotated 10 s after init, the edge already signs with it: read again at once.
        let fresh = s.refresh_on_mismatch_at(t0 + secs(10)).await.unwrap();
        assert_eq!(fresh.current.expose(), NEW);
        assert_eq!(fresh.previous.as_ref().unwrap().expose(), OLD);
        assert_eq!(mem.reads(), 2);
        mem.rotate(ARN, NEWER);
        assert!(s.refresh_on_mismatch_at(t0 + secs(20)).await.is_none());
        assert_eq!(mem.reads(), 2, "within 30 s of the last forced read");
        let k = s.refresh_on_mismatch_at(t0 + secs(40)).await.unwrap();
        assert_eq!(k.current.expose(), NEWER);
        // Forged requests in a burst: nothing changed, at most one read per 30 s.
        for i in 41..100 {
            assert!(s.refresh_on_mismatch_at(t0 + secs(i)).await.is_none());
        }
        assert_eq!(mem.reads(), 4, "reads at 10, 40 and 70 s");
    }

    #[tokio::test]
    async fn a_failed_read_keeps_the_cached_versions_and_backs_off() {
        let (s, mem, plan) = cache(60);
        let t0 = Instant::now();
        s.keys_at(t0).await.unwrap();
        plan.add(Rule::new(Some("secretsmanager:GetSecretValue"), Fault::Server).forever());
        let k = s.keys_at(t0 + secs(61)).await.unwrap();
        assert_eq!(k.current.expose(), OLD, "stale but usable");
        // Outside the TTL, yet within the rate limit: no further call.
        let calls = plan.calls()["secretsmanager:GetSecretValue"];
        s.keys_at(t0 + secs(70)).await.unwrap();
        assert_eq!(plan.calls()["secretsmanager:GetSecretValue"], calls);
        plan.clear_rules();
        mem.rotate(ARN, NEW);
        let k = s.keys_at(t0 + secs(91)).await.unwrap();
        assert_eq!(k.current.expose(), NEW);
    }

    #[tokio::test]
    async fn without_a_first_read_there_is_nothing_to_use() {
        let (s, _, plan) = cache(300);
        plan.add(Rule::new(
            Some("secretsmanager:GetSecretValue"),
            Fault::Throttle,
        ));
        let t0 = Instant::now();
        assert!(matches!(s.keys_at(t0).await, Err(SecretError::Read(_))));
        assert!(matches!(
            s.keys_at(t0 + secs(1)).await,
            Err(SecretError::Backoff(_))
        ));
        assert!(s.keys_at(t0 + secs(30)).await.is_ok(), "recovers");
        let none = EdgeSecret::new(None, Arc::new(MemSecretVersions::default()), secs(1));
        assert!(matches!(none.keys().await, Err(SecretError::NotConfigured)));
    }

    #[test]
    fn both_versions_verify_and_nothing_else() {
        let keys = EdgeKeys {
            current: kiln_aws::secrets::SecretValue::new(NEW),
            previous: Some(kiln_aws::secrets::SecretValue::new(OLD)),
        };
        let now = 1_800_000_000;
        let target = signing::origin_status_target("abcdefgh01");
        // A GET of `target` signed with `secret`, verified against `keys`.
        let check = |keys: &EdgeKeys, secret: &str| {
            let sig = signing::sign(secret.as_bytes(), now, "GET", &target, b"").unwrap();
            let ts = now.to_string();
            let req = SignedRequest {
                timestamp: Some(&ts),
                signature: Some(&sig),
                method: "GET",
                path: &target,
                body: b"",
            };
            verify(keys, &req, now, 300)
        };
        assert_eq!(check(&keys, NEW), Ok(now));
        assert_eq!(check(&keys, OLD), Ok(now));
        assert_eq!(
            check(&keys, "another-secret-another-secret-xx"),
            Err(SignatureError::Mismatch)
        );
        let only_new = EdgeKeys {
            previous: None,
            ..keys.clone()
        };
        assert_eq!(check(&only_new, OLD), Err(SignatureError::Mismatch));
    }
}
