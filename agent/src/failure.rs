//! Why the agent fails: [`Failure`] (exit 1, `Failed: …` on stderr) and [`BadValue`], an option or
//! environment value that does not parse. The agent's lowest module.

/// Why the agent fails (exit 1, `Failed: …` on stderr).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A command line or option fencing.py would refuse.
    #[error("{0}")]
    Usage(String),
    /// An option value that does not parse.
    #[error(transparent)]
    BadValue(#[from] BadValue),
    /// The spool, a lock or a file.
    #[error(transparent)]
    Spool(#[from] ha::HaError),
    /// An action this agent does not implement.
    #[error("Unrecognised action '{0}'")]
    UnknownAction(String),
    /// A power action without a target.
    #[error("You have to enter plug number or machine identification")]
    NoTarget,
    /// A target name that cannot be used safely.
    #[error("unsafe plug name {0:?} (allowed: letters, digits, '_', '.', '-'; at most {max} bytes)", max = ha::protocol::names::MAX_NAME)]
    UnsafeTarget(String),
    /// The fence did not succeed; the text says why and what to do.
    #[error("{0}")]
    Fence(String),
}

/// A value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {name}: {why}")]
pub struct BadValue {
    /// The option or environment variable.
    pub name: String,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub why: String,
}

impl From<ha::os::setting::SettingError> for BadValue {
    fn from(e: ha::os::setting::SettingError) -> BadValue {
        use ha::os::setting::SettingError as E;
        match e {
            E::Invalid { name, value, why } => BadValue { name: name.into(), value, why },
            E::Conflict { second, ref second_value, .. } => {
                BadValue { name: second.into(), value: second_value.clone(), why: e.to_string() }
            }
        }
    }
}
