//! The agent's integration tests, one module per behaviour: its command line and metadata, its
//! options (and their properties), its records' formats, its actions against real watchers, its
//! input boundary, and `responder=nnf-sos` against the nnf-sos stand-in.

mod cli;
mod options;
mod formats;
mod agent_actions;
mod agent_input;
mod nnf_sos;
