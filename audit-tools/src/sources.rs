//! Where the records come from, as chains: each rabbit keeps one audit chain (its detailed log and
//! the rotated copies), so every source is read as one [`Chain`] per rabbit and verified on its own.
//!
//! - `--log-dir DIR` (repeatable): one chain per directory.
//! - `--site-dir DIR`: one chain per subdirectory holding a detailed log, as `clush --rcopy` (which
//!   names them `<dir>.<host>`) or rsync (one directory per rabbit) gathers them. A subdirectory's
//!   name should be its rabbit's (`recorder_node`), or end with `.<rabbit>`: [`notes`] says where it
//!   is not, where one holds several rabbits' records, and where one rabbit's records are in two.
//! - `--file FILE`: those files, one chain.
//! - `--journal-dir DIR`: see `journal`.
//!
//! Reads only; never takes a log's lock.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use ha::audit::LogFile;

use super::error::EventsError;
use super::records::{self, Record};

/// Largest (decompressed) log file read.
const MAX_LOG: u64 = 4 << 30;

/// One rabbit's chain, as read from one source.
#[derive(Debug, Clone)]
pub struct Chain {
    /// What it was read from, for people: a directory, files, a journal directory.
    pub origin: String,
    /// The site subdirectory's name it was read from, to compare with the rabbit it holds.
    pub dir_name: Option<String>,
    /// Its files, oldest first.
    pub files: Vec<LogFile>,
    /// The records of its files, in file order, parsed once.
    pub records: Vec<Record>,
    /// What reading it noticed (a journal's host that is not the records' rabbit, ...).
    pub notes: Vec<String>,
    /// Whether it was read from a journal, where records may also be lost in transport.
    pub from_journal: bool,
    /// What the appenders noted in the log's lock file (a truncation in place, a record that could
    /// not be written whole): `ha::audit::notes`. Empty for files and journals.
    pub log_notes: Vec<ha::audit::notes::LogNote>,
}

impl Chain {
    /// The chain of `files`, their records parsed; no directory name, notes, nor journal.
    pub fn new(origin: String, files: Vec<LogFile>) -> Chain {
        let records = files
            .iter()
            .flat_map(|l| String::from_utf8_lossy(&l.bytes).lines().filter_map(Record::parse).collect::<Vec<_>>())
            .collect();
        Chain { origin, dir_name: None, files, records, notes: Vec::new(), from_journal: false, log_notes: Vec::new() }
    }

    /// The rabbits its records name (`recorder_node`).
    pub fn rabbits(&self) -> BTreeSet<&str> {
        self.records.iter().map(|r| r.rabbit.as_str()).filter(|r| !r.is_empty()).collect()
    }

    /// How reports name it: its rabbit, or its rabbits, or its origin when its records name none.
    pub fn name(&self) -> String {
        let rabbits = self.rabbits();
        if rabbits.is_empty() {
            format!("(no rabbit named) {}", self.origin)
        } else {
            rabbits.into_iter().collect::<Vec<_>>().join("+")
        }
    }
}

/// A file's bytes, gzip-decompressed when its name ends in `.gz`.
pub fn read(path: &Path) -> Result<Vec<u8>, EventsError> {
    let mut bytes = Vec::new();
    let err = |source| EventsError::Read { path: path.to_path_buf(), source };
    let f = ha::fsio::open_nofollow(path).map_err(err)?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(f).take(MAX_LOG).read_to_end(&mut bytes).map_err(err)?;
    } else {
        f.take(MAX_LOG).read_to_end(&mut bytes).map_err(err)?;
    }
    Ok(bytes)
}

/// The chain of the files `paths`, in the order given.
pub fn files(origin: String, paths: &[PathBuf]) -> Result<Chain, EventsError> {
    let files: Result<Vec<LogFile>, EventsError> =
        paths.iter().map(|p| Ok(LogFile { name: p.display().to_string(), bytes: read(p)? })).collect();
    Ok(Chain::new(origin, files?))
}

/// The chain of a log directory: its detailed log and rotated copies, oldest first. Copies
/// compressed other than with gzip are named on stderr and skipped.
pub fn log_dir(dir: &Path) -> Result<Chain, EventsError> {
    let (plain, compressed) =
        records::log_files(dir).map_err(|source| EventsError::Read { path: dir.into(), source })?;
    for c in compressed {
        eprintln!(
            "gfs2-fence-events: skipping {} (only gzip is read: decompress it and pass it with --file)",
            c.display()
        );
    }
    let mut chain = files(dir.display().to_string(), &plain)?;
    // The appenders' notes, when the lock file is there (gathered copies may leave it out).
    let lock = ha::audit::log::lock_path_of(&dir.join(records::DETAILED));
    if let Ok(bytes) = ha::fsio::read_capped(&lock, ha::fsio::MAX_SPOOL_FILE) {
        chain.log_notes = ha::audit::notes::Head::parse(&String::from_utf8_lossy(&bytes)).notes;
    }
    Ok(chain)
}

/// One chain per subdirectory of `dir` that holds a detailed log, by name.
pub fn site(dir: &Path) -> Result<Vec<Chain>, EventsError> {
    let err = |source| EventsError::Read { path: dir.to_path_buf(), source };
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .flatten()
        .map(|e| e.path())
        // A directory, or a link to one (a site may link its rabbits' copies into one place).
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut chains = Vec::new();
    for sub in subdirs {
        let mut chain = log_dir(&sub)?;
        if chain.files.is_empty() {
            eprintln!("gfs2-fence-events: {} holds no {}: skipped", sub.display(), records::DETAILED);
            continue;
        }
        chain.dir_name = sub.file_name().map(|n| n.to_string_lossy().into_owned());
        chains.push(chain);
    }
    Ok(chains)
}

/// Whether a gathered directory's name names `rabbit`: the rabbit's name itself, or a name ending
/// with `.<rabbit>` (`clush --rcopy` appends the host).
pub fn agrees(dir_name: &str, rabbit: &str) -> bool {
    dir_name == rabbit || dir_name.strip_suffix(rabbit).is_some_and(|head| head.ends_with('.'))
}

/// What the operator should know about how the chains were gathered: a site subdirectory named for
/// another rabbit than its records', one holding several rabbits' records or none, one rabbit's
/// records in two chains, and each chain's own notes.
pub fn notes(chains: &[Chain]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in chains {
        let rabbits = c.rabbits();
        for r in &rabbits {
            seen.entry(r).or_default().push(&c.origin);
        }
        out.extend(c.notes.iter().cloned());
        let Some(name) = &c.dir_name else { continue };
        match rabbits.len() {
            0 => out.push(format!("{} holds no record naming its rabbit (recorder_node)", c.origin)),
            1 => {
                let rabbit = rabbits.first().expect("one rabbit");
                if !agrees(name, rabbit) {
                    out.push(format!("{} is named {name:?} but holds the records of rabbit {rabbit}", c.origin));
                }
            }
            _ => out.push(format!(
                "{} holds the records of several rabbits ({}): one chain per rabbit is expected",
                c.origin,
                rabbits.iter().copied().collect::<Vec<_>>().join(", ")
            )),
        }
    }
    for (rabbit, origins) in seen.into_iter().filter(|(_, o)| o.len() > 1) {
        out.push(format!("rabbit {rabbit}'s records are in {} sources: {}", origins.len(), origins.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gathered_directory_names_its_rabbit_itself_or_as_clush_suffixes_it() {
        assert!(agrees("rabbit-7", "rabbit-7"));
        assert!(agrees("gfs2-fencing.rabbit-7", "rabbit-7"));
        assert!(agrees("gfs2-fencing.rabbit-7.site.example", "rabbit-7.site.example"));
        assert!(!agrees("rabbit-17", "rabbit-7"));
        assert!(!agrees("gfs2-fencing.rabbit-8", "rabbit-7"));
        assert!(!agrees("xrabbit-7", "rabbit-7"));
    }

    fn chain(origin: &str, dir: Option<&str>, rabbits: &[&str]) -> Chain {
        let text: String = rabbits.iter().map(|r| format!("{{\"recorder_node\": \"{r}\"}}\n")).collect();
        let mut c = Chain::new(origin.into(), vec![LogFile { name: origin.into(), bytes: text.into_bytes() }]);
        c.dir_name = dir.map(str::to_string);
        c
    }

    #[test]
    fn misnamed_mixed_and_repeated_chains_are_reported() {
        let chains = [
            chain("site/rabbit-1", Some("rabbit-1"), &["rabbit-1"]),
            chain("site/rabbit-2", Some("rabbit-2"), &["rabbit-3"]),
            chain("site/mixed", Some("mixed"), &["rabbit-4", "rabbit-5"]),
            chain("/var/log/gfs2-fencing", None, &["rabbit-1"]),
        ];
        let notes = notes(&chains);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("site/rabbit-2 is named \"rabbit-2\" but holds the records of rabbit rabbit-3"));
        assert!(notes[1].contains("several rabbits (rabbit-4, rabbit-5)"));
        assert!(notes[2].contains("rabbit rabbit-1's records are in 2 sources"));
    }
}
