//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! every [`RETRY`]; a candidate takes the lease over only once it has seen the same record
//! unchanged for the lease's duration, measured on its own clock, so clock skew between replicas
//! does not matter. Writes are optimistic (resourceVersion), so two candidates never both win.
//! Leadership is published as the instant until which the holder may still write: the time of its
//! last successful renewal plus [`RENEW_DEADLINE`], shorter than the lease, so a leader that
//! cannot renew stops writing before anyone else may start.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The Lease's name.
pub const LEASE_NAME: &str = "canopy-reconciler";
/// How long a lease holds without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long after its last renewal a leader keeps writing.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews and candidates retry.
pub const RETRY: Duration = Duration::from_secs(2);

/// Until when this replica may write; `None` while it is not the leader.
pub type Leadership = watch::Receiver<Option<Instant>>;

/// Whether `leadership` allows writing now.
pub fn leading(leadership: &Leadership) -> bool {
    leadership.borrow().is_some_and(|until| Instant::now() < until)
}

/// One candidate for the lease.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    /// The holder and renew time last seen, and when they were first seen.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

enum Attempt {
    Leading,
    Following(Option<String>),
}

impl Elector {
    pub fn new(client: kube::Client, namespace: &str, identity: String) -> Self {
        Self { api: Api::namespaced(client, namespace), identity, observed: None }
    }

    /// Campaigns until `cancel`, publishing leadership on `tx`; releases the lease on the way out
    /// so another replica takes over at once.
    pub async fn run(mut self, tx: watch::Sender<Option<Instant>>, cancel: CancellationToken) {
        let mut was_leading = false;
        loop {
            let started = Instant::now();
            let attempt = tokio::select! {
                () = cancel.cancelled() => break,
                attempt = self.try_acquire_or_renew() => attempt,
            };
            let until = match attempt {
                Ok(Attempt::Leading) => Some(started + RENEW_DEADLINE),
                Ok(Attempt::Following(holder)) => {
                    if was_leading {
                        tracing::warn!(identity = %self.identity, holder = ?holder, "lost the reconciler lease");
                    }
                    None
                }
                Err(error) => {
                    tracing::warn!(identity = %self.identity, %error, "cannot reach the reconciler lease");
                    None
                }
            };
            let leading = until.is_some();
            if leading && !was_leading {
                tracing::info!(identity = %self.identity, "holding the reconciler lease");
            }
            was_leading = leading;
            // Keep the new deadline, but wake the reconciler only when leadership flips.
            tx.send_if_modified(|current| {
                let flipped = current.is_some() != until.is_some();
                *current = until;
                flipped
            });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
        tx.send_replace(None);
        if was_leading {
            match tokio::time::timeout(RETRY, self.release()).await {
                Ok(Ok(())) => tracing::info!(identity = %self.identity, "released the reconciler lease"),
                Ok(Err(error)) => tracing::warn!(identity = %self.identity, %error, "cannot release the lease"),
                Err(_) => tracing::warn!(identity = %self.identity, "releasing the lease timed out"),
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(LEASE_NAME.to_owned()), ..ObjectMeta::default() },
                spec: Some(self.spec(now.clone(), now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(status)) if status.is_already_exists() || status.is_conflict() => {
                    Ok(Attempt::Following(None))
                }
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.take().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        let observed_at = match &self.observed {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record.0, record.1, observed_at));
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let duration =
            spec.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).map_or(LEASE_DURATION, Duration::from_secs);
        if !mine && holder.is_some() && observed_at.elapsed() < duration {
            return Ok(Attempt::Following(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(if mine {
            self.spec(spec.acquire_time.unwrap_or_else(|| now.clone()), now, transitions)
        } else {
            self.spec(now.clone(), now, transitions.saturating_add(1))
        });
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Attempt::Following(holder)),
            Err(error) => Err(error),
        }
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_duration_seconds: i32::try_from(LEASE_DURATION.as_secs()).ok(),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the lease up if this replica still holds it.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leadership_lapses_at_its_deadline() {
        let (tx, rx) = watch::channel(None);
        assert!(!leading(&rx));
        tx.send_replace(Some(Instant::now() + RENEW_DEADLINE));
        assert!(leading(&rx));
        tx.send_replace(Some(Instant::now()));
        assert!(!leading(&rx));
    }
}
