//! The audit tools' integration tests, one module per behaviour: the chain and the reports of
//! `gfs2-fence-events`, one view over every rabbit, Pacemaker's fencing alerts into the chain, and the
//! audit trail under the real logrotate.

mod audit;
mod site_view;
mod alerts;
mod log_rotation;
