use super::*;
use crate::preset_init::{InitError, PipelineArns, apply_presets, parse_properties};

fn pipeline_arn(preset: &str) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/spot-runner-{preset}")
}

fn pipelines(presets: &[&str]) -> PipelineArns {
    presets
        .iter()
        .map(|p| (p.to_string(), pipeline_arn(p)))
        .collect()
}

#[tokio::test]
async fn create_update_remove() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    let x64 = preset(X64);
    let arm = preset(ARM64);
    let now = t("2026-01-27T10:00:00Z");
    let both = pipelines(&["linux-x64", "linux-arm64"]);

    let r = apply_presets(&w.deps, &[x64.clone(), arm.clone()], &both, now)
        .await
        .unwrap();
    assert_eq!(r.created, vec!["linux-x64", "linux-arm64"]);
    assert_eq!(r.started.len(), 2);
    // Started from the ARNs the template passed in, and stored for reconcile.
    assert_eq!(
        *w.images.started.lock().unwrap(),
        vec![pipeline_arn("linux-x64"), pipeline_arn("linux-arm64")]
    );
    let stored = w.store.get_preset("linux-arm64").await.unwrap().unwrap();
    assert_eq!(stored.pipeline_arn, Some(pipeline_arn("linux-arm64")));
    let rec = record(&w).await;
    assert_eq!(
        (rec.status, rec.ami_id.clone()),
        (BuildStatus::Building, None)
    );
    // Placeholder created where absent, the operator's existing config untouched.
    let west = w.configs.value(WEST, PARAM).unwrap();
    assert!(west["amiId"].is_null());
    assert_eq!(west["region"], WEST);
    assert_eq!(w.configs.value(EAST, PARAM).unwrap()["maxRunners"], 4);

    // Same presets again: nothing started, records not reset.
    w.store
        .ami
        .lock()
        .unwrap()
        .get_mut("linux-x64")
        .unwrap()
        .ami_id = Some("ami-keep".into());
    let again = apply_presets(&w.deps, &[x64.clone(), arm.clone()], &both, now)
        .await
        .unwrap();
    assert_eq!(again.unchanged.len(), 2);
    assert!(again.started.is_empty());
    assert_eq!(record(&w).await.ami_id.as_deref(), Some("ami-keep"));

    // A changed preset rebuilds and refreshes settings, keeping the AMI and extra keys.
    let mut changed = x64.clone();
    changed.labels = vec!["gpu".into()];
    w.configs
        .set(EAST, PARAM, r#"{"amiId":"ami-keep","maxRunners":4}"#);
    let upd = apply_presets(&w.deps, &[changed], &both, now)
        .await
        .unwrap();
    assert_eq!(upd.changed, vec!["linux-x64"]);
    assert_eq!(upd.removed, vec!["linux-arm64"]);
    assert_eq!(upd.started.keys().collect::<Vec<_>>(), vec!["linux-x64"]);
    let east = w.configs.value(EAST, PARAM).unwrap();
    assert_eq!(
        (
            east["amiId"].clone(),
            east["maxRunners"].clone(),
            east["labels"].clone()
        ),
        (json!("ami-keep"), json!(4), json!(["gpu"]))
    );
    assert!(
        w.store.get_ami("linux-arm64").await.unwrap().is_some(),
        "removal keeps records"
    );
    assert!(w.store.get_preset("linux-arm64").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_input_and_missing_pipelines_write_nothing() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    let x64 = preset(X64);
    let arm = preset(ARM64); // no pipeline for it
    let only_x64 = pipelines(&["linux-x64"]);
    let at = t("2026-01-27T10:00:00Z");
    let err = apply_presets(&w.deps, &[x64.clone(), arm], &only_x64, at)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InitError::PipelineMissing(ref p) if p == "linux-arm64"),
        "{err}"
    );
    let err = apply_presets(&w.deps, &[x64.clone(), x64.clone()], &only_x64, at)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("duplicate preset name"), "{err}");
    let not_a_pipeline = PipelineArns::from([("linux-x64".into(), "spot-runner-linux-x64".into())]);
    let err = apply_presets(&w.deps, std::slice::from_ref(&x64), &not_a_pipeline, at)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not an image pipeline ARN"),
        "{err}"
    );
    assert!(w.store.ami.lock().unwrap().is_empty());
    assert!(w.store.presets.lock().unwrap().is_empty());
    assert!(w.images.started.lock().unwrap().is_empty());
    assert_eq!(w.configs.0.lock().unwrap().len(), 1);

    assert!(parse_properties(&json!({"Presets": "[{]"}), "spot-runner").is_err());
    assert!(
        parse_properties(&json!({}), "spot-runner")
            .unwrap_err()
            .to_string()
            .contains("Presets is missing")
    );
    let e =
        parse_properties(&json!({"Presets": "[]", "Prefix": "other"}), "spot-runner").unwrap_err();
    assert!(e.to_string().contains("KILN_PREFIX"), "{e}");
    let text = serde_json::to_string(std::slice::from_ref(&x64)).unwrap();
    let props = parse_properties(
        &json!({"Presets": text, "Pipelines": {"linux-x64": pipeline_arn("linux-x64")}}),
        "spot-runner",
    )
    .unwrap();
    assert_eq!(
        (props.presets, props.pipelines),
        (vec![x64.clone()], only_x64)
    );
    let props = parse_properties(&json!({"Presets": [x64.clone()]}), "spot-runner").unwrap();
    assert_eq!((props.presets, props.pipelines.len()), (vec![x64], 0));
    let e =
        parse_properties(&json!({"Presets": "[]", "Pipelines": ["x"]}), "spot-runner").unwrap_err();
    assert!(e.to_string().contains("Pipelines"), "{e}");
}

#[tokio::test]
async fn items_written_before_the_pipeline_arn_get_it_without_a_rebuild() {
    let w = setup();
    let x64 = preset(X64);
    // An item as an older kiln wrote it: same content, no ARN.
    w.store.presets.lock().unwrap().insert(
        x64.name.clone(),
        PresetItem::new(&x64, "spot-runner", EAST, t("2026-01-27T10:00:00Z")),
    );
    let r = apply_presets(
        &w.deps,
        std::slice::from_ref(&x64),
        &pipelines(&["linux-x64"]),
        t("2026-01-27T11:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(r.unchanged, vec!["linux-x64"]);
    assert!(r.started.is_empty(), "no rebuild for an ARN refresh");
    let stored = w.store.get_preset("linux-x64").await.unwrap().unwrap();
    assert_eq!(stored.pipeline_arn, Some(pipeline_arn("linux-x64")));
}

/// Everything the subscriber writes, for asserting on log lines.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn transport_errors_never_log_or_return_the_presigned_response_url() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime is single-threaded: the default holds for the whole handler.
    let _guard = tracing::subscriber::set_default(subscriber);

    // A port nothing listens on: every PUT fails before any HTTP status.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "X-Amz-Signature=0123456789abcdef";
    let url = format!("http://127.0.0.1:{port}/cfn-response-bucket/stack?{secret}");
    let w = setup();
    let event = json!({
        "RequestType": "Delete",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/kiln/1",
        "RequestId": "r-1",
        "LogicalResourceId": "PresetInit",
        "PhysicalResourceId": "spot-runner-presets",
    });
    let err = crate::preset_init::handle_custom_resource(
        &w.deps,
        &reqwest::Client::new(),
        event,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    let returned = err.to_string();
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("answering CloudFormation failed"),
        "the failures are logged: {logged}"
    );
    for text in [&returned, &logged] {
        assert!(!text.contains(secret), "pre-signed URL leaked: {text}");
        assert!(!text.contains("cfn-response-bucket"), "URL leaked: {text}");
    }
}
