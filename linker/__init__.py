"""Linker scripts rendered from jinja2 templates (`linker/*.ld.j2`) fed by board data."""

from __future__ import annotations

from pathlib import Path

import jinja2

from boards import Board

LINKER_DIR = Path(__file__).resolve().parent
PAGE_SIZE = 0x1000


def render_linker_script(board: Board, template: str = "pyshyper.ld.j2") -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(LINKER_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(board=board, page_size=PAGE_SIZE)


def render_guest_linker_script(
    base: int, stack_size: int, max_size: int, template: str = "guest.ld.j2", search: Path | None = None
) -> str:
    """The linker script of a bare-metal test guest (tests/guests/NAME/) linked at guest-physical `base`."""
    dirs = [str(search)] if search is not None else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*dirs, str(LINKER_DIR)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template).render(base=base, stack_size=stack_size, max_size=max_size)
