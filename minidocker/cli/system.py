"""``version`` (``info`` and ``system …`` come with the teaching-path issue)."""

from __future__ import annotations

import platform

import click

from minidocker import DOCKER_VERSION, __version__


@click.command("version")
def version() -> None:
    """Show the minidocker version information."""
    from minidocker.image.config import go_arch

    click.echo(f"minidocker version {__version__} (layout of Docker Engine {DOCKER_VERSION})")
    click.echo(
        f"Python {platform.python_version()}, {platform.system().lower()}/{go_arch()}, kernel {platform.release()}"
    )
