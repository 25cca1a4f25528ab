//! A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that verifies every
//! delivery with the Standard Webhooks reference library (`standardwebhooks`), keeps what it
//! received, and can be stopped and started again on the same port (an outage).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Response, Route, handler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// One delivery the receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub body: Value,
}

#[derive(Clone, Default)]
struct State {
    secret: Arc<Mutex<Option<String>>>,
    received: Arc<Mutex<Vec<Received>>>,
    refused_signatures: Arc<AtomicUsize>,
}

#[handler]
async fn hook(request: &poem::Request, body: poem::Body, Data(state): Data<&State>) -> Response {
    let Ok(bytes) = body.into_vec().await else {
        return poem::http::StatusCode::BAD_REQUEST.into_response();
    };
    let secret = state.secret.lock().expect("lock").clone().unwrap_or_default();
    let verified = standardwebhooks::Webhook::new(&secret).and_then(|hook| hook.verify(&bytes, request.headers()));
    if verified.is_err() {
        state.refused_signatures.fetch_add(1, Ordering::SeqCst);
        return poem::http::StatusCode::UNAUTHORIZED.into_response();
    }
    let id = request.header("webhook-id").unwrap_or_default().to_owned();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.received.lock().expect("lock").push(Received { id, body });
    poem::http::StatusCode::NO_CONTENT.into_response()
}

pub struct Receiver {
    state: State,
    pub port: u16,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Receiver {
    /// Listening at once on a port of its own.
    pub async fn start() -> Self {
        let mut receiver = Self {
            state: State::default(),
            port: super::free_port(),
            running: None,
        };
        receiver.resume().await;
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// The secret deliveries must be signed with.
    pub fn expect_secret(&self, secret: &str) {
        *self.state.secret.lock().expect("lock") = Some(secret.to_owned());
    }

    /// Stops listening: connections are refused until [`Self::resume`].
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let _ = task.await;
        }
    }

    pub async fn resume(&mut self) {
        use poem::listener::TcpListener;
        let app = Route::new().at("/hook", poem::post(hook)).data(self.state.clone());
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let server = poem::Server::new(TcpListener::bind(format!("127.0.0.1:{}", self.port)));
        let task = tokio::spawn(async move {
            let _ = server
                .run_with_graceful_shutdown(app, async move { signal.cancelled().await }, None)
                .await;
        });
        // Listening before the caller goes on.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.running = Some((stop, task));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Deliveries refused for a bad signature.
    pub fn refused_signatures(&self) -> usize {
        self.state.refused_signatures.load(Ordering::SeqCst)
    }

    /// Each event once, by `webhook-id`, with how often it came.
    pub fn by_id(&self) -> BTreeMap<String, (Value, usize)> {
        let mut events: BTreeMap<String, (Value, usize)> = BTreeMap::new();
        for received in self.received() {
            let entry = events.entry(received.id).or_insert((received.body.clone(), 0));
            assert_eq!(entry.0, received.body, "a retry carries the same body");
            entry.1 += 1;
        }
        events
    }

    /// The distinct event ids of one type.
    pub fn ids_of(&self, kind: &str) -> BTreeSet<String> {
        self.by_id()
            .into_iter()
            .filter(|(_, (body, _))| body["type"] == kind)
            .map(|(id, _)| id)
            .collect()
    }
}
