//! Errors for people: every failure of a `kiln` command as one line saying what failed
//! (operation, resource, region) and, for AWS failures, one line saying what to check.
//! The whole chain and the SDK's details are for `-v`.

use std::error::Error;

use kiln_aws::{AwsError, AwsErrorKind};

/// Where the command was pointed, for the message.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub region: Option<String>,
    pub prefix: String,
    pub table: String,
}

/// The message printed for `err`: one or two lines, or the whole chain with `verbose`.
pub fn render(err: &(dyn Error + 'static), context: &Context, verbose: bool) -> String {
    let chain = chain_of(err);
    let mut what = first_line(&chain.join(": "));
    let aws = kind_of(err).is_some() || looks_like_aws(&chain.join(" "));
    if let Some(region) = &context.region
        && aws
        && !what.contains(region.as_str())
    {
        what.push_str(&format!(" (region {region})"));
    }
    let mut out = format!("error: {what}");
    if let Some(check) = hint(err, &chain.join(" "), context) {
        out.push_str(&format!("\n  check: {check}"));
    }
    if verbose {
        out.push_str("\n  details:");
        for (i, cause) in chain.iter().enumerate() {
            out.push_str(&format!("\n    {i}: {cause}"));
        }
        out.push_str(&format!("\n    debug: {err:?}"));
    } else if aws {
        out.push_str(" (-v for details)");
    }
    out
}

fn chain_of(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // thiserror's `{0}` wrappers repeat their source: keep each text once.
        if !out.iter().any(|seen| seen.contains(&text)) {
            out.push(text);
        }
        next = e.source();
    }
    out
}

fn kind_of(err: &(dyn Error + 'static)) -> Option<AwsErrorKind> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(aws) = e.downcast_ref::<AwsError>() {
            return Some(aws.kind);
        }
        next = e.source();
    }
    None
}

/// The first line, without an SDK debug dump, at most 300 characters.
fn first_line(text: &str) -> String {
    let mut line = text.lines().next().unwrap_or_default().to_owned();
    for dump in [
        "ServiceError(",
        "DispatchFailure(",
        "raw: Response",
        "ResponseError(",
    ] {
        if let Some(i) = line.find(dump) {
            line.truncate(i);
        }
    }
    let line = line.trim_end_matches([' ', ':', ',', '(']).to_owned();
    if line.chars().count() > 300 {
        let cut: String = line.chars().take(297).collect();
        format!("{cut}...")
    } else {
        line
    }
}

const CREDENTIAL_CODES: [&str; 7] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "AuthFailure",
    "no credentials",
];

fn looks_like_aws(text: &str) -> bool {
    CREDENTIAL_CODES.iter().any(|c| text.contains(c))
        || [
            "Exception",
            "dispatch failure",
            "AccessDenied",
            "dynamodb:",
            "ssm:",
            "ec2:",
            "imagebuilder:",
        ]
        .iter()
        .any(|c| text.contains(c))
}

fn hint(err: &(dyn Error + 'static), text: &str, c: &Context) -> Option<String> {
    let dev = "against `kiln dev`, `source .kiln/dev.env` first (DynamoDB Local keeps one database per access key)";
    let region = c.region.as_deref().unwrap_or("the configured region");
    if CREDENTIAL_CODES.iter().any(|code| text.contains(code)) {
        return Some(format!(
            "the AWS credentials were refused or are missing: AWS_PROFILE / AWS_ACCESS_KEY_ID, `aws sts get-caller-identity`; {dev}"
        ));
    }
    if text.contains("AccessDenied") || text.contains("not authorized") {
        return Some(
            "the credentials lack a permission for this call: which role or user is in use (`aws sts get-caller-identity`) and its policies".into(),
        );
    }
    if text.contains("ResourceNotFoundException") && text.contains("table") {
        return Some(format!(
            "is the stack deployed in {region} with prefix '{}' (state table '{}'; --prefix, --table, --region)? {dev}",
            c.prefix, c.table
        ));
    }
    if text.contains("NotFound") || text.contains("no pipeline") {
        return Some(format!(
            "is the stack deployed in {region} with prefix '{}' (--prefix, --region)?",
            c.prefix
        ));
    }
    match kind_of(err) {
        Some(AwsErrorKind::Unreachable) => Some(format!(
            "could not reach the AWS endpoint: network, --endpoint-url / AWS_ENDPOINT_URL*, the region '{region}'; is `kiln dev` still running?"
        )),
        Some(AwsErrorKind::Timeout) => {
            Some("the AWS endpoint did not answer in time: network, proxy, endpoint".into())
        }
        Some(AwsErrorKind::Throttled) => Some("AWS throttled the calls: try again shortly".into()),
        Some(AwsErrorKind::Server) => Some("AWS answered with a server error: try again".into()),
        _ if text.contains("dispatch failure") || text.contains("Connection refused") => {
            Some(format!(
                "could not reach the AWS endpoint: network, --endpoint-url / AWS_ENDPOINT_URL*; {dev}"
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("listing pipelines")]
    struct Outer(#[source] AwsError);

    fn context() -> Context {
        Context {
            region: Some("us-east-1".into()),
            prefix: "spot-runner".into(),
            table: "spot-runner-state".into(),
        }
    }

    #[test]
    fn a_missing_table_is_two_lines_naming_table_region_and_what_to_check() {
        let err = AwsError::new(
            "dynamodb:Query",
            AwsErrorKind::Client,
            "table spot-runner-state: ResourceNotFoundException: Cannot do operations on a non-existent table",
        );
        let text = render(&err, &context(), false);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("error: dynamodb:Query"), "{text}");
        assert!(
            text.contains("spot-runner-state") && text.contains("us-east-1"),
            "{text}"
        );
        assert!(text.contains("check: is the stack deployed"), "{text}");
        assert!(text.contains(".kiln/dev.env"), "{text}");
        let verbose = render(&err, &context(), true);
        assert!(
            verbose.contains("details:") && verbose.contains("debug:"),
            "{verbose}"
        );
    }

    #[test]
    fn sources_are_followed_and_dumps_cut() {
        let err = Outer(AwsError::new(
            "imagebuilder:ListImagePipelines",
            AwsErrorKind::Unreachable,
            "dispatch failure: io error: Connection refused\nServiceError(ServiceError { raw: Response { .. } })",
        ));
        let text = render(&err, &context(), false);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("listing pipelines: imagebuilder:ListImagePipelines"),
            "{text}"
        );
        assert!(!text.contains("ServiceError("), "{text}");
        assert!(text.contains("could not reach the AWS endpoint"), "{text}");
    }

    #[test]
    fn refused_credentials_say_so() {
        let err = AwsError::new(
            "dynamodb:Query",
            AwsErrorKind::Client,
            "UnrecognizedClientException: The security token included in the request is invalid.",
        );
        assert!(render(&err, &context(), false).contains("credentials were refused"));
    }

    #[test]
    fn non_aws_errors_stay_one_line() {
        let err = std::io::Error::other("presets/x.yaml: permission denied");
        assert_eq!(
            render(&err, &context(), false),
            "error: presets/x.yaml: permission denied"
        );
    }
}
