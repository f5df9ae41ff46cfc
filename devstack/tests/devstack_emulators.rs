//! moto and DynamoDB Local under supervision: real SDK clients reach them, dropping a
//! handle leaves no process behind, a taken port is a clear error.

use std::time::Duration;

use kiln_devstack::emulators::{DynamoDbLocal, EmulatorOptions, Moto};
use kiln_devstack::process::{ProcessError, pid_alive};
use kiln_devstack::started_or_skip;

async fn wait_dead(pid: u32) -> bool {
    for _ in 0..50 {
        if !pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_local_serves_the_sdk_and_stops_on_drop() {
    let Some(ddb) = started_or_skip("DynamoDB Local", DynamoDbLocal::start().await) else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&ddb.sdk_config("us-east-1"));
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name("kiln-t")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("jobId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("jobId")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table on DynamoDB Local");
    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["kiln-t"]);

    let pid = ddb.pid();
    let port = ddb.port();
    assert!(pid_alive(pid));
    drop(ddb);
    assert!(
        wait_dead(pid).await,
        "DynamoDB Local pid {pid} survived drop"
    );
    assert!(!kiln_devstack::process::port_open(port).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_serves_the_sdk_resets_and_stops_on_drop() {
    let Some(moto) = started_or_skip("moto", Moto::start().await) else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config("eu-west-1"));
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name("kiln-m")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("k")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("k")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table on moto");
    assert_eq!(
        client.list_tables().send().await.unwrap().table_names(),
        ["kiln-m"]
    );
    moto.reset().await.unwrap();
    assert!(
        client
            .list_tables()
            .send()
            .await
            .unwrap()
            .table_names()
            .is_empty()
    );

    // A fixed port that is taken is refused up front, with the port in the message.
    let err = Moto::start_with(EmulatorOptions {
        port: Some(moto.port()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(err, ProcessError::PortInUse(p) if p == moto.port()),
        "{err}"
    );
    assert!(err.to_string().contains(&moto.port().to_string()));

    let pid = moto.pid();
    drop(moto);
    assert!(wait_dead(pid).await, "moto pid {pid} survived drop");
}

/// Runs one of this binary's ignored helper tests in a child process.
fn helper(name: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--include-ignored"]);
    cmd
}

#[test]
fn missing_tool_is_a_clear_error() {
    let out = helper("missing_tool_probe")
        .env("KILN_MOTO_SERVER", "/nonexistent/moto_server")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
}

#[tokio::test]
#[ignore = "helper run by missing_tool_is_a_clear_error"]
async fn missing_tool_probe() {
    let err = Moto::start().await.unwrap_err();
    assert!(matches!(err, ProcessError::ToolMissing { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/moto_server"),
        "{err}"
    );
}

/// Starts the helper (which starts moto), signals it, and checks moto does not survive.
async fn parent_dies_by(signal: &str) {
    if !kiln_devstack::tools_required() && kiln_devstack::emulators::find_moto_server().is_err() {
        eprintln!("note: skipping, moto_server unavailable");
        return;
    }
    let mut parent = helper("orphan_probe")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = parent.stdout.take().unwrap();
    let pid = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(pid) = line.strip_prefix("MOTO_PID=") {
                return pid.trim().parse::<u32>().unwrap();
            }
        }
        panic!("helper exited without starting moto");
    })
    .await
    .unwrap();
    assert!(pid_alive(pid));
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(parent.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    parent.wait().unwrap();
    assert!(
        wait_dead(pid).await,
        "moto pid {pid} outlived its parent killed by SIG{signal}"
    );
}

/// A parent killed with SIGKILL (no destructors run) still takes its emulator along.
#[tokio::test]
async fn killed_parent_leaves_no_orphan() {
    parent_dies_by("KILL").await;
}

/// Ctrl-C on a parent that does not handle it: same guarantee.
#[tokio::test]
async fn interrupted_parent_leaves_no_orphan() {
    parent_dies_by("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper run by killed_parent_leaves_no_orphan"]
async fn orphan_probe() {
    let moto = Moto::start().await.expect("moto");
    println!("MOTO_PID={}", moto.pid());
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(moto);
}

/// DynamoDB Local has no host option and would listen on every interface; devstack's
/// launcher binds it to loopback. Checked on the socket table, as `ss -ltnp` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_local_listens_on_loopback_only() {
    let Some(ddb) = started_or_skip("DynamoDB Local", DynamoDbLocal::start().await) else {
        return;
    };
    let addrs = kiln_devstack::process::listening_addresses(ddb.port());
    assert!(!addrs.is_empty(), "nothing listens on port {}", ddb.port());
    for addr in &addrs {
        let loopback = match addr {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        assert!(loopback, "DynamoDB Local listens on {addr}: {addrs:?}");
    }
}

/// The socket-table reader itself: a wildcard listener is seen as such (so the
/// loopback check above can fail).
#[test]
fn listening_addresses_sees_wildcard_and_loopback() {
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = any.local_addr().unwrap().port();
    assert_eq!(
        kiln_devstack::process::listening_addresses(port),
        [std::net::IpAddr::from([0, 0, 0, 0])]
    );
    let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = lo.local_addr().unwrap().port();
    assert_eq!(
        kiln_devstack::process::listening_addresses(port),
        [std::net::IpAddr::from([127, 0, 0, 1])]
    );
}
