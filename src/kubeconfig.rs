//! Kubeconfigs that point tenants at Canopy rather than at the apiserver.

use base64::Engine;
use serde_json::json;

/// A kubeconfig (as YAML-compatible JSON) for `user` reaching Canopy at `server`, trusting
/// `ca_pem`, authenticating with `token` if given, working in `namespace` if given.
pub fn render(
    server: &str,
    ca_pem: &str,
    user: &str,
    token: Option<&str>,
    namespace: Option<&str>,
) -> serde_json::Value {
    let name = "canopy";
    let mut user_entry = serde_json::Map::new();
    if let Some(token) = token {
        user_entry.insert("token".into(), json!(token));
    }
    let mut context = json!({ "cluster": name, "user": user });
    if let Some(namespace) = namespace {
        context["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "server": server,
                "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            }
        }],
        "users": [{ "name": user, "user": user_entry }],
        "contexts": [{ "name": format!("{user}@{name}"), "context": context }],
        "current-context": format!("{user}@{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_names_server_ca_and_token() {
        let config = render("https://127.0.0.1:6443", "PEM", "alice", Some("t0k"), Some("dev"));
        assert_eq!(config["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(config["clusters"][0]["cluster"]["certificate-authority-data"], "UEVN");
        assert_eq!(config["users"][0]["user"]["token"], "t0k");
        assert_eq!(config["current-context"], "alice@canopy");
        assert_eq!(config["contexts"][0]["context"]["namespace"], "dev");
        let without = render("https://127.0.0.1:6443", "PEM", "alice", None, None);
        assert!(without["contexts"][0]["context"].get("namespace").is_none());
    }
}
