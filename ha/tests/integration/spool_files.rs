//! Files of any type, mode, link count, owner and content in `requests/`: the claim step executes
//! only a regular file of the spool's owner, not writable by group or others, with one link, whose
//! name and content are a valid request; everything else is quarantined with its reason (or left for
//! a moment when it may still be being written), and nothing panics. Real files in a temporary spool;
//! foreign owners are generated only when the suite runs as root (as CI does).

use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use ha::spool::claim::{try_claim, Claim};
use ha::spool::{Dir, Spool, WATCHER_DIRS};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Regular,
    Symlink,
    Fifo,
    Directory,
    HardLink,
}

#[derive(Debug, Clone)]
enum Content {
    Valid,
    OtherId,
    Bytes(Vec<u8>),
}

fn spec() -> impl Strategy<Value = (Kind, u32, bool, Content, bool)> {
    (
        prop::sample::select(vec![Kind::Regular, Kind::Symlink, Kind::Fifo, Kind::Directory, Kind::HardLink]),
        prop::sample::select(vec![0o600, 0o644, 0o640, 0o660, 0o666, 0o602, 0o400]),
        any::<bool>(),
        prop_oneof![
            3 => Just(Content::Valid),
            1 => Just(Content::OtherId),
            1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Content::Bytes),
        ],
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn only_a_trusted_valid_request_is_claimed((kind, mode, foreign, content, old) in spec()) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        spool.prepare(&WATCHER_DIRS).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let name = format!("{id}.json");
        let path = spool.dir(Dir::Requests).join(&name);
        let body = match &content {
            Content::Valid => format!(r#"{{"request_id":"{id}","timestamp":"t","action":"off","target_node":"n1"}}"#).into_bytes(),
            Content::OtherId => format!(r#"{{"request_id":"{}","timestamp":"t","action":"off","target_node":"n1"}}"#, uuid::Uuid::new_v4()).into_bytes(),
            Content::Bytes(b) => b.clone(),
        };
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, &body).unwrap();
        match kind {
            Kind::Regular => std::fs::write(&path, &body).unwrap(),
            Kind::Symlink => std::os::unix::fs::symlink(&elsewhere, &path).unwrap(),
            Kind::Fifo => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
            Kind::Directory => std::fs::create_dir(&path).unwrap(),
            Kind::HardLink => std::fs::hard_link(&elsewhere, &path).unwrap(),
        }
        if matches!(kind, Kind::Regular | Kind::HardLink) {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if old {
                let f = std::fs::File::options().read(true).open(&path).unwrap();
                f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60)).unwrap();
            }
        }
        let root = nix::unistd::geteuid().is_root();
        let foreign = foreign && root && matches!(kind, Kind::Regular);
        if foreign {
            nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(1001)), None).unwrap();
        }
        let trusted = matches!(kind, Kind::Regular) && mode & 0o022 == 0 && !foreign;
        let got = try_claim(&spool, &name, "w1").unwrap();
        match got {
            Claim::Claimed(c) => {
                prop_assert!(trusted && matches!(content, Content::Valid), "claimed {kind:?} {mode:o} {content:?}");
                prop_assert_eq!(&c.request.request_id, &id);
            }
            Claim::Quarantined(q) => {
                prop_assert!(!(trusted && matches!(content, Content::Valid)), "a good request was quarantined: {}", q.reason);
                let mut reason = q.moved_to.clone().into_os_string();
                reason.push(".reason");
                prop_assert!(std::path::Path::new(&reason).is_file(), "no reason file");
                prop_assert_eq!(q.id.as_deref(), Some(id.as_str()));
            }
            Claim::NotReady => {
                // A young file may still be being written: in place (bad JSON), or by link + unlink.
                prop_assert!(!old, "an old file is judged, not left: {kind:?} {mode:o} {content:?}");
                prop_assert!(matches!(kind, Kind::Regular | Kind::HardLink));
            }
            other => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
