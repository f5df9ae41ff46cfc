use super::*;
use crate::preset_init::{InitError, apply_presets, parse_properties};

#[tokio::test]
async fn create_update_remove() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    w.images.pipelines.lock().unwrap().insert(
        "spot-runner-linux-arm64".into(),
        "arn:pipeline/linux-arm64".into(),
    );
    let x64 = preset(X64);
    let arm = preset(ARM64);
    let now = t("2026-01-27T10:00:00Z");

    let r = apply_presets(&w.deps, &[x64.clone(), arm.clone()], now)
        .await
        .unwrap();
    assert_eq!(r.created, vec!["linux-x64", "linux-arm64"]);
    assert_eq!(r.started.len(), 2);
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
    let again = apply_presets(&w.deps, &[x64.clone(), arm.clone()], now)
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
    let upd = apply_presets(&w.deps, &[changed], now).await.unwrap();
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
    let err = apply_presets(&w.deps, &[x64.clone(), arm], t("2026-01-27T10:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, InitError::PipelineMissing(ref p) if p == "spot-runner-linux-arm64"),
        "{err}"
    );
    let err = apply_presets(
        &w.deps,
        &[x64.clone(), x64.clone()],
        t("2026-01-27T10:00:00Z"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("duplicate preset name"), "{err}");
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
    assert_eq!(
        parse_properties(&json!({"Presets": text}), "spot-runner").unwrap(),
        vec![x64.clone()]
    );
    assert_eq!(
        parse_properties(&json!({"Presets": [x64.clone()]}), "spot-runner").unwrap(),
        vec![x64]
    );
}
