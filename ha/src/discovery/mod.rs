//! GFS2 discovery: which GFS2 file systems each compute node may be using, so that every fence
//! record can say which file systems the fence protected.
//!
//! Three sources, each optional, each giving a [`NodeMap`] (compute node → GFS2 file system names):
//! - [`nnf`]: Kubernetes / NNF (`NnfStorage` with `fileSystemType: gfs2`, attributed to compute
//!   nodes through `NnfNodeBlockStorage` accesses);
//! - [`dlm`]: the DLM lockspaces (`dlm_tool ls`/`status`) and their member node ids, named through
//!   `crm_node -l` or `corosync-cmapctl`;
//! - [`cib`]: Pacemaker's configuration (`Filesystem` resources with `fstype=gfs2`, on the nodes they
//!   may run on, together with the DLM/lvmlockd resources they depend on).
//!
//! Parsing and merging are plain functions without I/O; [`run`] owns the tool processes (each in
//! its own process group with a death signal, killed at its deadline, output capped); [`snapshot`]
//! is the `discovery.json` format the leader watcher keeps fresh and the agent reads at fence time.
//!
//! Holds, lowest first: [`found`], the sources [`nnf`], [`dlm`], [`cib`], [`run`],
//! [`snapshot`], and [`cluster_name`] (the Pacemaker cluster's name, for records and metrics).
//! May use `error`, `fsio`, `os`, `protocol` (the [`Source`](crate::protocol::provenance::Source)
//! names and the provenance format) and `spool` (where the snapshot lives).

pub mod found;
pub mod cib;
pub mod dlm;
pub mod nnf;
pub mod run;
pub mod snapshot;
pub mod cluster_name;

pub use found::{lookup, recorded, Found, NodeMap, DISABLED, NONE_DETECTED};
