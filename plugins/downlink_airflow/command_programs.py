"""The programs a registry command runs: what `make check` looks up in the astro image's PATH list
(/usr/share/downlink/path-programs.txt, written by the image build). Pure Python.

* A plain command (no shell syntax) or a list: its first word.
* A shell-syntax command (registry.SHELL_SYNTAX, run under sh -c): the first word of each simple
  command, past `VAR=value` assignments, redirects and the keywords that start a command (`if`,
  `then`, `do`, `!`, ...). Shell builtins (`cd`, `export`, `[`, ...) are always there.
  The commands inside `$( )` count too.
* Not checked (None: "cannot tell"): a command sh cannot be split into words here (unbalanced
  quotes, here-documents, `$(( ))` arithmetic), or one with `case` or `for` (their words are not commands). Single
  words are left out when they are computed (`$PROG`, `$(...)`, a {placeholder}) or relative
  paths (`./x`, `bin/x`: they depend on the working folder).
"""
import shlex

# dash's builtins and the POSIX special builtins: never on PATH, always there under sh -c.
SH_BUILTINS = frozenset({
    ":", ".", "[", "alias", "bg", "break", "cd", "command", "continue", "echo", "eval", "exec", "exit",
    "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read",
    "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "wait",
})
SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", "\n", ";;", "|&"})
COMMAND_STARTERS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "fi", "done"})
GIVE_UP = frozenset({"case", "for", "select", "function"})
REDIRECT = frozenset({">", ">>", "<", "<<", "<>", ">&", "<&", ">|", "&>", "&>>"})


def _is_assignment(word):
    name, eq, _ = word.partition("=")
    return bool(eq) and name.isidentifier()


def _checkable(word):
    """A word that names a program we can look up: not computed, not a relative path."""
    if any(c in word for c in "$`{}*?[]~") and word != "[":
        return False
    return "/" not in word or word.startswith("/")


def programs_of(command, shell_syntax):
    """The programs `command` (a str or a list of str) runs, in order; None when it cannot tell."""
    if isinstance(command, list):
        return [command[0]] if command and _checkable(command[0]) else []
    if not shell_syntax:
        try:
            words = shlex.split(command)
        except ValueError:
            return None
        return [words[0]] if words and _checkable(words[0]) else []
    if "<<" in command or "$((" in command:  # here-documents, arithmetic
        return None
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.whitespace = " \t\r"
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    out, at_start, skip_next = [], True, False
    for tok in tokens:
        if skip_next:  # the target of a redirect
            skip_next = False
            continue
        if tok in SEPARATORS:
            at_start = True
            continue
        if tok in REDIRECT or tok.rstrip("<>&|").isdigit() and tok != tok.rstrip("<>&|"):
            skip_next = True
            continue
        if not at_start:
            continue
        if tok in GIVE_UP:
            return None
        if tok in COMMAND_STARTERS or _is_assignment(tok):
            continue
        at_start = False
        if tok not in SH_BUILTINS and _checkable(tok):
            out.append(tok)
    return out
