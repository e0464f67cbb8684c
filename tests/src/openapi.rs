//! Answers against the OpenAPI document rushesd serves: every field an answer carries
//! must be named by its schema, or it is undocumented. Also where schemathesis lives.

use std::path::PathBuf;

use serde_json::Value;

/// The schemathesis that `make deps` installs from PyPI (`RUSHES_SCHEMATHESIS` overrides).
pub fn schemathesis_bin() -> PathBuf {
    std::env::var_os("RUSHES_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/rushes-tools/schemathesis/bin/schemathesis".into())
}

/// `schema` with its `$ref` followed, and the alternatives (`anyOf`, `oneOf`, `allOf`)
/// it stands for, each resolved likewise.
fn alternatives<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        if let Some(s) = doc["components"]["schemas"].get(name) {
            alternatives(doc, s, out);
        }
        return;
    }
    let mut nested = false;
    for key in ["anyOf", "oneOf", "allOf"] {
        for s in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            nested = true;
            alternatives(doc, s, out);
        }
    }
    if !nested || schema.get("properties").is_some() {
        out.push(schema);
    }
}

/// Push onto `out` the path (`at.field`) of every field in `value` that `schema` (in
/// `doc`) does not name.
pub fn undocumented(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let mut alts = Vec::new();
    alternatives(doc, schema, &mut alts);
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                let at = format!("{at}.{key}");
                let named = alts.iter().find_map(|s| s.get("properties")?.get(key));
                let map = alts
                    .iter()
                    .find_map(|s| s.get("additionalProperties").filter(|a| a.is_object()));
                match named.or(map) {
                    Some(s) => undocumented(doc, s, v, &at, out),
                    None => out.push(at),
                }
            }
        }
        Value::Array(items) => match alts.iter().find_map(|s| s.get("items")) {
            Some(s) => {
                for (i, v) in items.iter().enumerate() {
                    undocumented(doc, s, v, &format!("{at}[{i}]"), out);
                }
            }
            None if !items.is_empty() => out.push(format!("{at}[]")),
            None => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_no_schema_names_is_found_through_refs_alternatives_and_lists() {
        let doc = json!({"components": {"schemas": {
            "Pool": {"type": "object", "properties": {
                "name": {"type": "string"},
                "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}}},
            "Member": {"oneOf": [
                {"type": "object", "properties": {"disk": {"type": "string"}}},
                {"type": "object", "properties": {"missing": {"type": "boolean"}}}]}}}});
        let schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/Pool"}});
        let answer = json!([{"name": "media", "members": [{"disk": "sda"}, {"missing": true, "slot": 2}]},
                            {"name": "other", "colour": "red"}]);
        let mut out = Vec::new();
        undocumented(&doc, &schema, &answer, "pools", &mut out);
        assert_eq!(out, ["pools[0].members[1].slot", "pools[1].colour"]);
    }
}
