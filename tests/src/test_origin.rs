//! A stand-in for the `status-origin` Lambda: a tiny HTTP server on a free port that
//! checks the edge's signed `GET /status` and answers with a signed `StatusReport`.
//! It can be told to fail in every way the edge must survive, and stopped and restarted
//! (connection refused in between).
//!
//! Every response carries `Connection: close`, so a stopped origin is really gone: no
//! pooled keep-alive connection keeps answering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_shared::StatusReport;
use kiln_shared::signing::{
    self, DEFAULT_WINDOW_SECS, RESPONSE_METHOD, SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How the origin answers `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200, the report, correctly signed.
    Serve,
    /// This HTTP status with a JSON error body.
    Error(u16),
    /// 200 and the report, but no signature headers.
    Unsigned,
    /// 200 and the report, signed with another key.
    WrongKey,
    /// Accepts the connection and never answers.
    Hang,
}

struct Inner {
    secret: Vec<u8>,
    mode: Mutex<Mode>,
    report: Mutex<StatusReport>,
    served: AtomicUsize,
    refused: AtomicUsize,
}

pub struct TestOrigin {
    inner: Arc<Inner>,
    port: u16,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestOrigin {
    /// Starts serving `report` on a free port.
    pub async fn start(secret: &str, report: StatusReport) -> std::io::Result<TestOrigin> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            secret: secret.as_bytes().to_vec(),
            mode: Mutex::new(Mode::Serve),
            report: Mutex::new(report),
            served: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let mut origin = TestOrigin {
            inner,
            port,
            server: None,
        };
        origin.serve(listener);
        Ok(origin)
    }

    fn serve(&mut self, listener: TcpListener) {
        let inner = self.inner.clone();
        self.server = Some(tokio::spawn(async move {
            // Connection tasks die with the accept loop when it is aborted.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = inner.clone();
                conns.spawn(async move {
                    let _ = handle(stream, &inner).await;
                });
                while conns.try_join_next().is_some() {}
            }
        }));
    }

    /// `http://127.0.0.1:<port>` (the edge appends `/status`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_report(&self, report: StatusReport) {
        *self.inner.report.lock().unwrap() = report;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// Correctly signed requests answered (in any mode).
    pub fn served(&self) -> usize {
        self.inner.served.load(Ordering::SeqCst)
    }

    /// Requests refused for a missing or bad signature.
    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// Stops listening: connections are refused until [`TestOrigin::restart`].
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        // The aborted task releases the port asynchronously.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries > 50 => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        self.serve(listener);
        Ok(())
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(mut stream: TcpStream, inner: &Inner) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let (ts, sig) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));

    // The edge's target is `/status?nonce=…`; the signature covers it whole.
    if method != "GET" || signing::status_nonce(&path).is_none() {
        return respond(&mut stream, 404, &[], br#"{"error":"not_found"}"#).await;
    }
    let now = chrono::Utc::now().timestamp();
    let verified = signing::verify(
        &inner.secret,
        &SignedRequest {
            timestamp: ts.as_deref(),
            signature: sig.as_deref(),
            method: "GET",
            path: &path,
            body: b"",
        },
        now,
        DEFAULT_WINDOW_SECS,
    );
    if let Err(e) = verified {
        inner.refused.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({"error": "unauthorized", "message": e.to_string()});
        return respond(&mut stream, 401, &[], body.to_string().as_bytes()).await;
    }
    inner.served.fetch_add(1, Ordering::SeqCst);
    let mode = inner.mode.lock().unwrap().clone();
    let body = serde_json::to_vec(&*inner.report.lock().unwrap()).expect("report serialises");
    let signed = |key: &[u8]| {
        let sig = signing::sign(key, now, RESPONSE_METHOD, &path, &body).expect("non-empty key");
        vec![(TIMESTAMP_HEADER, now.to_string()), (SIGNATURE_HEADER, sig)]
    };
    match mode {
        Mode::Serve => respond(&mut stream, 200, &signed(&inner.secret), &body).await,
        Mode::WrongKey => respond(&mut stream, 200, &signed(b"not-the-secret"), &body).await,
        Mode::Unsigned => respond(&mut stream, 200, &[], &body).await,
        Mode::Error(code) => {
            respond(
                &mut stream,
                code,
                &[],
                br#"{"message":"Internal Server Error"}"#,
            )
            .await
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

/// Headers for a push to the edge: `POST /ingest` of `body`, signed at `ts`.
pub fn ingest_headers(secret: &str, ts: i64, body: &[u8]) -> [(&'static str, String); 2] {
    let sig = signing::sign(secret.as_bytes(), ts, "POST", signing::INGEST_PATH, body)
        .expect("non-empty secret");
    [(TIMESTAMP_HEADER, ts.to_string()), (SIGNATURE_HEADER, sig)]
}
