"""No block of six lines or more is written twice in trainers/ or studio/: a repeated block is a
function waiting to be named, and two copies drift apart. Lines are compared as Python's logical
lines (one statement, however it is wrapped), their tokens joined by single spaces; imports,
docstrings and comments are left out. So a copy that was re-indented or re-wrapped by the
formatter is still found, and a long call laid out one argument per line counts as one line."""

import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainers", "studio")
WINDOW = 6
# A repeat kept on purpose: (file, first line of the block's text) -> why.
ALLOWED = {}
LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(path: Path) -> list:
    """[(line number, normalised text)] of the logical lines that carry code."""
    out, tokens, first = [], [], None
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type in LAYOUT:
            continue
        if tok.type != tokenize.NEWLINE:
            first = first or tok.start[0]
            tokens.append(tok)
            continue
        is_import = tokens[0].string in ("import", "from") and any(t.string == "import" for t in tokens)
        is_docstring = len(tokens) == 1 and tokens[0].type == tokenize.STRING
        if not (is_import or is_docstring):
            out.append((first, " ".join(t.string for t in tokens)))
        tokens, first = [], None
    return out


def repeated_blocks(root: Path = ROOT) -> list:
    """[(text of the first line, [(file, line)...])] for each run of WINDOW normalised lines that
    occurs in more than one place (overlapping windows of one repeat reported once)."""
    seen = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            lines = code_lines(path)
            for i in range(len(lines) - WINDOW + 1):
                key = "\n".join(text for _, text in lines[i : i + WINDOW])
                seen.setdefault(key, []).append((path.relative_to(root).as_posix(), lines[i][0]))
    found, reported = [], set()
    for key, places in seen.items():
        if len(set(places)) < 2 or any(place in reported for place in places):
            continue
        # places within WINDOW lines of an earlier report belong to the same block
        reported.update((f, n + d) for f, n in places for d in range(-WINDOW * 3, WINDOW * 3))
        found.append((key.splitlines()[0], places))
    return found


def test_no_block_of_six_lines_is_repeated():
    found = [(first, places) for first, places in repeated_blocks() if (places[0][0], first) not in ALLOWED]
    described = "\n".join(f"{first!r} at " + ", ".join(f"{f}:{n}" for f, n in places) for first, places in found)
    assert not found, f"Blocks of {WINDOW}+ lines written more than once (name a function for each):\n{described}"


def test_the_check_finds_a_copied_block(tmp_path):
    block = "\n".join(f"    total = total + {i} * weight" for i in range(WINDOW))
    (tmp_path / "trainers").mkdir()
    (tmp_path / "trainers" / "a.py").write_text(f"def f(weight):\n    total = 0\n{block}\n    return total\n")
    (tmp_path / "trainers" / "b.py").write_text(f"import os\n\n\ndef g(weight):\n    # copied\n{block}\n")
    (tmp_path / "studio").mkdir()
    found = repeated_blocks(tmp_path)
    assert [sorted(places) for _, places in found] == [[("trainers/a.py", 3), ("trainers/b.py", 6)]]
