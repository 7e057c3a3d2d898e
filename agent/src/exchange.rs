//! Where one fence request goes and where its answer comes from, for the configured responder.
//!
//! | responder | requests | answers | names | temporary file |
//! |---|---|---|---|---|
//! | `gfs2-fence-watcher` | `<spool>/requests` | `<spool>/responses` | v1 `<uuid>.json` | `<spool>/tmp/` (the leader clears dead writers' files) |
//! | `external`, `protocol=1` or `2` | `request_dir`, else `<spool>/requests` | `response_dir`, else `<spool>/responses` | v1, or v2 `<target>-<uuid>.json` | hidden, beside the request |
//! | `nnf-sos` | `request_dir`, else `NNF_FENCE_REQUEST_DIR`, else `/localdisk/fence-recorder/requests` (`ha::protocol::nnf`) | likewise `response_dir`, `NNF_FENCE_RESPONSE_DIR`, `…/responses` | v2 | hidden, beside the request |
//!
//! Every responder's readers skip hidden names, so a request is seen only whole, after its rename.
//! nnf-sos's directories are nnf-sos's: the agent never creates them (they are missing only while
//! nnf-sos is not running), and accepts them as nnf-sos makes them (0755, owned by root). They are
//! still refused when a symlink, foreign-owned or writable by group or others, as every spool
//! directory is. Because nnf-sos takes *every* request in its directory for a fence and every success
//! answer there for a fenced node, no other responder may share its directories: the agent refuses
//! them unless `responder=nnf-sos` (`ha::protocol::nnf::refuse_shared`). No locks are taken here.

use std::path::PathBuf;

use ha::spool::{self, Dir, Spool, AGENT_DIRS};

use crate::failure::Failure;
use crate::options::Options;
use crate::responder::Responder;

/// The directories of one responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Who answers.
    pub responder: Responder,
    /// Where requests are placed.
    pub requests: PathBuf,
    /// Where answers appear.
    pub responses: PathBuf,
    /// The spool, for our watchers and for an external responder on it (`None` for nnf-sos).
    pub spool: Option<Spool>,
}

fn absolute(name: &str, path: PathBuf) -> Result<PathBuf, Failure> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(Failure::Usage(format!("{name} {:?} is not an absolute path", path.display().to_string())))
    }
}

impl Exchange {
    /// The directories `opts` configure, with `env` for the environment.
    pub fn resolve(opts: &Options, env: impl Fn(&str) -> Option<String>) -> Result<Exchange, Failure> {
        let given = |v: &Option<String>| v.as_ref().map(PathBuf::from);
        let nnf = ha::protocol::nnf::dirs(&env);
        let exchange = match opts.responder {
            Responder::NnfSos => Exchange {
                responder: opts.responder,
                requests: absolute("request_dir", given(&opts.request_dir).unwrap_or_else(|| nnf[0].clone()))?,
                responses: absolute("response_dir", given(&opts.response_dir).unwrap_or_else(|| nnf[1].clone()))?,
                spool: None,
            },
            responder => {
                if responder == Responder::Watchers && (opts.request_dir.is_some() || opts.response_dir.is_some()) {
                    return Err(Failure::Usage(
                        "request_dir and response_dir apply to responder=nnf-sos or external; the watchers use \
                         spool_dir"
                            .into(),
                    ));
                }
                let spool = Spool::new(spool::resolve_base(opts.spool_dir.as_deref(), &env)?);
                Exchange {
                    responder,
                    requests: absolute("request_dir", given(&opts.request_dir).unwrap_or(spool.dir(Dir::Requests)))?,
                    responses: absolute(
                        "response_dir",
                        given(&opts.response_dir).unwrap_or(spool.dir(Dir::Responses)),
                    )?,
                    spool: Some(spool),
                }
            }
        };
        if exchange.responder != Responder::NnfSos {
            let who = format!("responder={}", exchange.responder.as_str());
            ha::protocol::nnf::refuse_shared(&exchange.requests, &exchange.responses, &who, &env)?;
        }
        Ok(exchange)
    }

    /// The file name of the request `id` for `target` (its answer has the same name).
    pub fn file_name(&self, target: &str, id: &str) -> String {
        self.responder.naming().file_name(target, id)
    }

    /// Where a request's temporary file is written before its rename.
    pub fn tmp_dir(&self) -> PathBuf {
        match (&self.spool, self.responder) {
            (Some(s), Responder::Watchers) => s.dir(Dir::Tmp),
            _ => self.requests.clone(),
        }
    }

    /// Makes the directories ready for a fence: our spool's are created as needed (0700), nnf-sos's
    /// must exist. All are checked (real directory, owner, not writable by others, local). A spool no
    /// watcher has run on is left as it is (the watchers make theirs; one the agent made would only
    /// hide that none runs there): that is the failure.
    pub fn prepare(&self) -> Result<(), Failure> {
        if let Some(s) = &self.spool {
            if self.responder == Responder::Watchers && s.dir(Dir::Members).symlink_metadata().is_err() {
                // An unsafe spool is named as such first (checking creates nothing).
                if s.base().symlink_metadata().is_ok() {
                    s.inspect(&[])?;
                }
                self.responder.check(s)?;
            }
            s.prepare(&AGENT_DIRS)?;
        }
        let create = self.responder != Responder::NnfSos;
        for dir in [&self.requests, &self.responses] {
            if !create && dir.symlink_metadata().is_err() {
                return Err(Failure::Fence(format!(
                    "{} does not exist: nnf-sos creates it when its node manager starts; is nnf-node-manager \
                     running on this rabbit (and NNF_FENCE_REQUEST_DIR/NNF_FENCE_RESPONSE_DIR, or request_dir/\
                     response_dir, the same for both)?",
                    dir.display()
                )));
            }
            spool::ensure_private_dir(dir, create)?;
            spool::check_local(dir)?;
        }
        Ok(())
    }

    /// The directories the agent creates files in during a fence (what `monitor` probes).
    pub fn written_dirs(&self) -> Vec<PathBuf> {
        match (&self.spool, self.responder) {
            (Some(s), Responder::Watchers) => vec![s.dir(Dir::Tmp), s.dir(Dir::Waiting)],
            _ => vec![self.requests.clone()],
        }
    }
}
