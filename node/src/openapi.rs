//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`. A test checks that it
//! names exactly the routes the router serves.

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");
