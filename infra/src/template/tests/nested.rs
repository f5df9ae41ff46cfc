//! The nested layout: groups, their templates and the core's nested stacks.

use super::*;

fn preset_files(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let extra = match i % 3 {
                0 => "additional_docker_images: [alpine]\nvalidation_tests: [{name: t, command: c, expected: e}]\n",
                1 => "regions: [us-east-1, eu-west-1]\n",
                _ => "disk_size_gb: 64\n",
            };
            (
                format!("p{i:04}.yaml"),
                format!("name: preset-{i:04}\narchitecture: x86_64\nbase_image: ubuntu-24.04\nsetup_script: apt-get install -y git\n{extra}"),
            )
        })
        .collect()
}

fn many(n: usize) -> Vec<Preset> {
    let files = preset_files(n);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    presets(&refs)
}

#[test]
fn a_thousand_presets_fit_one_deployment() {
    let all = many(1000);
    let s = synth(&all, &SynthOptions::default()).unwrap();
    let core = render(&s.core, Format::Json).unwrap();
    assert!(core.len() < MAX_TEMPLATE_BYTES / 4, "{}", core.len());
    let core_resources = s.core["Resources"].as_object().unwrap().len();
    assert!(core_resources < 200, "{core_resources}");
    let mut seen = 0;
    let mut fullest = 0;
    for g in &s.groups {
        let n = g.template["Resources"].as_object().unwrap().len();
        fullest = fullest.max(n);
        // Well under the limits: room for presets to grow.
        assert!(n < MAX_RESOURCES / 2, "{}: {n} resources", g.file);
        assert!(
            g.text.len() < MAX_TEMPLATE_BYTES / 2,
            "{}: {} bytes",
            g.file,
            g.text.len()
        );
        assert_eq!(
            s.core["Resources"][&g.id]["Type"],
            "AWS::CloudFormation::Stack"
        );
        seen += g.presets.len();
    }
    assert_eq!(seen, 1000);
    assert_eq!(s.groups.len() as u32, groups::BUCKETS);
    eprintln!("1,000 presets: core {core_resources} resources, fullest group {fullest}");
}

#[test]
fn only_non_empty_groups_are_emitted_and_a_preset_never_moves() {
    let all = many(300);
    let few = synth(&all[..3], &SynthOptions::default()).unwrap();
    assert!(few.groups.len() <= 3);
    let full = synth(&all, &SynthOptions::default()).unwrap();
    let group_of = |s: &Synthesized, name: &str| {
        s.groups
            .iter()
            .find(|g| g.presets.iter().any(|p| p == name))
            .map(|g| g.id.clone())
    };
    // Growing from 3 to 300 presets moves none of the 3.
    for p in &all[..3] {
        assert_eq!(
            group_of(&few, &p.name),
            group_of(&full, &p.name),
            "{}",
            p.name
        );
        assert_eq!(
            group_of(&full, &p.name).unwrap(),
            groups::logical_id(groups::bucket(&p.name))
        );
    }
    let stacks = full.core["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::CloudFormation::Stack")
        .count();
    assert_eq!(stacks, full.groups.len());
}

#[test]
fn a_changed_setup_script_changes_only_its_group() {
    let before_presets = many(300);
    let mut after_presets = before_presets.clone();
    after_presets[17].setup_script.push_str("\necho changed\n");
    let changed = groups::logical_id(groups::bucket(&after_presets[17].name));
    let before = synth(&before_presets, &SynthOptions::default()).unwrap();
    let after = synth(&after_presets, &SynthOptions::default()).unwrap();
    assert_eq!(before.groups.len(), after.groups.len());
    let mut differing = Vec::new();
    for (b, a) in before.groups.iter().zip(&after.groups) {
        assert_eq!(b.id, a.id);
        if b.key != a.key {
            assert_ne!(b.text, a.text);
            differing.push(a.id.clone());
        } else {
            assert_eq!(b.text, a.text, "same key, same bytes");
        }
    }
    assert_eq!(differing, vec![changed.clone()]);
    // In the core, only that nested stack's TemplateURL differs.
    let mut core_before = before.core.clone();
    let url = |t: &Value| t["Resources"][&changed]["Properties"]["TemplateURL"].clone();
    assert_ne!(url(&core_before), url(&after.core));
    core_before["Resources"][&changed]["Properties"]["TemplateURL"] = url(&after.core);
    assert_eq!(core_before, after.core);
    // The URL names the key the group is uploaded under.
    let group = after.groups.iter().find(|g| g.id == changed).unwrap();
    assert_eq!(
        url(&after.core)["Fn::Sub"],
        format!(
            "https://${{CodeBucket}}.s3.${{AWS::Region}}.${{AWS::URLSuffix}}/{}",
            group.key
        )
    );
    assert_eq!(group.key, groups::content_key(&group.text, &group.file));
}

#[test]
fn nested_stacks_wait_for_the_event_rule_and_pass_the_core_to_their_presets() {
    let s = synth(&many(5), &SynthOptions::default()).unwrap();
    for g in &s.groups {
        let stack = &s.core["Resources"][&g.id];
        let depends: Vec<&str> = stack["DependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(!depends.contains(&"StateTable"), "conditional: {depends:?}");
        for needed in ["ImageStateChangeRule", "AmiUpdateInvokePermission"] {
            assert!(depends.contains(&needed), "{}: {depends:?}", g.id);
            assert!(s.core["Resources"][needed].is_object(), "{needed}");
        }
        let params = stack["Properties"]["Parameters"].as_object().unwrap();
        // Every parameter the group declares without a default is passed.
        for (name, p) in g.template["Parameters"].as_object().unwrap() {
            assert!(
                params.contains_key(name) || p.get("Default").is_some(),
                "{}: {name} not passed",
                g.id
            );
        }
        for (name, v) in params {
            assert!(g.template["Parameters"][name].is_object(), "{name}");
            // Core parameters passed by name exist in the core.
            if let Some(r) = v["Ref"].as_str() {
                assert!(
                    s.core["Parameters"][r].is_object() || s.core["Resources"][r].is_object(),
                    "{r}"
                );
            }
        }
        let init = &g.template["Resources"]["PresetInit"];
        assert_eq!(
            init["Properties"]["ServiceTimeout"],
            groups::SERVICE_TIMEOUT_SECS
        );
        assert_eq!(
            init["Properties"]["ServiceToken"],
            json!({ "Ref": "PresetInitFunctionArn" })
        );
        let listed: Vec<Preset> =
            serde_json::from_str(init["Properties"]["Presets"].as_str().unwrap()).unwrap();
        assert_eq!(
            listed.iter().map(|p| &p.name).collect::<Vec<_>>(),
            g.presets.iter().collect::<Vec<_>>(),
            "a group's custom resource carries only its own presets"
        );
    }
    // No custom resource in the core any more.
    assert!(
        !s.core["Resources"]
            .as_object()
            .unwrap()
            .values()
            .any(|r| r["Type"].as_str().unwrap().starts_with("Custom::"))
    );
}

#[test]
fn builds_use_the_subnet_and_security_groups_when_given() {
    let s = synth(&many(2), &SynthOptions::default()).unwrap();
    assert_eq!(s.core["Parameters"]["BuildSubnetId"]["Default"], "");
    assert_eq!(s.core["Parameters"]["BuildSecurityGroupIds"]["Default"], "");
    assert!(s.core["Rules"]["SecurityGroupsWithSubnet"].is_object());
    for g in &s.groups {
        let t = &g.template;
        assert!(t["Conditions"]["HasBuildSubnet"].is_object());
        for (_, infra) in resources_of_type(t, "AWS::ImageBuilder::InfrastructureConfiguration") {
            let p = &infra["Properties"];
            assert_eq!(
                p["SubnetId"]["Fn::If"],
                json!(["HasBuildSubnet", { "Ref": "BuildSubnetId" }, { "Ref": "AWS::NoValue" }])
            );
            assert_eq!(p["SecurityGroupIds"]["Fn::If"][0], "HasBuildSecurityGroups");
            assert_eq!(
                p["SecurityGroupIds"]["Fn::If"][1],
                json!({ "Fn::Split": [",", { "Ref": "BuildSecurityGroupIds" }] })
            );
        }
    }
}

#[test]
fn roles_do_not_grow_with_presets() {
    let role_bytes = |n: usize| {
        let s = synth(&many(n), &SynthOptions::default()).unwrap();
        resources_of_type(&s.core, "AWS::IAM::Role")
            .iter()
            .map(|(_, r)| r.to_string().len())
            .max()
            .unwrap()
    };
    // IAM allows 10,240 characters of inline policy per role.
    assert_eq!(role_bytes(3), role_bytes(1000));
    assert!(role_bytes(1000) < 6000, "{}", role_bytes(1000));
}

#[test]
fn an_edited_group_gets_the_key_of_its_edited_text() {
    let all = many(4);
    let plain = synth(&all, &SynthOptions::default()).unwrap();
    let edited = synth_with(&all, &SynthOptions::default(), &mut |t| {
        t["Resources"].as_object_mut().unwrap().remove("PresetInit");
    })
    .unwrap();
    for (p, e) in plain.groups.iter().zip(&edited.groups) {
        assert_ne!(p.key, e.key);
        assert!(e.template["Resources"]["PresetInit"].is_null());
        assert_eq!(e.key, groups::content_key(&e.text, &e.file));
    }
}
