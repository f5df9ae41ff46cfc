//! `kiln cleanup` and `kiln list --images`: the plan is `kiln_shared::retention`'s, the
//! reads and deletions `kiln_aws::retention`'s (the stack's scheduled retention runs the
//! same two); this module only renders.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
pub use kiln_aws::retention::*;
pub use kiln_shared::retention::*;

/// `kiln list --images`: one row per AMI.
pub fn render_images(images: &[Image]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["preset", "arch", "region", "AMI", "size", "name", "created"]);
    for i in images {
        table.add_row([
            i.preset.clone(),
            i.architecture.clone().unwrap_or_else(|| "-".into()),
            i.region.clone(),
            i.id.clone(),
            i.size_gb
                .map_or_else(|| "-".into(), |gb| format!("{gb} GiB")),
            i.name.clone(),
            i.created.clone(),
        ]);
    }
    format!("{table}\n")
}
