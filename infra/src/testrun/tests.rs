use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_aws::mock::fakes::{MemImages, MemStore};
use kiln_aws::mock::faults::{Fault, FaultPlan, Faulty, Rule};
use kiln_aws::mock::testbed::MemTestbed;
use kiln_aws::store::StateStore;
use kiln_shared::build::apply_build;
use kiln_shared::preset::{PresetSource, parse_one};
use kiln_shared::state::{AmiRecord, Observation};
use kiln_shared::{ImageState, Preset, time};

use super::*;

const YAML: &str = "name: r\narchitecture: x86_64\nbase_image: ubuntu-22.04\nregions: [us-east-1, us-west-2]\nsetup_script: echo hi\nvalidation_tests:\n  - {name: rstudio, command: systemctl is-active rstudio-server, expected: active}\n  - {name: r, command: R --version, expected_contains: R version 4}\n";

fn preset() -> Preset {
    parse_one(&PresetSource {
        file: "r.yaml".into(),
        text: YAML.into(),
    })
    .unwrap()
    .remove(0)
}

fn options() -> TestOptions {
    TestOptions {
        prefix: "kiln".into(),
        stack_region: "us-east-1".into(),
        region: None,
        ami: None,
        instance_type: None,
        ready_timeout: Duration::from_millis(200),
        test_timeout: Duration::from_millis(200),
        poll: Duration::from_millis(1),
    }
}

/// One available build (`1.0.0/1`) whose AMIs runners use.
async fn store_with_build(p: &Preset) -> MemStore {
    let store = MemStore::default();
    let mut amis = BTreeMap::new();
    amis.insert("us-east-1".to_owned(), "ami-east".to_owned());
    amis.insert("us-west-2".to_owned(), "ami-west".to_owned());
    let obs = Observation {
        preset: p.name.clone(),
        architecture: Some(p.architecture),
        state: ImageState::Available,
        at: time::parse("2026-12-01T00:00:00Z").unwrap(),
        build_id: "arn:aws:imagebuilder:us-east-1:123456789012:image/kiln-r/1.0.0/1".into(),
        amis: amis.clone(),
        home_region: "us-east-1".into(),
        reason: None,
        started: None,
    };
    let build = apply_build(None, &obs, "1.0.0/1").unwrap();
    store.put_build(&build, None).await.unwrap();
    let mut record = AmiRecord::initial(&p.name, Some(p.architecture), obs.at);
    record.ami_id = Some("ami-east".into());
    record.amis = amis;
    record.ami_build_id = Some(obs.build_id.clone());
    store.ami.lock().unwrap().insert(p.name.clone(), record);
    store
}

fn passing_testbed(p: &Preset) -> MemTestbed {
    let t = &p.validation_tests;
    MemTestbed::default()
        .with_outcome(&validation::remote_command(&t[0]), 0, "active\n")
        .with_outcome(&validation::remote_command(&t[1]), 0, "R version 4.3.1\n")
}

struct Run {
    outcome: Result<Outcome, TestError>,
    steps: Vec<Step>,
}

async fn go(
    store: &dyn StateStore,
    bed: &MemTestbed,
    options: &TestOptions,
    cancel_after: Option<Duration>,
) -> Run {
    let images = MemImages::default();
    images
        .pipelines
        .lock()
        .unwrap()
        .insert("kiln-r".into(), "arn:pipeline/kiln-r".into());
    run_with(store, &images, bed, bed, options, cancel_after).await
}

async fn run_with(
    store: &dyn StateStore,
    images: &dyn ImageBuilderApi,
    instances: &dyn TestInstances,
    commands: &dyn RunCommand,
    options: &TestOptions,
    cancel_after: Option<Duration>,
) -> Run {
    let clients = TestClients {
        store,
        images,
        instances,
        commands,
    };
    let steps = Mutex::new(Vec::new());
    let mut cancel: Pin<Box<dyn Future<Output = ()>>> = match cancel_after {
        Some(d) => Box::pin(tokio::time::sleep(d)),
        None => Box::pin(std::future::pending()),
    };
    let outcome = run(&clients, options, &preset(), cancel.as_mut(), &|s| {
        steps.lock().unwrap().push(s.clone())
    })
    .await;
    Run {
        outcome,
        steps: steps.into_inner().unwrap(),
    }
}

fn stored_build(store: &MemStore) -> kiln_shared::build::BuildRecord {
    store
        .builds
        .lock()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .record
        .clone()
}

#[tokio::test]
async fn a_passing_run_reports_each_test_records_it_and_terminates() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = passing_testbed(&p);
    let run = go(&store, &bed, &options(), None).await;
    let outcome = run.outcome.unwrap();
    assert_eq!(outcome.verdict, Verdict::Passed);
    assert_eq!(
        outcome.ami, "ami-east",
        "what runners use in the home region"
    );
    let names: Vec<&str> = run
        .steps
        .iter()
        .map(|s| match s {
            Step::Target { .. } => "target",
            Step::Launched { .. } => "launched",
            Step::Ready { .. } => "ready",
            Step::Test { .. } => "test",
            Step::Recorded { .. } => "recorded",
            Step::Terminated { .. } => "terminated",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        [
            "target",
            "launched",
            "ready",
            "test",
            "test",
            "recorded",
            "terminated"
        ]
    );
    assert!(bed.running().is_empty(), "terminated");
    let (_, spec) = bed.launched.lock().unwrap()[0].clone();
    assert_eq!(spec.image_id, "ami-east");
    assert_eq!(spec.instance_type, "m7i.large", "the pipeline's build type");
    assert_eq!(spec.instance_profile.as_deref(), Some("kiln-image-builder"));
    assert!(
        spec.user_data.contains("shutdown -h +10"),
        "{}",
        spec.user_data
    );
    assert_eq!(spec.tags["kiln:purpose"], "test");
    let build = stored_build(&store);
    assert!(build.validated_now());
    let tested = build.tested.unwrap();
    assert_eq!(
        (tested.region.as_str(), tested.ami_id.as_str()),
        ("us-east-1", "ami-east")
    );
    assert_eq!(build.tests.len(), 2);
    assert_eq!(build.tests[1].output.as_deref(), Some("R version 4.3.1"));
}

#[tokio::test]
async fn a_failing_test_fails_the_run_and_marks_the_build_not_validated() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = passing_testbed(&p).with_outcome(
        &validation::remote_command(&p.validation_tests[0]),
        3,
        "inactive",
    );
    let mut o = options();
    o.region = Some("us-west-2".into());
    let run = go(&store, &bed, &o, None).await;
    let outcome = run.outcome.unwrap();
    assert_eq!(outcome.verdict, Verdict::Failed);
    assert_eq!(outcome.ami, "ami-west");
    assert!(!outcome.results[0].passed && outcome.results[1].passed);
    assert!(bed.running().is_empty());
    let build = stored_build(&store);
    assert!(!build.validated_now(), "kiln test's verdict wins");
    assert!(
        build.validated,
        "the pipeline's TEST phase stays as observed"
    );
    // Outside the stack's region the pipeline's subnet does not apply.
    assert_eq!(bed.launched.lock().unwrap()[0].1.subnet_id, None);
    assert_eq!(report::exit_code(&[outcome]), 1);
}

#[tokio::test]
async fn an_agent_that_never_comes_online_aborts_terminates_and_records_nothing() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = passing_testbed(&p);
    *bed.agent_polls.lock().unwrap() = u32::MAX;
    let run = go(&store, &bed, &options(), None).await;
    let outcome = run.outcome.unwrap();
    let Verdict::Aborted(why) = &outcome.verdict else {
        panic!("{:?}", outcome.verdict)
    };
    assert!(why.contains("SSM agent"), "{why}");
    assert!(bed.running().is_empty(), "terminated");
    assert!(stored_build(&store).tested.is_none());
    assert!(bed.sent.lock().unwrap().is_empty());
    assert_eq!(report::exit_code(&[outcome]), 2);
}

#[tokio::test]
async fn ctrl_c_during_a_hung_test_terminates_the_instance() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = passing_testbed(&p);
    *bed.hang.lock().unwrap() = true;
    let mut o = options();
    o.test_timeout = Duration::from_secs(3600);
    let run = go(&store, &bed, &o, Some(Duration::from_millis(50))).await;
    let outcome = run.outcome.unwrap();
    assert_eq!(
        outcome.verdict,
        Verdict::Aborted("interrupted (Ctrl-C)".into())
    );
    assert_eq!(bed.launched.lock().unwrap().len(), 1);
    assert!(bed.running().is_empty(), "terminated after Ctrl-C");
    assert!(matches!(run.steps.last(), Some(Step::Terminated { .. })));
}

#[tokio::test]
async fn a_test_that_never_finishes_fails_at_its_timeout() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = passing_testbed(&p);
    *bed.hang.lock().unwrap() = true;
    let mut o = options();
    o.test_timeout = Duration::from_millis(1);
    let run = go(&store, &bed, &o, None).await;
    let outcome = run.outcome.unwrap();
    assert_eq!(outcome.verdict, Verdict::Failed);
    assert!(outcome.results.iter().all(|r| !r.passed));
    assert!(bed.running().is_empty());
}

#[tokio::test]
async fn a_failed_terminate_is_retried_then_named_with_the_way_out() {
    let p = preset();
    let store = store_with_build(&p).await;
    let bed = Arc::new(passing_testbed(&p));
    let plan = Arc::new(FaultPlan::new());
    plan.add(Rule::new(Some("ec2:TerminateInstances"), Fault::Server).times(4));
    let faulty = Faulty::new(bed.clone(), plan.clone());
    let images = MemImages::default();
    let run = run_with(&store, &images, &faulty, bed.as_ref(), &options(), None).await;
    assert_eq!(run.outcome.unwrap().verdict, Verdict::Passed);
    assert_eq!(plan.calls()["ec2:TerminateInstances"], 4);
    let Some(Step::TerminateFailed { instance, .. }) = run.steps.last() else {
        panic!("{:?}", run.steps.last())
    };
    let text = report::render(run.steps.last().unwrap());
    assert!(
        text.contains(&format!("--instance-ids {instance}")),
        "{text}"
    );
    // A transient failure is retried to success.
    plan.add(Rule::new(Some("ec2:TerminateInstances"), Fault::Throttle).times(1));
    let run = run_with(&store, &images, &faulty, bed.as_ref(), &options(), None).await;
    assert!(matches!(run.steps.last(), Some(Step::Terminated { .. })));
}

#[tokio::test]
async fn targets_are_checked_before_anything_is_launched() {
    let p = preset();
    let bed = passing_testbed(&p);
    let empty = MemStore::default();
    let run = go(&empty, &bed, &options(), None).await;
    assert!(
        matches!(run.outcome, Err(TestError::NoAmi { .. })),
        "{:?}",
        run.outcome.err()
    );
    let store = store_with_build(&p).await;
    let mut o = options();
    o.region = Some("eu-west-1".into());
    let run = go(&store, &bed, &o, None).await;
    assert!(matches!(run.outcome, Err(TestError::NotARegion { .. })));
    assert!(bed.launched.lock().unwrap().is_empty());
    // An AMI no build made: tested and reported, not recorded.
    o.ami = Some("ami-foreign".into());
    let run = go(&store, &bed, &o, None).await;
    assert_eq!(run.outcome.unwrap().verdict, Verdict::Passed);
    assert!(
        run.steps
            .iter()
            .any(|s| matches!(s, Step::NotRecorded { .. }))
    );
    assert!(stored_build(&store).tested.is_none());
}
