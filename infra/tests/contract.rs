//! The template and the Lambdas agree: the custom resource's properties are what
//! preset-init parses, every environment variable the template sets is one the Lambdas
//! read (with the meaning intended), and the table the template declares is the table
//! the Lambdas create locally.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use kiln_infra::template::{self, SynthOptions};
use serde_json::Value;

/// The presets and the core template.
fn example_template() -> (Vec<kiln_shared::Preset>, Value) {
    let (presets, synthesized) = example_templates();
    (presets, synthesized.core)
}

fn example_templates() -> (Vec<kiln_shared::Preset>, template::Synthesized) {
    let presets = kiln_infra::presets::load(&repo_root().join("presets")).unwrap();
    let t = template::synth(&presets, &SynthOptions::default()).unwrap();
    (presets, t)
}

const EDGE_SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/kiln/edge-secret-AbCdEf";

/// Values a deployment would give the template's parameters and resources.
fn resolve(value: &Value, t: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // The state table: the stack's own (the condition's true branch; adopting a
        // kept table names the same table).
        Value::Object(o) if o.contains_key("Fn::If") => {
            assert_eq!(o["Fn::If"][0], "CreateStateTable", "{value}");
            resolve(&o["Fn::If"][1], t)
        }
        Value::Object(o) if o.contains_key("Ref") => match o["Ref"].as_str().unwrap() {
            "StateTable" => "spot-runner-state".into(),
            "EdgeUrl" => "https://status.example.com".into(),
            "EdgeSecretArn" => EDGE_SECRET_ARN.into(),
            "ReconcileThresholdMinutes" => "45".into(),
            "FailedBuildsTopic" => "arn:aws:sns:us-east-1:123456789012:spot-runner-alerts".into(),
            other => t["Parameters"][other]["Default"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    t["Parameters"][other]["Default"]
                        .as_u64()
                        .map(|n| n.to_string())
                })
                .unwrap_or_else(|| panic!("no value for Ref {other}")),
        },
        other => panic!("unexpected value {other}"),
    }
}

#[test]
fn preset_init_accepts_the_custom_resource_properties() {
    let (presets, synthesized) = example_templates();
    let core = &synthesized.core;
    let mut all_parsed = Vec::new();
    let mut all_pipelines = Vec::new();
    for group in &synthesized.groups {
        let t = &group.template;
        let resource = &t["Resources"]["PresetInit"];
        assert_eq!(resource["Type"], "Custom::KilnPresets");
        let props = &resource["Properties"];
        // The core's preset-init function answers it, within its timeout.
        assert_eq!(props["ServiceToken"]["Ref"], "PresetInitFunctionArn");
        assert_eq!(
            core["Resources"][&group.id]["Properties"]["Parameters"]["PresetInitFunctionArn"]["Fn::GetAtt"]
                [0],
            "PresetInitFunction"
        );
        assert_eq!(props["ServiceTimeout"], 300);
        // Every preset gets its own pipeline's ARN (which also orders the pipeline first).
        let mut referenced = BTreeSet::new();
        let mut pipelines = serde_json::Map::new();
        for (name, arn) in props["Pipelines"].as_object().unwrap() {
            let id = arn["Fn::GetAtt"][0].as_str().unwrap();
            assert_eq!(arn["Fn::GetAtt"][1], "Arn", "{name}");
            assert_eq!(
                t["Resources"][id]["Type"], "AWS::ImageBuilder::ImagePipeline",
                "{name}"
            );
            let pipeline_name = &t["Resources"][id]["Properties"]["Name"]["Fn::Sub"];
            assert_eq!(*pipeline_name, format!("${{Prefix}}-{name}"), "{name}");
            referenced.insert(id.to_owned());
            pipelines.insert(
                name.clone(),
                format!(
                    "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/spot-runner-{name}"
                )
                .into(),
            );
        }
        let group_pipelines: BTreeSet<String> = t["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::ImageBuilder::ImagePipeline")
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(referenced, group_pipelines);
        // The group's Prefix is the core's.
        assert_eq!(
            core["Resources"][&group.id]["Properties"]["Parameters"]["Prefix"]["Ref"],
            "Prefix"
        );
        let resolved = serde_json::json!({
            "Prefix": resolve(&props["Prefix"], core),
            "Presets": props["Presets"],
            "Pipelines": pipelines,
        });
        let parsed = kiln_lambdas::preset_init::parse_properties(&resolved, "spot-runner")
            .expect("preset-init parses what synth renders");
        assert_eq!(
            parsed.presets.iter().map(|p| &p.name).collect::<Vec<_>>(),
            group.presets.iter().collect::<Vec<_>>()
        );
        all_parsed.extend(parsed.presets);
        all_pipelines.extend(parsed.pipelines.into_keys());
    }
    let hashes = |ps: &[kiln_shared::Preset]| -> BTreeMap<String, String> {
        ps.iter()
            .map(|p| (p.name.clone(), p.content_hash()))
            .collect()
    };
    // Every preset in exactly one group.
    assert_eq!(all_parsed.len(), presets.len());
    assert_eq!(hashes(&all_parsed), hashes(&presets));
    all_pipelines.sort();
    assert_eq!(
        all_pipelines.iter().collect::<Vec<_>>(),
        hashes(&presets).keys().collect::<Vec<_>>()
    );
}

#[test]
fn every_lambda_environment_variable_is_read_by_the_lambdas() {
    let (_, t) = example_template();
    let functions: Vec<(&String, &Value)> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .collect();
    assert_eq!(functions.len(), 4);
    for (id, f) in functions {
        let vars: BTreeMap<String, String> = f["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), resolve(v, &t)))
            .collect();
        let asked = RefCell::new(BTreeSet::new());
        let config = kiln_lambdas::Config::from_lookup(|name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            if name == "AWS_REGION" {
                return Some("us-east-1".into());
            }
            vars.get(name).cloned()
        })
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        for name in vars.keys().filter(|k| k.as_str() != "RUST_LOG") {
            assert!(
                asked.borrow().contains(name),
                "{id} sets {name}, which the Lambdas never read"
            );
        }
        assert_eq!(config.table, "spot-runner-state", "{id}");
        assert_eq!(config.prefix, "spot-runner", "{id}");
        assert_eq!(
            config.edge_url.as_deref(),
            Some("https://status.example.com"),
            "{id}"
        );
        // Only the functions that sign or verify get the secret, and only its ARN.
        let signs = id != "PresetInitFunction";
        assert_eq!(
            config.edge_secret_arn.as_deref(),
            signs.then_some(EDGE_SECRET_ARN),
            "{id}"
        );
        assert!(
            vars.keys()
                .all(|k| !k.contains("SECRET") || k.ends_with("_ARN")),
            "{id}: a secret value in the environment: {vars:?}"
        );
        if id == "ReconcileFunction" || id == "StatusOriginFunction" {
            assert_eq!(config.stale_after, Duration::from_secs(45 * 60), "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_template_table_is_the_table_the_lambdas_create() {
    if tool("moto_server").is_none() {
        return;
    }
    let moto = kiln_devstack::emulators::Moto::start().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config("us-east-1"));
    kiln_aws::store::create_table(&client, "t").await.unwrap();
    let table = client
        .describe_table()
        .table_name("t")
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();

    let (_, t) = example_template();
    let declared = &t["Resources"]["StateTable"]["Properties"];
    let keys = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        ks.iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let declared_keys = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap().to_owned(),
                    k["KeyType"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(table.key_schema()),
        declared_keys(&declared["KeySchema"])
    );
    let gsi = &table.global_secondary_indexes()[0];
    let declared_gsi = &declared["GlobalSecondaryIndexes"][0];
    assert_eq!(gsi.index_name(), declared_gsi["IndexName"].as_str());
    assert_eq!(
        keys(gsi.key_schema()),
        declared_keys(&declared_gsi["KeySchema"])
    );
    assert_eq!(
        gsi.projection()
            .and_then(|p| p.projection_type())
            .map(|p| p.as_str()),
        declared_gsi["Projection"]["ProjectionType"].as_str()
    );
    let mut attrs: Vec<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    attrs.sort();
    let mut declared_attrs: Vec<(String, String)> = declared["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_owned(),
                a["AttributeType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    declared_attrs.sort();
    assert_eq!(attrs, declared_attrs);
}
