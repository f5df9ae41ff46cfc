//! The readiness page as a browser sees it: the built Worker under `wrangler dev`,
//! headless Chromium loading `/` in every state. Screenshots go to artifacts/edge/.

use std::time::Duration;

use kiln_devstack::started_or_skip;
use kiln_devstack::wrangler::{EdgeVars, WranglerDev, find_wrangler};
use kiln_tests::chromium::{Browser, BrowserOptions, find_chromium};
use kiln_tests::fixtures;
use kiln_tests::test_origin::{Mode, TestOrigin};

const SECRET: &str = "page-e2e-secret-41c2-0123456789abcdef";

async fn past_ttl() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_page_in_every_state() {
    if started_or_skip("page e2e", find_wrangler()).is_none()
        || started_or_skip("page e2e", find_chromium()).is_none()
    {
        return;
    }
    let origin = TestOrigin::start(SECRET, fixtures::ready()).await.unwrap();
    origin.set_mode(Mode::Error(500));
    let vars = EdgeVars {
        cache_ttl_secs: 1,
        stale_while_revalidate_secs: 0,
        page_refresh_secs: 5,
        ..EdgeVars::new(&origin.url(), SECRET)
    };
    let edge = WranglerDev::start_edge(&vars, None).await.unwrap();
    let b = Browser::start(BrowserOptions::default()).await.unwrap();
    let page = format!("{}/", edge.url());

    // No snapshot anywhere yet.
    b.goto(&page).await.unwrap();
    assert_eq!(b.text("h1").await.unwrap(), "Status unavailable");
    b.screenshot("edge/page-unavailable").await.unwrap();

    origin.set_mode(Mode::Serve);
    let states = [
        ("ready", fixtures::ready(), "Ready", "All 3 presets ready"),
        (
            "building",
            fixtures::building(),
            "Building",
            "2 presets building; 1 of 3 ready",
        ),
        (
            "degraded",
            fixtures::degraded(),
            "Degraded",
            "1 of 3 presets ready; linux-arm64 failed; 1 building",
        ),
        (
            "not_configured",
            fixtures::not_configured(),
            "Not configured",
            "No presets configured",
        ),
    ];
    for (state, report, title, message) in states {
        origin.set_report(report.clone());
        past_ttl().await;
        b.goto(&page).await.unwrap();
        assert_eq!(b.text("h1").await.unwrap(), title, "{state}");
        assert_eq!(
            b.text(".banner .message").await.unwrap(),
            message,
            "{state}"
        );
        let banner = "section[role=status]";
        assert_eq!(
            b.attr(banner, "data-status").await.unwrap().as_deref(),
            Some(state)
        );
        assert_eq!(
            b.attr(banner, "data-stale").await.unwrap().as_deref(),
            Some("false")
        );
        assert!(
            b.text(".updated")
                .await
                .unwrap()
                .starts_with("Last updated 20"),
            "{state}"
        );
        assert_eq!(
            b.count("tbody tr").await.unwrap(),
            report.presets.len(),
            "{state}: one row per preset"
        );
        for p in &report.presets {
            let row = format!("tr[data-preset='{}']", p.name);
            assert_eq!(
                b.attr(&row, "data-status").await.unwrap().as_deref(),
                Some(p.status.as_str())
            );
            let cells = b.texts(&format!("{row} > *")).await.unwrap();
            assert_eq!(cells[0], p.name);
            assert_eq!(cells[1], p.architecture.unwrap().as_str());
            for (region, ami) in &p.amis {
                assert!(
                    cells[3].contains(region) && cells[3].contains(ami),
                    "{state}: {cells:?}"
                );
            }
            if p.amis.is_empty() {
                assert_eq!(cells[3], "no AMI yet");
            }
            assert!(
                cells[4].contains("42 min ago") && cells[4].contains(" UTC"),
                "{cells:?}"
            );
        }
        if report.presets.is_empty() {
            assert!(
                b.text(".empty")
                    .await
                    .unwrap()
                    .contains("No presets are configured yet")
            );
        }
        b.screenshot(&format!("edge/page-{state}")).await.unwrap();
    }

    // Origin failing: the last known good, visibly stale.
    origin.set_report(fixtures::degraded());
    past_ttl().await;
    b.goto(&page).await.unwrap();
    origin.set_mode(Mode::Error(500));
    past_ttl().await;
    b.goto(&page).await.unwrap();
    assert_eq!(
        b.attr("section[role=status]", "data-stale")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        b.text(".stale-note")
            .await
            .unwrap()
            .starts_with("Stale: the status origin is not answering")
    );
    assert_eq!(b.text("h1").await.unwrap(), "Degraded");
    assert!(
        b.eval("return document.title")
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .contains("(stale)")
    );
    b.screenshot("edge/page-stale").await.unwrap();

    // Semantics: a language, a live status region, a captioned table with scoped headers.
    assert_eq!(b.attr("html", "lang").await.unwrap().as_deref(), Some("en"));
    assert_eq!(
        b.attr("section[role=status]", "aria-live")
            .await
            .unwrap()
            .as_deref(),
        Some("polite")
    );
    assert_eq!(b.count("thead th[scope=col]").await.unwrap(), 5);
    assert_eq!(b.count("table caption").await.unwrap(), 1);
    assert_eq!(
        b.count("script, link[rel=stylesheet], img").await.unwrap(),
        0,
        "self-contained"
    );

    // Auto-refresh without JavaScript: the meta refresh reloads the page by itself.
    origin.set_mode(Mode::Serve);
    b.eval("window.kilnMarker = 1; return null").await.unwrap();
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    assert_eq!(
        b.eval("return window.kilnMarker === undefined")
            .await
            .unwrap(),
        true,
        "page reloaded"
    );
    assert_eq!(
        b.attr("section[role=status]", "data-stale")
            .await
            .unwrap()
            .as_deref(),
        Some("false")
    );
    let light_bg = b
        .eval("return getComputedStyle(document.documentElement).backgroundColor")
        .await
        .unwrap();
    b.close().await.unwrap();

    // Dark mode follows the OS preference, with JavaScript disabled (the page needs none).
    let dark = Browser::start(BrowserOptions {
        dark: true,
        javascript: false,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    dark.goto(&page).await.unwrap();
    assert_eq!(dark.text("h1").await.unwrap(), "Degraded");
    assert_eq!(dark.count("tbody tr").await.unwrap(), 3);
    dark.screenshot("edge/page-dark").await.unwrap();
    dark.close().await.unwrap();
    // The computed colour is read with JS on, in a dark session of its own.
    let probe = Browser::start(BrowserOptions {
        dark: true,
        ..BrowserOptions::default()
    })
    .await
    .unwrap();
    probe.goto(&page).await.unwrap();
    let dark_bg = probe
        .eval("return getComputedStyle(document.documentElement).backgroundColor")
        .await
        .unwrap();
    assert_eq!(light_bg, "rgb(246, 248, 250)");
    assert_eq!(dark_bg, "rgb(13, 17, 23)");
    probe.close().await.unwrap();
}
