//! preset-init with one custom resource per nested stack (group) of presets: a group
//! never removes another group's presets, and the answer stays bounded.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::preset_init::{CfnRequest, PipelineArns, apply_group, remove_group, respond};

fn arn(preset: &str) -> String {
    format!("arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/spot-runner-{preset}")
}

fn named(name: &str) -> Preset {
    let mut p = preset(X64);
    p.name = name.into();
    p
}

fn props(group: Option<&str>, presets: &[Preset]) -> Value {
    let pipelines: serde_json::Map<String, Value> = presets
        .iter()
        .map(|p| (p.name.clone(), Value::from(arn(&p.name))))
        .collect();
    let mut v = json!({
        "Presets": serde_json::to_string(presets).unwrap(),
        "Pipelines": pipelines,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:spot-runner-preset-init",
        "ServiceTimeout": "300",
    });
    if let Some(g) = group {
        v["Group"] = json!(g);
    }
    v
}

fn request(kind: &str, new: Value, old: Value) -> CfnRequest {
    serde_json::from_value(json!({
        "RequestType": kind,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/x?X-Amz-Signature=s",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ci-PresetGroup07-1ABCDEFGHIJK/0f4b1c70-1111-2222-3333-444455556666",
        "RequestId": "5d478d3c-6b53-4b5e-9c4a-1f0e0e3b8c61",
        "LogicalResourceId": "PresetInit",
        "PhysicalResourceId": "t-presets-PresetGroup07",
        "ResourceProperties": new,
        "OldResourceProperties": old,
    }))
    .unwrap()
}

fn listed(w: &World) -> BTreeSet<String> {
    w.store.presets.lock().unwrap().keys().cloned().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_group_removes_only_its_own_presets() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    let now = t("2026-01-27T10:00:00Z");
    let (a, b, c) = (named("a"), named("b"), named("c"));
    let arns = |ps: &[&Preset]| -> PipelineArns {
        ps.iter().map(|p| (p.name.clone(), arn(&p.name))).collect()
    };
    // Group 1 holds a and b, group 2 holds c.
    apply_group(
        &w.deps,
        &[a.clone(), b.clone()],
        &arns(&[&a, &b]),
        &BTreeSet::new(),
        now,
    )
    .await
    .unwrap();
    let r = apply_group(
        &w.deps,
        std::slice::from_ref(&c),
        &arns(&[&c]),
        &BTreeSet::new(),
        now,
    )
    .await
    .unwrap();
    assert!(
        r.removed.is_empty(),
        "a Create removes nothing of other groups"
    );
    assert_eq!(listed(&w), names(&["a", "b", "c"]));
    // Group 1 drops b: only b goes, c (group 2) stays.
    let r = apply_group(
        &w.deps,
        std::slice::from_ref(&a),
        &arns(&[&a]),
        &names(&["a", "b"]),
        now,
    )
    .await
    .unwrap();
    assert_eq!(r.removed, vec!["b"]);
    assert_eq!(listed(&w), names(&["a", "c"]));
    // Group 2 is deleted (its last preset removed): c goes, a stays.
    let r = remove_group(&w.deps, &names(&["c", "never-applied"]))
        .await
        .unwrap();
    assert_eq!(r.removed, vec!["c"]);
    assert_eq!(listed(&w), names(&["a"]));
    assert!(
        w.store.get_ami("c").await.unwrap().is_some(),
        "records are kept"
    );
}

#[tokio::test]
async fn update_compares_old_and_new_properties_and_delete_removes_the_group() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    let budget = Duration::from_secs(10);
    let (a, b, other) = (named("a"), named("b"), named("other"));
    // Another group's preset, which no request below names.
    let r = respond(
        &w.deps,
        &request(
            "Create",
            props(Some("PresetGroup01"), std::slice::from_ref(&other)),
            Value::Null,
        ),
        budget,
    )
    .await;
    assert_eq!(r.status, "SUCCESS", "{}", r.reason);

    let created = respond(
        &w.deps,
        &request(
            "Create",
            props(Some("PresetGroup07"), &[a.clone(), b.clone()]),
            Value::Null,
        ),
        budget,
    )
    .await;
    assert_eq!(created.status, "SUCCESS", "{}", created.reason);
    assert_eq!(created.data.as_ref().unwrap()["Created"], 2);
    assert_eq!(listed(&w), names(&["a", "b", "other"]));

    // Update: b removed from the group (old properties name it), a unchanged.
    let updated = respond(
        &w.deps,
        &request(
            "Update",
            props(Some("PresetGroup07"), std::slice::from_ref(&a)),
            props(Some("PresetGroup07"), &[a.clone(), b.clone()]),
        ),
        budget,
    )
    .await;
    assert_eq!(updated.status, "SUCCESS", "{}", updated.reason);
    assert_eq!(updated.data.as_ref().unwrap()["Removed"], 1);
    assert_eq!(updated.data.as_ref().unwrap()["Unchanged"], 1);
    assert_eq!(listed(&w), names(&["a", "other"]));
    // The physical id is the one CloudFormation sent: no replacement, no extra Delete.
    assert_eq!(updated.physical_resource_id, "t-presets-PresetGroup07");

    // A rollback is an Update back: b returns, nothing else moves.
    let back = respond(
        &w.deps,
        &request(
            "Update",
            props(Some("PresetGroup07"), &[a.clone(), b.clone()]),
            props(Some("PresetGroup07"), std::slice::from_ref(&a)),
        ),
        budget,
    )
    .await;
    assert_eq!(back.status, "SUCCESS", "{}", back.reason);
    assert_eq!(listed(&w), names(&["a", "b", "other"]));

    // Delete of the group: its presets go, the other group's stays.
    let deleted = respond(
        &w.deps,
        &request(
            "Delete",
            props(Some("PresetGroup07"), &[a.clone(), b.clone()]),
            Value::Null,
        ),
        budget,
    )
    .await;
    assert_eq!(deleted.status, "SUCCESS", "{}", deleted.reason);
    assert_eq!(deleted.data.as_ref().unwrap()["Removed"], 2);
    assert_eq!(listed(&w), names(&["other"]));

    // A resource of an older kiln (no Group, every preset of the stack): Delete keeps all.
    let legacy = respond(
        &w.deps,
        &request(
            "Delete",
            props(None, std::slice::from_ref(&other)),
            Value::Null,
        ),
        budget,
    )
    .await;
    assert_eq!(legacy.status, "SUCCESS");
    assert_eq!(listed(&w), names(&["other"]));
}

#[tokio::test]
async fn the_answer_stays_under_4_kb_with_200_presets_in_a_group() {
    let w = setup();
    w.store.presets.lock().unwrap().clear();
    // Long names: the worst case for anything that would list them.
    let presets: Vec<Preset> = (0..200)
        .map(|i| named(&format!("a-rather-long-preset-name-number-{i:04}")))
        .collect();
    let budget = Duration::from_secs(30);
    let create = request(
        "Create",
        props(Some("PresetGroup07"), &presets),
        Value::Null,
    );
    let r = respond(&w.deps, &create, budget).await;
    assert_eq!(r.status, "SUCCESS", "{}", r.reason);
    assert_eq!(r.data.as_ref().unwrap()["Created"], 200);
    assert_eq!(r.data.as_ref().unwrap()["Started"], 200);
    // Exactly the bytes send_response PUTs.
    let body = serde_json::to_string(&r).unwrap();
    assert!(body.len() < 4096, "{} bytes: {body}", body.len());

    // Removing them all is bounded the same way.
    let update = request(
        "Update",
        props(Some("PresetGroup07"), &presets[..1]),
        props(Some("PresetGroup07"), &presets),
    );
    let r = respond(&w.deps, &update, budget).await;
    assert_eq!(r.data.as_ref().unwrap()["Removed"], 199);
    assert!(serde_json::to_string(&r).unwrap().len() < 4096);

    // A failure's reason is truncated too.
    let mut bad = props(Some("PresetGroup07"), &presets);
    bad["Pipelines"] = json!({});
    let r = respond(&w.deps, &request("Create", bad, Value::Null), budget).await;
    assert_eq!(r.status, "FAILED");
    assert!(serde_json::to_string(&r).unwrap().len() < 4096);
}
