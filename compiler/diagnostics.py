"""Diagnostics: `error[CODE]: message` with `--> file:line:col` and a caret line (rustc style)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass
class Diagnostic:
    code: str
    message: str
    path: str
    line: int
    col: int  # 1-based
    end_col: int = 0
    source_line: str = ""
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        gutter = len(str(self.line))
        out = [f"error[{self.code}]: {self.message}", f"{' ' * gutter}--> {self.path}:{self.line}:{self.col}"]
        if self.source_line:
            width = max(1, (self.end_col or self.col + 1) - self.col)
            out.append(f"{' ' * gutter} |")
            out.append(f"{self.line} | {self.source_line.rstrip()}")
            out.append(f"{' ' * gutter} | {' ' * (self.col - 1)}{'^' * width}")
        out.extend(f"{' ' * gutter} = note: {n}" for n in self.notes)
        return "\n".join(out)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: error[{self.code}]: {self.message}"


class CompileError(Exception):
    """Raised when a program has diagnostics; carries all of them."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))

    def render(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)


class Reporter:
    """Collects diagnostics for one program; each module's source lines give the caret lines."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[str, int, int, str]] = set()

    def error(self, code: str, message: str, path: str, lines: list[str], node: ast.AST | None) -> None:
        line = getattr(node, "lineno", 1) or 1
        col = (getattr(node, "col_offset", 0) or 0) + 1
        end_line = getattr(node, "end_lineno", line)
        end_col = (getattr(node, "end_col_offset", None) or col) + 1 if end_line == line else 0
        key = (path, line, col, code)
        if key in self._seen:
            return
        self._seen.add(key)
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        if not end_col:
            end_col = len(src.rstrip()) + 1
        self.diagnostics.append(Diagnostic(code, message, path, line, col, end_col, src))

    def raise_if_any(self) -> None:
        if self.diagnostics:
            self.diagnostics.sort(key=lambda d: (d.path, d.line, d.col))
            raise CompileError(self.diagnostics)
