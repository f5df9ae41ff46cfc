//! The real aws-sdk-imagebuilder client against the local Image Builder endpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::error::ProvideErrorMetadata;
use aws_sdk_imagebuilder::types::{ComponentConfiguration, Distribution, Filter, ImageStatus};
use kiln_devstack::imagebuilder::{
    EventFaults, Fate, ListOrder, LocalImageBuilder, Options, PipelineSpec, Timing,
};
use kiln_shared::{ImageArn, ImageState, ImageStateChange};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(20);

async fn start(timing: Timing) -> (LocalImageBuilder, Client) {
    let ib = LocalImageBuilder::start(Options {
        timing,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = Client::new(&ib.sdk_config());
    (ib, client)
}

fn fast() -> Timing {
    Timing::total(Duration::from_millis(800))
}

/// Collects events until one in a terminal state arrives (or the timeout).
async fn until_terminal(rx: &mut UnboundedReceiver<Value>) -> Vec<ImageStateChange> {
    let mut out = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(WAIT, rx.recv()).await {
        let e = ImageStateChange::from_value(v).expect("event in the EventBridge envelope");
        let done = e.state.is_terminal();
        out.push(e);
        if done {
            break;
        }
    }
    out
}

/// Whatever arrives within `quiet`.
async fn drain(rx: &mut UnboundedReceiver<Value>, quiet: Duration) -> Vec<ImageStateChange> {
    let mut out = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(quiet, rx.recv()).await {
        out.push(ImageStateChange::from_value(v).unwrap());
    }
    out
}

fn states(events: &[ImageStateChange]) -> Vec<ImageState> {
    events.iter().map(|e| e.state).collect()
}

#[tokio::test]
async fn sdk_creates_pipeline_and_build_reaches_available_with_amis_per_region() {
    let (ib, client) = start(fast()).await;
    let mut rx = ib.subscribe();

    let recipe = client
        .create_image_recipe()
        .name("linux-x64")
        .semantic_version("1.0.42")
        .parent_image("ami-0123456789abcdef0")
        .components(
            ComponentConfiguration::builder()
                .component_arn(
                    "arn:aws:imagebuilder:us-east-1:123456789012:component/setup/1.0.0/1",
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let recipe_arn = recipe.image_recipe_arn().unwrap().to_owned();
    assert_eq!(
        recipe_arn,
        "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/linux-x64/1.0.42"
    );
    let infra = client
        .create_infrastructure_configuration()
        .name("linux-x64-infra")
        .instance_profile_name("kiln-builder")
        .instance_types("m7i.large")
        .send()
        .await
        .unwrap();
    let dist = client
        .create_distribution_configuration()
        .name("linux-x64-dist")
        .distributions(
            Distribution::builder()
                .region("us-east-1")
                .ami_distribution_configuration(
                    aws_sdk_imagebuilder::types::AmiDistributionConfiguration::builder()
                        .ami_tags("kiln:preset", "linux-x64")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .distributions(Distribution::builder().region("eu-west-1").build().unwrap())
        .send()
        .await
        .unwrap();
    let created = client
        .create_image_pipeline()
        .name("spot-runner-linux-x64")
        .image_recipe_arn(&recipe_arn)
        .infrastructure_configuration_arn(infra.infrastructure_configuration_arn().unwrap())
        .distribution_configuration_arn(dist.distribution_configuration_arn().unwrap())
        .send()
        .await
        .unwrap();
    let pipeline_arn = created.image_pipeline_arn().unwrap().to_owned();

    let got = client
        .get_image_pipeline()
        .image_pipeline_arn(&pipeline_arn)
        .send()
        .await
        .unwrap();
    let p = got.image_pipeline().unwrap();
    assert_eq!(p.name(), Some("spot-runner-linux-x64"));
    assert_eq!(p.image_recipe_arn(), Some(recipe_arn.as_str()));

    // Pipeline by name, as kiln finds it.
    let listed = client
        .list_image_pipelines()
        .filters(
            Filter::builder()
                .name("name")
                .values("spot-runner-linux-x64")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.image_pipeline_list().len(), 1);
    let none = client
        .list_image_pipelines()
        .filters(Filter::builder().name("name").values("other").build())
        .send()
        .await
        .unwrap();
    assert!(none.image_pipeline_list().is_empty());

    let started = client
        .start_image_pipeline_execution()
        .image_pipeline_arn(&pipeline_arn)
        .send()
        .await
        .unwrap();
    let image_arn = started.image_build_version_arn().unwrap().to_owned();
    let parsed = ImageArn::parse(&image_arn).expect("realistic image build version ARN");
    assert_eq!(
        (
            parsed.recipe.as_str(),
            parsed.build_version().as_str(),
            parsed.account.as_str()
        ),
        ("linux-x64", "1.0.42/1", "123456789012")
    );

    let events = until_terminal(&mut rx).await;
    assert_eq!(
        states(&events),
        [
            ImageState::Building,
            ImageState::Testing,
            ImageState::Distributing,
            ImageState::Available
        ]
    );
    let previous: Vec<_> = events.iter().map(|e| e.previous).collect();
    assert_eq!(
        previous,
        [
            Some(ImageState::Pending),
            Some(ImageState::Building),
            Some(ImageState::Testing),
            Some(ImageState::Distributing)
        ]
    );
    assert!(events.iter().all(|e| e.image.arn == image_arn));
    assert!(events.windows(2).all(|w| w[0].time <= w[1].time));
    // The event never carries the AMI id: consumers must call GetImage.
    let raw = serde_json::to_string(
        &ib.emitted_events()
            .iter()
            .map(|e| &e.event)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!raw.contains("ami-"), "{raw}");

    let image = client
        .get_image()
        .image_build_version_arn(&image_arn)
        .send()
        .await
        .unwrap();
    let image = image.image().unwrap();
    assert_eq!(
        image.state().and_then(|s| s.status()),
        Some(&ImageStatus::Available)
    );
    assert_eq!(image.source_pipeline_name(), Some("spot-runner-linux-x64"));
    assert_eq!(image.source_pipeline_arn(), Some(pipeline_arn.as_str()));
    assert_eq!(image.version(), Some("1.0.42/1"));
    let created_at = image.date_created().unwrap();
    assert!(kiln_shared::time::parse(created_at).is_ok(), "{created_at}");
    assert!(
        created_at.ends_with('Z') && created_at.contains('.'),
        "{created_at}"
    );
    let amis = image.output_resources().unwrap().amis();
    let regions: Vec<_> = amis.iter().map(|a| a.region().unwrap()).collect();
    assert_eq!(regions, ["us-east-1", "eu-west-1"]);
    for ami in amis {
        let id = ami.image().unwrap();
        assert!(id.len() == 21 && id.starts_with("ami-"), "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(ami.account_id(), Some("123456789012"));
        assert!(ami.name().unwrap().starts_with("linux-x64 "));
    }
    assert_ne!(amis[0].image(), amis[1].image());
    let dist = image.distribution_configuration().unwrap();
    let tags = dist.distributions()[0]
        .ami_distribution_configuration()
        .unwrap()
        .ami_tags()
        .unwrap();
    assert_eq!(
        tags.get("kiln:preset").map(String::as_str),
        Some("linux-x64")
    );

    // The same image in the pipeline's list, with the same AMIs.
    let list = client
        .list_image_pipeline_images()
        .image_pipeline_arn(&pipeline_arn)
        .send()
        .await
        .unwrap();
    let summary = &list.image_summary_list()[0];
    assert_eq!(summary.arn(), Some(image_arn.as_str()));
    assert_eq!(summary.output_resources().unwrap().amis().len(), 2);

    // A second build gets the next build number.
    let second = client
        .start_image_pipeline_execution()
        .image_pipeline_arn(&pipeline_arn)
        .send()
        .await
        .unwrap();
    assert!(
        second
            .image_build_version_arn()
            .unwrap()
            .ends_with("/1.0.42/2")
    );
}

#[tokio::test]
async fn start_is_idempotent_per_client_token() {
    let (ib, client) = start(Timing::manual()).await;
    let arn = ib
        .register_pipeline(PipelineSpec::new("p", ["us-east-1"]))
        .unwrap();
    let start = |token: &'static str| {
        client
            .start_image_pipeline_execution()
            .image_pipeline_arn(&arn)
            .client_token(token)
            .send()
    };
    let a = start("token-a").await.unwrap();
    let again = start("token-a").await.unwrap();
    let b = start("token-b").await.unwrap();
    assert_eq!(a.image_build_version_arn(), again.image_build_version_arn());
    assert_ne!(a.image_build_version_arn(), b.image_build_version_arn());
    assert_eq!(ib.images().len(), 2);
}

#[tokio::test]
async fn pagination_and_misleading_order() {
    let (ib, client) = start(Timing::manual()).await;
    let arn = ib
        .register_pipeline(PipelineSpec::new("spot-runner-many", ["us-east-1"]))
        .unwrap();
    let mut started = Vec::new();
    for _ in 0..30 {
        started.push(ib.start_build("spot-runner-many").unwrap());
        // Distinct dateCreated values (milliseconds) for the ordering checks.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let list_all = || async {
        let mut pages = client
            .list_image_pipeline_images()
            .image_pipeline_arn(&arn)
            .max_results(7)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        let mut page_count = 0;
        while let Some(page) = pages.next().await {
            page_count += 1;
            for s in page.unwrap().image_summary_list() {
                arns.push((
                    s.arn().unwrap().to_owned(),
                    s.date_created().unwrap().to_owned(),
                ));
            }
        }
        (arns, page_count)
    };

    let (newest_first, pages) = list_all().await;
    assert_eq!(pages, 5, "30 images in pages of 7");
    assert_eq!(newest_first.len(), 30);
    let unique: BTreeSet<_> = newest_first.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(unique.len(), 30);
    assert_eq!(newest_first[0].0, *started.last().unwrap());

    ib.set_pipeline_list_order("spot-runner-many", Some(ListOrder::OldestFirst));
    let (oldest_first, _) = list_all().await;
    assert_eq!(
        oldest_first[0].0, started[0],
        "misleading order: oldest build listed first"
    );
    // Sorting by dateCreated recovers the truth whatever the list order.
    let mut sorted = oldest_first.clone();
    sorted.sort_by(|a, b| b.1.cmp(&a.1));
    assert_eq!(sorted[0].0, *started.last().unwrap());

    // Bad pagination input is an AWS-shaped client error.
    let err = client
        .list_image_pipeline_images()
        .image_pipeline_arn(&arn)
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidPaginationTokenException"));
    let err = client
        .list_image_pipeline_images()
        .image_pipeline_arn(&arn)
        .max_results(26)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(err.message().unwrap().contains("maxResults"));
}

#[tokio::test]
async fn manual_clock_steps_through_the_lifecycle() {
    let (ib, client) = start(Timing::manual()).await;
    ib.register_pipeline(PipelineSpec::new("p", ["us-east-1"]))
        .unwrap();
    let arn = ib.start_build("p").unwrap();
    let state = || async {
        client
            .get_image()
            .image_build_version_arn(&arn)
            .send()
            .await
            .unwrap()
            .image()
            .unwrap()
            .state()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_owned()
    };
    assert_eq!(state().await, "PENDING");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        state().await,
        "PENDING",
        "manual clock: no progress without step"
    );
    for expected in ["BUILDING", "TESTING", "DISTRIBUTING", "AVAILABLE"] {
        ib.step(&arn).unwrap();
        assert_eq!(state().await, expected);
    }
    assert!(ib.step(&arn).is_err(), "a finished build does not move");
    // PENDING is emitted but not matched by kiln's rule.
    let log = ib.emitted_events();
    assert_eq!(log[0].state, ImageState::Pending);
    assert_eq!(log[0].fate, Fate::NotMatched);
}

#[tokio::test]
async fn failed_and_cancelled_builds() {
    let (ib, client) = start(fast()).await;
    let mut rx = ib.subscribe();
    ib.register_pipeline(PipelineSpec::new(
        "spot-runner-f",
        ["us-east-1", "eu-west-1"],
    ))
    .unwrap();
    ib.fail_next_build(
        "spot-runner-f",
        ImageState::Testing,
        "Image validation failed: test 'docker-version' exited 1",
    );

    let failed = ib.start_build("spot-runner-f").unwrap();
    let events = until_terminal(&mut rx).await;
    assert_eq!(
        states(&events),
        [
            ImageState::Building,
            ImageState::Testing,
            ImageState::Failed
        ]
    );
    assert!(
        events[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("docker-version")
    );
    let image = client
        .get_image()
        .image_build_version_arn(&failed)
        .send()
        .await
        .unwrap();
    let image = image.image().unwrap();
    assert_eq!(image.state().unwrap().status(), Some(&ImageStatus::Failed));
    assert!(
        image
            .state()
            .unwrap()
            .reason()
            .unwrap()
            .contains("validation")
    );
    assert!(
        image.output_resources().unwrap().amis().is_empty(),
        "no AMI from a failed build"
    );

    // The fault was for one build: the next succeeds.
    let ok = ib.start_build("spot-runner-f").unwrap();
    assert_eq!(
        ib.wait_terminal(&ok, WAIT).await.unwrap().state,
        ImageState::Available
    );
    drain(&mut rx, Duration::from_millis(200)).await;

    // CancelImageCreation through the SDK while it builds.
    ib.set_timing(Timing::manual());
    let arn = ib.start_build("spot-runner-f").unwrap();
    ib.step(&arn).unwrap();
    client
        .cancel_image_creation()
        .image_build_version_arn(&arn)
        .send()
        .await
        .unwrap();
    let events = until_terminal(&mut rx).await;
    assert_eq!(
        states(&events),
        [ImageState::Building, ImageState::Cancelled]
    );
    assert_eq!(events[1].previous, Some(ImageState::Building));
    let err = client
        .cancel_image_creation()
        .image_build_version_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceInUseException"));

    // A planned cancellation.
    ib.cancel_next_build("spot-runner-f", ImageState::Distributing);
    let arn = ib.start_build("spot-runner-f").unwrap();
    for _ in 0..4 {
        ib.step(&arn).unwrap();
    }
    assert_eq!(ib.image(&arn).unwrap().state, ImageState::Cancelled);
}

#[tokio::test]
async fn event_faults_drop_duplicate_reorder_delay() {
    let (ib, _client) = start(fast()).await;
    let mut rx = ib.subscribe();
    ib.register_pipeline(PipelineSpec::new("a", ["us-east-1"]))
        .unwrap();
    ib.register_pipeline(PipelineSpec::new("b", ["us-east-1"]))
        .unwrap();

    // Drop AVAILABLE for pipeline a only.
    ib.set_pipeline_event_faults(
        "a",
        Some(EventFaults {
            drop: vec![ImageState::Available],
            ..Default::default()
        }),
    );
    let arn = ib.start_build("a").unwrap();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(
        states(&got),
        [
            ImageState::Building,
            ImageState::Testing,
            ImageState::Distributing
        ]
    );
    assert!(
        ib.emitted_events()
            .iter()
            .any(|e| e.state == ImageState::Available && e.fate == Fate::Dropped)
    );
    // ... while pipeline b still gets everything.
    let arn = ib.start_build("b").unwrap();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    assert_eq!(drain(&mut rx, Duration::from_millis(300)).await.len(), 4);

    // Duplicates, globally.
    ib.set_pipeline_event_faults("a", None);
    ib.set_event_faults(EventFaults {
        duplicate: vec![ImageState::Available],
        ..Default::default()
    });
    let arn = ib.start_build("a").unwrap();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(
        states(&got)
            .iter()
            .filter(|s| **s == ImageState::Available)
            .count(),
        2
    );
    assert_eq!(
        got[3].id, got[4].id,
        "a duplicate is the same event (same id)"
    );

    // Reorder: the build's events arrive newest first.
    ib.set_event_faults(EventFaults {
        reorder: true,
        ..Default::default()
    });
    let arn = ib.start_build("a").unwrap();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    let got = drain(&mut rx, Duration::from_millis(300)).await;
    assert_eq!(
        states(&got),
        [
            ImageState::Available,
            ImageState::Distributing,
            ImageState::Testing,
            ImageState::Building
        ]
    );

    // Delay: nothing arrives before the delay.
    ib.set_event_faults(EventFaults {
        delay_ms: 1500,
        ..Default::default()
    });
    ib.set_timing(Timing::manual());
    let arn = ib.start_build("a").unwrap();
    let sent = tokio::time::Instant::now();
    ib.step(&arn).unwrap();
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(first["detail"]["state"]["status"], "BUILDING");

    // Drop everything.
    ib.set_event_faults(EventFaults::drop_all());
    ib.set_timing(fast());
    let arn = ib.start_build("b").unwrap();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    assert!(drain(&mut rx, Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn api_errors_are_aws_shaped() {
    let (ib, client) = start(Timing::manual()).await;
    let pipeline = ib
        .register_pipeline(PipelineSpec::new("exists", ["us-east-1"]))
        .unwrap();

    let err = client
        .get_image()
        .image_build_version_arn("arn:aws:imagebuilder:us-east-1:123456789012:image/nope/1.0.0/1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 404);

    let err = client
        .get_image()
        .image_build_version_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    // What the service answers for a value outside the model's ARN pattern.
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);

    let err = client
        .get_image_pipeline()
        .image_pipeline_arn("arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    let err = client
        .create_image_pipeline()
        .name("bad")
        .image_recipe_arn("arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/none/1.0.0")
        .infrastructure_configuration_arn(
            "arn:aws:imagebuilder:us-east-1:123456789012:infrastructure-configuration/none",
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message().unwrap().contains("image-recipe/none"),
        "{:?}",
        err.message()
    );

    let got = client
        .get_image_pipeline()
        .image_pipeline_arn(&pipeline)
        .send()
        .await
        .unwrap();
    let p = got.image_pipeline().unwrap();
    let err = client
        .create_image_pipeline()
        .name("exists")
        .image_recipe_arn(p.image_recipe_arn().unwrap())
        .infrastructure_configuration_arn(p.infrastructure_configuration_arn().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceAlreadyExistsException"));

    let err = client
        .create_distribution_configuration()
        .name("d")
        .distributions(Distribution::builder().region("mars").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(err.message().unwrap().contains("mars"));

    let err = client.list_components().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnknownOperationException"));

    // Injected 503s: the SDK's standard retry rides over one...
    ib.fail_next_api_calls(1);
    client
        .get_image_pipeline()
        .image_pipeline_arn(&pipeline)
        .send()
        .await
        .unwrap();
    // ... and reports the error once retries are exhausted.
    ib.fail_next_api_calls(3);
    let err = client
        .get_image_pipeline()
        .image_pipeline_arn(&pipeline)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ServiceUnavailableException"));
}

#[tokio::test]
async fn control_api_and_http_sink() {
    use axum::{Router, extract::State, routing::post};
    use std::sync::{Arc, Mutex};

    let (ib, client) = start(fast()).await;
    // An HTTP target that records what it receives.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = Router::new()
        .route("/events", post(|State(r): State<Arc<Mutex<Vec<Value>>>>, axum::Json(v): axum::Json<Value>| async move {
            r.lock().unwrap().push(v);
        }))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let base = ib.endpoint();
    let r = http
        .post(format!("{base}/_kiln/sinks"))
        .json(&serde_json::json!({"url": target}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/_kiln/pipelines"))
        .json(&serde_json::json!({"name": "spot-runner-ctl", "regions": ["us-east-1", "us-west-2"], "architecture": "arm64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pipeline_arn = r.json::<Value>().await.unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pipeline_arn.ends_with(":image-pipeline/spot-runner-ctl"));

    let r = http
        .post(format!("{base}/_kiln/pipelines/spot-runner-ctl/next-build"))
        .json(&serde_json::json!({"outcome": "fail", "at": "BUILDING", "reason": "setup script exited 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .post(format!("{base}/_kiln/pipelines/spot-runner-ctl/start"))
        .send()
        .await
        .unwrap();
    let arn = r.json::<Value>().await.unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    ib.wait_terminal(&arn, WAIT).await.unwrap();
    let image = client
        .get_image()
        .image_build_version_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        image.image().unwrap().state().unwrap().reason(),
        Some("setup script exited 2")
    );

    // Events reached the HTTP sink.
    let deadline = tokio::time::Instant::now() + WAIT;
    while received.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<_> = received
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["detail"]["state"]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["BUILDING", "FAILED"]);

    let images: Value = http
        .get(format!("{base}/_kiln/images"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(images[0]["state"], "FAILED");
    assert_eq!(images[0]["pipelineName"], "spot-runner-ctl");

    // Bad control input: a clear 400.
    let r = http
        .put(format!("{base}/_kiln/event-faults"))
        .json(&serde_json::json!({"dorp": ["AVAILABLE"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("dorp"));
    let r = http
        .post(format!("{base}/_kiln/pipelines/nope/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A child process (as a Lambda binary would) reaches the endpoint through nothing but
/// the environment from `LocalImageBuilder::env` and `emulators::aws_env`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process_reaches_endpoint_through_env() {
    let (ib, _client) = start(Timing::manual()).await;
    ib.register_pipeline(PipelineSpec::new("spot-runner-env", ["us-east-1"]))
        .unwrap();
    // Everything else would go to a (here absent) moto: only Image Builder is needed.
    let mut env = kiln_devstack::emulators::aws_env("http://127.0.0.1:9", "us-east-1");
    env.extend(ib.env());
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_probe", "--nocapture", "--include-ignored"])
        .env_remove("AWS_PROFILE")
        .envs(env)
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("PIPELINES=spot-runner-env"), "{text}");
}

#[tokio::test]
#[ignore = "helper run by child_process_reaches_endpoint_through_env"]
async fn env_probe() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = Client::new(&config);
    let out = client
        .list_image_pipelines()
        .send()
        .await
        .expect("endpoint from the environment");
    let names: Vec<_> = out
        .image_pipeline_list()
        .iter()
        .filter_map(|p| p.name())
        .collect();
    println!("PIPELINES={}", names.join(","));
}

/// With an EC2 emulator, finished builds register real AMIs (tagged like the
/// distribution says) and report those ids; a broken EC2 fails the build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amis_are_registered_in_moto_ec2() {
    use kiln_devstack::emulators::Moto;
    let Some(moto) = kiln_devstack::started_or_skip("moto", Moto::start().await) else {
        return;
    };
    let ib = LocalImageBuilder::start(Options {
        timing: fast(),
        ec2_endpoint: Some(moto.endpoint()),
        ..Default::default()
    })
    .await
    .unwrap();
    ib.register_pipeline(
        PipelineSpec::new("spot-runner-ec2", ["us-east-1", "eu-west-1"])
            .ami_tag("kiln:prefix", "spot-runner")
            .ami_tag("kiln:preset", "ec2"),
    )
    .unwrap();

    let describe = |region: &'static str| {
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config(region));
        async move {
            ec2.describe_images()
                .owners("self")
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("tag:kiln:preset")
                        .values("ec2")
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .images()
                .to_vec()
        }
    };

    // The timed clock...
    let timed = ib.start_build("spot-runner-ec2").unwrap();
    let view = ib.wait_terminal(&timed, WAIT).await.unwrap();
    assert_eq!(view.state, ImageState::Available, "{:?}", view.reason);
    // ... and the manual one.
    ib.set_timing(Timing::manual());
    let stepped = ib.start_build("spot-runner-ec2").unwrap();
    for _ in 0..4 {
        ib.step(&stepped).unwrap();
    }
    let stepped_view = ib.image(&stepped).unwrap();
    assert_eq!(stepped_view.state, ImageState::Available);

    for region in ["us-east-1", "eu-west-1"] {
        let images = describe(region).await;
        assert_eq!(images.len(), 2, "{region}: {images:?}");
        for (arn, v) in [(&timed, &view), (&stepped, &stepped_view)] {
            let id = &v.amis[region];
            let image = images
                .iter()
                .find(|i| i.image_id() == Some(id.as_str()))
                .unwrap_or_else(|| panic!("{id} not registered in {region}"));
            let tag = |k: &str| {
                image
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .map(str::to_owned)
            };
            assert_eq!(tag("Ec2ImageBuilderArn").as_deref(), Some(arn.as_str()));
            assert_eq!(tag("kiln:prefix").as_deref(), Some("spot-runner"));
            assert!(image.name().unwrap().starts_with("spot-runner-ec2 "));
            assert!(
                image
                    .block_device_mappings()
                    .iter()
                    .any(|m| m.ebs().and_then(|e| e.snapshot_id()).is_some()),
                "an AMI has a snapshot to clean up"
            );
        }
    }
    assert_ne!(view.amis["us-east-1"], view.amis["eu-west-1"]);

    // EC2 gone: distribution fails, the build is FAILED with the reason.
    drop(moto);
    let broken = ib.start_build("spot-runner-ec2").unwrap();
    for _ in 0..3 {
        ib.step(&broken).unwrap();
    }
    assert_eq!(ib.step(&broken).unwrap(), ImageState::Failed);
    let reason = ib.image(&broken).unwrap().reason.unwrap();
    assert!(reason.starts_with("Distribution failed"), "{reason}");
}
