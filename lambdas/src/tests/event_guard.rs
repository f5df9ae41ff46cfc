//! ami-update against hostile and foreign input: clock skew, "is this ours" before any
//! AWS call, and the whole handler input fuzzed (envelope + detail, any size or depth).
use super::*;
use crate::ami_update::{handle_event_at, handle_raw, handle_text};
use serde_json::value::RawValue;

/// The fakes behind the counting wrapper, the way the Lambda sees AWS.
fn counted(w: &World, config: Config) -> (Deps, Arc<FaultPlan>) {
    let plan = Arc::new(FaultPlan::new());
    let deps = crate::Deps::new(config, w.fakes.clients().with_edge(w.edge.clone()))
        .with_faults(plan.clone());
    (deps, plan)
}

fn ignored(ack: EventAck) -> Ignored {
    match ack {
        EventAck::Ignored(why) => why,
        other => panic!("expected an acknowledged no-op, got {other:?}"),
    }
}

/// Everything a handler could have written.
fn state(w: &World) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{}",
        w.store.ami.lock().unwrap(),
        w.store.builds.lock().unwrap(),
        w.configs.0.lock().unwrap(),
        w.edge.0.lock().unwrap().len()
    )
}

#[tokio::test]
async fn an_event_dated_beyond_the_skew_is_acknowledged_and_not_applied() {
    let w = setup();
    let (deps, plan) = counted(&w, config());
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    let now = t("2026-01-27T12:00:00Z");
    for (at, state) in [
        ("9999-12-31T23:59:59Z", ImageState::Available),
        ("2099-01-01T00:00:00Z", ImageState::Building),
        ("2026-01-27T12:05:01Z", ImageState::Available),
    ] {
        let why = ignored(
            handle_event_at(&deps, event(state, at, 3), now)
                .await
                .unwrap(),
        );
        assert!(matches!(why, Ignored::FutureDated { .. }), "{at}: {why:?}");
        assert_eq!(plan.aws_calls(), 0, "{at}: decided before any AWS call");
    }
    assert!(w.store.ami.lock().unwrap().is_empty());
    // Exactly at the skew: applied, and the real events after it still win.
    let o = processed(
        handle_event_at(
            &deps,
            event(ImageState::Building, "2026-01-27T12:05:00Z", 3),
            now,
        )
        .await
        .unwrap(),
    );
    assert!(o.record_written);
    let mut tight = config();
    tight.max_event_skew = std::time::Duration::from_secs(10);
    let (deps, _) = counted(&w, tight);
    let why = ignored(
        handle_event_at(
            &deps,
            event(ImageState::Available, "2026-01-27T12:00:11Z", 3),
            now,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        why,
        Ignored::FutureDated {
            time: "2026-01-27T12:00:11Z".into(),
            ahead_secs: 11
        }
    );
}

#[tokio::test]
async fn a_stored_key_beyond_the_skew_does_not_freeze_the_preset() {
    let w = setup();
    // A record written by an old build from a far-future event.
    let mut frozen = kiln_shared::AmiRecord::initial("linux-x64", None, t("2026-01-27T10:00:00Z"));
    frozen.order_key = format!("9999-01-01T00:00:00Z#09#{}", arn(1));
    frozen.ami_order_key = Some(frozen.order_key.clone());
    frozen.status = BuildStatus::Ready;
    w.store
        .ami
        .lock()
        .unwrap()
        .insert("linux-x64".into(), frozen);
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
    assert!(o.record_written, "the real event heals the record");
    let r = record(&w).await;
    assert_eq!(r.ami_id.as_deref(), Some("ami-03east"));
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["amiId"], "ami-03east");
}

#[tokio::test]
async fn pushes_are_dated_by_the_clock_never_by_the_event() {
    let w = setup();
    put_image(&w, 3, ImageState::Building, "2026-01-27T11:00:00Z");
    // Within the skew, ahead of the clock: applied, but the push is dated now.
    let ahead = Utc::now() + chrono::Duration::seconds(240);
    let o = processed(
        handle_event(
            &w.deps,
            event(ImageState::Building, &time::format(ahead), 3),
        )
        .await
        .unwrap(),
    );
    assert!(o.record_written);
    let after = Utc::now();
    let pushes = w.edge.0.lock().unwrap().clone();
    assert_eq!(pushes.len(), 1);
    let generated = time::parse(&pushes[0].generated_at).unwrap();
    assert!(
        generated <= after,
        "push dated {generated}, ahead of the clock {after}"
    );
}

#[tokio::test]
async fn foreign_events_are_acknowledged_before_any_image_builder_call() {
    let w = setup();
    let (deps, plan) = counted(&w, config());
    let other = |recipe: &str| {
        let mut v = event(ImageState::Available, "2026-01-27T12:00:00Z", 3);
        v["resources"] = json!([format!(
            "arn:aws:imagebuilder:us-east-1:123456789012:image/{recipe}/1.0.0/1"
        )]);
        v
    };
    // Decided from the event alone: no AWS call at all.
    for recipe in ["team-b-linux-x64", "spot-runnerx-linux-x64", "linux-x64"] {
        plan.reset_counts();
        let why = ignored(handle_event(&deps, other(recipe)).await.unwrap());
        assert_eq!(why, Ignored::NotOurs(recipe.into()));
        assert_eq!(plan.aws_calls(), 0, "{recipe}");
    }
    // A second stack whose prefix extends ours (`spot-runner-x`, preset linux-x64),
    // and a removed preset's in-flight build: one PRESET read, never GetImage.
    for recipe in ["spot-runner-x-linux-x64", "spot-runner-gone"] {
        plan.reset_counts();
        let why = ignored(handle_event(&deps, other(recipe)).await.unwrap());
        assert_eq!(why, Ignored::NotOurs(recipe.into()));
        assert_eq!(
            plan.calls(),
            BTreeMap::from([("dynamodb:GetItem".to_owned(), 1)]),
            "{recipe}"
        );
    }
    assert!(w.store.ami.lock().unwrap().is_empty());
}

/// Deterministic xorshift: the same cases on every run, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn deep(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// A hostile value for any field.
fn hostile(rng: &mut Rng) -> Value {
    const DATES: [&str; 12] = [
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "+275760-09-13T00:00:00Z",
        "-0001-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-27T12:00:00+14:00",
        "2026-01-27T12:00:00.999999999Z",
        "2026-01-27T24:00:00Z",
        "1970-01-01T00:00:00Z",
        "2026-01-27 12:00:00",
        "",
        "2026-01-27T12:00:00Z\u{0000}",
    ];
    match rng.below(11) {
        0 => Value::String("x".repeat(300 * 1024)),
        1 => serde_json::from_str(&deep(100)).unwrap(),
        2 => Value::String((*rng.pick(&DATES)).into()),
        3 => json!(null),
        4 => json!(rng.next() as i64),
        5 => json!(1e308),
        6 => json!([format!(
            "arn:aws:imagebuilder:us-east-1:123456789012:image/spot-runner-linux-x64/1.0.42/{}",
            "9".repeat(rng.below(40))
        )]),
        7 => json!({ "status": rng.pick(&["AVAILABLE", "EXPLODED", "", "available"]).to_string() }),
        8 => json!(["é\u{1F600}\u{FFFF}", {"a": []}]),
        9 => json!(true),
        _ => json!({}),
    }
}

fn mutate(rng: &mut Rng, base: &Value) -> String {
    let mut v = base.clone();
    for _ in 0..=rng.below(3) {
        let paths: [&[&str]; 10] = [
            &["source"],
            &["detail-type"],
            &["time"],
            &["id"],
            &["resources"],
            &["detail"],
            &["detail", "state"],
            &["detail", "state", "status"],
            &["detail", "state", "reason"],
            &["detail", "previous-state"],
        ];
        let path = *rng.pick(&paths);
        let (last, parents) = path.split_last().unwrap();
        let mut slot = &mut v;
        for p in parents {
            if !slot[*p].is_object() {
                slot[*p] = json!({});
            }
            slot = &mut slot[*p];
        }
        if rng.below(4) == 0 {
            if let Some(o) = slot.as_object_mut() {
                o.remove(*last);
            }
        } else {
            slot[*last] = hostile(rng);
        }
    }
    let text = v.to_string();
    match rng.below(8) {
        // The whole event nested thousands of levels deep, or cut short.
        0 => format!("{}{text}{}", "[".repeat(5000), "]".repeat(5000)),
        1 => String::from_utf8_lossy(&text.as_bytes()[..rng.below(text.len().max(1))]).into_owned(),
        2 => format!(
            "{{\"detail\": {}, \"pad\": \"{}\"}}",
            deep(20_000),
            "y".repeat(1 << 20)
        ),
        _ => text,
    }
}

#[tokio::test]
async fn the_whole_handler_input_fuzzed_never_fails_and_malformed_input_writes_nothing() {
    let w = setup();
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    let base = event(ImageState::Available, "2026-01-27T12:00:00Z", 3);
    let now = t("2026-01-27T12:30:00Z");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut acked, mut processed_n) = (0, 0);
    for case in 0..400 {
        let text = mutate(&mut rng, &base);
        let before = state(&w);
        let ack = handle_text(&w.deps, &text, now).await;
        let ack = ack.unwrap_or_else(|e| panic!("case {case}: Err {e} would be retried"));
        match ack {
            EventAck::Ignored(_) => {
                acked += 1;
                assert_eq!(state(&w), before, "case {case}: ignored input wrote");
            }
            EventAck::Processed(_) => processed_n += 1,
        }
    }
    assert!(acked > 300, "most mutations are malformed: {acked}");
    assert!(processed_n > 0, "some mutations are still valid events");
}

#[tokio::test]
async fn the_binary_payload_takes_any_depth_and_size_to_the_handler() {
    let w = setup();
    let huge_arn = format!(
        "{{\"source\":\"aws.imagebuilder\",\"detail-type\":\"EC2 Image Builder Image State Change\",\"time\":\"2026-01-27T12:00:00Z\",\"resources\":[\"arn:aws:imagebuilder:us-east-1:123456789012:image/{}/1.0.0/1\"],\"detail\":{{\"state\":{{\"status\":\"AVAILABLE\"}}}}}}",
        "r".repeat(200 * 1024)
    );
    for (text, value_fails) in [
        (deep(10_000), true),
        (format!("{{\"detail\": {}}}", deep(100_000)), true),
        (huge_arn, false),
        (format!("\"{}\"", "z".repeat(4 << 20)), false),
    ] {
        // The runtime's own deserialiser (serde_path_to_error over serde_json), as
        // lambda_runtime runs it before the handler.
        let jd = &mut serde_json::Deserializer::from_slice(text.as_bytes());
        let payload: Box<RawValue> = serde_path_to_error::deserialize(jd).expect("any JSON");
        // The old payload type: deep input failed there, before the handler.
        let jd = &mut serde_json::Deserializer::from_slice(text.as_bytes());
        assert_eq!(
            serde_path_to_error::deserialize::<_, Value>(jd).is_err(),
            value_fails
        );
        let why = ignored(handle_raw(&w.deps, &payload).await.unwrap());
        assert!(matches!(why, Ignored::Malformed(_)), "{why:?}");
    }
    assert!(w.store.ami.lock().unwrap().is_empty());
    assert!(w.store.builds.lock().unwrap().is_empty());
}

#[tokio::test]
async fn reconcile_heals_a_record_whose_key_lies_in_the_future() {
    let w = setup();
    // A BUILDING dated 2099 of a build Image Builder never listed.
    let mut frozen = kiln_shared::AmiRecord::initial("linux-x64", None, t("2026-01-27T10:00:00Z"));
    frozen.updated_at = t("2099-01-01T00:00:00Z");
    frozen.order_key = format!("2099-01-01T00:00:00Z#03#{}", arn(99));
    frozen.build_id = Some(arn(99));
    w.store
        .ami
        .lock()
        .unwrap()
        .insert("linux-x64".into(), frozen.clone());
    let now = t("2026-01-27T12:30:00Z");
    assert!(crate::reconcile::is_stale(
        &frozen,
        now,
        w.deps.config.stale_after
    ));
    put_image(&w, 3, ImageState::Available, "2026-01-27T11:00:00Z");
    let report = crate::reconcile::reconcile(&w.deps, now).await.unwrap();
    assert_eq!(report.corrected, vec!["linux-x64".to_owned()], "{report:?}");
    let r = record(&w).await;
    assert_eq!(r.status, BuildStatus::Ready);
    assert_eq!(r.ami_id.as_deref(), Some("ami-03east"));
}
