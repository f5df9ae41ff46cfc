//! The operating commands against real emulators (moto, via kiln-devstack), through the
//! real `kiln` binary and the official AWS SDK: list, registry export, cleanup. Items are
//! written by kiln-lambdas' own store, so the CLI reads exactly what the Lambdas write.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, Tag};
use common::*;
use kiln_aws::store::{Cas, DynamoStore, PresetItem, StateStore};
use kiln_devstack::emulators::Moto;
use kiln_shared::build::BuildRecord;
use kiln_shared::preset::{PresetSource, parse_all};
use kiln_shared::{AmiRecord, Architecture, BuildStatus, ImageState, time};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const TABLE: &str = "ci-state";

/// moto, or `None` (skip) when it is not installed and tools are not required.
async fn moto() -> Option<Moto> {
    tool("moto_server")?;
    Some(Moto::start().await.expect("moto starts"))
}

/// `kiln` pointed at the emulator, run off the async runtime.
async fn run_kiln(moto: &Moto, args: &[&str]) -> std::process::Output {
    let mut cmd = kiln();
    cmd.args([
        "--endpoint-url",
        &moto.endpoint(),
        "--region",
        REGION,
        "--prefix",
        "ci",
    ])
    .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The table as the Lambdas create it (same key schema and GSI as the template).
async fn create_table(client: &aws_sdk_dynamodb::Client) {
    kiln_aws::store::create_table(client, TABLE)
        .await
        .expect("table created");
}

fn store(moto: &Moto) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&moto.sdk_config(REGION)),
        TABLE,
    )
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    time::parse(text).unwrap()
}

/// A finished build, as ami-update records it.
fn build(
    preset: &str,
    arch: Architecture,
    version: &str,
    started: &str,
    ok: bool,
    amis: &[(&str, &str)],
) -> BuildRecord {
    BuildRecord {
        job_id: kiln_shared::build::build_job_id(preset, version),
        record_type: "BUILD".into(),
        preset: preset.into(),
        architecture: Some(arch),
        build_version: version.into(),
        build_id: format!(
            "arn:aws:imagebuilder:us-east-1:123456789012:image/ci-{preset}/{version}"
        ),
        status: if ok {
            BuildStatus::Ready
        } else {
            BuildStatus::Failed
        },
        last_state: if ok {
            ImageState::Available
        } else {
            ImageState::Failed
        },
        started_at: at(started),
        ended_at: Some(at(started)),
        outcome: Some(if ok {
            ImageState::Available
        } else {
            ImageState::Failed
        }),
        amis: amis
            .iter()
            .map(|(r, a)| ((*r).to_owned(), (*a).to_owned()))
            .collect(),
        reason: (!ok).then(|| "test docker failed".to_owned()),
        validated: ok,
        size_gb: Some(100),
        tests: Vec::new(),
        tested: None,
    }
}

/// PRESET items as preset-init writes them, from real preset files.
async fn put_presets(store: &DynamoStore, files: &[(&str, &str)]) {
    let sources: Vec<PresetSource> = files
        .iter()
        .map(|(f, t)| PresetSource {
            file: (*f).into(),
            text: (*t).into(),
        })
        .collect();
    for p in parse_all("presets", &sources).unwrap() {
        store
            .put_preset(&PresetItem::new(
                &p,
                "ci",
                REGION,
                at("2026-01-01T00:00:00Z"),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_registry_read_the_build_history() {
    let Some(moto) = moto().await else { return };
    let db = aws_sdk_dynamodb::Client::new(&moto.sdk_config(REGION));
    create_table(&db).await;
    let store = store(&moto);
    use Architecture::{Arm64, X86_64};
    for b in [
        build(
            "r-research-x64",
            X86_64,
            "1.0.7/1",
            "2026-01-01T10:00:00Z",
            true,
            &[
                ("us-east-1", "ami-00000000000000001"),
                ("eu-central-1", "ami-00000000000000002"),
            ],
        ),
        build(
            "r-research-x64",
            X86_64,
            "1.0.7/2",
            "2026-01-08T10:00:00Z",
            true,
            &[("us-east-1", "ami-00000000000000003")],
        ),
        build(
            "r-research-arm64",
            Arm64,
            "1.0.7/1",
            "2026-01-05T10:00:00Z",
            true,
            &[("us-east-1", "ami-00000000000000004")],
        ),
        build(
            "linux-x64",
            X86_64,
            "1.0.9/4",
            "2026-01-09T10:00:00Z",
            false,
            &[],
        ),
    ] {
        assert_eq!(store.put_build(&b, None).await.unwrap(), Cas::Written);
    }
    put_presets(&store, &[
        ("r.yaml", "name: r-research\narchitectures: [x86_64, arm64]\nbase_image: ubuntu-22.04\nsetup_script: x\n"),
        ("l.yaml", "name: linux-x64\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: x\n"),
    ]).await;
    // An AMI record must not show up as a build.
    let record = AmiRecord::initial("linux-x64", Some(X86_64), at("2026-01-01T00:00:00Z"));
    store.put_ami(&record, None).await.unwrap();

    let out = run_kiln(&moto, &["list", "--json", "--table", TABLE]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let builds: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let order: Vec<String> = builds
        .iter()
        .map(|b| {
            format!(
                "{}@{}",
                b["preset"].as_str().unwrap(),
                b["buildVersion"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            "linux-x64@1.0.9/4",
            "r-research-x64@1.0.7/2",
            "r-research-arm64@1.0.7/1",
            "r-research-x64@1.0.7/1"
        ],
        "newest first"
    );

    let out = run_kiln(
        &moto,
        &["list", "--table", TABLE, "--preset", "r-research-x64"],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let table = text(&out.stdout);
    assert!(
        table.contains("ami-00000000000000002") && table.contains("eu-central-1"),
        "{table}"
    );
    assert!(!table.contains("linux-x64"), "{table}");

    let out = run_kiln(&moto, &["list", "--table", TABLE, "--preset", "linux-x64"]).await;
    assert!(
        text(&out.stdout).contains("failed (test docker failed)"),
        "{}",
        describe(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let out = run_kiln(
        &moto,
        &[
            "registry",
            "export",
            "--table",
            TABLE,
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let registry: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let r = &registry["templates"]["r-research"]["amis"];
    assert_eq!(
        r["us-east-1"]["x86_64"]["ami_id"], "ami-00000000000000003",
        "newest wins"
    );
    assert_eq!(
        r["eu-central-1"]["x86_64"]["ami_id"],
        "ami-00000000000000002"
    );
    assert_eq!(r["us-east-1"]["arm64"]["ami_id"], "ami-00000000000000004");
    assert_eq!(r["us-east-1"]["x86_64"]["validated"], true);
    assert_eq!(r["us-east-1"]["x86_64"]["size_gb"], 100);
    assert_eq!(registry["version"], "1");
    assert!(registry["last_updated"].as_str().unwrap().ends_with('Z'));
    assert_registry_schema(&file);
    assert_eq!(
        registry["templates"]["linux-x64"]["amis"],
        serde_json::json!({}),
        "failed builds are not in the registry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_reports_a_missing_table_clearly() {
    let Some(moto) = moto().await else { return };
    let out = run_kiln(&moto, &["list", "--table", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("table nope") && err.contains("ResourceNotFound"),
        "{err}"
    );
}

/// Registers a kiln-tagged AMI backed by a real snapshot; returns (ami, snapshot).
async fn register(
    ec2: &aws_sdk_ec2::Client,
    prefix: &str,
    preset: &str,
    n: usize,
) -> (String, String) {
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{}a", ec2.config().region().unwrap()))
        .size(8)
        .send()
        .await
        .unwrap();
    let snapshot = ec2
        .create_snapshot()
        .volume_id(volume.volume_id().unwrap())
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned();
    let ami = ec2
        .register_image()
        .name(format!("{prefix}-{preset}-{n}"))
        .root_device_name("/dev/xvda")
        .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(EbsBlockDevice::builder().snapshot_id(&snapshot).build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned();
    ec2.create_tags()
        .resources(&ami)
        .tags(Tag::builder().key("kiln:prefix").value(prefix).build())
        .tags(Tag::builder().key("kiln:preset").value(preset).build())
        .tags(
            Tag::builder()
                .key("kiln:architecture")
                .value("x86_64")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // moto backs a registered image with a snapshot of its own: use what EC2 reports.
    let described = ec2.describe_images().image_ids(&ami).send().await.unwrap();
    let backing = described.images()[0].block_device_mappings()[0]
        .ebs()
        .and_then(|e| e.snapshot_id())
        .unwrap_or(&snapshot)
        .to_owned();
    (ami, backing)
}

async fn image_ids(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let mut ids: Vec<String> = ec2
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn snapshot_ids(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    ec2.describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_keeps_the_newest_and_every_ami_in_use() {
    let Some(moto) = moto().await else { return };
    let east = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1"));
    let west = aws_sdk_ec2::Client::new(&moto.sdk_config("eu-west-1"));
    let db = aws_sdk_dynamodb::Client::new(&moto.sdk_config(REGION));
    create_table(&db).await;

    // Four generations per region (moto's CreationDate has second precision, hence the
    // pauses), plus another deployment's AMIs that must never be touched.
    let mut a_east = Vec::new();
    let mut a_west = Vec::new();
    let mut b_east = Vec::new();
    for n in 0..4 {
        let (ae, be, aw) = tokio::join!(
            register(&east, "ci", "alpha", n),
            register(&east, "ci", "beta", n),
            register(&west, "ci", "alpha", n),
        );
        a_east.push(ae);
        b_east.push(be);
        a_west.push(aw);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (foreign, _) = register(&east, "other", "alpha", 0).await;

    // alpha's runner config in eu-west-1 still points at its oldest AMI; the state
    // table's record for beta names beta's second-oldest.
    let ssm_west = aws_sdk_ssm::Client::new(&moto.sdk_config("eu-west-1"));
    ssm_west
        .put_parameter()
        .name("/ci/configs/alpha")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(json!({ "amiId": a_west[0].0, "maxRunners": 4 }).to_string())
        .send()
        .await
        .unwrap();
    let mut beta = AmiRecord::initial("beta", None, at("2026-01-01T00:00:00Z"));
    beta.status = BuildStatus::Ready;
    beta.ami_id = Some(b_east[1].0.clone());
    beta.amis = BTreeMap::from([("us-east-1".to_owned(), b_east[1].0.clone())]);
    store(&moto).put_ami(&beta, None).await.unwrap();

    let before_east = image_ids(&east).await;
    let out = run_kiln(
        &moto,
        &[
            "cleanup",
            "--keep-latest",
            "2",
            "--grace",
            "0",
            "--dry-run",
            "--table",
            TABLE,
            "--regions",
            "us-east-1,eu-west-1",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let plan = text(&out.stdout);
    assert!(
        plan.contains(&format!("would delete us-east-1 alpha {}", a_east[0].0)),
        "{plan}"
    );
    assert!(
        plan.contains("in use by runner config /ci/configs/alpha (eu-west-1)"),
        "{plan}"
    );
    assert!(
        plan.contains("in use by the current image of beta (state table)"),
        "{plan}"
    );
    assert!(plan.contains("(dry run: nothing changed)"), "{plan}");
    assert_eq!(
        image_ids(&east).await,
        before_east,
        "dry run changes nothing"
    );

    let out = run_kiln(
        &moto,
        &[
            "cleanup",
            "--keep-latest",
            "2",
            "--grace",
            "0",
            "--table",
            TABLE,
            "--regions",
            "us-east-1,eu-west-1",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));

    let left_east = image_ids(&east).await;
    let left_west = image_ids(&west).await;
    let mut expect_east = vec![
        a_east[2].0.clone(),
        a_east[3].0.clone(), // newest two
        b_east[1].0.clone(), // in the state table
        b_east[2].0.clone(),
        b_east[3].0.clone(),
        foreign.clone(), // another prefix
    ];
    expect_east.sort();
    assert_eq!(left_east, expect_east);
    let mut expect_west = vec![
        a_west[0].0.clone(),
        a_west[2].0.clone(),
        a_west[3].0.clone(),
    ];
    expect_west.sort();
    assert_eq!(left_west, expect_west);

    let snaps_east = snapshot_ids(&east).await;
    assert!(
        !snaps_east.contains(&a_east[0].1),
        "snapshot of a deleted AMI is deleted"
    );
    assert!(!snaps_east.contains(&b_east[0].1));
    assert!(
        snaps_east.contains(&b_east[1].1),
        "snapshot of a kept AMI stays"
    );
    let snaps_west = snapshot_ids(&west).await;
    assert!(!snaps_west.contains(&a_west[1].1));
    assert!(snaps_west.contains(&a_west[0].1));

    // Idempotent: nothing left to do.
    let out = run_kiln(
        &moto,
        &[
            "cleanup",
            "--keep-latest",
            "2",
            "--grace",
            "0",
            "--table",
            TABLE,
            "--regions",
            "us-east-1,eu-west-1",
        ],
    )
    .await;
    assert!(
        text(&out.stdout).contains("0 AMIs to delete"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_refuses_to_run_blind() {
    // Without the state table kiln cannot know the latest ready AMIs: delete nothing.
    let Some(moto) = moto().await else { return };
    let east = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1"));
    for n in 0..2 {
        register(&east, "ci", "alpha", n).await;
    }
    let before = image_ids(&east).await;
    let out = run_kiln(
        &moto,
        &["cleanup", "--keep-latest", "1", "--table", "missing"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("reading AMI records"),
        "{}",
        describe(&out)
    );
    assert_eq!(image_ids(&east).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_images_reads_kiln_tags_across_regions_newest_first() {
    let Some(moto) = moto().await else { return };
    let east = aws_sdk_ec2::Client::new(&moto.sdk_config("us-east-1"));
    let west = aws_sdk_ec2::Client::new(&moto.sdk_config("eu-west-1"));
    let (old, _) = register(&east, "ci", "alpha", 0).await;
    register(&east, "other", "alpha", 0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (beta, _) = register(&west, "ci", "beta", 0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (new, _) = register(&east, "ci", "alpha", 1).await;

    let out = run_kiln(
        &moto,
        &[
            "list",
            "--images",
            "--json",
            "--regions",
            "us-east-1,eu-west-1",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let images: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = images.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![new.as_str(), beta.as_str(), old.as_str()],
        "newest first, other prefixes excluded"
    );
    assert_eq!(images[1]["region"], "eu-west-1");
    assert_eq!(images[1]["preset"], "beta");
    assert_eq!(images[0]["architecture"], "x86_64");

    let out = run_kiln(&moto, &["list", "--images", "--preset", "alpha"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let table = text(&out.stdout);
    assert!(
        table.contains(&new) && table.contains(&old) && !table.contains(&beta),
        "{table}"
    );

    let out = run_kiln(&moto, &["list", "--regions", "us-east-1"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "--regions needs --images: {}",
        describe(&out)
    );
}

/// The export validates against the committed `shared/registry.schema.json`
/// (python-jsonschema from the project's venv: an independent validator).
fn assert_registry_schema(document: &std::path::Path) {
    let Some(python) = tool("python3") else {
        return;
    };
    let venv = repo_root().join(".venv/bin/python3");
    let python = if venv.is_file() { venv } else { python };
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg("import json,sys,jsonschema\njsonschema.Draft202012Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2])))")
        .arg(repo_root().join("shared/registry.schema.json"))
        .arg(document)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "registry does not match its schema: {}",
        describe(&out)
    );
}
