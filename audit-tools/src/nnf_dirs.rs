//! The options of `fenced` and `unfence` naming nnf-sos's directories, and where nnf-sos finds them
//! when they are not given (`ha::protocol::nnf::dirs`).

use std::path::PathBuf;

use clap::Args;

/// nnf-sos's directories.
#[derive(Debug, Args)]
pub struct NnfDirs {
    /// nnf-sos's request directory [default: $NNF_FENCE_REQUEST_DIR, else
    /// /localdisk/fence-recorder/requests].
    #[arg(long, value_name = "DIR")]
    request_dir: Option<PathBuf>,
    /// nnf-sos's response directory [default: $NNF_FENCE_RESPONSE_DIR, else
    /// /localdisk/fence-recorder/responses].
    #[arg(long, value_name = "DIR")]
    response_dir: Option<PathBuf>,
}

impl NnfDirs {
    /// The directories, given or as nnf-sos finds them.
    pub fn exchange(&self) -> agent::exchange::Exchange {
        let [requests, responses] = ha::protocol::nnf::dirs(&|k| std::env::var(k).ok());
        agent::exchange::Exchange {
            responder: agent::responder::Responder::NnfSos,
            requests: self.request_dir.clone().unwrap_or(requests),
            responses: self.response_dir.clone().unwrap_or(responses),
            spool: None,
        }
    }
}
