//! The scaler's own listener: `/metrics` (Prometheus text), `/admin/status` (JSON: the size,
//! the verification in progress, the last decisions and verifications) and `/healthz`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::board::Board;

/// Binds the admin address (`127.0.0.1:9095`).
pub async fn bind(addr: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--admin {addr}: cannot listen: {e}"))
}

/// Serves the admin API until the task is dropped.
pub async fn serve(listener: TcpListener, board: Arc<Board>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let board = board.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let board = board.clone();
                async move { Ok::<_, Infallible>(answer(&board, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(board: &Board, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, kind)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            board.encode_metrics(),
        ),
        "/admin/status" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string_pretty(&board.snapshot()).unwrap_or_default() + "\n",
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "application/json",
            serde_json::json!({"error": "not found", "endpoints": ["GET /metrics", "GET /admin/status", "GET /healthz"]}).to_string(),
        ),
    }
}
