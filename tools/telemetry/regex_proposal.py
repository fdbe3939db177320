"""For a log no parser knows: show a few of the lines that look like metrics and propose a ``--regex`` for them.

Why: the alternative answer, "format not detected: pass fmt or a regex", leaves the user to write a
regex with the right group names from nothing. The lines a training loop prints name their numbers
(``step``, ``loss``, ``time``, ``tok/s``), so a regex can be built from one of them: each number
that follows (or precedes) a known key becomes a named group from
:data:`~gpu_preflight.tools.telemetry.trainlog.REGEX_GROUPS`, with the key text around it kept
literally and ``.*?`` between fields. The proposal that reads the most candidate lines wins.

This is the one place where a file's lines are quoted back (errors otherwise never quote content,
a log can hold a token). So only lines that look like metrics are shown: a digit and a metric word,
and nothing that looks like a secret: a key/token/password word, a run of 24 or more base64 or hex
characters, a ``$`` (password hashes), an ``@`` or ``://`` (credentials in URLs).

>>> text = "booting\\nep 1 | it 120 | loss=2.31 | 85.2ms\\nep 1 | it 121 | loss=2.29 | 86.0ms\\n"
>>> p = propose(text)
>>> p.lines
['ep 1 | it 120 | loss=2.31 | 85.2ms', 'ep 1 | it 121 | loss=2.29 | 86.0ms']
>>> from gpu_preflight.tools.telemetry.trainlog import make_log_parser
>>> [(s.step, s.loss, s.step_time_s) for s in make_log_parser("regex", regex=p.regex).feed_text(text)]
[(120, 2.31, 0.0852), (121, 2.29, 0.086)]
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .lines import split_segments, strip_ansi
from .trainlog import REGEX_GROUPS

MAX_SHOWN = 3
SHOWN_CHARS = 120
MAX_SCANNED = 2000
MAX_TRIED = 20
_NUM = r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?"
_INT = r"\d+"
_STEP_KEY = r"(?i)\b(?:global[_ ]?)?(?:step|iter(?:ation)?|it)\b"
_TOKENS_KEY = r"(?i)(?:\btok(?:ens)?[/_ ]?(?:per[_ ]?)?s(?:ec(?:ond)?)?|\btps)\b"

_SECRETISH = re.compile(
    r"(?i)key|secret|passw|bearer|auth|credential|cookie|session|\btoken\b|[_-]token\b|token[_-]?(?:id)?\s*[:=]"
)
_LONG_RUN = re.compile(r"[A-Za-z0-9+/]{24,}")
_UNSAFE = re.compile(r"[$@]|://")
_METRIC_WORD = re.compile(
    r"(?i)step|iter|loss|epoch|time|tok|throughput|\blr\b|batch|sample|mfu|grad|ppl|perplexity|it/s|s/it|\d\s*ms\b"
)

# (group, pattern); each pattern's capture groups are numbers, named in order by the group names
# joined with "+". Earlier patterns win where two overlap (val loss before loss).
_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("step+total_steps", re.compile(_STEP_KEY + r"\s*[:=#]?\s*(\d+)\s*/\s*(\d+)")),
    ("step", re.compile(_STEP_KEY + r"\s*[:=#]?\s*(\d+)\b(?![.\d])")),
    ("val_loss", re.compile(r"(?i)\b(?:val|valid|eval)(?:idation)?[_ ]?loss\b\s*[:=]?\s*(" + _NUM + ")")),
    ("loss", re.compile(r"(?i)(?<![\w])(?:train[_ ]?)?loss\b\s*[:=]?\s*(" + _NUM + ")")),
    ("step_time_ms", re.compile(r"(?i)(?<![\w.])(" + _NUM + r")\s*ms\b")),
    ("step_time_s", re.compile(r"(?i)\b(?:step[_ ]?time|iter[_ ]?time|time|dt)\b\s*[:=]?\s*(" + _NUM + r")\s*s?\b")),
    ("step_time_s", re.compile(r"(?i)(?<![\w.])(" + _NUM + r")\s*s/it\b")),
    ("tokens_per_s", re.compile(_TOKENS_KEY + r"\s*[:=]?\s*(" + _NUM + ")")),
    ("tokens_per_s", re.compile(r"(?i)(?<![\w.])(" + _NUM + r")\s*tok(?:ens)?/s(?:ec)?\b")),
    ("elapsed_s", re.compile(r"(?i)\belapsed\b\s*[:=]?\s*(" + _NUM + r")\s*s?\b")),
    ("epoch", re.compile(r"(?i)\bepoch\b\s*[:=]?\s*(\d+(?:\.\d+)?)")),
    ("mfu_pct", re.compile(r"(?i)\bmfu\b\s*[:=]?\s*(" + _NUM + ")")),
)
assert {name for names, _ in _FIELDS for name in names.split("+")} <= set(REGEX_GROUPS)


@dataclass(frozen=True)
class Proposal:
    """Up to :data:`MAX_SHOWN` metric-like lines (cut to :data:`SHOWN_CHARS`) and a regex for them, if one was found."""

    lines: list[str] = field(default_factory=list)
    regex: str | None = None
    matched: int = 0
    candidates: int = 0


def looks_like_metrics(line: str) -> bool:
    """A digit, a metric word, and nothing that looks like a secret.

    >>> looks_like_metrics("step 10 loss 2.5"), looks_like_metrics("root:$6$s3cr3t:19000:0:99999:7:::")
    (True, False)
    >>> looks_like_metrics("step 3 HF_TOKEN=hf_abc"), looks_like_metrics("step 1 id=4f9c2e7a1b3d5f6e8a0c2e4f6a8b")
    (False, False)
    """
    if not any(ch.isdigit() for ch in line) or not _METRIC_WORD.search(line):
        return False
    return not (_SECRETISH.search(line) or _LONG_RUN.search(line) or _UNSAFE.search(line))


def _regex_for(line: str) -> str | None:
    """A regex with named groups for the known fields of one line (None when it has none)."""
    taken: list[tuple[int, int]] = []
    used: set[str] = set()
    parts: list[tuple[int, str]] = []
    for names, pattern in _FIELDS:
        group_names = names.split("+")
        if used & set(group_names):
            continue
        for match in pattern.finditer(line):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            fragment, cursor = "", match.start()
            for index, name in enumerate(group_names, start=1):
                body = _INT if name in ("step", "total_steps") else _NUM
                fragment += _literal(line[cursor : match.start(index)]) + f"(?P<{name}>{body})"
                cursor = match.end(index)
            fragment += _literal(line[cursor : match.end()])
            taken.append((match.start(), match.end()))
            used.update(group_names)
            parts.append((match.start(), fragment))
            break
    if not parts:
        return None
    return ".*?".join(fragment for _, fragment in sorted(parts))


def _literal(text: str) -> str:
    r"""The key text around a number, escaped, with runs of spaces loosened to ``\s+``/``\s*``."""
    out = re.escape(text.strip()) if text.strip() else ""
    out = re.sub(r"(?:\\ )+", r"\\s+", out)
    if text[:1].isspace() and out:
        out = r"\s*" + out
    if text[-1:].isspace():
        out += r"\s*"
    return out


def propose(text: str) -> Proposal:
    """The metric-like lines of ``text`` and the regex (built from one of them) that reads the most of them."""
    candidates: list[str] = []
    for count, segment in enumerate(split_segments(text)):
        if count >= MAX_SCANNED:
            break
        line = strip_ansi(segment).strip()
        if looks_like_metrics(line):
            candidates.append(line)
    best: tuple[int, str] | None = None
    for line in dict.fromkeys(candidates[:MAX_TRIED]):
        regex = _regex_for(line)
        if regex is None:
            continue
        compiled = re.compile(regex)
        hits = sum(1 for c in candidates if compiled.search(c))
        if best is None or hits > best[0]:
            best = (hits, regex)
    if best is None:
        return Proposal(lines=[_cut(c) for c in candidates[:MAX_SHOWN]], candidates=len(candidates))
    compiled = re.compile(best[1])
    shown = [c for c in candidates if compiled.search(c)][:MAX_SHOWN]
    return Proposal(lines=[_cut(c) for c in shown], regex=best[1], matched=best[0], candidates=len(candidates))


def _cut(line: str) -> str:
    clean = "".join(ch if ch.isprintable() else " " for ch in line)
    return clean if len(clean) <= SHOWN_CHARS else clean[: SHOWN_CHARS - 3] + "..."


def unread_lines_hint(text: str) -> str:
    """The metric-like lines and the proposal, as the tail of the undetected-format error's hint."""
    proposal = propose(text)
    if not proposal.lines:
        return "; no line looked like metrics (a step, a loss, a time)"
    shown = "".join(f"\n  unread: {line}" for line in proposal.lines)
    if proposal.regex is None:
        return f"; lines it could not read:{shown}\n  no field (step, loss, time, tok/s) was recognised in them"
    return (f"; lines it could not read:{shown}\n  try: --regex {shlex.quote(proposal.regex)}  (MCP: regex); "
            f"it reads {proposal.matched} of the {proposal.candidates} metric-like lines")
