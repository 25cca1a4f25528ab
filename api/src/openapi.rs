//! What the OpenAPI document says beyond what poem-openapi generates from the handlers, so
//! that it describes exactly what the server sends and accepts (`schemathesis` checks it
//! against a running `hbi serve`, `cli/tests/fast/api_contract.rs`):
//!
//! - 422 (FastAPI's validation error) and 413 on every operation that can answer them: poem
//!   refuses a bad path or query value, a malformed body or a wrong content type before the
//!   handler runs, so the handlers' own responses do not list them;
//! - `additionalProperties: false` on the request bodies that refuse unknown properties;
//! - the range of each fixed-size integer (`format: uint32` alone lets a client send a value
//!   that poem refuses with 422);
//! - no `allOf` around a reference to an enum (poem-openapi wraps one to add a default or a
//!   description; generated clients take `allOf` for objects only): the enum is inlined;
//! - the methods of each path, for the `Allow` header of a 405 answer.
//!
//! Which `Option` fields are `nullable` is said on the fields themselves (`#[oai(nullable)]`:
//! sent as `null`, FastAPI's way) or they are left out of the body
//! (`#[oai(skip_serializing_if_is_none)]`).

use std::collections::HashMap;

use poem_openapi::types::Type;
use serde_json::{Map, Value, json};

use crate::routes::config::ConfigUpdate;
use crate::routes::keys::{KeyCreate, LibraryAccess};
use crate::routes::libraries::LibraryCreate;
use crate::routes::webhooks::WebhookCreate;

/// Request bodies that refuse a property they do not know (422 `extra_forbidden` or
/// `unknown field`); every other body ignores unknown properties, as FastAPI does.
fn closed_schemas() -> [String; 5] {
    [
        KeyCreate::name().into_owned(),
        LibraryAccess::name().into_owned(),
        LibraryCreate::name().into_owned(),
        ConfigUpdate::name().into_owned(),
        WebhookCreate::name().into_owned(),
    ]
}

/// Adds the answers, closed bodies and inlined enums above to `spec`.
pub fn complete(spec: &mut Value) {
    inline_enum_refs(spec);
    bound_integers(spec);
    for name in closed_schemas() {
        if let Some(schema) = spec["components"]["schemas"]
            .get_mut(&name)
            .and_then(Value::as_object_mut)
        {
            schema.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
    document_invalid_input(spec);
    describe_event_streams(spec);
}

/// Every operation of the document (each method of each path).
fn operations_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    spec.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|operations| operations.values_mut())
}

/// A Server-Sent Events answer documented event by event, as OpenAPI before 3.2 reads the
/// schema of `text/event-stream` (and schemathesis checks it): poem-openapi writes
/// `{type: array, format: event-stream, items: T}`, as if the stream were one JSON array.
/// Each event has its `event` name, its `id` and its `data`, the JSON of `T` (named in
/// `x-data-schema`, as OpenAPI 3.0 has no keyword for a schema of a string's content).
fn describe_event_streams(spec: &mut Value) {
    for operation in operations_mut(spec) {
        // `get_mut`, not indexing: indexing a JSON object for writing adds the key.
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for response in responses.values_mut() {
            let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
                continue;
            };
            for (media_type, body) in content.iter_mut() {
                if !media_type.starts_with("text/event-stream") || body["schema"]["format"] != "event-stream" {
                    continue;
                }
                let data = body["schema"]["items"].clone();
                let named = data["$ref"].as_str().unwrap_or("the documented schema").to_owned();
                body["schema"] = json!({
                    "type": "object",
                    "description": "One event of the stream.",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string", "description": "The event's name."},
                        "id": {"type": "string", "description": "The event's id, to resume from with `Last-Event-ID`."},
                        "data": {
                            "type": "string",
                            "description": format!("The event's payload: JSON of {named}."),
                            "x-data-schema": data,
                        },
                    },
                });
            }
        }
    }
}

/// 422 on every operation with parameters or a body, 413 on every operation with a body.
fn document_invalid_input(spec: &mut Value) {
    let validation = json!({
        "description": "The request is invalid: a path or query value of the wrong type or out of range, a body \
                        that is not the documented JSON, a wrong content type. Each problem has its `loc` \
                        (`[\"query\", \"limit\"]`), `msg` and `type`.",
        "content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/ValidationError"}}},
    });
    let too_large = json!({
        "description": "The body is larger than the limit (`limits.max_upload_mb` and the multipart envelope for an upload, 1 MiB for JSON), by its declared length or counted while it streams.",
        "content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
    });
    for operation in operations_mut(spec) {
        let has_parameters = operation["parameters"].as_array().is_some_and(|p| !p.is_empty());
        let has_body = operation.get("requestBody").is_some();
        let Some(responses) = operation["responses"].as_object_mut() else {
            continue;
        };
        if has_parameters || has_body {
            responses.entry("422").or_insert_with(|| validation.clone());
        }
        if has_body {
            responses.entry("413").or_insert_with(|| too_large.clone());
        }
    }
}

/// Adds `minimum` and `maximum` to every integer schema of a fixed-size format that lacks them.
fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("type").and_then(Value::as_str) == Some("integer") {
                let range = match object.get("format").and_then(Value::as_str) {
                    Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                    Some("uint32") => Some((json!(0), json!(u32::MAX))),
                    Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                    Some("uint64") => Some((json!(0), json!(u64::MAX))),
                    _ => None,
                };
                if let Some((minimum, maximum)) = range {
                    object.entry("minimum").or_insert(minimum);
                    object.entry("maximum").or_insert(maximum);
                }
            }
            object.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Replaces `{"allOf": [{"$ref": enum}, {patch}], patch...}` by the enum's own schema with
/// the patch (a default, a description) merged in. References to objects stay as they are.
fn inline_enum_refs(spec: &mut Value) {
    let schemas = spec["components"]["schemas"].as_object().cloned().unwrap_or_default();
    inline_in(spec, &schemas);
}

fn inline_in(value: &mut Value, schemas: &Map<String, Value>) {
    match value {
        Value::Object(object) => {
            if let Some(inlined) = inlined_enum(object, schemas) {
                *object = inlined;
            }
            for child in object.values_mut() {
                inline_in(child, schemas);
            }
        }
        Value::Array(items) => {
            for item in items {
                inline_in(item, schemas);
            }
        }
        _ => {}
    }
}

fn inlined_enum(object: &Map<String, Value>, schemas: &Map<String, Value>) -> Option<Map<String, Value>> {
    let members = object.get("allOf")?.as_array()?;
    let (refs, patches): (Vec<&Value>, Vec<&Value>) = members.iter().partition(|member| member.get("$ref").is_some());
    let [reference] = refs.as_slice() else {
        return None;
    };
    let name = reference["$ref"].as_str()?.strip_prefix("#/components/schemas/")?;
    let target = schemas.get(name)?.as_object()?;
    target.get("enum")?;
    let mut inlined = target.clone();
    let siblings = object.iter().filter(|(key, _)| key.as_str() != "allOf");
    let patched = patches.iter().filter_map(|patch| patch.as_object()).flatten();
    for (key, value) in patched.chain(siblings) {
        inlined.insert(key.clone(), value.clone());
    }
    Some(inlined)
}

/// The `Allow` header for each path template of `spec`: its documented methods, with HEAD
/// where GET is (poem answers HEAD with the GET handler).
pub fn allowed_methods(spec: &Value) -> HashMap<String, String> {
    let Some(paths) = spec["paths"].as_object() else {
        return HashMap::new();
    };
    paths
        .iter()
        .map(|(template, operations)| {
            let mut methods: Vec<String> = operations
                .as_object()
                .map(|ops| ops.keys().map(|method| method.to_uppercase()).collect())
                .unwrap_or_default();
            if methods.iter().any(|method| method == "GET") {
                methods.push("HEAD".to_owned());
            }
            methods.sort();
            (template.clone(), methods.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ParseFromJSON;

    use super::*;
    use crate::routes::books::BookCreate;
    use crate::routes::query::QueryRequest;

    /// A job's event stream is documented event by event: its data is a JobEventView's JSON.
    #[test]
    fn event_streams_are_documented_event_by_event() {
        let mut spec: Value = serde_json::from_str(&crate::openapi_service().spec()).unwrap_or_default();
        complete(&mut spec);
        let content = spec["paths"]["/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let (media_type, body) = content.iter().next().expect("one media type");
        assert!(media_type.starts_with("text/event-stream"), "{media_type}");
        let event = &body["schema"];
        assert_eq!(event["type"], "object", "{event}");
        assert_eq!(event["properties"]["data"]["type"], "string");
        assert_eq!(
            event["properties"]["data"]["x-data-schema"]["$ref"],
            "#/components/schemas/JobEventView"
        );
    }

    /// The bodies listed as closed refuse an unknown property, the others accept one: the
    /// document's `additionalProperties` follows the parsers.
    #[test]
    fn closed_schemas_are_the_bodies_that_refuse_unknown_properties() {
        let extra = |body: Value| {
            let mut body = body;
            body["not_a_field"] = json!(1);
            Some(body)
        };
        assert!(KeyCreate::parse_from_json(extra(json!({"name": "n", "scope": "read"}))).is_err());
        assert!(KeyCreate::parse_from_json(Some(json!({"name": "n", "scope": "read"}))).is_ok());
        assert!(ConfigUpdate::parse_from_json(extra(json!({}))).is_err());
        let webhook = json!({"url": "https://example.com/hook", "events": ["job.dead"]});
        assert!(WebhookCreate::parse_from_json(extra(webhook.clone())).is_err());
        assert!(WebhookCreate::parse_from_json(Some(webhook)).is_ok());
        let library = json!({"id": "physics", "name": "Physics"});
        assert!(LibraryCreate::parse_from_json(extra(library.clone())).is_err());
        assert!(LibraryCreate::parse_from_json(Some(library)).is_ok());
        let access = json!({"library_id": "physics", "scope": "read"});
        assert!(LibraryAccess::parse_from_json(extra(access.clone())).is_err());
        assert!(LibraryAccess::parse_from_json(Some(access)).is_ok());
        assert!(BookCreate::parse_from_json(extra(json!({"title": "t"}))).is_ok());
        assert!(QueryRequest::parse_from_json(extra(json!({"query": "q"}))).is_ok());

        let mut spec: Value = serde_json::from_str(&crate::openapi_service().spec()).unwrap_or_default();
        complete(&mut spec);
        let schemas = &spec["components"]["schemas"];
        for name in closed_schemas() {
            assert_eq!(schemas[&name]["additionalProperties"], json!(false), "{name}");
        }
        for open in ["BookCreate", "QueryRequest"] {
            assert!(schemas[open].get("additionalProperties").is_none(), "{open}");
        }
    }

    #[test]
    fn an_enum_behind_all_of_is_inlined_with_its_default() {
        let mut spec = json!({
            "components": {"schemas": {
                "Mode": {"type": "string", "enum": ["keyword", "hybrid"]},
                "Thing": {"type": "object", "properties": {}},
            }},
            "paths": {"/search": {"get": {"parameters": [{
                "name": "mode",
                "schema": {"default": "hybrid", "allOf": [{"$ref": "#/components/schemas/Mode"}, {"default": "hybrid"}]},
            }], "responses": {}}}},
            "other": {"nullable": true, "allOf": [{"$ref": "#/components/schemas/Thing"}]},
        });
        complete(&mut spec);
        assert_eq!(
            spec["paths"]["/search"]["get"]["parameters"][0]["schema"],
            json!({"type": "string", "enum": ["keyword", "hybrid"], "default": "hybrid"})
        );
        assert_eq!(
            spec["other"],
            json!({"nullable": true, "allOf": [{"$ref": "#/components/schemas/Thing"}]}),
            "objects stay references"
        );
        assert!(spec["paths"]["/search"]["get"]["responses"]["422"].is_object());
        assert!(spec["paths"]["/search"]["get"]["responses"].get("413").is_none());
    }

    #[test]
    fn fixed_size_integers_get_their_range_unless_they_have_one() {
        let mut spec = json!({"a": {"type": "integer", "format": "uint32"},
                              "b": [{"type": "integer", "format": "uint64", "minimum": 1, "maximum": 1000}],
                              "c": {"type": "integer"}});
        bound_integers(&mut spec);
        assert_eq!(
            spec["a"],
            json!({"type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX})
        );
        assert_eq!(spec["b"][0]["minimum"], json!(1));
        assert_eq!(spec["b"][0]["maximum"], json!(1000));
        assert!(spec["c"].get("maximum").is_none());
    }

    #[test]
    fn allow_lists_the_documented_methods_and_head_with_get() {
        let spec = json!({"paths": {"/books/{book_id}": {"get": {}, "delete": {}}, "/query": {"post": {}}}});
        let allowed = allowed_methods(&spec);
        assert_eq!(allowed["/books/{book_id}"], "DELETE, GET, HEAD");
        assert_eq!(allowed["/query"], "POST");
    }
}
