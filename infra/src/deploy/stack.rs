//! The stack through a change set: create it, wait for CloudFormation to compute it,
//! execute it while streaming the stack's events, and name the first failure.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use kiln_aws::cfn::{ChangeSetRequest, ResourceChange, StackEvent, StackInfo, Stacks};
use serde_json::Value;

use super::DeployError;
use crate::template::Synthesized;

/// How long CloudFormation may take to compute a change set or finish a stack operation.
const CHANGE_SET_TIMEOUT: Duration = Duration::from_secs(600);
const STACK_TIMEOUT: Duration = Duration::from_secs(3 * 3600);

/// A computed change set.
#[derive(Debug)]
pub enum Computed {
    /// CloudFormation found nothing to do (the change set was deleted again).
    NoChanges,
    Changes(Vec<ResourceChange>),
}

/// CloudFormation's two phrasings of "nothing to change".
fn is_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// States in which a stack can take no change set: a first create that rolled back, or
/// a CREATE change set never executed. Deleting them first is the only way forward.
/// The state table to adopt (the `ExistingStateTable` parameter): `<prefix>-state` when
/// it exists and the stack does not own it — kept by `kiln destroy` or by a stack that
/// was deleted — so a redeploy carries on with its history instead of failing with
/// "already exists". `None`: the stack creates (or keeps owning) the table.
pub async fn adopt_table(
    clients: &kiln_aws::sdk::DeployClients,
    stack: &str,
    prefix: &str,
    stack_exists: bool,
) -> Result<Option<String>, DeployError> {
    let table = kiln_shared::table::table_name(prefix);
    if stack_exists
        && clients
            .stacks
            .resources(stack)
            .await?
            .iter()
            .any(|r| r.logical_id == "StateTable")
    {
        return Ok(None);
    }
    Ok(clients.tables.exists(&table).await?.then_some(table))
}

pub fn needs_recreate(status: &str) -> bool {
    matches!(status, "ROLLBACK_COMPLETE" | "REVIEW_IN_PROGRESS")
}

fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
}

fn is_success(status: &str) -> bool {
    matches!(status, "CREATE_COMPLETE" | "UPDATE_COMPLETE")
}

pub async fn compute(
    stacks: &dyn Stacks,
    request: &ChangeSetRequest,
    poll: Duration,
) -> Result<Computed, DeployError> {
    stacks.create_change_set(request).await?;
    let started = Instant::now();
    loop {
        let info = stacks
            .describe_change_set(&request.stack, &request.name)
            .await?;
        match info.status.as_str() {
            "CREATE_COMPLETE" => return Ok(Computed::Changes(info.changes)),
            "FAILED" if is_no_changes(&info.status_reason) => {
                stacks
                    .delete_change_set(&request.stack, &request.name)
                    .await?;
                return Ok(Computed::NoChanges);
            }
            "FAILED" => {
                return Err(DeployError::ChangeSet {
                    stack: request.stack.clone(),
                    reason: info.status_reason,
                });
            }
            _ if started.elapsed() > CHANGE_SET_TIMEOUT => {
                return Err(DeployError::Timeout(format!(
                    "change set {} still {}",
                    request.name, info.status
                )));
            }
            _ => tokio::time::sleep(poll).await,
        }
    }
}

/// The ids of the events the stack has now, so following a later operation prints only
/// its own.
pub async fn seen_events(stacks: &dyn Stacks, stack: &str) -> Result<HashSet<String>, DeployError> {
    Ok(stacks
        .events(stack)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect())
}

/// One progress line per event.
pub fn event_line(e: &StackEvent) -> String {
    let mut line = format!(
        "  {:<40} {:<36} {}",
        e.logical_id, e.resource_type, e.status
    );
    if !e.status_reason.is_empty() {
        line.push_str(": ");
        line.push_str(&e.status_reason);
    }
    line
}

/// The first resource that failed, among events oldest first: CloudFormation cancels
/// the others because of it, so it is the one to fix.
pub fn first_failure(events_oldest_first: &[StackEvent]) -> Option<&StackEvent> {
    events_oldest_first
        .iter()
        .find(|e| e.status.ends_with("_FAILED") && !e.status_reason.contains("cancelled"))
        .or_else(|| {
            events_oldest_first
                .iter()
                .find(|e| e.status.ends_with("_FAILED"))
        })
}

/// Follows the stack until its operation ends, printing each new event; the stack on
/// success, the first failure otherwise.
pub async fn follow(
    stacks: &dyn Stacks,
    stack: &str,
    mut seen: HashSet<String>,
    poll: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<StackInfo, DeployError> {
    let started = Instant::now();
    let mut mine: Vec<StackEvent> = Vec::new();
    loop {
        // CloudFormation lists newest first.
        let mut fresh: Vec<StackEvent> = stacks
            .events(stack)
            .await?
            .into_iter()
            .filter(|e| !seen.contains(&e.id))
            .collect();
        fresh.reverse();
        for e in fresh {
            progress(&event_line(&e));
            seen.insert(e.id.clone());
            mine.push(e);
        }
        let info = stacks
            .describe(stack)
            .await?
            .ok_or_else(|| DeployError::StackGone(stack.to_owned()))?;
        if is_terminal(&info.status) {
            if is_success(&info.status) {
                return Ok(info);
            }
            let first = first_failure(&mine).cloned().map(Box::new);
            return Err(DeployError::StackFailed {
                stack: stack.to_owned(),
                status: info.status,
                first,
            });
        }
        if started.elapsed() > STACK_TIMEOUT {
            return Err(DeployError::Timeout(format!(
                "stack {stack} still {}",
                info.status
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits for a deletion to finish; `Ok` once the stack is gone.
pub async fn wait_deleted(
    stacks: &dyn Stacks,
    stack: &str,
    poll: Duration,
) -> Result<(), DeployError> {
    let started = Instant::now();
    loop {
        match stacks.describe(stack).await? {
            None => return Ok(()),
            Some(info) if info.status == "DELETE_COMPLETE" => return Ok(()),
            Some(info) if info.status == "DELETE_FAILED" => {
                return Err(DeployError::StackFailed {
                    stack: stack.to_owned(),
                    status: info.status,
                    first: None,
                });
            }
            Some(info) if started.elapsed() > STACK_TIMEOUT => {
                return Err(DeployError::Timeout(format!(
                    "stack {stack} still {}",
                    info.status
                )));
            }
            Some(_) => tokio::time::sleep(poll).await,
        }
    }
}

/// The template's resources an emulator did not create, by type: those absent from the
/// stack's resources, and every `Custom::` resource (an emulator without Docker never
/// runs its function, so nothing it would do was rehearsed).
pub fn not_rehearsed(template: &Value, created: &HashSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(resources) = template["Resources"].as_object() {
        for (id, r) in resources {
            let ty = r["Type"].as_str().unwrap_or("?");
            if !created.contains(id) || ty.starts_with("Custom::") {
                out.entry(ty.to_owned()).or_default().push(id.clone());
            }
        }
    }
    out
}

/// What the emulators did not create, over the core and every nested stack (ids of a
/// group's resources as `PresetGroupNN.<id>`). `originals` are the group templates as
/// synthesized, before the rehearsal left their custom resources out.
pub async fn not_rehearsed_all(
    stacks: &dyn Stacks,
    core_stack: &str,
    synthesized: &Synthesized,
    originals: &[Value],
) -> Result<BTreeMap<String, Vec<String>>, DeployError> {
    let core_resources = stacks.resources(core_stack).await?;
    let created: HashSet<String> = core_resources
        .iter()
        .map(|r| r.logical_id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    let mut out = not_rehearsed(&synthesized.core, &created);
    for (g, original) in synthesized.groups.iter().zip(originals) {
        let nested = core_resources
            .iter()
            .find(|r| r.logical_id == g.id && !r.physical_id.is_empty());
        let created: HashSet<String> = match nested {
            Some(r) => stacks
                .resources(&r.physical_id)
                .await?
                .into_iter()
                .map(|r| r.logical_id)
                .filter(|id| !id.is_empty())
                .collect(),
            None => HashSet::new(),
        };
        for (ty, ids) in not_rehearsed(original, &created) {
            out.entry(ty)
                .or_default()
                .extend(ids.into_iter().map(|id| format!("{}.{id}", g.id)));
        }
    }
    Ok(out)
}

/// At most `max` ids, then how many more.
pub fn abbreviate(ids: &[String], max: usize) -> String {
    let mut text = ids.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > max {
        text.push_str(&format!(", … ({} more)", ids.len() - max));
    }
    text
}

/// The template an emulator can run: without `Custom::` resources, whose functions an
/// emulator without Docker never runs (moto would then wait forever, or fail on their
/// references to resources it skips). Returns the logical ids left out.
pub fn without_custom_resources(template: &mut Value) -> Vec<String> {
    let Some(resources) = template["Resources"].as_object_mut() else {
        return Vec::new();
    };
    let custom: Vec<String> = resources
        .iter()
        .filter(|(_, r)| {
            r["Type"]
                .as_str()
                .is_some_and(|t| t.starts_with("Custom::"))
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in &custom {
        resources.remove(id);
    }
    for r in resources.values_mut() {
        if let Some(deps) = r.get_mut("DependsOn").and_then(Value::as_array_mut) {
            deps.retain(|d| d.as_str().is_none_or(|d| !custom.iter().any(|c| c == d)));
        }
    }
    custom
}

/// The change set as lines: `Add  LogicalId  Type`, with replacements marked.
pub fn render_changes(changes: &[ResourceChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let mut line = format!("  {:<8} {:<40} {}", c.action, c.logical_id, c.resource_type);
            if c.replacement == "True" {
                line.push_str("  (replaced)");
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, logical: &str, status: &str, reason: &str) -> StackEvent {
        StackEvent {
            id: id.into(),
            timestamp: String::new(),
            logical_id: logical.into(),
            resource_type: "AWS::X::Y".into(),
            status: status.into(),
            status_reason: reason.into(),
        }
    }

    #[test]
    fn the_first_real_failure_is_named_not_the_cancelled_ones() {
        let events = [
            event("1", "A", "CREATE_IN_PROGRESS", ""),
            event("2", "B", "CREATE_FAILED", "Resource creation cancelled"),
            event("3", "C", "CREATE_FAILED", "Table already exists"),
            event("4", "kiln", "ROLLBACK_IN_PROGRESS", ""),
        ];
        assert_eq!(first_failure(&events).unwrap().logical_id, "C");
        assert_eq!(first_failure(&events[..2]).unwrap().logical_id, "B");
        assert!(first_failure(&events[..1]).is_none());
    }

    #[test]
    fn statuses() {
        assert!(needs_recreate("ROLLBACK_COMPLETE"));
        assert!(!needs_recreate("UPDATE_ROLLBACK_COMPLETE"));
        assert!(is_terminal("UPDATE_ROLLBACK_COMPLETE") && !is_success("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_terminal("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(is_no_changes(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(!is_no_changes("Template format error"));
    }

    #[test]
    fn custom_resources_are_left_out_of_a_rehearsal() {
        let mut t = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table", "DependsOn": ["Init", "Other"]},
            "Init": {"Type": "Custom::KilnPresets"},
        }});
        assert_eq!(without_custom_resources(&mut t), ["Init"]);
        assert_eq!(t["Resources"].as_object().unwrap().len(), 1);
        assert_eq!(t["Resources"]["Table"]["DependsOn"], json!(["Other"]));
    }

    #[test]
    fn skipped_and_custom_resources_are_not_rehearsed() {
        let t = json!({"Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Pipe": {"Type": "AWS::ImageBuilder::ImagePipeline"},
            "Init": {"Type": "Custom::KilnPresets"},
        }});
        let created: HashSet<String> = ["Table", "Init"].map(String::from).into();
        let got = not_rehearsed(&t, &created);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["AWS::ImageBuilder::ImagePipeline", "Custom::KilnPresets"]
        );
        assert_eq!(got["Custom::KilnPresets"], ["Init"]);
    }
}
