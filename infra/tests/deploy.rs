//! The deploy rehearsal: the real `kiln deploy` / `kiln destroy` against moto (S3,
//! CloudFormation, Secrets Manager, IAM, Lambda, DynamoDB, EventBridge, SNS, SQS, Logs),
//! and `wrangler deploy --dry-run` on the real Worker bundle with the generated
//! configuration. What moto does not implement is reported "not rehearsed" by type.
//! moto creates the nested stacks of presets from their TemplateURL in its S3, so the
//! content-addressed upload and the core's URLs are rehearsed for real.

mod common;

use std::path::Path;

use common::*;
use kiln_devstack::emulators::Moto;

const REGION: &str = "us-east-1";
const STACK: &str = "ci";

/// A valid zip holding one stored file `bootstrap` (moto reads the code zip it is given).
fn stub_zip(content: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let name = b"bootstrap";
    let (crc, len) = (crc32(content), content.len() as u32);
    let mut z = Vec::new();
    let header = |z: &mut Vec<u8>, sig: u32, central: bool| {
        z.extend(sig.to_le_bytes());
        if central {
            z.extend(20u16.to_le_bytes()); // made by
        }
        z.extend(20u16.to_le_bytes()); // version needed
        z.extend([0u8; 6]); // flags, method (stored), time
        z.extend(0x21u16.to_le_bytes()); // date
        z.extend(crc.to_le_bytes());
        z.extend(len.to_le_bytes());
        z.extend(len.to_le_bytes());
        z.extend((name.len() as u16).to_le_bytes());
        z.extend(0u16.to_le_bytes()); // extra
        if central {
            z.extend([0u8; 8]); // comment, disk, internal attrs
            z.extend((0o100755u32 << 16).to_le_bytes()); // external attrs: rwxr-xr-x
            z.extend(0u32.to_le_bytes()); // local header offset
        }
        z.extend(name);
    };
    header(&mut z, 0x0403_4b50, false);
    z.extend(content);
    let central_at = z.len() as u32;
    header(&mut z, 0x0201_4b50, true);
    let central_len = z.len() as u32 - central_at;
    z.extend(0x0605_4b50u32.to_le_bytes());
    z.extend([0u8; 4]);
    z.extend(1u16.to_le_bytes());
    z.extend(1u16.to_le_bytes());
    z.extend(central_len.to_le_bytes());
    z.extend(central_at.to_le_bytes());
    z.extend(0u16.to_le_bytes());
    z
}

fn stub_zips(dir: &Path) {
    for f in ["ami-update", "reconcile", "status-origin", "preset-init"] {
        let script = format!("#!/bin/sh\necho {f}\n");
        std::fs::write(dir.join(format!("{f}.zip")), stub_zip(script.as_bytes())).unwrap();
    }
}

struct Rehearsal {
    moto: Moto,
    presets: tempfile::TempDir,
    zips: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Rehearsal {
    async fn kiln(&self, args: &[&str]) -> (std::process::Output, String) {
        let mut cmd = kiln();
        cmd.env("KILN_ROOT", repo_root())
            .env_remove("CLOUDFLARE_ACCOUNT_ID")
            .args(["--endpoint-url", &self.moto.endpoint(), "--region", REGION])
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        (out, all)
    }

    async fn destroy(&self, extra: &[&str]) -> (std::process::Output, String) {
        let mut args = vec![
            "destroy",
            "--stack",
            STACK,
            "--rehearsal",
            "--poll",
            "200ms",
        ];
        args.extend_from_slice(extra);
        self.kiln(&args).await
    }

    async fn deploy(&self) -> (std::process::Output, String) {
        let presets = self.presets.path().to_string_lossy().into_owned();
        let zips = self.zips.path().to_string_lossy().into_owned();
        let out = self.out.path().to_string_lossy().into_owned();
        self.kiln(&[
            "deploy",
            "--presets",
            &presets,
            "--stack",
            STACK,
            "--rehearsal",
            "--lambda-zips",
            &zips,
            "--no-edge-build",
            "--out-dir",
            &out,
            "--poll",
            "200ms",
        ])
        .await
    }
}

/// The live nested stacks of presets moto holds (`<stack>-PresetGroupNN-<random>`).
async fn nested_stacks(cfn: &aws_sdk_cloudformation::Client) -> Vec<String> {
    let mut stacks = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = cfn
            .describe_stacks()
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        stacks.extend(out.stacks().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    let mut names: Vec<String> = stacks
        .iter()
        .filter(|s| {
            s.stack_status()
                .is_some_and(|st| !st.as_str().starts_with("DELETE"))
        })
        .filter_map(|s| s.stack_name())
        .filter(|n| n.starts_with(&format!("{STACK}-PresetGroup")))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The change set lines of a deploy's output that name a resource type.
fn change_lines<'a>(all: &'a str, ty: &str) -> Vec<&'a str> {
    all.lines()
        .filter(|l| {
            let t = l.trim_start();
            (t.starts_with("Add ") || t.starts_with("Modify ") || t.starts_with("Remove "))
                && l.contains(ty)
        })
        .collect()
}

async fn stack_status(cfn: &aws_sdk_cloudformation::Client) -> Option<String> {
    let out = cfn.describe_stacks().stack_name(STACK).send().await.ok()?;
    out.stacks()[0]
        .stack_status()
        .map(|s| s.as_str().to_owned())
}

/// moto's default account: the artifacts bucket is `<stack>-artifacts-<account>-<region>`.
const ACCOUNT: &str = "123456789012";

/// moto, the Worker built, stub Lambda zips and `presets`; `None` (skip) when moto or
/// wrangler is not installed and `KILN_REQUIRE_TOOLS` is not set.
async fn rehearsal(presets: &[(&str, &str)]) -> Option<Rehearsal> {
    tool("moto_server")?;
    if !repo_root()
        .join("tools/node/node_modules/.bin/wrangler")
        .is_file()
    {
        assert_ne!(
            std::env::var("KILN_REQUIRE_TOOLS").as_deref(),
            Ok("1"),
            "wrangler is required: run scripts/setup.sh"
        );
        eprintln!("note: wrangler is not installed; skipping");
        return None;
    }
    tokio::task::spawn_blocking(kiln_devstack::wrangler::build_edge)
        .await
        .unwrap()
        .expect("the Worker builds (scripts/build-edge.sh)");
    let r = Rehearsal {
        moto: Moto::start().await.expect("moto starts"),
        presets: preset_dir(presets),
        zips: tempfile::tempdir().unwrap(),
        out: tempfile::tempdir().unwrap(),
    };
    stub_zips(r.zips.path());
    Some(r)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_is_rehearsed_against_moto_and_wrangler_dry_run() {
    let Some(r) = rehearsal(&[
        ("a.yaml", &preset_yaml("linux-a", "")),
        ("b.yaml", &preset_yaml("linux-b", "")),
    ])
    .await
    else {
        return;
    };
    let sdk = r.moto.sdk_config(REGION);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let bucket = format!("{STACK}-artifacts-{ACCOUNT}-{REGION}");

    // 1. First deploy: bucket, uploads, secret, stack, Worker dry run.
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stack_status(&cfn).await.as_deref(), Some("CREATE_COMPLETE"));
    for line in [
        "created artifacts bucket",
        "created the edge secret kiln/ci/edge-secret",
        "stack ci: created",
        "not rehearsed: AWS::ImageBuilder::ImagePipeline (2)",
        "not rehearsed: AWS::Lambda::EventInvokeConfig (2)",
        "not rehearsed: AWS::ImageBuilder::Component",
        "not rehearsed: AWS::Lambda::Url (1): StatusOriginUrl",
        "not rehearsed: Custom::KilnPresets (",
        ".PresetInit",
        "nested templates: ",
        "wrangler deploy --dry-run passed",
    ] {
        assert!(all.contains(line), "missing {line:?}:\n{all}");
    }
    for f in ["ami-update", "reconcile", "status-origin", "preset-init"] {
        assert!(
            all.contains(&format!("/{f}.zip")),
            "{f} not uploaded:\n{all}"
        );
    }
    // Things moto does create are not reported.
    assert!(
        !all.contains("not rehearsed: AWS::DynamoDB::Table"),
        "{all}"
    );
    assert!(
        !all.contains("not rehearsed: AWS::Lambda::Function"),
        "{all}"
    );
    // The nested stacks were created from the uploaded templates.
    assert!(
        !all.contains("not rehearsed: AWS::CloudFormation::Stack"),
        "{all}"
    );
    let first_nested = nested_stacks(&cfn).await;
    assert!(
        (1..=2).contains(&first_nested.len()),
        "{first_nested:?}\n{all}"
    );
    assert!(
        all.contains("presets-"),
        "nested templates uploaded:\n{all}"
    );

    // Read raw: the SDK refuses moto's GetBucketVersioning answer (wrong XML root).
    let setting = |query: &'static str| {
        let url = format!("{}/{bucket}?{query}", r.moto.endpoint());
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let versioning = setting("versioning").await;
    assert!(
        versioning.contains("<Status>Enabled</Status>"),
        "{versioning}"
    );
    let sse = setting("encryption").await;
    assert!(sse.contains("<SSEAlgorithm>AES256</SSEAlgorithm>"), "{sse}");
    let block = setting("publicAccessBlock").await;
    for flag in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert!(block.contains(&format!("<{flag}>true</{flag}>")), "{block}");
    }
    let secret = sm
        .get_secret_value()
        .secret_id("kiln/ci/edge-secret")
        .send()
        .await
        .unwrap();
    let value = secret.secret_string().unwrap().to_owned();
    assert_eq!(value.len(), 64);
    assert!(!all.contains(&value), "the secret was printed");
    // The stack gets the secret's ARN, never its value.
    let described = cfn
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    let params = described.stacks()[0].parameters();
    let param = |key: &str| {
        params
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    };
    assert_eq!(param("EdgeSecretArn").as_deref(), secret.arn());
    assert!(
        params
            .iter()
            .all(|p| p.parameter_value() != Some(value.as_str())),
        "the secret's value is a stack parameter"
    );
    let config = std::fs::read_to_string(r.out.path().join("wrangler.toml")).unwrap();
    assert!(config.contains("name = \"ci-edge\""), "{config}");
    assert!(
        config.contains("ORIGIN_URL = \"https://origin.not-rehearsed.invalid\""),
        "{config}"
    );
    assert!(
        !config.contains(&value) && !config.contains("replace-"),
        "{config}"
    );
    assert!(
        r.out
            .path()
            .join("bundle")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "no dry-run bundle"
    );

    // 2. Nothing changed: nothing to do, nothing uploaded, the same secret.
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("stack ci: nothing to change"), "{all}");
    assert!(
        !all.contains("uploaded s3://") && !all.contains("created the edge secret"),
        "{all}"
    );
    let again = sm
        .get_secret_value()
        .secret_id("kiln/ci/edge-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(again.secret_string(), Some(value.as_str()));
    let secrets = sm.list_secrets().send().await.unwrap();
    assert_eq!(secrets.secret_list().len(), 1);

    // 3. A changed setup script: new component versions (in its nested template), an
    //    update, no "already exists".
    let changed = preset_yaml("linux-b", "").replace(
        "apt-get install -y docker.io",
        "apt-get install -y docker.io git",
    );
    std::fs::write(r.presets.path().join("b.yaml"), changed).unwrap();
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("stack ci: updated"), "{all}");
    assert_eq!(
        change_lines(&all, "AWS::CloudFormation::Stack").len(),
        1,
        "the change set shows the changed group's nested stack:\n{all}"
    );
    assert!(!all.contains("already exists"), "{all}");
    assert_eq!(stack_status(&cfn).await.as_deref(), Some("UPDATE_COMPLETE"));
    assert!(
        !all.contains(".zip"),
        "unchanged code is not uploaded again:\n{all}"
    );

    // 4. 300 presets in one deployment: the two above plus 298, over many nested stacks.
    for i in 0..298 {
        std::fs::write(
            r.presets.path().join(format!("m{i:03}.yaml")),
            preset_yaml(&format!("many-{i:03}"), ""),
        )
        .unwrap();
    }
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("stack ci: updated"), "{all}");
    assert!(
        all.contains("not rehearsed: AWS::ImageBuilder::ImagePipeline (300)"),
        "{all}"
    );
    assert!(
        !all.contains("not rehearsed: AWS::CloudFormation::Stack"),
        "{all}"
    );
    let nested = nested_stacks(&cfn).await;
    assert!(nested.len() > 40, "{nested:?}");
    assert!(
        all.contains(&format!("nested templates: {} group(s)", nested.len())),
        "{nested:?}\n{all}"
    );
    assert!(!all.contains("already exists"), "{all}");

    // 5. One preset's setup script changes: one nested template, one new URL, one
    //    nested stack in the change set.
    let changed = preset_yaml("many-123", "").replace(
        "apt-get install -y docker.io",
        "apt-get install -y docker.io curl",
    );
    std::fs::write(r.presets.path().join("m123.yaml"), changed).unwrap();
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        all.contains(&format!(
            "nested templates: {} group(s), 1 new, {} unchanged",
            nested.len(),
            nested.len() - 1
        )),
        "{all}"
    );
    assert_eq!(
        all.lines()
            .filter(|l| l.contains("uploaded s3://") && l.contains(".template.json"))
            .count(),
        1,
        "only the changed group's template:\n{all}"
    );
    let stacks = change_lines(&all, "AWS::CloudFormation::Stack");
    assert_eq!(stacks.len(), 1, "{stacks:?}\n{all}");
    assert!(stacks[0].contains("Modify"), "{stacks:?}");
    assert_eq!(
        change_lines(&all, "AWS::").len(),
        1,
        "nothing else in the core changes:\n{all}"
    );
    assert!(all.contains("stack ci: updated"), "{all}");
    // moto updates a nested stack by replacing it (a new generated name): at most the
    // changed group's stack is new, every other one is the same stack as before.
    let after = nested_stacks(&cfn).await;
    assert_eq!(after.len(), nested.len());
    let replaced = nested.iter().filter(|n| !after.contains(n)).count();
    assert!(replaced <= 1, "{nested:?} -> {after:?}");

    // 6. Destroy with data: stack, bucket and secret gone.
    let (out, all) = r.destroy(&["--delete-data"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        all.contains("stack ci deleted") && all.contains("not rehearsed: wrangler delete ci-edge"),
        "{all}"
    );
    assert!(!matches!(
        stack_status(&cfn).await.as_deref(),
        Some("CREATE_COMPLETE" | "UPDATE_COMPLETE")
    ));
    assert!(s3.head_bucket().bucket(&bucket).send().await.is_err());
    assert!(
        sm.get_secret_value()
            .secret_id("kiln/ci/edge-secret")
            .send()
            .await
            .is_err()
    );
}

/// A call to moto's CloudWatch Logs (JSON protocol; the SDK crate is not a dependency).
async fn logs(moto: &Moto, action: &str, group: &str) {
    let response = reqwest::Client::new()
        .post(moto.endpoint())
        .header("X-Amz-Target", format!("Logs_20140328.{action}"))
        .header("Content-Type", "application/x-amz-json-1.1")
        .header(
            "Authorization",
            format!("AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/logs/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(serde_json::json!({ "logGroupName": group }).to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{action} {group}: {}",
        response.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_first_create_is_retried_and_a_kept_table_is_adopted() {
    let Some(r) = rehearsal(&[("a.yaml", &preset_yaml("linux-a", ""))]).await else {
        return;
    };
    let sdk = r.moto.sdk_config(REGION);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = "spot-runner-state";
    let table_exists = || async { ddb.describe_table().table_name(table).send().await.is_ok() };

    // 1. A log group left behind by an earlier function of the same name (as Lambda
    //    creates on first invoke): the first create fails on it, after the table exists.
    let group = "/aws/lambda/spot-runner-ami-update";
    logs(&r.moto, "CreateLogGroup", group).await;
    let (out, all) = r.deploy().await;
    assert!(
        !out.status.success(),
        "the first create should fail:\n{all}"
    );
    assert_ne!(stack_status(&cfn).await.as_deref(), Some("CREATE_COMPLETE"));

    // 2. The cause removed, the same command again: the failed stack is deleted and
    //    created anew, and the table the failed create made does not block it.
    logs(&r.moto, "DeleteLogGroup", group).await;
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        all.contains("deleting it before creating it again"),
        "{all}"
    );
    assert!(all.contains("stack ci: created"), "{all}");
    assert!(
        !all.contains("already exists") && !all.contains("adopted"),
        "{all}"
    );
    assert_eq!(stack_status(&cfn).await.as_deref(), Some("CREATE_COMPLETE"));

    // 3. The stack gone, its table kept (as `kiln destroy` leaves it on AWS; moto only
    //    keeps `Retain`, so the kept table is put back by hand) with a record in it.
    let (out, all) = r.destroy(&[]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("the next deploy adopts it"), "{all}");
    if !table_exists().await {
        kiln_aws::store::create_table(&ddb, table).await.unwrap();
    }
    ddb.put_item()
        .table_name(table)
        .item(
            "jobId",
            aws_sdk_dynamodb::types::AttributeValue::S("BUILD#kept".into()),
        )
        .send()
        .await
        .unwrap();

    // 4. Deploying again adopts it: no "already exists", the history is still there,
    //    and the stack does not own the table.
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        all.contains("state table spot-runner-state kept by an earlier stack: adopted"),
        "{all}"
    );
    assert!(!all.contains("already exists"), "{all}");
    let owned = cfn
        .describe_stack_resources()
        .stack_name(STACK)
        .send()
        .await
        .unwrap();
    assert!(
        owned
            .stack_resources()
            .iter()
            .all(|r| r.logical_resource_id() != Some("StateTable")),
        "the adopted table is not the stack's"
    );
    let kept = ddb
        .get_item()
        .table_name(table)
        .key(
            "jobId",
            aws_sdk_dynamodb::types::AttributeValue::S("BUILD#kept".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        kept.item().is_some(),
        "the kept history survived the redeploy"
    );
    // A rerun keeps adopting it and changes nothing.
    let (out, all) = r.deploy().await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("stack ci: nothing to change"), "{all}");

    // 5. Destroy with the data: the table goes too.
    let (out, all) = r.destroy(&["--delete-data"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(all.contains("table spot-runner-state deleted"), "{all}");
    assert!(!table_exists().await);
}
