//! Release control and health through the real handlers against the emulators: moto
//! (DynamoDB, SSM, EC2 with the builds' AMIs registered) and the local Image Builder.
//! `kiln pin` / `revoke` are the CLI's library calls over the same SDK clients.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_devstack::DynamoBackend;
use kiln_infra::release::{Op, run};
use kiln_shared::state::release::ReleaseKind;
use kiln_shared::{ImageArn, ImageState, OverallStatus, PresetReport, StatusReport};
use kiln_tests::lambdas_kit::*;

/// Runs a build to AVAILABLE, delivering every event; returns its AMIs.
async fn build(w: &mut LambdaWorld, arn: &str) -> BTreeMap<String, String> {
    w.step_to(arn, ImageState::Pending);
    while !w.ib.image(arn).unwrap().state.is_terminal() {
        w.step_and_deliver(arn).await;
    }
    w.ib.image(arn).unwrap().amis
}

fn version(arn: &str) -> String {
    ImageArn::parse(arn).unwrap().build_version()
}

async fn ami_parameter(w: &LambdaWorld, region: &str, preset: &str) -> Option<String> {
    let name = w.deps.config.ami_parameter_name(preset);
    let out = w
        .ssm(region)
        .get_parameter()
        .name(&name)
        .send()
        .await
        .ok()?;
    let p = out.parameter?;
    assert_eq!(p.data_type.as_deref(), Some("aws:ec2:image"), "{name}");
    p.value
}

/// Every region's runner config and AMI parameter point at `amis`.
async fn assert_runners_on(w: &LambdaWorld, amis: &BTreeMap<String, String>) {
    for (region, ami) in amis {
        let config = w.config(region, X64).await.expect("runner config");
        assert_eq!(config["amiId"].as_str(), Some(ami.as_str()), "{region}");
        assert_eq!(
            ami_parameter(w, region, X64).await.as_deref(),
            Some(ami.as_str()),
            "{region}"
        );
        // Other keys kept.
        assert!(config.get("region").is_some(), "{config}");
    }
}

async fn status(w: &LambdaWorld) -> StatusReport {
    kiln_lambdas::snapshot::snapshot(&w.deps, chrono::Utc::now())
        .await
        .unwrap()
}

/// The warning entries of the Atom feed the snapshot carries: `(title, category)`.
async fn warning_entries(w: &LambdaWorld) -> Vec<(String, String)> {
    let published = kiln_lambdas::snapshot::published(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    let feed = feed_rs::parser::parse(published.feeds.atom.as_bytes()).expect("a valid feed");
    feed.entries
        .iter()
        .map(|e| {
            (
                e.title.as_ref().unwrap().content.clone(),
                e.categories[0].term.clone(),
            )
        })
        .filter(|(_, c)| c == "warning")
        .collect()
}

fn x64(r: &StatusReport) -> &PresetReport {
    r.presets.iter().find(|p| p.name == X64).unwrap()
}

async fn cli(w: &LambdaWorld, op: Op) -> kiln_infra::release::Done {
    run(
        &w.deps.clients(),
        &w.deps.config.prefix,
        &op,
        chrono::Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_racing_a_builds_available_holds_and_unpin_follows_the_newest() {
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 3, |_| {}).await else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let b1 = started[X64].clone();
    let amis1 = build(&mut w, &b1).await;
    assert_runners_on(&w, &amis1).await;
    next_second().await;
    let b2 = w.ib.start_build(X64_PIPELINE).unwrap();
    let amis2 = build(&mut w, &b2).await;
    assert_runners_on(&w, &amis2).await;

    // Build 3 reaches AVAILABLE; its event and `kiln pin` of build 1 race.
    next_second().await;
    let b3 = w.ib.start_build(X64_PIPELINE).unwrap();
    w.step_to(&b3, ImageState::Pending);
    loop {
        w.ib.step(&b3).unwrap();
        let e = w.recv(1).await.remove(0);
        if w.ib.image(&b3).unwrap().state != ImageState::Available {
            w.deliver(&[e]).await.remove(0).unwrap();
            continue;
        }
        let pin = Op::Pin {
            preset: X64.into(),
            version: version(&b1),
        };
        let events = [e];
        let (done, ack) = tokio::join!(cli(&w, pin), w.deliver(&events));
        ack.into_iter().next().unwrap().unwrap();
        assert!(done.changed);
        break;
    }
    let amis3 = w.ib.image(&b3).unwrap().amis;
    let r = w.record(X64).await;
    assert_eq!(
        r.ami_build_id.as_deref(),
        Some(b3.as_str()),
        "the new build is recorded"
    );
    assert_eq!(r.release.as_ref().unwrap().kind, ReleaseKind::Pinned);
    assert_eq!(r.current().amis, &amis1);
    assert_runners_on(&w, &amis1).await;
    assert_eq!(r.changes.last().unwrap().op, "pin");
    let s = status(&w).await;
    assert!(x64(&s).pinned);
    assert_eq!(x64(&s).amis, amis1);
    assert!(x64(&s).built_at.is_some());

    // Reconcile does not undo the pin (its config repair follows the record).
    kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    assert_runners_on(&w, &amis1).await;

    // Unpin: the newest good build, everywhere.
    let done = cli(&w, Op::Unpin { preset: X64.into() }).await;
    assert!(done.changed && !done.record.is_pinned());
    assert_runners_on(&w, &amis3).await;
    // Rollback pins the build before the newest.
    cli(&w, Op::Rollback { preset: X64.into() }).await;
    assert_runners_on(&w, &amis2).await;
    assert!(x64(&status(&w).await).pinned);

    // `kiln releases`: the history, newest first, and the hold.
    let r = kiln_infra::release::releases(&w.deps.clients(), X64)
        .await
        .unwrap();
    let ops: Vec<&str> = r.changes.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["rollback", "unpin", "pin"], "{r:?}");
    assert_eq!(r.changes[2].version.as_deref(), Some(version(&b1).as_str()));
    assert_eq!(r.changes[1].to.as_deref(), Some(version(&b3).as_str()));
    assert_eq!(r.hold, Some(ReleaseKind::RolledBack));
    assert_eq!(r.version.as_deref(), Some(version(&b2).as_str()));
    let text = r.render();
    assert!(
        text.starts_with(&format!(
            "{X64}: runners held on build {} (rolled back), AMI {}",
            version(&b2),
            amis2[REGION]
        )),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_current_build_rolls_back_until_a_newer_good_build() {
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 3, |_| {}).await else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let amis1 = build(&mut w, &started[X64]).await;
    next_second().await;
    let b2 = w.ib.start_build(X64_PIPELINE).unwrap();
    let amis2 = build(&mut w, &b2).await;

    let done = cli(
        &w,
        Op::Revoke {
            version: version(&b2),
            preset: None,
            disable_ami: true,
        },
    )
    .await;
    assert_eq!(done.disabled.len(), amis2.len());
    assert_runners_on(&w, &amis1).await;
    let s = status(&w).await;
    assert_eq!(s.status, OverallStatus::Degraded, "{s:?}");
    assert!(s.message.contains("linux-x64: revoked"), "{}", s.message);
    let p = x64(&s);
    assert!(!p.pinned);
    assert_eq!(p.amis, amis1);
    assert_eq!(p.warnings[0].code, "revoked");
    assert!(p.warnings[0].message.contains(&version(&started[X64])));
    // EC2 disabled the revoked AMIs.
    let ec2 = aws_sdk_ec2::Client::new(&w.aws.moto_config(REGION));
    let out = ec2
        .describe_images()
        .image_ids(&amis2[REGION])
        .include_disabled(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.images()[0].state().map(|s| s.as_str()),
        Some("disabled")
    );
    // Revoked builds cannot be pinned.
    let err = run(
        &w.deps.clients(),
        "spot-runner",
        &Op::Pin {
            preset: X64.into(),
            version: version(&b2),
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");

    // A newer good build takes over by itself; the warning clears.
    next_second().await;
    let b3 = w.ib.start_build(X64_PIPELINE).unwrap();
    let amis3 = build(&mut w, &b3).await;
    assert_runners_on(&w, &amis3).await;
    let s = status(&w).await;
    assert!(x64(&s).warnings.is_empty(), "{s:?}");
    assert_eq!(
        s.status,
        OverallStatus::Building,
        "arm64 still building: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ami_deregistered_behind_kilns_back_and_an_auto_disabled_pipeline_degrade_status() {
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 2, |c| {
        c.stale_after = Duration::from_secs(3600);
    })
    .await
    else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let amis = build(&mut w, &started[X64]).await;
    build(&mut w, &started[ARM64]).await;
    let now = chrono::Utc::now();
    let report = kiln_lambdas::reconcile::reconcile(&w.deps, now)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    let s = status(&w).await;
    assert_eq!(s.status, OverallStatus::Ready, "{s:?}");

    // Someone deregisters the eu-west-1 AMI in EC2.
    let west = aws_sdk_ec2::Client::new(&w.aws.moto_config(WEST));
    west.deregister_image()
        .image_id(&amis[WEST])
        .send()
        .await
        .unwrap();
    let report = kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.health_changed, [X64.to_owned()], "{report:?}");
    let s = status(&w).await;
    assert_eq!(s.status, OverallStatus::Degraded, "{s:?}");
    let p = x64(&s);
    assert_eq!(p.warnings.len(), 1, "{p:?}");
    assert_eq!(p.warnings[0].code, "ami_missing");
    assert_eq!(p.warnings[0].region.as_deref(), Some(WEST));
    assert!(
        s.message.contains("AMI missing in eu-west-1"),
        "{}",
        s.message
    );
    // A second run with nothing new writes nothing.
    let again = kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    assert!(again.health_changed.is_empty(), "{again:?}");
    // The feed the edge serves has the warning, once, newest first, read by feed-rs.
    let feed = warning_entries(&w).await;
    assert_eq!(
        feed,
        [(
            format!("{X64}: warning ami_missing:{WEST} raised"),
            "warning".to_owned()
        )],
        "one entry for the transition, none for the run that changed nothing"
    );

    // Two failed scheduled builds: Image Builder's AutoDisablePolicy disables the
    // pipeline; reconcile reports it.
    for _ in 0..2 {
        next_second().await;
        w.ib.fail_next_build(X64_PIPELINE, ImageState::Building, "component failed");
        let b = w.ib.run_schedule(X64_PIPELINE).unwrap();
        w.step_to(&b, ImageState::Pending);
        while !w.ib.image(&b).unwrap().state.is_terminal() {
            w.step_and_deliver(&b).await;
        }
    }
    assert!(w.ib.start_build(X64_PIPELINE).is_err(), "pipeline disabled");
    kiln_lambdas::reconcile::reconcile(&w.deps, chrono::Utc::now())
        .await
        .unwrap();
    let s = status(&w).await;
    let codes: Vec<&str> = x64(&s).warnings.iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, ["pipeline_disabled", "ami_missing"], "{s:?}");
    let feed = warning_entries(&w).await;
    assert_eq!(feed.len(), 2, "{feed:?}");
    assert_eq!(
        feed[0].0,
        format!("{X64}: warning pipeline_disabled raised"),
        "newest first"
    );
    // Runners keep the last good AMI through the failures.
    assert_eq!(w.config(REGION, X64).await.unwrap()["amiId"], amis[REGION]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_keeps_what_runners_a_launch_template_or_a_rollback_need() {
    let Some(mut w) = LambdaWorld::start_with_ec2(DynamoBackend::Moto, 3, |_| {}).await else {
        return;
    };
    let started = w.apply_presets(&presets()).await;
    let mut builds = vec![started[X64].clone()];
    for _ in 0..4 {
        next_second().await;
        builds.push(w.ib.start_build(X64_PIPELINE).unwrap());
    }
    let mut amis = Vec::new();
    for b in &builds {
        amis.push(build(&mut w, b).await);
        next_second().await;
    }
    // Build 0's AMI is what a launch template of someone else's stack launches.
    let ec2 = aws_sdk_ec2::Client::new(&w.aws.moto_config(REGION));
    ec2.create_launch_template()
        .launch_template_name("ci-runners")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&amis[0][REGION])
                .instance_type(aws_sdk_ec2::types::InstanceType::M7iLarge)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Runners are pinned to build 2: build 1 is the rollback target, 4 the newest.
    cli(
        &w,
        Op::Pin {
            preset: X64.into(),
            version: version(&builds[2]),
        },
    )
    .await;
    let policy = kiln_infra::cleanup::Policy {
        keep_latest: 1,
        grace: Duration::ZERO,
        now: chrono::Utc::now(),
    };
    let regions = [REGION.to_owned()];
    let plan = kiln_infra::cleanup::plan_for(
        w.deps.store.as_ref(),
        w.deps.configs.as_ref(),
        w.deps.ec2.as_ref(),
        "spot-runner",
        &regions,
        &policy,
    )
    .await
    .unwrap();
    let reason = |i: usize| {
        plan.keep
            .iter()
            .find(|(img, _)| img.id == amis[i][REGION])
            .map(|(_, why)| format!("{why:?}"))
    };
    assert!(
        reason(0).unwrap().contains("launch template ci-runners"),
        "{plan:?}"
    );
    assert!(reason(1).unwrap().contains("rollback target"), "{plan:?}");
    assert!(reason(2).unwrap().contains("pinned build"), "{plan:?}");
    assert!(reason(4).unwrap().contains("Latest(1)"), "{plan:?}");
    let deleted: Vec<&str> = plan.delete.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(deleted, [amis[3][REGION].as_str()], "{plan:?}");
    let text = plan.render(true);
    assert!(text.contains("would delete us-east-1 linux-x64"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("keep")).count(),
        4,
        "{text}"
    );

    // A grace period keeps the one whose successor went live just now.
    let graced = kiln_infra::cleanup::Policy {
        grace: Duration::from_secs(3600),
        ..policy.clone()
    };
    let plan2 = kiln_infra::cleanup::plan_for(
        w.deps.store.as_ref(),
        w.deps.configs.as_ref(),
        w.deps.ec2.as_ref(),
        "spot-runner",
        &regions,
        &graced,
    )
    .await
    .unwrap();
    assert!(plan2.delete.is_empty(), "{plan2:?}");

    // Executed by the stack's scheduled retention (the reconcile function's retention
    // input), over every region the preset distributes to: build 3's AMIs and build 0's
    // outside the launch template's region go; everything protected stays.
    let request = kiln_lambdas::retention::RetentionRequest::from_event(&serde_json::json!({
        "kiln": "retention", "keepLatest": 1, "graceDays": 0,
    }))
    .unwrap();
    let report = kiln_lambdas::retention::run(&w.deps, &request, chrono::Utc::now())
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
    // The launch template protects build 0's AMI in its own region only.
    let mut expected: Vec<String> = amis[3]
        .values()
        .chain(amis[0].iter().filter(|(r, _)| *r != REGION).map(|(_, a)| a))
        .cloned()
        .collect();
    expected.sort();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, expected, "{report:?}");
    let again = kiln_lambdas::retention::run(&w.deps, &request, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        again.deleted.is_empty(),
        "nothing left to delete: {again:?}"
    );
    let left = ec2.describe_images().owners("self").send().await.unwrap();
    let left: Vec<&str> = left.images().iter().filter_map(|i| i.image_id()).collect();
    assert!(!left.contains(&amis[3][REGION].as_str()), "{left:?}");
    for i in [0, 1, 2, 4] {
        assert!(left.contains(&amis[i][REGION].as_str()), "{i}: {left:?}");
    }
    assert_runners_on(&w, &amis[2]).await;
}
