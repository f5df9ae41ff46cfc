//! The page's only stylesheet, inlined (no external assets: the page must render from a
//! single response, offline, under a strict CSP).

pub const CSS: &str = r#"
:root{color-scheme:light dark;
--bg:#f6f8fa;--fg:#1f2328;--muted:#59636e;--card:#fff;--line:#d1d9e0;--head:#f0f3f6;
--ready:#1a7f37;--ready-bg:#dafbe1;--building:#0969da;--building-bg:#ddf4ff;
--failed:#cf222e;--failed-bg:#ffebe9;--none:#59636e;--none-bg:#eff2f5;--stale:#9a6700;--stale-bg:#fff8c5}
@media (prefers-color-scheme:dark){:root{
--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--card:#151b23;--line:#30363d;--head:#1b222c;
--ready:#3fb950;--ready-bg:#12261e;--building:#4493f8;--building-bg:#121d2f;
--failed:#f85149;--failed-bg:#2d1215;--none:#9198a1;--none-bg:#1b222c;--stale:#d29922;--stale-bg:#272115}}
*{box-sizing:border-box}
html{background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
body{margin:0}
.wrap{max-width:1280px;margin:0 auto;padding:clamp(16px,3vw,40px)}
.top{display:flex;flex-wrap:wrap;align-items:baseline;justify-content:space-between;gap:8px 24px;margin-bottom:20px}
.brand{margin:0;font-size:1.25rem;font-weight:700;letter-spacing:.02em}
.brand span{color:var(--muted);font-weight:400}
.updated{margin:0;color:var(--muted);font-variant-numeric:tabular-nums}
.banner{display:flex;align-items:center;gap:clamp(14px,2vw,28px);padding:clamp(18px,3vw,36px);border-radius:16px;
border:1px solid var(--line);border-left:12px solid var(--tone);background:var(--tone-bg);margin-bottom:24px}
.banner h1{margin:0;font-size:clamp(2rem,5vw,3.5rem);line-height:1.1;color:var(--tone)}
.banner .message{margin:.35em 0 0;font-size:clamp(1.1rem,2vw,1.5rem)}
.banner .stale-note{margin:.6em 0 0;font-weight:600;color:var(--stale)}
.dot{flex:none;width:clamp(28px,4vw,52px);height:clamp(28px,4vw,52px);border-radius:50%;background:var(--tone);
box-shadow:0 0 0 8px color-mix(in srgb,var(--tone) 22%,transparent)}
.tone-ready{--tone:var(--ready);--tone-bg:var(--ready-bg)}
.tone-building{--tone:var(--building);--tone-bg:var(--building-bg)}
.tone-degraded,.tone-failed{--tone:var(--failed);--tone-bg:var(--failed-bg)}
.tone-not_configured{--tone:var(--none);--tone-bg:var(--none-bg)}
.banner.stale{background:repeating-linear-gradient(-45deg,var(--tone-bg) 0 14px,var(--stale-bg) 14px 28px)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:16px;margin:0 0 24px;padding:0;list-style:none}
.tiles li{background:var(--card);border:1px solid var(--line);border-top:4px solid var(--tone);border-radius:12px;padding:14px 18px}
.tiles .n{display:block;font-size:clamp(1.8rem,3.5vw,2.6rem);font-weight:700;line-height:1.1;font-variant-numeric:tabular-nums}
.tiles .k{color:var(--muted)}
.tiles li.zero{opacity:.55;border-top-color:var(--line)}
.card{background:var(--card);border:1px solid var(--line);border-radius:16px;overflow:hidden}
.card h2{margin:0;padding:14px 20px;font-size:1.1rem;border-bottom:1px solid var(--line)}
.scroll{overflow-x:auto}
table{width:100%;border-collapse:collapse;font-size:clamp(.95rem,1.2vw,1.1rem)}
th,td{padding:12px 20px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
thead th{background:var(--head);color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.06em}
tbody tr:last-child>*{border-bottom:0}
tbody th{font-weight:600}
.pill{display:inline-flex;align-items:center;gap:6px;padding:2px 12px;border-radius:999px;font-weight:600;
background:var(--tone-bg);color:var(--tone);border:1px solid color-mix(in srgb,var(--tone) 40%,transparent);white-space:nowrap}
.pill::before{content:"";width:8px;height:8px;border-radius:50%;background:var(--tone)}
.amis{margin:0;padding:0;list-style:none}
.amis li{white-space:nowrap}
.region{display:inline-block;min-width:8.5em;color:var(--muted)}
code{font:.92em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.abs{display:block;color:var(--muted);font-size:.85em;font-variant-numeric:tabular-nums}
.none{color:var(--muted)}
.warn{margin:4px 0 0;color:var(--stale);font-size:.85em}.hide{display:none}
.empty{padding:28px 20px;margin:0;color:var(--muted)}
footer{margin-top:20px;color:var(--muted);font-size:.9rem}
a{color:var(--building)}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
"#;
