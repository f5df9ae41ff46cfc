//! The environment that points every `kiln` command (and the AWS CLI) at a running
//! local stack: `kiln dev` prints it and writes it to a file a shell can source.
//!
//! DynamoDB Local keeps one database per access key id, so the credentials are part of
//! the address: a `kiln list` with other keys sees an empty DynamoDB Local.

use crate::emulators::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::stack::DevStack;

impl DevStack {
    /// `(name, value)` pairs, in a stable order. No secret: the keys are the emulators'
    /// fixed dummies, and the edge secret stays in moto's Secrets Manager.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        let region = self.aws.region().to_owned();
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region),
            ("AWS_ENDPOINT_URL", self.aws.moto.endpoint()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.aws.dynamodb_endpoint()),
            // Run Command for `kiln test`; every other SSM call goes on to moto.
            ("AWS_ENDPOINT_URL_SSM", self.runcommand.endpoint()),
            (
                "AWS_ENDPOINT_URL_IMAGEBUILDER",
                self.imagebuilder.endpoint(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("KILN_PREFIX", self.options.prefix.clone()),
            ("KILN_STACK_REGION", self.options.region.clone()),
            (
                "KILN_TABLE",
                kiln_shared::table::table_name(&self.options.prefix),
            ),
            ("KILN_STATUS_URL", self.status_url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// A POSIX shell file: `export NAME='value'` per variable, after unsetting what would
/// otherwise change which credentials the SDK picks.
pub fn env_file_text(env: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Written by `kiln dev`: points kiln and the AWS CLI at the local stack.\n\
         # Use: source this file, then run kiln list, kiln build, kiln registry export, ...\n\
         unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_EC2\n",
    );
    for (k, v) in env {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    out
}

/// Single-quoted for POSIX shells (a `'` becomes `'\''`).
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_quotes_every_value() {
        let text = env_file_text(&[
            ("A".into(), "http://127.0.0.1:1".into()),
            ("B".into(), "it's".into()),
        ]);
        assert!(text.contains("export A='http://127.0.0.1:1'\n"), "{text}");
        assert!(text.contains(r"export B='it'\''s'"), "{text}");
        assert!(text.contains("unset AWS_PROFILE"), "{text}");
    }
}
