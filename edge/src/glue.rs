//! workers-rs glue: maps [`Platform`] onto the Workers runtime. No decisions here.

use std::cell::{OnceCell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use kiln_shared::signing::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use worker::js_sys::{Function, Math, Promise};
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    AbortController, ByteStream, Cache, Context, Date, Delay, Env, Fetch, Headers, Method, Request,
    RequestInit, Response, ResponseBuilder, Result, console_log, event,
};

use crate::body::BodySource;
use crate::config::{Config, KV_BINDING};
use crate::http::{Body, Reply};
use crate::origin::{OriginError, OriginRequest, OriginResponse};
use crate::service::{self, Edge, Memory, Platform, Wait, Wake};
use crate::snapshot::Snapshot;

/// What outlives a request in this isolate: the snapshot memory and the parsed config
/// (vars and secrets cannot change without a new isolate).
struct Isolate {
    memory: Memory,
    config: OnceCell<Config>,
}

impl Isolate {
    fn new() -> Isolate {
        // Unique enough among a colo's isolates; 0 means "unknown owner".
        let id = (Math::random() * 9_007_199_254_740_992.0) as u64 | 1;
        Isolate {
            memory: Memory::new(id),
            config: OnceCell::new(),
        }
    }
}

/// The request body, opened only when the service asks for it (`/ingest`).
struct JsBody<'r> {
    req: &'r mut Request,
    stream: Option<ByteStream>,
}

impl BodySource for JsBody<'_> {
    async fn chunk(&mut self) -> std::result::Result<Option<Vec<u8>>, String> {
        if self.stream.is_none() {
            match self.req.stream() {
                Ok(s) => self.stream = Some(s),
                Err(_) => return Ok(None), // no body at all
            }
        }
        match self.stream.as_mut().map(|s| s.next()) {
            Some(next) => next.await.transpose().map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

thread_local! {
    static ISOLATE: Rc<Isolate> = Rc::new(Isolate::new());
    /// The response headers of the current snapshot's 200 `/status` (see `into_response`).
    static HOT_HEADERS: RefCell<Option<(Rc<Snapshot>, Headers)>> = const { RefCell::new(None) };
}

#[derive(Clone)]
struct WorkerPlatform {
    env: Env,
    ctx: Rc<Context>,
    isolate: Rc<Isolate>,
    cache_key: Rc<str>,
}

impl WorkerPlatform {
    fn kv(&self) -> Option<worker::KvStore> {
        match self.env.kv(KV_BINDING) {
            Ok(kv) => Some(kv),
            Err(e) => {
                self.log(&format!("KV binding {KV_BINDING} unavailable: {e}"));
                None
            }
        }
    }
}

impl Platform for WorkerPlatform {
    fn now(&self) -> i64 {
        (Date::now().as_millis() / 1000) as i64
    }

    fn config(&self) -> &Config {
        self.isolate.config.get_or_init(|| {
            let plain: Vec<&str> = env!("KILN_PLAIN_VARS").split(',').collect();
            let config = Config::from_env(
                |name| {
                    self.env
                        .secret(name)
                        .map(|s| s.to_string())
                        .or_else(|_| self.env.var(name).map(|v| v.to_string()))
                        .ok()
                },
                &plain,
            );
            // Once per isolate: the public /healthz only says "misconfigured".
            for problem in &config.problems {
                self.log(&format!("configuration: {problem}"));
            }
            config
        })
    }

    fn memory(&self) -> &Memory {
        &self.isolate.memory
    }

    async fn fetch_origin(
        &self,
        req: &OriginRequest,
    ) -> std::result::Result<OriginResponse, OriginError> {
        let transport = |e: worker::Error| OriginError::Transport(e.to_string());
        let headers = Headers::new();
        for (name, value) in &req.headers {
            headers.set(name, value).map_err(transport)?;
        }
        headers
            .set("accept", "application/json")
            .map_err(transport)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let request = Request::new_with_init(&req.url, &init).map_err(transport)?;
        let abort = AbortController::default();
        let signal = abort.signal();
        let call = async {
            let mut resp = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(transport)?;
            let h = resp.headers();
            let timestamp = h.get(TIMESTAMP_HEADER).ok().flatten();
            let signature = h.get(SIGNATURE_HEADER).ok().flatten();
            let status = resp.status_code();
            let body = resp.bytes().await.map_err(transport)?;
            Ok(OriginResponse {
                status,
                timestamp,
                signature,
                body,
            })
        };
        let timeout = Delay::from(Duration::from_millis(u64::from(req.timeout_ms)));
        match select(Box::pin(call), timeout).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => {
                abort.abort();
                Err(OriginError::Timeout(req.timeout_ms))
            }
        }
    }

    async fn cache_get(&self) -> Option<Vec<u8>> {
        let mut resp = Cache::default().get(&*self.cache_key, false).await.ok()??;
        resp.bytes().await.ok()
    }

    async fn cache_put(&self, value: String, max_age_secs: u32) {
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("cache-control", &format!("max-age={max_age_secs}"));
        let resp = ResponseBuilder::new()
            .with_headers(headers)
            .fixed(value.into_bytes());
        if let Err(e) = Cache::default().put(&*self.cache_key, resp).await {
            self.log(&format!("cache put failed: {e}"));
        }
    }

    async fn kv_get(&self, key: &'static str) -> Option<Vec<u8>> {
        match self.kv()?.get(key).bytes().await {
            Ok(v) => v,
            Err(e) => {
                self.log(&format!("KV get {key} failed: {e}"));
                None
            }
        }
    }

    async fn kv_put(&self, key: &'static str, value: String) {
        let Some(kv) = self.kv() else { return };
        let result = match kv.put(key, value) {
            Ok(put) => put.execute().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.log(&format!("KV put {key} failed: {e}"));
        }
    }

    fn spawn(&self, fut: Pin<Box<dyn Future<Output = ()>>>) {
        self.ctx.wait_until(fut);
    }

    fn signal(&self) -> (Wake, Wait) {
        // The promise is created here, by the waiting request, so its continuation runs
        // in that request's context whichever request resolves it.
        let mut resolve: Option<Function> = None;
        let promise = Promise::new(&mut |res, _| resolve = Some(res));
        let wake: Wake = Box::new(move || {
            if let Some(res) = resolve {
                let _ = res.call0(&JsValue::UNDEFINED);
            }
        });
        (
            wake,
            Box::pin(async move {
                let _ = JsFuture::from(promise).await;
            }),
        )
    }

    fn log(&self, line: &str) {
        console_log!("kiln-edge: {line}");
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> Result<Response> {
    // The raw URL string, split by hand: `Url::parse` would link the whole IDNA/ICU stack
    // into the wasm for nothing (the runtime has already normalised the URL).
    let url = req.inner().url();
    let parts = crate::route::UrlParts::split(&url);
    let method = req.method();
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    // Hot path: a GET reads one header; only pushes need the signature. The body is
    // never read here: the service pulls it for `/ingest` alone, up to its limit.
    let is_post = method == Method::Post;
    let (if_none_match, timestamp, signature, content_length) = if is_post {
        let (ts, sig) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        let len = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        (None, ts, sig, len)
    } else {
        (header("if-none-match"), None, None, None)
    };
    let platform = WorkerPlatform {
        env,
        ctx: Rc::new(ctx),
        isolate: ISOLATE.with(Rc::clone),
        // Same zone as the request, so the entry is shared by the colo's isolates.
        cache_key: format!("{}/__kiln/status-snapshot", parts.origin).into(),
    };
    let reply = Edge::new(platform)
        .handle(
            &service::Request {
                method: method.as_ref(),
                path: parts.path,
                query: parts.query,
                if_none_match: if_none_match.as_deref(),
                timestamp: timestamp.as_deref(),
                signature: signature.as_deref(),
                content_length,
                base: parts.origin,
            },
            JsBody {
                req: &mut req,
                stream: None,
            },
        )
        .await;
    into_response(reply)
}

fn into_response(reply: Reply) -> Result<Response> {
    // Hot path: a 200 with a snapshot body has the same headers for as long as that
    // snapshot is current, so the JS `Headers` object is built once per snapshot and
    // copied natively per response instead of crossing every name and value again.
    if reply.status == 200
        && let Body::Snapshot(s) = &reply.body
    {
        let headers = HOT_HEADERS.with(|hot| -> Result<Headers> {
            let mut hot = hot.borrow_mut();
            if let Some((snap, h)) = hot.as_ref()
                && Rc::ptr_eq(snap, s)
            {
                return Ok(h.clone());
            }
            let h = js_headers(&reply)?;
            *hot = Some((s.clone(), h.clone()));
            Ok(h)
        })?;
        return Ok(ResponseBuilder::new()
            .with_status(200)
            .with_headers(headers)
            .fixed(s.body.as_bytes().to_vec()));
    }
    let builder = ResponseBuilder::new()
        .with_status(reply.status)
        .with_headers(js_headers(&reply)?);
    Ok(match reply.body {
        Body::Empty => builder.empty(),
        Body::Text(text) => builder.fixed(text.into_bytes()),
        Body::Snapshot(s) => builder.fixed(s.body.as_bytes().to_vec()),
    })
}

fn js_headers(reply: &Reply) -> Result<Headers> {
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    Ok(headers)
}
