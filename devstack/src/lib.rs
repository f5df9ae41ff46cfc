//! kiln's local stack.
//!
//! - [`emulators`]: moto and DynamoDB Local on free ports, supervised, with SDK configs.
//! - [`imagebuilder`]: a local EC2 Image Builder endpoint for the real SDK client.
//! - [`lambda`]: a local Lambda runtime (Runtime API, Invoke API, Function URL front).
//! - [`runcommand`]: a local SSM Run Command endpoint in front of moto (`kiln test`).
//! - [`stack`]: all of the above assembled into the whole system (`kiln dev`, the
//!   end-to-end tests).
//! - [`cli_env`]: the environment (and sourceable file) that points `kiln` at the stack.
//! - [`process`]: child processes that never outlive their parent (process groups,
//!   `PR_SET_PDEATHSIG`).
//!
//! Everything binds to 127.0.0.1 only.

pub mod cli_env;
pub mod emulators;
pub mod imagebuilder;
pub mod lambda;
pub mod process;
pub mod runcommand;
mod serve;
pub mod stack;
pub mod wrangler;

pub use emulators::{DynamoBackend, DynamoDbLocal, EmulatorOptions, LocalAws, Moto, sdk_config};
pub use process::{ManagedProcess, ProcessError};

/// Whether tests must fail (not skip) when an external tool is missing: `make test` sets
/// `KILN_REQUIRE_TOOLS=1`.
pub fn tools_required() -> bool {
    std::env::var("KILN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// For tests that need an external tool: passes a started value through; when a tool is
/// missing, prints a note and yields `None` (skip) unless [`tools_required`], in which
/// case it panics. Any other error panics.
pub fn started_or_skip<T>(what: &str, result: Result<T, ProcessError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e @ ProcessError::ToolMissing { .. }) if !tools_required() => {
            eprintln!(
                "note: skipping, {what} unavailable: {e} (set KILN_REQUIRE_TOOLS=1 to fail instead)"
            );
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}
