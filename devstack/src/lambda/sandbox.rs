//! The sandbox: the function's process with its work queue, started on demand,
//! replaced after a crash or a timeout, one invocation at a time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::{FunctionSpec, LambdaError};
use crate::process::ManagedProcess;

#[derive(Debug)]
pub(super) enum Outcome {
    Response { body: Bytes, streaming: bool },
    Error { error_type: String, message: String },
}

pub(super) struct Invocation {
    pub(super) id: String,
    pub(super) payload: Bytes,
    pub(super) deadline_ms: u64,
}

#[derive(Default)]
pub(super) struct RuntimeState {
    /// Replies awaited by `invoke`, by request id.
    pub(super) pending: HashMap<String, oneshot::Sender<Outcome>>,
    /// Set when the binary reports `/init/error`.
    pub(super) init_error: Option<(String, String)>,
    /// The binary has polled `/next` at least once since it was (re)started.
    pub(super) polled: bool,
}

/// One process of the function with its own work queue. Replacing the sandbox drops the
/// queue's sender, so a `/next` poll still pending from a dead process can never take
/// work meant for its successor.
pub(super) struct Sandbox {
    pub(super) process: ManagedProcess,
    pub(super) queue: mpsc::UnboundedSender<Invocation>,
    pub(super) work: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
}

pub(super) struct Runtime {
    pub(super) spec: FunctionSpec,
    pub(super) state: Mutex<RuntimeState>,
    pub(super) polled: Notify,
    pub(super) sandbox: Mutex<Option<Sandbox>>,
    /// Invocations handed to the function so far.
    pub(super) invocations: std::sync::atomic::AtomicU64,
    /// Serialises invocations: one sandbox, one request at a time.
    pub(super) invoke_lock: tokio::sync::Mutex<()>,
    pub(super) api_addr: SocketAddr,
}

/// A Lambda function running locally. Dropping it stops the binary and the servers.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Runtime {
    pub(super) fn lock_state(&self) -> MutexGuard<'_, RuntimeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn lock_sandbox(&self) -> MutexGuard<'_, Option<Sandbox>> {
        self.sandbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sandbox's process exit status and output tail, once it has exited.
    pub(super) fn exited(&self) -> Option<(String, String)> {
        self.lock_sandbox().as_mut().and_then(|s| {
            s.process
                .try_status()
                .map(|st| (st.to_string(), s.process.log_tail(30)))
        })
    }

    /// Starts the binary unless it runs, then waits for its first poll.
    pub(super) async fn ensure_running(&self) -> Result<(), LambdaError> {
        let running = self
            .lock_sandbox()
            .as_mut()
            .is_some_and(|s| s.process.try_status().is_none());
        if running {
            return Ok(());
        }
        {
            let mut st = self.lock_state();
            st.polled = false;
            st.init_error = None;
        }
        let spec = &self.spec;
        let mut cmd = Command::new(&spec.binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", self.api_addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &spec.region)
            .env("AWS_DEFAULT_REGION", &spec.region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(spec.env.iter().map(|(k, v)| (k, v)));
        {
            // Held across the spawn so the new process's first poll finds its sandbox.
            let mut slot = self.lock_sandbox();
            slot.take();
            let process = ManagedProcess::spawn_with(&spec.name, cmd, spec.output)?;
            let (queue, work) = mpsc::unbounded_channel();
            *slot = Some(Sandbox {
                process,
                queue,
                work: Arc::new(tokio::sync::Mutex::new(work)),
            });
        }

        let deadline = tokio::time::Instant::now() + spec.startup_timeout;
        loop {
            let notified = self.polled.notified();
            {
                let st = self.lock_state();
                if let Some((error_type, message)) = st.init_error.clone() {
                    return Err(LambdaError::Init {
                        function: spec.name.clone(),
                        error_type,
                        message,
                    });
                }
                if st.polled {
                    return Ok(());
                }
            }
            if let Some(s) = self.lock_sandbox().as_mut() {
                s.process.check_running()?;
            }
            if tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
                notified,
            )
            .await
            .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                let tail = self
                    .lock_sandbox()
                    .as_ref()
                    .map(|s| s.process.log_tail(30))
                    .unwrap_or_default();
                return Err(LambdaError::NotReady {
                    function: spec.name.clone(),
                    timeout: spec.startup_timeout,
                    tail,
                });
            }
        }
    }

    pub(super) async fn invoke(&self, payload: Bytes) -> Result<Outcome, LambdaError> {
        let _one_at_a_time = self.invoke_lock.lock().await;
        self.ensure_running().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, mut rx) = oneshot::channel();
        self.lock_state().pending.insert(id.clone(), tx);
        let deadline_ms = now_ms() + self.spec.timeout.as_millis() as u64;
        let invocation = Invocation {
            id: id.clone(),
            payload,
            deadline_ms,
        };
        let sent = self
            .lock_sandbox()
            .as_ref()
            .is_some_and(|s| s.queue.send(invocation).is_ok());
        if sent {
            self.invocations
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.lock_state().pending.remove(&id);
            let (status, tail) = self
                .exited()
                .unwrap_or_else(|| ("gone".into(), String::new()));
            return Err(LambdaError::Crashed {
                function: self.spec.name.clone(),
                status,
                tail,
            });
        }
        let timeout = tokio::time::sleep(self.spec.timeout);
        tokio::pin!(timeout);
        loop {
            tokio::select! {
                outcome = &mut rx => {
                    if let Ok(outcome) = outcome {
                        return Ok(outcome);
                    }
                }
                _ = &mut timeout => {
                    self.lock_state().pending.remove(&id);
                    // Lambda discards a timed-out sandbox; the next invoke starts afresh.
                    self.lock_sandbox().take();
                    return Err(LambdaError::Timeout { function: self.spec.name.clone(), timeout: self.spec.timeout });
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            // A crash mid-invocation never answers: report it instead of waiting.
            if let Some((status, tail)) = self.exited() {
                self.lock_state().pending.remove(&id);
                self.lock_sandbox().take();
                return Err(LambdaError::Crashed {
                    function: self.spec.name.clone(),
                    status,
                    tail,
                });
            }
        }
    }
}
