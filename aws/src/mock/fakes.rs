//! Small in-process fakes of the client traits, for unit tests of the handlers' logic.
//! They keep the real contracts that matter: compare-and-swap on AMI and BUILD items,
//! "absent" answers, and an unordered image list.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kiln_shared::StatusReport;
use kiln_shared::build::BuildRecord;
use kiln_shared::state::AmiRecord;

use crate::BoxFut;
use crate::ec2::{Ec2Image, Ec2Images};
use crate::edge::{EdgePusher, PushError};
use crate::error::AwsError;
use crate::images::PipelineSummary;
use crate::images::{ImageBuilderApi, ImageInfo, ImageSummary};
use crate::sdk::Clients;
use crate::secrets::{EdgeKeys, SecretValue, SecretVersions};
use crate::ssm::RunnerConfigs;
use crate::store::{Cas, Listing, PresetItem, StateStore, VersionedBuild};

#[derive(Default)]
pub struct MemStore {
    pub ami: Mutex<BTreeMap<String, AmiRecord>>,
    pub presets: Mutex<BTreeMap<String, PresetItem>>,
    pub builds: Mutex<BTreeMap<String, VersionedBuild>>,
    pub history: Mutex<BTreeMap<String, crate::store::VersionedRollup>>,
    /// Called before each AMI put: lets a test slip in a concurrent writer.
    #[allow(clippy::type_complexity)]
    pub before_put_ami: Mutex<Option<Box<dyn FnMut(&mut BTreeMap<String, AmiRecord>) + Send>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateStore for MemStore {
    fn get_ami<'a>(&'a self, preset: &'a str) -> BoxFut<'a, Result<Option<AmiRecord>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.ami).get(preset).cloned()) })
    }
    fn put_ami<'a>(
        &'a self,
        record: &'a AmiRecord,
        expected: Option<&'a AmiRecord>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(async move {
            let mut map = lock(&self.ami);
            if let Some(hook) = lock(&self.before_put_ami).as_mut() {
                hook(&mut map);
            }
            let ok = match (map.get(&record.preset), expected) {
                (None, None) => true,
                (Some(cur), Some(exp)) => {
                    cur.order_key == exp.order_key
                        && cur.ami_order_key == exp.ami_order_key
                        && cur.rev == exp.rev
                }
                _ => false,
            };
            if !ok {
                return Ok(Cas::Conflict);
            }
            map.insert(record.preset.clone(), record.clone());
            Ok(Cas::Written)
        })
    }
    fn list_ami(&self) -> BoxFut<'_, Result<Listing<AmiRecord>, AwsError>> {
        Box::pin(async move { Ok(Listing::of(lock(&self.ami).values().cloned().collect())) })
    }
    fn get_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<PresetItem>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.presets).get(name).cloned()) })
    }
    fn put_preset<'a>(&'a self, item: &'a PresetItem) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.presets).insert(item.name.clone(), item.clone());
            Ok(())
        })
    }
    fn delete_preset<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.presets).remove(name);
            Ok(())
        })
    }
    fn list_presets(&self) -> BoxFut<'_, Result<Listing<PresetItem>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.presets).values().cloned().collect()) })
    }
    fn get_build<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFut<'a, Result<Option<VersionedBuild>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.builds).get(job_id).cloned()) })
    }
    fn put_build<'a>(
        &'a self,
        record: &'a BuildRecord,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(async move {
            let mut map = lock(&self.builds);
            if map.get(&record.job_id).map(|b| b.rev) != expected_rev {
                return Ok(Cas::Conflict);
            }
            let rev = expected_rev.map_or(1, |r| r + 1);
            map.insert(
                record.job_id.clone(),
                VersionedBuild {
                    record: record.clone(),
                    rev,
                },
            );
            Ok(Cas::Written)
        })
    }
    fn list_builds(&self) -> BoxFut<'_, Result<Listing<BuildRecord>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.builds)
                .values()
                .map(|b| b.record.clone())
                .collect())
        })
    }
    fn list_builds_of<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Listing<BuildRecord>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.builds)
                .values()
                .filter(|b| b.record.preset == preset)
                .map(|b| b.record.clone())
                .collect())
        })
    }
    fn get_history<'a>(
        &'a self,
        preset: &'a str,
    ) -> BoxFut<'a, Result<Option<crate::store::VersionedRollup>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.history).get(preset).cloned()) })
    }
    fn put_history<'a>(
        &'a self,
        rollup: &'a kiln_shared::history::Rollup,
        expected_rev: Option<u64>,
    ) -> BoxFut<'a, Result<Cas, AwsError>> {
        Box::pin(async move {
            let mut map = lock(&self.history);
            if map.get(&rollup.preset).map(|r| r.rev) != expected_rev {
                return Ok(Cas::Conflict);
            }
            let rev = expected_rev.map_or(1, |r| r + 1);
            map.insert(
                rollup.preset.clone(),
                crate::store::VersionedRollup {
                    rollup: rollup.clone(),
                    rev,
                },
            );
            Ok(Cas::Written)
        })
    }
    fn list_history(&self) -> BoxFut<'_, Result<Listing<kiln_shared::history::Rollup>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.history)
                .values()
                .map(|r| r.rollup.clone())
                .collect())
        })
    }
}

/// (region, name) → value.
#[derive(Default)]
pub struct MemConfigs(pub Mutex<BTreeMap<(String, String), String>>);

impl MemConfigs {
    pub fn value(&self, region: &str, name: &str) -> Option<serde_json::Value> {
        lock(&self.0)
            .get(&(region.to_owned(), name.to_owned()))
            .map(|s| serde_json::from_str(s).unwrap())
    }
    pub fn set(&self, region: &str, name: &str, text: &str) {
        lock(&self.0).insert((region.to_owned(), name.to_owned()), text.to_owned());
    }
}

impl RunnerConfigs for MemConfigs {
    fn get<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.0)
                .get(&(region.to_owned(), name.to_owned()))
                .cloned())
        })
    }
    fn put<'a>(
        &'a self,
        region: &'a str,
        name: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            self.set(region, name, value);
            Ok(())
        })
    }
    fn list<'a>(
        &'a self,
        region: &'a str,
        path: &'a str,
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.0)
                .iter()
                .filter(|((r, n), _)| r == region && n.starts_with(path))
                .map(|((_, n), v)| (n.clone(), v.clone()))
                .collect())
        })
    }
}

#[derive(Default)]
pub struct MemImages {
    /// pipeline name → ARN.
    pub pipelines: Mutex<BTreeMap<String, String>>,
    /// pipeline ARN → images, in the (misleading) order the list returns them.
    pub lists: Mutex<HashMap<String, Vec<ImageSummary>>>,
    pub images: Mutex<HashMap<String, ImageInfo>>,
    /// pipeline ARNs started.
    pub started: Mutex<Vec<String>>,
    /// pipeline ARNs disabled.
    pub disabled: Mutex<Vec<String>>,
}

impl ImageBuilderApi for MemImages {
    fn list_pipelines(&self) -> BoxFut<'_, Result<Vec<PipelineSummary>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.pipelines)
                .iter()
                .map(|(name, arn)| PipelineSummary {
                    name: name.clone(),
                    arn: arn.clone(),
                })
                .collect())
        })
    }
    fn find_pipeline<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.pipelines).get(name).cloned()) })
    }
    fn list_pipeline_images<'a>(
        &'a self,
        arn: &'a str,
    ) -> BoxFut<'a, Result<Vec<ImageSummary>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.lists).get(arn).cloned().unwrap_or_default()) })
    }
    fn get_image<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<Option<ImageInfo>, AwsError>> {
        Box::pin(async move { Ok(lock(&self.images).get(arn).cloned()) })
    }
    fn start_pipeline<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let mut started = lock(&self.started);
            started.push(arn.to_owned());
            Ok(format!("{arn}/started/{}", started.len()))
        })
    }
    fn pipeline_enabled<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<Option<bool>, AwsError>> {
        Box::pin(async move { Ok(Some(!lock(&self.disabled).iter().any(|d| d == arn))) })
    }
    fn start_one_off<'a>(
        &'a self,
        arn: &'a str,
        region: &'a str,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let mut started = lock(&self.started);
            started.push(format!("{arn} to {region}"));
            Ok(format!("{arn}/one-off/{}", started.len()))
        })
    }
    /// Every known pipeline launches `m7i.large` with profile `kiln-image-builder`.
    fn infrastructure<'a>(
        &'a self,
        arn: &'a str,
    ) -> BoxFut<'a, Result<Option<crate::images::BuildInfrastructure>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.pipelines).values().any(|a| a == arn).then(|| {
                crate::images::BuildInfrastructure {
                    instance_types: vec!["m7i.large".into()],
                    instance_profile: Some("kiln-image-builder".into()),
                    ..Default::default()
                }
            }))
        })
    }
}

/// Every pushed report, and the secret each was signed with.
#[derive(Default)]
pub struct RecordingEdge(pub Mutex<Vec<StatusReport>>, pub Mutex<Vec<Vec<u8>>>);

impl EdgePusher for RecordingEdge {
    fn push<'a>(
        &'a self,
        published: &'a kiln_shared::feeds::Published,
        secret: &'a [u8],
    ) -> BoxFut<'a, Result<(), PushError>> {
        Box::pin(async move {
            lock(&self.0).push(published.report.clone());
            lock(&self.1).push(secret.to_vec());
            Ok(())
        })
    }
}

/// The ARN of the edge secret [`Fakes::new`] holds, and its value.
pub const EDGE_SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/test/edge-secret-AbCdEf";
pub const EDGE_SECRET: &str = "a-fake-edge-secret-of-at-least-32-bytes";

/// Secrets Manager's versions by ARN: [`MemSecretVersions::rotate`] moves AWSCURRENT to
/// AWSPREVIOUS as PutSecretValue does. Counts reads.
#[derive(Default)]
pub struct MemSecretVersions {
    pub secrets: Mutex<BTreeMap<String, EdgeKeys>>,
    pub reads: Mutex<u64>,
}

impl MemSecretVersions {
    pub fn set(&self, arn: &str, current: &str) {
        lock(&self.secrets).insert(
            arn.to_owned(),
            EdgeKeys {
                current: SecretValue::new(current),
                previous: None,
            },
        );
    }

    pub fn rotate(&self, arn: &str, new: &str) {
        let mut map = lock(&self.secrets);
        let previous = map.remove(arn).map(|k| k.current);
        map.insert(
            arn.to_owned(),
            EdgeKeys {
                current: SecretValue::new(new),
                previous,
            },
        );
    }

    pub fn reads(&self) -> u64 {
        *lock(&self.reads)
    }
}

impl SecretVersions for MemSecretVersions {
    fn read_versions<'a>(&'a self, arn: &'a str) -> BoxFut<'a, Result<EdgeKeys, AwsError>> {
        Box::pin(async move {
            *lock(&self.reads) += 1;
            lock(&self.secrets).get(arn).cloned().ok_or_else(|| {
                AwsError::new(
                    "secretsmanager:GetSecretValue",
                    crate::AwsErrorKind::Client,
                    format!("ResourceNotFoundException: {arn}"),
                )
            })
        })
    }
}

/// (region, image id) → image; deregistered images disappear, deleted snapshots are
/// recorded.
#[derive(Default)]
pub struct MemEc2 {
    pub images: Mutex<BTreeMap<(String, String), Ec2Image>>,
    pub deleted_snapshots: Mutex<Vec<(String, String)>>,
    /// (region, AMI) disabled by DisableImage.
    pub disabled: Mutex<Vec<(String, String)>>,
    /// (region, AMI, resource) references.
    pub references: Mutex<Vec<(String, String, String)>>,
}

impl MemEc2 {
    pub fn add(&self, region: &str, image: Ec2Image) {
        lock(&self.images).insert((region.to_owned(), image.id.clone()), image);
    }
}

impl Ec2Images for MemEc2 {
    fn list_images<'a>(
        &'a self,
        region: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFut<'a, Result<Vec<Ec2Image>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.images)
                .iter()
                .filter(|((r, _), i)| {
                    r == region && i.tags.get(key).map(String::as_str) == Some(value)
                })
                .map(|(_, i)| i.clone())
                .collect())
        })
    }
    fn deregister_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            match lock(&self.images).remove(&(region.to_owned(), image.to_owned())) {
                Some(_) => Ok(()),
                None => Err(AwsError::new(
                    "ec2:DeregisterImage",
                    crate::AwsErrorKind::Client,
                    format!("InvalidAMIID.NotFound: {image}"),
                )),
            }
        })
    }
    fn delete_snapshot<'a>(
        &'a self,
        region: &'a str,
        snapshot: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.deleted_snapshots).push((region.to_owned(), snapshot.to_owned()));
            Ok(())
        })
    }
    fn image_states<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<BTreeMap<String, crate::ec2::ImageHealth>, AwsError>> {
        Box::pin(async move {
            let images = lock(&self.images);
            let disabled = lock(&self.disabled);
            Ok(ids
                .iter()
                .filter(|id| images.contains_key(&(region.to_owned(), (*id).clone())))
                .map(|id| {
                    let off = disabled.contains(&(region.to_owned(), id.clone()));
                    let state = if off { "disabled" } else { "available" };
                    (
                        id.clone(),
                        crate::ec2::ImageHealth {
                            state: state.into(),
                            deprecated: false,
                        },
                    )
                })
                .collect())
        })
    }
    fn disable_image<'a>(
        &'a self,
        region: &'a str,
        image: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.disabled).push((region.to_owned(), image.to_owned()));
            Ok(())
        })
    }
    fn image_references<'a>(
        &'a self,
        region: &'a str,
        ids: &'a [String],
    ) -> BoxFut<'a, Result<Vec<(String, String)>, AwsError>> {
        Box::pin(async move {
            Ok(lock(&self.references)
                .iter()
                .filter(|(r, ami, _)| r == region && ids.contains(ami))
                .map(|(_, ami, what)| (ami.clone(), what.clone()))
                .collect())
        })
    }
}

/// One in-memory fake per client trait, with handles to inspect them.
#[derive(Clone, Default)]
pub struct Fakes {
    pub store: Arc<MemStore>,
    pub configs: Arc<MemConfigs>,
    pub images: Arc<MemImages>,
    pub ec2: Arc<MemEc2>,
    pub edge: Arc<RecordingEdge>,
    pub secrets: Arc<MemSecretVersions>,
    pub alerts: Arc<RecordingAlerts>,
}

impl Fakes {
    /// Empty fakes, but for the edge secret at [`EDGE_SECRET_ARN`].
    pub fn new() -> Self {
        let fakes = Self::default();
        fakes.secrets.set(EDGE_SECRET_ARN, EDGE_SECRET);
        fakes
    }

    /// The fakes as the [`Clients`] a handler or command takes.
    pub fn clients(&self) -> Clients {
        Clients {
            store: self.store.clone(),
            configs: self.configs.clone(),
            images: self.images.clone(),
            ec2: self.ec2.clone(),
            edge: self.edge.clone(),
            secrets: self.secrets.clone(),
            alerts: self.alerts.clone(),
        }
    }
}

/// Every published alert: (subject, message).
#[derive(Default)]
pub struct RecordingAlerts(pub Mutex<Vec<(String, String)>>);

impl crate::alerts::Alerts for RecordingAlerts {
    fn enabled(&self) -> bool {
        true
    }
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.0).push((subject.to_owned(), message.to_owned()));
            Ok(())
        })
    }
}
