//! The Function URL front: plain HTTP requests become payload-2.0 events, the handler's
//! response becomes the HTTP response (502 for errors and invalid responses, as on AWS).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::runtime_api::streamed_body;
use super::sandbox::{Outcome, Runtime};

pub(super) fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
}

/// The payload-2.0 event a Function URL sends for this request.
pub fn function_url_event(
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    source_ip: &str,
    region: &str,
) -> Value {
    let mut header_map: serde_json::Map<String, Value> = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        // Function URLs join repeated headers with commas.
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query: serde_json::Map<String, Value> = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k.into_owned(), v.into_owned().into());
            }
        }
    }
    let url_id = "kilnlocal0000000000000000000000";
    let domain = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map_or_else(
            || format!("{url_id}.lambda-url.{region}.on.aws"),
            str::to_owned,
        );
    let now = chrono::Utc::now();
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": url_id,
            "domainName": domain,
            "domainPrefix": url_id,
            "http": {
                "method": method,
                "path": uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = cookies.into();
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type) => event["body"] = text.into(),
            _ => {
                event["body"] = B64.encode(body).into();
                event["isBase64Encoded"] = true.into();
            }
        }
    }
    event
}

/// Turns a handler's result into the HTTP response a Function URL would send.
pub fn function_url_response(payload: &[u8]) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return bad_gateway("the function returned a response that is not JSON");
    };
    // Without `statusCode` a Function URL returns the whole payload as JSON with 200.
    let Some(status) = v.get("statusCode") else {
        return ([("content-type", "application/json")], v.to_string()).into_response();
    };
    let Some(status) = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return bad_gateway("the function returned an invalid statusCode");
    };
    let body = match v.get("body") {
        Some(Value::String(s)) if v["isBase64Encoded"] == true => match B64.decode(s) {
            Ok(bytes) => bytes,
            Err(_) => return bad_gateway("the function returned an invalid base64 body"),
        },
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Some(headers) = v.get("headers").and_then(Value::as_object) {
        for (k, val) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                val.as_str().map(HeaderValue::from_str),
            ) {
                h.insert(name, value);
            }
        }
    }
    if let Some(multi) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vals) in multi {
            let Ok(name) = axum::http::HeaderName::from_bytes(k.as_bytes()) else {
                continue;
            };
            for val in vals.as_array().into_iter().flatten() {
                if let Some(Ok(value)) = val.as_str().map(HeaderValue::from_str)
                    && !h.get_all(&name).iter().any(|existing| existing == value)
                {
                    h.append(name.clone(), value);
                }
            }
        }
    }
    for cookie in v
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(Ok(value)) = cookie.as_str().map(HeaderValue::from_str) {
            h.append("set-cookie", value);
        }
    }
    if !h.contains_key("content-type") {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    response
}

pub(super) fn bad_gateway(why: &str) -> Response {
    tracing::warn!("Function URL: {why}");
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({"Message": "Internal Server Error"})),
    )
        .into_response()
}

pub(super) async fn function_url(
    State(rt): State<Arc<Runtime>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Function URLs accept payloads up to 6 MB.
    let Ok(body) = axum::body::to_bytes(body, 6 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body over 6 MB").into_response();
    };
    let event = function_url_event(
        parts.method.as_str(),
        &parts.uri,
        &parts.headers,
        &body,
        &peer.ip().to_string(),
        &rt.spec.region,
    );
    match rt.invoke(Bytes::from(event.to_string())).await {
        Ok(Outcome::Response { body, streaming }) => {
            let body = if streaming {
                streamed_body(&body).unwrap_or(body)
            } else {
                body
            };
            function_url_response(&body)
        }
        Ok(Outcome::Error {
            error_type,
            message,
        }) => bad_gateway(&format!("function error {error_type}: {message}")),
        Err(e) => bad_gateway(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_event_is_payload_2_0() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let uri: axum::http::Uri = "/status?require=ready&x=1&x=2".parse().unwrap();
        let e = function_url_event(
            "POST",
            &uri,
            &headers,
            b"{\"k\":1}",
            "127.0.0.1",
            "us-east-1",
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/status");
        assert_eq!(e["rawQueryString"], "require=ready&x=1&x=2");
        assert_eq!(e["queryStringParameters"]["require"], "ready");
        assert_eq!(e["queryStringParameters"]["x"], "1,2");
        assert_eq!(e["headers"]["x-multi"], "a,b");
        assert!(
            e["headers"].get("cookie").is_none(),
            "cookies move to `cookies`"
        );
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(e["body"], "{\"k\":1}");
        assert_eq!(e["isBase64Encoded"], false);

        let mut bin = HeaderMap::new();
        bin.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let e = function_url_event(
            "PUT",
            &"/b".parse().unwrap(),
            &bin,
            &[0xff, 0, 1],
            "::1",
            "us-east-1",
        );
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(
            B64.decode(e["body"].as_str().unwrap()).unwrap(),
            [0xff, 0, 1]
        );
        assert!(e.get("queryStringParameters").is_none());
    }

    async fn parts(r: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn function_url_response_mapping() {
        // No statusCode: the whole payload is the JSON body.
        let (s, h, b) = parts(function_url_response(br#"{"status":"ready"}"#)).await;
        assert_eq!(
            (s, h["content-type"].to_str().unwrap()),
            (StatusCode::OK, "application/json")
        );
        assert_eq!(b, br#"{"status":"ready"}"#);

        let payload = json!({
            "statusCode": 503,
            "headers": {"content-type": "text/plain", "etag": "\"abc\""},
            "multiValueHeaders": {"vary": ["accept", "origin"]},
            "cookies": ["a=1", "b=2"],
            "body": B64.encode("not ready"),
            "isBase64Encoded": true,
        });
        let (s, h, b) = parts(function_url_response(payload.to_string().as_bytes())).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["etag"], "\"abc\"");
        assert_eq!(h.get_all("vary").iter().count(), 2);
        assert_eq!(
            h.get_all("set-cookie").iter().collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(b, b"not ready");

        for bad in [
            &b"not json"[..],
            br#"{"statusCode": 99999}"#,
            br#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#,
        ] {
            let (s, _, _) = parts(function_url_response(bad)).await;
            assert_eq!(s, StatusCode::BAD_GATEWAY);
        }
    }

    #[test]
    fn streamed_responses_are_buffered() {
        let mut raw = br#"{"statusCode":201,"headers":{"x":"y"}}"#.to_vec();
        raw.extend([0u8; 8]);
        raw.extend(b"hello");
        let v: Value = serde_json::from_slice(&streamed_body(&raw).unwrap()).unwrap();
        assert_eq!(v["statusCode"], 201);
        assert_eq!(v["body"], "hello");
        assert!(streamed_body(b"no separator").is_none());
    }
}
