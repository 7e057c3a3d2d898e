#!/bin/sh
# Writes a section-8 man page for a command from its --help (and, for subcommands, their --help):
#   packaging/help2man.sh BINARY NAME "one-line summary" [SUBCOMMAND...] > NAME.8
# No dependency beyond sh: the help text goes in verbatim, so the page cannot drift from the code.
set -eu
bin=$1 name=$2 summary=$3
shift 3
version=$("$bin" --version 2>/dev/null | head -n 1 || echo "$name")
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
printf '.TH %s 8 "" "%s" "System Administration"\n' "$(echo "$name" | tr a-z A-Z)" "$version"
printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
printf '.SH DESCRIPTION\n.nf\n'
"$bin" --help | esc
printf '.fi\n'
for sub in "$@"; do
    printf '.SH "%s %s"\n.nf\n' "$(echo "$name" | tr a-z A-Z)" "$(echo "$sub" | tr a-z A-Z)"
    "$bin" "$sub" --help | esc
    printf '.fi\n'
done
printf '.SH "SEE ALSO"\nfence_gfs2_recorder(8), gfs2-fence-watcher(8), gfs2-fence-events(8)\n'
