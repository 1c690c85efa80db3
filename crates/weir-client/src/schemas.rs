//! The schema registry's REST API (Confluent's paths, at the root of the
//! server's HTTP address): register a schema under a subject, read a
//! subject's version or a schema by id, test compatibility, set a
//! subject's level. The registry answers errors with Confluent's body
//! (`{"error_code", "message"}`), which comes back as a
//! [`ClientError::Problem`] whose `code` is the error code (`"40401"`) and
//! whose `detail` is the message, so callers read every refusal the same
//! way.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError, RESPONSE_BYTES_MAX, Result, encode_segment};

/// The media type of the registry's requests and answers.
pub const REGISTRY_MEDIA: &str = "application/vnd.schemaregistry.v1+json";

/// A reference of a schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as registered: its text, type and references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaBody {
    pub schema: String,
    /// `AVRO` (the registry's default when absent), `JSON`, `PROTOBUF`.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
}

/// One version of a subject (`GET /subjects/{s}/versions/{v}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

/// What a registration answers: the schema's global id (and, from Weir's
/// registry, the subject's version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Registered {
    pub id: i32,
    #[serde(default)]
    pub version: Option<i32>,
}

/// A compatibility test's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompatibilityAnswer {
    pub is_compatible: bool,
    #[serde(default)]
    pub messages: Vec<String>,
}

#[derive(Serialize)]
struct Level<'a> {
    compatibility: &'a str,
}

impl Client {
    /// Registers `schema` under `subject` (`POST /subjects/{s}/versions`).
    pub fn register_schema(&self, subject: &str, schema: &SchemaBody) -> Result<Registered> {
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        self.registry_call("POST", &path, &[], Some(schema))
    }

    /// Version `version` (a number or `latest`) of `subject`.
    pub fn subject_schema(&self, subject: &str, version: &str) -> Result<SubjectSchema> {
        let path = format!(
            "/subjects/{}/versions/{}",
            encode_segment(subject),
            encode_segment(version)
        );
        self.registry_call::<(), _>("GET", &path, &[], None)
    }

    /// The schema with global id `id` (`GET /schemas/ids/{id}`).
    pub fn schema_by_id(&self, id: i32) -> Result<SchemaBody> {
        self.registry_call::<(), _>("GET", &format!("/schemas/ids/{id}"), &[], None)
    }

    /// Tests `schema` against `subject`: against version `version` if
    /// given, else against what the subject's level checks; verbose, so a
    /// refusal carries one message per breaking change.
    pub fn test_schema_compatibility(
        &self,
        subject: &str,
        version: Option<&str>,
        schema: &SchemaBody,
    ) -> Result<CompatibilityAnswer> {
        let mut path = format!(
            "/compatibility/subjects/{}/versions",
            encode_segment(subject)
        );
        if let Some(v) = version {
            path.push('/');
            path.push_str(&encode_segment(v));
        }
        self.registry_call(
            "POST",
            &path,
            &[("verbose", "true".to_owned())],
            Some(schema),
        )
    }

    /// Sets `subject`'s compatibility level (`PUT /config/{s}`).
    pub fn set_schema_compatibility(&self, subject: &str, level: &str) -> Result<()> {
        let path = format!("/config/{}", encode_segment(subject));
        let _: serde_json::Value = self.registry_call(
            "PUT",
            &path,
            &[],
            Some(&Level {
                compatibility: level,
            }),
        )?;
        Ok(())
    }

    /// Turns validation on write of stream category `category` on or off
    /// (`PUT`/`DELETE /v1/schema-validation/categories/{c}`).
    pub fn set_category_validation(&self, category: &str, enabled: bool) -> Result<()> {
        let path = format!(
            "/v1/schema-validation/categories/{}",
            encode_segment(category)
        );
        let _: weir_api::CategoryValidation = if enabled {
            self.put(&path, &serde_json::json!({}))?
        } else {
            self.delete(&path, &[])?
        };
        Ok(())
    }

    /// The stream categories with validation on write.
    pub fn validated_categories(&self) -> Result<Vec<String>> {
        let list: weir_api::ValidatedCategories =
            self.get("/v1/schema-validation/categories", &[])?;
        Ok(list.categories)
    }

    fn registry_call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T> {
        let url = self.url(path);
        let response = match (method, body) {
            ("GET", _) => {
                let mut r = self.authorized(self.agent.get(&url));
                for (k, v) in query {
                    r = r.query(*k, v);
                }
                r.header("accept", REGISTRY_MEDIA).call()
            }
            (_, body) => {
                let bytes = match body {
                    Some(b) => self.json_body(path, b)?,
                    None => b"{}".to_vec(),
                };
                let mut r = match method {
                    "PUT" => self.authorized(self.agent.put(&url)),
                    _ => self.authorized(self.agent.post(&url)),
                };
                for (k, v) in query {
                    r = r.query(*k, v);
                }
                r.header("accept", REGISTRY_MEDIA)
                    .content_type(REGISTRY_MEDIA)
                    .send(&bytes[..])
            }
        };
        let mut response = response.map_err(|e| self.transport(path, e))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_BYTES_MAX)
            .read_to_vec()
            .map_err(|e| self.transport(path, e))?;
        let protocol = |reason: String| ClientError::Protocol {
            url: url.clone(),
            reason,
        };
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| protocol(e.to_string()));
        }
        let refusal = crate::registry_problem(status.as_u16(), &body).ok_or_else(|| {
            protocol(format!(
                "status {status} with a body that is not the registry's error: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        Err(ClientError::Problem(Box::new(refusal)))
    }
}
