//! Section-8 manual pages rendered from a program's own clap definition (`clap_mangen`), so that a
//! page cannot drift from the options the program accepts: one page per program, its subcommands'
//! options each under a heading of their own (a global option listed once, at the top), then the
//! sections clap does not know (exit status, files, environment) and SEE ALSO. Text is filled and
//! wrapped by man, never preformatted, so that a page fits the reader's terminal.
//!
//! A program prints its page when run as `PROGRAM --generate man` (as ripgrep does), which
//! [`requested`] recognises before the program's own parsing: `make man` calls it at build time.

use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// What a page says beyond the program's clap definition.
#[derive(Debug, Clone, Copy)]
pub struct Extra<'a> {
    /// Sections after the options, as (heading, text). Text is paragraphs separated by a blank line;
    /// a paragraph whose lines start with two spaces is an example, shown as written.
    pub sections: &'a [(&'a str, &'a str)],
    /// Other pages and documents, as `name(section)` or paths.
    pub see_also: &'a [&'a str],
}

/// Whether the command line asks for the man page (`PROGRAM --generate man`, nothing else).
pub fn requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<_> = args.into_iter().skip(1).collect();
    args.len() == 2 && args[0] == "--generate" && args[1] == "man"
}

/// The page of `cmd` (section 8, "System Administration").
pub fn render(cmd: clap::Command, extra: &Extra) -> String {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("8")
        .source(format!("gfs2-fencing {version}"))
        .manual("System Administration");
    let mut out = String::from(PREAMBLE);
    for part in
        [Man::render_title, Man::render_name_section, Man::render_synopsis_section, Man::render_description_section]
    {
        out += &part_of(&man, part);
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out += &part_of(&man, Man::render_options_section);
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out += &subcommand(sub);
    }
    let mut roff = Roff::new();
    for (heading, text) in extra.sections {
        roff.control("SH", [heading.to_uppercase().as_str()]);
        paragraphs(&mut roff, text);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(extra.see_also.join(", "))]);
    out + &roff.to_roff()
}

/// A subcommand: a heading naming it, what it does, its synopsis and its own options (the global
/// ones were listed at the top).
fn subcommand(sub: &clap::Command) -> String {
    let mut own = sub.clone();
    for id in sub.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().clone()).collect::<Vec<_>>() {
        own = own.mut_arg(id, |a| a.hide(true));
    }
    let bin = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
    let mut roff = Roff::new();
    roff.control("SH", [bin.to_uppercase().as_str()]);
    let about = sub.get_long_about().or(sub.get_about()).map(|s| s.to_string()).unwrap_or_default();
    paragraphs(&mut roff, &about);
    roff.control("PP", []).text([bold(bin), roman(" [OPTIONS]")]);
    let options = part_of(&Man::new(own), Man::render_options_section);
    // Under the subcommand's own heading: the options section's heading is dropped, its entries kept.
    roff.to_roff() + options.strip_prefix(".SH OPTIONS\n").unwrap_or(&options)
}

/// The lines clap_mangen opens every rendered part with (the apostrophe string); a page says them once.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

type Part = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// One part of a page as clap_mangen renders it, without the preamble.
fn part_of(man: &Man, part: Part) -> String {
    let mut buf = Vec::new();
    part(man, &mut buf).expect("writing to memory");
    let text = String::from_utf8(buf).expect("roff is UTF-8");
    text.strip_prefix(PREAMBLE).map(str::to_string).unwrap_or(text)
}

/// Paragraphs separated by blank lines; an example (every line indented two spaces) as written.
fn paragraphs(roff: &mut Roff, text: &str) {
    for (i, para) in text.split("\n\n").map(str::trim_end).filter(|p| !p.trim().is_empty()).enumerate() {
        let example = para.lines().all(|l| l.starts_with("  "));
        if i > 0 || example {
            roff.control("PP", []);
        }
        if example {
            roff.control("nf", []).control("RS", ["4"]);
            for line in para.lines() {
                roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]).control("br", []);
            }
            roff.control("RE", []).control("fi", []);
        } else {
            roff.text([roman(para.split_whitespace().collect::<Vec<_>>().join(" "))]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> clap::Command {
        clap::Command::new("tool")
            .version("1.0")
            .about("Does a thing.")
            .arg(clap::Arg::new("dir").long("dir").global(true).help("The directory."))
            .subcommand(clap::Command::new("go").about("Goes.").arg(clap::Arg::new("far").long("far").help("How far.")))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn a_page_lists_each_subcommand_with_its_own_options_and_global_ones_once() {
        let page = render(cmd(), &Extra { sections: &[("Exit status", "0 on success.")], see_also: &["other(8)"] });
        assert!(page.starts_with(&format!("{PREAMBLE}.TH TOOL 8")), "{page}");
        assert_eq!(page.matches(PREAMBLE).count(), 1, "{page}");
        assert_eq!(page.matches(".SH OPTIONS").count(), 1, "{page}");
        assert!(page.contains(".SH \"TOOL GO\""), "{page}");
        assert!(page.contains("How far."), "{page}");
        assert_eq!(page.matches("The directory.").count(), 1, "{page}");
        assert!(!page.to_lowercase().contains("secret"), "{page}");
        assert!(page.contains(".SH \"EXIT STATUS\"\n0 on success."), "{page}");
        assert!(page.ends_with(".SH \"SEE ALSO\"\nother(8)\n"), "{page}");
    }

    #[test]
    fn examples_are_shown_as_written_and_prose_is_left_to_man_to_fill() {
        let mut roff = Roff::new();
        paragraphs(&mut roff, "Some words\nwrapped by hand.\n\n  pcs stonith level add 1 n dev\n  second line");
        let text = roff.to_roff();
        assert!(text.contains("Some words wrapped by hand."), "{text}");
        assert!(text.contains(".nf\n.RS 4\npcs stonith level add 1 n dev\n.br\nsecond line"), "{text}");
    }

    #[test]
    fn only_the_exact_request_is_recognised() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(requested(args(&["p", "--generate", "man"])));
        assert!(!requested(args(&["p", "--generate", "man", "x"])));
        assert!(!requested(args(&["p", "run", "--generate", "man"])));
        assert!(!requested(args(&["p"])));
    }
}
