//! Hot reload of the tenancy tree. The configuration file is re-read whenever its bytes change —
//! polling, because a Kubernetes ConfigMap mount updates by swapping a symlink, which file-event
//! APIs report unreliably. A valid new tree is published for the very next request; an invalid
//! one is logged with its config path and the old tree stays in force. Listener, TLS, upstream
//! and authentication settings are read once at start: a change to them is logged as needing a
//! restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::Config;
use crate::tree::Tree;

/// How often the file is compared with what was last loaded.
pub const POLL: Duration = Duration::from_millis(500);

/// Watches `file` and publishes each valid new tree into `trees`, until `trees` has no readers.
pub async fn watch_tree(file: PathBuf, loaded_text: Vec<u8>, trees: watch::Sender<Arc<Tree>>) {
    let mut last = digest(&loaded_text);
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !trees.is_closed() {
        interval.tick().await;
        let Ok(text) = tokio::fs::read(&file).await else { continue };
        let current = digest(&text);
        if current == last {
            continue;
        }
        last = current;
        match std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| Config::from_str(&file, t).map_err(|e| e.to_string()))
        {
            Ok(config) => {
                // The live index of tenant-created namespaces and the discovered scopes carry over
                // to the new tree, which must name only cluster-scoped resources as cluster reads.
                let mut tree = (*config.tree).clone();
                (tree.live, tree.scopes) = {
                    let current = trees.borrow();
                    (current.live.clone(), current.scopes.clone())
                };
                if let Some(table) = tree.scopes.as_ref().and_then(|scopes| scopes.table())
                    && let Err(error) = tree.check_cluster_resources(&table)
                {
                    let error = format!("{}: {error}", file.display());
                    tracing::error!(%error, "configuration reload refused; the previous configuration stays in force");
                    continue;
                }
                tracing::info!(file = %file.display(), nodes = tree.nodes.len(), "configuration reloaded");
                trees.send_replace(Arc::new(tree));
            }
            Err(error) => {
                tracing::error!(%error, "configuration reload refused; the previous configuration stays in force")
            }
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with(member: &str) -> String {
        format!(
            "tree:\n  nodes:\n    - name: acme\n      namespaces: [dev]\n      members: [{{kind: User, name: {member}, role: edit}}]\n"
        )
    }

    /// On paused time: the runtime advances the clock only when every task waits, and not while
    /// the watcher's file read runs, so each virtual poll below is a real read of the file.
    #[tokio::test(start_paused = true)]
    async fn valid_changes_are_published_and_invalid_ones_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("canopy.yaml");
        std::fs::write(&file, tree_with("bob")).unwrap();
        let first = Config::load(&file).unwrap();
        let (sender, mut trees) = watch::channel(Arc::clone(&first.tree));
        tokio::spawn(watch_tree(file.clone(), tree_with("bob").into_bytes(), sender));

        std::fs::write(&file, tree_with("carol")).unwrap();
        tokio::time::timeout(POLL * 2, trees.changed()).await.unwrap().unwrap();
        assert_eq!(trees.borrow_and_update().nodes[0].members[0].name, "carol");

        std::fs::write(&file, "tree:\n  nodes:\n    - name: Not_A_Name\n").unwrap();
        let refused = tokio::time::timeout(POLL * 4, trees.changed()).await;
        assert!(refused.is_err(), "an invalid config must not be published");
        assert_eq!(trees.borrow().nodes[0].members[0].name, "carol");

        // The watcher goes on: the next valid file is published.
        std::fs::write(&file, tree_with("dave")).unwrap();
        tokio::time::timeout(POLL * 2, trees.changed()).await.unwrap().unwrap();
        assert_eq!(trees.borrow_and_update().nodes[0].members[0].name, "dave");
    }
}
