use super::*;
#[tokio::test]
async fn first_build_available_updates_ssm_in_both_regions_keeping_other_keys() {
    let w = setup();
    building(&w).await;
    assert_eq!(record(&w).await.status, BuildStatus::Building);
    assert!(w.configs.value(EAST, PARAM).unwrap()["amiId"].is_null());

    let o = processed(
        deliver(
            &w,
            3,
            ImageState::Available,
            "2026-01-27T11:00:00Z",
            "2026-01-27T12:00:00Z",
        )
        .await,
    );
    assert!(o.record_written && o.build_written);
    assert_eq!(o.configs_updated, vec![WEST.to_owned(), EAST.to_owned()]);
    let r = record(&w).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.ami_id.as_deref(), Some("ami-03east"), "home region AMI");
    assert_eq!(
        time::format(r.updated_at),
        "2026-01-27T12:00:00Z",
        "event time, not the clock"
    );
    let east = w.configs.value(EAST, PARAM).unwrap();
    assert_eq!(east["amiId"], "ami-03east");
    assert_eq!(east["maxRunners"], 4, "operator keys survive");
    assert_eq!(east["labels"], json!(["operator"]));
    let west = w.configs.value(WEST, PARAM).unwrap();
    assert_eq!(west["amiId"], "ami-03west");
    assert_eq!(
        west["instanceTypes"],
        json!(["m7i", "c7i"]),
        "a missing config starts from the preset"
    );
    let builds = w.store.list_builds().await.unwrap();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].status, BuildStatus::Ready);
    assert_eq!(builds[0].amis.len(), 2);
    // Every record write pushed a snapshot; in the last one the preset is ready (the
    // overall status also warns: the fixture's AMI was built long before the clock).
    let pushes = w.edge.0.lock().unwrap().clone();
    assert_eq!(pushes.len(), 2);
    assert_eq!(
        pushes[1].presets[0].status,
        kiln_shared::PresetStatus::Ready,
        "{:?}",
        pushes[1]
    );
    assert!(
        pushes[1].presets[0]
            .warnings
            .iter()
            .all(|w| w.code == "ami_too_old" || w.code == "no_recent_success"),
        "{:?}",
        pushes[1]
    );
}

#[tokio::test]
async fn rebuild_keeps_previous_ami_and_failure_or_cancel_leave_ssm_alone() {
    for bad in [ImageState::Failed, ImageState::Cancelled] {
        let w = setup();
        deliver(
            &w,
            3,
            ImageState::Available,
            "2026-01-27T11:00:00Z",
            "2026-01-27T12:00:00Z",
        )
        .await;
        let ssm_before = w.configs.0.lock().unwrap().clone();

        deliver(
            &w,
            4,
            ImageState::Building,
            "2026-01-28T00:00:00Z",
            "2026-01-28T00:00:10Z",
        )
        .await;
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Building);
        assert_eq!(
            r.ami_id.as_deref(),
            Some("ami-03east"),
            "rebuild keeps the old AMI"
        );

        put_image(&w, 4, bad, "2026-01-28T00:00:00Z");
        let o = processed(
            handle_event(&w.deps, event(bad, "2026-01-28T00:30:00Z", 4))
                .await
                .unwrap(),
        );
        assert!(o.configs_updated.is_empty());
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Failed);
        assert_eq!(r.reason.as_deref(), Some("validation test docker failed"));
        assert_eq!(r.ami_id.as_deref(), Some("ami-03east"));
        assert_eq!(
            *w.configs.0.lock().unwrap(),
            ssm_before,
            "{bad}: SSM untouched"
        );
        let b4 = w
            .store
            .get_build("BUILD#linux-x64#1.0.42/4")
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(b4.outcome, Some(bad));
    }
}

#[tokio::test]
async fn out_of_order_and_duplicate_events_converge_with_no_extra_writes() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    let after_available = record(&w).await;
    for (state, at) in [
        (ImageState::Testing, "2026-01-27T11:30:00Z"),
        (ImageState::Building, "2026-01-27T11:00:05Z"),
        (ImageState::Available, "2026-01-27T12:00:00Z"),
    ] {
        plan.reset_counts();
        let o = processed(handle_event(&deps, event(state, at, 3)).await.unwrap());
        assert!(!o.record_written, "{state} changed the record");
        let expected = if state == ImageState::Available {
            NoOp::Duplicate
        } else {
            NoOp::OutOfOrder
        };
        assert_eq!(o.noop, Some(expected));
        // A late earlier event may still teach the history its start time (the BUILD
        // item and the preset's rollup); a duplicate writes nothing at all.
        let puts = plan.calls().get("dynamodb:PutItem").copied().unwrap_or(0);
        assert_eq!(
            puts,
            2 * u64::from(o.build_written),
            "{state}: only history writes"
        );
        if state == ImageState::Available {
            assert_eq!(puts, 0);
        }
        assert_eq!(
            plan.calls().get("ssm:PutParameter"),
            None,
            "{state}: no SSM write"
        );
        assert_eq!(
            plan.calls().get("edge:Ingest"),
            None,
            "{state}: nothing to push"
        );
    }
    assert_eq!(record(&w).await, after_available);
}

#[tokio::test]
async fn available_event_cost_is_counted() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    let calls = plan.calls();
    let expect = BTreeMap::from([
        // PRESET, AMI, AMI re-check after SSM, BUILD, HISTORY rollup
        ("dynamodb:GetItem".to_owned(), 5),
        ("dynamodb:PutItem".to_owned(), 3), // AMI, BUILD, HISTORY rollup
        // The preset's BUILD items (rollup); snapshot: AMI records, PRESET items, rollups
        ("dynamodb:Query".to_owned(), 4),
        ("edge:Ingest".to_owned(), 1),
        ("imagebuilder:GetImage".to_owned(), 1),
        // Per region: the runner config and the AMI parameter (`aws:ec2:image`).
        ("ssm:GetParameter".to_owned(), 4),
        ("ssm:PutParameter".to_owned(), 4),
        // The edge secret (AWSCURRENT, AWSPREVIOUS): the container's first push.
        ("secretsmanager:GetSecretValue".to_owned(), 2),
    ]);
    assert_eq!(calls, expect);
    assert_eq!(plan.aws_calls(), 23);
}

#[tokio::test]
async fn malformed_events_and_unknown_pipelines_are_acknowledged_without_writes() {
    let w = setup();
    for raw in [MALFORMED, NOT_IMAGEBUILDER] {
        let ack = handle_event(&w.deps, serde_json::from_str(raw).unwrap())
            .await
            .unwrap();
        assert!(
            matches!(ack, EventAck::Ignored(Ignored::Malformed(_))),
            "{ack:?}"
        );
    }
    // GetImage knows nothing of the image.
    let ack = handle_event(
        &w.deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 9),
    )
    .await
    .unwrap();
    assert!(matches!(ack, EventAck::Ignored(Ignored::UnknownImage(_))));
    // An image from someone else's pipeline (and one with our prefix but no preset).
    for pipeline in ["team-b-builder", "spot-runner-gone"] {
        put_image(&w, 5, ImageState::Available, "2026-01-27T11:00:00Z");
        w.images
            .images
            .lock()
            .unwrap()
            .get_mut(&arn(5))
            .unwrap()
            .source_pipeline_name = Some(pipeline.into());
        let ack = handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 5),
        )
        .await
        .unwrap();
        assert_eq!(
            ack,
            EventAck::Ignored(Ignored::UnknownPipeline(pipeline.into()))
        );
    }
    assert!(w.store.ami.lock().unwrap().is_empty());
    assert!(w.store.builds.lock().unwrap().is_empty());
    assert_eq!(
        w.configs.0.lock().unwrap().len(),
        1,
        "only the seeded config"
    );
}

#[tokio::test]
async fn lost_race_rereads_and_an_older_event_becomes_a_clean_noop() {
    let w = setup();
    put_image(&w, 3, ImageState::Testing, "2026-01-27T11:00:00Z");
    let newer = {
        let mut r = kiln_shared::AmiRecord::initial("linux-x64", None, t("2026-01-27T10:00:00Z"));
        r.status = BuildStatus::Building;
        r.order_key = "2026-01-27T11:59:00Z#05#other".into();
        r.updated_at = t("2026-01-27T11:59:00Z");
        r
    };
    let mut once = Some(newer.clone());
    *w.store.before_put_ami.lock().unwrap() = Some(Box::new(move |map| {
        if let Some(r) = once.take() {
            map.insert(r.preset.clone(), r);
        }
    }));
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Testing, "2026-01-27T11:30:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert_eq!(o.noop, Some(NoOp::OutOfOrder));
    assert_eq!(record(&w).await, newer);
}

#[tokio::test]
async fn fault_between_dynamodb_and_ssm_converges_on_retry() {
    let w = setup();
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    plan.add(Rule::new(Some("ssm:PutParameter"), Fault::Server));
    let err = handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ssm:PutParameter"), "{err}");
    assert_eq!(
        record(&w).await.status,
        BuildStatus::Ready,
        "DynamoDB step landed"
    );
    assert!(w.configs.value(EAST, PARAM).unwrap()["amiId"].is_null());
    // Lambda retries the same event: the record is a duplicate, the configs catch up.
    let o = processed(
        handle_event(
            &deps,
            event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        )
        .await
        .unwrap(),
    );
    assert_eq!(o.noop, Some(NoOp::Duplicate));
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["amiId"], "ami-03east");
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-03west");
}

/// Refuses the first push as the edge does a same-second replay.
struct ReplayRefusingEdge(std::sync::Mutex<Vec<kiln_shared::StatusReport>>);

impl kiln_aws::edge::EdgePusher for ReplayRefusingEdge {
    fn push<'a>(
        &'a self,
        published: &'a kiln_shared::feeds::Published,
        _secret: &'a [u8],
    ) -> kiln_aws::BoxFut<'a, Result<(), kiln_aws::edge::PushError>> {
        Box::pin(async move {
            let mut seen = self.0.lock().unwrap();
            seen.push(published.report.clone());
            if seen.len() == 1 {
                Err(kiln_aws::edge::PushError::Status(401))
            } else {
                Ok(())
            }
        })
    }
}

#[tokio::test]
async fn a_refused_push_is_retried_once_with_a_fresh_snapshot() {
    let w = setup();
    let edge = Arc::new(ReplayRefusingEdge(Default::default()));
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config(), w.fakes.clients().with_edge(edge.clone()))
        .with_faults(plan.clone());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    handle_event(
        &deps,
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    )
    .await
    .unwrap();
    assert_eq!(edge.0.lock().unwrap().len(), 2);
    assert_eq!(
        plan.calls()["dynamodb:Query"],
        // The build's own BUILD items for its history rollup, then per push attempt
        // AMI records, PRESET items and rollups.
        1 + 2 * 3,
        "the snapshot is read again"
    );
    assert_eq!(plan.calls()["edge:Ingest"], 2);
}

#[tokio::test]
async fn any_delivery_order_of_two_builds_converges_to_the_same_state() {
    // Build 3 succeeds, build 4 (a later rebuild) fails: the end state is "failed, AMI
    // of build 3" however the eight events arrive, duplicates included.
    let events: Vec<Value> = vec![
        event(ImageState::Building, "2026-01-27T11:00:05Z", 3),
        event(ImageState::Testing, "2026-01-27T11:20:00Z", 3),
        event(ImageState::Distributing, "2026-01-27T11:40:00Z", 3),
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
        event(ImageState::Building, "2026-01-28T00:00:10Z", 4),
        event(ImageState::Testing, "2026-01-28T00:20:00Z", 4),
        event(ImageState::Failed, "2026-01-28T00:30:00Z", 4),
        event(ImageState::Available, "2026-01-27T12:00:00Z", 3),
    ];
    let orders: Vec<Vec<usize>> = vec![
        (0..8).collect(),
        (0..8).rev().collect(),
        vec![6, 3, 0, 7, 5, 1, 4, 2],
        vec![3, 6, 4, 0, 5, 2, 1, 7],
        vec![4, 5, 6, 0, 1, 2, 3, 7],
    ];
    let mut outcomes = Vec::new();
    for order in orders {
        let w = setup();
        put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
        put_image(&w, 4, ImageState::Failed, "2026-01-28T00:00:00Z");
        for i in &order {
            handle_event(&w.deps, events[*i].clone()).await.unwrap();
        }
        let r = record(&w).await;
        assert_eq!(r.status, BuildStatus::Failed, "{order:?}");
        assert_eq!(r.ami_id.as_deref(), Some("ami-03east"), "{order:?}");
        let configs = w.configs.0.lock().unwrap().clone();
        let mut builds = w.store.list_builds().await.unwrap();
        builds.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        outcomes.push((r, configs, builds));
    }
    for o in &outcomes[1..] {
        assert_eq!(*o, outcomes[0]);
    }
}

#[tokio::test]
async fn an_unreadable_runner_config_is_left_alone_and_the_rest_proceeds() {
    let w = setup();
    w.configs
        .set(EAST, PARAM, "maxRunners = 4 # someone wrote TOML");
    let o = processed(
        deliver(
            &w,
            3,
            ImageState::Available,
            "2026-01-27T11:00:00Z",
            "2026-01-27T12:00:00Z",
        )
        .await,
    );
    assert_eq!(o.configs_refused, vec![EAST.to_owned()]);
    assert_eq!(o.configs_updated, vec![WEST.to_owned()]);
    let raw = w.configs.0.lock().unwrap()[&(EAST.to_owned(), PARAM.to_owned())].clone();
    assert_eq!(
        raw, "maxRunners = 4 # someone wrote TOML",
        "not overwritten"
    );
    assert_eq!(record(&w).await.status, BuildStatus::Ready);
}

#[tokio::test]
async fn a_one_off_build_to_one_region_moves_that_regions_runners_only() {
    let w = setup();
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    processed(
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T11:30:00Z", 3),
        )
        .await
        .unwrap(),
    );
    // `kiln build --region eu-west-1`: CreateImage, no source pipeline, one region.
    put_image(&w, 4, ImageState::Available, "2026-01-27T12:00:00Z");
    {
        let mut images = w.images.images.lock().unwrap();
        let image = images.get_mut(&arn(4)).unwrap();
        image.source_pipeline_name = None;
        image.amis.retain(|r, _| r == WEST);
    }
    processed(
        handle_event(
            &w.deps,
            event(ImageState::Available, "2026-01-27T12:30:00Z", 4),
        )
        .await
        .unwrap(),
    );
    let r = record(&w).await;
    assert_eq!(r.amis[EAST], "ami-03east", "the other region keeps its AMI");
    assert_eq!(r.amis[WEST], "ami-04west");
    assert_eq!(r.ami_id.as_deref(), Some("ami-03east"));
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["amiId"], "ami-03east");
    assert_eq!(w.configs.value(WEST, PARAM).unwrap()["amiId"], "ami-04west");
}
