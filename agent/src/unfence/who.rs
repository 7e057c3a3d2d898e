//! Who unfences, for the record: Pacemaker (`PCMK_service`, which Pacemaker's daemons put in the
//! environment of the agents they run), else the person: the audit login uid (`/proc/self/loginuid`,
//! set at login by pam_loginuid and kept across `sudo` and `su`), else `SUDO_USER`, else the user
//! the process runs as. Every one of them that is known is kept in the record beside the summary.
//! No locks.

use ha::audit::record::Unfence;

/// The login uid of a process started outside any login session.
const NO_LOGIN: u32 = u32::MAX;

/// The name of `uid` in the `passwd` text, if it has one.
pub fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// `uid`'s name from `/etc/passwd` (read directly: the static build has no NSS, so getpwuid cannot
/// reach LDAP or sssd users anyway), else `uid N`; the uid is recorded beside it.
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| name_in_passwd(&p, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The login uid in `/proc/self/loginuid`'s text, if the session has one.
pub fn parse_login_uid(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|u| *u != NO_LOGIN)
}

/// The record of who runs this process, with `reason`, `env` for the environment and nothing moved
/// yet.
pub fn now(reason: &str, env: &impl Fn(&str) -> Option<String>) -> Unfence {
    let login_uid = std::fs::read_to_string("/proc/self/loginuid").ok().as_deref().and_then(parse_login_uid);
    let sudo_user = env("SUDO_USER").filter(|s| !s.is_empty());
    let pcmk_service = env("PCMK_service").filter(|s| !s.is_empty());
    let uid = nix::unistd::getuid().as_raw();
    let by = match (&pcmk_service, login_uid, &sudo_user) {
        (Some(service), _, _) => service.clone(),
        (None, Some(login), _) => user_name(login),
        (None, None, Some(sudo)) => sudo.clone(),
        (None, None, None) => user_name(uid),
    };
    Unfence { by, login_uid, sudo_user, uid, pcmk_service, reason: reason.to_string(), ..Unfence::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_passwd_text() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbad line\n";
        assert_eq!(name_in_passwd(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 7), None);
    }

    #[test]
    fn pacemaker_is_who_when_it_runs_the_agent_else_the_login_user_or_sudo_user() {
        assert_eq!(parse_login_uid("4294967295"), None, "no login session");
        assert_eq!(parse_login_uid("1000\n"), Some(1000));
        let env = |k: &str| match k {
            "PCMK_service" => Some("pacemaker-fenced".to_string()),
            "SUDO_USER" => Some("alice".to_string()),
            _ => None,
        };
        let u = now("joined", &env);
        assert_eq!(
            (u.by.as_str(), u.sudo_user.as_deref(), u.reason.as_str()),
            ("pacemaker-fenced", Some("alice"), "joined")
        );
        let sudo = |k: &str| (k == "SUDO_USER").then(|| "alice".to_string());
        let u = now("x", &sudo);
        // Under a login session the login user wins; without one (as in most test runs), SUDO_USER.
        match u.login_uid {
            Some(l) => assert_eq!(u.by, user_name(l)),
            None => assert_eq!(u.by, "alice"),
        }
    }
}
