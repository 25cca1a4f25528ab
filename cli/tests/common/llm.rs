//! A stand-in for an OpenAI-compatible model server: a real HTTP server on 127.0.0.1 that
//! speaks the chat-completions API, records every request and answers as the test tells it
//! (citing the chunk ids it finds in the prompt, hallucinating one, a low confidence, prose
//! instead of JSON, an error status, or nothing before the deadline).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::web::{Data, Json};
use poem::{EndpointExt, IntoResponse, Response, Route, handler};
use serde_json::{Value, json};

/// What the stand-in does with the next requests.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Cites the first two excerpts of the prompt (and `extra_id`, when set).
    Cite { confidence: f64, extra_id: Option<String> },
    /// Sends this text as the model's reply.
    Reply(String),
    /// Answers this HTTP status and body.
    Fail(u16, String),
    /// Answers only after this long.
    Stall(Duration),
}

/// One request the stand-in received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub authorization: Option<String>,
    pub body: Value,
}

impl Recorded {
    pub fn user_message(&self) -> String {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == "user")
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Clone)]
pub struct StandIn {
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub const PROMPT_TOKENS: u64 = 321;
pub const COMPLETION_TOKENS: u64 = 45;
pub const STAND_IN_MODEL: &str = "stand-in-model-2025";

/// The `id` attributes of the prompt's excerpts, in order.
pub fn excerpt_ids(prompt: &str) -> Vec<String> {
    prompt
        .split("<excerpt id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[handler]
async fn chat_completions(
    request: &poem::Request,
    Data(stand_in): Data<&StandIn>,
    Json(body): Json<Value>,
) -> Response {
    let recorded = Recorded {
        authorization: request.header("authorization").map(str::to_owned),
        body,
    };
    let prompt = recorded.user_message();
    stand_in.requests.lock().expect("lock").push(recorded);
    let behaviour = stand_in.behaviour.lock().expect("lock").clone();
    let content = match behaviour {
        Behaviour::Fail(status, body) => {
            return (poem::http::StatusCode::from_u16(status).expect("status"), body).into_response();
        }
        Behaviour::Stall(pause) => {
            tokio::time::sleep(pause).await;
            "{}".to_owned()
        }
        Behaviour::Reply(text) => text,
        Behaviour::Cite { confidence, extra_id } => {
            let mut claims: Vec<Value> = excerpt_ids(&prompt)
                .into_iter()
                .take(2)
                .map(|id| json!({"text": format!("Excerpt {id} explains it."), "source_chunk_id": id}))
                .collect();
            if let Some(id) = extra_id {
                claims.push(json!({"text": "A claim from nowhere.", "source_chunk_id": id}));
            }
            json!({
                "answer_summary": "Use the assignment operator <- with c(), e.g. x <- c(10.4, 5.6).",
                "claims": claims,
                "confidence_score": confidence,
            })
            .to_string()
        }
    };
    poem::web::Json(json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": STAND_IN_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }))
    .into_response()
}

impl StandIn {
    /// Serves `POST /v1/chat/completions` on 127.0.0.1 and an ephemeral port; returns the base
    /// URL (`http://127.0.0.1:PORT/v1`).
    pub async fn start() -> (Self, String) {
        let stand_in = Self {
            behaviour: Arc::new(Mutex::new(Behaviour::Cite {
                confidence: 0.9,
                extra_id: None,
            })),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Route::new()
            .at("/v1/chat/completions", poem::post(chat_completions))
            .data(stand_in.clone());
        let address = super::serve_in_test(app).await;
        (stand_in, format!("http://{address}/v1"))
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}
