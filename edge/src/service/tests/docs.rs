//! The history, feed, Statuspage and metric-badge routes: served from the snapshot's
//! pre-rendered documents, wrapped per request, with ETags, caching and stale fallback.

use kiln_shared::feeds::{Feeds, Published};

use super::*;

fn feeds() -> Feeds {
    let mut f = Feeds {
        history: r#"[{"name":"linux-x64","days":[],"uptime":{"24h":1.0,"7d":1.0,"30d":1.0,"90d":null},"builds":[]}]"#.into(),
        status: r#"{"indicator":"none","description":"All 2 presets ready"}"#.into(),
        summary: r#""components":[],"incidents":[],"scheduled_maintenances":[]"#.into(),
        atom: "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"></feed>".into(),
        uptime30d: ["99.5 %".into(), "good".into()],
        // Built 3 days before T0.
        age: [(T0 - 3 * 86_400).to_string(), String::new()],
        ..Feeds::default()
    };
    f.retag();
    f
}

fn pushed(f: &Fake) {
    let body = serde_json::to_vec(&Published {
        report: ready(),
        feeds: feeds(),
    })
    .unwrap();
    let r = f.ingest(&body, T0, SECRET);
    assert_eq!(r.status, 202, "{}", r.text());
}

#[test]
fn documents_are_wrapped_tagged_and_cached_like_status() {
    let f = fake(OriginMode::Up(ready()));
    pushed(&f);
    let h = f.get("/history.json");
    assert_eq!(h.status, 200);
    let v: serde_json::Value = serde_json::from_str(h.text()).unwrap();
    assert_eq!(v["generatedAt"], ready().generated_at.as_str());
    assert_eq!(v["stale"], false);
    assert_eq!(v["presets"][0]["name"], "linux-x64");
    assert_eq!(h.header("access-control-allow-origin"), Some("*"));
    assert!(h.header("cache-control").unwrap().contains("max-age"));
    let etag = h.header("etag").unwrap().to_owned();
    let again = f.req(Request {
        method: "GET",
        path: "/history.json",
        if_none_match: Some(&etag),
        ..Request::default()
    });
    assert_eq!(again.status, 304);

    let s = f.req(Request {
        method: "GET",
        path: "/api/v2/summary.json",
        base: "https://status.example.com",
        ..Request::default()
    });
    let v: serde_json::Value = serde_json::from_str(s.text()).unwrap();
    assert_eq!(v["page"]["url"], "https://status.example.com/");
    assert_eq!(v["status"]["indicator"], "none");
    assert!(v["components"].is_array() && v["incidents"].is_array());
    assert_ne!(
        s.header("etag"),
        Some(etag.as_str()),
        "one tag per document"
    );
    let st: serde_json::Value = serde_json::from_str(f.get("/api/v2/status.json").text()).unwrap();
    assert_eq!(st.as_object().unwrap().len(), 2);
    let atom = f.get("/feed.atom");
    assert_eq!(atom.text(), feeds().atom);
    assert!(
        atom.header("content-type")
            .unwrap()
            .starts_with("application/atom+xml")
    );

    let svg = f.get_q("/badge.svg", "metric=uptime30d");
    assert!(svg.text().contains("uptime 30d: 99.5 %"), "{}", svg.text());
    let json: serde_json::Value =
        serde_json::from_str(f.get_q("/badge.json", "metric=age").text()).unwrap();
    assert_eq!(
        (json["message"].as_str(), json["color"].as_str()),
        (Some("3 days"), Some("brightgreen"))
    );

    // Origin down past TTL + SWR: the last known good documents, marked stale.
    f.set_origin(OriginMode::Down);
    f.advance(31);
    // The age keeps counting on a stale copy.
    f.advance(4 * 86_400);
    let json: serde_json::Value =
        serde_json::from_str(f.get_q("/badge.json", "metric=age").text()).unwrap();
    assert_eq!(
        (json["message"].as_str(), json["color"].as_str()),
        (Some("7 days (stale)"), Some("yellow"))
    );
    let stale = f.get("/history.json");
    assert_eq!(stale.status, 200);
    let v: serde_json::Value = serde_json::from_str(stale.text()).unwrap();
    assert_eq!(v["stale"], true);
    assert_eq!(stale.header("cache-control"), Some("no-cache"));
    assert_ne!(stale.header("etag"), Some(etag.as_str()));
    // A new isolate reads them back from the Cache API / KV.
    let g = f.new_isolate();
    let v: serde_json::Value = serde_json::from_str(g.get("/history.json").text()).unwrap();
    assert_eq!(v["presets"][0]["name"], "linux-x64");
}

#[test]
fn an_origin_without_feeds_answers_503_on_the_documents_only() {
    let f = fake(OriginMode::Up(ready()));
    assert_eq!(f.get("/status").status, 200);
    for path in ["/history.json", "/feed.atom", "/api/v2/summary.json"] {
        let r = f.get(path);
        assert_eq!(r.status, 503, "{path}");
        assert!(r.text().contains("unavailable"));
    }
    let badge = f.get_q("/badge.svg", "metric=age");
    assert!(badge.text().contains("n/a"));
    assert_eq!(f.get_q("/badge.svg", "metric=bogus").status, 400);
}
