//! The build engine: the simulated service's state, builds moving through their states
//! on a clock (or by hand), AMIs registered on the step to AVAILABLE.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use kiln_shared::ImageState;
use serde_json::Value;
use tokio::sync::watch;

use super::events::{EmittedEvent, EventFaults, Sink, SinkTarget};
use super::model::{self, Ami, BuildPlan, Distribution, Image, Infrastructure, Pipeline, Recipe};
use super::resources::arn_name;
use super::{ImageBuilderError, ListOrder, Options, Timing, ec2};

#[derive(Debug, Default)]
pub(super) struct PipelineKnobs {
    pub(super) events: Option<EventFaults>,
    pub(super) list_order: Option<ListOrder>,
    pub(super) next_builds: VecDeque<BuildPlan>,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) recipes: BTreeMap<String, Recipe>,
    pub(super) infrastructures: BTreeMap<String, Infrastructure>,
    pub(super) distributions: BTreeMap<String, Distribution>,
    pub(super) pipelines: BTreeMap<String, Pipeline>,
    /// In creation order.
    pub(super) images: Vec<Image>,
    pub(super) build_numbers: HashMap<String, u32>,
    pub(super) client_tokens: HashMap<String, String>,
    pub(super) timing: Timing,
    pub(super) rule_states: Vec<ImageState>,
    pub(super) global_events: EventFaults,
    pub(super) global_list_order: ListOrder,
    /// Keyed by pipeline name.
    pub(super) knobs: HashMap<String, PipelineKnobs>,
    /// Per image ARN, events held for reordering.
    pub(super) held: HashMap<String, Vec<Value>>,
    pub(super) log: Vec<EmittedEvent>,
    pub(super) sinks: Vec<Sink>,
    /// The next N API calls fail with ServiceUnavailableException.
    pub(super) unavailable_calls: u32,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) region: String,
    pub(super) account: String,
    ec2_endpoint: Option<String>,
    pub(super) state: Mutex<State>,
    pub(super) http: reqwest::Client,
    /// Bumped on every image state change; waiters watch it.
    pub(super) changes: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn new(options: Options) -> Self {
        Shared {
            region: options.region,
            account: options.account_id,
            ec2_endpoint: options.ec2_endpoint,
            state: Mutex::new(State {
                recipes: BTreeMap::new(),
                infrastructures: BTreeMap::new(),
                distributions: BTreeMap::new(),
                pipelines: BTreeMap::new(),
                images: Vec::new(),
                build_numbers: HashMap::new(),
                client_tokens: HashMap::new(),
                timing: options.timing,
                rule_states: options.rule_states,
                global_events: EventFaults::default(),
                global_list_order: ListOrder::default(),
                knobs: HashMap::new(),
                held: HashMap::new(),
                log: Vec::new(),
                sinks: Vec::new(),
                unavailable_calls: 0,
            }),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .no_proxy()
                .build()
                .expect("static reqwest configuration"),
            changes: watch::channel(0).0,
        }
    }
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (no multi-step
        // invariants span an unwind), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn arn(&self, kind: &str, rest: &str) -> String {
        format!(
            "arn:aws:imagebuilder:{}:{}:{kind}/{rest}",
            self.region, self.account
        )
    }

    pub(super) fn knobs(&self, pipeline: &str, f: impl FnOnce(&mut PipelineKnobs)) {
        f(self.lock().knobs.entry(pipeline.to_owned()).or_default());
    }

    pub(super) fn take_unavailable(&self) -> bool {
        let mut st = self.lock();
        if st.unavailable_calls > 0 {
            st.unavailable_calls -= 1;
            true
        } else {
            false
        }
    }

    pub(super) fn reset(&self) {
        let mut st = self.lock();
        st.recipes.clear();
        st.infrastructures.clear();
        st.distributions.clear();
        st.pipelines.clear();
        st.images.clear();
        st.build_numbers.clear();
        st.client_tokens.clear();
        st.global_events = EventFaults::default();
        st.global_list_order = ListOrder::default();
        st.knobs.clear();
        st.held.clear();
        st.log.clear();
        st.unavailable_calls = 0;
        drop(st);
        self.changes.send_modify(|n| *n += 1);
    }

    pub(super) fn add_sink(&self, target: SinkTarget) {
        let sink = Sink::spawn(target, self.http.clone());
        self.lock().sinks.push(sink);
    }

    /// Starts a build; the image appears in PENDING and its clock starts.
    pub(super) fn start_build(
        self: &Arc<Self>,
        pipeline_arn: &str,
        user: bool,
    ) -> Result<String, ImageBuilderError> {
        let (recipe, infrastructure, distribution, pipeline) = {
            let st = self.lock();
            let pipeline = st.pipelines.get(pipeline_arn).cloned().ok_or_else(|| {
                ImageBuilderError::NotFound(format!("image pipeline {pipeline_arn} does not exist"))
            })?;
            if !pipeline.enabled {
                return Err(ImageBuilderError::InUse(format!(
                    "image pipeline {} is disabled",
                    pipeline.name
                )));
            }
            (
                pipeline.recipe_arn.clone(),
                pipeline.infrastructure_arn.clone(),
                pipeline.distribution_arn.clone(),
                pipeline,
            )
        };
        self.start_image(
            &recipe,
            &infrastructure,
            distribution.as_deref(),
            Some((&pipeline.arn, &pipeline.name)),
            user,
        )
    }

    /// Starts an image build from a recipe, infrastructure and (optional) distribution
    /// configuration: a pipeline's execution, or CreateImage (no pipeline).
    pub(super) fn start_image(
        self: &Arc<Self>,
        recipe_arn: &str,
        infrastructure_arn: &str,
        distribution_arn: Option<&str>,
        pipeline: Option<(&str, &str)>,
        user: bool,
    ) -> Result<String, ImageBuilderError> {
        let (arn, timing) = {
            let mut st = self.lock();
            let missing = |what: &str, arn: &str| {
                ImageBuilderError::NotFound(format!("{what} {arn} does not exist"))
            };
            let recipe = st
                .recipes
                .get(recipe_arn)
                .cloned()
                .ok_or_else(|| missing("image recipe", recipe_arn))?;
            let infrastructure = st
                .infrastructures
                .get(infrastructure_arn)
                .cloned()
                .ok_or_else(|| missing("infrastructure configuration", infrastructure_arn))?;
            let distribution = match distribution_arn {
                Some(d) => Some(
                    st.distributions
                        .get(d)
                        .cloned()
                        .ok_or_else(|| missing("distribution configuration", d))?,
                ),
                None => None,
            };
            let (pipeline_arn, pipeline_name) = pipeline.unwrap_or_default();
            let regions = distribution
                .as_ref()
                .map_or_else(|| vec![self.region.clone()], |d| d.regions.clone());
            let build = {
                let n = st.build_numbers.entry(recipe.arn.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let arn = self.arn(
                "image",
                &format!("{}/{}/{build}", arn_name(&recipe.name), recipe.version),
            );
            let plan = st
                .knobs
                .get_mut(pipeline_name)
                .and_then(|k| k.next_builds.pop_front())
                .unwrap_or_default();
            let now = Utc::now();
            if let Some(p) = st.pipelines.get_mut(pipeline_arn) {
                p.last_run = Some(now);
            }
            st.images.push(Image {
                arn: arn.clone(),
                recipe,
                build,
                pipeline_arn: pipeline_arn.to_owned(),
                pipeline_name: pipeline_name.to_owned(),
                infrastructure,
                distribution,
                regions,
                state: ImageState::Pending,
                reason: None,
                created: now,
                plan,
                amis: Vec::new(),
                account: self.account.clone(),
                user_initiated: user,
                history: vec![(ImageState::Pending, now)],
            });
            self.emit(&mut st, &arn, ImageState::Pending, None, None);
            (arn, st.timing)
        };
        self.changes.send_modify(|n| *n += 1);
        tracing::info!(image = %arn, "build started");
        if !timing.manual {
            let shared = Arc::downgrade(self);
            let image = arn.clone();
            tokio::spawn(async move {
                loop {
                    let Some(s) = shared.upgrade() else { return };
                    let (state, timing) = {
                        let st = s.lock();
                        let Some(img) = st.images.iter().find(|i| i.arn == image) else {
                            return;
                        };
                        (img.state, st.timing)
                    };
                    if state.is_terminal() {
                        return;
                    }
                    drop(s);
                    tokio::time::sleep(timing.in_state(state)).await;
                    let Some(s) = shared.upgrade() else { return };
                    let registered = match s.registration_for(&image) {
                        Some(r) => Some(ec2::register(&s.http, &r).await.map(|ids| (r, ids))),
                        None => None,
                    };
                    if s.advance_with(&image, registered).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(arn)
    }

    /// What to register in EC2 when the image's next step is AVAILABLE.
    pub(super) fn registration_for(&self, arn: &str) -> Option<ec2::Registration> {
        let endpoint = self.ec2_endpoint.clone()?;
        let st = self.lock();
        let image = st.images.iter().find(|i| i.arn == arn)?;
        let stops_here = match &image.plan {
            BuildPlan::Succeed => false,
            BuildPlan::Fail { at, .. } | BuildPlan::Cancel { at } => *at == image.state,
        };
        if image.state != ImageState::Distributing || stops_here {
            return None;
        }
        let mut tags = image
            .distribution
            .as_ref()
            .map(|d| d.ami_tags.clone())
            .unwrap_or_default();
        // Image Builder's own tags on every AMI it distributes.
        tags.insert("CreatedBy".into(), "EC2 Image Builder".into());
        tags.insert("Ec2ImageBuilderArn".into(), image.arn.clone());
        Some(ec2::Registration {
            endpoint,
            regions: image.regions.clone(),
            name: ami_name(&image.recipe.name, Utc::now()),
            description: format!(
                "Built by kiln's local Image Builder from {}",
                image.pipeline_name
            ),
            tags,
        })
    }

    /// One transition of the image's life, following its plan.
    pub(super) fn advance(&self, arn: &str) -> Result<ImageState, ImageBuilderError> {
        self.advance_with(arn, None)
    }

    /// As [`Shared::advance`]; `registered` carries the AMIs registered in EC2 for the step
    /// to AVAILABLE (an error fails the build as a distribution failure).
    pub(super) fn advance_with(
        &self,
        arn: &str,
        registered: Option<Registered>,
    ) -> Result<ImageState, ImageBuilderError> {
        let new_state = {
            let mut st = self.lock();
            let image = st
                .images
                .iter_mut()
                .find(|i| i.arn == arn)
                .ok_or_else(|| ImageBuilderError::NotFound(format!("no image {arn}")))?;
            let current = image.state;
            if current.is_terminal() {
                return Err(ImageBuilderError::InUse(format!(
                    "image {arn} is already {current}"
                )));
            }
            let (next, reason) = match (&image.plan, &registered) {
                (_, Some(Err(e))) => (
                    ImageState::Failed,
                    Some(format!("Distribution failed: {e}")),
                ),
                (BuildPlan::Fail { at, reason }, _) if *at == current => {
                    (ImageState::Failed, Some(reason.clone()))
                }
                (BuildPlan::Cancel { at }, _) if *at == current => (
                    ImageState::Cancelled,
                    Some("Image creation cancelled by user".to_owned()),
                ),
                _ => (
                    model::successor(current).unwrap_or(ImageState::Available),
                    None,
                ),
            };
            let now = Utc::now();
            image.state = next;
            image.reason = reason.clone();
            image.history.push((next, now));
            let scheduled = !image.user_initiated;
            let pipeline_arn = image.pipeline_arn.clone();
            if next == ImageState::Available {
                image.amis = match registered {
                    Some(Ok((registration, ids))) => ids
                        .into_iter()
                        .map(|(region, id)| Ami {
                            region,
                            image: id,
                            name: registration.name.clone(),
                            account_id: image.account.clone(),
                        })
                        .collect(),
                    _ => image
                        .regions
                        .iter()
                        .map(|region| Ami {
                            region: region.clone(),
                            image: model::ami_id(),
                            name: ami_name(&image.recipe.name, now),
                            account_id: image.account.clone(),
                        })
                        .collect(),
                };
            }
            self.emit(&mut st, arn, next, Some(current), reason.as_deref());
            if scheduled && next.is_terminal() {
                count_scheduled(&mut st, &pipeline_arn, next);
            }
            next
        };
        self.changes.send_modify(|n| *n += 1);
        tracing::info!(image = %arn, state = %new_state, "image state changed");
        Ok(new_state)
    }

    pub(super) fn cancel(&self, arn: &str) -> Result<(), ImageBuilderError> {
        {
            let mut st = self.lock();
            let image = st
                .images
                .iter_mut()
                .find(|i| i.arn == arn)
                .ok_or_else(|| ImageBuilderError::NotFound(format!("no image {arn}")))?;
            let current = image.state;
            if current.is_terminal() {
                return Err(ImageBuilderError::InUse(format!(
                    "the image {arn} cannot be cancelled in state {current}"
                )));
            }
            image.state = ImageState::Cancelled;
            image.reason = Some("Image creation cancelled by user".to_owned());
            image.history.push((ImageState::Cancelled, Utc::now()));
            let reason = image.reason.clone();
            self.emit(
                &mut st,
                arn,
                ImageState::Cancelled,
                Some(current),
                reason.as_deref(),
            );
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    pub(super) fn list_order(&self, st: &State, pipeline_name: &str) -> ListOrder {
        st.knobs
            .get(pipeline_name)
            .and_then(|k| k.list_order)
            .unwrap_or(st.global_list_order)
    }
}

/// An EC2 registration's outcome: what was registered and region → AMI id, or why not.
pub(super) type Registered = Result<(ec2::Registration, Vec<(String, String)>), String>;

/// Image Builder's default AMI name: recipe name and build time.
pub(super) fn ami_name(recipe: &str, at: chrono::DateTime<Utc>) -> String {
    format!("{recipe} {}", at.format("%Y-%m-%dT%H-%M-%SZ"))
}

/// Runs the EC2 registration from synchronous code (a thread with its own runtime, so it
/// works whatever runtime, if any, the caller is on).
pub(super) fn register_blocking(r: &ec2::Registration) -> Registered {
    let r = r.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .no_proxy()
                        .build()
                        .map_err(|e| e.to_string())?;
                    ec2::register(&http, &r).await.map(|ids| (r.clone(), ids))
                })
            })
            .join()
            .unwrap_or_else(|_| Err("EC2 registration thread panicked".into()))
    })
}

/// AutoDisablePolicy: consecutive failed scheduled builds disable the pipeline (a
/// success resets the count; builds started by a user do not count, as in AWS).
fn count_scheduled(st: &mut State, pipeline_arn: &str, outcome: ImageState) {
    let Some(p) = st.pipelines.get_mut(pipeline_arn) else {
        return;
    };
    match outcome {
        ImageState::Available => p.scheduled_failures = 0,
        ImageState::Failed => {
            p.scheduled_failures += 1;
            if p.auto_disable_failures()
                .is_some_and(|n| p.scheduled_failures >= n)
            {
                p.enabled = false;
                tracing::info!(
                    pipeline = p.name,
                    failures = p.scheduled_failures,
                    "pipeline auto-disabled"
                );
            }
        }
        _ => {}
    }
}
