//! Registers a finished build's AMIs in an EC2 emulator (moto), so tools that list or
//! deregister AMIs (`kiln cleanup`) meet real images. EC2 chooses the ids, so the
//! registration happens before the build turns AVAILABLE and its ids become
//! `outputResources.amis`.
//!
//! Plain EC2 Query API over HTTP: two calls per region (RegisterImage, CreateTags). moto
//! takes the region from the credential scope of the `Authorization` header and does
//! not check the signature.

use std::collections::BTreeMap;

/// What to register for one build.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub endpoint: String,
    pub regions: Vec<String>,
    pub name: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

pub(crate) async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    params: &[(String, String)],
) -> Result<String, String> {
    call_service(http, endpoint, region, "ec2", params).await
}

/// A Query API call to `service` (moto routes by the credential scope's service).
pub(crate) async fn call_service(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    service: &str,
    params: &[(String, String)],
) -> Result<String, String> {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=00",
        crate::emulators::ACCESS_KEY_ID
    );
    let response = http
        .post(endpoint)
        .header("Authorization", auth)
        .form(params)
        .send()
        .await
        .map_err(|e| format!("{service} endpoint {endpoint} unreachable: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{service} answered {status}: {text}"));
    }
    Ok(text)
}

pub(crate) fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// Registers the AMI in every region; returns region → AMI id in region order.
pub(crate) async fn register(
    http: &reqwest::Client,
    r: &Registration,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for region in &r.regions {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let xml = call(
            http,
            &r.endpoint,
            region,
            &[
                p("Action", "RegisterImage"),
                p("Version", "2016-11-15"),
                p("Name", &r.name),
                p("Description", &r.description),
            ],
        )
        .await?;
        let id = xml_value(&xml, "imageId")
            .ok_or_else(|| format!("RegisterImage in {region}: no imageId in {xml}"))?
            .to_owned();
        if !r.tags.is_empty() {
            let mut params = vec![
                p("Action", "CreateTags"),
                p("Version", "2016-11-15"),
                p("ResourceId.1", &id),
            ];
            for (i, (k, v)) in r.tags.iter().enumerate() {
                params.push((format!("Tag.{}.Key", i + 1), k.clone()));
                params.push((format!("Tag.{}.Value", i + 1), v.clone()));
            }
            call(http, &r.endpoint, region, &params).await?;
        }
        out.push((region.clone(), id));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_value_extracts() {
        let xml = "<RegisterImageResponse><requestId>x</requestId><imageId>ami-0123</imageId></RegisterImageResponse>";
        assert_eq!(super::xml_value(xml, "imageId"), Some("ami-0123"));
        assert_eq!(super::xml_value(xml, "nope"), None);
    }
}
