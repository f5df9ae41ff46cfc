//! An in-memory EC2 + SSM Run Command for `kiln test`'s logic: instances that come up
//! after a few polls, commands answered from a table of outcomes, and knobs for the
//! agent that never registers and the command that never finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::BoxFut;
use crate::error::{AwsError, AwsErrorKind};
use crate::testbed::{CommandResult, CommandStatus, LaunchSpec, RunCommand, TestInstances};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct MemTestbed {
    /// Every launch, with the id it got.
    pub launched: Mutex<Vec<(String, LaunchSpec)>>,
    pub terminated: Mutex<BTreeSet<String>>,
    /// Shell line → (exit code, output); other lines exit 127.
    pub outcomes: Mutex<BTreeMap<String, (i32, String)>>,
    /// The agent answers online after this many polls (`u32::MAX`: never).
    pub agent_polls: Mutex<u32>,
    /// Commands stay in progress for ever.
    pub hang: Mutex<bool>,
    /// Lines sent, in order.
    pub sent: Mutex<Vec<String>>,
    polls: Mutex<u32>,
}

impl MemTestbed {
    pub fn with_outcome(self, line: &str, exit: i32, output: &str) -> Self {
        lock(&self.outcomes).insert(line.to_owned(), (exit, output.to_owned()));
        self
    }

    /// Instances not terminated.
    pub fn running(&self) -> Vec<String> {
        let terminated = lock(&self.terminated);
        lock(&self.launched)
            .iter()
            .map(|(id, _)| id.clone())
            .filter(|id| !terminated.contains(id))
            .collect()
    }
}

impl TestInstances for MemTestbed {
    fn launch<'a>(
        &'a self,
        _region: &'a str,
        spec: &'a LaunchSpec,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            let mut launched = lock(&self.launched);
            let id = format!("i-{:017x}", launched.len() + 1);
            launched.push((id.clone(), spec.clone()));
            Ok(id)
        })
    }
    fn instance_state<'a>(
        &'a self,
        _region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<Option<String>, AwsError>> {
        Box::pin(async move {
            if lock(&self.terminated).contains(instance) {
                return Ok(Some("terminated".into()));
            }
            let known = lock(&self.launched).iter().any(|(id, _)| id == instance);
            Ok(known.then(|| "running".to_owned()))
        })
    }
    fn terminate<'a>(
        &'a self,
        _region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<(), AwsError>> {
        Box::pin(async move {
            lock(&self.terminated).insert(instance.to_owned());
            Ok(())
        })
    }
}

impl RunCommand for MemTestbed {
    fn agent_online<'a>(
        &'a self,
        _region: &'a str,
        instance: &'a str,
    ) -> BoxFut<'a, Result<bool, AwsError>> {
        Box::pin(async move {
            if lock(&self.terminated).contains(instance) {
                return Ok(false);
            }
            let mut polls = lock(&self.polls);
            *polls += 1;
            Ok(*polls > *lock(&self.agent_polls))
        })
    }
    fn send<'a>(
        &'a self,
        _region: &'a str,
        instance: &'a str,
        line: &'a str,
        _timeout: Duration,
    ) -> BoxFut<'a, Result<String, AwsError>> {
        Box::pin(async move {
            if lock(&self.terminated).contains(instance) {
                return Err(AwsError::new(
                    "ssm:SendCommand",
                    AwsErrorKind::Client,
                    "InvalidInstanceId: Instances not in a valid state for account",
                ));
            }
            let mut sent = lock(&self.sent);
            sent.push(line.to_owned());
            Ok(format!("cmd-{}", sent.len() - 1))
        })
    }
    fn result<'a>(
        &'a self,
        _region: &'a str,
        command_id: &'a str,
        _instance: &'a str,
    ) -> BoxFut<'a, Result<Option<CommandResult>, AwsError>> {
        Box::pin(async move {
            let Some(line) = command_id
                .strip_prefix("cmd-")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| lock(&self.sent).get(n).cloned())
            else {
                return Ok(None);
            };
            if *lock(&self.hang) {
                return Ok(Some(CommandResult {
                    status: CommandStatus::Running,
                    exit_code: -1,
                    stdout: String::new(),
                    stderr: String::new(),
                }));
            }
            let (exit, output) = lock(&self.outcomes)
                .get(&line)
                .cloned()
                .unwrap_or((127, "command not found".into()));
            Ok(Some(CommandResult {
                status: if exit == 0 {
                    CommandStatus::Success
                } else {
                    CommandStatus::Failed
                },
                exit_code: exit,
                stdout: output,
                stderr: String::new(),
            }))
        })
    }
}
