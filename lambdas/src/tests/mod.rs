//! Handler logic against the in-process fakes of `kiln-aws` (the integration tests in
//! `tests/` run the same scenarios against real emulators over HTTP), one module per
//! handler; the fixtures and helpers they share are here.

mod alerts;
mod ami_update;
mod event_guard;
mod origin_signing;
mod preset_groups;
mod preset_init;
mod reconcile;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::state::{BuildStatus, NoOp};
use kiln_shared::{ImageState, Preset, time};
use serde_json::{Value, json};

use crate::ami_update::{EventAck, Ignored, handle_event};
use crate::config::Config;
use kiln_aws::images::{ImageInfo, ImageSummary};
use kiln_aws::mock::fakes::{
    EDGE_SECRET, EDGE_SECRET_ARN, Fakes, MemConfigs, MemImages, MemStore, RecordingEdge,
};
use kiln_aws::mock::faults::{Fault, FaultPlan, Rule};
use kiln_aws::store::{PresetItem, StateStore};

use crate::deps::Deps;

const EVENT: &str = include_str!("../../tests/fixtures/events/state-change.json");
const NOT_IMAGEBUILDER: &str = include_str!("../../tests/fixtures/events/not-imagebuilder.json");
const MALFORMED: &str = include_str!("../../../shared/tests/fixtures/events/malformed.json");
const X64: &str = include_str!("../../tests/fixtures/presets/linux-x64.yaml");
const ARM64: &str = include_str!("../../tests/fixtures/presets/linux-arm64.yaml");

const PARAM: &str = "/spot-runner/configs/linux-x64";
const EAST: &str = "us-east-1";

/// A config naming the fakes' edge secret ([`EDGE_SECRET`]): pushes and `/status` sign
/// with it.
fn config() -> Config {
    let mut c = Config::new("t", EAST);
    c.edge_secret_arn = Some(EDGE_SECRET_ARN.into());
    c
}
const WEST: &str = "eu-west-1";

fn preset(yaml: &str) -> Preset {
    parse_one(&PresetSource {
        file: "p.yaml".into(),
        text: yaml.into(),
    })
    .unwrap()
    .remove(0)
}

fn t(s: &str) -> DateTime<Utc> {
    time::parse(s).unwrap()
}

fn arn(build: u32) -> String {
    format!(
        "arn:aws:imagebuilder:us-east-1:123456789012:image/spot-runner-linux-x64/1.0.42/{build}"
    )
}

fn event(state: ImageState, at: &str, build: u32) -> Value {
    let mut v: Value = serde_json::from_str(EVENT).unwrap();
    v["time"] = at.into();
    v["resources"] = json!([arn(build)]);
    v["detail"]["state"] = json!({ "status": state.as_str() });
    if matches!(state, ImageState::Failed | ImageState::Cancelled) {
        v["detail"]["state"]["reason"] = "validation test docker failed".into();
    }
    v
}

fn ami(build: u32, region: &str) -> String {
    format!(
        "ami-{build:02}{}",
        if region == EAST { "east" } else { "west" }
    )
}

/// An image of build `build` in Image Builder, in `state`.
fn put_image(w: &World, build: u32, state: ImageState, created: &str) {
    let amis = if state == ImageState::Available {
        BTreeMap::from([
            (EAST.into(), ami(build, EAST)),
            (WEST.into(), ami(build, WEST)),
        ])
    } else {
        BTreeMap::new()
    };
    let info = ImageInfo {
        arn: arn(build),
        state: Some(state),
        reason: None,
        date_created: Some(t(created)),
        source_pipeline_name: Some("spot-runner-linux-x64".into()),
        amis,
    };
    w.images.images.lock().unwrap().insert(arn(build), info);
    let mut lists = w.images.lists.lock().unwrap();
    let list = lists.entry("arn:pipeline/linux-x64".into()).or_default();
    list.retain(|s| s.arn != arn(build));
    // Newest first would be the intuitive order: insert at the end to mislead.
    list.push(ImageSummary {
        arn: arn(build),
        date_created: Some(t(created)),
        state: Some(state),
    });
    list.reverse();
}

/// Image Builder holds build `build` in `state` (created at `created`), and its event,
/// dated `at`, reaches ami-update.
async fn deliver(w: &World, build: u32, state: ImageState, created: &str, at: &str) -> EventAck {
    put_image(w, build, state, created);
    handle_event(&w.deps, event(state, at, build))
        .await
        .unwrap()
}

/// The usual first step: build 3, created 11:00:00, BUILDING at 11:00:05.
async fn building(w: &World) -> EventAck {
    deliver(
        w,
        3,
        ImageState::Building,
        "2026-01-27T11:00:00Z",
        "2026-01-27T11:00:05Z",
    )
    .await
}

fn setup() -> World {
    let w = world(config());
    let p = preset(X64);
    w.store.presets.lock().unwrap().insert(
        p.name.clone(),
        PresetItem::new(&p, "spot-runner", EAST, t("2026-01-27T10:00:00Z"))
            .with_pipeline_arn("arn:pipeline/linux-x64"),
    );
    w.configs.set(
        EAST,
        PARAM,
        r#"{"amiId":null,"maxRunners":4,"labels":["operator"]}"#,
    );
    w
}

async fn record(w: &World) -> kiln_shared::AmiRecord {
    w.store.get_ami("linux-x64").await.unwrap().unwrap()
}

fn processed(ack: EventAck) -> crate::observe::Outcome {
    match ack {
        EventAck::Processed(o) => *o,
        other => panic!("expected processing, got {other:?}"),
    }
}

/// The fakes wired into [`Deps`], with handles to inspect them.
struct World {
    deps: Deps,
    fakes: Fakes,
    store: Arc<MemStore>,
    configs: Arc<MemConfigs>,
    images: Arc<MemImages>,
    edge: Arc<RecordingEdge>,
}

fn world(config: Config) -> World {
    let (deps, fakes) = crate::deps::fake(config);
    World {
        deps,
        store: fakes.store.clone(),
        configs: fakes.configs.clone(),
        images: fakes.images.clone(),
        edge: fakes.edge.clone(),
        fakes,
    }
}
