//! GET/PUT /config: the live knobs of SPEC section 5, stored in the database and shared by
//! every replica (`hbi_shared::knobs`).

use std::borrow::Cow;

use hbi_shared::access::Principal;
use hbi_shared::knobs::{KnobIssue, Knobs, KnobsUpdateError};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, Type};
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use crate::AppState;
use crate::error::{ApiError, ValidationError, ValidationIssue, status};

pub struct ConfigApi;

/// Makes the two API shapes of the knobs from `hbi_shared::knob_table!`: `Config` (every knob,
/// as GET and PUT answer) and `ConfigUpdate` (a partial update, as PUT documents its body),
/// each knob with the range of the table, so the document and the validation cannot differ.
macro_rules! config_shapes {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = $default:expr, $kind:ident $(, $min:tt ..= $max:tt)?;
    )*) => {
        /// Every live knob: retrieval and answers, hybrid search weights, quality gates.
        #[derive(Debug, Object)]
        #[oai(rename = "Config")]
        pub struct ConfigView {
            $(
                $(#[doc = $doc])*
                $(#[oai(validator(minimum(value = $min), maximum(value = $max)))])?
                pub $name: $ty,
            )*
        }

        impl From<Knobs> for ConfigView {
            fn from(knobs: Knobs) -> Self {
                Self { $( $name: knobs.$name, )* }
            }
        }

        /// A partial update: only the knobs given change; the result is validated as a whole
        /// (`min_chunks` at most `retrieval_top_k`). Unknown knobs are refused.
        #[derive(Debug, Object)]
        #[oai(rename = "ConfigUpdate", deny_unknown_fields)]
        pub struct ConfigUpdate {
            $(
                $(#[doc = $doc])*
                $(#[oai(validator(minimum(value = $min), maximum(value = $max)))])?
                pub $name: Option<$ty>,
            )*
        }
    };
}

hbi_shared::knob_table!(config_shapes);

/// The PUT body as JSON, documented as [`ConfigUpdate`] but checked by `hbi_shared::knobs`, so
/// each problem is reported with the knob it concerns (`loc: ["body", "temperature"]`).
#[derive(Debug)]
pub struct ConfigPatch(serde_json::Value);

impl Type for ConfigPatch {
    const IS_REQUIRED: bool = true;
    type RawValueType = serde_json::Value;
    type RawElementValueType = serde_json::Value;

    fn name() -> Cow<'static, str> {
        ConfigUpdate::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        ConfigUpdate::schema_ref()
    }

    fn register(registry: &mut Registry) {
        ConfigUpdate::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for ConfigPatch {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(value) => Ok(Self(value)),
            None => Err(ParseError::expected_input()),
        }
    }
}

fn validation_error(issues: Vec<KnobIssue>) -> ValidationError {
    ValidationError {
        detail: issues
            .into_iter()
            .map(|issue| ValidationIssue {
                loc: std::iter::once("body".to_owned())
                    .chain((!issue.field.is_empty()).then_some(issue.field))
                    .collect(),
                msg: issue.message,
                kind: issue.kind.to_owned(),
            })
            .collect(),
    }
}

#[OpenApi]
impl ConfigApi {
    /// The live tuning knobs
    ///
    /// Shared by every replica: a change made through one is seen by all within a second.
    #[oai(
        path = "/config",
        method = "get",
        tag = "ApiTags::Config",
        operation_id = "get_config"
    )]
    async fn get(&self, state: Data<&AppState>) -> Result<Json<ConfigView>, ApiError<0>> {
        Ok(Json(state.backends.knobs.get().await?.into()))
    }

    /// Change some of the live tuning knobs
    ///
    /// Only the knobs in the body change; the result is validated as a whole and stored in the
    /// database, so it survives restarts and every replica uses it. Any invalid input (an
    /// unknown knob, a wrong type, a value out of range) answers 422 in FastAPI's shape and
    /// changes nothing. Answers the full set.
    #[oai(
        path = "/config",
        method = "put",
        tag = "ApiTags::Config",
        operation_id = "put_config"
    )]
    async fn put(
        &self,
        state: Data<&AppState>,
        caller: Data<&Principal>,
        body: Json<ConfigPatch>,
    ) -> Result<Json<ConfigView>, ApiError<{ status::INVALID }>> {
        match state.backends.knobs.patch(&body.0.0).await {
            Ok(knobs) => {
                state.library.audit_change(&caller, "config.update", None).await?;
                Ok(Json(knobs.into()))
            }
            Err(KnobsUpdateError::Invalid(issues)) => Err(ApiError::invalid(validation_error(issues))),
            Err(KnobsUpdateError::Store(err)) => Err(err.into()),
        }
    }
}
