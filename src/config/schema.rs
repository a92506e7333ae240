//! The JSON schema of the configuration file, for editors (YAML language servers complete keys and
//! show the doc comments of [`raw`](super::raw) as descriptions). It is generated from the raw
//! serde types, so it cannot drift from what Canopy accepts: renames, defaults and unknown keys
//! (`additionalProperties: false`) come from the same attributes. `canopy schema` prints it; the
//! copy in `proxy-config/canopy.schema.json` is checked against it by a test.

use super::raw::RawConfig;

/// The schema as a JSON value.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawConfig).to_value()
}

/// The schema as `canopy schema` prints it and `proxy-config/canopy.schema.json` holds it.
pub fn render() -> String {
    // A Value always serializes; the fallback only keeps this function total.
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn repo_file(path: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn yaml(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn checked_in_schema_is_current() {
        assert!(
            repo_file("proxy-config/canopy.schema.json") == render(),
            "proxy-config/canopy.schema.json is stale; regenerate it with \
             `cargo run --release -- schema > proxy-config/canopy.schema.json`"
        );
    }

    #[test]
    fn schema_follows_serde_attributes() {
        let schema = json_schema();
        assert_eq!(schema["additionalProperties"], false);
        let server = &schema["$defs"]["Server"];
        assert_eq!(server["additionalProperties"], false);
        assert_eq!(server["properties"]["adminListen"]["default"], "127.0.0.1:6444");
        assert!(server["properties"]["listen"]["description"].as_str().unwrap().contains("TLS listener"));
        let rule = &schema["$defs"]["Rule"];
        assert_eq!(rule["properties"]["apiGroups"]["default"], serde_json::json!([""]));
        let required: Vec<&str> = rule["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(required, ["resources", "verbs"]);
    }

    #[test]
    fn example_config_matches_the_schema() {
        let validator = jsonschema::validator_for(&json_schema()).unwrap();
        let example = yaml(&repo_file("proxy-config/example.yaml"));
        let errors: Vec<String> =
            validator.iter_errors(&example).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn schema_refuses_what_canopy_refuses() {
        let validator = jsonschema::validator_for(&json_schema()).unwrap();
        for bad in [
            "server: {certFile: a.crt}\n",
            "tree: {nodes: [{name: acme, members: [{kind: Robot, name: r, role: view}]}]}\n",
            "tree: {nodes: [{name: acme, allow: {resources: [{resources: [pods]}]}}]}\n",
            "authentication: {tokenReview: {maxEntries: -1}}\n",
        ] {
            assert!(!validator.is_valid(&yaml(bad)), "schema accepts {bad:?}");
            assert!(crate::config::Config::from_str(Path::new("c.yaml"), bad).is_err(), "canopy accepts {bad:?}");
        }
    }
}
