"""The command: cron's % rule, then a small POSIX-shell lexer (enough to split lists safely)."""
import dataclasses
import re
import shlex

from downlink_airflow.crontab.result import Untranslatable

ASSIGNMENT_WORD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
COMPOUND_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
                  "select", "function", "{", "}", "[["}
REDIRECT = re.compile(r"(\d*)(<<<|<<-|<<|<&|<>|<\(|>>|>&|>\||>\(|&>>|&>|<|>)")
OPERATORS = ("&&", "||", ";;", "|&", ";", "|", "&", "(", ")")
METACHARS = " \t;&|<>()"


def unescape_percent(command):
    out, i = [], 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            raise Untranslatable("unescaped % (cron turns it into a newline and sends the rest to the "
                                 "command's stdin; write \\% for a literal %)")
        out.append(command[i])
        i += 1
    return "".join(out)


@dataclasses.dataclass
class Token:
    kind: str  # word | op | redir
    text: str  # as written (a redirect: operator and target)
    value: str = ""  # word: unquoted (approximately); op: the operator; redir: the operator
    fd: str = ""  # redir: the descriptor written before the operator
    target: str = ""  # redir: the target, unquoted


def _scan_quoted(s, i, close):
    """Index after the closing quote of a "..." or `...` that starts before i."""
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == close:
            return i + 1
        if close == '"' and c == "`":
            i = _scan_quoted(s, i + 1, "`")
            continue
        if close == '"' and s.startswith("$(", i):
            i = _scan_nested(s, i + 2, "(", ")")
            continue
        i += 1
    raise Untranslatable(f"unterminated {close}")


def _scan_nested(s, i, open_, close):
    """Index after the `close` that matches an `open_` before i ($(...), ${...})."""
    depth = 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise Untranslatable("unterminated '")
            i = end + 1
            continue
        if c in "\"`":
            i = _scan_quoted(s, i + 1, c)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Untranslatable(f"unterminated {'$(' if open_ == '(' else '${'}")


def _scan_word(s, i):
    start = i
    while i < len(s):
        c = s[i]
        if c in METACHARS:
            break
        if c == "\\":
            i += 2
        elif c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise Untranslatable("unterminated '")
            i = end + 1
        elif c in "\"`":
            i = _scan_quoted(s, i + 1, c)
        elif s.startswith("$(", i):
            i = _scan_nested(s, i + 2, "(", ")")
        elif s.startswith("${", i):
            i = _scan_nested(s, i + 2, "{", "}")
        else:
            i += 1
    return min(i, len(s)), s[start:min(i, len(s))]


def unquote(raw):
    try:
        return " ".join(shlex.split(raw))
    except ValueError:
        return raw


def lex(s):
    """Tokens of a shell command line (comments dropped)."""
    tokens, i = [], 0
    while i < len(s):
        c = s[i]
        if c in " \t":
            i += 1
            continue
        if c == "#":
            break
        m = REDIRECT.match(s, i)
        if m:
            fd, op = m.groups()
            if op in ("<<", "<<-", "<<<"):
                raise Untranslatable(f"here-document ({op}) is not translatable: put the input in a file or a script")
            if op in ("<(", ">("):
                raise Untranslatable(f"process substitution ({op}...) is not translatable (bash only): use a script")
            j = m.end()
            while j < len(s) and s[j] in " \t":
                j += 1
            end, raw = _scan_word(s, j)
            if not raw:
                raise Untranslatable(f"redirect {fd}{op} has no target")
            tokens.append(Token("redir", s[i:end], op, fd, unquote(raw)))
            i = end
            continue
        op = next((o for o in OPERATORS if s.startswith(o, i)), None)
        if op:
            tokens.append(Token("op", op, op))
            i += len(op)
            continue
        i, raw = _scan_word(s, i)
        tokens.append(Token("word", raw, unquote(raw)))
    return tokens


UNTRANSLATABLE_OPS = {
    "||": "|| (run when the previous command failed) is not translatable: put the fallback in a script",
    "&": "& (run in the background) is not translatable: give the command its own line or chain",
    "|&": "|& (bash) is not translatable: write 2>&1 |",
    "(": "a ( ) subshell is not translatable: put the commands in a script",
    ")": "a ( ) subshell is not translatable: put the commands in a script",
    ";;": "case ... ;; is not translatable: put it in a script",
}


def split_list(text):
    """[(operator before it or None, [tokens])] for a command list joined by && and ;."""
    elements, current, op_before = [], [], None
    for tok in lex(text):
        if tok.kind == "op" and tok.value in UNTRANSLATABLE_OPS:
            raise Untranslatable(UNTRANSLATABLE_OPS[tok.value])
        if tok.kind == "op" and tok.value in (";", "&&"):
            if not current:
                raise Untranslatable(f"{tok.value} without a command before it")
            if current[-1].kind == "op":
                raise Untranslatable("| without a command after it")
            elements.append((op_before, current))
            current, op_before = [], tok.value
            continue
        if tok.kind == "op":  # |
            if not current or current[-1].kind == "op":
                raise Untranslatable("| without a command before it")
        current.append(tok)
    if current:
        if current[-1].kind == "op":
            raise Untranslatable("| without a command after it")
        elements.append((op_before, current))
    elif op_before == "&&":
        raise Untranslatable("&& without a command after it")
    if not elements:
        raise Untranslatable("no command")
    for _, tokens in elements:
        at_start = True
        for tok in tokens:
            if at_start and tok.kind == "word" and tok.text in COMPOUND_WORDS:
                raise Untranslatable(f"shell compound command ({tok.text} ...) is not translatable: put it in a script")
            if tok.kind == "word" and not ASSIGNMENT_WORD.match(tok.text):
                at_start = False
            if tok.kind == "op":
                at_start = True
    return elements

