//! Leadership as one state: this watcher's candidacy (a thread blocked on `leader.lock`, see
//! `election`), the lock once granted, and the office taken with it — the leader record published,
//! then the leader's duties started (discovery rounds, fence-path health checks; the sweep's own
//! leader duties ask [`Leadership::in_office`]).
//!
//! States: standing (the candidate thread has not answered) → elected (the lock held, office due)
//! → in office (for the rest of the run). Taking office that fails (a bad `leader.json`, a full
//! disk) stays elected and is tried again at the next rescan; a candidacy that fails is stood again
//! at the next rescan. Claiming and fencing never wait for any of it.
//!
//! Locks: `leader.lock`, from the grant to the watcher's exit.

use std::sync::Arc;

use tokio::sync::oneshot;

use ha::fsio::lock::Lock;
use ha::spool::Spool;

use crate::election;
use crate::shared::Shared;

/// What the candidate thread answers: the leader lock, or why it could not be waited for.
pub type Grant = Result<Result<Lock, ha::HaError>, oneshot::error::RecvError>;

/// This watcher's leadership.
pub struct Leadership {
    candidacy: oneshot::Receiver<Result<Lock, ha::HaError>>,
    /// The candidate thread has answered: its receiver must not be polled again.
    answered: bool,
    /// The lock held, office not taken yet.
    elected: Option<Lock>,
    /// Taking office is to be tried (at once when elected, then at each rescan).
    office_due: bool,
    /// The lock, office taken.
    office: Option<Lock>,
}

impl Leadership {
    /// Stands for leader.
    pub fn stand(spool: &Spool) -> Leadership {
        Leadership { candidacy: election::stand(spool), answered: false, elected: None, office_due: true, office: None }
    }

    pub fn in_office(&self) -> bool {
        self.office.is_some()
    }

    /// The candidacy's answer (never, once it answered).
    pub async fn granted(&mut self) -> Grant {
        if self.answered {
            return std::future::pending().await;
        }
        (&mut self.candidacy).await
    }

    /// Takes in the candidacy's answer.
    pub fn handle_grant(&mut self, grant: Grant) {
        self.answered = true;
        match grant {
            Ok(Ok(lock)) => {
                self.elected = Some(lock);
                self.office_due = true;
            }
            Ok(Err(e)) => tracing::error!("standing for leader: {e}; standing again at the next rescan"),
            Err(_) => tracing::error!("the leader candidate thread ended; standing again at the next rescan"),
        }
    }

    /// Elected and due: takes office and starts the leader's duties, or stays elected to try again
    /// at the next rescan.
    pub fn take_office_if_due(&mut self, shared: &Arc<Shared>) {
        let Some(lock) = self.elected.take_if(|_| self.office_due) else { return };
        self.office_due = false;
        let s = &shared.settings;
        match election::take_office(&s.spool, &s.id, &lock) {
            Ok(record) => {
                self.office = Some(lock);
                shared.metrics.took_office();
                if let Some(d) = s.discovery.clone() {
                    tokio::spawn(crate::discovery::rounds(shared.clone(), d, record.epoch));
                }
                if let Some(period) = s.health_interval {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        loop {
                            crate::fencepath::check(&shared).await;
                            tokio::time::sleep(period).await;
                        }
                    });
                }
            }
            Err(e) => {
                tracing::error!("taking office: {e}; retrying at the next rescan");
                self.elected = Some(lock);
            }
        }
    }

    /// At each rescan: a failed candidacy stands again; taking office is due again.
    pub fn handle_rescan(&mut self, spool: &Spool) {
        if self.answered && self.office.is_none() && self.elected.is_none() {
            self.candidacy = election::stand(spool);
            self.answered = false;
        }
        self.office_due = true;
    }
}
