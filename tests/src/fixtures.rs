//! Status reports in each overall state, for edge and page tests.

use std::collections::BTreeMap;

use kiln_shared::status::summarise;
use kiln_shared::{Architecture, PresetReport, PresetStatus, StatusReport};

pub fn preset(
    name: &str,
    arch: Architecture,
    status: PresetStatus,
    ami: Option<&str>,
) -> PresetReport {
    let mut amis = BTreeMap::new();
    if let Some(a) = ami {
        amis.insert("us-east-1".to_owned(), a.to_owned());
        amis.insert("eu-west-1".to_owned(), format!("{}e", &a[..a.len() - 1]));
    }
    PresetReport {
        name: name.to_owned(),
        status,
        ami_id: ami.map(str::to_owned),
        updated_at: Some(kiln_shared::time::format(
            chrono::Utc::now() - chrono::Duration::minutes(42),
        )),
        architecture: Some(arch),
        amis,
        built_at: None,
        pinned: false,
        warnings: Vec::new(),
        display_name: None,
    }
}

pub fn report(presets: Vec<PresetReport>) -> StatusReport {
    let (status, message) = summarise(&presets);
    StatusReport {
        status,
        message,
        presets,
        generated_at: kiln_shared::time::format(chrono::Utc::now()),
        stale: false,
    }
}

pub fn ready() -> StatusReport {
    report(vec![
        preset(
            "linux-x64",
            Architecture::X86_64,
            PresetStatus::Ready,
            Some("ami-0a1b2c3d4e5f60001"),
        ),
        preset(
            "linux-arm64",
            Architecture::Arm64,
            PresetStatus::Ready,
            Some("ami-0f9e8d7c6b5a40002"),
        ),
        preset(
            "gpu-x64",
            Architecture::X86_64,
            PresetStatus::Ready,
            Some("ami-0123456789abc0003"),
        ),
    ])
}

pub fn building() -> StatusReport {
    report(vec![
        preset(
            "linux-x64",
            Architecture::X86_64,
            PresetStatus::Ready,
            Some("ami-0a1b2c3d4e5f60001"),
        ),
        preset(
            "linux-arm64",
            Architecture::Arm64,
            PresetStatus::Building,
            Some("ami-0f9e8d7c6b5a40002"),
        ),
        preset(
            "gpu-x64",
            Architecture::X86_64,
            PresetStatus::Building,
            None,
        ),
    ])
}

pub fn degraded() -> StatusReport {
    report(vec![
        preset(
            "linux-x64",
            Architecture::X86_64,
            PresetStatus::Ready,
            Some("ami-0a1b2c3d4e5f60001"),
        ),
        preset(
            "linux-arm64",
            Architecture::Arm64,
            PresetStatus::Failed,
            Some("ami-0f9e8d7c6b5a40002"),
        ),
        preset(
            "gpu-x64",
            Architecture::X86_64,
            PresetStatus::Building,
            None,
        ),
    ])
}

pub fn not_configured() -> StatusReport {
    report(vec![])
}
